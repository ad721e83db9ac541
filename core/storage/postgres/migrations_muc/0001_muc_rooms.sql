-- Persistent multi-user chat rooms (storage.MUCRooms), track "muc"
-- (PostgreSQL), recorded in schema_migrations_muc. state is sealed by the
-- module; jid and service compare as bytes, as on SQLite.

CREATE TABLE muc_rooms (
    jid     TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    service TEXT COLLATE "C" NOT NULL,
    state   BYTEA NOT NULL
);

CREATE INDEX muc_rooms_service ON muc_rooms (service, jid);

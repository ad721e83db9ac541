-- Persistent multi-user chat rooms (storage.MUCRooms), track "muc"
-- (SQLite), recorded in schema_migrations_muc. state is sealed by the
-- module; jid and service compare as bytes.

CREATE TABLE muc_rooms (
    jid     TEXT NOT NULL PRIMARY KEY,
    service TEXT NOT NULL,
    state   BLOB NOT NULL
) STRICT;

CREATE INDEX muc_rooms_service ON muc_rooms (service, jid);

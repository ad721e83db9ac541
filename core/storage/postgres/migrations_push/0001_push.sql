-- XEP-0357 push registrations (storage.PushRegistrations), track "push"
-- (PostgreSQL), recorded in schema_migrations_push.
--
-- One row per (owner, app server, node). owner is a canonical bare JID,
-- service a canonical JID, node the app server's opaque node; all COLLATE
-- "C" so they compare and order as bytes, as on SQLite. options holds the
-- client's publish-options sealed by the push module (they carry the app
-- server's secret). Not a foreign key to accounts, like the core's owned
-- tables: DeleteAccount removes the rows.

CREATE TABLE push_registrations (
    owner   TEXT COLLATE "C" NOT NULL,
    service TEXT COLLATE "C" NOT NULL,
    node    TEXT COLLATE "C" NOT NULL,
    options BYTEA,
    created TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (owner, service, node)
);

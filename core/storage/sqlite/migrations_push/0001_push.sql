-- XEP-0357 push registrations (storage.PushRegistrations), track "push"
-- (SQLite), recorded in schema_migrations_push.
--
-- One row per (owner, app server, node). owner is a canonical bare JID,
-- service a canonical JID, node the app server's opaque node; they compare
-- as bytes. options holds the client's publish-options sealed by the push
-- module (they carry the app server's secret); created is Unix
-- nanoseconds. Not a foreign key to accounts, like the core's owned
-- tables: DeleteAccount removes the rows.

CREATE TABLE push_registrations (
    owner   TEXT    NOT NULL,
    service TEXT    NOT NULL,
    node    TEXT    NOT NULL,
    options BLOB,
    created INTEGER NOT NULL,
    PRIMARY KEY (owner, service, node)
) STRICT, WITHOUT ROWID;

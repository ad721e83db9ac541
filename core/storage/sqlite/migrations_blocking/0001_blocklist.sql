-- XEP-0191 blocklists (storage.Blocklist), track "blocking" (SQLite),
-- recorded in schema_migrations_blocking.
--
-- One row per blocked JID. owner is a canonical bare JID, jid a canonical
-- JID in any of the four forms XEP-0191 matches; both compare and order as
-- bytes (SQLite's BINARY collation), as on PostgreSQL. Not a foreign key
-- to accounts, like the core's owned tables: DeleteAccount removes the rows.

CREATE TABLE blocklist (
    owner TEXT NOT NULL,
    jid   TEXT NOT NULL,
    PRIMARY KEY (owner, jid)
) STRICT, WITHOUT ROWID;

-- XEP-0191 blocklists (storage.Blocklist), track "blocking" (PostgreSQL),
-- recorded in schema_migrations_blocking.
--
-- One row per blocked JID. owner is a canonical bare JID, jid a canonical
-- JID in any of the four forms XEP-0191 matches; both are COLLATE "C", so
-- they compare and order as bytes, as on SQLite. Not a foreign key to
-- accounts, like the core's owned tables: DeleteAccount removes the rows.

CREATE TABLE blocklist (
    owner TEXT COLLATE "C" NOT NULL,
    jid   TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (owner, jid)
);

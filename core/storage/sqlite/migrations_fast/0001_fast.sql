-- XEP-0484 FAST tokens (storage.FASTTokens), track "fast" (SQLite),
-- recorded in schema_migrations_fast.
--
-- At most two rows per (owner, client): the token in use ('current') and
-- the one issued last and not yet used ('new'). owner is a canonical bare
-- JID; client is a hash of the client's SASL2 user-agent id. secret is
-- the random value the token is derived from with a server key (the token
-- itself is never stored); expires is Unix nanoseconds; count is the
-- highest replay counter used with the token. Not a foreign key to
-- accounts, like the core's owned tables: DeleteAccount and
-- SetCredentials remove the rows.

CREATE TABLE fast_tokens (
    owner     TEXT    NOT NULL,
    client    TEXT    NOT NULL,
    slot      TEXT    NOT NULL CHECK (slot IN ('current', 'new')),
    mechanism TEXT    NOT NULL,
    secret    BLOB    NOT NULL,
    expires   INTEGER NOT NULL,
    count     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (owner, client, slot)
) STRICT, WITHOUT ROWID;

CREATE INDEX fast_tokens_expires ON fast_tokens (expires);

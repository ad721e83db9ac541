-- XEP-0484 FAST tokens (storage.FASTTokens), track "fast" (PostgreSQL),
-- recorded in schema_migrations_fast.
--
-- At most two rows per (owner, client): the token in use ('current') and
-- the one issued last and not yet used ('new'). owner is a canonical bare
-- JID and client a hash of the client's SASL2 user-agent id, COLLATE "C"
-- so they compare as bytes, as on SQLite. secret is the random value the
-- token is derived from with a server key (the token itself is never
-- stored); count is the highest replay counter used with the token. Not a
-- foreign key to accounts, like the core's owned tables: DeleteAccount
-- and SetCredentials remove the rows.

CREATE TABLE fast_tokens (
    owner     TEXT COLLATE "C" NOT NULL,
    client    TEXT COLLATE "C" NOT NULL,
    slot      TEXT NOT NULL CHECK (slot IN ('current', 'new')),
    mechanism TEXT NOT NULL,
    secret    BYTEA NOT NULL,
    expires   TIMESTAMPTZ NOT NULL,
    count     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (owner, client, slot)
);

CREATE INDEX fast_tokens_expires ON fast_tokens (expires);

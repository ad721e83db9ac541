-- Operators and their access requests (storage.Operators), track
-- "operators" (PostgreSQL), recorded in schema_migrations_operators.
--
-- token_hash is the SHA-256 of the operator's random token (NULL: none);
-- the token itself is never stored. Text is COLLATE "C" so that IDs
-- compare and order as bytes, as on SQLite. Times are Unix microseconds.

CREATE TABLE operators (
    id           TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    display_name TEXT NOT NULL,
    roles        TEXT[] NOT NULL,
    token_hash   BYTEA UNIQUE,
    disabled     BOOLEAN NOT NULL DEFAULT FALSE,
    created      BIGINT NOT NULL
);

CREATE TABLE access_requests (
    id          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    action      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    case_number TEXT NOT NULL,
    purpose     TEXT NOT NULL,
    requester   TEXT COLLATE "C" NOT NULL,
    created     BIGINT NOT NULL,
    expires     BIGINT NOT NULL,
    used        BIGINT
);

CREATE INDEX access_requests_created ON access_requests (created);

CREATE TABLE access_request_votes (
    request_id TEXT COLLATE "C" NOT NULL REFERENCES access_requests (id),
    by_id      TEXT COLLATE "C" NOT NULL,
    roles      TEXT[] NOT NULL,
    approve    BOOLEAN NOT NULL,
    comment    TEXT NOT NULL,
    at         BIGINT NOT NULL,
    PRIMARY KEY (request_id, by_id)
);

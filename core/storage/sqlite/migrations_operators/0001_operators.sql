-- Operators and their access requests (storage.Operators), track
-- "operators" (SQLite), recorded in schema_migrations_operators.
--
-- roles is a JSON array of strings. token_hash is the SHA-256 of the
-- operator's random token (NULL: none); the token itself is never stored.
-- Times are Unix microseconds (UTC).

CREATE TABLE operators (
    id           TEXT NOT NULL PRIMARY KEY,
    display_name TEXT NOT NULL,
    roles        TEXT NOT NULL,
    token_hash   BLOB UNIQUE,
    disabled     INTEGER NOT NULL DEFAULT 0,
    created      INTEGER NOT NULL
) STRICT;

CREATE TABLE access_requests (
    id          TEXT NOT NULL PRIMARY KEY,
    action      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    case_number TEXT NOT NULL,
    purpose     TEXT NOT NULL,
    requester   TEXT NOT NULL,
    created     INTEGER NOT NULL,
    expires     INTEGER NOT NULL,
    used        INTEGER
) STRICT;

CREATE INDEX access_requests_created ON access_requests (created);

CREATE TABLE access_request_votes (
    request_id TEXT NOT NULL REFERENCES access_requests (id),
    by_id      TEXT NOT NULL,
    roles      TEXT NOT NULL,
    approve    INTEGER NOT NULL,
    comment    TEXT NOT NULL,
    at         INTEGER NOT NULL,
    PRIMARY KEY (request_id, by_id)
) STRICT;

-- Kontor storage schema, version 1 (SQLite).
--
-- Every table is STRICT, so a value of the wrong type is an error, not a
-- silent conversion. Times are UTC unix microseconds (INTEGER), exactly as on
-- PostgreSQL. JIDs are canonical bare JIDs, compared and ordered as bytes
-- (SQLite's default BINARY collation). Booleans are 0 or 1. Owners are not
-- foreign keys to accounts: a directory (LDAP) user has a roster but no local
-- account; DeleteAccount removes an account's rows explicitly.

CREATE TABLE accounts (
    jid      TEXT    NOT NULL PRIMARY KEY,
    domain   TEXT    NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created  INTEGER NOT NULL
) STRICT;

CREATE INDEX accounts_domain ON accounts (domain, jid);

-- One row per SCRAM hash; pos keeps the order the caller gave.
CREATE TABLE account_credentials (
    jid        TEXT    NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,
    hash       TEXT    NOT NULL,
    pos        INTEGER NOT NULL,
    salt       BLOB    NOT NULL,
    iterations INTEGER NOT NULL,
    stored_key BLOB    NOT NULL,
    server_key BLOB    NOT NULL,
    PRIMARY KEY (jid, hash)
) STRICT, WITHOUT ROWID;

-- AUTOINCREMENT: a sequence number is never reused, even after the newest
-- entry is deleted.
CREATE TABLE account_changes (
    seq  INTEGER PRIMARY KEY AUTOINCREMENT,
    jid  TEXT    NOT NULL,
    kind TEXT    NOT NULL,
    at   INTEGER NOT NULL
) STRICT;

-- groups is a JSON array of strings, in the client's order.
CREATE TABLE roster_items (
    owner        TEXT    NOT NULL,
    contact      TEXT    NOT NULL,
    name         TEXT    NOT NULL DEFAULT '',
    subscription TEXT    NOT NULL CHECK (subscription IN ('none', 'to', 'from', 'both')),
    ask_out      INTEGER NOT NULL DEFAULT 0 CHECK (ask_out IN (0, 1)),
    groups       TEXT    NOT NULL DEFAULT '[]' CHECK (json_type(groups) = 'array'),
    PRIMARY KEY (owner, contact)
) STRICT, WITHOUT ROWID;

CREATE TABLE roster_versions (
    owner   TEXT    NOT NULL PRIMARY KEY,
    version INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE subscription_requests (
    owner    TEXT    NOT NULL,
    from_jid TEXT    NOT NULL,
    stanza   BLOB    NOT NULL,
    at       INTEGER NOT NULL,
    PRIMARY KEY (owner, from_jid)
) STRICT;

CREATE TABLE offline_messages (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    owner    TEXT    NOT NULL,
    from_jid TEXT    NOT NULL,
    stamp    INTEGER NOT NULL,
    sealed   BLOB    NOT NULL
) STRICT;

CREATE INDEX offline_messages_owner ON offline_messages (owner, id);

CREATE TABLE vcards (
    owner TEXT NOT NULL PRIMARY KEY,
    data  BLOB NOT NULL
) STRICT;

-- key is "{namespace}localname".
CREATE TABLE private_xml (
    owner TEXT NOT NULL,
    key   TEXT NOT NULL,
    data  BLOB NOT NULL,
    PRIMARY KEY (owner, key)
) STRICT;

CREATE TABLE last_activity (
    owner  TEXT    NOT NULL PRIMARY KEY,
    at     INTEGER NOT NULL,
    status TEXT    NOT NULL DEFAULT ''
) STRICT;

-- Kontor storage schema, version 1 (PostgreSQL).
--
-- Times are UTC unix microseconds (BIGINT), exactly as on SQLite, so both
-- backends store and return the same instants. JIDs are canonical bare JIDs
-- compared as bytes: every JID column is COLLATE "C", so ordering ("ordered by
-- JID") is bytewise whatever the database's default collation is, and matches
-- SQLite. Owners are not foreign keys to accounts: a directory (LDAP) user has
-- a roster but no local account; DeleteAccount removes an account's rows
-- explicitly.

CREATE TABLE accounts (
    jid      TEXT COLLATE "C" PRIMARY KEY,
    domain   TEXT COLLATE "C" NOT NULL,
    disabled BOOLEAN NOT NULL DEFAULT false,
    created  BIGINT  NOT NULL
);

CREATE INDEX accounts_domain ON accounts (domain, jid);

-- One row per SCRAM hash; pos keeps the order the caller gave.
CREATE TABLE account_credentials (
    jid        TEXT COLLATE "C" NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,
    hash       TEXT    NOT NULL,
    pos        INTEGER NOT NULL,
    salt       BYTEA   NOT NULL,
    iterations INTEGER NOT NULL,
    stored_key BYTEA   NOT NULL,
    server_key BYTEA   NOT NULL,
    PRIMARY KEY (jid, hash)
);

-- Writers of this table hold an advisory lock until they commit (see
-- lockAccountLog in the Go code), so rows become visible in seq order and a
-- reader that remembers the last seq it saw never skips one.
CREATE TABLE account_changes (
    seq  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    jid  TEXT COLLATE "C" NOT NULL,
    kind TEXT   NOT NULL,
    at   BIGINT NOT NULL
);

-- groups keeps the client's order (arrays are ordered).
CREATE TABLE roster_items (
    owner        TEXT COLLATE "C" NOT NULL,
    contact      TEXT COLLATE "C" NOT NULL,
    name         TEXT    NOT NULL DEFAULT '',
    subscription TEXT    NOT NULL CHECK (subscription IN ('none', 'to', 'from', 'both')),
    ask_out      BOOLEAN NOT NULL DEFAULT false,
    groups       TEXT[]  NOT NULL DEFAULT '{}',
    PRIMARY KEY (owner, contact)
);

CREATE TABLE roster_versions (
    owner   TEXT COLLATE "C" PRIMARY KEY,
    version BIGINT NOT NULL
);

CREATE TABLE subscription_requests (
    owner    TEXT COLLATE "C" NOT NULL,
    from_jid TEXT COLLATE "C" NOT NULL,
    stanza   BYTEA  NOT NULL,
    at       BIGINT NOT NULL,
    PRIMARY KEY (owner, from_jid)
);

CREATE TABLE offline_messages (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner    TEXT COLLATE "C" NOT NULL,
    from_jid TEXT COLLATE "C" NOT NULL,
    stamp    BIGINT NOT NULL,
    sealed   BYTEA  NOT NULL
);

CREATE INDEX offline_messages_owner ON offline_messages (owner, id);

CREATE TABLE vcards (
    owner TEXT COLLATE "C" PRIMARY KEY,
    data  BYTEA NOT NULL
);

-- key is "{namespace}localname".
CREATE TABLE private_xml (
    owner TEXT COLLATE "C" NOT NULL,
    key   TEXT COLLATE "C" NOT NULL,
    data  BYTEA NOT NULL,
    PRIMARY KEY (owner, key)
);

CREATE TABLE last_activity (
    owner  TEXT COLLATE "C" PRIMARY KEY,
    at     BIGINT NOT NULL,
    status TEXT   NOT NULL DEFAULT ''
);

-- Directory sync state (storage.LDAPState), track "ldap" (PostgreSQL).
--
-- source names one configured directory. Times are UTC unix microseconds
-- (BIGINT), as everywhere in Kontor; gone_since is NULL while the entry is
-- in the directory. Identifiers and JIDs are COLLATE "C": compared and
-- ordered as bytes, as on SQLite.

CREATE TABLE ldap_links (
    source     TEXT COLLATE "C" NOT NULL,
    stable_id  TEXT COLLATE "C" NOT NULL,
    jid        TEXT COLLATE "C" NOT NULL,
    dn         TEXT    NOT NULL,
    attrs      BYTEA   NOT NULL,
    disabled   BOOLEAN NOT NULL DEFAULT FALSE,
    gone_since BIGINT,
    updated    BIGINT  NOT NULL,
    PRIMARY KEY (source, stable_id)
);

-- One account per entry: a JID is linked to one stable id at most.
CREATE UNIQUE INDEX ldap_links_jid ON ldap_links (source, jid);

CREATE TABLE ldap_groups (
    source    TEXT COLLATE "C" NOT NULL,
    stable_id TEXT COLLATE "C" NOT NULL,
    dn        TEXT   NOT NULL,
    name      TEXT   NOT NULL,
    members   TEXT[] NOT NULL DEFAULT '{}',
    attrs     BYTEA  NOT NULL,
    PRIMARY KEY (source, stable_id)
);

CREATE TABLE ldap_roster (
    source  TEXT COLLATE "C" NOT NULL,
    owner   TEXT COLLATE "C" NOT NULL,
    contact TEXT COLLATE "C" NOT NULL,
    name    TEXT   NOT NULL DEFAULT '',
    groups  TEXT[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (source, owner, contact)
);

CREATE TABLE ldap_marks (
    source TEXT COLLATE "C" NOT NULL,
    name   TEXT COLLATE "C" NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (source, name)
);

CREATE TABLE ldap_leases (
    source  TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    holder  TEXT   NOT NULL,
    expires BIGINT NOT NULL
);

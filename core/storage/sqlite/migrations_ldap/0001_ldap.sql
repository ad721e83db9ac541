-- Directory sync state (storage.LDAPState), track "ldap" (SQLite).
--
-- source names one configured directory. Times are UTC unix microseconds;
-- gone_since is NULL while the entry is in the directory. JSON arrays are
-- text, checked by json_type.

CREATE TABLE ldap_links (
    source     TEXT    NOT NULL,
    stable_id  TEXT    NOT NULL,
    jid        TEXT    NOT NULL,
    dn         TEXT    NOT NULL,
    attrs      BLOB    NOT NULL,
    disabled   INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    gone_since INTEGER,
    updated    INTEGER NOT NULL,
    PRIMARY KEY (source, stable_id)
) STRICT;

-- One account per entry: a JID is linked to one stable id at most.
CREATE UNIQUE INDEX ldap_links_jid ON ldap_links (source, jid);

CREATE TABLE ldap_groups (
    source    TEXT NOT NULL,
    stable_id TEXT NOT NULL,
    dn        TEXT NOT NULL,
    name      TEXT NOT NULL,
    members   TEXT NOT NULL DEFAULT '[]' CHECK (json_type(members) = 'array'),
    attrs     BLOB NOT NULL,
    PRIMARY KEY (source, stable_id)
) STRICT;

CREATE TABLE ldap_roster (
    source  TEXT NOT NULL,
    owner   TEXT NOT NULL,
    contact TEXT NOT NULL,
    name    TEXT NOT NULL DEFAULT '',
    groups  TEXT NOT NULL DEFAULT '[]' CHECK (json_type(groups) = 'array'),
    PRIMARY KEY (source, owner, contact)
) STRICT, WITHOUT ROWID;

CREATE TABLE ldap_marks (
    source TEXT NOT NULL,
    name   TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (source, name)
) STRICT, WITHOUT ROWID;

CREATE TABLE ldap_leases (
    source  TEXT    NOT NULL PRIMARY KEY,
    holder  TEXT    NOT NULL,
    expires INTEGER NOT NULL
) STRICT;

-- Kontor archive schema, version 1 (SQLite): the "archive" migration track,
-- recorded in schema_migrations_archive.
--
-- Nothing here holds message content in the clear: sealed is AES-256-GCM
-- ciphertext under a data key, and wrapped is a data key encrypted by a
-- key-encryption key that is never stored in the database. What is clear is
-- the metadata that queries and retention need: owner, peer (and resource),
-- time, direction, the end-to-end-encrypted flag, expiry and the key used.
-- Times are UTC unix microseconds; 9223372036854775807 means "forever".

-- One data key per owner, UTC month (YYYYMM) and retention class.
-- AUTOINCREMENT: the ID of a destroyed key is never given to another one.
CREATE TABLE archive_keys (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    owner      TEXT    NOT NULL,
    slice      INTEGER NOT NULL,
    class      TEXT    NOT NULL,
    kek_id     TEXT    NOT NULL,
    wrapped    BLOB    NOT NULL,
    created    INTEGER NOT NULL,
    keep_until INTEGER NOT NULL,
    UNIQUE (owner, slice, class)
) STRICT;

CREATE INDEX archive_keys_keep_until ON archive_keys (keep_until);

-- id is a UUID (16 bytes); the archive's order is the order of the IDs.
CREATE TABLE archive_messages (
    owner     TEXT    NOT NULL,
    id        BLOB    NOT NULL CHECK (length(id) = 16),
    peer      TEXT    NOT NULL,
    peer_res  TEXT    NOT NULL,
    outgoing  INTEGER NOT NULL CHECK (outgoing IN (0, 1)),
    encrypted INTEGER NOT NULL CHECK (encrypted IN (0, 1)),
    ts        INTEGER NOT NULL,
    expires   INTEGER NOT NULL,
    key_id    INTEGER NOT NULL,
    sealed    BLOB    NOT NULL
) STRICT;

-- A page of an owner's archive, and of an owner's conversation with one
-- peer, is a range scan of one of these; purge walks the third.
CREATE UNIQUE INDEX archive_messages_owner_id ON archive_messages (owner, id);
CREATE INDEX archive_messages_owner_peer ON archive_messages (owner, peer, id);
CREATE INDEX archive_messages_expires ON archive_messages (expires);

-- always and never are JSON arrays of bare JIDs.
CREATE TABLE archive_prefs (
    owner        TEXT NOT NULL PRIMARY KEY,
    default_mode TEXT NOT NULL,
    always       TEXT NOT NULL,
    never        TEXT NOT NULL
) STRICT, WITHOUT ROWID;

-- One row per rotation of the key-encryption key; finished is NULL while it
-- runs or after it was interrupted.
CREATE TABLE archive_rotations (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    target    TEXT    NOT NULL,
    started   INTEGER NOT NULL,
    finished  INTEGER,
    rewrapped INTEGER NOT NULL DEFAULT 0
) STRICT;

-- Kontor archive schema, version 1 (PostgreSQL): the "archive" migration
-- track, recorded in schema_migrations_archive.
--
-- Nothing here holds message content in the clear: sealed is AES-256-GCM
-- ciphertext under a data key, and wrapped is a data key encrypted by a
-- key-encryption key that is never stored in the database. What is clear is
-- the metadata that queries and retention need: owner, peer (and resource),
-- time, direction, the end-to-end-encrypted flag, expiry and the key used.
-- Times are UTC unix microseconds; 9223372036854775807 means "forever".
-- JID columns are COLLATE "C" (bytewise, as on SQLite).

-- One data key per owner, UTC month (YYYYMM) and retention class.
CREATE TABLE archive_keys (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slice      INTEGER NOT NULL,
    created    BIGINT  NOT NULL,
    keep_until BIGINT  NOT NULL,
    owner      TEXT COLLATE "C" NOT NULL,
    class      TEXT COLLATE "C" NOT NULL,
    kek_id     TEXT COLLATE "C" NOT NULL,
    wrapped    BYTEA   NOT NULL,
    UNIQUE (owner, slice, class)
);

CREATE INDEX archive_keys_keep_until ON archive_keys (keep_until);

-- Columns in order of alignment, widest first, so rows carry no padding.
-- The archive's order is the order of the IDs (UUIDs compare bytewise).
CREATE TABLE archive_messages (
    ts        BIGINT  NOT NULL,
    expires   BIGINT  NOT NULL,
    key_id    BIGINT  NOT NULL,
    id        UUID    NOT NULL,
    outgoing  BOOLEAN NOT NULL,
    encrypted BOOLEAN NOT NULL,
    owner     TEXT COLLATE "C" NOT NULL,
    peer      TEXT COLLATE "C" NOT NULL,
    peer_res  TEXT COLLATE "C" NOT NULL,
    sealed    BYTEA   NOT NULL,
    PRIMARY KEY (owner, id)
);

-- Ciphertext does not compress: never try.
ALTER TABLE archive_messages ALTER COLUMN sealed SET STORAGE EXTERNAL;

-- A page of an owner's archive, and of an owner's conversation with one
-- peer, is a range scan of the primary key or of this index; purge walks the
-- expiry index.
CREATE INDEX archive_messages_owner_peer ON archive_messages (owner, peer, id);
CREATE INDEX archive_messages_expires ON archive_messages (expires);

CREATE TABLE archive_prefs (
    owner        TEXT COLLATE "C" PRIMARY KEY,
    default_mode TEXT   NOT NULL,
    always       TEXT[] NOT NULL,
    never        TEXT[] NOT NULL
);

-- One row per rotation of the key-encryption key; finished is NULL while it
-- runs or after it was interrupted.
CREATE TABLE archive_rotations (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    target    TEXT   NOT NULL,
    started   BIGINT NOT NULL,
    finished  BIGINT,
    rewrapped BIGINT NOT NULL DEFAULT 0
);

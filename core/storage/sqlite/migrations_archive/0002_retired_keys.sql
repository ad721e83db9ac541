-- Kontor archive schema, version 2 (SQLite).
--
-- A data key kept by an erasure (a legal hold or a retention duty keeps
-- what it sealed) is retired: it belongs to the erased person, not to
-- whoever is given the address next. A retired key still opens what it
-- sealed (rows name their key by ID), but new messages of the same owner,
-- month and class get a new key, and a later erasure of the new account
-- does not see (or shred) it. So the slot is unique among live keys only,
-- which needs the table rebuilt (SQLite cannot drop a table constraint).
-- The AUTOINCREMENT counter moves over, so that the ID of a destroyed key
-- is still never given to another one.
CREATE TABLE archive_keys_v2 (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    owner      TEXT    NOT NULL,
    slice      INTEGER NOT NULL,
    class      TEXT    NOT NULL,
    kek_id     TEXT    NOT NULL,
    wrapped    BLOB    NOT NULL,
    created    INTEGER NOT NULL,
    keep_until INTEGER NOT NULL,
    retired    INTEGER NOT NULL DEFAULT 0 CHECK (retired IN (0, 1))
) STRICT;

INSERT INTO archive_keys_v2 (id, owner, slice, class, kek_id, wrapped, created, keep_until)
    SELECT id, owner, slice, class, kek_id, wrapped, created, keep_until FROM archive_keys;

INSERT INTO sqlite_sequence (name, seq)
    SELECT 'archive_keys_v2', seq FROM sqlite_sequence WHERE name = 'archive_keys'
    AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'archive_keys_v2');
UPDATE sqlite_sequence
    SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'archive_keys'), 0))
    WHERE name = 'archive_keys_v2';

DROP TABLE archive_keys;
ALTER TABLE archive_keys_v2 RENAME TO archive_keys;
CREATE UNIQUE INDEX archive_keys_slot ON archive_keys (owner, slice, class) WHERE retired = 0;
CREATE INDEX archive_keys_keep_until ON archive_keys (keep_until);

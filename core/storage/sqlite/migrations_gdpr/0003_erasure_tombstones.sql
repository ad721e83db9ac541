-- Erasure tombstones (storage.ErasureTombstone), track "gdpr" (SQLite).
--
-- One row per erasure of a person: keyed hashes (HMAC-SHA-256 under a key
-- kept outside the database) of the erased JID and of the directory
-- entry's stable id (empty when the person had none), never the values.
-- Directory sync skips an entry matching an active tombstone; reinstated is
-- set (never the row deleted) when a DPO allows re-creation.

CREATE TABLE erasure_tombstones (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    jid_hash      BLOB    NOT NULL,
    stable_hash   BLOB    NOT NULL,
    job           TEXT    NOT NULL DEFAULT '',
    created       INTEGER NOT NULL,
    reinstated    INTEGER,
    reinstated_by TEXT    NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX erasure_tombstones_jid ON erasure_tombstones (jid_hash);

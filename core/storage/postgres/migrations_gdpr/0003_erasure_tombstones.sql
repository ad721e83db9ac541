-- Erasure tombstones (storage.ErasureTombstone), track "gdpr" (PostgreSQL).
--
-- One row per erasure of a person: keyed hashes (HMAC-SHA-256 under a key
-- kept outside the database) of the erased JID and of the directory
-- entry's stable id (empty when the person had none), never the values.
-- Directory sync skips an entry matching an active tombstone; reinstated is
-- set (never the row deleted) when a DPO allows re-creation.

CREATE TABLE erasure_tombstones (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    jid_hash      BYTEA  NOT NULL,
    stable_hash   BYTEA  NOT NULL,
    job           TEXT   NOT NULL DEFAULT '',
    created       BIGINT NOT NULL,
    reinstated    BIGINT,
    reinstated_by TEXT   NOT NULL DEFAULT ''
);

CREATE INDEX erasure_tombstones_jid ON erasure_tombstones (jid_hash);

-- XEP-0363 upload records (storage.Uploads), track "upload" (PostgreSQL),
-- recorded in schema_migrations_upload.
--
-- One row per slot. name is the file name sealed by the upload module;
-- the content is in the module's encrypted files, never here. Times are
-- UTC unix microseconds, as on SQLite; stored and until are 0 when unset.

CREATE TABLE uploads (
    id           TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    owner        TEXT COLLATE "C" NOT NULL,
    name         BYTEA  NOT NULL,
    size         BIGINT NOT NULL CHECK (size >= 0),
    content_type TEXT   NOT NULL,
    created      BIGINT NOT NULL,
    slot_expires BIGINT NOT NULL,
    stored       BIGINT NOT NULL DEFAULT 0,
    until        BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX uploads_owner ON uploads (owner, created, id);
CREATE INDEX uploads_until ON uploads (until) WHERE stored <> 0 AND until <> 0;
CREATE INDEX uploads_slot ON uploads (slot_expires) WHERE stored = 0;

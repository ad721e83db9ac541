-- XEP-0363 upload records (storage.Uploads), track "upload" (SQLite),
-- recorded in schema_migrations_upload.
--
-- One row per slot. name is the file name sealed by the upload module;
-- the content is in the module's encrypted files, never here. Times are
-- UTC unix microseconds; stored and until are 0 when unset.

CREATE TABLE uploads (
    id           TEXT    NOT NULL PRIMARY KEY,
    owner        TEXT    NOT NULL,
    name         BLOB    NOT NULL,
    size         INTEGER NOT NULL CHECK (size >= 0),
    content_type TEXT    NOT NULL,
    created      INTEGER NOT NULL,
    slot_expires INTEGER NOT NULL,
    stored       INTEGER NOT NULL DEFAULT 0,
    until        INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX uploads_owner ON uploads (owner, created, id);
CREATE INDEX uploads_until ON uploads (until) WHERE stored <> 0 AND until <> 0;
CREATE INDEX uploads_slot ON uploads (slot_expires) WHERE stored = 0;

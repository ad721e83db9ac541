-- Legal holds and restrictions (storage.GDPRStore), track "gdpr" (SQLite),
-- recorded in schema_migrations_gdpr.
--
-- legal_holds: one row per hold, never deleted; released is NULL while the
-- hold is active. restrictions: what an erasure had to keep (GDPR Art. 18),
-- per subject and category; until is 0 for "while the hold lasts".

CREATE TABLE legal_holds (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    subject     TEXT    NOT NULL,
    case_ref    TEXT    NOT NULL,
    reason      TEXT    NOT NULL DEFAULT '',
    created_by  TEXT    NOT NULL,
    created     INTEGER NOT NULL,
    released    INTEGER,
    released_by TEXT    NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX legal_holds_subject ON legal_holds (subject, id);

CREATE TABLE restrictions (
    subject  TEXT    NOT NULL,
    category TEXT    NOT NULL,
    until_at INTEGER NOT NULL,
    case_ref TEXT    NOT NULL DEFAULT '',
    reason   TEXT    NOT NULL DEFAULT '',
    created  INTEGER NOT NULL,
    PRIMARY KEY (subject, category)
) STRICT, WITHOUT ROWID;

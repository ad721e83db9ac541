-- Legal holds and restrictions (storage.GDPRStore), track "gdpr"
-- (PostgreSQL), recorded in schema_migrations_gdpr.
--
-- legal_holds: one row per hold, never deleted; released is NULL while the
-- hold is active. restrictions: what an erasure had to keep (GDPR Art. 18),
-- per subject and category; until is 0 for "while the hold lasts". Times
-- are UTC unix microseconds, as everywhere.

CREATE TABLE legal_holds (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject     TEXT COLLATE "C" NOT NULL,
    case_ref    TEXT   NOT NULL,
    reason      TEXT   NOT NULL DEFAULT '',
    created_by  TEXT   NOT NULL,
    created     BIGINT NOT NULL,
    released    BIGINT,
    released_by TEXT   NOT NULL DEFAULT ''
);

CREATE INDEX legal_holds_subject ON legal_holds (subject, id);

CREATE TABLE restrictions (
    subject  TEXT COLLATE "C" NOT NULL,
    category TEXT COLLATE "C" NOT NULL,
    until_at BIGINT NOT NULL,
    case_ref TEXT   NOT NULL DEFAULT '',
    reason   TEXT   NOT NULL DEFAULT '',
    created  BIGINT NOT NULL,
    PRIMARY KEY (subject, category)
);

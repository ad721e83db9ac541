-- Kontor audit trail, version 1 (SQLite).
--
-- One row per entry, appended in seq order by a single writer (BEGIN
-- IMMEDIATE), never updated or deleted. seq is the rowid. Times are UTC unix
-- microseconds. details is a JSON object of strings ('{}' when empty).
-- prev_hash is UNIQUE: two entries cannot follow the same one, so even a bug
-- in the locking could not fork the chain.
CREATE TABLE audit_log (
    seq             INTEGER PRIMARY KEY CHECK (seq > 0),
    at              INTEGER NOT NULL,
    actor           TEXT    NOT NULL,
    action          TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    reason          TEXT    NOT NULL,
    policy_revision TEXT    NOT NULL,
    details         TEXT    NOT NULL,
    prev_hash       BLOB    NOT NULL UNIQUE CHECK (length(prev_hash) = 32),
    hash            BLOB    NOT NULL CHECK (length(hash) = 32)
) STRICT;

-- Queries filter by one of these and page by seq.
CREATE INDEX audit_log_actor ON audit_log (actor, seq);
CREATE INDEX audit_log_subject ON audit_log (subject, seq);
CREATE INDEX audit_log_action ON audit_log (action, seq);
CREATE INDEX audit_log_at ON audit_log (at);

-- Append-only. These stop mistakes in Kontor's own code; someone who can
-- drop them is caught by the hash chain instead (core/audit).
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

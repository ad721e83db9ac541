-- Kontor audit trail, version 1 (PostgreSQL).
--
-- One row per entry, appended in seq order under a transaction advisory
-- lock (lockAuditLog in audit.go), never updated or deleted. Times are UTC
-- unix microseconds, as on SQLite. actor, action and subject are COLLATE "C":
-- exact matches and the dotted prefix ranges of action compare bytes, as on
-- SQLite. details is a JSON object of strings ('{}' when empty), kept as text
-- so that it reads back byte for byte. prev_hash is UNIQUE: two entries
-- cannot follow the same one, so even a bug in the locking could not fork
-- the chain.
CREATE TABLE audit_log (
    seq             BIGINT PRIMARY KEY CHECK (seq > 0),
    at              BIGINT NOT NULL,
    actor           TEXT COLLATE "C" NOT NULL,
    action          TEXT COLLATE "C" NOT NULL,
    subject         TEXT COLLATE "C" NOT NULL,
    reason          TEXT   NOT NULL,
    policy_revision TEXT   NOT NULL,
    details         TEXT   NOT NULL,
    prev_hash       BYTEA  NOT NULL UNIQUE CHECK (octet_length(prev_hash) = 32),
    hash            BYTEA  NOT NULL CHECK (octet_length(hash) = 32)
);

-- Queries filter by one of these and page by seq.
CREATE INDEX audit_log_actor ON audit_log (actor, seq);
CREATE INDEX audit_log_subject ON audit_log (subject, seq);
CREATE INDEX audit_log_action ON audit_log (action, seq);
CREATE INDEX audit_log_at ON audit_log (at);

-- Append-only. These stop mistakes in Kontor's own code; someone who can
-- disable them (the table's owner) is caught by the hash chain instead
-- (core/audit).
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END
$$;

CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

package postgres

// The audit trail's table (storage.AuditStore), in a migration track of its
// own ("audit", migrations_audit/). Every append takes the transaction
// advisory lock lockAuditLog before it reads the head and holds it until it
// commits, so appends from every connection of every server on the database
// are serialised, commit in seq order (a reader never sees seq N+1 without
// N), and the chain never forks. An advisory lock rather than SELECT ... FOR
// UPDATE of the newest row: the empty trail has no row to lock.

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"kontor.im/kontor/core/storage"
)

//go:embed migrations_audit/*.sql
var auditFiles embed.FS

func init() {
	schemas = append(schemas, schema{track: "audit", files: auditFiles, dir: "migrations_audit"})
}

// lockAuditLog is the advisory lock class of audit appends (see the lock
// classes in postgres.go; "Kn" and "audit" in hex-speak). It is taken alone:
// no other lock is held with it.
const lockAuditLog int32 = 0x4B6E0AD1

var _ storage.AuditStore = (*Store)(nil)

const auditColumns = `seq, at, actor, action, subject, reason, policy_revision, details, prev_hash, hash`

// AppendAudit appends one record under the audit advisory lock.
func (s *Store) AppendAudit(ctx context.Context, seal func(storage.AuditHead) (storage.AuditRecord, error)) (storage.AuditRecord, error) {
	var rec storage.AuditRecord
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, 0)`, lockAuditLog); err != nil {
			return err
		}
		head, err := auditHead(ctx, tx)
		if err != nil {
			return err
		}
		if rec, err = seal(head); err != nil {
			return err
		}
		if rec.Seq != head.Seq+1 {
			return fmt.Errorf("seal returned seq %d after head %d", rec.Seq, head.Seq)
		}
		details, err := encodeDetails(rec.Details)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO audit_log (`+auditColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			rec.Seq, micros(rec.At), rec.Actor, rec.Action, rec.Subject, rec.Reason,
			rec.PolicyRevision, details, nonNil(rec.PrevHash), nonNil(rec.Hash))
		return err
	})
	if err != nil {
		return storage.AuditRecord{}, fmt.Errorf("postgres: append audit entry: %w", err)
	}
	rec.At = fromMicros(micros(rec.At))
	return rec, nil
}

type queryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func auditHead(ctx context.Context, q queryRower) (storage.AuditHead, error) {
	var (
		h  storage.AuditHead
		at int64
	)
	err := q.QueryRow(ctx, `SELECT seq, at, hash FROM audit_log ORDER BY seq DESC LIMIT 1`).Scan(&h.Seq, &at, &h.Hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.AuditHead{}, nil
	}
	if err != nil {
		return storage.AuditHead{}, err
	}
	h.At = fromMicros(at)
	return h, nil
}

// AuditHead returns the newest entry's head.
func (s *Store) AuditHead(ctx context.Context) (storage.AuditHead, error) {
	h, err := auditHead(ctx, s.pool)
	if err != nil {
		return storage.AuditHead{}, fmt.Errorf("postgres: audit head: %w", err)
	}
	return h, nil
}

// AuditRecords returns the records q selects, oldest first.
func (s *Store) AuditRecords(ctx context.Context, q storage.AuditQuery) ([]storage.AuditRecord, error) {
	if err := storage.CheckAuditQuery(q); err != nil {
		return nil, err
	}
	where, args := auditWhere(q)
	order := "ASC"
	if q.Newest {
		order = "DESC"
	}
	args = append(args, q.Limit)
	query := `SELECT ` + auditColumns + ` FROM audit_log` + where +
		` ORDER BY seq ` + order + ` LIMIT $` + strconv.Itoa(len(args))
	recs, err := s.queryAudit(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: audit records: %w", err)
	}
	if q.Newest {
		slices.Reverse(recs)
	}
	return recs, nil
}

// AuditSuccessor returns the record that follows prevHash.
func (s *Store) AuditSuccessor(ctx context.Context, prevHash []byte) (storage.AuditRecord, error) {
	recs, err := s.queryAudit(ctx, `SELECT `+auditColumns+` FROM audit_log WHERE prev_hash = $1`, nonNil(prevHash))
	if err != nil {
		return storage.AuditRecord{}, fmt.Errorf("postgres: audit successor: %w", err)
	}
	if len(recs) == 0 {
		return storage.AuditRecord{}, fmt.Errorf("postgres: audit successor: %w", storage.ErrNotFound)
	}
	return recs[0], nil
}

func (s *Store) queryAudit(ctx context.Context, query string, args ...any) ([]storage.AuditRecord, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var recs []storage.AuditRecord
	for rows.Next() {
		var (
			r       storage.AuditRecord
			at      int64
			details string
		)
		if err := rows.Scan(&r.Seq, &at, &r.Actor, &r.Action, &r.Subject, &r.Reason,
			&r.PolicyRevision, &details, &r.PrevHash, &r.Hash); err != nil {
			return nil, err
		}
		r.At = fromMicros(at)
		if r.Details, err = decodeDetails(details); err != nil {
			return nil, &storage.AuditCorruptError{Seq: r.Seq, Err: err}
		}
		recs = append(recs, r)
	}
	return recs, rows.Err()
}

// auditWhere builds the WHERE clause of q with $n placeholders.
func auditWhere(q storage.AuditQuery) (string, []any) {
	var (
		conds []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if q.Actor != "" {
		conds = append(conds, "actor = "+arg(q.Actor))
	}
	if q.Subject != "" {
		conds = append(conds, "subject = "+arg(q.Subject))
	}
	if q.Action != "" {
		// "a" and the range ["a.", "a/"): '/' is the byte after '.', and
		// the column compares bytes (COLLATE "C").
		conds = append(conds, "(action = "+arg(q.Action)+" OR (action >= "+arg(q.Action+".")+" AND action < "+arg(q.Action+"/")+"))")
	}
	if !q.Since.IsZero() {
		conds = append(conds, "at >= "+arg(micros(q.Since)))
	}
	if !q.Until.IsZero() {
		conds = append(conds, "at < "+arg(micros(q.Until)))
	}
	if q.After > 0 {
		conds = append(conds, "seq > "+arg(q.After))
	}
	if q.Before > 0 {
		conds = append(conds, "seq < "+arg(q.Before))
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// encodeDetails stores details as a JSON object; encoding/json writes the
// keys sorted.
func encodeDetails(d map[string]string) (string, error) {
	if len(d) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(d)
	return string(b), err
}

func decodeDetails(s string) (map[string]string, error) {
	var d map[string]string
	if err := json.Unmarshal([]byte(s), &d); err != nil {
		return nil, fmt.Errorf("details: %w", err)
	}
	if d == nil { // "null"
		return nil, errors.New("details: not a JSON object")
	}
	if len(d) == 0 {
		return nil, nil
	}
	return d, nil
}

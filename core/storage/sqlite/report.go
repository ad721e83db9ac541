package sqlite

import (
	"context"
	"fmt"
	"time"

	"kontor.im/kontor/core/storage"
)

var _ storage.ReportStore = (*Store)(nil)

// ArchiveSliceStats aggregates per data key first (one pass over
// archive_messages, with length() read from the record header, not the
// blob), then per class and slice.
func (s *Store) ArchiveSliceStats(ctx context.Context, now time.Time) ([]storage.ArchiveSliceStat, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT k.class, k.slice, sum(m.n), sum(m.b), min(m.oldest), sum(m.due)
		FROM (SELECT key_id, count(*) AS n, sum(length(sealed)) AS b, min(ts) AS oldest,
		             sum(expires <= $1) AS due
		      FROM archive_messages GROUP BY key_id) m
		JOIN archive_keys k ON k.id = m.key_id
		GROUP BY k.class, k.slice ORDER BY k.class, k.slice`, archiveMicros(now))
	if err != nil {
		return nil, fmt.Errorf("sqlite: archive slice stats: %w", err)
	}
	defer rows.Close()
	var out []storage.ArchiveSliceStat
	for rows.Next() {
		var st storage.ArchiveSliceStat
		var oldest int64
		if err := rows.Scan(&st.Class, &st.Slice, &st.Messages, &st.Bytes, &oldest, &st.PastDue); err != nil {
			return nil, fmt.Errorf("sqlite: archive slice stats: %w", err)
		}
		st.Oldest = fromMicros(oldest)
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: archive slice stats: %w", err)
	}
	return out, nil
}

// AuditCounts groups audit records with the audit_log_action index for the
// prefix and json_extract for the detail.
func (s *Store) AuditCounts(ctx context.Context, action, detail string, since, until time.Time) ([]storage.AuditCount, error) {
	lo, hi := int64(0), int64(1<<63-1)
	if !since.IsZero() {
		lo = micros(since)
	}
	if !until.IsZero() {
		hi = micros(until)
	}
	detailExpr := `''`
	args := []any{action, action + ".", action + "/", lo, hi}
	if detail != "" {
		detailExpr = `coalesce(json_extract(details, $6), '')`
		args = append(args, `$."`+detail+`"`)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT action, actor, reason, `+detailExpr+` AS d, count(*), min(at), max(at)
		FROM audit_log
		WHERE ($1 = '' OR action = $1 OR (action >= $2 AND action < $3)) AND at >= $4 AND at < $5
		GROUP BY action, actor, reason, d ORDER BY action, actor, reason, d`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit counts: %w", err)
	}
	defer rows.Close()
	var out []storage.AuditCount
	for rows.Next() {
		var c storage.AuditCount
		var first, last int64
		if err := rows.Scan(&c.Action, &c.Actor, &c.Reason, &c.Detail, &c.Count, &first, &last); err != nil {
			return nil, fmt.Errorf("sqlite: audit counts: %w", err)
		}
		c.First, c.Last = fromMicros(first), fromMicros(last)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: audit counts: %w", err)
	}
	return out, nil
}

package postgres

import (
	"context"
	"fmt"
	"time"

	"kontor.im/kontor/core/storage"
)

var _ storage.ReportStore = (*Store)(nil)

// ArchiveSliceStats aggregates per data key first (one pass over
// archive_messages; octet_length of an uncompressed TOAST value is read
// from its pointer, not fetched), then per class and slice.
func (s *Store) ArchiveSliceStats(ctx context.Context, now time.Time) ([]storage.ArchiveSliceStat, error) {
	rows, err := s.pool.Query(ctx, `SELECT k.class, k.slice, sum(m.n)::bigint, sum(m.b)::bigint, min(m.oldest), sum(m.due)::bigint
		FROM (SELECT key_id, count(*) AS n, sum(octet_length(sealed)) AS b, min(ts) AS oldest,
		             count(*) FILTER (WHERE expires <= $1) AS due
		      FROM archive_messages GROUP BY key_id) m
		JOIN archive_keys k ON k.id = m.key_id
		GROUP BY k.class, k.slice ORDER BY k.class, k.slice`, micros(now))
	if err != nil {
		return nil, fmt.Errorf("postgres: archive slice stats: %w", err)
	}
	defer rows.Close()
	var out []storage.ArchiveSliceStat
	for rows.Next() {
		var st storage.ArchiveSliceStat
		var oldest int64
		if err := rows.Scan(&st.Class, &st.Slice, &st.Messages, &st.Bytes, &oldest, &st.PastDue); err != nil {
			return nil, fmt.Errorf("postgres: archive slice stats: %w", err)
		}
		st.Oldest = fromMicros(oldest)
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: archive slice stats: %w", err)
	}
	return out, nil
}

// AuditCounts groups audit records; the detail is read from the details
// column as jsonb.
func (s *Store) AuditCounts(ctx context.Context, action, detail string, since, until time.Time) ([]storage.AuditCount, error) {
	lo, hi := int64(0), int64(1<<63-1)
	if !since.IsZero() {
		lo = micros(since)
	}
	if !until.IsZero() {
		hi = micros(until)
	}
	detailExpr := `''::text`
	args := []any{action, action + ".", action + "/", lo, hi}
	if detail != "" {
		detailExpr = `coalesce(details::jsonb ->> $6::text, '')`
		args = append(args, detail)
	}
	rows, err := s.pool.Query(ctx, `SELECT action, actor, reason, `+detailExpr+` AS d, count(*), min(at), max(at)
		FROM audit_log
		WHERE ($1::text = '' OR action = $1::text OR (action >= $2::text AND action < $3::text)) AND at >= $4 AND at < $5
		GROUP BY action, actor, reason, d ORDER BY action, actor, reason, d`, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: audit counts: %w", err)
	}
	defer rows.Close()
	var out []storage.AuditCount
	for rows.Next() {
		var c storage.AuditCount
		var first, last int64
		if err := rows.Scan(&c.Action, &c.Actor, &c.Reason, &c.Detail, &c.Count, &first, &last); err != nil {
			return nil, fmt.Errorf("postgres: audit counts: %w", err)
		}
		c.First, c.Last = fromMicros(first), fromMicros(last)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: audit counts: %w", err)
	}
	return out, nil
}

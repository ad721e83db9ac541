package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"kontor.im/kontor/core/storage"
)

// The archive's tables are a migration track of their own (see schema.go).

//go:embed migrations_archive/*.sql
var archiveMigrations embed.FS

func init() {
	schemas = append(schemas, schema{track: "archive", files: archiveMigrations, dir: "migrations_archive"})
}

var _ storage.ArchiveStore = (*Store)(nil)

// archiveChunk is how many rows one multi-row statement carries: ten
// columns each stays far below SQLite's limit of 32766 parameters.
const archiveChunk = 200

// archiveMicros stores a time; ArchiveForever and zero times map to the ends
// of the int64 range.
func archiveMicros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	if !t.Before(storage.ArchiveForever) {
		return math.MaxInt64
	}
	return t.UnixMicro()
}

func archiveTime(us int64) time.Time {
	if us == math.MaxInt64 {
		return storage.ArchiveForever
	}
	return fromMicros(us)
}

func archiveBit(b bool) int {
	if b {
		return 1
	}
	return 0
}

// placeholders returns "($n,...,$m),(...)" for rows of cols parameters
// starting at $1.
func archivePlaceholders(rows, cols int) string {
	var b strings.Builder
	n := 1
	for r := range rows {
		if r > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for c := range cols {
			if c > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			n++
		}
		b.WriteByte(')')
	}
	return b.String()
}

// list returns "$from,...,$(from+n-1)".
func archiveParams(from, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(from + i))
	}
	return b.String()
}

const archiveKeyColumns = `id, owner, slice, class, kek_id, wrapped, created, keep_until, retired`

func scanArchiveKeys(rows *sql.Rows) ([]storage.ArchiveKey, error) {
	defer rows.Close()
	var out []storage.ArchiveKey
	for rows.Next() {
		var k storage.ArchiveKey
		var created, keep int64
		if err := rows.Scan(&k.ID, &k.Owner, &k.Slice, &k.Class, &k.KEKID, &k.Wrapped, &created, &keep, &k.Retired); err != nil {
			return nil, err
		}
		k.Created, k.KeepUntil = fromMicros(created), archiveTime(keep)
		out = append(out, k)
	}
	return out, rows.Err()
}

// ArchiveKeys returns the keys of these slots that exist.
func (s *Store) ArchiveKeys(ctx context.Context, slots []storage.ArchiveKeySlot) ([]storage.ArchiveKey, error) {
	var out []storage.ArchiveKey
	for len(slots) > 0 {
		n := min(len(slots), archiveChunk)
		args := make([]any, 0, 3*n)
		for _, sl := range slots[:n] {
			args = append(args, sl.Owner, sl.Slice, sl.Class)
		}
		rows, err := s.r.QueryContext(ctx, `SELECT `+archiveKeyColumns+` FROM archive_keys
			WHERE retired = 0 AND (owner, slice, class) IN (VALUES `+archivePlaceholders(n, 3)+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("sqlite: archive keys: %w", err)
		}
		keys, err := scanArchiveKeys(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: archive keys: %w", err)
		}
		out = append(out, keys...)
		slots = slots[n:]
	}
	return out, nil
}

// ArchiveKeysByID returns the keys with these IDs that exist.
func (s *Store) ArchiveKeysByID(ctx context.Context, ids []int64) ([]storage.ArchiveKey, error) {
	var out []storage.ArchiveKey
	for len(ids) > 0 {
		n := min(len(ids), 500)
		args := make([]any, n)
		for i, id := range ids[:n] {
			args[i] = id
		}
		rows, err := s.r.QueryContext(ctx, `SELECT `+archiveKeyColumns+` FROM archive_keys
			WHERE id IN (`+archiveParams(1, n)+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("sqlite: archive keys: %w", err)
		}
		keys, err := scanArchiveKeys(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: archive keys: %w", err)
		}
		out = append(out, keys...)
		ids = ids[n:]
	}
	return out, nil
}

// CreateArchiveKeys inserts keys; slots that have one already are skipped.
func (s *Store) CreateArchiveKeys(ctx context.Context, keys []storage.ArchiveKey) error {
	if len(keys) == 0 {
		return nil
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		for rest := keys; len(rest) > 0; {
			n := min(len(rest), archiveChunk)
			args := make([]any, 0, 7*n)
			for _, k := range rest[:n] {
				created := k.Created
				if created.IsZero() {
					created = time.Now()
				}
				args = append(args, k.Owner, k.Slice, k.Class, k.KEKID, nonNil(k.Wrapped), micros(created), archiveMicros(k.KeepUntil))
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO archive_keys (owner, slice, class, kek_id, wrapped, created, keep_until)
				VALUES `+archivePlaceholders(n, 7)+` ON CONFLICT (owner, slice, class) WHERE retired = 0 DO NOTHING`, args...); err != nil {
				return err
			}
			rest = rest[n:]
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: create archive keys: %w", err)
	}
	return nil
}

// AppendArchive stores messages with multi-row INSERTs in one transaction.
func (s *Store) AppendArchive(ctx context.Context, rows []storage.ArchiveRow, keep []storage.ArchiveKeepUntil) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		for _, k := range keep {
			res, err := tx.ExecContext(ctx, `UPDATE archive_keys SET keep_until = max(keep_until, $2) WHERE id = $1`,
				k.KeyID, archiveMicros(k.KeepUntil))
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				return fmt.Errorf("archive key %d: %w", k.KeyID, storage.ErrNotFound)
			}
		}
		for rest := rows; len(rest) > 0; {
			n := min(len(rest), archiveChunk)
			args := make([]any, 0, 10*n)
			for _, r := range rest[:n] {
				args = append(args, r.Owner, r.ID[:], r.Peer, r.PeerResource, archiveBit(r.Outgoing), archiveBit(r.Encrypted),
					micros(r.Time), archiveMicros(r.Expires), r.KeyID, nonNil(r.Sealed))
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO archive_messages
				(owner, id, peer, peer_res, outgoing, encrypted, ts, expires, key_id, sealed)
				VALUES `+archivePlaceholders(n, 10)+` ON CONFLICT (owner, id) DO NOTHING`, args...); err != nil {
				return err
			}
			rest = rest[n:]
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: append archive: %w", err)
	}
	return nil
}

// archiveWhere builds the WHERE clause and arguments of q.
func archiveWhere(q storage.ArchiveRowQuery) (string, []any) {
	var b strings.Builder
	args := []any{q.Owner, q.MinID[:], q.MaxID[:]}
	b.WriteString(`owner = $1 AND id >= $2 AND id <= $3`)
	if q.Peer != "" {
		args = append(args, q.Peer)
		b.WriteString(` AND peer = $` + strconv.Itoa(len(args)))
		if q.PeerResource != "" {
			args = append(args, q.PeerResource)
			b.WriteString(` AND peer_res = $` + strconv.Itoa(len(args)))
		}
	}
	if !q.Start.IsZero() {
		args = append(args, micros(q.Start))
		b.WriteString(` AND ts >= $` + strconv.Itoa(len(args)))
	}
	if !q.End.IsZero() {
		args = append(args, micros(q.End))
		b.WriteString(` AND ts <= $` + strconv.Itoa(len(args)))
	}
	if !q.IncludeRestricted {
		b.WriteString(` AND restricted = 0`)
	}
	if q.IDs != nil {
		if len(q.IDs) == 0 {
			b.WriteString(` AND 0`)
		} else {
			b.WriteString(` AND id IN (` + archiveParams(len(args)+1, len(q.IDs)) + `)`)
			for _, id := range q.IDs {
				args = append(args, id[:])
			}
		}
	}
	return b.String(), args
}

// QueryArchive returns up to q.Limit of an owner's messages in ID order.
func (s *Store) QueryArchive(ctx context.Context, q storage.ArchiveRowQuery) ([]storage.ArchiveRow, error) {
	where, args := archiveWhere(q)
	order := "ASC"
	if q.Backward {
		order = "DESC"
	}
	args = append(args, q.Limit)
	rows, err := s.r.QueryContext(ctx, `SELECT id, peer, peer_res, outgoing, encrypted, ts, expires, key_id, sealed, restricted
		FROM archive_messages WHERE `+where+` ORDER BY id `+order+` LIMIT $`+strconv.Itoa(len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: query archive: %w", err)
	}
	defer rows.Close()
	var out []storage.ArchiveRow
	for rows.Next() {
		r := storage.ArchiveRow{Owner: q.Owner}
		var id []byte
		var outgoing, encrypted, restricted int
		var ts, expires int64
		if err := rows.Scan(&id, &r.Peer, &r.PeerResource, &outgoing, &encrypted, &ts, &expires, &r.KeyID, &r.Sealed, &restricted); err != nil {
			return nil, fmt.Errorf("sqlite: query archive: %w", err)
		}
		copy(r.ID[:], id)
		r.Outgoing, r.Encrypted, r.Restricted = outgoing == 1, encrypted == 1, restricted == 1
		r.Time, r.Expires = fromMicros(ts), archiveTime(expires)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: query archive: %w", err)
	}
	return out, nil
}

// QueryArchiveCounted is QueryArchive and CountArchive: SQLite runs in
// the process, so a second statement costs no round trip.
func (s *Store) QueryArchiveCounted(ctx context.Context, page, count storage.ArchiveRowQuery, limit int) ([]storage.ArchiveRow, int, error) {
	rows, err := s.QueryArchive(ctx, page)
	if err != nil {
		return nil, 0, err
	}
	n, err := s.CountArchive(ctx, count, limit)
	if err != nil {
		return nil, 0, err
	}
	return rows, n, nil
}

// CountArchive counts up to limit matching messages.
func (s *Store) CountArchive(ctx context.Context, q storage.ArchiveRowQuery, limit int) (int, error) {
	where, args := archiveWhere(q)
	args = append(args, limit)
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM archive_messages WHERE `+where+
		` LIMIT $`+strconv.Itoa(len(args))+`)`, args...).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("sqlite: count archive: %w", err)
	}
	return n, nil
}

// ArchivePrefs returns the owner's preferences, ErrNotFound if none.
func (s *Store) ArchivePrefs(ctx context.Context, owner string) (storage.ArchivePrefs, error) {
	var p storage.ArchivePrefs
	var always, never string
	err := s.r.QueryRowContext(ctx, `SELECT default_mode, always, never FROM archive_prefs WHERE owner = $1`, owner).
		Scan(&p.Default, &always, &never)
	if errors.Is(err, sql.ErrNoRows) {
		return p, storage.ErrNotFound
	}
	if err == nil {
		err = errors.Join(json.Unmarshal([]byte(always), &p.Always), json.Unmarshal([]byte(never), &p.Never))
	}
	if err != nil {
		return storage.ArchivePrefs{}, fmt.Errorf("sqlite: archive prefs: %w", err)
	}
	if len(p.Always) == 0 {
		p.Always = nil
	}
	if len(p.Never) == 0 {
		p.Never = nil
	}
	return p, nil
}

// SetArchivePrefs replaces the owner's preferences.
func (s *Store) SetArchivePrefs(ctx context.Context, owner string, p storage.ArchivePrefs) error {
	always, err := json.Marshal(archiveStrings(p.Always))
	if err != nil {
		return fmt.Errorf("sqlite: set archive prefs: %w", err)
	}
	never, err := json.Marshal(archiveStrings(p.Never))
	if err != nil {
		return fmt.Errorf("sqlite: set archive prefs: %w", err)
	}
	if _, err := s.w.ExecContext(ctx, `INSERT INTO archive_prefs (owner, default_mode, always, never) VALUES ($1, $2, $3, $4)
		ON CONFLICT (owner) DO UPDATE SET default_mode = excluded.default_mode, always = excluded.always, never = excluded.never`,
		owner, p.Default, string(always), string(never)); err != nil {
		return fmt.Errorf("sqlite: set archive prefs: %w", err)
	}
	return nil
}

func archiveStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ExpiredArchive returns up to limit expired messages, oldest expiry first.
func (s *Store) ExpiredArchive(ctx context.Context, now time.Time, skip []string, limit int) ([]storage.ArchiveRef, error) {
	args := []any{micros(now)}
	cond := ""
	if len(skip) > 0 {
		cond = ` AND owner NOT IN (` + archiveParams(2, len(skip)) + `)`
		for _, o := range skip {
			args = append(args, o)
		}
	}
	args = append(args, limit)
	rows, err := s.r.QueryContext(ctx, `SELECT owner, id, key_id FROM archive_messages
		WHERE expires <= $1`+cond+` ORDER BY expires LIMIT $`+strconv.Itoa(len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: expired archive: %w", err)
	}
	defer rows.Close()
	var out []storage.ArchiveRef
	for rows.Next() {
		var r storage.ArchiveRef
		var id []byte
		if err := rows.Scan(&r.Owner, &id, &r.KeyID); err != nil {
			return nil, fmt.Errorf("sqlite: expired archive: %w", err)
		}
		copy(r.ID[:], id)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: expired archive: %w", err)
	}
	return out, nil
}

// DeleteArchive deletes these messages in one transaction.
func (s *Store) DeleteArchive(ctx context.Context, refs []storage.ArchiveRef) (int, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `DELETE FROM archive_messages WHERE owner = $1 AND id = $2`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, r := range refs {
			res, err := st.ExecContext(ctx, r.Owner, r.ID[:])
			if err != nil {
				return err
			}
			c, err := res.RowsAffected()
			if err != nil {
				return err
			}
			n += c
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete archive: %w", err)
	}
	return int(n), nil
}

// ExpiredArchiveKeys returns keys whose messages have all expired.
func (s *Store) ExpiredArchiveKeys(ctx context.Context, now time.Time, after int64, limit int) ([]storage.ArchiveKey, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+archiveKeyColumns+` FROM archive_keys
		WHERE keep_until <= $1 AND id > $2 ORDER BY id LIMIT $3`, micros(now), after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: expired archive keys: %w", err)
	}
	keys, err := scanArchiveKeys(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: expired archive keys: %w", err)
	}
	return keys, nil
}

// DestroyArchiveKeys deletes the keys no message uses any more.
func (s *Store) DestroyArchiveKeys(ctx context.Context, keys []storage.ArchiveKeyRange) ([]int64, error) {
	var gone []int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `DELETE FROM archive_keys WHERE id = $1 AND owner = $2 AND NOT EXISTS (
			SELECT 1 FROM archive_messages WHERE owner = $2 AND id >= $3 AND id <= $4 AND key_id = $1)`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, k := range keys {
			res, err := st.ExecContext(ctx, k.KeyID, k.Owner, k.MinID[:], k.MaxID[:])
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 1 {
				gone = append(gone, k.KeyID)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: destroy archive keys: %w", err)
	}
	return gone, nil
}

// ArchiveKeysNotUnder returns keys not wrapped by kekID, in ID order.
func (s *Store) ArchiveKeysNotUnder(ctx context.Context, kekID string, after int64, limit int) ([]storage.ArchiveKey, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+archiveKeyColumns+` FROM archive_keys
		WHERE kek_id <> $1 AND id > $2 ORDER BY id LIMIT $3`, kekID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: archive keys not under: %w", err)
	}
	keys, err := scanArchiveKeys(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: archive keys not under: %w", err)
	}
	return keys, nil
}

// RewrapArchiveKeys replaces wrapped keys (compare-and-swap on the KEK) and
// counts them in the latest rotation, in one transaction.
func (s *Store) RewrapArchiveKeys(ctx context.Context, rw []storage.ArchiveKeyRewrap) (int, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `UPDATE archive_keys SET kek_id = $1, wrapped = $2 WHERE id = $3 AND kek_id = $4`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, r := range rw {
			res, err := st.ExecContext(ctx, r.NewKEKID, nonNil(r.Wrapped), r.ID, r.OldKEKID)
			if err != nil {
				return err
			}
			c, err := res.RowsAffected()
			if err != nil {
				return err
			}
			n += c
		}
		_, err = tx.ExecContext(ctx, `UPDATE archive_rotations SET rewrapped = rewrapped + $1
			WHERE id = (SELECT MAX(id) FROM archive_rotations)`, n)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: rewrap archive keys: %w", err)
	}
	return int(n), nil
}

// ArchiveKeyCounts returns how many keys each KEK wraps.
func (s *Store) ArchiveKeyCounts(ctx context.Context) (map[string]int64, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT kek_id, COUNT(*) FROM archive_keys GROUP BY kek_id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: archive key counts: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var id string
		var n int64
		if err := rows.Scan(&id, &n); err != nil {
			return nil, fmt.Errorf("sqlite: archive key counts: %w", err)
		}
		out[id] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: archive key counts: %w", err)
	}
	return out, nil
}

func archiveLatestRotation(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (storage.ArchiveRotation, error) {
	var r storage.ArchiveRotation
	var started int64
	var finished sql.NullInt64
	err := q.QueryRowContext(ctx, `SELECT target, started, finished, rewrapped FROM archive_rotations
		ORDER BY id DESC LIMIT 1`).Scan(&r.Target, &started, &finished, &r.Rewrapped)
	if errors.Is(err, sql.ErrNoRows) {
		return r, storage.ErrNotFound
	}
	if err != nil {
		return r, err
	}
	r.Started = fromMicros(started)
	if finished.Valid {
		r.Finished = fromMicros(finished.Int64)
	}
	return r, nil
}

// StartArchiveRotation records a rotation to target, or returns the
// unfinished one to the same target.
func (s *Store) StartArchiveRotation(ctx context.Context, target string, at time.Time) (storage.ArchiveRotation, error) {
	var out storage.ArchiveRotation
	err := s.write(ctx, func(tx *sql.Tx) error {
		r, err := archiveLatestRotation(ctx, tx)
		if err == nil && r.Finished.IsZero() && r.Target == target {
			out = r
			return nil
		}
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO archive_rotations (target, started) VALUES ($1, $2)`,
			target, micros(at)); err != nil {
			return err
		}
		out = storage.ArchiveRotation{Target: target, Started: fromMicros(micros(at))}
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("sqlite: start archive rotation: %w", err)
	}
	return out, nil
}

// FinishArchiveRotation marks the latest rotation finished.
func (s *Store) FinishArchiveRotation(ctx context.Context, at time.Time) error {
	if _, err := s.w.ExecContext(ctx, `UPDATE archive_rotations SET finished = $1
		WHERE id = (SELECT MAX(id) FROM archive_rotations) AND finished IS NULL`, micros(at)); err != nil {
		return fmt.Errorf("sqlite: finish archive rotation: %w", err)
	}
	return nil
}

// LatestArchiveRotation returns the latest rotation, ErrNotFound if none.
func (s *Store) LatestArchiveRotation(ctx context.Context) (storage.ArchiveRotation, error) {
	r, err := archiveLatestRotation(ctx, s.r)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return r, fmt.Errorf("sqlite: latest archive rotation: %w", err)
	}
	return r, err
}

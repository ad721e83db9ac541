package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"kontor.im/kontor/core/storage"
)

// The archive's tables are a migration track of their own (see schema.go).
// Ingest uses CopyFrom (the COPY protocol), the fastest way to load rows
// into PostgreSQL; a batch that meets a row already stored (a retry after an
// ambiguous failure) is loaded again with INSERT ... ON CONFLICT DO NOTHING.

//go:embed migrations_archive/*.sql
var archiveMigrations embed.FS

func init() {
	schemas = append(schemas, schema{track: "archive", files: archiveMigrations, dir: "migrations_archive"})
}

var _ storage.ArchiveStore = (*Store)(nil)

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

const archiveKeyColumns = `id, owner, slice, class, kek_id, wrapped, created, keep_until, retired`

func scanArchiveKeys(rows pgx.Rows) ([]storage.ArchiveKey, error) {
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
	if len(slots) == 0 {
		return nil, nil
	}
	owners := make([]string, len(slots))
	slices := make([]int32, len(slots))
	classes := make([]string, len(slots))
	for i, sl := range slots {
		owners[i], slices[i], classes[i] = sl.Owner, int32(sl.Slice), sl.Class
	}
	rows, err := s.pool.Query(ctx, `SELECT `+archivePrefixed("k.", archiveKeyColumns)+` FROM archive_keys k
		JOIN unnest($1::text[], $2::int[], $3::text[]) AS w(owner, slice, class)
		ON k.owner = w.owner AND k.slice = w.slice AND k.class = w.class
		WHERE NOT k.retired`, owners, slices, classes)
	if err != nil {
		return nil, fmt.Errorf("postgres: archive keys: %w", err)
	}
	keys, err := scanArchiveKeys(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: archive keys: %w", err)
	}
	return keys, nil
}

// prefixed qualifies each column of a list.
func archivePrefixed(p, cols string) string {
	parts := strings.Split(cols, ", ")
	for i := range parts {
		parts[i] = p + parts[i]
	}
	return strings.Join(parts, ", ")
}

// ArchiveKeysByID returns the keys with these IDs that exist.
func (s *Store) ArchiveKeysByID(ctx context.Context, ids []int64) ([]storage.ArchiveKey, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT `+archiveKeyColumns+` FROM archive_keys WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("postgres: archive keys: %w", err)
	}
	keys, err := scanArchiveKeys(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: archive keys: %w", err)
	}
	return keys, nil
}

// CreateArchiveKeys inserts keys; slots that have one already are skipped.
func (s *Store) CreateArchiveKeys(ctx context.Context, keys []storage.ArchiveKey) error {
	if len(keys) == 0 {
		return nil
	}
	n := len(keys)
	owners, classes, keks := make([]string, n), make([]string, n), make([]string, n)
	slices := make([]int32, n)
	wrapped := make([][]byte, n)
	created, keep := make([]int64, n), make([]int64, n)
	now := time.Now()
	for i, k := range keys {
		c := k.Created
		if c.IsZero() {
			c = now
		}
		owners[i], slices[i], classes[i], keks[i] = k.Owner, int32(k.Slice), k.Class, k.KEKID
		wrapped[i], created[i], keep[i] = nonNil(k.Wrapped), micros(c), archiveMicros(k.KeepUntil)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO archive_keys (owner, slice, class, kek_id, wrapped, created, keep_until)
		SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::bytea[], $6::bigint[], $7::bigint[])
		ON CONFLICT (owner, slice, class) WHERE NOT retired DO NOTHING`, owners, slices, classes, keks, wrapped, created, keep)
	if err != nil {
		return fmt.Errorf("postgres: create archive keys: %w", err)
	}
	return nil
}

var archiveColumns = []string{"owner", "id", "peer", "peer_res", "outgoing", "encrypted", "ts", "expires", "key_id", "sealed"}

// AppendArchive stores messages with CopyFrom in one transaction, falling
// back to INSERT ... ON CONFLICT DO NOTHING when some are stored already.
func (s *Store) AppendArchive(ctx context.Context, rows []storage.ArchiveRow, keep []storage.ArchiveKeepUntil) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := archiveRaiseKeep(ctx, tx, keep); err != nil {
			return err
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"archive_messages"}, archiveColumns, newArchiveCopy(rows))
		return err
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" { // unique_violation
		err = s.inTx(ctx, func(tx pgx.Tx) error {
			if err := archiveRaiseKeep(ctx, tx, keep); err != nil {
				return err
			}
			return archiveInsert(ctx, tx, rows)
		})
	}
	if err != nil {
		return fmt.Errorf("postgres: append archive: %w", err)
	}
	return nil
}

// archiveCopy is the pgx.CopyFromSource of AppendArchive: one row's
// values at a time in fields that the values slice points to, of pgtype's
// types, whose pointers pgx encodes as they are. A row so costs no
// allocations; values put into an interface one by one cost about six per
// row (and pointers to plain Go types as many, through reflection), in
// the flusher of every archived message.
type archiveCopy struct {
	rows []storage.ArchiveRow
	next int

	owner, peer, peerRes pgtype.Text
	id                   pgtype.UUID
	outgoing, encrypted  pgtype.Bool
	ts, expires, keyID   pgtype.Int8
	sealed               sealedBytes
	values               []any
}

// sealedBytes is a bytea value for archiveCopy.
type sealedBytes []byte

func (b *sealedBytes) BytesValue() ([]byte, error) { return nonNil(*b), nil }

func newArchiveCopy(rows []storage.ArchiveRow) *archiveCopy {
	c := &archiveCopy{rows: rows}
	c.values = []any{&c.owner, &c.id, &c.peer, &c.peerRes, &c.outgoing, &c.encrypted, &c.ts, &c.expires, &c.keyID, &c.sealed}
	return c
}

func (c *archiveCopy) Next() bool {
	if c.next >= len(c.rows) {
		return false
	}
	r := &c.rows[c.next]
	c.next++
	c.owner = pgtype.Text{String: r.Owner, Valid: true}
	c.peer = pgtype.Text{String: r.Peer, Valid: true}
	c.peerRes = pgtype.Text{String: r.PeerResource, Valid: true}
	c.id = pgtype.UUID{Bytes: r.ID, Valid: true}
	c.outgoing = pgtype.Bool{Bool: r.Outgoing, Valid: true}
	c.encrypted = pgtype.Bool{Bool: r.Encrypted, Valid: true}
	c.ts = pgtype.Int8{Int64: micros(r.Time), Valid: true}
	c.expires = pgtype.Int8{Int64: archiveMicros(r.Expires), Valid: true}
	c.keyID = pgtype.Int8{Int64: r.KeyID, Valid: true}
	c.sealed = r.Sealed
	return true
}

func (c *archiveCopy) Values() ([]any, error) { return c.values, nil }
func (c *archiveCopy) Err() error             { return nil }

// raiseKeepUntil raises keys' keep_until; a key that is gone is an error.
func archiveRaiseKeep(ctx context.Context, tx pgx.Tx, keep []storage.ArchiveKeepUntil) error {
	if len(keep) == 0 {
		return nil
	}
	ids, until := make([]int64, len(keep)), make([]int64, len(keep))
	for i, k := range keep {
		ids[i], until[i] = k.KeyID, archiveMicros(k.KeepUntil)
	}
	rows, err := tx.Query(ctx, `UPDATE archive_keys k SET keep_until = GREATEST(k.keep_until, u.keep_until)
		FROM unnest($1::bigint[], $2::bigint[]) AS u(id, keep_until) WHERE k.id = u.id RETURNING k.id`, ids, until)
	if err != nil {
		return err
	}
	found := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		found[id] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, id := range ids {
		if !found[id] {
			return fmt.Errorf("archive key %d: %w", id, storage.ErrNotFound)
		}
	}
	return nil
}

func archiveInsert(ctx context.Context, tx pgx.Tx, rows []storage.ArchiveRow) error {
	n := len(rows)
	owners, peers, res := make([]string, n), make([]string, n), make([]string, n)
	ids := make([][16]byte, n)
	out, enc := make([]bool, n), make([]bool, n)
	ts, exp, keys := make([]int64, n), make([]int64, n), make([]int64, n)
	sealed := make([][]byte, n)
	for i, r := range rows {
		owners[i], ids[i], peers[i], res[i] = r.Owner, r.ID, r.Peer, r.PeerResource
		out[i], enc[i], ts[i], exp[i] = r.Outgoing, r.Encrypted, micros(r.Time), archiveMicros(r.Expires)
		keys[i], sealed[i] = r.KeyID, nonNil(r.Sealed)
	}
	_, err := tx.Exec(ctx, `INSERT INTO archive_messages (owner, id, peer, peer_res, outgoing, encrypted, ts, expires, key_id, sealed)
		SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::bool[], $6::bool[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bytea[])
		ON CONFLICT (owner, id) DO NOTHING`, owners, ids, peers, res, out, enc, ts, exp, keys, sealed)
	return err
}

// archiveWhere builds the WHERE clause and arguments of q. Each filter
// present adds its own condition, so that the planner sees which index
// fits: the primary key (owner, id) or (owner, peer, id).
func archiveWhere(q storage.ArchiveRowQuery) (string, []any) {
	return archiveWhereAfter(q, nil)
}

// archiveWhereAfter is archiveWhere with its parameters numbered after
// those already in args.
func archiveWhereAfter(q storage.ArchiveRowQuery, args []any) (string, []any) {
	var b strings.Builder
	args = append(args, q.Owner, q.MinID, q.MaxID)
	n := len(args)
	b.WriteString(`owner = $` + strconv.Itoa(n-2) + ` AND id >= $` + strconv.Itoa(n-1) + ` AND id <= $` + strconv.Itoa(n))
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
		b.WriteString(` AND NOT restricted`)
	}
	if q.IDs != nil {
		args = append(args, q.IDs)
		b.WriteString(` AND id = ANY($` + strconv.Itoa(len(args)) + `::uuid[])`)
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
	rows, err := s.pool.Query(ctx, `SELECT id, peer, peer_res, outgoing, encrypted, ts, expires, key_id, sealed, restricted
		FROM archive_messages WHERE `+where+` ORDER BY id `+order+` LIMIT $`+strconv.Itoa(len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: query archive: %w", err)
	}
	defer rows.Close()
	var out []storage.ArchiveRow
	for rows.Next() {
		r := storage.ArchiveRow{Owner: q.Owner}
		var ts, expires int64
		if err := rows.Scan(&r.ID, &r.Peer, &r.PeerResource, &r.Outgoing, &r.Encrypted, &ts, &expires, &r.KeyID, &r.Sealed, &r.Restricted); err != nil {
			return nil, fmt.Errorf("postgres: query archive: %w", err)
		}
		r.Time, r.Expires = fromMicros(ts), archiveTime(expires)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: query archive: %w", err)
	}
	return out, nil
}

// QueryArchiveCounted reads a page and counts (up to limit) the messages
// matching count, in one statement: the count in a CTE, the page joined to
// it laterally, so that an empty page still brings its count.
func (s *Store) QueryArchiveCounted(ctx context.Context, page, count storage.ArchiveRowQuery, limit int) ([]storage.ArchiveRow, int, error) {
	cw, args := archiveWhere(count)
	args = append(args, limit)
	cl := strconv.Itoa(len(args))
	pw, args := archiveWhereAfter(page, args)
	order := "ASC"
	if page.Backward {
		order = "DESC"
	}
	args = append(args, page.Limit)
	rows, err := s.pool.Query(ctx, `WITH c AS (SELECT COUNT(*) AS n FROM (SELECT 1 FROM archive_messages WHERE `+cw+` LIMIT $`+cl+`) AS m)
		SELECT c.n, p.id IS NOT NULL, COALESCE(p.id, '00000000-0000-0000-0000-000000000000'), COALESCE(p.peer, ''),
			COALESCE(p.peer_res, ''), COALESCE(p.outgoing, false), COALESCE(p.encrypted, false), COALESCE(p.ts, 0),
			COALESCE(p.expires, 0), COALESCE(p.key_id, 0), p.sealed, COALESCE(p.restricted, false)
		FROM c LEFT JOIN LATERAL (SELECT id, peer, peer_res, outgoing, encrypted, ts, expires, key_id, sealed, restricted
			FROM archive_messages WHERE `+pw+` ORDER BY id `+order+` LIMIT $`+strconv.Itoa(len(args))+`) AS p ON true
		ORDER BY p.id `+order, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("postgres: query archive: %w", err)
	}
	defer rows.Close()
	var (
		out []storage.ArchiveRow
		n   int
	)
	for rows.Next() {
		// The columns an empty page leaves NULL come as zero values (and
		// a flag), so that they scan like QueryArchive's.
		var (
			found bool
			r     = storage.ArchiveRow{Owner: page.Owner}
			ts    int64
			exp   int64
		)
		if err := rows.Scan(&n, &found, &r.ID, &r.Peer, &r.PeerResource, &r.Outgoing, &r.Encrypted, &ts, &exp, &r.KeyID, &r.Sealed, &r.Restricted); err != nil {
			return nil, 0, fmt.Errorf("postgres: query archive: %w", err)
		}
		if !found {
			continue // an empty page: the one row carries only the count
		}
		r.Time, r.Expires = fromMicros(ts), archiveTime(exp)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("postgres: query archive: %w", err)
	}
	return out, n, nil
}

// CountArchive counts up to limit matching messages.
func (s *Store) CountArchive(ctx context.Context, q storage.ArchiveRowQuery, limit int) (int, error) {
	where, args := archiveWhere(q)
	args = append(args, limit)
	var n int
	err := s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM archive_messages WHERE `+where+
		` LIMIT $`+strconv.Itoa(len(args))+`) AS m`, args...).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("postgres: count archive: %w", err)
	}
	return n, nil
}

// ArchivePrefs returns the owner's preferences, ErrNotFound if none.
func (s *Store) ArchivePrefs(ctx context.Context, owner string) (storage.ArchivePrefs, error) {
	var p storage.ArchivePrefs
	err := s.pool.QueryRow(ctx, `SELECT default_mode, always, never FROM archive_prefs WHERE owner = $1`, owner).
		Scan(&p.Default, &p.Always, &p.Never)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, storage.ErrNotFound
	}
	if err != nil {
		return storage.ArchivePrefs{}, fmt.Errorf("postgres: archive prefs: %w", err)
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
	always, never := p.Always, p.Never
	if always == nil {
		always = []string{}
	}
	if never == nil {
		never = []string{}
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO archive_prefs (owner, default_mode, always, never) VALUES ($1, $2, $3, $4)
		ON CONFLICT (owner) DO UPDATE SET default_mode = excluded.default_mode, always = excluded.always, never = excluded.never`,
		owner, p.Default, always, never); err != nil {
		return fmt.Errorf("postgres: set archive prefs: %w", err)
	}
	return nil
}

// ExpiredArchive returns up to limit expired messages, oldest expiry first.
func (s *Store) ExpiredArchive(ctx context.Context, now time.Time, skip []string, limit int) ([]storage.ArchiveRef, error) {
	if skip == nil {
		skip = []string{}
	}
	rows, err := s.pool.Query(ctx, `SELECT owner, id, key_id FROM archive_messages
		WHERE expires <= $1 AND owner <> ALL($2::text[]) ORDER BY expires LIMIT $3`, micros(now), skip, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: expired archive: %w", err)
	}
	defer rows.Close()
	var out []storage.ArchiveRef
	for rows.Next() {
		var r storage.ArchiveRef
		if err := rows.Scan(&r.Owner, &r.ID, &r.KeyID); err != nil {
			return nil, fmt.Errorf("postgres: expired archive: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: expired archive: %w", err)
	}
	return out, nil
}

// DeleteArchive deletes these messages in one statement.
func (s *Store) DeleteArchive(ctx context.Context, refs []storage.ArchiveRef) (int, error) {
	if len(refs) == 0 {
		return 0, nil
	}
	owners, ids := make([]string, len(refs)), make([][16]byte, len(refs))
	for i, r := range refs {
		owners[i], ids[i] = r.Owner, r.ID
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM archive_messages m USING unnest($1::text[], $2::uuid[]) AS d(owner, id)
		WHERE m.owner = d.owner AND m.id = d.id`, owners, ids)
	if err != nil {
		return 0, fmt.Errorf("postgres: delete archive: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// ExpiredArchiveKeys returns keys whose messages have all expired.
func (s *Store) ExpiredArchiveKeys(ctx context.Context, now time.Time, after int64, limit int) ([]storage.ArchiveKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+archiveKeyColumns+` FROM archive_keys
		WHERE keep_until <= $1 AND id > $2 ORDER BY id LIMIT $3`, micros(now), after, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: expired archive keys: %w", err)
	}
	keys, err := scanArchiveKeys(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: expired archive keys: %w", err)
	}
	return keys, nil
}

// DestroyArchiveKeys deletes the keys no message uses any more, in one
// statement.
func (s *Store) DestroyArchiveKeys(ctx context.Context, keys []storage.ArchiveKeyRange) ([]int64, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	n := len(keys)
	ids, owners := make([]int64, n), make([]string, n)
	lo, hi := make([][16]byte, n), make([][16]byte, n)
	for i, k := range keys {
		ids[i], owners[i], lo[i], hi[i] = k.KeyID, k.Owner, k.MinID, k.MaxID
	}
	rows, err := s.pool.Query(ctx, `DELETE FROM archive_keys k
		USING unnest($1::bigint[], $2::text[], $3::uuid[], $4::uuid[]) AS r(id, owner, lo, hi)
		WHERE k.id = r.id AND k.owner = r.owner AND NOT EXISTS (
			SELECT 1 FROM archive_messages m WHERE m.owner = r.owner AND m.id >= r.lo AND m.id <= r.hi AND m.key_id = r.id)
		RETURNING k.id`, ids, owners, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("postgres: destroy archive keys: %w", err)
	}
	defer rows.Close()
	var gone []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("postgres: destroy archive keys: %w", err)
		}
		gone = append(gone, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: destroy archive keys: %w", err)
	}
	return gone, nil
}

// ArchiveKeysNotUnder returns keys not wrapped by kekID, in ID order.
func (s *Store) ArchiveKeysNotUnder(ctx context.Context, kekID string, after int64, limit int) ([]storage.ArchiveKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+archiveKeyColumns+` FROM archive_keys
		WHERE kek_id <> $1 AND id > $2 ORDER BY id LIMIT $3`, kekID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: archive keys not under: %w", err)
	}
	keys, err := scanArchiveKeys(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: archive keys not under: %w", err)
	}
	return keys, nil
}

// RewrapArchiveKeys replaces wrapped keys (compare-and-swap on the KEK) and
// counts them in the latest rotation, in one transaction.
func (s *Store) RewrapArchiveKeys(ctx context.Context, rw []storage.ArchiveKeyRewrap) (int, error) {
	if len(rw) == 0 {
		return 0, nil
	}
	n := len(rw)
	ids := make([]int64, n)
	olds, news := make([]string, n), make([]string, n)
	wrapped := make([][]byte, n)
	for i, r := range rw {
		ids[i], olds[i], news[i], wrapped[i] = r.ID, r.OldKEKID, r.NewKEKID, nonNil(r.Wrapped)
	}
	var count int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE archive_keys k SET kek_id = r.new_kek, wrapped = r.wrapped
			FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bytea[]) AS r(id, old_kek, new_kek, wrapped)
			WHERE k.id = r.id AND k.kek_id = r.old_kek`, ids, olds, news, wrapped)
		if err != nil {
			return err
		}
		count = tag.RowsAffected()
		_, err = tx.Exec(ctx, `UPDATE archive_rotations SET rewrapped = rewrapped + $1
			WHERE id = (SELECT MAX(id) FROM archive_rotations)`, count)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: rewrap archive keys: %w", err)
	}
	return int(count), nil
}

// ArchiveKeyCounts returns how many keys each KEK wraps.
func (s *Store) ArchiveKeyCounts(ctx context.Context) (map[string]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT kek_id, COUNT(*) FROM archive_keys GROUP BY kek_id`)
	if err != nil {
		return nil, fmt.Errorf("postgres: archive key counts: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var id string
		var n int64
		if err := rows.Scan(&id, &n); err != nil {
			return nil, fmt.Errorf("postgres: archive key counts: %w", err)
		}
		out[id] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: archive key counts: %w", err)
	}
	return out, nil
}

type archiveRowQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func archiveLatestRotation(ctx context.Context, q archiveRowQuerier) (storage.ArchiveRotation, error) {
	var r storage.ArchiveRotation
	var started int64
	var finished *int64
	err := q.QueryRow(ctx, `SELECT target, started, finished, rewrapped FROM archive_rotations
		ORDER BY id DESC LIMIT 1`).Scan(&r.Target, &started, &finished, &r.Rewrapped)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, storage.ErrNotFound
	}
	if err != nil {
		return r, err
	}
	r.Started = fromMicros(started)
	if finished != nil {
		r.Finished = fromMicros(*finished)
	}
	return r, nil
}

// lockArchiveRotation serialises starting rotations.
const lockArchiveRotation int32 = 0x4B6E0010

// StartArchiveRotation records a rotation to target, or returns the
// unfinished one to the same target.
func (s *Store) StartArchiveRotation(ctx context.Context, target string, at time.Time) (storage.ArchiveRotation, error) {
	var out storage.ArchiveRotation
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, 0)`, lockArchiveRotation); err != nil {
			return err
		}
		r, err := archiveLatestRotation(ctx, tx)
		if err == nil && r.Finished.IsZero() && r.Target == target {
			out = r
			return nil
		}
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO archive_rotations (target, started) VALUES ($1, $2)`,
			target, micros(at)); err != nil {
			return err
		}
		out = storage.ArchiveRotation{Target: target, Started: fromMicros(micros(at))}
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("postgres: start archive rotation: %w", err)
	}
	return out, nil
}

// FinishArchiveRotation marks the latest rotation finished.
func (s *Store) FinishArchiveRotation(ctx context.Context, at time.Time) error {
	if _, err := s.pool.Exec(ctx, `UPDATE archive_rotations SET finished = $1
		WHERE id = (SELECT MAX(id) FROM archive_rotations) AND finished IS NULL`, micros(at)); err != nil {
		return fmt.Errorf("postgres: finish archive rotation: %w", err)
	}
	return nil
}

// LatestArchiveRotation returns the latest rotation, ErrNotFound if none.
func (s *Store) LatestArchiveRotation(ctx context.Context) (storage.ArchiveRotation, error) {
	r, err := archiveLatestRotation(ctx, s.pool)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return r, fmt.Errorf("postgres: latest archive rotation: %w", err)
	}
	return r, err
}

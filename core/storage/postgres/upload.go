package postgres

// XEP-0363 upload records (storage.Uploads), in a migration track of their
// own ("upload", migrations_upload/).
//
// Locking: CreateUpload takes the transaction-scoped advisory lock
// lockUploads(owner) before it sums and inserts, so that two slots granted
// at once (from two servers sharing the database) cannot both pass the
// quota check. The lock is taken alone, never with another one of this
// package.

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"kontor.im/kontor/core/storage"
)

//go:embed migrations_upload/*.sql
var uploadFiles embed.FS

func init() {
	schemas = append(schemas, schema{track: "upload", files: uploadFiles, dir: "migrations_upload"})
}

// lockUploads is the advisory lock class of upload slots ("Kn", then
// 0F11 for "file"); the second key is hashtext(owner).
const lockUploads int32 = 0x4B6E0F11

var _ storage.Uploads = (*Store)(nil)

// optMicros is micros, with 0 for the zero time.
func optMicros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return micros(t)
}

func optTime(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return fromMicros(us)
}

const uploadColumns = `id, owner, name, size, content_type, created, slot_expires, stored, until, class`

func scanUpload(r pgx.Row) (storage.Upload, error) {
	var u storage.Upload
	var created, slot, stored, until int64
	if err := r.Scan(&u.ID, &u.Owner, &u.Name, &u.Size, &u.ContentType, &created, &slot, &stored, &until, &u.Class); err != nil {
		return u, err
	}
	u.Created, u.SlotExpires, u.Stored, u.Until = fromMicros(created), fromMicros(slot), optTime(stored), optTime(until)
	if u.Name == nil {
		u.Name = []byte{}
	}
	return u, nil
}

// CreateUpload records a slot unless it would exceed the owner's quota.
func (s *Store) CreateUpload(ctx context.Context, u storage.Upload, quota int64) error {
	name := u.Name
	if name == nil {
		name = []byte{}
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if quota > 0 {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, lockUploads, u.Owner); err != nil {
				return err
			}
			var used int64
			if err := tx.QueryRow(ctx, `SELECT COALESCE(SUM(size), 0)::bigint FROM uploads WHERE owner = $1`, u.Owner).Scan(&used); err != nil {
				return err
			}
			if used+u.Size > quota {
				return storage.ErrQuotaExceeded
			}
		}
		tag, err := tx.Exec(ctx, `INSERT INTO uploads (`+uploadColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING`,
			u.ID, u.Owner, name, u.Size, u.ContentType, micros(u.Created), micros(u.SlotExpires),
			optMicros(u.Stored), optMicros(u.Until), u.Class)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return storage.ErrExists
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: create upload: %w", err)
	}
	return nil
}

// Upload returns one record.
func (s *Store) Upload(ctx context.Context, id string) (storage.Upload, error) {
	u, err := scanUpload(s.pool.QueryRow(ctx, `SELECT `+uploadColumns+` FROM uploads WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return storage.Upload{}, fmt.Errorf("postgres: upload: %w", err)
	}
	return u, nil
}

// CompleteUpload marks a slot stored.
func (s *Store) CompleteUpload(ctx context.Context, id string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE uploads SET stored = $2 WHERE id = $1 AND stored = 0`, id, micros(at))
	if err != nil {
		return fmt.Errorf("postgres: complete upload: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: complete upload: %w", storage.ErrNotFound)
	}
	return nil
}

func (s *Store) queryUploads(ctx context.Context, q string, args ...any) ([]storage.Upload, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storage.Upload
	for rows.Next() {
		u, err := scanUpload(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// UploadsOf returns owner's records, oldest first.
func (s *Store) UploadsOf(ctx context.Context, owner string) ([]storage.Upload, error) {
	out, err := s.queryUploads(ctx, `SELECT `+uploadColumns+` FROM uploads WHERE owner = $1 ORDER BY created, id`, owner)
	if err != nil {
		return nil, fmt.Errorf("postgres: uploads of: %w", err)
	}
	return out, nil
}

// DeleteUpload removes a record.
func (s *Store) DeleteUpload(ctx context.Context, id string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM uploads WHERE id = $1`, id); err != nil {
		return fmt.Errorf("postgres: delete upload: %w", err)
	}
	return nil
}

// ExpiredUploads returns records due for deletion.
func (s *Store) ExpiredUploads(ctx context.Context, now time.Time, limit int) ([]storage.Upload, error) {
	out, err := s.queryUploads(ctx, `SELECT `+uploadColumns+` FROM uploads
		WHERE (stored <> 0 AND until <> 0 AND until <= $1) OR (stored = 0 AND slot_expires <= $1)
		ORDER BY created, id LIMIT $2`, micros(now), limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: expired uploads: %w", err)
	}
	return out, nil
}

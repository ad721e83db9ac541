package sqlite

// XEP-0363 upload records (storage.Uploads), in a migration track of their
// own ("upload", migrations_upload/). Writes go through the single writer
// connection in BEGIN IMMEDIATE transactions, which makes the quota check
// of CreateUpload and its insert atomic against every other writer.

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"time"

	"kontor.im/kontor/core/storage"
)

//go:embed migrations_upload/*.sql
var uploadFiles embed.FS

func init() {
	schemas = append(schemas, schema{track: "upload", files: uploadFiles, dir: "migrations_upload"})
}

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

func scanUpload(r rowScanner) (storage.Upload, error) {
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
	err := s.write(ctx, func(tx *sql.Tx) error {
		if quota > 0 {
			var used int64
			if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(size), 0) FROM uploads WHERE owner = $1`, u.Owner).Scan(&used); err != nil {
				return err
			}
			if used+u.Size > quota {
				return storage.ErrQuotaExceeded
			}
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO uploads (`+uploadColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING`,
			u.ID, u.Owner, name, u.Size, u.ContentType, micros(u.Created), micros(u.SlotExpires),
			optMicros(u.Stored), optMicros(u.Until), u.Class)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return storage.ErrExists
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: create upload: %w", err)
	}
	return nil
}

// Upload returns one record.
func (s *Store) Upload(ctx context.Context, id string) (storage.Upload, error) {
	u, err := scanUpload(s.r.QueryRowContext(ctx, `SELECT `+uploadColumns+` FROM uploads WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return storage.Upload{}, fmt.Errorf("sqlite: upload: %w", err)
	}
	return u, nil
}

// CompleteUpload marks a slot stored.
func (s *Store) CompleteUpload(ctx context.Context, id string, at time.Time) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE uploads SET stored = $2 WHERE id = $1 AND stored = 0`, id, micros(at))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return storage.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: complete upload: %w", err)
	}
	return nil
}

func (s *Store) queryUploads(ctx context.Context, q string, args ...any) ([]storage.Upload, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
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
		return nil, fmt.Errorf("sqlite: uploads of: %w", err)
	}
	return out, nil
}

// DeleteUpload removes a record.
func (s *Store) DeleteUpload(ctx context.Context, id string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM uploads WHERE id = $1`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete upload: %w", err)
	}
	return nil
}

// ExpiredUploads returns records due for deletion.
func (s *Store) ExpiredUploads(ctx context.Context, now time.Time, limit int) ([]storage.Upload, error) {
	t := micros(now)
	out, err := s.queryUploads(ctx, `SELECT `+uploadColumns+` FROM uploads
		WHERE (stored <> 0 AND until <> 0 AND until <= $1) OR (stored = 0 AND slot_expires <= $1)
		ORDER BY created, id LIMIT $2`, t, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: expired uploads: %w", err)
	}
	return out, nil
}

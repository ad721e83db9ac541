package sqlite

// XEP-0357 push registrations (storage.PushRegistrations), in a migration
// track of their own ("push", migrations_push/). Writes go through the
// single writer connection in BEGIN IMMEDIATE transactions, which makes
// the quota check of EnablePush atomic against every other writer.

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"time"

	"kontor.im/kontor/core/storage"
)

//go:embed migrations_push/*.sql
var pushFiles embed.FS

func init() {
	schemas = append(schemas, schema{track: "push", files: pushFiles, dir: "migrations_push"})
	ownedTables = append(ownedTables, "push_registrations")
}

var _ storage.PushRegistrations = (*Store)(nil)

// PushRegistrations returns owner's registrations by service and node.
func (s *Store) PushRegistrations(ctx context.Context, owner string) ([]storage.PushRegistration, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT service, node, options, created FROM push_registrations
		WHERE owner = $1 ORDER BY service, node`, owner)
	if err != nil {
		return nil, fmt.Errorf("sqlite: push registrations: %w", err)
	}
	defer rows.Close()
	var out []storage.PushRegistration
	for rows.Next() {
		var (
			r       storage.PushRegistration
			created int64
		)
		if err := rows.Scan(&r.Service, &r.Node, &r.Options, &created); err != nil {
			return nil, fmt.Errorf("sqlite: push registrations: %w", err)
		}
		r.Created = time.Unix(0, created).UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: push registrations: %w", err)
	}
	return out, nil
}

// EnablePush adds or replaces a registration within limit.
func (s *Store) EnablePush(ctx context.Context, owner string, r storage.PushRegistration, limit int) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO push_registrations (owner, service, node, options, created)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (owner, service, node) DO UPDATE
			SET options = excluded.options, created = excluded.created`,
			owner, r.Service, r.Node, r.Options, r.Created.UnixNano()); err != nil {
			return err
		}
		if limit <= 0 {
			return nil
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM push_registrations WHERE owner = $1`, owner).Scan(&n); err != nil {
			return err
		}
		if n > limit {
			return storage.ErrQuotaExceeded
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: enable push: %w", err)
	}
	return nil
}

// DisablePush removes one registration, or all of a service.
func (s *Store) DisablePush(ctx context.Context, owner, service, node string) (int, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM push_registrations WHERE owner = $1 AND service = $2
			AND ($3 = '' OR node = $3)`, owner, service, node)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: disable push: %w", err)
	}
	return int(n), nil
}

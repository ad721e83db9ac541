package postgres

// XEP-0357 push registrations (storage.PushRegistrations), in a migration
// track of their own ("push", migrations_push/).
//
// Locking: EnablePush takes the transaction-scoped advisory lock
// lockPush(owner) before it upserts and counts, so that two servers
// sharing the database cannot both pass the quota check. The lock is
// taken alone, never with another one of this package.

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5"

	"kontor.im/kontor/core/storage"
)

//go:embed migrations_push/*.sql
var pushFiles embed.FS

func init() {
	schemas = append(schemas, schema{track: "push", files: pushFiles, dir: "migrations_push"})
	ownedTables = append(ownedTables, "push_registrations")
}

// lockPush is the advisory lock class of push registrations ("Kn", then
// 0957 for XEP-0357); the second key is hashtext(owner).
const lockPush int32 = 0x4B6E0957

var _ storage.PushRegistrations = (*Store)(nil)

// PushRegistrations returns owner's registrations by service and node.
func (s *Store) PushRegistrations(ctx context.Context, owner string) ([]storage.PushRegistration, error) {
	rows, err := s.pool.Query(ctx, `SELECT service, node, options, created FROM push_registrations
		WHERE owner = $1 ORDER BY service, node`, owner)
	if err != nil {
		return nil, fmt.Errorf("postgres: push registrations: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.PushRegistration, error) {
		var r storage.PushRegistration
		err := row.Scan(&r.Service, &r.Node, &r.Options, &r.Created)
		r.Created = r.Created.UTC()
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: push registrations: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// EnablePush adds or replaces a registration within limit.
func (s *Store) EnablePush(ctx context.Context, owner string, r storage.PushRegistration, limit int) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, lockPush, owner); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO push_registrations (owner, service, node, options, created)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (owner, service, node) DO UPDATE
			SET options = excluded.options, created = excluded.created`,
			owner, r.Service, r.Node, r.Options, r.Created); err != nil {
			return err
		}
		if limit <= 0 {
			return nil
		}
		var n int64
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM push_registrations WHERE owner = $1`, owner).Scan(&n); err != nil {
			return err
		}
		if n > int64(limit) {
			return storage.ErrQuotaExceeded
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: enable push: %w", err)
	}
	return nil
}

// DisablePush removes one registration, or all of a service.
func (s *Store) DisablePush(ctx context.Context, owner, service, node string) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM push_registrations WHERE owner = $1 AND service = $2
		AND ($3 = '' OR node = $3)`, owner, service, node)
	if err != nil {
		return 0, fmt.Errorf("postgres: disable push: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

package sqlite

// XEP-0191 blocklists (storage.Blocklist), in a migration track of their
// own ("blocking", migrations_blocking/). Writes go through the single
// writer connection in BEGIN IMMEDIATE transactions, which makes the quota
// check of BlockJIDs and its inserts atomic against every other writer, in
// this process and others.

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"sort"

	"kontor.im/kontor/core/storage"
)

//go:embed migrations_blocking/*.sql
var blockingFiles embed.FS

func init() {
	schemas = append(schemas, schema{track: "blocking", files: blockingFiles, dir: "migrations_blocking"})
	// A blocklist belongs to its owner and goes with the account
	// (DeleteAccount deletes from every owned table in its transaction).
	ownedTables = append(ownedTables, "blocklist")
}

var _ storage.Blocklist = (*Store)(nil)

// BlockedJIDs returns owner's blocked JIDs ordered as bytes.
func (s *Store) BlockedJIDs(ctx context.Context, owner string) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT jid FROM blocklist WHERE owner = $1 ORDER BY jid`, owner)
	if err != nil {
		return nil, fmt.Errorf("sqlite: blocked jids: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var j string
		if err := rows.Scan(&j); err != nil {
			return nil, fmt.Errorf("sqlite: blocked jids: %w", err)
		}
		out = append(out, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: blocked jids: %w", err)
	}
	return out, nil
}

// BlockJIDs adds jids and returns the new ones; over limit, it adds none.
func (s *Store) BlockJIDs(ctx context.Context, owner string, jids []string, limit int) ([]string, error) {
	var added []string
	err := s.write(ctx, func(tx *sql.Tx) error {
		added = added[:0]
		for _, j := range jids {
			res, err := tx.ExecContext(ctx, `INSERT INTO blocklist (owner, jid) VALUES ($1, $2)
				ON CONFLICT (owner, jid) DO NOTHING`, owner, j)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n > 0 {
				added = append(added, j)
			}
		}
		if limit <= 0 || len(added) == 0 {
			return nil
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM blocklist WHERE owner = $1`, owner).Scan(&n); err != nil {
			return err
		}
		if n > limit {
			return storage.ErrQuotaExceeded
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: block jids: %w", err)
	}
	return added, nil
}

// UnblockJIDs removes jids and returns those that were blocked.
func (s *Store) UnblockJIDs(ctx context.Context, owner string, jids []string) ([]string, error) {
	var removed []string
	err := s.write(ctx, func(tx *sql.Tx) error {
		removed = removed[:0]
		for _, j := range jids {
			res, err := tx.ExecContext(ctx, `DELETE FROM blocklist WHERE owner = $1 AND jid = $2`, owner, j)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n > 0 {
				removed = append(removed, j)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: unblock jids: %w", err)
	}
	return removed, nil
}

// UnblockAllJIDs empties owner's list and returns what it held.
func (s *Store) UnblockAllJIDs(ctx context.Context, owner string) ([]string, error) {
	var removed []string
	err := s.write(ctx, func(tx *sql.Tx) error {
		removed = removed[:0]
		rows, err := tx.QueryContext(ctx, `DELETE FROM blocklist WHERE owner = $1 RETURNING jid`, owner)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var j string
			if err := rows.Scan(&j); err != nil {
				return err
			}
			removed = append(removed, j)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: unblock all jids: %w", err)
	}
	sort.Strings(removed)
	return removed, nil
}

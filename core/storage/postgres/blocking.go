package postgres

// XEP-0191 blocklists (storage.Blocklist), in a migration track of their
// own ("blocking", migrations_blocking/).
//
// Locking: BlockJIDs takes the transaction-scoped advisory lock
// lockBlocklist(owner) before it inserts and counts, so that two
// transactions adding to one list at once (from two servers sharing the
// database) cannot both pass the quota check. Removals need no lock: they
// only shrink the list. The lock is taken alone, never with another one
// of this package.

import (
	"context"
	"embed"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5"

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

// lockBlocklist is the advisory lock class of blocklist additions ("Kn",
// then 0B1C for "block"); the second key is hashtext(owner).
const lockBlocklist int32 = 0x4B6E0B1C

var _ storage.Blocklist = (*Store)(nil)

// BlockedJIDs returns owner's blocked JIDs ordered as bytes.
func (s *Store) BlockedJIDs(ctx context.Context, owner string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT jid FROM blocklist WHERE owner = $1 ORDER BY jid`, owner)
	if err != nil {
		return nil, fmt.Errorf("postgres: blocked jids: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: blocked jids: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// BlockJIDs adds jids and returns the new ones; over limit, it adds none.
func (s *Store) BlockJIDs(ctx context.Context, owner string, jids []string, limit int) ([]string, error) {
	if len(jids) == 0 {
		return nil, nil
	}
	var inserted []string
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, lockBlocklist, owner); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `INSERT INTO blocklist (owner, jid) SELECT $1, j FROM unnest($2::text[]) AS j
			ON CONFLICT (owner, jid) DO NOTHING RETURNING jid`, owner, jids)
		if err != nil {
			return err
		}
		if inserted, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		if limit <= 0 || len(inserted) == 0 {
			return nil
		}
		var n int64
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM blocklist WHERE owner = $1`, owner).Scan(&n); err != nil {
			return err
		}
		if n > int64(limit) {
			return storage.ErrQuotaExceeded
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: block jids: %w", err)
	}
	return inOrder(jids, inserted), nil
}

// UnblockJIDs removes jids and returns those that were blocked.
func (s *Store) UnblockJIDs(ctx context.Context, owner string, jids []string) ([]string, error) {
	if len(jids) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `DELETE FROM blocklist WHERE owner = $1 AND jid = ANY($2::text[]) RETURNING jid`, owner, jids)
	if err != nil {
		return nil, fmt.Errorf("postgres: unblock jids: %w", err)
	}
	removed, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: unblock jids: %w", err)
	}
	return inOrder(jids, removed), nil
}

// UnblockAllJIDs empties owner's list and returns what it held.
func (s *Store) UnblockAllJIDs(ctx context.Context, owner string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `DELETE FROM blocklist WHERE owner = $1 RETURNING jid`, owner)
	if err != nil {
		return nil, fmt.Errorf("postgres: unblock all jids: %w", err)
	}
	removed, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: unblock all jids: %w", err)
	}
	if len(removed) == 0 {
		return nil, nil
	}
	sort.Strings(removed)
	return removed, nil
}

// inOrder returns the members of set in the order of want, each once: a
// statement returns rows in no particular order.
func inOrder(want, set []string) []string {
	if len(set) == 0 {
		return nil
	}
	in := make(map[string]bool, len(set))
	for _, j := range set {
		in[j] = true
	}
	out := make([]string, 0, len(set))
	for _, j := range want {
		if in[j] {
			out = append(out, j)
			delete(in, j)
		}
	}
	return out
}

package postgres

// XEP-0484 FAST tokens (storage.FASTTokens), in a migration track of their
// own ("fast", migrations_fast/). UseFASTToken locks the rows of the
// owner's client (SELECT ... FOR UPDATE) before it checks the count and
// moves the token, so that two servers sharing the database cannot both
// accept the same count.

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"kontor.im/kontor/core/storage"
)

//go:embed migrations_fast/*.sql
var fastFiles embed.FS

func init() {
	schemas = append(schemas, schema{track: "fast", files: fastFiles, dir: "migrations_fast"})
	ownedTables = append(ownedTables, "fast_tokens")
	credentialTables = append(credentialTables, "fast_tokens")
}

var _ storage.FASTTokens = (*Store)(nil)

// FASTTokens returns the tokens of owner's client, current first.
func (s *Store) FASTTokens(ctx context.Context, owner, client string) ([]storage.FASTToken, error) {
	rows, err := s.pool.Query(ctx, `SELECT slot, mechanism, secret, expires, count FROM fast_tokens
		WHERE owner = $1 AND client = $2 ORDER BY slot`, owner, client)
	if err != nil {
		return nil, fmt.Errorf("postgres: fast tokens: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.FASTToken, error) {
		t := storage.FASTToken{Client: client}
		err := row.Scan(&t.Slot, &t.Mechanism, &t.Secret, &t.Expires, &t.Count)
		t.Expires = t.Expires.UTC()
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: fast tokens: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// PutFASTToken stores t in the new slot.
func (s *Store) PutFASTToken(ctx context.Context, owner string, t storage.FASTToken) error {
	// The account's row is locked (FOR KEY SHARE) until the token is
	// in, so that a concurrent DeleteAccount cannot leave it behind.
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var created int64
		err := tx.QueryRow(ctx, `SELECT created FROM accounts WHERE jid = $1 FOR KEY SHARE`, owner).Scan(&created)
		if errors.Is(err, pgx.ErrNoRows) {
			return storage.ErrNotFound
		}
		if err != nil {
			return err
		}
		if !t.AccountCreated.IsZero() && created != micros(t.AccountCreated) {
			return storage.ErrNotFound // deleted and created anew since
		}
		_, err = tx.Exec(ctx, `INSERT INTO fast_tokens (owner, client, slot, mechanism, secret, expires, count)
			VALUES ($1, $2, 'new', $3, $4, $5, 0) ON CONFLICT (owner, client, slot) DO UPDATE
			SET mechanism = excluded.mechanism, secret = excluded.secret, expires = excluded.expires, count = 0`,
			owner, t.Client, t.Mechanism, t.Secret, t.Expires)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: put fast token: %w", err)
	}
	return nil
}

// UseFASTToken records a login with a token, promoting a new one.
func (s *Store) UseFASTToken(ctx context.Context, owner, client, slot string, secret []byte, count int64) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// Lock both slots of the client, so that a concurrent use of the
		// other one waits too.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM fast_tokens WHERE owner = $1 AND client = $2 FOR UPDATE`,
			owner, client); err != nil {
			return err
		}
		var stored int64
		err := tx.QueryRow(ctx, `SELECT count FROM fast_tokens
			WHERE owner = $1 AND client = $2 AND slot = $3 AND secret = $4`, owner, client, slot, secret).Scan(&stored)
		if errors.Is(err, pgx.ErrNoRows) {
			return storage.ErrNotFound
		}
		if err != nil {
			return err
		}
		if count > 0 && count <= stored {
			return storage.ErrFASTReplay
		}
		if count <= 0 {
			count = stored
		}
		if slot == storage.FASTNew {
			if _, err := tx.Exec(ctx, `DELETE FROM fast_tokens WHERE owner = $1 AND client = $2 AND slot = 'current'`,
				owner, client); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `UPDATE fast_tokens SET slot = 'current', count = $4
			WHERE owner = $1 AND client = $2 AND slot = $3`, owner, client, slot, count)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: use fast token: %w", err)
	}
	return nil
}

// DeleteFASTTokens removes the tokens of a client, or of the owner.
func (s *Store) DeleteFASTTokens(ctx context.Context, owner, client string) (int, error) {
	q, args := `DELETE FROM fast_tokens WHERE owner = $1`, []any{owner}
	if client != "" {
		q, args = q+` AND client = $2`, append(args, client)
	}
	tag, err := s.pool.Exec(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("postgres: delete fast tokens: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// DeleteExpiredFASTTokens removes tokens expired before before.
func (s *Store) DeleteExpiredFASTTokens(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM fast_tokens WHERE expires < $1`, before)
	if err != nil {
		return 0, fmt.Errorf("postgres: delete expired fast tokens: %w", err)
	}
	return tag.RowsAffected(), nil
}

package sqlite

// XEP-0484 FAST tokens (storage.FASTTokens), in a migration track of their
// own ("fast", migrations_fast/). Writes go through the single writer
// connection in BEGIN IMMEDIATE transactions, which makes UseFASTToken's
// check and change atomic against every other writer.

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"time"

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
	rows, err := s.r.QueryContext(ctx, `SELECT slot, mechanism, secret, expires, count FROM fast_tokens
		WHERE owner = $1 AND client = $2 ORDER BY slot`, owner, client)
	if err != nil {
		return nil, fmt.Errorf("sqlite: fast tokens: %w", err)
	}
	defer rows.Close()
	var out []storage.FASTToken
	for rows.Next() {
		t := storage.FASTToken{Client: client}
		var expires int64
		if err := rows.Scan(&t.Slot, &t.Mechanism, &t.Secret, &expires, &t.Count); err != nil {
			return nil, fmt.Errorf("sqlite: fast tokens: %w", err)
		}
		t.Expires = time.Unix(0, expires).UTC()
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: fast tokens: %w", err)
	}
	return out, nil
}

// PutFASTToken stores t in the new slot.
func (s *Store) PutFASTToken(ctx context.Context, owner string, t storage.FASTToken) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO fast_tokens (owner, client, slot, mechanism, secret, expires, count)
			SELECT $1, $2, 'new', $3, $4, $5, 0
			WHERE EXISTS (SELECT 1 FROM accounts WHERE jid = $1 AND ($6 OR created = $7))
			ON CONFLICT (owner, client, slot) DO UPDATE
			SET mechanism = excluded.mechanism, secret = excluded.secret, expires = excluded.expires, count = 0`,
			owner, t.Client, t.Mechanism, t.Secret, t.Expires.UnixNano(), t.AccountCreated.IsZero(), micros(t.AccountCreated))
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
		return fmt.Errorf("sqlite: put fast token: %w", err)
	}
	return nil
}

// UseFASTToken records a login with a token, promoting a new one.
func (s *Store) UseFASTToken(ctx context.Context, owner, client, slot string, secret []byte, count int64) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		var stored int64
		err := tx.QueryRowContext(ctx, `SELECT count FROM fast_tokens
			WHERE owner = $1 AND client = $2 AND slot = $3 AND secret = $4`, owner, client, slot, secret).Scan(&stored)
		if errors.Is(err, sql.ErrNoRows) {
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
			if _, err := tx.ExecContext(ctx, `DELETE FROM fast_tokens WHERE owner = $1 AND client = $2 AND slot = 'current'`,
				owner, client); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE fast_tokens SET slot = 'current', count = $4
			WHERE owner = $1 AND client = $2 AND slot = $3`, owner, client, slot, count)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: use fast token: %w", err)
	}
	return nil
}

// DeleteFASTTokens removes the tokens of a client, or of the owner.
func (s *Store) DeleteFASTTokens(ctx context.Context, owner, client string) (int, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		q, args := `DELETE FROM fast_tokens WHERE owner = $1`, []any{owner}
		if client != "" {
			q, args = q+` AND client = $2`, append(args, client)
		}
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete fast tokens: %w", err)
	}
	return int(n), nil
}

// DeleteExpiredFASTTokens removes tokens expired before before.
func (s *Store) DeleteExpiredFASTTokens(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM fast_tokens WHERE expires < $1`, before.UnixNano())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete expired fast tokens: %w", err)
	}
	return n, nil
}

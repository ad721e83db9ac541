package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"kontor.im/kontor/core/storage"
)

// CreateAccount stores a new account; a zero Created means now and an empty
// Domain is taken from the JID.
func (s *Store) CreateAccount(ctx context.Context, a storage.Account) error {
	if err := checkCredentials(a.Credentials); err != nil {
		return err
	}
	if a.Created.IsZero() {
		a.Created = time.Now()
	}
	if a.Domain == "" {
		a.Domain = domainOf(a.JID)
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockAccountChanges(ctx, tx); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO accounts (jid, domain, disabled, created)
			VALUES ($1, $2, $3, $4) ON CONFLICT (jid) DO NOTHING`,
			a.JID, a.Domain, a.Disabled, micros(a.Created))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return storage.ErrExists
		}
		if err := insertCredentials(ctx, tx, a.JID, a.Credentials); err != nil {
			return err
		}
		return logChange(ctx, tx, a.JID, storage.AccountCreated)
	})
	if err != nil {
		return fmt.Errorf("postgres: create account: %w", err)
	}
	return nil
}

const selectAccounts = `SELECT a.jid, a.domain, a.disabled, a.created,
	c.hash, c.salt, c.iterations, c.stored_key, c.server_key
	FROM accounts AS a LEFT JOIN account_credentials AS c ON c.jid = a.jid`

// Account returns one account with its credentials.
func (s *Store) Account(ctx context.Context, jid string) (storage.Account, error) {
	accts, err := s.queryAccounts(ctx, selectAccounts+` WHERE a.jid = $1 ORDER BY c.pos`, jid)
	if err != nil {
		return storage.Account{}, fmt.Errorf("postgres: account: %w", err)
	}
	if len(accts) == 0 {
		return storage.Account{}, fmt.Errorf("postgres: account: %w", storage.ErrNotFound)
	}
	return accts[0], nil
}

// ListAccounts lists the accounts of domain ("" for all) ordered by JID, each
// with its credentials.
func (s *Store) ListAccounts(ctx context.Context, domain string) ([]storage.Account, error) {
	var (
		accts []storage.Account
		err   error
	)
	if domain == "" {
		accts, err = s.queryAccounts(ctx, selectAccounts+` ORDER BY a.jid, c.pos`)
	} else {
		accts, err = s.queryAccounts(ctx, selectAccounts+` WHERE a.domain = $1 ORDER BY a.jid, c.pos`, domain)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: list accounts: %w", err)
	}
	return accts, nil
}

// queryAccounts runs a selectAccounts query (one row per credential, ordered
// by JID) and folds the rows into accounts.
func (s *Store) queryAccounts(ctx context.Context, query string, args ...any) ([]storage.Account, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var accts []storage.Account
	for rows.Next() {
		var (
			a          storage.Account
			created    int64
			hash       *string
			iterations *int32
			c          storage.SCRAMCredential
		)
		if err := rows.Scan(&a.JID, &a.Domain, &a.Disabled, &created,
			&hash, &c.Salt, &iterations, &c.StoredKey, &c.ServerKey); err != nil {
			return nil, err
		}
		if n := len(accts); n == 0 || accts[n-1].JID != a.JID {
			a.Created = fromMicros(created)
			accts = append(accts, a)
		}
		if hash != nil {
			c.Hash = *hash
			if iterations != nil {
				c.Iterations = int(*iterations)
			}
			last := &accts[len(accts)-1]
			last.Credentials = append(last.Credentials, c)
		}
	}
	return accts, rows.Err()
}

// SetCredentials replaces all of an account's credentials.
func (s *Store) SetCredentials(ctx context.Context, jid string, creds []storage.SCRAMCredential) error {
	if err := checkCredentials(creds); err != nil {
		return err
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockAccountChanges(ctx, tx); err != nil {
			return err
		}
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM accounts WHERE jid = $1 FOR UPDATE`, jid).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return storage.ErrNotFound
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM account_credentials WHERE jid = $1`, jid); err != nil {
			return err
		}
		if err := insertCredentials(ctx, tx, jid, creds); err != nil {
			return err
		}
		for _, table := range credentialTables {
			if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE owner = $1`, jid); err != nil {
				return fmt.Errorf("%s: %w", table, err)
			}
		}
		return logChange(ctx, tx, jid, storage.AccountCredentials)
	})
	if err != nil {
		return fmt.Errorf("postgres: set credentials: %w", err)
	}
	return nil
}

// AddCredential adds a credential for a hash the account has none for.
func (s *Store) AddCredential(ctx context.Context, jid string, c storage.SCRAMCredential) (bool, error) {
	if c.Hash == "" {
		return false, errors.New("postgres: credential without a hash name")
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO account_credentials (jid, hash, pos, salt, iterations, stored_key, server_key)
		SELECT a.jid, $2, (SELECT COALESCE(MAX(pos), -1) + 1 FROM account_credentials WHERE jid = a.jid), $3, $4, $5, $6
		FROM accounts a WHERE a.jid = $1
		ON CONFLICT (jid, hash) DO NOTHING`, jid, c.Hash, nonNil(c.Salt), c.Iterations, nonNil(c.StoredKey), nonNil(c.ServerKey))
	if err != nil {
		return false, fmt.Errorf("postgres: add credential: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return true, nil
	}
	var one int
	switch err := s.pool.QueryRow(ctx, `SELECT 1 FROM accounts WHERE jid = $1`, jid).Scan(&one); {
	case errors.Is(err, pgx.ErrNoRows):
		return false, storage.ErrNotFound
	case err != nil:
		return false, fmt.Errorf("postgres: add credential: %w", err)
	}
	return false, nil
}

// SetDisabled disables or enables an account. It logs the change even if the
// flag already had that value.
func (s *Store) SetDisabled(ctx context.Context, jid string, disabled bool) error {
	kind := storage.AccountEnabled
	if disabled {
		kind = storage.AccountDisabled
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockAccountChanges(ctx, tx); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE accounts SET disabled = $2 WHERE jid = $1`, jid, disabled)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return storage.ErrNotFound
		}
		return logChange(ctx, tx, jid, kind)
	})
	if err != nil {
		return fmt.Errorf("postgres: set disabled: %w", err)
	}
	return nil
}

// credentialTables are the tables whose rows stand for the account's
// password (such as FAST tokens) and go when SetCredentials changes it.
var credentialTables []string

// ownedTables are the tables whose rows belong to an owner and go with the
// account. Other users' roster items and requests that name the account stay.
var ownedTables = []string{
	"roster_items", "roster_versions", "subscription_requests",
	"offline_messages", "vcards", "private_xml", "last_activity",
}

// DeleteAccount removes the account and everything it owns in one
// transaction; ErrNotFound if there is no such account (then nothing is
// deleted).
func (s *Store) DeleteAccount(ctx context.Context, jid string) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockAccountChanges(ctx, tx); err != nil {
			return err
		}
		// Credentials go by ON DELETE CASCADE.
		tag, err := tx.Exec(ctx, `DELETE FROM accounts WHERE jid = $1`, jid)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return storage.ErrNotFound
		}
		// Wait for a StoreOffline in progress, so its message goes too.
		if err := lockOwnerOffline(ctx, tx, jid); err != nil {
			return err
		}
		for _, table := range ownedTables {
			if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE owner = $1`, jid); err != nil {
				return fmt.Errorf("%s: %w", table, err)
			}
		}
		return logChange(ctx, tx, jid, storage.AccountDeleted)
	})
	if err != nil {
		return fmt.Errorf("postgres: delete account: %w", err)
	}
	// A logout time still pending goes too (a flush meanwhile skips it:
	// the account is gone).
	s.forgetLastActivity(jid)
	return nil
}

// AccountChanges returns up to limit changes after seq after, oldest first
// (limit <= 0: all).
func (s *Store) AccountChanges(ctx context.Context, after int64, limit int) ([]storage.AccountChange, error) {
	var lim any // NULL: no limit
	if limit > 0 {
		lim = int64(limit)
	}
	rows, err := s.pool.Query(ctx, `SELECT seq, jid, kind, at FROM account_changes
		WHERE seq > $1 ORDER BY seq LIMIT $2`, after, lim)
	if err != nil {
		return nil, fmt.Errorf("postgres: account changes: %w", err)
	}
	defer rows.Close()
	var changes []storage.AccountChange
	for rows.Next() {
		var (
			c    storage.AccountChange
			kind string
			at   int64
		)
		if err := rows.Scan(&c.Seq, &c.JID, &kind, &at); err != nil {
			return nil, fmt.Errorf("postgres: account changes: %w", err)
		}
		c.Kind, c.At = storage.AccountChangeKind(kind), fromMicros(at)
		changes = append(changes, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: account changes: %w", err)
	}
	return changes, nil
}

// LastAccountChange returns the highest change Seq, 0 for an empty log.
func (s *Store) LastAccountChange(ctx context.Context) (int64, error) {
	var seq int64
	if err := s.pool.QueryRow(ctx, `SELECT COALESCE(MAX(seq), 0) FROM account_changes`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("postgres: last account change: %w", err)
	}
	return seq, nil
}

// PruneAccountChanges deletes changes older than before (the identity
// column keeps Seq from being reused).
func (s *Store) PruneAccountChanges(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM account_changes WHERE at < $1`, micros(before))
	if err != nil {
		return 0, fmt.Errorf("postgres: prune account changes: %w", err)
	}
	return tag.RowsAffected(), nil
}

// lockAccountChanges serialises account mutations until the transaction
// ends: taken first in every transaction that appends to account_changes.
func lockAccountChanges(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, 0)`, lockAccountLog)
	return err
}

func insertCredentials(ctx context.Context, tx pgx.Tx, jid string, creds []storage.SCRAMCredential) error {
	for i, c := range creds {
		if _, err := tx.Exec(ctx, `INSERT INTO account_credentials
			(jid, hash, pos, salt, iterations, stored_key, server_key)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			jid, c.Hash, i, nonNil(c.Salt), c.Iterations, nonNil(c.StoredKey), nonNil(c.ServerKey)); err != nil {
			return err
		}
	}
	return nil
}

func logChange(ctx context.Context, tx pgx.Tx, jid string, kind storage.AccountChangeKind) error {
	_, err := tx.Exec(ctx, `INSERT INTO account_changes (jid, kind, at) VALUES ($1, $2, $3)`,
		jid, string(kind), micros(time.Now()))
	return err
}

// checkCredentials rejects what the schema would: one credential per hash.
func checkCredentials(creds []storage.SCRAMCredential) error {
	seen := make(map[string]bool, len(creds))
	for _, c := range creds {
		if c.Hash == "" {
			return errors.New("postgres: credential without a hash name")
		}
		if seen[c.Hash] {
			return fmt.Errorf("postgres: two credentials for hash %s", c.Hash)
		}
		seen[c.Hash] = true
	}
	return nil
}

// domainOf returns the domainpart of a bare JID.
func domainOf(jid string) string {
	if i := strings.IndexByte(jid, '@'); i >= 0 {
		return jid[i+1:]
	}
	return jid
}

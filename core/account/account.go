// Package account manages local accounts: creating them with SCRAM
// credentials derived from a password (the password itself is never
// stored), changing passwords, disabling, deleting, and authenticating
// against them. It is used by the server (SASL, in-band password change)
// and by the `kontor user` commands, which may run while the server does:
// every change lands in the store's account change log, and Watch lets a
// running server act on it (closing a disabled or deleted user's sessions).
package account

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/sasl"
	"kontor.im/kontor/core/storage"
)

// Iterations is the PBKDF2 iteration count of new credentials, for both
// hashes (RFC 7677 asks for at least 4096). One count for both matters: the
// SASL server announces the same count for unknown users (see
// sasl.WithIterations), so a count that differed per hash or per account
// would tell an attacker which accounts exist. Only PLAIN logins and
// password changes pay it on the server; SCRAM makes the client do it.
const Iterations = 10000

// MinPasswordLength is the shortest password accepted.
const MinPasswordLength = 8

// ErrWeakPassword is returned for passwords below MinPasswordLength.
var ErrWeakPassword = fmt.Errorf("account: password must have at least %d characters", MinPasswordLength)

// Credentials derives the stored SCRAM credentials for a password, with
// the iteration count every account shares. It applies no password policy:
// callers check theirs first (Create and SetPassword check
// MinPasswordLength; the register module has its own options).
func Credentials(password string) ([]storage.SCRAMCredential, error) {
	var out []storage.SCRAMCredential
	for _, h := range []sasl.Hash{sasl.SHA256, sasl.SHA1} {
		c, err := sasl.NewCredential(h, password, Iterations)
		if err != nil {
			return nil, fmt.Errorf("account: %w", err)
		}
		out = append(out, storage.SCRAMCredential{Hash: string(c.Hash), Salt: c.Salt,
			Iterations: c.Iterations, StoredKey: c.StoredKey, ServerKey: c.ServerKey})
	}
	return out, nil
}

// Create adds an account with a password.
func Create(ctx context.Context, st storage.Accounts, j jid.JID, password string) error {
	if j.Local() == "" || !j.IsBare() {
		return fmt.Errorf("account: %q is not an account address (user@domain)", j)
	}
	if len([]rune(password)) < MinPasswordLength {
		return ErrWeakPassword
	}
	creds, err := Credentials(password)
	if err != nil {
		return err
	}
	return st.CreateAccount(ctx, storage.Account{JID: j.String(), Domain: j.Domain(), Created: time.Now().UTC(), Credentials: creds})
}

// SetPassword replaces an account's credentials.
func SetPassword(ctx context.Context, st storage.Accounts, j jid.JID, password string) error {
	if len([]rune(password)) < MinPasswordLength {
		return ErrWeakPassword
	}
	creds, err := Credentials(password)
	if err != nil {
		return err
	}
	return st.SetCredentials(ctx, j.String(), creds)
}

// Authenticator authenticates against the local accounts of one domain.
//
// An account imported from another server may have SCRAM-SHA-1 hashes only
// (ejabberd's and Prosody's default); a client that picks SCRAM-SHA-256
// cannot log it in. A PLAIN login reveals the password, so VerifyPlain then
// adds the SCRAM-SHA-256 credential (storage.Accounts.AddCredential, which
// never overwrites one a password change set meanwhile). Offering only
// PLAIN for a while (auth.mechanisms) upgrades every account that logs in.
type Authenticator struct {
	Store  storage.Accounts
	Domain string
	// Log, if set, records credential upgrades and their failures.
	Log *slog.Logger
}

var _ sasl.Authenticator = Authenticator{}

func (a Authenticator) lookup(ctx context.Context, username string) (storage.Account, error) {
	j, err := jid.New(username, a.Domain, "")
	if err != nil {
		return storage.Account{}, sasl.ErrUnknownUser
	}
	acc, err := a.Store.Account(ctx, j.String())
	if errors.Is(err, storage.ErrNotFound) {
		return acc, sasl.ErrUnknownUser
	}
	if err != nil {
		return acc, err
	}
	sasl.NoteIncarnation(ctx, acc.Created)
	return acc, nil
}

// Credential implements sasl.Authenticator.
func (a Authenticator) Credential(ctx context.Context, username string, h sasl.Hash) (sasl.Credential, error) {
	acc, err := a.lookup(ctx, username)
	if err != nil {
		return sasl.Credential{}, err
	}
	for _, c := range acc.Credentials {
		if c.Hash == string(h) {
			cred := sasl.Credential{Hash: h, Salt: c.Salt, Iterations: c.Iterations, StoredKey: c.StoredKey, ServerKey: c.ServerKey}
			if acc.Disabled {
				// Reported only to a client that proves the password.
				return cred, sasl.ErrDisabled
			}
			return cred, nil
		}
	}
	return sasl.Credential{}, sasl.ErrNoSCRAM
}

// VerifyPlain implements sasl.Authenticator by deriving the key from the
// stored salt and comparing in constant time.
func (a Authenticator) VerifyPlain(ctx context.Context, username, password string) error {
	acc, err := a.lookup(ctx, username)
	if err != nil {
		return err
	}
	// SHA-256 when the account has it; else SHA-1 (an account imported
	// from another server with SCRAM-SHA-1 hashes only, until its first
	// password change).
	for _, h := range []sasl.Hash{sasl.SHA256, sasl.SHA1} {
		for _, c := range acc.Credentials {
			if c.Hash != string(h) {
				continue
			}
			cred := sasl.Credential{Hash: h, Salt: c.Salt, Iterations: c.Iterations, StoredKey: c.StoredKey, ServerKey: c.ServerKey}
			if sasl.VerifyPlainWithCredential(cred, password) {
				if acc.Disabled {
					return sasl.ErrDisabled
				}
				if h != sasl.SHA256 {
					a.upgrade(ctx, acc.JID, password)
				}
				return nil
			}
			return sasl.ErrBadPassword
		}
	}
	return sasl.ErrBadPassword
}

// upgrade adds the SCRAM-SHA-256 credential of an account that lacks it,
// after a PLAIN login proved password. A failure costs the login nothing:
// the next PLAIN login tries again.
func (a Authenticator) upgrade(ctx context.Context, jid, password string) {
	c, err := sasl.NewCredential(sasl.SHA256, password, Iterations)
	if err == nil {
		var added bool
		added, err = a.Store.AddCredential(ctx, jid, storage.SCRAMCredential{Hash: string(c.Hash), Salt: c.Salt,
			Iterations: c.Iterations, StoredKey: c.StoredKey, ServerKey: c.ServerKey})
		if added && a.Log != nil {
			a.Log.Info("account upgraded to SCRAM-SHA-256 at a PLAIN login (it had SCRAM-SHA-1 hashes only)", "jid", jid)
		}
	}
	if err != nil && a.Log != nil {
		a.Log.Warn("could not add the SCRAM-SHA-256 credential of an account that has SCRAM-SHA-1 only", "jid", jid, "err", err)
	}
}

// Closer closes the sessions of an account; the router implements it.
type Closer interface {
	// CloseAccount closes the account's sessions whose client began to
	// authenticate before the time given (if not zero), and those
	// authenticated against another incarnation than the one given (if
	// not zero; sasl.Incarnation), and returns how many it closed.
	CloseAccount(bare jid.JID, before, incarnation time.Time) int
}

// How long the account change log is kept, and how often Watch prunes it.
// Variables so that tests can shorten them.
var (
	ChangeLogKeep          = 24 * time.Hour
	ChangeLogPruneInterval = time.Hour
)

// Watch follows the account change log from its current end and closes the
// sessions of accounts that are disabled or deleted, checking every
// interval, until ctx ends. It is how `kontor user disable` reaches a
// running server (and every node of a cluster sharing one database).
//
// By the time Watch reads a deletion, the address may have been given to
// someone else (`kontor gdpr erase`, then `kontor user add`), who may
// have logged in: then only the sessions authenticated against the
// deleted account (another incarnation, sasl.Incarnation: its creation
// time) are closed, and the new owner's stay. Otherwise (the account
// still disabled or gone, disabled and enabled again, or unreadable)
// every session that began to authenticate before Watch read the change
// is closed; nothing depends on the clocks of other processes or nodes.
//
// It also prunes the log: changes older than ChangeLogKeep are deleted
// every ChangeLogPruneInterval, since the log names accounts (personal
// data, also of deleted accounts) and every server reads it within
// seconds.
func Watch(ctx context.Context, st storage.Accounts, closer Closer, interval time.Duration, log *slog.Logger) error {
	seq, err := st.LastAccountChange(ctx)
	if err != nil {
		return fmt.Errorf("account: watch: %w", err)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	prune := time.NewTicker(ChangeLogPruneInterval)
	defer prune.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-prune.C:
			if n, err := st.PruneAccountChanges(ctx, time.Now().Add(-ChangeLogKeep)); err != nil {
				if ctx.Err() == nil {
					log.Warn("pruning the account change log failed", "err", err)
				}
			} else if n > 0 {
				log.Debug("account change log pruned", "changes", n)
			}
			continue
		case <-t.C:
		}
		for {
			changes, err := st.AccountChanges(ctx, seq, 500)
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("reading the account change log failed", "err", err)
				}
				break
			}
			for _, ch := range changes {
				seq = ch.Seq
				if ch.Kind != storage.AccountDisabled && ch.Kind != storage.AccountDeleted {
					continue
				}
				j, err := jid.Parse(ch.JID)
				if err != nil {
					continue
				}
				before, incarnation := time.Now(), time.Time{}
				acc, err := st.Account(ctx, ch.JID)
				if err == nil && !acc.Disabled && ch.Kind == storage.AccountDeleted {
					// Created anew since: the former owner's sessions.
					before, incarnation = time.Time{}, acc.Created
				}
				if n := closer.CloseAccount(j, before, incarnation); n > 0 {
					if incarnation.IsZero() {
						log.Info("closed sessions of account", "account", ch.JID, "change", string(ch.Kind), "sessions", n)
					} else {
						log.Info("closed the former owner's sessions of an address created anew", "account", ch.JID,
							"change", string(ch.Kind), "sessions", n)
					}
				}
			}
			if len(changes) < 500 {
				break
			}
		}
	}
}

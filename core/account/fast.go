package account

// FAST tokens (XEP-0484): what a client gets after a password login so
// that it can log in again in one round trip, with an HT mechanism
// (core/sasl). The session layer asks FAST to issue and check them.
//
// # What is stored
//
// An HT mechanism proves knowledge of the token with HMAC(token, ...), so
// the server needs the token itself at login: a hash of it, as stored for
// passwords, could not check the proof. The token is therefore derived,
// never stored: token = base64url(HMAC-SHA-256(Key, label || secret)),
// where secret is 32 random bytes kept in the row (storage.FASTTokens) and
// Key is a server key that is not kept beside the data (cmd/kontor derives
// it from the sealing key). A copy of the database alone lets nobody log
// in. Proofs are compared in constant time (sasl.VerifyHT).
//
// # Rotation and replay
//
// Tokens live in the two slots of XEP-0484 §6.1, per account and client
// (a hash of the client's SASL2 <user-agent id/>): a token is issued into
// "new" and moves to "current" when first used, retiring the older one.
// A login with a token that has less than half its lifetime left is given
// a new token, which does not invalidate the old one until it is used. A
// token is bound to the mechanism it was requested for. A 'count' that is
// not above the last one used with the token is a replay and fails; the
// server does not accept TLS 0-RTT, so a client need not send one.

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/sasl"
	"kontor.im/kontor/core/storage"
)

// DefaultFASTLifetime is how long a FAST token is valid unless configured
// otherwise.
const DefaultFASTLifetime = 14 * 24 * time.Hour

// FASTStore is what FAST needs from a store.
type FASTStore interface {
	storage.Accounts
	storage.FASTTokens
}

// FAST issues and checks XEP-0484 tokens.
type FAST struct {
	Store FASTStore
	// Key derives tokens from the stored secrets; at least 16 bytes, the
	// same on every node and across restarts (or every token stops
	// working).
	Key []byte
	// Lifetime of a new token (default DefaultFASTLifetime).
	Lifetime time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

const (
	fastSecretLen   = 32
	fastTokenLabel  = "kontor fast token\x00"
	fastClientLabel = "kontor fast client\x00"
)

func (f *FAST) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

func (f *FAST) lifetime() time.Duration {
	if f.Lifetime > 0 {
		return f.Lifetime
	}
	return DefaultFASTLifetime
}

// client is what identifies a client installation in the store: a hash of
// its user-agent id, so that the id itself is not kept.
func client(userAgentID string) string {
	sum := sha256.Sum256([]byte(fastClientLabel + userAgentID))
	return hex.EncodeToString(sum[:])
}

// token derives the token of a stored secret.
func (f *FAST) token(secret []byte) []byte {
	m := hmac.New(sha256.New, f.Key)
	m.Write([]byte(fastTokenLabel))
	m.Write(secret)
	return []byte(base64.RawURLEncoding.EncodeToString(m.Sum(nil)))
}

func (f *FAST) check() error {
	if f == nil || f.Store == nil || len(f.Key) < 16 {
		return errors.New("account: FAST needs a store and a key of at least 16 bytes")
	}
	return nil
}

// Issue makes a new token for an account's client, bound to mechanism,
// and stores it in the client's "new" slot. Expired tokens of every
// account are removed on the way. When ctx carries the incarnation the
// login was checked against (sasl.IncarnationFrom), a token for an
// account deleted and created anew since is not stored (an error).
func (f *FAST) Issue(ctx context.Context, account jid.JID, userAgentID, mechanism string) (string, time.Time, error) {
	if err := f.check(); err != nil {
		return "", time.Time{}, err
	}
	now := f.now()
	if _, err := f.Store.DeleteExpiredFASTTokens(ctx, now); err != nil {
		return "", time.Time{}, fmt.Errorf("account: issue FAST token: %w", err)
	}
	secret := make([]byte, fastSecretLen)
	rand.Read(secret)
	expires := now.Add(f.lifetime()).UTC().Truncate(time.Second)
	t := storage.FASTToken{Client: client(userAgentID), Mechanism: mechanism, Secret: secret, Expires: expires}
	// The token is for the account the login was checked against: not
	// for one created anew under the address meanwhile.
	if created, ok := sasl.IncarnationFrom(ctx); ok {
		t.AccountCreated = created
	}
	err := f.Store.PutFASTToken(ctx, account.Bare().String(), t)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("account: issue FAST token: %w", err)
	}
	return string(f.token(secret)), expires, nil
}

// Verify checks a login with a token: proves reports whether the
// client's proof matches a candidate token (the caller compares in
// constant time). It returns the token that matched and whether it is
// due for rotation. An unknown account is sasl.ErrUnknownUser, no
// matching token (wrong, or bound to another mechanism)
// sasl.ErrBadPassword, a matching token that has expired sasl.ErrExpired, a replayed count sasl.ErrReplayed, and a disabled
// account sasl.ErrDisabled (only once the token matched).
func (f *FAST) Verify(ctx context.Context, account jid.JID, userAgentID, mechanism string, count int64,
	proves func(token []byte) bool) (token []byte, rotate bool, err error) {
	if err := f.check(); err != nil {
		return nil, false, err
	}
	owner := account.Bare().String()
	acc, err := f.Store.Account(ctx, owner)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, false, sasl.ErrUnknownUser
	}
	if err != nil {
		return nil, false, fmt.Errorf("account: verify FAST token: %w", err)
	}
	sasl.NoteIncarnation(ctx, acc.Created)
	cl := client(userAgentID)
	tokens, err := f.Store.FASTTokens(ctx, owner, cl)
	if err != nil {
		return nil, false, fmt.Errorf("account: verify FAST token: %w", err)
	}
	now := f.now()
	var match *storage.FASTToken
	expired := false
	// The new slot first (XEP-0484 §6.1), then the current one.
	for i := len(tokens) - 1; i >= 0; i-- {
		t := &tokens[i]
		candidate := f.token(t.Secret)
		if !proves(candidate) || t.Mechanism != mechanism || match != nil {
			continue
		}
		if !now.Before(t.Expires) {
			expired = true
			continue
		}
		match, token = t, candidate
	}
	switch {
	case match == nil && expired:
		return nil, false, sasl.ErrExpired
	case match == nil:
		return nil, false, sasl.ErrBadPassword
	}
	switch err := f.Store.UseFASTToken(ctx, owner, cl, match.Slot, match.Secret, count); {
	case errors.Is(err, storage.ErrFASTReplay):
		return nil, false, sasl.ErrReplayed
	case errors.Is(err, storage.ErrNotFound):
		// Used up or removed meanwhile (a rotation by a concurrent login,
		// a password change).
		return nil, false, sasl.ErrBadPassword
	case err != nil:
		return nil, false, fmt.Errorf("account: verify FAST token: %w", err)
	}
	if acc.Disabled {
		return nil, false, sasl.ErrDisabled
	}
	return token, match.Expires.Sub(now) < f.lifetime()/2, nil
}

// Invalidate removes the tokens of an account's client (a client that
// logs out, XEP-0484 §5.5).
func (f *FAST) Invalidate(ctx context.Context, account jid.JID, userAgentID string) error {
	if err := f.check(); err != nil {
		return err
	}
	if _, err := f.Store.DeleteFASTTokens(ctx, account.Bare().String(), client(userAgentID)); err != nil {
		return fmt.Errorf("account: invalidate FAST tokens: %w", err)
	}
	return nil
}

package ldapsync

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"

	"kontor.im/kontor/core/account"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/limit"
	"kontor.im/kontor/core/sasl"
	"kontor.im/kontor/core/storage"
)

// AuthStore is what the authenticator reads: accounts and the links.
type AuthStore interface {
	storage.Accounts
	storage.LDAPState
}

// AuthOptions build an Authenticator.
type AuthOptions struct {
	Config Config // as configured
	Domain string
	Store  AuthStore
	Client *Client
	Log    *slog.Logger
	// Guard is the server's authentication back-off (core/limit), the one
	// core/session counts failures in. The authenticator consults it for
	// the account before it binds, so an account in back-off costs the
	// directory nothing; optional.
	Guard *limit.Auth
}

// Authenticator verifies the passwords of one domain whose accounts come
// from the directory, by binding as the user (SASL PLAIN, over TLS only),
// and those of local accounts (guests) against their stored SCRAM
// credential. It implements sasl.Authenticator and core/session's
// MechanismLister.
//
// Lockout safety: Kontor must never lock a directory account by itself.
// core/session counts failed logins per address before a password is
// checked and per account after; on top of that, before any bind this
// authenticator refuses an account that is in back-off, and a wrong
// password that the directory refused within bad_password_cache (the
// stale password of a phone that retries) is refused again without a bind.
type Authenticator struct {
	cfg    Config // resolved
	domain string
	store  AuthStore
	client *Client
	mapper *mapper
	log    *slog.Logger
	guard  *limit.Auth
	local  account.Authenticator
	bad    *badPasswords
}

var _ sasl.Authenticator = (*Authenticator)(nil)

// ErrBackoff is returned for an account in back-off; the client is told
// to try again later (temporary-auth-failure), as core/session does.
var ErrBackoff = errors.New("ldapsync: account in back-off after failed logins; the directory was not asked")

// NewAuthenticator builds the authenticator of a domain.
func NewAuthenticator(o AuthOptions) (*Authenticator, error) {
	if o.Store == nil || o.Client == nil || o.Log == nil || o.Domain == "" {
		return nil, errors.New("ldapsync: an authenticator needs a store, a client, a logger and a domain")
	}
	cfg := o.Config.Resolved()
	a := &Authenticator{cfg: cfg, domain: o.Domain, store: o.Store, client: o.Client, mapper: newMapper(cfg, o.Domain),
		log: o.Log, guard: o.Guard, local: account.Authenticator{Store: o.Store, Domain: o.Domain, Log: o.Log}}
	if cfg.Login.BadPasswordCache > 0 {
		a.bad = newBadPasswords(cfg.Login.BadPasswordCache, 10000)
	}
	return a, nil
}

// Mechanisms offers PLAIN only, and only over TLS: a directory can verify
// nothing else, and a client offered SCRAM picks it and cannot fall back.
// Local guest accounts log in through PLAIN too.
func (a *Authenticator) Mechanisms(tlsOn bool, _ sasl.ChannelBinding) []string {
	if !tlsOn {
		return nil
	}
	return []string{sasl.Plain}
}

// Credential returns ErrNoSCRAM for directory accounts and the stored
// credential of local ones.
func (a *Authenticator) Credential(ctx context.Context, username string, h sasl.Hash) (sasl.Credential, error) {
	j, err := jid.New(username, a.domain, "")
	if err != nil {
		return sasl.Credential{}, sasl.ErrUnknownUser
	}
	_, err = a.store.LDAPLinkByJID(ctx, Source, j.String())
	switch {
	case err == nil:
		return sasl.Credential{}, sasl.ErrNoSCRAM
	case !errors.Is(err, storage.ErrNotFound):
		return sasl.Credential{}, err
	}
	return a.local.Credential(ctx, username, h)
}

// VerifyPlain checks a password: by a bind for a directory account, with
// the stored credential for a local one.
func (a *Authenticator) VerifyPlain(ctx context.Context, username, password string) error {
	j, err := jid.New(username, a.domain, "")
	if err != nil {
		return sasl.ErrUnknownUser
	}
	bare := j.String()
	link, err := a.store.LDAPLinkByJID(ctx, Source, bare)
	if errors.Is(err, storage.ErrNotFound) {
		return a.local.VerifyPlain(ctx, username, password)
	}
	if err != nil {
		return fmt.Errorf("ldapsync: %w", err)
	}
	acc, err := a.store.Account(ctx, bare)
	if errors.Is(err, storage.ErrNotFound) {
		return sasl.ErrUnknownUser
	}
	if err != nil {
		return fmt.Errorf("ldapsync: %w", err)
	}
	sasl.NoteIncarnation(ctx, acc.Created)
	log := a.log.With("account", bare)
	if a.guard != nil {
		if w := a.guard.Wait(netip.Addr{}, bare); w > 0 {
			log.Info("login refused before the directory: account in back-off", "retry_in", w.Round(time.Second))
			return ErrBackoff
		}
	}
	key := a.bad.key(bare, password, link.Attrs)
	if a.bad.has(key) {
		log.Info("login refused: the directory refused this password moments ago (not asked again)",
			"reason", string(ReasonWrongPassword))
		return sasl.ErrBadPassword
	}
	dn, err := a.userDN(ctx, j, link)
	if err != nil {
		return err
	}
	if dn == "" {
		log.Info("login refused: the entry is no longer in the directory", "stable_id", link.StableID)
		return sasl.ErrBadPassword
	}
	err = a.client.bindAs(ctx, dn, password)
	var be *BindError
	if errors.As(err, &be) {
		log.Info("login refused by the directory", "reason", string(be.Reason), "sub_code", fmt.Sprintf("%x", be.SubCode), "dn", dn)
		if be.Reason == ReasonWrongPassword || be.Reason == ReasonInvalidCredentials {
			a.bad.add(key)
		}
		// Whatever the reason, the client is only told not-authorized.
		return sasl.ErrBadPassword
	}
	if err != nil {
		return err
	}
	if acc.Disabled {
		// Only a client that knows the password learns this.
		return sasl.ErrDisabled
	}
	return nil
}

// userDN is the DN to bind as: the template's, or the entry's found by its
// stable id (so a rename or a move since the last sync breaks nothing).
func (a *Authenticator) userDN(ctx context.Context, j jid.JID, link storage.LDAPLink) (string, error) {
	if t := a.cfg.Login.DNTemplate; t != "" {
		return strings.ReplaceAll(t, "{username}", ldap.EscapeDN(j.Local())), nil
	}
	dn, err := findDN(ctx, a.client, a.mapper, a.cfg.Users, link.StableID)
	if err != nil {
		return "", fmt.Errorf("ldapsync: finding %s in the directory: %w", j, err)
	}
	return dn, nil
}

// badPasswords remembers, for a while, the (account, password, entry
// state) triples the directory refused, as HMACs under a key that exists
// only in this process's memory: never a password. The entry's stored
// attributes are part of the triple, so when a sync sees the entry change
// (unlocked, enabled again) earlier refusals no longer count. A password
// reset in the directory is not visible to a sync; a user whose new
// password happens to be the one just refused waits for the TTL.
type badPasswords struct {
	ttl    time.Duration
	max    int
	secret [32]byte

	mu      sync.Mutex
	entries map[[32]byte]time.Time // expiry
}

func newBadPasswords(ttl time.Duration, max int) *badPasswords {
	b := &badPasswords{ttl: ttl, max: max, entries: map[[32]byte]time.Time{}}
	_, _ = rand.Read(b.secret[:])
	return b
}

func (b *badPasswords) key(account, password string, state []byte) [32]byte {
	var k [32]byte
	if b == nil {
		return k
	}
	m := hmac.New(sha256.New, b.secret[:])
	m.Write([]byte(account))
	m.Write([]byte{0})
	m.Write([]byte(password))
	m.Write([]byte{0})
	m.Write(state)
	copy(k[:], m.Sum(nil))
	return k
}

func (b *badPasswords) has(k [32]byte) bool {
	if b == nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	exp, ok := b.entries[k]
	if ok && time.Now().After(exp) {
		delete(b.entries, k)
		return false
	}
	return ok
}

func (b *badPasswords) add(k [32]byte) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if len(b.entries) >= b.max {
		for key, exp := range b.entries {
			if now.After(exp) {
				delete(b.entries, key)
			}
		}
		// Still full: drop arbitrary entries (map order); losing one
		// costs one more bind, not safety.
		for key := range b.entries {
			if len(b.entries) < b.max {
				break
			}
			delete(b.entries, key)
		}
	}
	b.entries[k] = now.Add(b.ttl)
}

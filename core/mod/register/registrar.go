package register

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

// Gate decides whether a registration may go ahead, after the Registrar's
// own checks passed. The policy engine implements it; a nil Gate allows
// every registration that the options allow. The reason of a refusal is
// shown to the client.
type Gate interface {
	AllowRegistration(ctx context.Context, domain, username string, remote netip.Addr) (bool, string)
}

// DefaultMaxPerIPPerHour is the default of RegistrarOptions.MaxPerIPPerHour:
// a household or a small office behind one address can register a few
// accounts, a script cannot register many.
const DefaultMaxPerIPPerHour = 5

// maxRateKeys bounds the addresses the rate limiter remembers. When that
// many addresses registered within the last hour, further registrations
// from new addresses wait until some expire (fail closed): that many
// sign-ups an hour is an attack, not a rush.
const maxRateKeys = 4096

// RegistrarOptions configure in-band registration of new accounts. They are
// server-wide (core/session has one Registrar for every virtual host); the
// configuration section is "registration".
type RegistrarOptions struct {
	// Open enables registration. It is off by default: a company creates
	// accounts in its directory or with `kontor user add`.
	Open bool `mapstructure:"open"`
	// Domains limits registration to these virtual hosts; empty means all.
	Domains []string `mapstructure:"domains"`
	// MaxPerIPPerHour bounds the registration attempts per client address
	// (IPv4 address or IPv6 /64) in any hour. Every attempt that passes the
	// username and password checks counts, successful or not, so that
	// "username taken" answers cannot be used to list accounts faster
	// either. 0 means no limit.
	MaxPerIPPerHour int `mapstructure:"max_per_ip_per_hour"`
	PasswordPolicy  `mapstructure:",squash"`
}

// DefaultRegistrarOptions returns the defaults: closed.
func DefaultRegistrarOptions() RegistrarOptions {
	return RegistrarOptions{MaxPerIPPerHour: DefaultMaxPerIPPerHour, PasswordPolicy: DefaultPasswordPolicy()}
}

// Validate checks the options.
func (o *RegistrarOptions) Validate() error {
	if o.MaxPerIPPerHour < 0 {
		return fmt.Errorf("register: max_per_ip_per_hour must not be negative, got %d", o.MaxPerIPPerHour)
	}
	for _, d := range o.Domains {
		j, err := jid.Parse(d)
		if err != nil || j.Local() != "" || !j.IsBare() {
			return fmt.Errorf("register: domains: %q is not a domain", d)
		}
	}
	return o.PasswordPolicy.Validate()
}

// Registrar creates accounts in band, before authentication; it implements
// core/session's Registrar interface. It is safe for concurrent use.
type Registrar struct {
	store   storage.Accounts
	opts    RegistrarOptions
	domains map[string]bool // canonical; nil: all
	gate    Gate
	log     *slog.Logger
	now     func() time.Time
	limit   *rateLimit
}

// NewRegistrar returns a Registrar. gate may be nil; log may be nil
// (nothing is logged).
func NewRegistrar(store storage.Accounts, opts RegistrarOptions, gate Gate, log *slog.Logger) (*Registrar, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Registrar{store: store, opts: opts, gate: gate, log: log, now: time.Now,
		limit: newRateLimit(opts.MaxPerIPPerHour, time.Hour, maxRateKeys)}
	if len(opts.Domains) > 0 {
		r.domains = map[string]bool{}
		for _, d := range opts.Domains {
			r.domains[jid.MustParse(d).Domain()] = true
		}
	}
	return r, nil
}

// Open reports whether new accounts may register on domain.
func (r *Registrar) Open(domain string) bool {
	if !r.opts.Open {
		return false
	}
	if r.domains == nil {
		return true
	}
	if j, err := jid.Parse(domain); err == nil {
		domain = j.Domain()
	}
	return r.domains[domain]
}

// Register creates the account username@domain with password. Refusals are
// stanza.Error values: service-unavailable when registration is closed,
// not-acceptable for an invalid username or a password the policy refuses,
// wait/not-acceptable when the address registered too often (XEP-0077
// §3.1.1), policy-violation when the Gate refuses, conflict when the
// username is taken. Other errors are the store's.
func (r *Registrar) Register(ctx context.Context, domain, username, password string, remote netip.Addr) error {
	if !r.Open(domain) {
		return stanza.ErrServiceUnavailable("registration is closed")
	}
	j, err := jid.New(username, domain, "")
	if err != nil || j.Local() == "" {
		return notAcceptable("the username is not valid: it may not contain spaces or any of \" & ' / : < > @")
	}
	if err := r.opts.check(j.Local(), password); err != nil {
		return err
	}
	if !r.limit.allow(remote, r.now()) {
		r.log.WarnContext(ctx, "registration rate limit reached", "remote", remote.String())
		return stanza.Error{Type: stanza.Wait, Condition: stanza.NotAcceptable,
			Text: "too many registrations from your address; try again later"}
	}
	if r.gate != nil {
		if ok, reason := r.gate.AllowRegistration(ctx, j.Domain(), j.Local(), remote); !ok {
			if reason == "" {
				reason = "registration of this account is not allowed"
			}
			return stanza.Error{Type: stanza.Modify, Condition: stanza.PolicyViolation, Text: reason}
		}
	}
	taken := stanza.Error{Type: stanza.Cancel, Condition: stanza.Conflict, Text: "the username is taken"}
	// Look first, to spare the key derivation; CreateAccount decides.
	switch _, err := r.store.Account(ctx, j.String()); {
	case err == nil:
		return taken
	case !errors.Is(err, storage.ErrNotFound):
		return fmt.Errorf("register: %w", err)
	}
	creds, err := r.opts.credentials(password)
	if err != nil {
		return err
	}
	err = r.store.CreateAccount(ctx, storage.Account{JID: j.String(), Domain: j.Domain(), Created: r.now().UTC(), Credentials: creds})
	switch {
	case errors.Is(err, storage.ErrExists):
		return taken
	case err != nil:
		return fmt.Errorf("register: create account: %w", err)
	}
	r.log.InfoContext(ctx, "account registered in band", "account", j.String())
	return nil
}

// rateLimit counts events per client network in a sliding window. Memory
// is bounded: at most maxKeys networks, each with at most max timestamps.
type rateLimit struct {
	max     int
	per     time.Duration
	maxKeys int

	mu   sync.Mutex
	hits map[netip.Prefix][]time.Time // oldest first
}

func newRateLimit(max int, per time.Duration, maxKeys int) *rateLimit {
	return &rateLimit{max: max, per: per, maxKeys: maxKeys, hits: map[netip.Prefix][]time.Time{}}
}

// network is what one client is counted by: its IPv4 address, or its IPv6
// /64, the smallest network a provider assigns to one customer. The zero
// Addr (no address known) is one network of its own.
func network(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	if !a.IsValid() {
		return netip.Prefix{}
	}
	bits := 64
	if a.Is4() {
		bits = 32
	}
	p, _ := a.Prefix(bits)
	return p
}

// allow records an event from a at now and reports whether it is within
// the limit; an event over the limit is not recorded.
func (l *rateLimit) allow(a netip.Addr, now time.Time) bool {
	if l.max <= 0 {
		return true
	}
	k := network(a)
	l.mu.Lock()
	defer l.mu.Unlock()
	h, known := l.hits[k]
	h = l.recent(h, now)
	if len(h) >= l.max {
		l.hits[k] = h
		return false
	}
	if !known && len(l.hits) >= l.maxKeys {
		l.sweep(now)
		if len(l.hits) >= l.maxKeys {
			return false
		}
	}
	l.hits[k] = append(h, now)
	return true
}

// recent drops the timestamps that left the window.
func (l *rateLimit) recent(h []time.Time, now time.Time) []time.Time {
	i := 0
	for i < len(h) && now.Sub(h[i]) >= l.per {
		i++
	}
	return h[i:]
}

// sweep forgets networks without events in the window.
func (l *rateLimit) sweep(now time.Time) {
	for k, h := range l.hits {
		if h = l.recent(h, now); len(h) == 0 {
			delete(l.hits, k)
		} else {
			l.hits[k] = h
		}
	}
}

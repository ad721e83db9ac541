// Package limit protects the server from one peer: it counts connections per
// IP address and failed authentications per IP address and per account, with
// exponential back-off. A client over a limit gets a clear error; nobody else
// is affected. All state is in memory and bounded (entries expire).
//
// Failed logins are counted before any credential check reaches a directory,
// so that Kontor never locks an Active Directory account by itself (for
// example because of a phone with a stale password).
package limit

import (
	"net/netip"
	"sync"
	"time"
)

// Conns counts open connections per IP address.
type Conns struct {
	max int // per IP; 0 = unlimited
	mu  sync.Mutex
	n   map[netip.Addr]int
}

// NewConns limits connections to max per IP address (0: unlimited).
func NewConns(max int) *Conns { return &Conns{max: max, n: map[netip.Addr]int{}} }

// Acquire counts a new connection from ip and reports whether it is within
// the limit. Every Acquire, allowed or not, is paired with a Release.
func (c *Conns) Acquire(ip netip.Addr) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[ip]++
	return c.max <= 0 || c.n[ip] <= c.max
}

// Release forgets a connection.
func (c *Conns) Release(ip netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[ip] <= 1 {
		delete(c.n, ip)
	} else {
		c.n[ip]--
	}
}

// AuthConfig configures the authentication back-off.
type AuthConfig struct {
	// MaxPerIP failures from one address within Window before it has to
	// wait; MaxPerAccount likewise for one account, from anywhere.
	MaxPerIP, MaxPerAccount int
	Window                  time.Duration
	// Backoff is the first wait; it doubles with each further failure, up
	// to MaxBackoff.
	Backoff, MaxBackoff time.Duration
}

// DefaultAuth is used for zero fields.
var DefaultAuth = AuthConfig{MaxPerIP: 20, MaxPerAccount: 5, Window: 15 * time.Minute,
	Backoff: 2 * time.Second, MaxBackoff: 5 * time.Minute}

type record struct {
	fails int
	first time.Time // start of the window
	until time.Time // blocked until
}

// Auth tracks authentication failures.
type Auth struct {
	cfg AuthConfig
	now func() time.Time

	mu      sync.Mutex
	ips     map[netip.Addr]*record
	account map[string]*record
	sweep   time.Time
}

// NewAuth returns an authentication guard.
func NewAuth(cfg AuthConfig) *Auth {
	if cfg.MaxPerIP <= 0 {
		cfg.MaxPerIP = DefaultAuth.MaxPerIP
	}
	if cfg.MaxPerAccount <= 0 {
		cfg.MaxPerAccount = DefaultAuth.MaxPerAccount
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultAuth.Window
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultAuth.Backoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultAuth.MaxBackoff
	}
	return &Auth{cfg: cfg, now: time.Now, ips: map[netip.Addr]*record{}, account: map[string]*record{}}
}

// Wait returns how long an attempt from ip for account must wait; zero means
// it may proceed. account may be "" when not yet known.
func (a *Auth) Wait(ip netip.Addr, account string) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	w := wait(a.ips[ip], now)
	if account != "" {
		w = max(w, wait(a.account[account], now))
	}
	return w
}

func wait(r *record, now time.Time) time.Duration {
	if r == nil || !now.Before(r.until) {
		return 0
	}
	return r.until.Sub(now)
}

// Fail records a failed attempt.
func (a *Auth) Fail(ip netip.Addr, account string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	a.expire(now)
	a.fail(a.ips, ip, a.cfg.MaxPerIP, now)
	if account != "" {
		failKey(a.account, account, a.cfg, a.cfg.MaxPerAccount, now)
	}
}

func (a *Auth) fail(m map[netip.Addr]*record, k netip.Addr, limit int, now time.Time) {
	r := m[k]
	if r == nil || now.Sub(r.first) > a.cfg.Window {
		r = &record{first: now}
		m[k] = r
	}
	r.fails++
	block(r, a.cfg, limit, now)
}

func failKey(m map[string]*record, k string, cfg AuthConfig, limit int, now time.Time) {
	r := m[k]
	if r == nil || now.Sub(r.first) > cfg.Window {
		r = &record{first: now}
		m[k] = r
	}
	r.fails++
	block(r, cfg, limit, now)
}

func block(r *record, cfg AuthConfig, limit int, now time.Time) {
	if r.fails < limit {
		return
	}
	d := cfg.Backoff
	for i := limit; i < r.fails && d < cfg.MaxBackoff; i++ {
		d *= 2
	}
	r.until = now.Add(min(d, cfg.MaxBackoff))
}

// Success forgets an account's failures (not the address's: an attacker
// who knows one password must not reset the count for guessing others).
func (a *Auth) Success(account string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.account, account)
}

// expire drops old records, at most once a minute, so memory stays bounded
// by the attempts of one window.
func (a *Auth) expire(now time.Time) {
	if now.Sub(a.sweep) < time.Minute {
		return
	}
	a.sweep = now
	for k, r := range a.ips {
		if now.Sub(r.first) > a.cfg.Window && !now.Before(r.until) {
			delete(a.ips, k)
		}
	}
	for k, r := range a.account {
		if now.Sub(r.first) > a.cfg.Window && !now.Before(r.until) {
			delete(a.account, k)
		}
	}
}

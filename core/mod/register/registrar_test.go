package register

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/sasl"
	"kontor.im/kontor/core/session"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

var _ session.Registrar = (*Registrar)(nil)

func newRegistrar(t *testing.T, configure func(*RegistrarOptions), gate Gate) (*Registrar, storage.Store) {
	t.Helper()
	srv := modtest.New(t, modtest.Options{})
	opts := DefaultRegistrarOptions()
	opts.Open = true
	if configure != nil {
		configure(&opts)
	}
	r, err := NewRegistrar(srv.Store, opts, gate, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r, srv.Store
}

var (
	home   = netip.MustParseAddr("192.0.2.10")
	office = netip.MustParseAddr("198.51.100.7")
)

// wantErr checks a Register result against a condition ("" for success).
func wantErr(t *testing.T, err error, cond string) {
	t.Helper()
	if cond == "" {
		if err != nil {
			t.Fatalf("Register: %v", err)
		}
		return
	}
	var se stanza.Error
	if !errors.As(err, &se) || se.Condition != cond {
		t.Fatalf("Register: %v, want %s", err, cond)
	}
}

func TestRegister(t *testing.T) {
	tests := []struct {
		name     string
		config   func(*RegistrarOptions)
		domain   string
		username string
		password string
		wantCond string
	}{
		{name: "ok", username: "romeo", password: "wherefore art thou"},
		{name: "closed", config: func(o *RegistrarOptions) { o.Open = false },
			username: "romeo", password: "wherefore art thou", wantCond: stanza.ServiceUnavailable},
		{name: "domain not listed", config: func(o *RegistrarOptions) { o.Domains = []string{"other.example"} },
			username: "romeo", password: "wherefore art thou", wantCond: stanza.ServiceUnavailable},
		{name: "domain listed", config: func(o *RegistrarOptions) { o.Domains = []string{"Example.COM"} },
			username: "romeo", password: "wherefore art thou"},
		{name: "taken", username: "juliet", password: "wherefore art thou", wantCond: stanza.Conflict},
		{name: "taken in another case", username: "JULIET", password: "wherefore art thou", wantCond: stanza.Conflict},
		{name: "username with @", username: "romeo@montague", password: "wherefore art thou", wantCond: stanza.NotAcceptable},
		{name: "username with a space", username: "romeo montague", password: "wherefore art thou", wantCond: stanza.NotAcceptable},
		{name: "empty username", username: "", password: "wherefore art thou", wantCond: stanza.NotAcceptable},
		{name: "weak password", username: "romeo", password: "short", wantCond: stanza.NotAcceptable},
		{name: "empty password", username: "romeo", password: "", wantCond: stanza.NotAcceptable},
		{name: "control character in password", username: "romeo", password: "wherefore\x00art thou", wantCond: stanza.NotAcceptable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, st := newRegistrar(t, tt.config, nil)
			ctx := context.Background()
			if err := st.CreateAccount(ctx, storage.Account{JID: "juliet@example.com", Domain: "example.com", Created: time.Now()}); err != nil {
				t.Fatal(err)
			}
			domain := tt.domain
			if domain == "" {
				domain = "example.com"
			}
			err := r.Register(ctx, domain, tt.username, tt.password, home)
			wantErr(t, err, tt.wantCond)
			if tt.wantCond != "" {
				return
			}
			a, err := st.Account(ctx, tt.username+"@"+domain)
			if err != nil {
				t.Fatal(err)
			}
			if a.Domain != "example.com" || len(a.Credentials) != 2 {
				t.Fatalf("account %+v", a)
			}
			for _, c := range a.Credentials {
				cred := sasl.Credential{Hash: sasl.Hash(c.Hash), Salt: c.Salt, Iterations: c.Iterations, StoredKey: c.StoredKey, ServerKey: c.ServerKey}
				if !sasl.VerifyPlainWithCredential(cred, tt.password) {
					t.Fatalf("%s credential does not verify", c.Hash)
				}
			}
		})
	}
}

func TestOpen(t *testing.T) {
	tests := []struct {
		name    string
		config  func(*RegistrarOptions)
		domain  string
		wantOpt bool
	}{
		{"closed by default", func(o *RegistrarOptions) { *o = DefaultRegistrarOptions() }, "example.com", false},
		{"open", nil, "example.com", true},
		{"listed", func(o *RegistrarOptions) { o.Domains = []string{"example.com"} }, "example.com", true},
		{"not listed", func(o *RegistrarOptions) { o.Domains = []string{"example.com"} }, "example.org", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := newRegistrar(t, tt.config, nil)
			if got := r.Open(tt.domain); got != tt.wantOpt {
				t.Fatalf("Open(%q) = %v", tt.domain, got)
			}
		})
	}
}

func TestPerIPLimit(t *testing.T) {
	r, _ := newRegistrar(t, func(o *RegistrarOptions) { o.MaxPerIPPerHour = 2 }, nil)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	r.now = func() time.Time { return now }
	ctx := context.Background()
	const pw = "a long enough password"

	wantErr(t, r.Register(ctx, "example.com", "u1", pw, home), "")
	// A conflict counts too.
	wantErr(t, r.Register(ctx, "example.com", "u1", pw, home), stanza.Conflict)
	err := r.Register(ctx, "example.com", "u2", pw, home)
	wantErr(t, err, stanza.NotAcceptable)
	if se := err.(stanza.Error); se.Type != stanza.Wait {
		t.Fatalf("type %s, want wait", se.Type)
	}
	// Invalid requests do not count, and are refused for what they are.
	wantErr(t, r.Register(ctx, "example.com", "u2", "short", home), stanza.NotAcceptable)
	// Another address is not affected; the same address as IPv4-in-IPv6 is.
	wantErr(t, r.Register(ctx, "example.com", "u3", pw, office), "")
	wantErr(t, r.Register(ctx, "example.com", "u4", pw, netip.AddrFrom16(home.As16())), stanza.NotAcceptable)
	// An hour later the address may register again.
	now = now.Add(time.Hour)
	wantErr(t, r.Register(ctx, "example.com", "u2", pw, home), "")
}

func TestPerIPLimitIPv6Network(t *testing.T) {
	l := newRateLimit(1, time.Hour, 10)
	now := time.Now()
	if !l.allow(netip.MustParseAddr("2001:db8:1:2::1"), now) {
		t.Fatal("first refused")
	}
	if l.allow(netip.MustParseAddr("2001:db8:1:2:ffff::9"), now) {
		t.Fatal("same /64 allowed")
	}
	if !l.allow(netip.MustParseAddr("2001:db8:1:3::1"), now) {
		t.Fatal("another /64 refused")
	}
}

func TestRateLimitBounded(t *testing.T) {
	l := newRateLimit(1, time.Hour, 3)
	now := time.Now()
	for i := range 3 {
		if !l.allow(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), now) {
			t.Fatalf("address %d refused", i)
		}
	}
	// The table is full of live entries: a new address has to wait.
	if l.allow(netip.AddrFrom4([4]byte{10, 0, 0, 99}), now) {
		t.Fatal("a new address was allowed with the table full")
	}
	// Once the old entries expire they make room.
	later := now.Add(time.Hour)
	if !l.allow(netip.AddrFrom4([4]byte{10, 0, 0, 99}), later) {
		t.Fatal("refused after expiry")
	}
	if len(l.hits) != 1 {
		t.Fatalf("%d entries kept, want 1", len(l.hits))
	}
}

func TestRateLimitConcurrent(t *testing.T) {
	l := newRateLimit(5, time.Hour, 100)
	now := time.Now()
	var mu sync.Mutex
	allowed := 0
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if l.allow(home, now) {
				mu.Lock()
				allowed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if allowed != 5 {
		t.Fatalf("%d allowed, want 5", allowed)
	}
}

type gate struct {
	ok     bool
	reason string
	got    []string
}

func (g *gate) AllowRegistration(_ context.Context, domain, username string, remote netip.Addr) (bool, string) {
	g.got = append(g.got, username+"@"+domain+" from "+remote.String())
	return g.ok, g.reason
}

func TestGate(t *testing.T) {
	ctx := context.Background()
	g := &gate{ok: false, reason: "sign-up is for employees only"}
	r, st := newRegistrar(t, nil, g)
	err := r.Register(ctx, "example.com", "Romeo", "wherefore art thou", home)
	wantErr(t, err, stanza.PolicyViolation)
	if err.(stanza.Error).Text != g.reason {
		t.Fatalf("text %q", err.(stanza.Error).Text)
	}
	if len(g.got) != 1 || g.got[0] != "romeo@example.com from 192.0.2.10" {
		t.Fatalf("gate asked %q", g.got)
	}
	if _, err := st.Account(ctx, "romeo@example.com"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("account created despite the gate: %v", err)
	}
	g.ok = true
	wantErr(t, r.Register(ctx, "example.com", "romeo", "wherefore art thou", home), "")
	// The gate is not asked about requests that fail the checks.
	g.got = nil
	wantErr(t, r.Register(ctx, "example.com", "mercutio", "short", home), stanza.NotAcceptable)
	if len(g.got) != 0 {
		t.Fatalf("gate asked %q", g.got)
	}
}

func TestRegistrarOptionsValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*RegistrarOptions)
		ok     bool
	}{
		{"defaults", func(*RegistrarOptions) {}, true},
		{"negative limit", func(o *RegistrarOptions) { o.MaxPerIPPerHour = -1 }, false},
		{"no limit", func(o *RegistrarOptions) { o.MaxPerIPPerHour = 0 }, true},
		{"bad domain", func(o *RegistrarOptions) { o.Domains = []string{"user@example.com"} }, false},
		{"weak policy", func(o *RegistrarOptions) { o.MinLength = 0 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := DefaultRegistrarOptions()
			tt.change(&o)
			if err := o.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v", err)
			}
			if _, err := NewRegistrar(nil, o, nil, nil); (err == nil) != tt.ok {
				t.Fatalf("NewRegistrar: %v", err)
			}
		})
	}
	if d := DefaultRegistrarOptions(); d.Open || d.MaxPerIPPerHour != 5 || d.MinLength != 8 {
		t.Fatalf("defaults %+v", d)
	}
}

package ldapsync

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"kontor.im/kontor/core/account"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/limit"
	"kontor.im/kontor/core/sasl"
	"kontor.im/kontor/ldapsync/slapdtest"
)

// authEnv is a synced directory with an authenticator.
func authEnv(t *testing.T, mutate func(*Config), guard *limit.Auth) (*env, *Authenticator) {
	t.Helper()
	e := newEnv(t, "sqlite", treeLDIF(treeUsers(t)), func(c *Config) {
		c.Groups.Roster = false // logins do not need rosters; they make the sync slow under -race
		if mutate != nil {
			mutate(c)
		}
	})
	e.sync(t, SyncOptions{})
	a, err := NewAuthenticator(AuthOptions{Config: e.cfg, Domain: testDomain, Store: e.store, Client: e.client,
		Log: e.syncer.log, Guard: guard})
	if err != nil {
		t.Fatal(err)
	}
	return e, a
}

// failures returns how many failed binds slapd recorded for an entry
// (ppolicy's pwdFailureTime) and whether it is locked.
func failures(t *testing.T, admin *ldap.Conn, dn string) (int, bool) {
	t.Helper()
	res, err := admin.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)",
		[]string{"pwdFailureTime", "pwdAccountLockedTime"}, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("reading %s: %v", dn, err)
	}
	e := res.Entries[0]
	return len(e.GetAttributeValues("pwdFailureTime")), e.GetAttributeValue("pwdAccountLockedTime") != ""
}

func TestAuthenticator(t *testing.T) {
	t.Parallel()
	users := treeUsers(t)
	byUID := map[string]testUser{}
	for _, u := range users {
		byUID[u.uid] = u
	}
	e, a := authEnv(t, nil, nil)
	ctx := context.Background()
	if err := account.Create(ctx, e.store, jid.MustParse("visitor@"+testDomain), "guest-password-1"); err != nil {
		t.Fatal(err)
	}
	if err := e.store.SetDisabled(ctx, jidOf("s05"), true); err != nil {
		t.Fatal(err)
	}
	admin := e.slapd.Admin(t)
	// Changed in the directory after the sync: a move (the stored DN is
	// stale) and a deletion.
	if err := admin.ModifyDN(ldap.NewModifyDNRequest(byUID["s04"].dn(), "uid=s04", true, "ou=Guests,"+peopleDN)); err != nil {
		t.Fatal(err)
	}
	if err := admin.Del(ldap.NewDelRequest(byUID["s07"].dn(), nil)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, user, password string
		want                 error // nil: success
		log                  string
	}{
		{"directory user, right password", "s01", password("s01"), nil, ""},
		{"directory user, wrong password", "s02", "wrong", sasl.ErrBadPassword, `reason="invalid credentials (no sub-code)"`},
		{"username in another case", "S01", password("s01"), nil, ""},
		{"non-ASCII username", "jürgen.groß", password("jürgen.groß"), nil, ""},
		{"unknown user", "nobody", "whatever", sasl.ErrUnknownUser, ""},
		{"not a localpart", "a b", "whatever", sasl.ErrUnknownUser, ""},
		{"local guest, right password", "visitor", "guest-password-1", nil, ""},
		{"local guest, wrong password", "visitor", "guest-password-2", sasl.ErrBadPassword, ""},
		{"disabled here, right password", "s05", password("s05"), sasl.ErrDisabled, ""},
		{"disabled here, wrong password", "s05", "wrong", sasl.ErrBadPassword, ""},
		{"locked in the directory", "dora", password("dora"), sasl.ErrBadPassword, "login refused by the directory"},
		{"moved since the sync: found by its stable id", "s04", password("s04"), nil, ""},
		{"deleted since the sync", "s07", password("s07"), sasl.ErrBadPassword, "no longer in the directory"},
		{"empty password (an unauthenticated bind would succeed)", "s08", "", sasl.ErrBadPassword, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := a.VerifyPlain(ctx, tt.user, tt.password)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("VerifyPlain(%s) = %v, want %v", tt.user, err, tt.want)
			}
			if tt.log != "" && !strings.Contains(e.log(), tt.log) {
				t.Errorf("the log lacks %q", tt.log)
			}
		})
	}
	if strings.Contains(e.log(), password("s01")) || strings.Contains(e.log(), "guest-password") {
		t.Error("a password is in the log")
	}

	t.Run("SCRAM", func(t *testing.T) {
		if _, err := a.Credential(ctx, "s01", sasl.SHA256); !errors.Is(err, sasl.ErrNoSCRAM) {
			t.Errorf("Credential(directory user) = %v, want ErrNoSCRAM", err)
		}
		if c, err := a.Credential(ctx, "visitor", sasl.SHA256); err != nil || c.Iterations == 0 {
			t.Errorf("Credential(guest) = %+v, %v", c, err)
		}
		if _, err := a.Credential(ctx, "nobody", sasl.SHA256); !errors.Is(err, sasl.ErrUnknownUser) {
			t.Errorf("Credential(nobody) = %v", err)
		}
	})
	t.Run("mechanisms: PLAIN over TLS only", func(t *testing.T) {
		if got := a.Mechanisms(true, sasl.ChannelBinding{Type: sasl.TypeTLSExporter, Data: []byte("x")}); !slices.Equal(got, []string{sasl.Plain}) {
			t.Errorf("with TLS: %v", got)
		}
		if got := a.Mechanisms(false, sasl.ChannelBinding{}); len(got) != 0 {
			t.Errorf("without TLS: %v", got)
		}
	})
}

func TestAuthenticatorDNTemplate(t *testing.T) {
	t.Parallel()
	_, a := authEnv(t, func(c *Config) { c.Login.DNTemplate = "uid={username},ou=Sales," + peopleDN }, nil)
	tests := []struct {
		name, user, password string
		want                 error
	}{
		{"in the template's OU", "s01", password("s01"), nil},
		{"wrong password", "s01", "x", sasl.ErrBadPassword},
		{"elsewhere: the template's DN does not exist", "e01", password("e01"), sasl.ErrBadPassword},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := a.VerifyPlain(context.Background(), tt.user, tt.password); !errors.Is(err, tt.want) && !(tt.want == nil && err == nil) {
				t.Errorf("VerifyPlain = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestLockoutSafety: the directory locks an account after MaxFailures
// failed binds. Kontor's login path must not get it there by itself: a
// client repeating a stale password costs one failed bind, and an account
// in back-off (core/limit, shared with core/session) costs none.
func TestLockoutSafety(t *testing.T) {
	t.Parallel()
	users := treeUsers(t)
	byUID := map[string]testUser{}
	for _, u := range users {
		byUID[u.uid] = u
	}
	ip := netip.MustParseAddr("192.0.2.7")
	tests := []struct {
		name      string
		user      string
		passwords func(i int) string
		// wantBinds is the most failed binds slapd may see.
		wantBinds int
	}{
		{"a phone repeating a stale password", "e05", func(int) string { return "the-old-password" }, 1},
		{"someone guessing: the back-off stops it before the directory does", "e06",
			func(i int) string { return fmt.Sprintf("guess-%d", i) }, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Core's guard, as cmd/kontor configures it but with three
			// failures per account: fewer than the directory's five.
			guard := limit.NewAuth(limit.AuthConfig{MaxPerIP: 1000, MaxPerAccount: 3, Window: time.Hour,
				Backoff: time.Minute, MaxBackoff: time.Hour})
			e, a := authEnv(t, nil, guard)
			account := jidOf(tt.user)
			for i := range 20 {
				// What core/session does: refuse during back-off before
				// asking, count wrong passwords after.
				if guard.Wait(ip, "") > 0 {
					break
				}
				err := a.VerifyPlain(context.Background(), tt.user, tt.passwords(i))
				switch {
				case errors.Is(err, sasl.ErrBadPassword):
					guard.Fail(ip, account)
				case errors.Is(err, ErrBackoff):
				default:
					t.Fatalf("attempt %d: %v", i, err)
				}
			}
			admin := e.slapd.Admin(t)
			n, locked := failures(t, admin, byUID[tt.user].dn())
			if n > tt.wantBinds || n == 0 || locked {
				t.Errorf("slapd saw %d failed binds (locked: %v); want 1..%d and not locked", n, locked, tt.wantBinds)
			}
			if n >= slapdtest.MaxFailures {
				t.Errorf("Kontor would have locked the account")
			}
			// The right password still works at the directory.
			conn, err := ldap.DialURL(e.slapd.LDAPSURL, ldap.DialWithTLSConfig(e.slapd.TLSConfig()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if err := conn.Bind(byUID[tt.user].dn(), password(tt.user)); err != nil {
				t.Errorf("the user's own bind fails afterwards: %v", err)
			}
		})
	}
}

func TestBadPasswordCache(t *testing.T) {
	b := newBadPasswords(time.Minute, 3)
	k1 := b.key("a@x", "pw", []byte("state1"))
	tests := []struct {
		name string
		key  [32]byte
		want bool
	}{
		{"same account, password and state", b.key("a@x", "pw", []byte("state1")), true},
		{"another password", b.key("a@x", "pw2", []byte("state1")), false},
		{"the entry changed (unlocked, re-enabled)", b.key("a@x", "pw", []byte("state2")), false},
		{"another account", b.key("b@x", "pw", []byte("state1")), false},
		{"no separator ambiguity", b.key("a@xp", "w", []byte("state1")), false},
	}
	b.add(k1)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := b.has(tt.key); got != tt.want {
				t.Errorf("has = %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("bounded", func(t *testing.T) {
		for i := range 10 {
			b.add(b.key(fmt.Sprint(i), "pw", nil))
		}
		if n := len(b.entries); n > 3 {
			t.Errorf("%d entries, the bound is 3", n)
		}
	})
	t.Run("expires", func(t *testing.T) {
		short := newBadPasswords(20*time.Millisecond, 3)
		k := short.key("a@x", "pw", nil)
		short.add(k)
		time.Sleep(40 * time.Millisecond)
		if short.has(k) {
			t.Error("still there after the TTL")
		}
	})
	var off *badPasswords
	off.add(k1)
	if off.has(k1) {
		t.Error("a disabled cache remembers")
	}
}

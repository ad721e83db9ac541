package register

import (
	"context"
	"errors"
	"strings"
	"testing"

	"kontor.im/kontor/core/account"

	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/sasl"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

func newServer(t *testing.T, configure func(*Options)) *modtest.Server {
	t.Helper()
	info, ok := module.Lookup("register")
	if !ok {
		t.Fatal("register is not registered")
	}
	m := info.New()
	opts := m.(module.Configurable).Options().(*Options)
	if configure != nil {
		configure(opts)
	}
	if err := opts.Validate(); err != nil {
		t.Fatal(err)
	}
	srv := modtest.New(t, modtest.Options{}, router.Enabled{Info: info, Module: m})
	srv.Account("bill")
	srv.Account("juliet")
	return srv
}

// verify reports whether password matches every stored credential of
// account.
func verify(t *testing.T, srv *modtest.Server, account, password string) bool {
	t.Helper()
	a, err := srv.Store.Account(context.Background(), account)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Credentials) == 0 {
		return false
	}
	hashes := map[string]bool{}
	for _, c := range a.Credentials {
		hashes[c.Hash] = true
		cred := sasl.Credential{Hash: sasl.Hash(c.Hash), Salt: c.Salt, Iterations: c.Iterations, StoredKey: c.StoredKey, ServerKey: c.ServerKey}
		if !sasl.VerifyPlainWithCredential(cred, password) {
			return false
		}
	}
	if !hashes["SHA-1"] || !hashes["SHA-256"] {
		t.Fatalf("credentials for %v, want SHA-1 and SHA-256", hashes)
	}
	return true
}

func TestGetRegistered(t *testing.T) {
	for _, to := range []string{"", " to='example.com'", " to='bill@example.com'"} {
		srv := newServer(t, nil)
		b := srv.Connect("bill@example.com/globe")
		b.SendXML(`<iq type='get' id='g'` + to + `><query xmlns='jabber:iq:register'/></iq>`)
		r := b.NextIQ("g")
		q := r.Payload()
		if r.Type != "result" || q == nil || q.Child(NS, "registered") == nil || q.ChildText(NS, "username") != "bill" ||
			q.Child(NS, "password") == nil || q.ChildText(NS, "password") != "" {
			t.Fatalf("to=%q: got %s", to, r.El)
		}
	}
}

func TestPasswordChange(t *testing.T) {
	const newPass = "correct horse battery"
	tests := []struct {
		name    string
		config  func(*Options)
		request string
		// wantCond is the expected error condition, "" for success.
		wantCond string
	}{
		{name: "to the server",
			request: `<iq type='set' id='c' to='example.com'><query xmlns='jabber:iq:register'><username>bill</username><password>` + newPass + `</password></query></iq>`},
		{name: "without to",
			request: `<iq type='set' id='c'><query xmlns='jabber:iq:register'><username>bill</username><password>` + newPass + `</password></query></iq>`},
		{name: "username as a bare JID",
			request: `<iq type='set' id='c' to='example.com'><query xmlns='jabber:iq:register'><username>bill@example.com</username><password>` + newPass + `</password></query></iq>`},
		{name: "username in another case",
			request: `<iq type='set' id='c' to='example.com'><query xmlns='jabber:iq:register'><username>Bill</username><password>` + newPass + `</password></query></iq>`},
		{name: "another user's username",
			request:  `<iq type='set' id='c' to='example.com'><query xmlns='jabber:iq:register'><username>juliet</username><password>` + newPass + `</password></query></iq>`,
			wantCond: stanza.BadRequest},
		{name: "another user's account",
			request:  `<iq type='set' id='c' to='juliet@example.com'><query xmlns='jabber:iq:register'><username>juliet</username><password>` + newPass + `</password></query></iq>`,
			wantCond: stanza.Forbidden},
		{name: "no username",
			request:  `<iq type='set' id='c' to='example.com'><query xmlns='jabber:iq:register'><password>` + newPass + `</password></query></iq>`,
			wantCond: stanza.BadRequest},
		{name: "empty password keeps the old one",
			request:  `<iq type='set' id='c' to='example.com'><query xmlns='jabber:iq:register'><username>bill</username><password/></query></iq>`,
			wantCond: stanza.BadRequest},
		{name: "short password",
			request:  `<iq type='set' id='c' to='example.com'><query xmlns='jabber:iq:register'><username>bill</username><password>short</password></query></iq>`,
			wantCond: stanza.NotAcceptable},
		{name: "password is the username",
			request:  `<iq type='set' id='c' to='example.com'><query xmlns='jabber:iq:register'><username>bill</username><password>BiLL</password></query></iq>`,
			config:   func(o *Options) { o.MinLength = 4 },
			wantCond: stanza.NotAcceptable},
		{name: "longer minimum",
			request:  `<iq type='set' id='c' to='example.com'><query xmlns='jabber:iq:register'><username>bill</username><password>` + newPass + `</password></query></iq>`,
			config:   func(o *Options) { o.MinLength = 30 },
			wantCond: stanza.NotAcceptable},
		{name: "password change disabled",
			request:  `<iq type='set' id='c' to='example.com'><query xmlns='jabber:iq:register'><username>bill</username><password>` + newPass + `</password></query></iq>`,
			config:   func(o *Options) { o.PasswordChange = false },
			wantCond: stanza.NotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, tt.config)
			b := srv.Connect("bill@example.com/globe")
			b.SendXML(tt.request)
			r := b.NextIQ("c")
			if tt.wantCond == "" {
				if r.Type != "result" {
					t.Fatalf("got %s", r.El)
				}
				if !verify(t, srv, "bill@example.com", newPass) {
					t.Fatal("the new password does not verify")
				}
				if verify(t, srv, "bill@example.com", "wrong password") {
					t.Fatal("a wrong password verifies")
				}
				return
			}
			if got := modtest.ErrorCondition(r); got != tt.wantCond {
				t.Fatalf("got %s, want %s", r.El, tt.wantCond)
			}
			// XEP-0077 §3.3: the request is not echoed, and above all not
			// the password.
			if strings.Contains(r.El.String(), newPass) || r.El.Child(NS, "query") != nil {
				t.Fatalf("the error echoes the request: %s", r.El)
			}
			a, _ := srv.Store.Account(context.Background(), "bill@example.com")
			if len(a.Credentials) != 0 {
				t.Fatal("credentials changed on a refused request")
			}
		})
	}
}

func TestPasswordChangeDefaultIterations(t *testing.T) {
	srv := newServer(t, func(o *Options) { o.PasswordPolicy = DefaultPasswordPolicy() })
	b := srv.Connect("bill@example.com/globe")
	b.SendXML(`<iq type='set' id='c' to='example.com'><query xmlns='jabber:iq:register'><username>bill</username><password>new password</password></query></iq>`)
	if r := b.NextIQ("c"); r.Type != "result" {
		t.Fatalf("got %s", r.El)
	}
	a, _ := srv.Store.Account(context.Background(), "bill@example.com")
	got := map[string]int{}
	for _, c := range a.Credentials {
		got[c.Hash] = c.Iterations
	}
	if got["SHA-1"] != account.Iterations || got["SHA-256"] != account.Iterations {
		t.Fatalf("iterations %v", got)
	}
}

func TestRemove(t *testing.T) {
	const remove = `<iq type='set' id='r'><query xmlns='jabber:iq:register'><remove/></query></iq>`
	t.Run("disabled by default", func(t *testing.T) {
		srv := newServer(t, nil)
		b := srv.Connect("bill@example.com/globe")
		b.SendXML(remove)
		if got := modtest.ErrorCondition(b.NextIQ("r")); got != stanza.NotAllowed {
			t.Fatalf("got %q, want not-allowed", got)
		}
		if _, err := srv.Store.Account(context.Background(), "bill@example.com"); err != nil {
			t.Fatalf("account gone: %v", err)
		}
		if closed, _ := b.Closed(); closed {
			t.Fatal("session closed")
		}
	})
	t.Run("allowed", func(t *testing.T) {
		srv := newServer(t, func(o *Options) { o.AllowRemove = true })
		b := srv.Connect("bill@example.com/globe")
		b2 := srv.Connect("bill@example.com/orchard")
		j := srv.Connect("juliet@example.com/balcony")
		b.SendXML(remove)
		if r := b.NextIQ("r"); r.Type != "result" {
			t.Fatalf("got %s", r.El)
		}
		if _, err := srv.Store.Account(context.Background(), "bill@example.com"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("account still there: %v", err)
		}
		for _, c := range []*modtest.Client{b, b2} {
			closed, se := c.Closed()
			if !closed || se == nil || se.Condition != stanza.StreamNotAuthorized {
				t.Fatalf("%s: closed=%v with %v, want not-authorized", c.JID, closed, se)
			}
		}
		if closed, _ := j.Closed(); closed {
			t.Fatal("another account's session was closed")
		}
	})
	t.Run("not the only child", func(t *testing.T) {
		srv := newServer(t, func(o *Options) { o.AllowRemove = true })
		b := srv.Connect("bill@example.com/globe")
		b.SendXML(`<iq type='set' id='r'><query xmlns='jabber:iq:register'><remove/><username>bill</username></query></iq>`)
		if got := modtest.ErrorCondition(b.NextIQ("r")); got != stanza.BadRequest {
			t.Fatalf("got %q, want bad-request", got)
		}
		if _, err := srv.Store.Account(context.Background(), "bill@example.com"); err != nil {
			t.Fatalf("account gone: %v", err)
		}
	})
	t.Run("another account", func(t *testing.T) {
		srv := newServer(t, func(o *Options) { o.AllowRemove = true })
		b := srv.Connect("bill@example.com/globe")
		b.SendXML(`<iq type='set' id='r' to='juliet@example.com'><query xmlns='jabber:iq:register'><remove/></query></iq>`)
		if got := modtest.ErrorCondition(b.NextIQ("r")); got != stanza.Forbidden {
			t.Fatalf("got %q, want forbidden", got)
		}
		if _, err := srv.Store.Account(context.Background(), "juliet@example.com"); err != nil {
			t.Fatalf("juliet's account gone: %v", err)
		}
	})
}

func TestNotFromThisHost(t *testing.T) {
	info, _ := module.Lookup("register")
	m := info.New().(*Module)
	srv := modtest.New(t, modtest.Options{}, router.Enabled{Info: info, Module: m})
	b := srv.Connect("bill@example.com/globe")
	req := modtest.Parse(t, `<iq type='get' id='x' from='eve@elsewhere.example/x' to='example.com'><query xmlns='jabber:iq:register'/></iq>`)
	_, err := m.get(context.Background(), &module.IQ{Stanza: req, Origin: b.Res, Target: module.ToHost})
	if !errors.Is(err, stanza.ErrServiceUnavailable("")) {
		t.Fatalf("got %v, want service-unavailable", err)
	}
	req = modtest.Parse(t, `<iq type='get' id='x' from='bill@example.com/globe' to='example.com'><query xmlns='jabber:iq:register'/></iq>`)
	if _, err := m.get(context.Background(), &module.IQ{Stanza: req, Target: module.ToHost}); !errors.Is(err, stanza.ErrServiceUnavailable("")) {
		t.Fatalf("without a session: got %v, want service-unavailable", err)
	}
}

func TestDisco(t *testing.T) {
	tests := []struct {
		name   string
		config func(*Options)
		want   bool
	}{
		{"default", nil, true},
		{"nothing offered", func(o *Options) { o.PasswordChange = false }, false},
		{"removal only", func(o *Options) { o.PasswordChange, o.AllowRemove = false, true }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, tt.config)
			got := false
			for _, f := range srv.Host.DiscoInfo(module.ToHost).Features {
				got = got || f == NS
			}
			if got != tt.want {
				t.Fatalf("jabber:iq:register announced: %v, want %v", got, tt.want)
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Options)
		ok     bool
	}{
		{"defaults", func(*Options) {}, true},
		{"zero minimum", func(o *Options) { o.MinLength = 0 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := DefaultOptions()
			tt.change(&o)
			if err := o.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v", err)
			}
		})
	}
}

func TestInfo(t *testing.T) {
	info, _ := module.Lookup("register")
	if !info.Default || len(info.Specs) != 1 || info.Specs[0].ID != "XEP-0077" {
		t.Fatalf("info %+v", info)
	}
	o := info.New().(module.Configurable).Options().(*Options)
	if !o.PasswordChange || o.AllowRemove || o.MinLength != 8 {
		t.Fatalf("defaults %+v", o)
	}
}

package last

import (
	"context"
	"slices"
	"testing"
	"time"

	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

// clock is a settable time source. The router calls handlers in the
// sender's goroutine, so the tests need no lock.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func setup(t *testing.T) (*modtest.Server, *clock) {
	t.Helper()
	c := &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	info, ok := module.Lookup("last")
	if !ok {
		t.Fatal("last is not registered")
	}
	srv := modtest.New(t, modtest.Options{}, router.Enabled{Info: info, Module: &last{now: c.Now}})
	return srv, c
}

func TestUptime(t *testing.T) {
	srv, c := setup(t)
	srv.Account("alice")
	a := srv.Connect("alice@example.com/phone")
	for _, tt := range []struct {
		name    string
		advance time.Duration
		want    string
	}{
		{"at start", 0, "<query xmlns='jabber:iq:last' seconds='0'/>"},
		{"after 90.9s", 90*time.Second + 900*time.Millisecond, "<query xmlns='jabber:iq:last' seconds='90'/>"},
		{"after a day", 24*time.Hour - 90*time.Second - 900*time.Millisecond, "<query xmlns='jabber:iq:last' seconds='86400'/>"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c.now = c.now.Add(tt.advance)
			a.SendXML("<iq type='get' id='l' to='example.com'><query xmlns='jabber:iq:last'/></iq>")
			r := a.NextIQ("l")
			if r.Type != "result" || r.From.String() != "example.com" {
				t.Fatalf("reply %s", r.El)
			}
			if got := r.Payload().String(); got != tt.want {
				t.Errorf("payload %s, want %s", got, tt.want)
			}
		})
	}
}

func TestAccount(t *testing.T) {
	srv, c := setup(t)
	ctx := context.Background()
	alice := srv.Account("alice") // offline, logged out 903 s ago
	srv.Account("carol")          // online
	srv.Account("dave")           // offline, never recorded
	srv.Account("erin")           // offline, clock of the record ahead
	for _, local := range []string{"from", "both", "to", "none", "stranger"} {
		srv.Account(local)
	}
	for _, owner := range []string{"alice", "carol", "dave", "erin"} {
		for contact, sub := range map[string]storage.Subscription{"from": storage.SubFrom, "both": storage.SubBoth, "to": storage.SubTo, "none": storage.SubNone} {
			if _, err := srv.Store.PutRosterItem(ctx, owner+"@example.com", storage.RosterItem{Contact: contact + "@example.com", Subscription: sub}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := srv.Store.SetLastActivity(ctx, alice.String(), c.now.Add(-903*time.Second), "Heading Home"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Store.SetLastActivity(ctx, "carol@example.com", c.now.Add(-time.Hour), "gone"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Store.SetLastActivity(ctx, "erin@example.com", c.now.Add(time.Minute), ""); err != nil {
		t.Fatal(err)
	}
	srv.Connect("carol@example.com/laptop")

	const heading = "<query xmlns='jabber:iq:last' seconds='903'>Heading Home</query>"
	const zero = "<query xmlns='jabber:iq:last' seconds='0'/>"
	tests := []struct {
		name, from, to string
		wantCond       string
		wantType       stanza.ErrorType
		want           string
	}{
		{name: "contact with both, offline user", from: "both@example.com/x", to: "alice@example.com", want: heading},
		{name: "contact with from", from: "from@example.com/x", to: "alice@example.com", want: heading},
		{name: "contact with to", from: "to@example.com/x", to: "alice@example.com", wantCond: stanza.Forbidden, wantType: stanza.Auth},
		{name: "contact with none", from: "none@example.com/x", to: "alice@example.com", wantCond: stanza.Forbidden, wantType: stanza.Auth},
		{name: "stranger", from: "stranger@example.com/x", to: "alice@example.com", wantCond: stanza.Forbidden, wantType: stanza.Auth},
		{name: "stranger asks an online user", from: "stranger@example.com/x", to: "carol@example.com", wantCond: stanza.Forbidden, wantType: stanza.Auth},
		{name: "online user", from: "both@example.com/x", to: "carol@example.com", want: zero},
		{name: "online user asks about self", from: "carol@example.com/laptop", to: "carol@example.com", want: zero},
		{name: "online user asks about self without to", from: "carol@example.com/laptop", to: "", want: zero},
		{name: "never recorded", from: "from@example.com/x", to: "dave@example.com", wantCond: stanza.ItemNotFound, wantType: stanza.Cancel},
		{name: "record in the future", from: "from@example.com/x", to: "erin@example.com", want: zero},
		{name: "no such account", from: "both@example.com/x", to: "nobody@example.com", wantCond: stanza.ServiceUnavailable, wantType: stanza.Cancel},
	}
	clients := map[string]*modtest.Client{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := clients[tt.from]
			if cl == nil {
				cl = srv.Connect(tt.from)
				clients[tt.from] = cl
			}
			to := ""
			if tt.to != "" {
				to = " to='" + tt.to + "'"
			}
			cl.SendXML("<iq type='get' id='l'" + to + "><query xmlns='jabber:iq:last'/></iq>")
			r := cl.NextIQ("l")
			if got := modtest.ErrorCondition(r); got != tt.wantCond {
				t.Fatalf("condition %q, want %q: %s", got, tt.wantCond, r.El)
			}
			if tt.wantCond != "" {
				if e, _ := stanza.ErrorOf(r); e.Type != tt.wantType {
					t.Errorf("error type %q, want %q", e.Type, tt.wantType)
				}
				return
			}
			if got := r.Payload().String(); got != tt.want {
				t.Errorf("payload %s, want %s", got, tt.want)
			}
			if r.From.String() != tt.to {
				t.Errorf("reply from %q, want %q", r.From, tt.to)
			}
		})
	}

	// When alice logs in, her contacts see 0; when she leaves again, the
	// stored record counts.
	al := srv.Connect("alice@example.com/phone")
	b := clients["both@example.com/x"]
	b.SendXML("<iq type='get' id='l2' to='alice@example.com'><query xmlns='jabber:iq:last'/></iq>")
	if got := b.NextIQ("l2").Payload().String(); got != zero {
		t.Errorf("while connected: %s", got)
	}
	al.Disconnect()
	c.now = c.now.Add(7 * time.Second)
	b.SendXML("<iq type='get' id='l3' to='alice@example.com'><query xmlns='jabber:iq:last'/></iq>")
	if got := b.NextIQ("l3").Payload().String(); got != "<query xmlns='jabber:iq:last' seconds='910'>Heading Home</query>" {
		t.Errorf("after disconnect: %s", got)
	}
}

func TestErrorsAndDisco(t *testing.T) {
	srv, _ := setup(t)
	srv.Account("alice")
	a := srv.Connect("alice@example.com/phone")
	for _, tt := range []struct{ name, xml string }{
		{"set to host", "<iq type='set' id='l' to='example.com'><query xmlns='jabber:iq:last'/></iq>"},
		{"set to account", "<iq type='set' id='l' to='alice@example.com'><query xmlns='jabber:iq:last'/></iq>"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a.SendXML(tt.xml)
			if got := modtest.ErrorCondition(a.NextIQ("l")); got != stanza.ServiceUnavailable {
				t.Errorf("condition %q", got)
			}
		})
	}
	for _, target := range []module.Target{module.ToHost, module.ToAccount} {
		if f := srv.Host.DiscoInfo(target).Features; !slices.Equal(f, []string{NS}) {
			t.Errorf("%s features = %q", target, f)
		}
	}
}

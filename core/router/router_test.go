package router_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

// available makes a client available with a priority, as the presence
// module would.
func available(t *testing.T, srv *modtest.Server, c *modtest.Client, prio int) {
	t.Helper()
	p := modtest.Parse(t, fmt.Sprintf("<presence><priority>%d</priority></presence>", prio))
	p.SetFrom(c.JID)
	srv.Host.SetPresence(context.Background(), c.Res, p)
}

func isMessage(body string) func(*stanza.Stanza) bool {
	return func(s *stanza.Stanza) bool {
		return s.Kind == stanza.KindMessage && s.El.ChildText(stanza.NSClient, "body") == body
	}
}

func isError(cond string) func(*stanza.Stanza) bool {
	return func(s *stanza.Stanza) bool { return s.IsError() && modtest.ErrorCondition(s) == cond }
}

func TestMessageDelivery(t *testing.T) {
	srv := modtest.New(t, modtest.Options{})
	srv.Account("alice")
	srv.Account("bob")
	alice := srv.Connect("alice@example.com/laptop")
	bobPhone := srv.Connect("bob@example.com/phone")
	bobDesk := srv.Connect("bob@example.com/desk")
	bobAway := srv.Connect("bob@example.com/away")
	available(t, srv, alice, 0)
	available(t, srv, bobPhone, 1)
	available(t, srv, bobDesk, 5)
	available(t, srv, bobAway, -1)
	none := 100 * time.Millisecond

	t.Run("full JID goes to that resource only", func(t *testing.T) {
		alice.SendXML("<message to='bob@example.com/phone' type='chat'><body>m1</body></message>")
		got := bobPhone.Next(isMessage("m1"))
		if got.From != alice.JID {
			t.Fatalf("from = %s, want %s", got.From, alice.JID)
		}
		bobDesk.Nothing(none, isMessage("m1"))
	})
	t.Run("bare JID chat goes to the highest priority", func(t *testing.T) {
		alice.SendXML("<message to='bob@example.com' type='chat'><body>m2</body></message>")
		bobDesk.Next(isMessage("m2"))
		bobPhone.Nothing(none, isMessage("m2"))
		bobAway.Nothing(0, isMessage("m2"))
	})
	t.Run("headline to bare JID goes to every non-negative resource", func(t *testing.T) {
		alice.SendXML("<message to='bob@example.com' type='headline'><body>m3</body></message>")
		bobDesk.Next(isMessage("m3"))
		bobPhone.Next(isMessage("m3"))
		bobAway.Nothing(none, isMessage("m3"))
	})
	t.Run("chat to a vanished resource falls back to the bare JID", func(t *testing.T) {
		alice.SendXML("<message to='bob@example.com/gone' type='chat'><body>m4</body></message>")
		bobDesk.Next(isMessage("m4"))
	})
	t.Run("headline to a vanished resource is dropped silently", func(t *testing.T) {
		alice.SendXML("<message to='bob@example.com/gone' type='headline'><body>m5</body></message>")
		alice.Nothing(none, nil)
		bobDesk.Nothing(0, isMessage("m5"))
	})
	t.Run("unknown user gets service-unavailable", func(t *testing.T) {
		alice.SendXML("<message to='nobody@example.com' type='chat' id='x1'><body>m6</body></message>")
		e := alice.Next(isError(stanza.ServiceUnavailable))
		if e.ID != "x1" || e.From.String() != "nobody@example.com" || e.To != alice.JID {
			t.Fatalf("error reply addressed wrongly: %s", e.El)
		}
		if e.El.ChildText(stanza.NSClient, "body") != "m6" {
			t.Fatalf("error reply lost the original payload: %s", e.El)
		}
	})
	t.Run("another domain gets remote-server-not-found", func(t *testing.T) {
		alice.SendXML("<message to='someone@elsewhere.example' type='chat'><body>m7</body></message>")
		alice.Next(isError(stanza.RemoteServerNotFound))
	})
	t.Run("an error is never answered with an error", func(t *testing.T) {
		alice.SendXML("<message to='nobody@example.com' type='error'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>")
		alice.Nothing(none, nil)
	})
	t.Run("groupchat to a user is an error", func(t *testing.T) {
		alice.SendXML("<message to='bob@example.com' type='groupchat'><body>m8</body></message>")
		alice.Next(isError(stanza.ServiceUnavailable))
	})
}

func TestNoAvailableResource(t *testing.T) {
	srv := modtest.New(t, modtest.Options{})
	srv.Account("alice")
	srv.Account("bob")
	alice := srv.Connect("alice@example.com/laptop")
	bob := srv.Connect("bob@example.com/phone") // bound, but no initial presence
	alice.SendXML("<message to='bob@example.com' type='chat'><body>hello</body></message>")
	// Without an offline module the router answers; it never drops a chat
	// message silently.
	alice.Next(isError(stanza.ServiceUnavailable))
	bob.Nothing(50*time.Millisecond, isMessage("hello"))
	// A full JID still reaches a bound resource that is not available.
	alice.SendXML("<message to='bob@example.com/phone' type='chat'><body>direct</body></message>")
	bob.Next(isMessage("direct"))
}

func TestIQRouting(t *testing.T) {
	srv := modtest.New(t, modtest.Options{})
	srv.Account("alice")
	srv.Account("bob")
	alice := srv.Connect("alice@example.com/laptop")
	bob := srv.Connect("bob@example.com/phone")
	tests := []struct {
		name, xml, cond string
	}{
		{"unknown namespace to the host", "<iq type='get' id='q1' to='example.com'><query xmlns='urn:example:nothing'/></iq>", stanza.ServiceUnavailable},
		{"unknown namespace to an account", "<iq type='get' id='q2' to='bob@example.com'><query xmlns='urn:example:nothing'/></iq>", stanza.ServiceUnavailable},
		{"no 'to' is the own account", "<iq type='get' id='q3'><query xmlns='urn:example:nothing'/></iq>", stanza.ServiceUnavailable},
		{"no payload", "<iq type='get' id='q4' to='example.com'/>", stanza.BadRequest},
		{"offline full JID", "<iq type='get' id='q5' to='bob@example.com/gone'><ping xmlns='urn:xmpp:ping'/></iq>", stanza.ServiceUnavailable},
		{"unknown user", "<iq type='get' id='q6' to='nobody@example.com'><query xmlns='urn:example:nothing'/></iq>", stanza.ServiceUnavailable},
		{"bad type", "<iq type='fetch' id='q7' to='example.com'><query xmlns='urn:example:nothing'/></iq>", stanza.BadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := modtest.Parse(t, tt.xml).ID
			alice.SendXML(tt.xml)
			r := alice.NextIQ(id)
			if got := modtest.ErrorCondition(r); got != tt.cond {
				t.Fatalf("condition = %q, want %q (%s)", got, tt.cond, r.El)
			}
		})
	}
	t.Run("full JID is delivered to the client", func(t *testing.T) {
		alice.SendXML("<iq type='get' id='q8' to='bob@example.com/phone'><ping xmlns='urn:xmpp:ping'/></iq>")
		got := bob.Next(func(s *stanza.Stanza) bool { return s.Kind == stanza.KindIQ && s.ID == "q8" })
		if got.From != alice.JID {
			t.Fatalf("from = %s", got.From)
		}
	})
}

// TestHooks checks phases, verdicts and errors of the hook chains with a
// module declared in the test.
func TestHooks(t *testing.T) {
	var observed atomic.Int32
	var order []string
	mod := &testModule{provision: func(h module.Host) error {
		h.Hook(module.Inbound, module.Observe, func(ctx context.Context, p *module.Packet) (module.Verdict, error) {
			observed.Add(1)
			order = append(order, "observe")
			return module.Continue, nil
		})
		h.Hook(module.Inbound, module.Process, func(ctx context.Context, p *module.Packet) (module.Verdict, error) {
			order = append(order, "process")
			if p.Stanza.IsError() {
				// Error replies carry the original payload: a real policy
				// hook lets them through too.
				return module.Continue, nil
			}
			switch p.Stanza.El.ChildText(stanza.NSClient, "body") {
			case "drop":
				return module.Drop, nil
			case "done":
				return module.Done, nil
			case "deny":
				return module.Drop, stanza.Error{Type: stanza.Cancel, Condition: stanza.PolicyViolation, Text: "not allowed here"}
			case "crash":
				return module.Drop, errors.New("disk on fire")
			}
			return module.Continue, nil
		})
		h.Hook(module.Inbound, module.Filter, func(ctx context.Context, p *module.Packet) (module.Verdict, error) {
			order = append(order, "filter")
			return module.Continue, nil
		})
		h.HandleIQ(module.ToHost, module.Get, stanza.Name{Space: "urn:test", Local: "q"}, func(ctx context.Context, iq *module.IQ) (*stanza.Element, error) {
			return stanza.New("urn:test", "answer"), nil
		})
		return nil
	}}
	srv := modtest.New(t, modtest.Options{}, router.Enabled{Info: module.Info{ID: "test"}, Module: mod})
	srv.Account("alice")
	srv.Account("bob")
	alice := srv.Connect("alice@example.com/a")
	bob := srv.Connect("bob@example.com/b")
	available(t, srv, bob, 0)

	alice.SendXML("<message to='bob@example.com' type='chat'><body>pass</body></message>")
	bob.Next(isMessage("pass"))
	if strings.Join(order, ",") != "filter,process,observe" {
		t.Fatalf("phase order = %v", order)
	}
	alice.SendXML("<message to='bob@example.com' type='chat'><body>drop</body></message>")
	alice.SendXML("<message to='bob@example.com' type='chat'><body>done</body></message>")
	bob.Nothing(50*time.Millisecond, nil)
	if n := observed.Load(); n != 2 {
		t.Fatalf("observe ran %d times, want 2 (pass and done, not drop)", n)
	}
	alice.SendXML("<message to='bob@example.com' type='chat' id='d1'><body>deny</body></message>")
	e := alice.Next(isError(stanza.PolicyViolation))
	if se, _ := stanza.ErrorOf(e); se.Text != "not allowed here" {
		t.Fatalf("error text = %q", se.Text)
	}
	alice.SendXML("<message to='bob@example.com' type='chat' id='d2'><body>crash</body></message>")
	e = alice.Next(isError(stanza.InternalServerError))
	if se, _ := stanza.ErrorOf(e); strings.Contains(se.Text, "disk") || !strings.HasPrefix(se.Text, "internal error ") {
		t.Fatalf("internal error leaked detail or lacks an id: %q", se.Text)
	}
	alice.SendXML("<iq type='get' id='i1' to='example.com'><q xmlns='urn:test'/></iq>")
	r := alice.NextIQ("i1")
	if r.Type != "result" || r.Payload() == nil || r.Payload().Name.Local != "answer" || r.From.String() != "example.com" {
		t.Fatalf("IQ result = %s", r.El)
	}
}

type testModule struct {
	provision func(module.Host) error
}

func (m *testModule) Provision(h module.Host) error { return m.provision(h) }

func TestBindConflictAndEvents(t *testing.T) {
	var events []string
	mod := &testModule{provision: func(h module.Host) error {
		for _, k := range []module.EventKind{module.SessionBound, module.SessionAvailable, module.SessionUnavailable, module.SessionClosed} {
			h.On(k, func(ctx context.Context, ev module.Event) {
				events = append(events, fmt.Sprintf("%d:%s", ev.Kind, ev.Resource.JID().Resource()))
			})
		}
		return nil
	}}
	srv := modtest.New(t, modtest.Options{}, router.Enabled{Info: module.Info{ID: "test"}, Module: mod})
	srv.Account("alice")
	first := srv.Connect("alice@example.com/r")
	available(t, srv, first, 0)
	second := srv.Connect("alice@example.com/r")
	closed, err := first.Closed()
	if !closed || err == nil || err.Condition != stanza.StreamConflict {
		t.Fatalf("the replaced session was not closed with conflict: %v %v", closed, err)
	}
	if got := srv.Router.Resources(jid.MustParse("alice@example.com")); len(got) != 1 || got[0] != second.Res {
		t.Fatalf("resources after conflict = %v", got)
	}
	first.Disconnect() // the old session's own cleanup must not remove the new one
	if got := srv.Router.Resources(jid.MustParse("alice@example.com")); len(got) != 1 {
		t.Fatalf("old session's unbind removed the new one: %v", got)
	}
	second.Disconnect()
	want := "0:r,1:r,3:r,0:r,3:r"
	if got := strings.Join(events, ","); got != want {
		t.Fatalf("events = %s, want %s (bound, available, closed old, bound new, closed new)", got, want)
	}
	if n := srv.Router.SessionCount(); n != 0 {
		t.Fatalf("%d sessions left", n)
	}
}

func BenchmarkRouteMessage(b *testing.B) {
	srv := modtest.New(b, modtest.Options{})
	srv.Account("alice")
	srv.Account("bob")
	alice := srv.Connect("alice@example.com/a")
	bob := srv.Connect("bob@example.com/b")
	p := modtest.Parse(b, "<presence/>")
	p.SetFrom(bob.JID)
	srv.Host.SetPresence(context.Background(), bob.Res, p)
	msg := modtest.Parse(b, "<message to='bob@example.com/b' type='chat' id='m1'><body>Hello Bob, are we still on for lunch today?</body></message>")
	msg.SetFrom(alice.JID)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		srv.Router.RouteFrom(ctx, alice.Res, msg)
		if len(bob.Received()) != 1 {
			b.Fatal("not delivered")
		}
	}
}

// TestVirtualHosts: one server, two domains; users of each reach each other,
// and each host answers for itself.
func TestVirtualHosts(t *testing.T) {
	srv := modtest.New(t, modtest.Options{Domain: "one.example"})
	if _, err := srv.Router.AddHost(jid.MustParse("two.example"), nil); err != nil {
		t.Fatal(err)
	}
	srv.Account("alice")
	if err := srv.Store.CreateAccount(context.Background(), storage.Account{JID: "bob@two.example", Domain: "two.example"}); err != nil {
		t.Fatal(err)
	}
	alice := srv.Connect("alice@one.example/a")
	bob := srv.Connect("bob@two.example/b")
	available(t, srv, alice, 0)
	available(t, srv, bob, 0)
	alice.SendXML("<message to='bob@two.example' type='chat'><body>across</body></message>")
	if got := bob.Next(isMessage("across")); got.From != alice.JID {
		t.Fatalf("from = %s", got.From)
	}
	bob.SendXML("<iq type='get' id='h1' to='two.example'><query xmlns='urn:example:nothing'/></iq>")
	if r := bob.NextIQ("h1"); r.From.String() != "two.example" || modtest.ErrorCondition(r) != stanza.ServiceUnavailable {
		t.Fatalf("the second host did not answer for itself: %s", r.El)
	}
	if _, err := srv.Router.AddHost(jid.MustParse("two.example"), nil); err == nil {
		t.Fatal("a host was added twice")
	}
	if got := srv.Router.Domains(); len(got) != 2 {
		t.Fatalf("domains = %v", got)
	}
}

// TestHookReplacesStanza: what a hook puts in p.Stanza is what is delivered
// (module.Packet's contract), while errors answer what the sender sent.
func TestHookReplacesStanza(t *testing.T) {
	mod := &testModule{provision: func(h module.Host) error {
		h.Hook(module.Inbound, module.Process, func(ctx context.Context, p *module.Packet) (module.Verdict, error) {
			if p.Stanza.Kind == stanza.KindMessage && !p.Stanza.IsError() {
				c := p.Stanza.Readdress(p.Stanza.From, p.Stanza.To)
				c.El = c.El.Clone()
				c.El.Append(stanza.New("urn:xmpp:sid:0", "stanza-id").Set("id", "x1"))
				p.Stanza = c
			}
			return module.Continue, nil
		})
		return nil
	}}
	srv := modtest.New(t, modtest.Options{}, router.Enabled{Info: module.Info{ID: "test"}, Module: mod})
	srv.Account("alice")
	srv.Account("bob")
	alice := srv.Connect("alice@example.com/a")
	bob := srv.Connect("bob@example.com/b")
	available(t, srv, bob, 0)
	alice.SendXML("<message to='bob@example.com' type='chat'><body>stamped</body></message>")
	got := bob.Next(isMessage("stamped"))
	if got.El.Child("urn:xmpp:sid:0", "stanza-id") == nil {
		t.Fatalf("the hook's replacement was not delivered: %s", got.El)
	}
}

// component is a module that serves a domain: it echoes messages back from
// the JID they were sent to, refuses IQs, and records what it saw.
type component struct {
	domain string
	seen   atomic.Int32
	origin atomic.Bool
	host   module.Host
}

func (c *component) Provision(h module.Host) error {
	c.host = h
	return h.ServeDomain(c.domain, func(ctx context.Context, p *module.Packet) error {
		c.seen.Add(1)
		c.origin.Store(p.Origin != nil)
		s := p.Stanza
		if s.Kind == stanza.KindIQ {
			return stanza.ErrFeatureNotImplemented("no")
		}
		reply := stanza.NewMessage(s.To, s.From, "chat", "")
		reply.El.Append(stanza.New(stanza.NSClient, "body").SetText("echo"))
		h.Route(ctx, reply)
		return nil
	})
}

func TestServeDomain(t *testing.T) {
	comp := &component{domain: "conference.example.com"}
	var inbound atomic.Int32
	hook := &testModule{provision: func(h module.Host) error {
		h.Hook(module.Inbound, module.Process, func(_ context.Context, p *module.Packet) (module.Verdict, error) {
			if p.Stanza.From.Domain() == "conference.example.com" {
				inbound.Add(1)
			}
			return module.Continue, nil
		})
		return nil
	}}
	srv := modtest.New(t, modtest.Options{},
		router.Enabled{Info: module.Info{ID: "comp"}, Module: comp},
		router.Enabled{Info: module.Info{ID: "hook"}, Module: hook})
	srv.Account("alice")
	alice := srv.Connect("alice@example.com/laptop")
	available(t, srv, alice, 0)

	alice.SendXML("<message to='room@conference.example.com/nick' type='chat'><body>hi</body></message>")
	got := alice.Next(isMessage("echo"))
	if got.From.String() != "room@conference.example.com/nick" {
		t.Fatalf("echo from %s", got.From)
	}
	if comp.seen.Load() != 1 || !comp.origin.Load() {
		t.Fatalf("component saw %d stanzas (origin %v), want 1 with origin", comp.seen.Load(), comp.origin.Load())
	}
	if inbound.Load() != 1 {
		t.Fatalf("the reply walked the Inbound chain %d times, want 1", inbound.Load())
	}

	alice.SendXML("<iq to='conference.example.com' type='get' id='q1'><query xmlns='urn:x'/></iq>")
	if e := alice.NextIQ("q1"); modtest.ErrorCondition(e) != stanza.FeatureNotImplemented || e.From.String() != "conference.example.com" {
		t.Fatalf("IQ answer: %s", e.El)
	}

	// Other domains still go to Remote.
	alice.SendXML("<message to='bob@elsewhere.example' type='chat'><body>x</body></message>")
	alice.Next(isError(stanza.RemoteServerNotFound))
	if srv.Host.Domain().String() != "example.com" || srv.Router.IsLocal("conference.example.com") {
		t.Fatal("a served domain must not count as a virtual host")
	}

	t.Run("conflicts", func(t *testing.T) {
		r := router.New(router.Config{})
		if _, err := r.AddHost(jid.MustParse("a.example"), []router.Enabled{
			{Info: module.Info{ID: "c1"}, Module: &component{domain: "muc.a.example"}},
			{Info: module.Info{ID: "c2"}, Module: &component{domain: "muc.a.example"}},
		}); err == nil || !strings.Contains(err.Error(), "served by module c1") {
			t.Fatalf("second ServeDomain: %v", err)
		}
		for _, d := range []string{"c.example", "user@b.example", "b.example/res", ""} {
			if _, err := r.AddHost(jid.MustParse("c.example"), []router.Enabled{
				{Info: module.Info{ID: "c"}, Module: &component{domain: d}}}); err == nil {
				t.Errorf("ServeDomain(%q) succeeded", d)
			}
		}
		if _, err := r.AddHost(jid.MustParse("a.example"), []router.Enabled{
			{Info: module.Info{ID: "c"}, Module: &component{domain: "muc.a.example"}}}); err != nil {
			t.Fatalf("a failed host must release its domains: %v", err)
		}
		if _, err := r.AddHost(jid.MustParse("muc.a.example"), nil); err == nil {
			t.Fatal("a served domain became a host")
		}
	})
}

// authConn is a Conn that knows how it was authenticated
// (router.AuthInfo).
type authConn struct {
	at, inc time.Time
	closed  atomic.Pointer[stanza.StreamError]
}

func (c *authConn) Send(*stanza.Stanza)           {}
func (c *authConn) Close(err *stanza.StreamError) { c.closed.Store(err) }
func (c *authConn) AuthStarted() time.Time        { return c.at }
func (c *authConn) Incarnation() time.Time        { return c.inc }

// plainConn does not say how it was authenticated.
type plainConn struct{ closed atomic.Bool }

func (c *plainConn) Send(*stanza.Stanza)       {}
func (c *plainConn) Close(*stanza.StreamError) { c.closed.Store(true) }

// TestCloseAccountRevocation: CloseAccount ends the sessions a Revocation
// names (those of other incarnations of the account, those that began to
// authenticate before a time, all for the zero Revocation; a session that
// cannot say how it was authenticated always), leaves the others, and for
// a while Bind refuses sessions it would have ended, which authenticated
// before but bind only now.
func TestCloseAccountRevocation(t *testing.T) {
	srv := modtest.New(t, modtest.Options{})
	now := time.Now()
	router.SetClock(srv.Router, func() time.Time { return now })
	ctx := context.Background()
	alice := jid.MustParse("alice@example.com")
	bind := func(res string, c router.Conn) error {
		_, err := srv.Router.Bind(ctx, jid.MustParse("alice@example.com/"+res), c)
		return err
	}
	mustBind := func(res string, c router.Conn) {
		t.Helper()
		if err := bind(res, c); err != nil {
			t.Fatalf("Bind %s: %v", res, err)
		}
	}
	refused := func(res string, c router.Conn) {
		t.Helper()
		var se *stanza.StreamError
		if err := bind(res, c); !errors.As(err, &se) || se.Condition != stanza.StreamNotAuthorized {
			t.Fatalf("Bind %s: %v, want not-authorized", res, err)
		}
	}
	deleted := &stanza.StreamError{Condition: stanza.StreamNotAuthorized, Text: "deleted"}

	// The address was given to someone else: incarnation b.
	a, b := now.Add(-48*time.Hour), now.Add(-time.Hour)
	former := &authConn{at: now.Add(-2 * time.Hour), inc: a}
	owner := &authConn{at: now.Add(-time.Minute), inc: b}
	unknown := &authConn{at: now.Add(-time.Minute)}
	plain := &plainConn{}
	mustBind("former", former)
	mustBind("owner", owner)
	mustBind("unknown", unknown)
	mustBind("plain", plain)
	if n := srv.Router.CloseAccount(alice, router.Revocation{Incarnation: b}, deleted); n != 3 {
		t.Fatalf("closed %d sessions, want 3", n)
	}
	if former.closed.Load() != deleted || unknown.closed.Load() == nil || !plain.closed.Load() {
		t.Fatal("a session of another (or an unknown) incarnation was not closed")
	}
	if owner.closed.Load() != nil {
		t.Fatal("the new owner's session was closed")
	}
	// The former owner's login that binds only now: refused; the new
	// owner's next one is not.
	refused("late", &authConn{at: now.Add(-time.Second), inc: a})
	mustBind("next", &authConn{at: now.Add(-time.Millisecond), inc: b})

	// Before a time: the sessions that began to authenticate before it,
	// not one that began at that very time.
	cut := now.Add(-30 * time.Second)
	early := &authConn{at: cut.Add(-time.Nanosecond), inc: b}
	atCut := &authConn{at: cut, inc: b}
	mustBind("early", early)
	mustBind("atcut", atCut)
	srv.Router.CloseAccount(alice, router.Revocation{Before: cut}, deleted)
	if early.closed.Load() == nil || atCut.closed.Load() != nil {
		t.Fatalf("Before: closed early %v, at the time %v; want only the early one", early.closed.Load(), atCut.closed.Load())
	}
	refused("early2", &authConn{at: cut.Add(-time.Second), inc: b})

	// The zero Revocation: all, and any login that began before now.
	if n := srv.Router.CloseAccount(alice, router.Revocation{}, deleted); n != len(srv.Router.Resources(alice)) {
		t.Fatalf("the zero Revocation closed %d of %d sessions", n, len(srv.Router.Resources(alice)))
	}
	if owner.closed.Load() == nil {
		t.Fatal("the zero Revocation left a session open")
	}
	refused("inflight", &authConn{at: now.Add(-time.Millisecond), inc: b})
	mustBind("after", &authConn{at: now.Add(time.Millisecond), inc: b})
	// Other accounts are not concerned.
	if _, err := srv.Router.Bind(ctx, jid.MustParse("bob@example.com/r"), &authConn{at: now.Add(-time.Hour)}); err != nil {
		t.Fatalf("Bind of another account: %v", err)
	}

	// The refusals end after their time (5 minutes at least), and
	// CloseAccount forgets them.
	if got := router.Revocations(srv.Router); got != 3 {
		t.Fatalf("%d revocations remembered, want 3", got)
	}
	now = now.Add(6 * time.Minute)
	mustBind("late2", &authConn{at: now.Add(-7 * time.Minute), inc: a})
	srv.Router.CloseAccount(jid.MustParse("carol@example.com"), router.Revocation{}, deleted)
	if got := router.Revocations(srv.Router); got != 1 {
		t.Fatalf("%d revocations remembered after their time, want carol's only", got)
	}
}

package push

import (
	"context"
	"strings"
	"testing"
	"time"

	"kontor.im/kontor/core/dataform"
	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/seal"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

// appServer serves an app server's domain inside the test router (as a
// component or a federated server would) and answers each publish with
// what answer returns: a stanza.Error, nil for a result, or errSilent for
// no answer at all.
type appServer struct {
	domain string
	answer func() error
	got    chan *stanza.Stanza
	host   module.Host
}

var errSilent = stanza.Error{Condition: "silent"}

func (a *appServer) Provision(h module.Host) error {
	a.host = h
	return h.ServeDomain(a.domain, func(ctx context.Context, p *module.Packet) error {
		s := p.Stanza
		a.got <- s
		err := a.answer()
		switch {
		case err == errSilent:
		case err != nil:
			return err // the router returns it to the sender
		default:
			h.Route(ctx, stanza.NewIQ(s.To, s.From, "result", s.ID, nil))
		}
		return nil
	})
}

// setupXMPP is a server whose push module publishes over XMPP to an app
// server at push.example.net.
func setupXMPP(t *testing.T, edit func(*Options)) (*modtest.Server, *Module, *appServer) {
	t.Helper()
	o := defaultOptions()
	if edit != nil {
		edit(&o)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	info, _ := module.Lookup("push")
	sealer, err := seal.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	app := &appServer{domain: "push.example.net", answer: func() error { return nil }, got: make(chan *stanza.Stanza, 100)}
	m := &Module{opts: o}
	srv := modtest.New(t, modtest.Options{Sealer: sealer},
		modtest.Module(t, "roster"), modtest.Module(t, "presence"), modtest.Module(t, "offline"),
		router.Enabled{Info: info, Module: m},
		router.Enabled{Info: module.Info{ID: "appserver"}, Module: app})
	srv.Account("alice")
	srv.Account("bob")
	return srv, m, app
}

func (a *appServer) next(t *testing.T) *stanza.Stanza {
	t.Helper()
	select {
	case s := <-a.got:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no publish reached the app server")
		return nil
	}
}

func (a *appServer) none(t *testing.T) {
	t.Helper()
	select {
	case s := <-a.got:
		t.Fatalf("unexpected publish %s", s.El)
	case <-time.After(200 * time.Millisecond):
	}
}

// registrations waits until alice has n push registrations.
func registrations(t *testing.T, srv *modtest.Server, n int) {
	t.Helper()
	st := srv.Store.(storage.PushRegistrations)
	deadline := time.Now().Add(5 * time.Second)
	for {
		regs, err := st.PushRegistrations(context.Background(), "alice@example.com")
		if err == nil && len(regs) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("alice has %d registrations (%v), want %d", len(regs), err, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for " + what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPublishOverXMPP(t *testing.T) {
	srv, m, app := setupXMPP(t, nil)
	phone := srv.Connect("alice@example.com/phone")
	enable(t, phone)
	phone.Disconnect()

	bob := srv.Connect("bob@example.com/pc")
	bob.SendXML(message("alice@example.com", "the secret plans"))
	iq := app.next(t)
	if iq.Kind != stanza.KindIQ || iq.Type != "set" || iq.From.String() != "alice@example.com" ||
		iq.To.String() != "push.example.net" || !strings.HasPrefix(iq.ID, idPrefix) {
		t.Fatalf("publish %s", iq.El)
	}
	if strings.Contains(iq.El.String(), "secret plans") || strings.Contains(iq.El.String(), "bob@") {
		t.Errorf("the publish carries the body or the sender: %s", iq.El)
	}
	ps := iq.El.Child(NSPubSub, "pubsub")
	pub := ps.Child(NSPubSub, "publish")
	if pub.Get("node") != "device-1" {
		t.Errorf("publish %s", pub)
	}
	form, err := dataform.Parse(pub.Child(NSPubSub, "item").Child(NS, "notification").Child(dataform.NS, "x"))
	if err != nil || form.FormType() != NSSummary || form.Value("message-count") != "1" ||
		form.Value("last-message-sender") != "" || form.Value("last-message-body") != "" {
		t.Errorf("summary form %+v (%v)", form, err)
	}
	opts, err := dataform.Parse(ps.Child(NSPubSub, "publish-options").Child(dataform.NS, "x"))
	if err != nil || opts.FormType() != PublishOptions || opts.Value("secret") != "app-server-secret" {
		t.Errorf("publish-options %+v (%v)", opts, err)
	}
	// The result is taken; nothing waits any more, and the registration stays.
	waitFor(t, "the reply to be taken", func() bool { return m.waiting() == 0 })
	bob.SendXML(message("alice@example.com", "more"))
	if iq := app.next(t); !strings.Contains(iq.El.String(), "<value>2</value>") {
		t.Errorf("second publish %s", iq.El)
	}
	registrations(t, srv, 1)
}

func TestAppServerErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error
		kept bool
	}{
		{"item-not-found disables", stanza.ErrItemNotFound("no such node"), false},
		{"not-authorized disables", stanza.Error{Type: stanza.Auth, Condition: stanza.NotAuthorized}, false},
		{"wait keeps", stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint}, true},
		{"unreachable keeps", stanza.ErrServiceUnavailable("not connected"), true},
		{"remote-server-timeout keeps", stanza.Error{Type: stanza.Wait, Condition: stanza.RemoteServerTimeout}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, m, app := setupXMPP(t, nil)
			app.answer = func() error { return tt.err }
			phone := srv.Connect("alice@example.com/phone")
			enable(t, phone)
			phone.Disconnect()
			srv.Connect("bob@example.com/pc").SendXML(message("alice@example.com", "hello"))
			app.next(t)
			waitFor(t, "the reply to be taken", func() bool { return m.waiting() == 0 })
			if tt.kept {
				registrations(t, srv, 1)
			} else {
				registrations(t, srv, 0)
			}
		})
	}
}

func TestAppServerSilent(t *testing.T) {
	srv, m, app := setupXMPP(t, func(o *Options) { o.Timeout = 100 * time.Millisecond; o.QueueSize = 2 })
	app.answer = func() error { return errSilent }
	phone := srv.Connect("alice@example.com/phone")
	enable(t, phone)
	phone.Disconnect()
	bob := srv.Connect("bob@example.com/pc")
	bob.SendXML(message("alice@example.com", "one"))
	app.next(t)
	if m.waiting() != 1 {
		t.Fatalf("%d publishes wait", m.waiting())
	}
	// No answer: forgotten after the timeout, the registration kept.
	waitFor(t, "the publish to expire", func() bool { return m.waiting() == 0 })
	registrations(t, srv, 1)

	// A forged answer (not from the app server) is not taken for one.
	bob.SendXML(message("alice@example.com", "two"))
	iq := app.next(t)
	bob.SendXML("<iq type='error' id='" + iq.ID + "' to='alice@example.com'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
	time.Sleep(20 * time.Millisecond)
	if m.waiting() != 1 {
		t.Errorf("a forged reply was taken for the app server's: %d publishes wait", m.waiting())
	}
	registrations(t, srv, 1)
}

func TestGatewayOnlyForListedServices(t *testing.T) {
	g := newGateway(t)
	srv, _, app := setupXMPP(t, func(o *Options) {
		o.GatewayURL, o.GatewayServices = g.URL, []string{"GW-Only.Example.ORG"}
	})
	phone := srv.Connect("alice@example.com/phone")
	enable(t, phone)
	phone.SendXML("<iq type='set' id='e2'><enable xmlns='urn:xmpp:push:0' jid='gw-only.example.org' node='device-2'/></iq>")
	phone.NextIQ("e2")
	phone.Disconnect()
	srv.Connect("bob@example.com/pc").SendXML(message("alice@example.com", "hello"))
	if n := g.next(t); n.Service != "gw-only.example.org" || n.Node != "device-2" {
		t.Errorf("gateway got %+v", n)
	}
	if iq := app.next(t); iq.To.String() != "push.example.net" {
		t.Errorf("app server got %s", iq.El)
	}
	g.none(t)
	app.none(t)
}

// BenchmarkReplyFilter measures what the reply hook costs every stanza
// that reaches an account while push is enabled: a message, and an IQ
// result that is not a reply to a publish.
func BenchmarkReplyFilter(b *testing.B) {
	m := &Module{pending: map[string]publish{"push-0123": {owner: "alice@example.com", service: "push.example.net"}}}
	msg := &module.Packet{Target: module.ToAccount, Stanza: modtest.Parse(b,
		"<message from='bob@example.com/pc' to='alice@example.com' type='chat'><body>hi</body></message>")}
	res := &module.Packet{Target: module.ToAccount, Stanza: modtest.Parse(b,
		"<iq type='result' from='push.example.net' to='alice@example.com' id='push-other'/>")}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if v, _ := m.reply(ctx, msg); v != module.Continue {
			b.Fatal(v)
		}
		if v, _ := m.reply(ctx, res); v != module.Continue {
			b.Fatal(v)
		}
	}
}

// TestPendingBound: queue_size also bounds the publishes waiting for their
// reply; beyond it a notification is dropped, and once the wait is over
// notifications go out again.
func TestPendingBound(t *testing.T) {
	srv, m, app := setupXMPP(t, func(o *Options) { o.Timeout, o.QueueSize, o.Workers = 300*time.Millisecond, 1, 1 })
	app.answer = func() error { return errSilent }
	phone := srv.Connect("alice@example.com/phone")
	enable(t, phone)
	phone.Disconnect()
	bob := srv.Connect("bob@example.com/pc")
	bob.SendXML(message("alice@example.com", "one"))
	app.next(t)
	bob.SendXML(message("alice@example.com", "two"))
	app.none(t) // one waits for its reply already
	waitFor(t, "the publish to expire", func() bool { return m.waiting() == 0 })
	bob.SendXML(message("alice@example.com", "three"))
	if iq := app.next(t); !strings.Contains(iq.El.String(), "<value>3</value>") {
		t.Errorf("after the wait: %s", iq.El)
	}
}

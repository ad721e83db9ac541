package component

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"kontor.im/kontor/core/gate"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/xmlstream"
)

const secret = "correct horse battery staple"

// decider answers contact questions, refusing what refuse says, and
// records them.
type decider struct {
	mu     sync.Mutex
	asked  []gate.ContactInput
	refuse func(gate.ContactInput) bool
}

func (d *decider) Contact(_ context.Context, in gate.ContactInput) gate.Decision {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.asked = append(d.asked, in)
	if d.refuse != nil && d.refuse(in) {
		return gate.Decision{ID: "d-no", Reason: "no_bots", Message: "No bots."}
	}
	return gate.Decision{ID: "d-yes", Allow: true, Reason: "business_contact"}
}
func (d *decider) Retention(context.Context, gate.RetentionInput) gate.RetentionDecision {
	return gate.RetentionDecision{}
}
func (d *decider) Access(context.Context, gate.AccessInput) gate.AccessDecision {
	return gate.AccessDecision{}
}
func (d *decider) E2EE(context.Context, gate.E2EEInput) gate.Decision { return gate.Decision{} }
func (d *decider) Registration(context.Context, gate.RegistrationInput) gate.Decision {
	return gate.Decision{}
}

func (d *decider) questions() []gate.ContactInput {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := d.asked
	d.asked = nil
	return out
}

type env struct {
	srv *modtest.Server
	m   *Module
	d   *decider
}

// newEnv runs the module on example.com with bot.example.com and
// gw.example.com configured; mutate changes the options first.
func newEnv(t *testing.T, mutate func(*Options)) *env {
	t.Helper()
	info, ok := module.Lookup(ID)
	if !ok {
		t.Fatal("module not registered")
	}
	m := newModule()
	m.opts.Listen = "127.0.0.1:0"
	m.opts.HandshakeTimeout = 2 * time.Second
	m.opts.Components = []ComponentOptions{
		{Domain: "bot.example.com", Name: "Bot", Secret: secret},
		{Domain: "gw.example.com", Name: "Gateway", Secret: secret},
	}
	if mutate != nil {
		mutate(&m.opts)
	}
	if err := m.opts.Validate(); err != nil {
		t.Fatal(err)
	}
	d := &decider{}
	m.SetDecider(d)
	srv := modtest.New(t, modtest.Options{}, router.Enabled{Info: info, Module: m})
	return &env{srv: srv, m: m, d: d}
}

// wire is a component's side of a connection, reading with the server's
// own stream reader.
type wire struct {
	t  *testing.T
	nc net.Conn
	rd *xmlstream.Reader
	id string
}

func (e *env) dial(t *testing.T) *wire {
	t.Helper()
	nc, err := net.Dial("tcp", e.m.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &wire{t: t, nc: nc, rd: xmlstream.NewReader(nc, xmlstream.Limits{})}
}

func (w *wire) write(s string) {
	w.t.Helper()
	if _, err := w.nc.Write([]byte(s)); err != nil {
		w.t.Fatal(err)
	}
}

// open sends a component stream header for domain and reads the server's.
func (w *wire) open(domain string) {
	w.t.Helper()
	w.write("<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='" + domain + "'>")
	h, err := w.rd.Header()
	if err != nil {
		w.t.Fatalf("server header: %v", err)
	}
	if h.Namespace != NS || h.ID == "" {
		w.t.Fatalf("server header %+v", h)
	}
	w.id = h.ID
}

func (w *wire) next() *stanza.Element {
	w.t.Helper()
	el, err := w.rd.Next()
	if err != nil {
		w.t.Fatalf("read: %v", err)
	}
	return el
}

// streamError reads until a stream error and returns its condition.
func (w *wire) streamError() string {
	w.t.Helper()
	for {
		el, err := w.rd.Next()
		if err != nil {
			w.t.Fatalf("no stream error: %v", err)
		}
		if el.Name.Space == stanza.NSStream && el.Name.Local == "error" {
			return el.FirstChild().Name.Local
		}
	}
}

// connect opens a stream for domain and completes the handshake.
func (e *env) connect(t *testing.T, domain string) *wire {
	t.Helper()
	w := e.dial(t)
	w.open(domain)
	w.write("<handshake>" + Digest(w.id, []byte(secret)) + "</handshake>")
	if el := w.next(); el.Name != (stanza.Name{Space: NS, Local: "handshake"}) {
		t.Fatalf("handshake answered with %s", el)
	}
	waitFor(t, func() bool { return e.m.ConnectedComponents() > 0 })
	return w
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not met in 2s")
}

func TestDigest(t *testing.T) {
	// printf 3BF96D32secret | sha1sum
	if got := Digest("3BF96D32", []byte("secret")); got != "b09ea9b3b7f586be8a08d0a3dd7466f110aeb136" {
		t.Fatalf("digest %s", got)
	}
	for _, tc := range []struct {
		name, got string
		ok        bool
	}{
		{"exact", "b09ea9b3b7f586be8a08d0a3dd7466f110aeb136", true},
		{"upper case hex", "B09EA9B3B7F586BE8A08D0A3DD7466F110AEB136", true},
		{"one digit off", "b09ea9b3b7f586be8a08d0a3dd7466f110aeb137", false},
		{"prefix", "b09ea9b3b7f586be8a08d0a3dd7466f110aeb1", false},
		{"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if validDigest("3BF96D32", []byte("secret"), tc.got) != tc.ok {
				t.Fatalf("validDigest(%q) != %v", tc.got, tc.ok)
			}
		})
	}
}

func TestHandshake(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.MaxFailuresPerComponent = 2
		o.Backoff = time.Hour
		o.MaxBackoff = time.Hour
		o.Components = append(o.Components,
			ComponentOptions{Domain: "far.example.com", Secret: secret, AllowedAddrs: []string{"10.0.0.0/8"}},
			ComponentOptions{Domain: "near.example.com", Secret: secret, AllowedAddrs: []string{"127.0.0.1", "::1"}})
	})
	t.Run("unknown domain", func(t *testing.T) {
		w := e.dial(t)
		w.open("nobody.example.com")
		if c := w.streamError(); c != stanza.StreamHostUnknown {
			t.Fatalf("condition %s", c)
		}
	})
	t.Run("wrong namespace", func(t *testing.T) {
		w := e.dial(t)
		w.write("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='bot.example.com'>")
		if _, err := w.rd.Header(); err != nil {
			t.Fatal(err)
		}
		if c := w.streamError(); c != stanza.StreamInvalidNamespace {
			t.Fatalf("condition %s", c)
		}
	})
	t.Run("address not allowed", func(t *testing.T) {
		w := e.dial(t)
		w.open("far.example.com")
		if c := w.streamError(); c != stanza.StreamNotAuthorized {
			t.Fatalf("condition %s", c)
		}
	})
	t.Run("allowed address", func(t *testing.T) {
		w := e.connect(t, "near.example.com")
		w.write("</stream:stream>")
		waitFor(t, func() bool { return e.m.ConnectedComponents() == 0 })
	})
	t.Run("not a handshake", func(t *testing.T) {
		w := e.dial(t)
		w.open("bot.example.com")
		w.write("<message to='alice@example.com' from='bot.example.com'/>")
		if c := w.streamError(); c != stanza.StreamNotAuthorized {
			t.Fatalf("condition %s", c)
		}
	})
	t.Run("right secret, second connection refused", func(t *testing.T) {
		first := e.connect(t, "bot.example.com")
		second := e.dial(t)
		second.open("bot.example.com")
		second.write("<handshake>" + Digest(second.id, []byte(secret)) + "</handshake>")
		if c := second.streamError(); c != stanza.StreamConflict {
			t.Fatalf("condition %s", c)
		}
		first.write("</stream:stream>")
		waitFor(t, func() bool { return e.m.ConnectedComponents() == 0 })
	})
	t.Run("wrong secret, then back-off", func(t *testing.T) {
		before := e.m.HandshakeFailures()
		for i := 0; i < 2; i++ {
			w := e.dial(t)
			w.open("gw.example.com")
			w.write("<handshake>" + Digest(w.id, []byte("guess")) + "</handshake>")
			if c := w.streamError(); c != stanza.StreamNotAuthorized {
				t.Fatalf("attempt %d: condition %s", i, c)
			}
		}
		if n := e.m.HandshakeFailures() - before; n != 2 {
			t.Fatalf("%d failures counted", n)
		}
		// Now even the right secret waits.
		w := e.dial(t)
		w.open("gw.example.com")
		w.write("<handshake>" + Digest(w.id, []byte(secret)) + "</handshake>")
		if c := w.streamError(); c != stanza.StreamPolicyViolation {
			t.Fatalf("condition %s", c)
		}
		// Another component from the same address is not affected.
		e.connect(t, "bot.example.com").write("</stream:stream>")
		waitFor(t, func() bool { return e.m.ConnectedComponents() == 0 })
	})
	t.Run("timeout", func(t *testing.T) {
		w := e.dial(t)
		w.open("bot.example.com")
		if c := w.streamError(); c != stanza.StreamConnectionTimeout {
			t.Fatalf("condition %s", c)
		}
	})
}

func TestConnectionLimit(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxConnectionsPerIP = 1 })
	first := e.dial(t)
	first.open("bot.example.com")
	second := e.dial(t)
	if _, err := second.rd.Header(); err != nil {
		t.Fatal(err)
	}
	if c := second.streamError(); c != stanza.StreamPolicyViolation {
		t.Fatalf("condition %s", c)
	}
}

func TestStanzaSizeLimit(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxStanzaBytes = 1024 })
	w := e.connect(t, "bot.example.com")
	w.write("<message from='bot.example.com' to='alice@example.com/a'><body>" + strings.Repeat("x", 2048) + "</body></message>")
	if c := w.streamError(); c != stanza.StreamPolicyViolation {
		t.Fatalf("condition %s", c)
	}
	waitFor(t, func() bool { return e.m.ConnectedComponents() == 0 })
}

func TestRouting(t *testing.T) {
	e := newEnv(t, nil)
	e.srv.Account("alice")
	alice := e.srv.Connect("alice@example.com/a")

	t.Run("not connected bounces", func(t *testing.T) {
		alice.SendXML("<message to='bot.example.com' id='m0' type='chat'><body>hi</body></message>")
		r := alice.Next(func(s *stanza.Stanza) bool { return s.ID == "m0" })
		if r.Type != "error" || modtest.ErrorCondition(r) != stanza.ServiceUnavailable || r.From.String() != "bot.example.com" {
			t.Fatalf("got %s", r.El)
		}
		alice.SendXML("<iq to='someone@gw.example.com' id='q0' type='get'><query xmlns='jabber:iq:version'/></iq>")
		if r := alice.NextIQ("q0"); modtest.ErrorCondition(r) != stanza.ServiceUnavailable {
			t.Fatalf("got %s", r.El)
		}
	})

	w := e.connect(t, "bot.example.com")
	e.d.questions()

	t.Run("user to component", func(t *testing.T) {
		alice.SendXML("<message to='bot.example.com' id='m1' type='chat'><body>weather?</body></message>")
		el := w.next()
		if el.Name.Space != NS || el.Name.Local != "message" || el.Get("from") != "alice@example.com/a" || el.ChildText(NS, "body") != "weather?" {
			t.Fatalf("component got %s", el)
		}
		q := e.d.questions()
		if len(q) != 1 || q[0].Action != gate.ActionMessage || q[0].From != (gate.Party{JID: "alice@example.com", Local: true}) ||
			q[0].To != (gate.Party{JID: "bot.example.com"}) {
			t.Fatalf("asked %+v", q)
		}
	})
	t.Run("component to user", func(t *testing.T) {
		w.write("<message from='bot.example.com' to='alice@example.com/a' id='r1' type='chat'><body>sunny</body></message>")
		r := alice.Next(func(s *stanza.Stanza) bool { return s.ID == "r1" })
		if r.El.Name.Space != stanza.NSClient || r.El.ChildText(stanza.NSClient, "body") != "sunny" || r.From.String() != "bot.example.com" {
			t.Fatalf("alice got %s", r.El)
		}
		q := e.d.questions()
		if len(q) != 1 || q[0].From != (gate.Party{JID: "bot.example.com"}) || q[0].To != (gate.Party{JID: "alice@example.com", Local: true}) {
			t.Fatalf("asked %+v", q)
		}
	})
	t.Run("IQ round trip", func(t *testing.T) {
		alice.SendXML("<iq to='bot.example.com' id='v1' type='get'><query xmlns='jabber:iq:version'/></iq>")
		el := w.next()
		if el.Name.Local != "iq" || el.Get("id") != "v1" {
			t.Fatalf("component got %s", el)
		}
		w.write("<iq from='bot.example.com' to='alice@example.com/a' id='v1' type='result'><query xmlns='jabber:iq:version'><name>bot</name></query></iq>")
		r := alice.NextIQ("v1")
		if r.Type != "result" || r.Payload().ChildText("jabber:iq:version", "name") != "bot" {
			t.Fatalf("alice got %s", r.El)
		}
	})
	t.Run("component asks the server", func(t *testing.T) {
		w.write("<iq from='bot.example.com' to='example.com' id='s1' type='get'><query xmlns='urn:example:nothing'/></iq>")
		el := w.next()
		if el.Get("id") != "s1" || el.Get("type") != "error" {
			t.Fatalf("component got %s", el)
		}
	})
	t.Run("policy refuses the user", func(t *testing.T) {
		e.d.refuse = func(in gate.ContactInput) bool { return true }
		defer func() { e.d.refuse = nil }()
		alice.SendXML("<message to='bot.example.com' id='m2' type='chat'><body>hi</body></message>")
		r := alice.Next(func(s *stanza.Stanza) bool { return s.ID == "m2" })
		if modtest.ErrorCondition(r) != stanza.PolicyViolation {
			t.Fatalf("alice got %s", r.El)
		}
		// A JID at the component (a gateway's contact) is asked here too:
		// policy_gate leaves served domains to their module.
		alice.SendXML("<message to='someone@bot.example.com' id='m3' type='chat'><body>hi</body></message>")
		r = alice.Next(func(s *stanza.Stanza) bool { return s.ID == "m3" })
		if modtest.ErrorCondition(r) != stanza.PolicyViolation {
			t.Fatalf("alice got %s", r.El)
		}
		// And the component's message to alice is refused back to it.
		w.write("<message from='bot.example.com' to='alice@example.com/a' id='r2' type='chat'><body>spam</body></message>")
		el := w.next()
		if el.Get("id") != "r2" || el.Get("type") != "error" || el.Child(NS, "error").Child(stanza.NSStanzas, stanza.PolicyViolation) == nil {
			t.Fatalf("component got %s", el)
		}
		alice.Nothing(50*time.Millisecond, func(s *stanza.Stanza) bool { return s.ID == "r2" })
	})
	t.Run("forged from", func(t *testing.T) {
		w.write("<message from='mallory@example.com' to='alice@example.com/a' id='f1'><body>x</body></message>")
		if c := w.streamError(); c != stanza.StreamInvalidFrom {
			t.Fatalf("condition %s", c)
		}
		alice.Nothing(50*time.Millisecond, func(s *stanza.Stanza) bool { return s.ID == "f1" })
		waitFor(t, func() bool { return e.m.ConnectedComponents() == 0 })
	})
	t.Run("missing from", func(t *testing.T) {
		w := e.connect(t, "bot.example.com")
		w.write("<message to='alice@example.com/a' id='f2'><body>x</body></message>")
		if c := w.streamError(); c != stanza.StreamImproperAddressing {
			t.Fatalf("condition %s", c)
		}
		waitFor(t, func() bool { return e.m.ConnectedComponents() == 0 })
	})
	t.Run("disco items", func(t *testing.T) {
		items := e.srv.Host.DiscoInfo(module.ToHost).Items
		if len(items) != 2 || items[0].JID.String() != "bot.example.com" || items[0].Name != "Bot" || items[1].JID.String() != "gw.example.com" {
			t.Fatalf("items %+v", items)
		}
	})
}

func TestNoDeciderRefuses(t *testing.T) {
	e := newEnv(t, nil)
	e.m.decider = nil
	e.srv.Account("alice")
	alice := e.srv.Connect("alice@example.com/a")
	w := e.connect(t, "bot.example.com")
	alice.SendXML("<message to='bot.example.com' id='m1' type='chat'><body>hi</body></message>")
	r := alice.Next(func(s *stanza.Stanza) bool { return s.ID == "m1" })
	if modtest.ErrorCondition(r) != stanza.PolicyViolation {
		t.Fatalf("alice got %s", r.El)
	}
	w.write("<message from='bot.example.com' to='alice@example.com/a' id='r1'><body>x</body></message>")
	if el := w.next(); el.Get("type") != "error" || !bytes.Contains([]byte(el.String()), []byte(gate.ReasonUnavailable)) {
		t.Fatalf("component got %s", el)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    ComponentOptions
		bad  bool
	}{
		{"fine", ComponentOptions{Domain: "bot.example.com", Secret: "x"}, false},
		{"file", ComponentOptions{Domain: "bot.example.com", SecretFile: "/x"}, false},
		{"no secret", ComponentOptions{Domain: "bot.example.com"}, true},
		{"two secrets", ComponentOptions{Domain: "bot.example.com", Secret: "x", SecretEnv: "X"}, true},
		{"local part", ComponentOptions{Domain: "a@bot.example.com", Secret: "x"}, true},
		{"bad prefix", ComponentOptions{Domain: "bot.example.com", Secret: "x", AllowedAddrs: []string{"nope"}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newModule().opts
			o.Components = []ComponentOptions{tc.c}
			if err := o.Validate(); (err != nil) != tc.bad {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
	o := newModule().opts
	o.Components = []ComponentOptions{{Domain: "bot.example.com", Secret: "hunter2-secret", SecretEnv: "X"}}
	if err := o.Validate(); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("Validate: %v (must fail and never show the secret)", err)
	}
	o.Components = []ComponentOptions{{Domain: "bot.example.com", Secret: "x"}, {Domain: "BOT.example.com", Secret: "y"}}
	if o.Validate() == nil {
		t.Fatal("a duplicate domain passed")
	}
}

// TestQueueLimit: a component that stops reading is cut off once
// queue_size stanzas wait for it, and what does not fit bounces.
func TestQueueLimit(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.QueueSize = 2; o.WriteTimeout = time.Second })
	e.srv.Account("alice")
	alice := e.srv.Connect("alice@example.com/a")
	e.connect(t, "bot.example.com") // and never read again
	big := modtest.Parse(t, "<message to='bot.example.com' type='chat'><body>"+strings.Repeat("x", 200<<10)+"</body></message>")
	big.SetFrom(alice.JID)
	bounced := false
	for i := 0; i < 500 && !bounced; i++ {
		e.srv.Router.RouteFrom(context.Background(), alice.Res, big)
		for _, s := range alice.Received() {
			if s.Type == "error" && modtest.ErrorCondition(s) == stanza.ServiceUnavailable {
				bounced = true
			}
		}
	}
	if !bounced {
		t.Fatal("nothing bounced although the component reads nothing")
	}
	waitFor(t, func() bool { return e.m.ConnectedComponents() == 0 })
}

// BenchmarkFromComponent measures the path of a chat message from a
// component to a local user's resource: namespace mapping, parsing,
// address checks, the contact decision (answered at once) and routing.
func BenchmarkFromComponent(b *testing.B) {
	info, _ := module.Lookup(ID)
	m := newModule()
	m.opts.Listen = "127.0.0.1:0"
	m.opts.Components = []ComponentOptions{{Domain: "bot.example.com", Secret: secret}}
	m.SetDecider(&decider{})
	srv := modtest.New(b, modtest.Options{}, router.Enabled{Info: info, Module: m})
	srv.Account("alice")
	alice := srv.Connect("alice@example.com/a")
	a, bside := net.Pipe()
	defer a.Close()
	defer bside.Close()
	c := m.newConn(a)
	c.comp = m.comps["bot.example.com"]
	rd := xmlstream.NewReader(strings.NewReader("<stream:stream xmlns='"+NS+"' xmlns:stream='"+stanza.NSStream+"'>"+
		"<message from='bot.example.com' to='alice@example.com/a' type='chat' id='b1'><body>Your ticket 4711 is solved.</body></message>"), xmlstream.Limits{})
	if _, err := rd.Header(); err != nil {
		b.Fatal(err)
	}
	el, err := rd.Next()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	m.decider.(*decider).asked = make([]gate.ContactInput, 0, 1)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if !c.handle(ctx, el.Clone()) {
			b.Fatal("stream ended")
		}
		if i%1024 == 0 {
			alice.Received()
			m.decider.(*decider).questions()
		}
	}
	if len(alice.Received()) == 0 {
		b.Fatal("nothing delivered")
	}
}

// TestSeveralHosts: the components attach to the host the host option
// names; the module does nothing on the others, and without the option a
// second host refuses to start with a message that says what to set.
func TestSeveralHosts(t *testing.T) {
	info, _ := module.Lookup(ID)
	build := func(host string) router.Enabled {
		m := newModule()
		m.opts.Listen = "127.0.0.1:0"
		m.opts.Host = host
		m.opts.Components = []ComponentOptions{{Domain: "bot.example.com", Secret: secret}}
		return router.Enabled{Info: info, Module: m}
	}
	stop := func(r *router.Router) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = r.Stop(ctx)
	}

	r := router.New(router.Config{})
	defer stop(r)
	first, second := build("example.org"), build("example.org")
	if _, err := r.AddHost(jid.MustParse("example.com"), []router.Enabled{first}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.AddHost(jid.MustParse("example.org"), []router.Enabled{second}); err != nil {
		t.Fatal(err)
	}
	if first.Module.(*Module).Addr() != nil || second.Module.(*Module).Addr() == nil {
		t.Fatal("the wrong host listens")
	}
	if r.ServedBy("bot.example.com") != ID || len(r.Host("example.org").DiscoInfo(module.ToHost).Items) != 1 ||
		len(r.Host("example.com").DiscoInfo(module.ToHost).Items) != 0 {
		t.Fatal("the component is not attached to example.org alone")
	}

	r2 := router.New(router.Config{})
	defer stop(r2)
	if _, err := r2.AddHost(jid.MustParse("example.com"), []router.Enabled{build("")}); err != nil {
		t.Fatal(err)
	}
	_, err := r2.AddHost(jid.MustParse("example.org"), []router.Enabled{build("")})
	if err == nil || !strings.Contains(err.Error(), "set the host option") {
		t.Fatalf("second host without the host option: %v", err)
	}
}

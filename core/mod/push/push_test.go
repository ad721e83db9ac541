package push

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"kontor.im/kontor/core/dataform"
	"kontor.im/kontor/core/gate"
	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/seal"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/xmlstream"

	_ "kontor.im/kontor/core/mod/offline"
	_ "kontor.im/kontor/core/mod/presence"
	_ "kontor.im/kontor/core/mod/roster"
)

// gateway is a push gateway that records what it is sent.
type gateway struct {
	*httptest.Server
	mu     sync.Mutex
	got    []gatewayRequest
	auth   []string
	status int
	signal chan struct{}
}

func newGateway(t *testing.T) *gateway {
	g := &gateway{status: http.StatusOK, signal: make(chan struct{}, 100)}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var req gatewayRequest
		if err := json.Unmarshal(b, &req); err != nil || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("gateway got %s %s: %v", r.Method, b, err)
		}
		g.mu.Lock()
		g.got = append(g.got, req)
		g.auth = append(g.auth, r.Header.Get("Authorization"))
		status := g.status
		g.mu.Unlock()
		w.WriteHeader(status)
		g.signal <- struct{}{}
	}))
	t.Cleanup(g.Close)
	return g
}

// next waits for the next notification.
func (g *gateway) next(t *testing.T) gatewayRequest {
	t.Helper()
	select {
	case <-g.signal:
	case <-time.After(5 * time.Second):
		t.Fatal("no notification reached the gateway")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.got[len(g.got)-1]
}

// none checks that no notification arrives for a while.
func (g *gateway) none(t *testing.T) {
	t.Helper()
	select {
	case <-g.signal:
		g.mu.Lock()
		defer g.mu.Unlock()
		t.Fatalf("unexpected notification %+v", g.got[len(g.got)-1])
	case <-time.After(200 * time.Millisecond):
	}
}

func setup(t *testing.T, g *gateway, edit func(*Options)) *modtest.Server {
	t.Helper()
	return setupWith(t, g, edit, nil)
}

// setupWith is setup with a policy engine (nil: none).
func setupWith(t *testing.T, g *gateway, edit func(*Options), pol gate.Decider) *modtest.Server {
	t.Helper()
	o := defaultOptions()
	o.GatewayURL = g.URL
	o.GatewayServices = []string{"*"}
	o.GatewayToken = "gw-token"
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
	m := &Module{opts: o}
	if pol != nil {
		m.SetDecider(pol)
	}
	srv := modtest.New(t, modtest.Options{Sealer: sealer},
		modtest.Module(t, "roster"), modtest.Module(t, "presence"), modtest.Module(t, "offline"),
		router.Enabled{Info: info, Module: m})
	srv.Account("alice")
	srv.Account("bob")
	return srv
}

const enableXML = `<iq type='set' id='e'><enable xmlns='urn:xmpp:push:0' jid='push.example.net' node='device-1'>
	<x xmlns='jabber:x:data' type='submit'>
	<field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>
	<field var='secret'><value>app-server-secret</value></field></x></enable></iq>`

func enable(t *testing.T, c *modtest.Client) {
	t.Helper()
	c.SendXML(enableXML)
	if r := c.NextIQ("e"); r.Type != "result" {
		t.Fatalf("enable: %s", r.El)
	}
}

func message(to, body string) string {
	return "<message type='chat' to='" + to + "' id='m'><body>" + body + "</body></message>"
}

func TestOfflineMessageIsPushed(t *testing.T) {
	g := newGateway(t)
	srv := setup(t, g, nil)
	phone := srv.Connect("alice@example.com/phone")
	enable(t, phone)
	phone.Disconnect() // alice is offline now

	bob := srv.Connect("bob@example.com/pc")
	bob.SendXML(message("alice@example.com", "the secret plans"))
	n := g.next(t)
	if n.Service != "push.example.net" || n.Node != "device-1" || n.PublishOptions["secret"] != "app-server-secret" {
		t.Errorf("notification %+v", n)
	}
	if n.Summary != (summary{MessageCount: 1}) {
		t.Errorf("summary %+v: by default only the count", n.Summary)
	}
	if g.auth[0] != "Bearer gw-token" {
		t.Errorf("authorization %q", g.auth[0])
	}
	if strings.Contains(n.IQ, "secret plans") || strings.Contains(n.IQ, "bob@") {
		t.Errorf("the IQ carries the body or the sender: %s", n.IQ)
	}
	// The IQ is the XEP-0357 §7 publish, from the account to the app server.
	iq, err := xmlstream.ParseElement([]byte(n.IQ), xmlstream.Limits{MaxStanzaBytes: 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	if iq.Get("type") != "set" || iq.Get("from") != "alice@example.com" || iq.Get("to") != "push.example.net" {
		t.Errorf("IQ %s", iq)
	}
	pub := iq.Child(NSPubSub, "pubsub").Child(NSPubSub, "publish")
	if pub.Get("node") != "device-1" {
		t.Errorf("publish %s", pub)
	}
	form, err := dataform.Parse(pub.Child(NSPubSub, "item").Child(NS, "notification").Child(dataform.NS, "x"))
	if err != nil || form.FormType() != NSSummary || form.Value("message-count") != "1" {
		t.Errorf("summary form %+v (%v)", form, err)
	}
	opts, err := dataform.Parse(iq.Child(NSPubSub, "pubsub").Child(NSPubSub, "publish-options").Child(dataform.NS, "x"))
	if err != nil || opts.Value("secret") != "app-server-secret" {
		t.Errorf("publish-options %+v (%v)", opts, err)
	}

	// The count grows until alice comes back.
	bob.SendXML(message("alice@example.com", "more"))
	if n := g.next(t); n.Summary.MessageCount != 2 {
		t.Errorf("second summary %+v", n.Summary)
	}
	back := srv.Connect("alice@example.com/phone")
	back.SendXML("<presence/>")
	back.Next(func(s *stanza.Stanza) bool { return s.Kind == stanza.KindMessage }) // the offline messages
	back.Disconnect()
	bob.SendXML(message("alice@example.com", "again"))
	if n := g.next(t); n.Summary.MessageCount != 1 {
		t.Errorf("after coming back, summary %+v", n.Summary)
	}
}

func TestHibernatingSessionIsPushed(t *testing.T) {
	g := newGateway(t)
	srv := setup(t, g, nil)
	phone := srv.Connect("alice@example.com/phone")
	enable(t, phone)
	phone.SendXML("<presence/>")
	bob := srv.Connect("bob@example.com/pc")

	// Online and connected: the phone shows it, no push.
	bob.SendXML(message("alice@example.com", "hi"))
	phone.Next(func(s *stanza.Stanza) bool { return s.Kind == stanza.KindMessage })
	g.none(t)

	// The connection is lost and the session waits to be resumed: the
	// message waits in its queue, and the phone is woken.
	phone.Hibernate(true)
	bob.SendXML(message("alice@example.com", "wake up"))
	phone.Next(func(s *stanza.Stanza) bool {
		return s.Kind == stanza.KindMessage && strings.Contains(s.El.String(), "wake up")
	})
	if n := g.next(t); n.Node != "device-1" || n.Summary.MessageCount != 1 {
		t.Errorf("notification %+v", n)
	}

	// A second, connected device shows it: no push.
	laptop := srv.Connect("alice@example.com/laptop")
	laptop.SendXML("<presence/>")
	bob.SendXML(message("alice@example.com", "seen on the laptop"))
	laptop.Next(func(s *stanza.Stanza) bool { return s.Kind == stanza.KindMessage })
	g.none(t)
}

func TestWhatIsNotPushed(t *testing.T) {
	g := newGateway(t)
	srv := setup(t, g, nil)
	phone := srv.Connect("alice@example.com/phone")
	enable(t, phone)
	phone.Disconnect()
	bob := srv.Connect("bob@example.com/pc")
	for _, x := range []string{
		"<message type='chat' to='alice@example.com'><active xmlns='http://jabber.org/protocol/chatstates'/></message>",
		"<message type='headline' to='alice@example.com'><body>news</body></message>",
		"<presence type='subscribe' to='alice@example.com'/>",
	} {
		bob.SendXML(x)
	}
	g.none(t)
	// An OMEMO message and a call are worth a push.
	bob.SendXML("<message type='chat' to='alice@example.com'><encrypted xmlns='eu.siacs.conversations.axolotl'><payload>AAAA</payload></encrypted><store xmlns='urn:xmpp:hints'/></message>")
	g.next(t)
	bob.SendXML("<message type='chat' to='alice@example.com'><propose xmlns='urn:xmpp:jingle-message:0' id='c1'/><store xmlns='urn:xmpp:hints'/></message>")
	g.next(t)
}

func TestSenderAndBodyWhenConfigured(t *testing.T) {
	g := newGateway(t)
	srv := setup(t, g, func(o *Options) { o.IncludeSender, o.IncludeBody = true, true })
	phone := srv.Connect("alice@example.com/phone")
	enable(t, phone)
	phone.Disconnect()
	bob := srv.Connect("bob@example.com/pc")
	long := strings.Repeat("ä", 300)
	bob.SendXML(message("alice@example.com", long))
	n := g.next(t)
	if n.Summary.Sender != "bob@example.com" || n.Summary.Body != strings.Repeat("ä", 256)+"…" {
		t.Errorf("summary %+v", n.Summary)
	}
	// The body of an end-to-end encrypted message is never sent (here,
	// the fallback text clients put beside it).
	bob.SendXML("<message type='chat' to='alice@example.com'><body>I sent you an OMEMO message</body><encrypted xmlns='urn:xmpp:omemo:2'/></message>")
	if n := g.next(t); n.Summary.Body != "" || n.Summary.Sender != "bob@example.com" {
		t.Errorf("encrypted: summary %+v", n.Summary)
	}
}

func TestEnableDisable(t *testing.T) {
	g := newGateway(t)
	srv := setup(t, g, func(o *Options) { o.MaxRegistrations = 2 })
	st := srv.Store.(storage.PushRegistrations)
	ctx := context.Background()
	phone := srv.Connect("alice@example.com/phone")
	enable(t, phone)

	regs, err := st.PushRegistrations(ctx, "alice@example.com")
	if err != nil || len(regs) != 1 || regs[0].Service != "push.example.net" || regs[0].Node != "device-1" {
		t.Fatalf("stored %+v (%v)", regs, err)
	}
	if strings.Contains(string(regs[0].Options), "app-server-secret") {
		t.Error("the app server's secret is stored in the clear")
	}

	tests := []struct {
		name, xml, cond string
	}{
		{"no jid", "<enable xmlns='urn:xmpp:push:0' node='n'/>", stanza.BadRequest},
		{"bad jid", "<enable xmlns='urn:xmpp:push:0' jid='a@@b' node='n'/>", stanza.BadRequest},
		{"no node", "<enable xmlns='urn:xmpp:push:0' jid='push.example.net'/>", stanza.BadRequest},
		{"huge node", "<enable xmlns='urn:xmpp:push:0' jid='push.example.net' node='" + strings.Repeat("n", 1025) + "'/>", stanza.BadRequest},
		{"wrong form", "<enable xmlns='urn:xmpp:push:0' jid='p.example' node='n'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:other</value></field></x></enable>", stanza.BadRequest},
		{"second device", "<enable xmlns='urn:xmpp:push:0' jid='push.example.net' node='device-2'/>", ""},
		{"over the limit", "<enable xmlns='urn:xmpp:push:0' jid='push.example.net' node='device-3'/>", stanza.ResourceConstraint},
		{"re-enabling is no new one", "<enable xmlns='urn:xmpp:push:0' jid='push.example.net' node='device-2'/>", ""},
		{"someone else's account", "", stanza.Forbidden},
		{"disable one", "<disable xmlns='urn:xmpp:push:0' jid='push.example.net' node='device-2'/>", ""},
		{"disable without jid", "<disable xmlns='urn:xmpp:push:0'/>", stanza.BadRequest},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "q" + string(rune('a'+i))
			if tt.xml == "" {
				phone.SendXML("<iq type='set' id='" + id + "' to='bob@example.com'><enable xmlns='urn:xmpp:push:0' jid='push.example.net' node='x'/></iq>")
			} else {
				phone.SendXML("<iq type='set' id='" + id + "'>" + tt.xml + "</iq>")
			}
			r := phone.NextIQ(id)
			if got := modtest.ErrorCondition(r); got != tt.cond {
				t.Errorf("condition %q, want %q: %s", got, tt.cond, r.El)
			}
		})
	}
	regs, _ = st.PushRegistrations(ctx, "alice@example.com")
	if len(regs) != 1 || regs[0].Node != "device-1" {
		t.Errorf("left %+v", regs)
	}
	if regs, _ := st.PushRegistrations(ctx, "bob@example.com"); len(regs) != 0 {
		t.Errorf("alice registered for bob: %+v", regs)
	}
	phone.SendXML("<iq type='set' id='d'><disable xmlns='urn:xmpp:push:0' jid='push.example.net'/></iq>")
	phone.NextIQ("d")
	if regs, _ := st.PushRegistrations(ctx, "alice@example.com"); len(regs) != 0 {
		t.Errorf("after disabling the service: %+v", regs)
	}
	phone.Disconnect()
	srv.Connect("bob@example.com/pc").SendXML(message("alice@example.com", "nobody is told"))
	g.none(t)
}

func TestGoneRegistrationIsDisabled(t *testing.T) {
	g := newGateway(t)
	g.status = http.StatusGone
	srv := setup(t, g, nil)
	phone := srv.Connect("alice@example.com/phone")
	enable(t, phone)
	phone.Disconnect()
	srv.Connect("bob@example.com/pc").SendXML(message("alice@example.com", "hello"))
	g.next(t)
	st := srv.Store.(storage.PushRegistrations)
	deadline := time.Now().Add(5 * time.Second)
	for {
		regs, err := st.PushRegistrations(context.Background(), "alice@example.com")
		if err == nil && len(regs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the registration the gateway called gone is still there: %+v (%v)", regs, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDisco(t *testing.T) {
	srv := setup(t, newGateway(t), nil)
	found := false
	for _, f := range srv.Host.DiscoInfo(module.ToAccount).Features {
		found = found || f == NS
	}
	if !found {
		t.Error("accounts do not advertise " + NS)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"https", func(o *Options) { o.GatewayURL = "https://push.example.com/notify" }, ""},
		{"http on loopback", func(o *Options) { o.GatewayURL = "http://127.0.0.1:8080/notify" }, ""},
		{"http elsewhere", func(o *Options) { o.GatewayURL = "http://push.example.com/notify" }, "use https"},
		{"no gateway: all over XMPP", func(o *Options) { o.GatewayURL, o.GatewayServices = "", nil }, ""},
		{"services without a gateway", func(o *Options) { o.GatewayURL = "" }, "needs a gateway_url"},
		{"gateway without services", func(o *Options) { o.GatewayServices = nil }, "needs gateway_services"},
		{"bad service", func(o *Options) { o.GatewayServices = []string{"a@@b"} }, "not a JID"},
		{"not a URL", func(o *Options) { o.GatewayURL = "push.example.com" }, "not an http(s) URL"},
		{"both tokens", func(o *Options) { o.GatewayToken, o.GatewayTokenFile = "a", "/b" }, "not both"},
		{"registrations", func(o *Options) { o.MaxRegistrations = 0 }, "max_registrations"},
		{"timeout", func(o *Options) { o.Timeout = time.Hour }, "timeout"},
		{"queue", func(o *Options) { o.QueueSize = 0 }, "queue_size"},
		{"workers", func(o *Options) { o.Workers = 0 }, "workers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := defaultOptions()
			o.GatewayURL = "https://push.example.com/"
			o.GatewayServices = []string{"*"}
			tt.edit(&o)
			err := o.Validate()
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// pushPolicy is a push.notify decider for tests: it refuses the app
// servers in deny and reveals what reveal says.
type pushPolicy struct {
	mu           sync.Mutex
	deny         map[string]bool
	sender, body bool
	asked        []gate.PushInput
}

func (p *pushPolicy) Contact(context.Context, gate.ContactInput) gate.Decision {
	return gate.Decision{Allow: true}
}

func (p *pushPolicy) Retention(context.Context, gate.RetentionInput) gate.RetentionDecision {
	return gate.RetentionDecision{Decision: gate.Decision{Allow: true}, Archive: true}
}

func (p *pushPolicy) Access(context.Context, gate.AccessInput) gate.AccessDecision {
	return gate.AccessDecision{}
}

func (p *pushPolicy) E2EE(context.Context, gate.E2EEInput) gate.Decision {
	return gate.Decision{Allow: true}
}

func (p *pushPolicy) Registration(context.Context, gate.RegistrationInput) gate.Decision {
	return gate.Decision{}
}

func (p *pushPolicy) Push(_ context.Context, in gate.PushInput) gate.PushDecision {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.asked = append(p.asked, in)
	if p.deny[in.Service] {
		return gate.PushDecision{Decision: gate.Decision{Reason: "app_server_not_approved", Message: "Use the company's push service."}}
	}
	return gate.PushDecision{Decision: gate.Decision{Allow: true, Reason: "push"}, IncludeSender: p.sender, IncludeBody: p.body && !in.Encrypted}
}

func (p *pushPolicy) last() gate.PushInput {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.asked[len(p.asked)-1]
}

// TestPolicyDecides: with a policy engine, enabling an app server asks
// push.notify (a refusal is the client's error), and every notification
// asks again: the summary names the sender or carries the body only when
// both the module's options and the policy allow it.
func TestPolicyDecides(t *testing.T) {
	for _, tt := range []struct {
		name                 string
		optSender, optBody   bool
		polSender, polBody   bool
		wantSender, wantBody bool
	}{
		{"options on, policy says no", true, true, false, false, false, false},
		{"options off, policy says yes", false, false, true, true, false, false},
		{"both allow", true, true, true, true, true, true},
		{"sender only", true, true, true, false, true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := newGateway(t)
			pol := &pushPolicy{deny: map[string]bool{"push.evil.example": true}, sender: tt.polSender, body: tt.polBody}
			srv := setupWith(t, g, func(o *Options) { o.IncludeSender, o.IncludeBody = tt.optSender, tt.optBody }, pol)
			phone := srv.Connect("alice@example.com/phone")
			phone.SendXML(`<iq type='set' id='bad'><enable xmlns='urn:xmpp:push:0' jid='push.evil.example' node='n'/></iq>`)
			r := phone.NextIQ("bad")
			if r.Type != "error" || !strings.Contains(r.El.String(), "company's push service") {
				t.Fatalf("enabling a refused app server: %s", r.El)
			}
			enable(t, phone)
			if in := pol.last(); in.User.JID != "alice@example.com" || !in.User.Local || in.Service != "push.example.net" || in.Sender.JID != "" || in.ServiceLocal {
				t.Errorf("enable asked %+v", in)
			}
			phone.Disconnect()
			bob := srv.Connect("bob@example.com/pc")
			bob.SendXML(message("alice@example.com", "hello"))
			n := g.next(t)
			if (n.Summary.Sender != "") != tt.wantSender || (n.Summary.Body != "") != tt.wantBody || n.Summary.MessageCount != 1 {
				t.Errorf("summary %+v", n.Summary)
			}
			if in := pol.last(); in.Sender.JID != "bob@example.com" || in.Encrypted {
				t.Errorf("notification asked %+v", in)
			}
		})
	}
	t.Run("a refused notification is not sent", func(t *testing.T) {
		g := newGateway(t)
		pol := &pushPolicy{deny: map[string]bool{}}
		srv := setupWith(t, g, nil, pol)
		phone := srv.Connect("alice@example.com/phone")
		enable(t, phone)
		phone.Disconnect()
		pol.mu.Lock()
		pol.deny["push.example.net"] = true // the policy changed since
		pol.mu.Unlock()
		bob := srv.Connect("bob@example.com/pc")
		bob.SendXML(message("alice@example.com", "hello"))
		g.none(t)
	})
}

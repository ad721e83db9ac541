package carbons_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/mod/carbons"
	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/stanza"
)

// newServer provisions the carbons module (configured by configure, if
// not nil) after the given modules.
func newServer(t *testing.T, configure func(*carbons.Options), before ...router.Enabled) *modtest.Server {
	t.Helper()
	e := modtest.Module(t, carbons.ID)
	if configure != nil {
		configure(e.Module.(module.Configurable).Options().(*carbons.Options))
	}
	srv := modtest.New(t, modtest.Options{}, append(before, e)...)
	srv.Account("alice")
	srv.Account("bob")
	return srv
}

// available makes c available with a priority, as the presence module
// does on its initial presence.
func available(t *testing.T, srv *modtest.Server, c *modtest.Client, priority int) {
	t.Helper()
	p := modtest.Parse(t, fmt.Sprintf("<presence><priority>%d</priority></presence>", priority))
	p.SetFrom(c.JID)
	srv.Host.SetPresence(context.Background(), c.Res, p)
}

// setCarbons enables or disables carbons for c and checks the result.
func setCarbons(t *testing.T, c *modtest.Client, on bool) {
	t.Helper()
	what := "disable"
	if on {
		what = "enable"
	}
	id := what + "-" + c.JID.Resource()
	c.SendXML("<iq type='set' id='" + id + "'><" + what + " xmlns='urn:xmpp:carbons:2'/></iq>")
	if res := c.NextIQ(id); res.Type != "result" || res.Payload() != nil {
		t.Fatalf("%s %s: %s", c.JID, what, res.El)
	}
}

// alice is a user with five sessions:
//
//	phone  priority 5, carbons on   (gets messages to the bare JID)
//	laptop priority 1, carbons on
//	tablet priority 1, carbons off
//	desk   priority -1, carbons on  (never gets messages to the bare JID)
//	watch  not available, carbons on
type alice struct {
	phone, laptop, tablet, desk, watch *modtest.Client
}

func (a alice) all() []*modtest.Client {
	return []*modtest.Client{a.phone, a.laptop, a.tablet, a.desk, a.watch}
}

func (a alice) named(name string) *modtest.Client {
	for _, c := range a.all() {
		if c.JID.Resource() == name {
			return c
		}
	}
	panic("no session " + name)
}

func connectAlice(t *testing.T, srv *modtest.Server) alice {
	t.Helper()
	a := alice{
		phone:  srv.Connect("alice@example.com/phone"),
		laptop: srv.Connect("alice@example.com/laptop"),
		tablet: srv.Connect("alice@example.com/tablet"),
		desk:   srv.Connect("alice@example.com/desk"),
		watch:  srv.Connect("alice@example.com/watch"),
	}
	for _, c := range []*modtest.Client{a.phone, a.laptop, a.desk, a.watch} {
		setCarbons(t, c, true)
	}
	available(t, srv, a.phone, 5)
	available(t, srv, a.laptop, 1)
	available(t, srv, a.tablet, 1)
	available(t, srv, a.desk, -1)
	return a
}

// wrapped returns the message inside a carbon of kind ("sent" or
// "received"), or nil if s is not one.
func wrapped(s *stanza.Stanza, kind string) *stanza.Element {
	if s.Kind != stanza.KindMessage {
		return nil
	}
	w := s.El.Child(carbons.NS, kind)
	if w == nil {
		return nil
	}
	f := w.Child(carbons.NSForward, "forwarded")
	if f == nil {
		return nil
	}
	return f.Child(stanza.NSClient, "message")
}

// carbonOf matches a carbon of kind whose inner message has body.
func carbonOf(kind, body string) func(*stanza.Stanza) bool {
	return func(s *stanza.Stanza) bool {
		m := wrapped(s, kind)
		return m != nil && m.ChildText(stanza.NSClient, "body") == body
	}
}

// checkCarbon checks the addressing of a carbon (XEP-0280 §7, §8) and its
// inner message.
func checkCarbon(t *testing.T, c *modtest.Client, s *stanza.Stanza, kind, typ, innerFrom, innerTo string) {
	t.Helper()
	if s.From != c.JID.Bare() || s.To != c.JID {
		t.Errorf("%s: carbon from %q to %q, want from the bare JID to the full JID", c.JID, s.From, s.To)
	}
	if s.Type != typ {
		t.Errorf("%s: carbon of type %q, want the message's type %q", c.JID, s.Type, typ)
	}
	m := wrapped(s, kind)
	if m.Get("from") != innerFrom || m.Get("to") != innerTo {
		t.Errorf("%s: forwarded message from %q to %q, want from %q to %q", c.JID, m.Get("from"), m.Get("to"), innerFrom, innerTo)
	}
}

func hasFeature(d module.Disco, f string) bool { return slices.Contains(d.Features, f) }

// inbox is the messages a session received since the last look, sorted:
// routing in modtest is synchronous, so everything a stanza caused has
// arrived when SendXML returns.
type inbox struct {
	plain, received, sent []*stanza.Stanza
}

func look(c *modtest.Client) inbox {
	var in inbox
	for _, s := range c.Received() {
		switch {
		case s.Kind != stanza.KindMessage:
		case wrapped(s, "received") != nil:
			in.received = append(in.received, s)
		case wrapped(s, "sent") != nil:
			in.sent = append(in.sent, s)
		default:
			in.plain = append(in.plain, s)
		}
	}
	return in
}

// expectMessages checks that c received exactly plain messages and
// carbons of each kind.
func expectMessages(t *testing.T, c *modtest.Client, in inbox, plain, received, sent int) {
	t.Helper()
	if len(in.plain) != plain || len(in.received) != received || len(in.sent) != sent {
		var all []string
		for _, l := range [][]*stanza.Stanza{in.plain, in.received, in.sent} {
			for _, s := range l {
				all = append(all, s.El.String())
			}
		}
		t.Errorf("%s got %d messages, %d received and %d sent carbons; want %d, %d, %d:\n  %s",
			c.JID.Resource(), len(in.plain), len(in.received), len(in.sent), plain, received, sent, strings.Join(all, "\n  "))
	}
}

func count(names []string, name string) int {
	if slices.Contains(names, name) {
		return 1
	}
	return 0
}

func TestEnableDisable(t *testing.T) {
	srv := newServer(t, nil)
	if !hasFeature(srv.Host.DiscoInfo(module.ToHost), carbons.NS) {
		t.Errorf("the host's disco#info lacks %s", carbons.NS)
	}
	a := srv.Connect("alice@example.com/phone")
	b := srv.Connect("bob@example.com/desk")
	tests := []struct {
		name, from, xml, want string // want: "" for a result, else the error condition
	}{
		{"enable", "alice", "<iq type='set' id='x'><enable xmlns='urn:xmpp:carbons:2'/></iq>", ""},
		{"enable again (§10.1)", "alice", "<iq type='set' id='x'><enable xmlns='urn:xmpp:carbons:2'/></iq>", ""},
		{"enable to own bare JID", "alice", "<iq type='set' id='x' to='alice@example.com'><enable xmlns='urn:xmpp:carbons:2'/></iq>", ""},
		{"disable", "alice", "<iq type='set' id='x'><disable xmlns='urn:xmpp:carbons:2'/></iq>", ""},
		{"disable again", "alice", "<iq type='set' id='x'><disable xmlns='urn:xmpp:carbons:2'/></iq>", ""},
		{"another account's", "bob", "<iq type='set' id='x' to='alice@example.com'><enable xmlns='urn:xmpp:carbons:2'/></iq>", stanza.NotAllowed},
		{"get is not a thing", "alice", "<iq type='get' id='x'><enable xmlns='urn:xmpp:carbons:2'/></iq>", stanza.ServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := a
			if tt.from == "bob" {
				c = b
			}
			c.SendXML(tt.xml)
			var res *stanza.Stanza
			for _, s := range c.Received() {
				if s.Kind == stanza.KindIQ && s.ID == "x" {
					res = s
				}
			}
			if res == nil {
				t.Fatal("no answer")
			}
			if got := modtest.ErrorCondition(res); got != tt.want {
				t.Errorf("answer %s, want condition %q", res.El, tt.want)
			}
		})
	}
}

// TestReceived checks which of alice's sessions get a received carbon of a
// message bob sends.
func TestReceived(t *testing.T) {
	tests := []struct {
		name string
		xml  string   // what bob sends; %s is the body
		got  []string // alice's sessions that get the message itself
		copy []string // alice's sessions that get a received carbon
	}{
		{"chat to the bare JID", "<message type='chat' to='alice@example.com'><body>%s</body></message>",
			[]string{"phone"}, []string{"laptop", "desk"}},
		{"chat to a full JID", "<message type='chat' to='alice@example.com/laptop'><body>%s</body></message>",
			[]string{"laptop"}, []string{"phone", "desk"}},
		{"chat to the full JID of the session without carbons", "<message type='chat' to='alice@example.com/tablet'><body>%s</body></message>",
			[]string{"tablet"}, []string{"phone", "laptop", "desk"}},
		{"chat to the session with a negative priority", "<message type='chat' to='alice@example.com/desk'><body>%s</body></message>",
			[]string{"desk"}, []string{"phone", "laptop"}},
		{"chat to a session that is gone", "<message type='chat' to='alice@example.com/gone'><body>%s</body></message>",
			[]string{"phone"}, []string{"laptop", "desk"}},
		{"normal with a body", "<message to='alice@example.com'><body>%s</body></message>",
			[]string{"phone"}, []string{"laptop", "desk"}},
		{"type normal with a body", "<message type='normal' to='alice@example.com'><body>%s</body></message>",
			[]string{"phone"}, []string{"laptop", "desk"}},
		{"chat state only", "<message type='chat' to='alice@example.com'><composing xmlns='http://jabber.org/protocol/chatstates'/><thread>%s</thread></message>",
			[]string{"phone"}, []string{"laptop", "desk"}},
		{"normal with a receipt", "<message to='alice@example.com'><received xmlns='urn:xmpp:receipts' id='r1'/><thread>%s</thread></message>",
			[]string{"phone"}, []string{"laptop", "desk"}},
		{"normal with a chat marker", "<message to='alice@example.com'><displayed xmlns='urn:xmpp:chat-markers:0' id='m1'/><thread>%s</thread></message>",
			[]string{"phone"}, []string{"laptop", "desk"}},
		{"direct room invitation", "<message to='alice@example.com'><x xmlns='jabber:x:conference' jid='room@muc.example.com'/><thread>%s</thread></message>",
			[]string{"phone"}, []string{"laptop", "desk"}},
		{"normal without body", "<message to='alice@example.com'><thread>%s</thread></message>",
			[]string{"phone"}, nil},
		{"private", "<message type='chat' to='alice@example.com'><body>%s</body><private xmlns='urn:xmpp:carbons:2'/><no-copy xmlns='urn:xmpp:hints'/></message>",
			[]string{"phone"}, nil},
		{"private element alone", "<message type='chat' to='alice@example.com'><body>%s</body><private xmlns='urn:xmpp:carbons:2'/></message>",
			[]string{"phone"}, nil},
		{"no-copy hint alone", "<message type='chat' to='alice@example.com'><body>%s</body><no-copy xmlns='urn:xmpp:hints'/></message>",
			[]string{"phone"}, nil},
		{"headline", "<message type='headline' to='alice@example.com'><body>%s</body></message>",
			[]string{"phone", "laptop", "tablet"}, nil},
		{"groupchat", "<message type='groupchat' to='alice@example.com/laptop'><body>%s</body></message>",
			[]string{"laptop"}, nil},
		{"error", "<message type='error' to='alice@example.com/laptop'><body>%s</body><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
			[]string{"laptop"}, nil},
		{"room private message", "<message type='chat' to='alice@example.com/laptop'><body>%s</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>",
			[]string{"laptop"}, nil},
	}
	srv := newServer(t, nil)
	a := connectAlice(t, srv)
	bob := srv.Connect("bob@example.com/desk")
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := fmt.Sprintf("m%d", i)
			text := fmt.Sprintf(tt.xml, body)
			sent := modtest.Parse(t, text)
			bob.SendXML(text)
			ins := map[string]inbox{}
			var delivered *stanza.Stanza
			for _, c := range a.all() {
				name := c.JID.Resource()
				ins[name] = look(c)
				expectMessages(t, c, ins[name], count(tt.got, name), count(tt.copy, name), 0)
				if len(ins[name].plain) > 0 {
					delivered = ins[name].plain[0]
				}
			}
			for _, c := range a.all() {
				for _, s := range ins[c.JID.Resource()].received {
					checkCarbon(t, c, s, "received", sent.Type, bob.JID.String(), sent.To.String())
					if inner := wrapped(s, "received"); delivered == nil || inner.String() != delivered.El.String() {
						t.Errorf("%s: carbon of %s, want the message as delivered", c.JID.Resource(), inner)
					}
				}
			}
			for _, s := range bob.Received() {
				t.Errorf("bob got %s", s.El)
			}
		})
	}
}

// TestSent checks which of alice's sessions get a sent carbon of a message
// one of them sends.
func TestSent(t *testing.T) {
	tests := []struct {
		name   string
		sender string
		xml    string   // %s is the body
		copy   []string // alice's sessions that get a sent carbon
		bobGet bool
	}{
		{"chat", "phone", "<message type='chat' to='bob@example.com'><body>%s</body></message>",
			[]string{"laptop", "desk"}, true},
		{"chat to a full JID", "phone", "<message type='chat' to='bob@example.com/desk'><body>%s</body></message>",
			[]string{"laptop", "desk"}, true},
		{"from the session without carbons (§8)", "tablet", "<message type='chat' to='bob@example.com'><body>%s</body></message>",
			[]string{"phone", "laptop", "desk"}, true},
		{"from a session that is not available", "watch", "<message type='chat' to='bob@example.com'><body>%s</body></message>",
			[]string{"phone", "laptop", "desk"}, true},
		{"normal with a body", "laptop", "<message to='bob@example.com'><body>%s</body></message>",
			[]string{"phone", "desk"}, true},
		{"private", "phone", "<message type='chat' to='bob@example.com'><body>%s</body><private xmlns='urn:xmpp:carbons:2'/><no-copy xmlns='urn:xmpp:hints'/></message>",
			nil, true},
		{"no-copy", "phone", "<message type='chat' to='bob@example.com'><body>%s</body><no-copy xmlns='urn:xmpp:hints'/></message>",
			nil, true},
		{"headline", "phone", "<message type='headline' to='bob@example.com'><body>%s</body></message>",
			nil, true},
		{"groupchat", "phone", "<message type='groupchat' to='bob@example.com/desk'><body>%s</body></message>",
			nil, true},
		{"error", "phone", "<message type='error' to='bob@example.com/desk'><body>%s</body><error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
			nil, true},
		{"room private message sent (§6.1)", "phone", "<message type='chat' to='bob@example.com/desk'><body>%s</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>",
			[]string{"laptop", "desk"}, true},
		{"to another domain (bounced)", "phone", "<message type='chat' to='someone@example.org'><body>%s</body></message>",
			[]string{"laptop", "desk"}, false},
	}
	srv := newServer(t, nil)
	a := connectAlice(t, srv)
	bob := srv.Connect("bob@example.com/desk")
	available(t, srv, bob, 0)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := fmt.Sprintf("s%d", i)
			sender := a.named(tt.sender)
			text := fmt.Sprintf(tt.xml, body)
			sender.SendXML(text)
			sent := modtest.Parse(t, text)
			for _, c := range a.all() {
				in := look(c)
				bounces := 0
				if c == sender && !tt.bobGet {
					bounces = 1 // remote-server-not-found
				}
				expectMessages(t, c, in, bounces, 0, count(tt.copy, c.JID.Resource()))
				for _, s := range in.sent {
					checkCarbon(t, c, s, "sent", sent.Type, sender.JID.String(), sent.To.String())
					if inner := wrapped(s, "sent"); inner.ChildText(stanza.NSClient, "body") != body {
						t.Errorf("%s: sent carbon of %s", c.JID.Resource(), inner)
					}
				}
			}
			in := look(bob)
			want := 0
			if tt.bobGet {
				want = 1
			}
			expectMessages(t, bob, in, want, 0, 0)
		})
	}
}

// TestSelf: a message from one of alice's sessions to another is copied
// once, as received, to the others; never back to the sender.
func TestSelf(t *testing.T) {
	srv := newServer(t, nil)
	a := connectAlice(t, srv)
	tests := []struct {
		name, xml string
		got       []string
		copy      []string
	}{
		{"to another session", "<message type='chat' to='alice@example.com/laptop'><body>%s</body></message>",
			[]string{"laptop"}, []string{"desk"}},
		{"to the own bare JID", "<message type='chat' to='alice@example.com'><body>%s</body></message>",
			[]string{"phone"}, []string{"laptop", "desk"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := fmt.Sprintf("self%d", i)
			a.phone.SendXML(fmt.Sprintf(tt.xml, body))
			for _, c := range a.all() {
				n := c.JID.Resource()
				expectMessages(t, c, look(c), count(tt.got, n), count(tt.copy, n), 0)
			}
		})
	}
}

func TestDisabledGetsNothing(t *testing.T) {
	srv := newServer(t, nil)
	a := connectAlice(t, srv)
	bob := srv.Connect("bob@example.com/desk")
	setCarbons(t, a.laptop, false)
	for _, c := range a.all() {
		c.Received()
	}
	bob.SendXML("<message type='chat' to='alice@example.com'><body>after</body></message>")
	want := map[string][2]int{"phone": {1, 0}, "laptop": {0, 0}, "tablet": {0, 0}, "desk": {0, 1}, "watch": {0, 0}}
	for _, c := range a.all() {
		w := want[c.JID.Resource()]
		expectMessages(t, c, look(c), w[0], w[1], 0)
	}
	// Enabled again.
	setCarbons(t, a.laptop, true)
	bob.SendXML("<message type='chat' to='alice@example.com'><body>again</body></message>")
	expectMessages(t, a.laptop, look(a.laptop), 0, 1, 0)
}

// TestSessionsComeAndGo: the module's count of enabled sessions per
// account follows sessions that end, are replaced, or enable and disable
// more than once, so that no copy is skipped.
func TestSessionsComeAndGo(t *testing.T) {
	srv := newServer(t, nil)
	bob := srv.Connect("bob@example.com/desk")
	phone := srv.Connect("alice@example.com/phone")
	available(t, srv, phone, 1)
	setCarbons(t, phone, true)
	setCarbons(t, phone, true)
	var tablet *modtest.Client
	steps := []struct {
		name string
		do   func(t *testing.T) *modtest.Client // returns the session that must get a carbon
	}{
		{"a second device", func(t *testing.T) *modtest.Client {
			c := srv.Connect("alice@example.com/laptop")
			available(t, srv, c, 0)
			setCarbons(t, c, true)
			return c
		}},
		{"it ends, another comes", func(t *testing.T) *modtest.Client {
			srv.Connect("alice@example.com/laptop").Disconnect() // replaces, then ends
			c := srv.Connect("alice@example.com/tablet")
			available(t, srv, c, 0)
			setCarbons(t, c, false)
			setCarbons(t, c, true)
			return c
		}},
		{"replaced by a session of the same resource", func(t *testing.T) *modtest.Client {
			tablet = srv.Connect("alice@example.com/tablet")
			available(t, srv, tablet, 0)
			setCarbons(t, tablet, true)
			return tablet
		}},
		{"the phone disables and enables again", func(t *testing.T) *modtest.Client {
			setCarbons(t, phone, false)
			setCarbons(t, phone, false)
			setCarbons(t, phone, true)
			return tablet
		}},
	}
	for i, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			c := st.do(t)
			body := fmt.Sprintf("c%d", i)
			bob.SendXML("<message type='chat' to='alice@example.com/phone'><body>" + body + "</body></message>")
			expectMessages(t, phone, look(phone), 1, 0, 0)
			expectMessages(t, c, look(c), 0, 1, 0)
		})
	}
}

// TestForged: carbons that do not come from the account's own bare JID are
// dropped (XEP-0280 §11).
func TestForged(t *testing.T) {
	const forged = `<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' type='chat'
		from='carol@example.com/x' to='alice@example.com/phone'><body>forged</body></message></forwarded>`
	tests := []struct {
		name, from, xml string
	}{
		{"received from another user", "bob", "<message type='chat' to='alice@example.com'><received xmlns='urn:xmpp:carbons:2'>" + forged + "</received></message>"},
		{"sent from another user", "bob", "<message type='chat' to='alice@example.com/laptop'><sent xmlns='urn:xmpp:carbons:2'>" + forged + "</sent></message>"},
		{"normal type", "bob", "<message to='alice@example.com'><received xmlns='urn:xmpp:carbons:2'>" + forged + "</received></message>"},
		{"from an own session", "alice", "<message type='chat' to='alice@example.com/laptop'><received xmlns='urn:xmpp:carbons:2'>" + forged + "</received></message>"},
		{"to another user", "alice", "<message type='chat' to='bob@example.com'><sent xmlns='urn:xmpp:carbons:2'>" + forged + "</sent></message>"},
	}
	srv := newServer(t, nil)
	a := connectAlice(t, srv)
	bob := srv.Connect("bob@example.com/desk")
	available(t, srv, bob, 0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := bob
			if tt.from == "alice" {
				c = a.tablet
			}
			c.SendXML(tt.xml)
			for _, r := range append(a.all(), bob) {
				expectMessages(t, r, look(r), 0, 0, 0)
			}
		})
	}
	// The server's own carbons still arrive.
	bob.SendXML("<message type='chat' to='alice@example.com'><body>real</body></message>")
	s := a.laptop.Next(carbonOf("received", "real"))
	if s.From != jid.MustParse("alice@example.com") {
		t.Errorf("carbon from %s", s.From)
	}
}

// TestPrivateKept: <private/> reaches the recipient unless strip_private
// is set.
func TestPrivateKept(t *testing.T) {
	for _, strip := range []bool{false, true} {
		t.Run(fmt.Sprintf("strip_private=%v", strip), func(t *testing.T) {
			srv := newServer(t, func(o *carbons.Options) { o.StripPrivate = strip })
			a := connectAlice(t, srv)
			bob := srv.Connect("bob@example.com/desk")
			sent := modtest.Parse(t, "<message type='chat' to='alice@example.com'><body>p</body><private xmlns='urn:xmpp:carbons:2'/></message>")
			sent.SetFrom(bob.JID)
			srv.Router.RouteFrom(context.Background(), bob.Res, sent)
			in := look(a.phone)
			expectMessages(t, a.phone, in, 1, 0, 0)
			if len(in.plain) == 1 {
				if has := in.plain[0].El.Child(carbons.NS, "private") != nil; has == strip {
					t.Errorf("delivered %s; want <private/> kept: %v", in.plain[0].El, !strip)
				}
			}
			if sent.El.Child(carbons.NS, "private") == nil {
				t.Error("the sender's stanza was changed in place")
			}
			for _, c := range a.all()[1:] {
				expectMessages(t, c, look(c), 0, 0, 0)
			}
		})
	}
}

// stamper is a test module that gives inbound messages a recipient-side
// stanza-id in the Inbound Process phase, the way the archive does, so that
// the tests see which version of a message each carbon carries.
type stamper struct{}

func (stamper) Provision(h module.Host) error {
	h.Hook(module.Inbound, module.Process, func(_ context.Context, p *module.Packet) (module.Verdict, error) {
		s := p.Stanza
		if s.Kind != stanza.KindMessage || s.To.IsZero() {
			return module.Continue, nil
		}
		c := &stanza.Stanza{El: s.El.Clone(), Kind: s.Kind, From: s.From, To: s.To, Type: s.Type, ID: s.ID}
		c.El.Append(stanza.New("urn:xmpp:sid:0", "stanza-id").Set("by", s.To.Bare().String()).Set("id", "archive-1"))
		p.Stanza = c
		return module.Continue, nil
	})
	return nil
}

func TestCarbonContent(t *testing.T) {
	st := router.Enabled{Info: module.Info{ID: "stamper"}, Module: stamper{}}
	srv := newServer(t, nil, st)
	a := connectAlice(t, srv)
	bob := srv.Connect("bob@example.com/desk")
	b2 := srv.Connect("bob@example.com/phone")
	available(t, srv, bob, 1)
	available(t, srv, b2, 0)
	setCarbons(t, b2, true)

	a.phone.SendXML("<message type='chat' to='bob@example.com' id='m1'><body>hello</body></message>")
	// bob's second session gets the message as bob's server stamped it;
	// alice's other sessions get it as alice sent it.
	rc := wrapped(b2.Next(carbonOf("received", "hello")), "received")
	if id := rc.Child("urn:xmpp:sid:0", "stanza-id"); id == nil || id.Get("by") != "bob@example.com" {
		t.Errorf("received carbon %s: want the recipient's stanza-id", rc)
	}
	sc := wrapped(a.laptop.Next(carbonOf("sent", "hello")), "sent")
	if id := sc.Child("urn:xmpp:sid:0", "stanza-id"); id != nil {
		t.Errorf("sent carbon %s carries the recipient's stanza-id", sc)
	}
	if sc.Get("id") != "m1" || sc.Get("type") != "chat" {
		t.Errorf("sent carbon %s: want the message as sent", sc)
	}
}

// TestStripPrivateKeepsTargets: removing <private/> replaces the packet's
// stanza and leaves the delivery targets as the router chose them (a
// wrapper hid module.Hibernating, so push saw a session waiting for
// resumption as one that had the message).
func TestStripPrivateKeepsTargets(t *testing.T) {
	st := stanza.NewMessage(jid.MustParse("alice@example.com/a"), jid.MustParse("bob@example.com"), "chat", "m1")
	st.El.Append(stanza.New(carbons.NS, "private"))
	target := module.Resource(&stubResource{})
	p := &module.Packet{Stanza: st, Targets: []module.Resource{target}}
	carbons.StripPrivate(p)
	if p.Stanza == st || p.Stanza.El.Child(carbons.NS, "private") != nil {
		t.Fatalf("stanza after stripping: %s", p.Stanza.El)
	}
	if len(p.Targets) != 1 || p.Targets[0] != target {
		t.Fatalf("targets changed: %v", p.Targets)
	}
}

// stubResource is a delivery target that is never used.
type stubResource struct{ module.Resource }

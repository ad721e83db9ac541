package gate

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	contract "kontor.im/kontor/core/gate"
	_ "kontor.im/kontor/core/mod/presence"
	_ "kontor.im/kontor/core/mod/roster"
	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/stanza"
)

const quiet = 50 * time.Millisecond

// fakeDecider records what it is asked and refuses what refuse says.
type fakeDecider struct {
	mu       sync.Mutex
	contacts []contract.ContactInput
	e2ees    []contract.E2EEInput
	refuse   func(contract.ContactInput) bool
	noE2EE   bool
}

func (f *fakeDecider) Contact(_ context.Context, in contract.ContactInput) contract.Decision {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.contacts = append(f.contacts, in)
	if f.refuse != nil && f.refuse(in) {
		return contract.Decision{ID: "d-test", Reason: "test_reason", Message: "Not today."}
	}
	return contract.Decision{ID: "d-test", Allow: true, Reason: "internal"}
}

func (f *fakeDecider) E2EE(_ context.Context, in contract.E2EEInput) contract.Decision {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.e2ees = append(f.e2ees, in)
	if f.noE2EE {
		return contract.Decision{ID: "d-e2ee", Reason: "retention_requires_readable", Message: "Keep it readable."}
	}
	return contract.Decision{ID: "d-e2ee", Allow: true, Reason: "no_retention_duty"}
}

func (f *fakeDecider) Retention(context.Context, contract.RetentionInput) contract.RetentionDecision {
	return contract.RetentionDecision{}
}

func (f *fakeDecider) Access(context.Context, contract.AccessInput) contract.AccessDecision {
	return contract.AccessDecision{}
}

func (f *fakeDecider) Registration(context.Context, contract.RegistrationInput) contract.Decision {
	return contract.Decision{}
}

func (f *fakeDecider) asked() ([]contract.ContactInput, []contract.E2EEInput) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, e := f.contacts, f.e2ees
	f.contacts, f.e2ees = nil, nil
	return c, e
}

// newServer runs roster, presence and the gate with d (nil: no decider).
func newServer(t testing.TB, d contract.Decider) *modtest.Server {
	t.Helper()
	g := new(Gate)
	if d != nil {
		g.SetDecider(d)
	}
	info, ok := module.Lookup(ID)
	if !ok {
		t.Fatal("policy_gate is not registered")
	}
	srv := modtest.New(t, modtest.Options{}, router.Enabled{Info: info, Module: g},
		modtest.Module(t, "roster"), modtest.Module(t, "presence"))
	srv.Account("alice")
	srv.Account("bob")
	return srv
}

func isError(s *stanza.Stanza) bool { return s.IsError() }

func TestAskedQuestions(t *testing.T) {
	alice := contract.Party{JID: "alice@example.com", Local: true}
	bob := contract.Party{JID: "bob@example.com", Local: true}
	tests := []struct {
		name    string
		send    string
		contact []contract.ContactInput
		e2ee    []contract.E2EEInput
	}{
		{"chat message", "<message to='bob@example.com/desk' type='chat' id='m1'><body>hi</body></message>",
			[]contract.ContactInput{{Action: contract.ActionMessage, StanzaType: "chat", From: alice, To: bob}}, nil},
		{"message without type", "<message to='bob@example.com' id='m2'><body>hi</body></message>",
			[]contract.ContactInput{{Action: contract.ActionMessage, From: alice, To: bob}}, nil},
		{"message to a remote user", "<message to='carol@elsewhere.example' type='chat'><body>hi</body></message>",
			[]contract.ContactInput{{Action: contract.ActionMessage, StanzaType: "chat", From: alice, To: contract.Party{JID: "carol@elsewhere.example"}}}, nil},
		{"OMEMO message asks e2ee too", "<message to='bob@example.com' type='chat'><encrypted xmlns='eu.siacs.conversations.axolotl'/></message>",
			[]contract.ContactInput{{Action: contract.ActionMessage, StanzaType: "chat", From: alice, To: bob}},
			[]contract.E2EEInput{{From: alice, To: bob, StanzaType: "chat"}}},
		{"OMEMO 2 message", "<message to='bob@example.com' type='chat'><encrypted xmlns='urn:xmpp:omemo:2'/></message>",
			[]contract.ContactInput{{Action: contract.ActionMessage, StanzaType: "chat", From: alice, To: bob}},
			[]contract.E2EEInput{{From: alice, To: bob, StanzaType: "chat"}}},
		{"OpenPGP message", "<message to='bob@example.com' type='chat'><openpgp xmlns='urn:xmpp:openpgp:0'>x</openpgp></message>",
			[]contract.ContactInput{{Action: contract.ActionMessage, StanzaType: "chat", From: alice, To: bob}},
			[]contract.E2EEInput{{From: alice, To: bob, StanzaType: "chat"}}},
		{"explicit encryption marker", "<message to='bob@example.com' type='chat'><encryption xmlns='urn:xmpp:eme:0' namespace='urn:xmpp:otr:0'/><body>?OTR...</body></message>",
			[]contract.ContactInput{{Action: contract.ActionMessage, StanzaType: "chat", From: alice, To: bob}},
			[]contract.E2EEInput{{From: alice, To: bob, StanzaType: "chat"}}},
		{"encrypted groupchat asks only e2ee", "<message to='team@rooms.example.com' type='groupchat'><encrypted xmlns='urn:xmpp:omemo:2'/></message>",
			nil, []contract.E2EEInput{{From: alice, Room: "team@rooms.example.com", StanzaType: "groupchat"}}},
		{"direct invitation asks muc.invite too", "<message to='bob@example.com' id='i1'><x xmlns='jabber:x:conference' jid='team@rooms.example.com/x' reason='hi'/></message>",
			[]contract.ContactInput{{Action: contract.ActionMessage, From: alice, To: bob},
				{Action: contract.ActionMUCInvite, From: alice, To: bob, Room: "team@rooms.example.com"}}, nil},
		{"direct invitation without a room JID is a message", "<message to='bob@example.com' id='i2'><x xmlns='jabber:x:conference' jid='rooms.example.com'/></message>",
			[]contract.ContactInput{{Action: contract.ActionMessage, From: alice, To: bob}}, nil},
		{"plain groupchat asks nothing", "<message to='team@rooms.example.com' type='groupchat'><body>hi</body></message>", nil, nil},
		{"subscription request", "<presence to='bob@example.com' type='subscribe'/>",
			[]contract.ContactInput{{Action: contract.ActionSubscribe, StanzaType: "subscribe", From: alice, To: bob}}, nil},
		{"subscription approval", "<presence to='bob@example.com' type='subscribed'/>",
			[]contract.ContactInput{{Action: contract.ActionSubscribed, StanzaType: "subscribed", From: alice, To: bob}}, nil},
		{"directed presence", "<presence to='bob@example.com/desk'/>",
			[]contract.ContactInput{{Action: contract.ActionPresence, From: alice, To: bob}}, nil},
		{"roster set adding a contact", "<iq type='set' id='r1'><query xmlns='jabber:iq:roster'><item jid='bob@example.com' name='Bob'/></query></iq>",
			[]contract.ContactInput{{Action: contract.ActionRosterAdd, StanzaType: "set", From: alice, To: bob}}, nil},
		{"roster set to own bare JID", "<iq type='set' id='r2' to='alice@example.com'><query xmlns='jabber:iq:roster'><item jid='bob@example.com/desk'/></query></iq>",
			[]contract.ContactInput{{Action: contract.ActionRosterAdd, StanzaType: "set", From: alice, To: bob}}, nil},
		{"IQ to another user", "<iq type='get' id='v1' to='bob@example.com'><vCard xmlns='vcard-temp'/></iq>",
			[]contract.ContactInput{{Action: contract.ActionIQ, StanzaType: "get", From: alice, To: bob}}, nil},
		{"roster removal is not asked", "<iq type='set' id='r3'><query xmlns='jabber:iq:roster'><item jid='bob@example.com' subscription='remove'/></query></iq>", nil, nil},
		{"roster get is not asked", "<iq type='get' id='r4'><query xmlns='jabber:iq:roster'/></iq>", nil, nil},
		{"IQ to the server is not asked", "<iq type='get' id='p1' to='example.com'><ping xmlns='urn:xmpp:ping'/></iq>", nil, nil},
		{"IQ result is not asked", "<iq type='result' id='x1' to='bob@example.com/desk'/>", nil, nil},
		{"error is not asked", "<message to='bob@example.com/desk' type='error' id='m9'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>", nil, nil},
		{"unsubscribe is not asked", "<presence to='bob@example.com' type='unsubscribe'/>", nil, nil},
		{"unsubscribed is not asked", "<presence to='bob@example.com' type='unsubscribed'/>", nil, nil},
		{"unavailable is not asked", "<presence to='bob@example.com/desk' type='unavailable'/>", nil, nil},
		{"message to self is not asked", "<message to='alice@example.com/other' type='chat'><body>note</body></message>", nil, nil},
		{"broadcast presence is not asked", "<presence/>", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &fakeDecider{}
			srv := newServer(t, d)
			a := srv.Connect("alice@example.com/phone")
			srv.Connect("bob@example.com/desk")
			a.SendXML(tt.send)
			contacts, e2ees := d.asked()
			if !equalContacts(contacts, tt.contact) {
				t.Errorf("contact asked %+v, want %+v", contacts, tt.contact)
			}
			if !equalE2EE(e2ees, tt.e2ee) {
				t.Errorf("e2ee asked %+v, want %+v", e2ees, tt.e2ee)
			}
			for _, s := range a.Received() {
				if e, ok := stanza.ErrorOf(s); ok && e.Condition == stanza.PolicyViolation {
					t.Errorf("allowed stanza refused: %s", s.El)
				}
			}
		})
	}
}

func equalContacts(a, b []contract.ContactInput) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalE2EE(a, b []contract.E2EEInput) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRefusalReachesSender(t *testing.T) {
	tests := []struct {
		name, send, id string
		kind           stanza.Kind
	}{
		{"message", "<message to='bob@example.com/desk' type='chat' id='m1'><body>hi</body></message>", "m1", stanza.KindMessage},
		{"subscription request", "<presence to='bob@example.com' type='subscribe' id='s1'/>", "s1", stanza.KindPresence},
		{"roster set", "<iq type='set' id='r1'><query xmlns='jabber:iq:roster'><item jid='bob@example.com'/></query></iq>", "r1", stanza.KindIQ},
		{"IQ to another user", "<iq type='get' id='v1' to='bob@example.com/desk'><ping xmlns='urn:xmpp:ping'/></iq>", "v1", stanza.KindIQ},
		{"directed presence", "<presence to='bob@example.com/desk' id='p1'/>", "p1", stanza.KindPresence},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &fakeDecider{refuse: func(in contract.ContactInput) bool { return in.To.JID == "bob@example.com" }}
			srv := newServer(t, d)
			a := srv.Connect("alice@example.com/phone")
			b := srv.Connect("bob@example.com/desk")
			a.SendXML(tt.send)
			got := a.Next(func(s *stanza.Stanza) bool { return s.IsError() && s.ID == tt.id })
			if got.Kind != tt.kind {
				t.Errorf("error reply is a %s, want %s", got.Kind, tt.kind)
			}
			if got.From.String() != "bob@example.com" && !strings.HasPrefix(got.From.String(), "bob@example.com/") && !got.From.IsZero() {
				t.Errorf("error reply from %s", got.From)
			}
			e, _ := stanza.ErrorOf(got)
			if e.Condition != stanza.PolicyViolation || e.Type != stanza.Cancel {
				t.Errorf("error %s/%s, want cancel/policy-violation", e.Type, e.Condition)
			}
			if e.Text != "Not today. (test_reason)" {
				t.Errorf("error text %q", e.Text)
			}
			app := got.El.Child(stanza.NSClient, "error").Child(contract.NS, "decision")
			if app == nil || app.Get("reason") != "test_reason" || app.Get("id") != "d-test" {
				t.Errorf("no decision element with reason and id: %s", got.El)
			}
			b.Nothing(quiet, func(s *stanza.Stanza) bool { return s.From.Bare().String() == "alice@example.com" })
		})
	}
}

func TestRosterSetRefusedLeavesRosterUnchanged(t *testing.T) {
	d := &fakeDecider{refuse: func(in contract.ContactInput) bool { return in.To.JID == "bob@example.com" }}
	srv := newServer(t, d)
	a := srv.Connect("alice@example.com/phone")
	a.SendXML("<iq type='set' id='r1'><query xmlns='jabber:iq:roster'><item jid='bob@example.com'/></query></iq>")
	if res := a.NextIQ("r1"); modtest.ErrorCondition(res) != stanza.PolicyViolation {
		t.Fatalf("roster set answered %s", res.El)
	}
	items, _, err := srv.Store.RosterItems(context.Background(), "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 0 {
		t.Errorf("roster has %d items after a refused set", len(items))
	}
}

func TestAllowedMessageIsDelivered(t *testing.T) {
	srv := newServer(t, &fakeDecider{})
	a := srv.Connect("alice@example.com/phone")
	b := srv.Connect("bob@example.com/desk")
	a.SendXML("<message to='bob@example.com/desk' type='chat' id='m1'><body>hi</body></message>")
	got := b.Next(func(s *stanza.Stanza) bool { return s.Kind == stanza.KindMessage && s.ID == "m1" })
	if got.IsError() {
		t.Fatalf("bob got an error: %s", got.El)
	}
	a.Nothing(quiet, isError)
}

func TestE2EERefused(t *testing.T) {
	d := &fakeDecider{noE2EE: true}
	srv := newServer(t, d)
	a := srv.Connect("alice@example.com/phone")
	b := srv.Connect("bob@example.com/desk")
	a.SendXML("<message to='bob@example.com/desk' type='chat' id='m1'><encrypted xmlns='eu.siacs.conversations.axolotl'/></message>")
	got := a.Next(func(s *stanza.Stanza) bool { return s.IsError() && s.ID == "m1" })
	e, _ := stanza.ErrorOf(got)
	if e.Condition != stanza.PolicyViolation || !strings.Contains(e.Text, "Keep it readable.") || !strings.Contains(e.Text, "retention_requires_readable") {
		t.Errorf("error %+v", e)
	}
	b.Nothing(quiet, func(s *stanza.Stanza) bool { return s.ID == "m1" })
	// The same message without encryption goes through.
	a.SendXML("<message to='bob@example.com/desk' type='chat' id='m2'><body>plain</body></message>")
	b.Next(func(s *stanza.Stanza) bool { return s.ID == "m2" && !s.IsError() })
}

func TestFailClosedWithoutDecider(t *testing.T) {
	srv := newServer(t, nil)
	a := srv.Connect("alice@example.com/phone")
	b := srv.Connect("bob@example.com/desk")
	a.SendXML("<message to='bob@example.com/desk' type='chat' id='m1'><body>hi</body></message>")
	got := a.Next(func(s *stanza.Stanza) bool { return s.IsError() && s.ID == "m1" })
	e, _ := stanza.ErrorOf(got)
	if e.Condition != stanza.PolicyViolation || !strings.Contains(e.Text, contract.ReasonUnavailable) {
		t.Errorf("error %+v, want policy-violation with %s", e, contract.ReasonUnavailable)
	}
	b.Nothing(quiet, func(s *stanza.Stanza) bool { return s.ID == "m1" })
	// What is never asked still works: the server answers a ping.
	a.SendXML("<iq type='result' id='x' to='bob@example.com/desk'/>")
	b.Next(func(s *stanza.Stanza) bool { return s.ID == "x" })
}

func TestTimeoutIsWait(t *testing.T) {
	d := contract.Decision{ID: "d1", Reason: contract.ReasonTimeout, Message: "Try again."}
	e := d.StanzaError()
	if e.Type != stanza.Wait || e.Condition != stanza.PolicyViolation {
		t.Errorf("timeout is %s/%s, want wait/policy-violation", e.Type, e.Condition)
	}
}

// service serves a domain the way MUC and components do, and records what
// reaches it.
type service struct {
	domain string
	mu     sync.Mutex
	got    []string
}

func (s *service) Provision(h module.Host) error {
	return h.ServeDomain(s.domain, func(_ context.Context, p *module.Packet) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.got = append(s.got, p.Stanza.El.Get("id"))
		return nil
	})
}

func (s *service) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

// TestServedDomainsDecideForThemselves: stanzas to a domain a module
// serves ask no contact question in the gate (the module asks its own, with
// the people involved), so that a policy refusing every unknown party
// still lets people reach rooms; an encrypted message still asks e2ee.
func TestServedDomainsDecideForThemselves(t *testing.T) {
	d := &fakeDecider{refuse: func(contract.ContactInput) bool { return true }}
	g := new(Gate)
	g.SetDecider(d)
	info, _ := module.Lookup(ID)
	svc := &service{domain: "rooms.example.com"}
	srv := modtest.New(t, modtest.Options{}, router.Enabled{Info: info, Module: g},
		router.Enabled{Info: module.Info{ID: "test_service", New: func() module.Module { return svc }}, Module: svc})
	srv.Account("alice")
	a := srv.Connect("alice@example.com/phone")
	for _, send := range []string{
		"<presence to='team@rooms.example.com/alice' id='join'/>",
		"<message to='team@rooms.example.com/bob' type='chat' id='pm'><body>hi</body></message>",
		"<iq to='team@rooms.example.com' type='get' id='info'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
	} {
		a.SendXML(send)
	}
	a.SendXML("<message to='team@rooms.example.com/bob' type='chat' id='omemo'><encrypted xmlns='urn:xmpp:omemo:2'/></message>")
	contacts, e2ees := d.asked()
	if len(contacts) != 0 {
		t.Errorf("the gate asked contact questions about a served domain: %+v", contacts)
	}
	if len(e2ees) != 1 {
		t.Errorf("e2ee asked %+v, want once for the encrypted message", e2ees)
	}
	for _, s := range a.Received() {
		if s.IsError() {
			t.Errorf("refused: %s", s.El)
		}
	}
	if got := strings.Join(svc.received(), " "); got != "join pm info omemo" {
		t.Errorf("the service received %q, want every stanza", got)
	}
	// A user at a domain nobody serves is still asked about (and refused).
	a.SendXML("<message to='carol@elsewhere.example' type='chat' id='out'><body>hi</body></message>")
	if contacts, _ := d.asked(); len(contacts) != 1 {
		t.Errorf("contact asked %+v for a remote user, want once", contacts)
	}
}

func TestDirectInvitationRefused(t *testing.T) {
	d := &fakeDecider{refuse: func(in contract.ContactInput) bool { return in.Action == contract.ActionMUCInvite }}
	srv := newServer(t, d)
	a := srv.Connect("alice@example.com/phone")
	b := srv.Connect("bob@example.com/desk")
	a.SendXML("<message to='bob@example.com/desk' id='i1'><x xmlns='jabber:x:conference' jid='team@rooms.example.com'/></message>")
	if got := a.Next(func(s *stanza.Stanza) bool { return s.IsError() && s.ID == "i1" }); modtest.ErrorCondition(got) != stanza.PolicyViolation {
		t.Fatalf("refused invitation answered %s", got.El)
	}
	b.Nothing(quiet, func(s *stanza.Stanza) bool { return s.ID == "i1" })
	// An ordinary message still goes.
	a.SendXML("<message to='bob@example.com/desk' type='chat' id='m1'><body>hi</body></message>")
	b.Next(func(s *stanza.Stanza) bool { return s.ID == "m1" && !s.IsError() })
}

// TestRemoteSenders: stanzas a remote server delivers (federation: routed
// without an origin, from a user of a domain the server does not serve)
// ask the contact question with the sender as the non-local party; stanzas
// from local users and modules are not asked again on the way in.
func TestRemoteSenders(t *testing.T) {
	carol := contract.Party{JID: "carol@elsewhere.example"}
	bob := contract.Party{JID: "bob@example.com", Local: true}
	tests := []struct {
		name    string
		route   string
		contact []contract.ContactInput
	}{
		{"chat message", "<message from='carol@elsewhere.example/x' to='bob@example.com' type='chat' id='m1'><body>hi</body></message>",
			[]contract.ContactInput{{Action: contract.ActionMessage, StanzaType: "chat", From: carol, To: bob}}},
		{"subscription request", "<presence from='carol@elsewhere.example' to='bob@example.com' type='subscribe'/>",
			[]contract.ContactInput{{Action: contract.ActionSubscribe, StanzaType: "subscribe", From: carol, To: bob}}},
		{"IQ to a user", "<iq from='carol@elsewhere.example/x' to='bob@example.com/desk' type='get' id='i1'><ping xmlns='urn:xmpp:ping'/></iq>",
			[]contract.ContactInput{{Action: contract.ActionIQ, StanzaType: "get", From: carol, To: bob}}},
		{"error", "<message from='carol@elsewhere.example/x' to='bob@example.com' type='error' id='e1'/>", nil},
		{"unsubscribed", "<presence from='carol@elsewhere.example' to='bob@example.com' type='unsubscribed'/>", nil},
		{"from the remote server itself", "<iq from='elsewhere.example' to='bob@example.com/desk' type='get' id='i2'><ping xmlns='urn:xmpp:ping'/></iq>", nil},
		{"from a local user (a module's stanza)", "<message from='alice@example.com/phone' to='bob@example.com' type='chat'><body>hi</body></message>", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &fakeDecider{}
			srv := newServer(t, d)
			srv.Connect("bob@example.com/desk")
			d.asked()
			srv.Router.Route(context.Background(), modtest.Parse(t, tt.route))
			got, _ := d.asked()
			if len(got) != len(tt.contact) {
				t.Fatalf("asked %+v, want %+v", got, tt.contact)
			}
			for i := range got {
				if got[i] != tt.contact[i] {
					t.Errorf("asked %+v, want %+v", got[i], tt.contact[i])
				}
			}
		})
	}

	t.Run("a refusal goes back to the remote sender", func(t *testing.T) {
		d := &fakeDecider{refuse: func(in contract.ContactInput) bool { return !in.From.Local }}
		srv := newServer(t, d)
		b := srv.Connect("bob@example.com/desk")
		srv.Router.Route(context.Background(), modtest.Parse(t, "<message from='bob@example.com/desk' to='bob@example.com/desk' id='self'><body>x</body></message>"))
		b.Next(func(s *stanza.Stanza) bool { return s.ID == "self" })
		srv.Router.Route(context.Background(), modtest.Parse(t, "<message from='carol@elsewhere.example/x' to='bob@example.com' type='chat' id='m1'><body>hi</body></message>"))
		b.Nothing(quiet, func(s *stanza.Stanza) bool { return s.ID == "m1" })
	})
}

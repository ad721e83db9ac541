package muc

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"kontor.im/kontor/core/directory"
	"kontor.im/kontor/core/gate"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/mod/mam/mamtest"
	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

// decider is the policy as these tests need it: it allows every contact
// except joins by the JIDs in deny, and records what it was asked.
type decider struct {
	deny  map[string]bool
	asked chan gate.ContactInput
}

func (d *decider) Contact(_ context.Context, in gate.ContactInput) gate.Decision {
	select {
	case d.asked <- in:
	default:
	}
	if d.deny[in.From.JID] {
		return gate.Decision{ID: "d-1", Reason: "test_denied", Message: "not you"}
	}
	return gate.Decision{ID: "d-0", Allow: true}
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

type fixture struct {
	t    *testing.T
	srv  *modtest.Server
	mod  *Module
	arch *mamtest.Archive
	pol  *decider
}

const roomJID = "room@conference.example.com"

func setup(t *testing.T, configure func(*Options)) *fixture {
	t.Helper()
	info, _ := module.Lookup(ID)
	m := info.New().(*Module)
	if configure != nil {
		configure(&m.opts)
	}
	if err := m.opts.Validate(); err != nil {
		t.Fatal(err)
	}
	pol := &decider{deny: map[string]bool{}, asked: make(chan gate.ContactInput, 100)}
	m.SetDecider(pol)
	arch := mamtest.New()
	srv := modtest.New(t, modtest.Options{Archive: arch}, router.Enabled{Info: info, Module: m})
	return &fixture{t: t, srv: srv, mod: m, arch: arch, pol: pol}
}

// user creates an account and connects a resource.
func (f *fixture) user(local string) *modtest.Client {
	f.t.Helper()
	f.srv.Account(local)
	return f.srv.Connect(local + "@example.com/res")
}

func selfPresence(s *stanza.Stanza) bool {
	return s.Kind == stanza.KindPresence && hasStatus(s, "110")
}

func hasStatus(s *stanza.Stanza, code string) bool {
	x := s.El.Child(NSUser, "x")
	found := false
	if x != nil {
		x.Children(func(c *stanza.Element) bool {
			if c.Name.Local == "status" && c.Get("code") == code {
				found = true
			}
			return !found
		})
	}
	return found
}

func presenceFrom(nick, typ string) func(*stanza.Stanza) bool {
	return func(s *stanza.Stanza) bool {
		return s.Kind == stanza.KindPresence && s.From.Resource() == nick && s.Type == typ
	}
}

func body(text string) func(*stanza.Stanza) bool {
	return func(s *stanza.Stanza) bool {
		return s.Kind == stanza.KindMessage && s.El.ChildText(stanza.NSClient, "body") == text
	}
}

func isSubject(s *stanza.Stanza) bool {
	return s.Kind == stanza.KindMessage && s.El.Child(stanza.NSClient, "subject") != nil
}

// join enters the roomJID and waits for the subject, which ends the join.
func join(t *testing.T, c *modtest.Client, nick, extra string) *stanza.Stanza {
	t.Helper()
	c.SendXML(fmt.Sprintf("<presence to='%s/%s'><x xmlns='%s'>%s</x></presence>", roomJID, nick, NS, extra))
	self := c.Next(selfPresence)
	c.Next(isSubject)
	if hasStatus(self, "201") {
		// A new room is locked until its owner accepts the default
		// configuration (an instant room, XEP-0045 §10.1.2).
		unlock(t, c)
	}
	return self
}

// unlock accepts a new room's default configuration.
func unlock(t *testing.T, c *modtest.Client) {
	t.Helper()
	c.SendXML(fmt.Sprintf("<iq to='%s' type='set' id='instant'><query xmlns='%s'><x xmlns='jabber:x:data' type='submit'/></query></iq>", roomJID, NSOwner))
	if r := c.NextIQ("instant"); r.Type != "result" {
		t.Fatalf("instant room: %s", r.El)
	}
}

func say(c *modtest.Client, text string) {
	c.SendXML(fmt.Sprintf("<message to='%s' type='groupchat' id='m-%s'><body>%s</body></message>", roomJID, text, text))
}

func item(s *stanza.Stanza) *stanza.Element {
	if x := s.El.Child(NSUser, "x"); x != nil {
		return x.Child(NSUser, "item")
	}
	return nil
}

func TestJoinAndGroupchat(t *testing.T) {
	f := setup(t, nil)
	alice, bob, carol := f.user("alice"), f.user("bob"), f.user("carol")

	self := join(t, alice, "Alice", "")
	if !hasStatus(self, "201") || item(self).Get("affiliation") != Owner || item(self).Get("role") != Moderator {
		t.Fatalf("creator's presence: %s", self.El)
	}
	in := <-f.pol.asked
	if in.Action != gate.ActionMUCJoin || in.Room != roomJID || in.From.JID != "alice@example.com" || !in.From.Local {
		t.Fatalf("policy asked %+v", in)
	}
	self = join(t, bob, "Bob", "")
	if hasStatus(self, "201") || item(self).Get("affiliation") != None || item(self).Get("role") != Participant {
		t.Fatalf("bob's presence: %s", self.El)
	}
	if item(self).Get("jid") != "" {
		t.Fatal("a participant sees real JIDs in a semi-anonymous roomJID")
	}
	// Alice, a moderator, sees Bob's real JID.
	if p := alice.Next(presenceFrom("Bob", "")); item(p).Get("jid") != "bob@example.com/res" {
		t.Fatalf("moderator's view of bob: %s", p.El)
	}
	join(t, carol, "Carol", "")

	say(bob, "hello")
	var ids, occ []string
	for _, c := range []*modtest.Client{alice, bob, carol} {
		m := c.Next(body("hello"))
		if m.From.String() != roomJID+"/Bob" || m.Type != "groupchat" || m.To != c.JID {
			t.Fatalf("%s got %s", c.JID, m.El)
		}
		sid := m.El.Child(NSStanzaID, "stanza-id")
		if sid == nil || sid.Get("by") != roomJID {
			t.Fatalf("no roomJID stanza-id: %s", m.El)
		}
		ids = append(ids, sid.Get("id"))
		occ = append(occ, m.El.Child(NSOccupant, "occupant-id").Get("id"))
	}
	if ids[0] != ids[1] || ids[1] != ids[2] || occ[0] != occ[1] || occ[0] == "" {
		t.Fatalf("stanza ids %v, occupant ids %v: want one of each", ids, occ)
	}
	got := f.arch.Messages(roomJID)
	if len(got) != 1 || got[0].ID != ids[0] || got[0].With != roomJID+"/Bob" || !strings.Contains(string(got[0].Stanza), "hello") {
		t.Fatalf("archive: %+v", got)
	}

	t.Run("forged ids are replaced", func(t *testing.T) {
		bob.SendXML(fmt.Sprintf("<message to='%s' type='groupchat'><body>forged</body><stanza-id xmlns='%s' by='%s' id='fake'/><occupant-id xmlns='%s' id='fake'/></message>",
			roomJID, NSStanzaID, roomJID, NSOccupant))
		m := carol.Next(body("forged"))
		n := 0
		m.El.Children(func(c *stanza.Element) bool {
			if (c.Name.Space == NSStanzaID || c.Name.Space == NSOccupant) && c.Get("id") == "fake" {
				n++
			}
			return true
		})
		if n != 0 {
			t.Fatalf("forged ids kept: %s", m.El)
		}
	})

	t.Run("occupant id is stable across sessions", func(t *testing.T) {
		bob.SendXML(fmt.Sprintf("<presence to='%s/Bob' type='unavailable'/>", roomJID))
		bob.Next(presenceFrom("Bob", "unavailable"))
		self := join(t, bob, "Bob", "<history maxchars='0'/>")
		if self.El.Child(NSOccupant, "occupant-id").Get("id") != occ[0] {
			t.Fatal("occupant id changed")
		}
	})

	t.Run("non-occupant may not speak", func(t *testing.T) {
		dave := f.user("dave")
		say(dave, "intruder")
		if e := dave.Next(nil); modtest.ErrorCondition(e) != stanza.NotAcceptable {
			t.Fatalf("got %s", e.El)
		}
	})

	t.Run("nick conflict", func(t *testing.T) {
		erin := f.user("erin")
		erin.SendXML(fmt.Sprintf("<presence to='%s/Alice'><x xmlns='%s'/></presence>", roomJID, NS))
		if e := erin.Next(nil); e.Kind != stanza.KindPresence || modtest.ErrorCondition(e) != stanza.Conflict {
			t.Fatalf("got %s", e.El)
		}
	})

	t.Run("nick change", func(t *testing.T) {
		carol.SendXML(fmt.Sprintf("<presence to='%s/Caro'/>", roomJID))
		p := alice.Next(presenceFrom("Carol", "unavailable"))
		if !hasStatus(p, "303") || item(p).Get("nick") != "Caro" {
			t.Fatalf("got %s", p.El)
		}
		alice.Next(presenceFrom("Caro", ""))
		carol.Next(selfPresence)
	})

	t.Run("subject", func(t *testing.T) {
		bob.SendXML(fmt.Sprintf("<message to='%s' type='groupchat'><subject>mine</subject></message>", roomJID))
		if e := bob.Next(func(s *stanza.Stanza) bool { return s.IsError() }); modtest.ErrorCondition(e) != stanza.Forbidden {
			t.Fatalf("participant changed the subject: %s", e.El)
		}
		alice.SendXML(fmt.Sprintf("<message to='%s' type='groupchat'><subject>Plans</subject></message>", roomJID))
		if s := bob.Next(isSubject); s.El.ChildText(stanza.NSClient, "subject") != "Plans" || s.From.String() != roomJID+"/Alice" {
			t.Fatalf("got %s", s.El)
		}
		frank := f.user("frank")
		frank.SendXML(fmt.Sprintf("<presence to='%s/Frank'><x xmlns='%s'/></presence>", roomJID, NS))
		if s := frank.Next(isSubject); s.El.ChildText(stanza.NSClient, "subject") != "Plans" {
			t.Fatalf("late joiner's subject: %s", s.El)
		}
	})
}

func TestHistory(t *testing.T) {
	f := setup(t, func(o *Options) { o.MaxHistory = 3 })
	alice := f.user("alice")
	join(t, alice, "Alice", "")
	for i := range 5 {
		say(alice, fmt.Sprint("h", i))
		alice.Next(body(fmt.Sprint("h", i)))
	}
	cases := []struct {
		name, history string
		want          []string
	}{
		{"default is max_history", "", []string{"h2", "h3", "h4"}},
		{"maxstanzas", "<history maxstanzas='1'/>", []string{"h4"}},
		{"maxchars 0", "<history maxchars='0'/>", nil},
		{"since the future", "<history since='2999-01-01T00:00:00Z'/>", nil},
		{"seconds", "<history seconds='3600'/>", []string{"h2", "h3", "h4"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprint("late", i)
			c := f.user(name)
			c.SendXML(fmt.Sprintf("<presence to='%s/%s'><x xmlns='%s'>%s</x></presence>", roomJID, name, NS, tc.history))
			c.Next(selfPresence)
			var got []string
			for {
				s := c.Next(func(s *stanza.Stanza) bool { return s.Kind == stanza.KindMessage })
				if isSubject(s) {
					break
				}
				if s.El.Child(NSDelay, "delay") == nil || s.El.Child(NSStanzaID, "stanza-id") == nil {
					t.Fatalf("history without delay or stanza-id: %s", s.El)
				}
				got = append(got, s.El.ChildText(stanza.NSClient, "body"))
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("history %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLeaveAndTemporaryRoom(t *testing.T) {
	f := setup(t, nil)
	alice, bob := f.user("alice"), f.user("bob")
	join(t, alice, "Alice", "")
	join(t, bob, "Bob", "")
	bob.Disconnect()
	if p := alice.Next(presenceFrom("Bob", "unavailable")); item(p).Get("role") != None {
		t.Fatalf("got %s", p.El)
	}
	alice.SendXML(fmt.Sprintf("<presence to='%s/Alice' type='unavailable'/>", roomJID))
	if p := alice.Next(presenceFrom("Alice", "unavailable")); !hasStatus(p, "110") {
		t.Fatalf("got %s", p.El)
	}
	if f.mod.lookup(jid.MustParse(roomJID)) != nil {
		t.Fatal("the empty temporary roomJID still exists")
	}
}

func TestPolicyRefusesJoin(t *testing.T) {
	f := setup(t, nil)
	f.pol.deny["mallory@example.com"] = true
	mallory := f.user("mallory")
	mallory.SendXML(fmt.Sprintf("<presence to='%s/M'><x xmlns='%s'/></presence>", roomJID, NS))
	e := mallory.Next(nil)
	if e.Kind != stanza.KindPresence || modtest.ErrorCondition(e) != stanza.PolicyViolation || !strings.Contains(e.El.String(), "test_denied") {
		t.Fatalf("got %s", e.El)
	}
	if f.mod.lookup(jid.MustParse(roomJID)) != nil {
		t.Fatal("a refused join left a roomJID behind")
	}

	t.Run("no decider fails closed", func(t *testing.T) {
		f := setup(t, nil)
		f.mod.decider = nil
		c := f.user("alice")
		c.SendXML(fmt.Sprintf("<presence to='%s/A'/>", roomJID))
		if e := c.Next(nil); modtest.ErrorCondition(e) != stanza.PolicyViolation {
			t.Fatalf("got %s", e.El)
		}
	})
}

func TestKickBanAndRoles(t *testing.T) {
	f := setup(t, nil)
	alice, bob, carol := f.user("alice"), f.user("bob"), f.user("carol")
	join(t, alice, "Alice", "")
	join(t, bob, "Bob", "")
	join(t, carol, "Carol", "")

	// A participant may not kick.
	bob.SendXML(fmt.Sprintf("<iq to='%s' type='set' id='k0'><query xmlns='%s'><item nick='Carol' role='none'/></query></iq>", roomJID, NSAdmin))
	if r := bob.NextIQ("k0"); modtest.ErrorCondition(r) != stanza.Forbidden {
		t.Fatalf("got %s", r.El)
	}
	alice.SendXML(fmt.Sprintf("<iq to='%s' type='set' id='k1'><query xmlns='%s'><item nick='Carol' role='none'><reason>spam</reason></item></query></iq>", roomJID, NSAdmin))
	if r := alice.NextIQ("k1"); r.Type != "result" {
		t.Fatalf("kick: %s", r.El)
	}
	if p := carol.Next(presenceFrom("Carol", "unavailable")); !hasStatus(p, "307") || !hasStatus(p, "110") || item(p).ChildText(NSUser, "reason") != "spam" {
		t.Fatalf("kicked occupant got %s", p.El)
	}
	if p := bob.Next(presenceFrom("Carol", "unavailable")); !hasStatus(p, "307") {
		t.Fatalf("bob got %s", p.El)
	}
	say(alice, "after-kick")
	bob.Next(body("after-kick"))
	carol.Nothing(50*time.Millisecond, body("after-kick"))

	// Ban bob; he cannot come back.
	alice.SendXML(fmt.Sprintf("<iq to='%s' type='set' id='b1'><query xmlns='%s'><item jid='bob@example.com' affiliation='outcast'/></query></iq>", roomJID, NSAdmin))
	alice.NextIQ("b1")
	if p := bob.Next(presenceFrom("Bob", "unavailable")); !hasStatus(p, "301") {
		t.Fatalf("banned occupant got %s", p.El)
	}
	bob.SendXML(fmt.Sprintf("<presence to='%s/Bob2'/>", roomJID))
	if e := bob.Next(func(s *stanza.Stanza) bool { return s.IsError() }); modtest.ErrorCondition(e) != stanza.Forbidden {
		t.Fatalf("banned join: %s", e.El)
	}
	alice.SendXML(fmt.Sprintf("<iq to='%s' type='get' id='l1'><query xmlns='%s'><item affiliation='outcast'/></query></iq>", roomJID, NSAdmin))
	if r := alice.NextIQ("l1"); !strings.Contains(r.El.String(), "bob@example.com") {
		t.Fatalf("outcast list: %s", r.El)
	}

	// The last owner cannot step down.
	alice.SendXML(fmt.Sprintf("<iq to='%s' type='set' id='o1'><query xmlns='%s'><item jid='alice@example.com' affiliation='none'/></query></iq>", roomJID, NSAdmin))
	if r := alice.NextIQ("o1"); modtest.ErrorCondition(r) != stanza.Conflict {
		t.Fatalf("got %s", r.El)
	}
}

func configure(t *testing.T, c *modtest.Client, id string, fields map[string]string) *stanza.Stanza {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "<iq to='%s' type='set' id='%s'><query xmlns='%s'><x xmlns='jabber:x:data' type='submit'>", roomJID, id, NSOwner)
	fmt.Fprintf(&b, "<field var='FORM_TYPE'><value>%s</value></field>", NSRoomConf)
	for k, v := range fields {
		fmt.Fprintf(&b, "<field var='%s'><value>%s</value></field>", k, v)
	}
	b.WriteString("</x></query></iq>")
	c.SendXML(b.String())
	return c.NextIQ(id)
}

func TestMembersOnlyAndModerated(t *testing.T) {
	f := setup(t, nil)
	alice, bob, carol := f.user("alice"), f.user("bob"), f.user("carol")
	join(t, alice, "Alice", "")
	alice.SendXML(fmt.Sprintf("<iq to='%s' type='get' id='c0'><query xmlns='%s'/></iq>", roomJID, NSOwner))
	if r := alice.NextIQ("c0"); !strings.Contains(r.El.String(), fMembersOnly) {
		t.Fatalf("config form: %s", r.El)
	}
	bob.SendXML(fmt.Sprintf("<iq to='%s' type='get' id='c1'><query xmlns='%s'/></iq>", roomJID, NSOwner))
	if r := bob.NextIQ("c1"); modtest.ErrorCondition(r) != stanza.Forbidden {
		t.Fatalf("non-owner got %s", r.El)
	}
	if r := configure(t, alice, "c2", map[string]string{fMembersOnly: "1", fModerated: "1", fPersistent: "1"}); r.Type != "result" {
		t.Fatalf("configure: %s", r.El)
	}
	if r := configure(t, alice, "c3", map[string]string{"muc#roomconfig_bogus": "1"}); modtest.ErrorCondition(r) != stanza.NotAcceptable {
		t.Fatalf("unknown field: %s", r.El)
	}

	bob.SendXML(fmt.Sprintf("<presence to='%s/Bob'/>", roomJID))
	if e := bob.Next(nil); modtest.ErrorCondition(e) != stanza.RegistrationRequired {
		t.Fatalf("non-member join: %s", e.El)
	}
	for _, who := range []string{"bob", "carol"} {
		alice.SendXML(fmt.Sprintf("<iq to='%s' type='set' id='m-%s'><query xmlns='%s'><item jid='%s@example.com' affiliation='member'/></query></iq>", roomJID, who, NSAdmin, who))
		alice.NextIQ("m-" + who)
	}
	join(t, bob, "Bob", "")
	self := join(t, carol, "Carol", "")
	if item(self).Get("role") != Participant {
		t.Fatalf("member in a moderated roomJID: %s", self.El)
	}
	// Carol is made a visitor and may not speak.
	alice.SendXML(fmt.Sprintf("<iq to='%s' type='set' id='v1'><query xmlns='%s'><item nick='Carol' role='visitor'/></query></iq>", roomJID, NSAdmin))
	alice.NextIQ("v1")
	say(carol, "hush")
	if e := carol.Next(func(s *stanza.Stanza) bool { return s.IsError() }); modtest.ErrorCondition(e) != stanza.Forbidden {
		t.Fatalf("visitor spoke: %s", e.El)
	}
	// Removing Bob's membership removes him from the members-only roomJID.
	alice.SendXML(fmt.Sprintf("<iq to='%s' type='set' id='m-none'><query xmlns='%s'><item jid='bob@example.com' affiliation='none'/></query></iq>", roomJID, NSAdmin))
	alice.NextIQ("m-none")
	if p := bob.Next(presenceFrom("Bob", "unavailable")); !hasStatus(p, "321") {
		t.Fatalf("got %s", p.El)
	}

	// A persistent roomJID outlives its occupants.
	for _, c := range []*modtest.Client{alice, carol} {
		c.Disconnect()
	}
	if f.mod.lookup(jid.MustParse(roomJID)) == nil {
		t.Fatal("the persistent roomJID was removed")
	}
}

func TestSelfPingAndDisco(t *testing.T) {
	f := setup(t, nil)
	alice, bob := f.user("alice"), f.user("bob")
	join(t, alice, "Alice", "")
	alice.SendXML(fmt.Sprintf("<iq to='%s/Alice' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>", roomJID))
	if r := alice.NextIQ("p1"); r.Type != "result" {
		t.Fatalf("self-ping: %s", r.El)
	}
	bob.SendXML(fmt.Sprintf("<iq to='%s/Alice' type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>", roomJID))
	if r := bob.NextIQ("p2"); modtest.ErrorCondition(r) != stanza.NotAcceptable {
		t.Fatalf("ping by a non-occupant: %s", r.El)
	}
	bob.SendXML("<iq to='conference.example.com' type='get' id='d1'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
	if r := bob.NextIQ("d1"); !strings.Contains(r.El.String(), roomJID) {
		t.Fatalf("rooms list: %s", r.El)
	}
	bob.SendXML("<iq to='conference.example.com' type='get' id='d2'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	if r := bob.NextIQ("d2"); !strings.Contains(r.El.String(), "category=\"conference\"") && !strings.Contains(r.El.String(), "category='conference'") {
		t.Fatalf("service info: %s", r.El)
	}
	bob.SendXML(fmt.Sprintf("<iq to='%s' type='get' id='d3'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", roomJID))
	if r := bob.NextIQ("d3"); !strings.Contains(r.El.String(), "muc_semianonymous") || !strings.Contains(r.El.String(), NSMAM) {
		t.Fatalf("roomJID info: %s", r.El)
	}
	items := f.srv.Host.DiscoInfo(module.ToHost).Items
	if len(items) != 1 || items[0].JID.String() != "conference.example.com" {
		t.Fatalf("host items %+v", items)
	}
}

func TestRoomMAM(t *testing.T) {
	f := setup(t, nil)
	alice, bob := f.user("alice"), f.user("bob")
	join(t, alice, "Alice", "")
	for i := range 5 {
		say(alice, fmt.Sprint("a", i))
		alice.Next(body(fmt.Sprint("a", i)))
	}
	query := func(c *modtest.Client, id, set string) (*stanza.Stanza, []string) {
		c.SendXML(fmt.Sprintf("<iq to='%s' type='set' id='%s'><query xmlns='%s' queryid='q-%s'>%s</query></iq>", roomJID, id, NSMAM, id, set))
		var got []string
		for {
			s := c.Next(nil)
			if s.Kind == stanza.KindIQ && s.ID == id {
				return s, got
			}
			res := s.El.Child(NSMAM, "result")
			if res == nil || res.Get("queryid") != "q-"+id {
				continue
			}
			msg := res.Child(NSForward, "forwarded").Child(stanza.NSClient, "message")
			got = append(got, msg.ChildText(stanza.NSClient, "body"))
		}
	}
	r, got := query(alice, "q1", "<set xmlns='http://jabber.org/protocol/rsm'><max>2</max><before/></set>")
	if fmt.Sprint(got) != "[a3 a4]" || r.El.Child(NSMAM, "fin").Get("complete") == "true" {
		t.Fatalf("last page %v: %s", got, r.El)
	}
	first := r.El.Child(NSMAM, "fin").Child("http://jabber.org/protocol/rsm", "set").ChildText("http://jabber.org/protocol/rsm", "first")
	_, got = query(alice, "q2", "<set xmlns='http://jabber.org/protocol/rsm'><max>2</max><before>"+first+"</before></set>")
	if fmt.Sprint(got) != "[a1 a2]" {
		t.Fatalf("page before: %v", got)
	}
	// Bob is not an occupant, but the roomJID is open: he may read it.
	if _, got = query(bob, "q3", ""); len(got) != 5 {
		t.Fatalf("open roomJID archive for a non-occupant: %v", got)
	}
	if r, _ := query(alice, "q4", "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field><field var='flavour'><value>x</value></field></x>"); modtest.ErrorCondition(r) != stanza.FeatureNotImplemented {
		t.Fatalf("unknown field: %s", r.El)
	}

	// The #extended features of a user's archive (core/mamquery) hold for
	// a room's: flipped pages, RSM max 0 as a count, item-not-found for an
	// id the archive does not hold, and the metadata.
	r, got = query(alice, "q5", "<set xmlns='http://jabber.org/protocol/rsm'><max>2</max><before/></set><flip-page/>")
	if fmt.Sprint(got) != "[a4 a3]" {
		t.Fatalf("flipped last page %v: %s", got, r.El)
	}
	r, got = query(alice, "q6", "<set xmlns='http://jabber.org/protocol/rsm'><max>0</max></set>")
	if len(got) != 0 || r.El.Child(NSMAM, "fin").Child("http://jabber.org/protocol/rsm", "set").ChildText("http://jabber.org/protocol/rsm", "count") != "5" {
		t.Fatalf("max 0 gave %v: %s", got, r.El)
	}
	if r, _ := query(alice, "q7", "<set xmlns='http://jabber.org/protocol/rsm'><after>01900000-0000-7000-8000-000000000000</after></set>"); modtest.ErrorCondition(r) != stanza.ItemNotFound {
		t.Fatalf("unknown after id: %s", r.El)
	}
	alice.SendXML(fmt.Sprintf("<iq to='%s' type='get' id='md'><metadata xmlns='%s'/></iq>", roomJID, NSMAM))
	md := alice.NextIQ("md")
	if mde := md.El.Child(NSMAM, "metadata"); mde == nil || mde.Child(NSMAM, "start") == nil || mde.Child(NSMAM, "start").Get("id") == "" {
		t.Fatalf("metadata: %s", md.El)
	}
	bob.SendXML(fmt.Sprintf("<iq to='%s' type='get' id='d4'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", roomJID))
	if r := bob.NextIQ("d4"); !strings.Contains(r.El.String(), "urn:xmpp:mam:2#extended") {
		t.Fatalf("room info without #extended: %s", r.El)
	}
}

func TestDirectoryRooms(t *testing.T) {
	f := setup(t, func(o *Options) {
		o.DirectoryRooms = []DirectoryRoom{{Group: "Sales", Room: "sales"}, {Group: "g-ops", Room: "ops", Name: "Operations"}}
	})
	const sales = "sales@conference.example.com"
	alice, bob, carol := f.user("alice"), f.user("bob"), f.user("carol")
	joinSales := func(c *modtest.Client, nick string) *stanza.Stanza {
		c.SendXML(fmt.Sprintf("<presence to='%s/%s'><x xmlns='%s'/></presence>", sales, nick, NS))
		return c.Next(func(s *stanza.Stanza) bool { return s.Kind == stanza.KindPresence && (s.IsError() || selfPresence(s)) })
	}
	// Before the first snapshot the room exists and admits nobody.
	if e := joinSales(alice, "Alice"); modtest.ErrorCondition(e) != stanza.RegistrationRequired {
		t.Fatalf("join before sync: %s", e.El)
	}
	snap := directory.Snapshot{Groups: map[string]directory.Group{
		"g-sales": {ID: "g-sales", Name: "Sales", Members: []string{"alice@example.com", "bob@example.com"}},
		"g-ops":   {ID: "g-ops", Name: "Ops", Members: []string{"carol@example.com"}},
	}}
	if err := f.mod.UpdateDirectory(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	if p := joinSales(alice, "Alice"); item(p).Get("affiliation") != Member {
		t.Fatalf("alice: %s", p.El)
	}
	joinSales(bob, "Bob")
	if e := joinSales(carol, "Carol"); modtest.ErrorCondition(e) != stanza.RegistrationRequired {
		t.Fatalf("carol is not in Sales: %s", e.El)
	}

	// Bob leaves the group: he is removed from the room.
	snap.Groups["g-sales"] = directory.Group{ID: "g-sales", Name: "Sales", Members: []string{"alice@example.com"}}
	if err := f.mod.UpdateDirectory(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	if p := bob.Next(presenceFrom("Bob", "unavailable")); !hasStatus(p, "321") {
		t.Fatalf("bob got %s", p.El)
	}
	alice.Next(presenceFrom("Bob", "unavailable"))
	if e := joinSales(bob, "Bob"); modtest.ErrorCondition(e) != stanza.RegistrationRequired {
		t.Fatalf("bob rejoined: %s", e.El)
	}

	// The room is persistent: it stays when everyone left.
	alice.Disconnect()
	r := f.mod.lookup(jid.MustParse(sales))
	if r == nil || !r.cfg.Persistent || !r.cfg.MembersOnly || r.cfg.Public {
		t.Fatalf("directory room %+v", r)
	}
	if ops := f.mod.lookup(jid.MustParse("ops@conference.example.com")); ops == nil || ops.cfg.Name != "Operations" || ops.affiliations["carol@example.com"] != Member {
		t.Fatal("the room mapped by group id did not follow it")
	}
}

func TestOptionsValidate(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*Options)
		ok   bool
	}{
		{"defaults", func(*Options) {}, true},
		{"max_history too big", func(o *Options) { o.MaxHistory = 101 }, false},
		{"no occupants", func(o *Options) { o.MaxOccupants = 0 }, false},
		{"page size above max", func(o *Options) { o.PageSize = 300 }, false},
		{"bad domain", func(o *Options) { o.Domain = "a@b" }, false},
		{"no pending invites", func(o *Options) { o.MaxPendingInvites = 0 }, false},
		{"voice requests too often", func(o *Options) { o.VoiceRequestInterval = time.Millisecond }, false},
		{"voice requests too rarely", func(o *Options) { o.VoiceRequestInterval = 25 * time.Hour }, false},
		{"voice requests every second", func(o *Options) { o.VoiceRequestInterval = time.Second }, true},
		{"directory room without group", func(o *Options) { o.DirectoryRooms = []DirectoryRoom{{Room: "x"}} }, false},
		{"directory room mapped twice", func(o *Options) {
			o.DirectoryRooms = []DirectoryRoom{{Group: "a", Room: "x"}, {Group: "b", Room: "x"}}
		}, false},
		{"directory room with a bad name", func(o *Options) { o.DirectoryRooms = []DirectoryRoom{{Group: "a", Room: "a b@"}} }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions()
			tc.mod(&o)
			if err := o.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v", err)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	f := setup(t, func(o *Options) { o.MaxOccupants, o.MaxRooms, o.MaxNickBytes = 2, 1, 8 })
	alice, bob, carol := f.user("alice"), f.user("bob"), f.user("carol")
	join(t, alice, "Alice", "")
	join(t, bob, "Bob", "")
	carol.SendXML(fmt.Sprintf("<presence to='%s/Carol'/>", roomJID))
	if e := carol.Next(nil); modtest.ErrorCondition(e) != stanza.ServiceUnavailable {
		t.Fatalf("max_occupants: %s", e.El)
	}
	carol.SendXML("<presence to='other@conference.example.com/Carol'/>")
	if e := carol.Next(nil); modtest.ErrorCondition(e) != stanza.ResourceConstraint {
		t.Fatalf("max_rooms: %s", e.El)
	}
	carol.SendXML(fmt.Sprintf("<presence to='%s/ALongNickname'/>", roomJID))
	if e := carol.Next(nil); modtest.ErrorCondition(e) != stanza.JIDMalformed {
		t.Fatalf("max_nick_bytes: %s", e.El)
	}
}

func TestMediatedInvitation(t *testing.T) {
	f := setup(t, nil)
	alice, bob, carol := f.user("alice"), f.user("bob"), f.user("carol")
	join(t, alice, "Alice", "")
	if r := configure(t, alice, "c1", map[string]string{fMembersOnly: "1"}); r.Type != "result" {
		t.Fatalf("configure: %s", r.El)
	}
	invite := func(from *modtest.Client, to string) {
		from.SendXML(fmt.Sprintf("<message to='%s'><x xmlns='%s'><invite to='%s'><reason>join us</reason></invite></x></message>", roomJID, NSUser, to))
	}
	// Invitations go to the bare JID: bob must be available.
	avail := modtest.Parse(t, "<presence/>")
	avail.SetFrom(bob.JID)
	f.srv.Host.SetPresence(context.Background(), bob.Res, avail)
	invite(alice, "bob@example.com")
	m := bob.Next(func(s *stanza.Stanza) bool { return s.Kind == stanza.KindMessage })
	inv := m.El.Child(NSUser, "x").Child(NSUser, "invite")
	if m.From.String() != roomJID || inv.Get("from") != "alice@example.com" || inv.ChildText(NSUser, "reason") != "join us" {
		t.Fatalf("invitation: %s", m.El)
	}
	// The invitee became a member of the members-only room.
	if p := join(t, bob, "Bob", ""); item(p).Get("affiliation") != Member {
		t.Fatalf("bob: %s", p.El)
	}
	// A member may not invite to a members-only room.
	invite(bob, "carol@example.com")
	if e := bob.Next(func(s *stanza.Stanza) bool { return s.IsError() }); modtest.ErrorCondition(e) != stanza.Forbidden {
		t.Fatalf("member's invitation: %s", e.El)
	}
	// The policy decides each invitation.
	f.pol.deny["alice@example.com"] = true
	invite(alice, "carol@example.com")
	if e := alice.Next(func(s *stanza.Stanza) bool { return s.IsError() }); modtest.ErrorCondition(e) != stanza.PolicyViolation {
		t.Fatalf("refused invitation: %s", e.El)
	}
	carol.Nothing(50*time.Millisecond, nil)
}

func TestPersistentRoomSurvivesRestart(t *testing.T) {
	f := setup(t, nil)
	alice := f.user("alice")
	f.srv.Account("bob")
	self := join(t, alice, "Alice", "")
	occ := self.El.Child(NSOccupant, "occupant-id").Get("id")
	if r := configure(t, alice, "c1", map[string]string{fPersistent: "1", fName: "Plans", fMembersOnly: "1",
		fPasswordOn: "1", fPassword: "s3cret"}); r.Type != "result" {
		t.Fatalf("configure: %s", r.El)
	}
	alice.SendXML(fmt.Sprintf("<iq to='%s' type='set' id='b1'><query xmlns='%s'><item jid='bob@example.com' affiliation='outcast'/></query></iq>", roomJID, NSAdmin))
	alice.NextIQ("b1")
	alice.SendXML(fmt.Sprintf("<message to='%s' type='groupchat'><subject>Q3</subject></message>", roomJID))
	alice.Next(isSubject)

	st := f.srv.Store.(interface {
		MUCRooms(context.Context, string) ([]storage.MUCRoom, error)
	})
	recs, err := st.MUCRooms(context.Background(), "conference.example.com")
	if err != nil || len(recs) != 1 || !strings.HasPrefix(string(recs[0].State), "sealed:"+roomJID+":") {
		t.Fatalf("stored rooms %v, %v: want one, sealed for the room", recs, err)
	}

	// A second server on the same store: the room is back.
	info, _ := module.Lookup(ID)
	m2 := info.New().(*Module)
	m2.SetDecider(&decider{deny: map[string]bool{}})
	srv2 := modtest.New(t, modtest.Options{Store: f.srv.Store}, router.Enabled{Info: info, Module: m2})
	r := m2.lookup(jid.MustParse(roomJID))
	if r == nil {
		t.Fatal("the persistent room was not restored")
	}
	if r.cfg.Name != "Plans" || !r.cfg.MembersOnly || r.cfg.Password != "s3cret" || r.subject != "Q3" ||
		r.affiliations["bob@example.com"] != Outcast || r.affiliations["alice@example.com"] != Owner {
		t.Fatalf("restored room %+v", r)
	}
	alice2 := srv2.Connect("alice@example.com/other")
	self = join(t, alice2, "Alice", "")
	if self.El.Child(NSOccupant, "occupant-id").Get("id") != occ {
		t.Fatal("the occupant id changed across the restart")
	}
	// Turning persistence off removes the stored room.
	if r := configure(t, alice2, "c2", map[string]string{fPersistent: "0"}); r.Type != "result" {
		t.Fatalf("configure: %s", r.El)
	}
	if recs, _ := st.MUCRooms(context.Background(), "conference.example.com"); len(recs) != 0 {
		t.Fatalf("a temporary room is still stored: %v", recs)
	}
}

// history joins the roomJID as c with the given <history/> and returns the
// history messages it gets before the subject.
func history(t *testing.T, c *modtest.Client, nick, req string) []*stanza.Stanza {
	t.Helper()
	c.SendXML(fmt.Sprintf("<presence to='%s/%s'><x xmlns='%s'>%s</x></presence>", roomJID, nick, NS, req))
	c.Next(selfPresence)
	var got []*stanza.Stanza
	for {
		s := c.Next(func(s *stanza.Stanza) bool { return s.Kind == stanza.KindMessage })
		if isSubject(s) {
			return got
		}
		got = append(got, s)
	}
}

func bodies(list []*stanza.Stanza) []string {
	var out []string
	for _, s := range list {
		out = append(out, s.El.ChildText(stanza.NSClient, "body"))
	}
	return out
}

func TestHistoryMaxCharsAndRoomLength(t *testing.T) {
	f := setup(t, func(o *Options) { o.MaxHistory = 5 })
	alice := f.user("alice")
	join(t, alice, "Alice", "")
	for i := range 5 {
		say(alice, fmt.Sprint("h", i))
		alice.Next(body(fmt.Sprint("h", i)))
	}
	all := history(t, f.user("u0"), "u0", "")
	if fmt.Sprint(bodies(all)) != "[h0 h1 h2 h3 h4]" {
		t.Fatalf("history %v", bodies(all))
	}
	size := func(s *stanza.Stanza) int { return len(s.El.AppendXML(nil, "")) }
	// maxchars counts whole stanzas, the newest first. The stanzas differ
	// only in their to, which has the same length for u1 and u0.
	two := size(all[3]) + size(all[4])
	cases := []struct {
		req  string
		want string
	}{
		{fmt.Sprintf("<history maxchars='%d'/>", two), "[h3 h4]"},
		{fmt.Sprintf("<history maxchars='%d'/>", two-1), "[h4]"},
		{"<history maxchars='1'/>", "[]"},
		{"<history maxchars='100000' maxstanzas='1'/>", "[h4]"},
	}
	for i, tc := range cases {
		nick := fmt.Sprint("u", i+1)
		if got := bodies(history(t, f.user(nick), nick, tc.req)); fmt.Sprint(got) != tc.want {
			t.Errorf("%s: history %v, want %s", tc.req, got, tc.want)
		}
	}
	// The room's history length (muc#maxhistoryfetch) caps what is sent.
	if r := configure(t, alice, "c1", map[string]string{fHistory: "2"}); r.Type != "result" {
		t.Fatalf("configure: %s", r.El)
	}
	if got := bodies(history(t, f.user("u9"), "u9", "<history maxstanzas='10'/>")); fmt.Sprint(got) != "[h3 h4]" {
		t.Fatalf("room history length 2: %v", got)
	}
	if r := configure(t, alice, "c2", map[string]string{fHistory: "101"}); r.Type != "error" {
		t.Fatalf("a history length above 100 was accepted: %s", r.El)
	}
}

// TestHistorySurvivesRestart: a persistent room's history on join comes
// from the room's archive after the module starts again on the same store,
// with the stanza-ids, occupant-ids and times occupants first saw.
func TestHistorySurvivesRestart(t *testing.T) {
	f := setup(t, func(o *Options) { o.MaxHistory = 3 })
	alice := f.user("alice")
	join(t, alice, "Alice", "")
	if r := configure(t, alice, "c1", map[string]string{fPersistent: "1"}); r.Type != "result" {
		t.Fatalf("configure: %s", r.El)
	}
	var before []*stanza.Stanza
	for i := range 5 {
		say(alice, fmt.Sprint("h", i))
		before = append(before, alice.Next(body(fmt.Sprint("h", i))))
	}
	first := history(t, f.user("bob"), "Bob", "")
	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.srv.Router.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}

	info, _ := module.Lookup(ID)
	m2 := info.New().(*Module)
	m2.opts.MaxHistory = 3
	m2.SetDecider(&decider{deny: map[string]bool{}})
	srv2 := modtest.New(t, modtest.Options{Store: f.srv.Store, Archive: f.arch}, router.Enabled{Info: info, Module: m2})
	carol := srv2.Connect("carol@example.com/res")
	srv2.Account("carol")
	got := history(t, carol, "Carol", "")
	if fmt.Sprint(bodies(got)) != "[h2 h3 h4]" {
		t.Fatalf("history after the restart %v, want [h2 h3 h4]", bodies(got))
	}
	for i, s := range got {
		live, pre := before[i+2], first[i]
		for _, n := range []struct{ space, local, attr string }{{NSStanzaID, "stanza-id", "id"}, {NSOccupant, "occupant-id", "id"}} {
			if g, w := s.El.Child(n.space, n.local).Get(n.attr), live.El.Child(n.space, n.local).Get(n.attr); g != w || g == "" {
				t.Fatalf("%s %s after the restart is %q, live it was %q", bodies(got)[i], n.local, g, w)
			}
		}
		if g, w := s.El.Child(NSDelay, "delay").Get("stamp"), pre.El.Child(NSDelay, "delay").Get("stamp"); g != w {
			t.Fatalf("%s delay stamp after the restart %s, before %s", bodies(got)[i], g, w)
		}
		if s.From.String() != roomJID+"/Alice" {
			t.Fatalf("history from %s", s.From)
		}
	}
	// What is said after the restart follows the archived history.
	say(carol, "h5")
	carol.Next(body("h5"))
	srv2.Account("dave")
	if got := bodies(history(t, srv2.Connect("dave@example.com/res"), "Dave", "")); fmt.Sprint(got) != "[h3 h4 h5]" {
		t.Fatalf("history %v, want [h3 h4 h5]", got)
	}
}

func TestDeclineInvitation(t *testing.T) {
	f := setup(t, func(o *Options) { o.MaxPendingInvites = 1 })
	alice, bob, carol := f.user("alice"), f.user("bob"), f.user("carol")
	join(t, alice, "Alice", "")
	for _, c := range []*modtest.Client{alice, bob, carol} {
		avail := modtest.Parse(t, "<presence/>")
		avail.SetFrom(c.JID)
		f.srv.Host.SetPresence(context.Background(), c.Res, avail)
	}
	alice.SendXML(fmt.Sprintf("<message to='%s'><x xmlns='%s'><invite to='bob@example.com'/></x></message>", roomJID, NSUser))
	bob.Next(func(s *stanza.Stanza) bool { return s.Kind == stanza.KindMessage && s.El.Child(NSUser, "x") != nil })
	decline := func(from *modtest.Client, to string) {
		from.SendXML(fmt.Sprintf("<message to='%s'><x xmlns='%s'><decline to='%s'><reason>busy</reason></decline></x></message>", roomJID, NSUser, to))
	}
	isDecline := func(s *stanza.Stanza) bool {
		x := s.El.Child(NSUser, "x")
		return s.Kind == stanza.KindMessage && !s.IsError() && x != nil && x.Child(NSUser, "decline") != nil
	}
	decline(bob, "alice@example.com")
	m := alice.Next(isDecline)
	d := m.El.Child(NSUser, "x").Child(NSUser, "decline")
	if m.From.String() != roomJID || d.Get("from") != "bob@example.com" || d.ChildText(NSUser, "reason") != "busy" {
		t.Fatalf("decline: %s", m.El)
	}
	// Declined once; a second decline, or one to someone who invited
	// nobody, is not relayed.
	decline(bob, "alice@example.com")
	if e := bob.Next(func(s *stanza.Stanza) bool { return s.IsError() }); modtest.ErrorCondition(e) != stanza.ItemNotFound {
		t.Fatalf("second decline: %s", e.El)
	}
	decline(carol, "bob@example.com")
	if e := carol.Next(func(s *stanza.Stanza) bool { return s.IsError() }); modtest.ErrorCondition(e) != stanza.ItemNotFound {
		t.Fatalf("decline without an invitation: %s", e.El)
	}
	// max_pending_invites is 1: inviting carol makes the room forget the
	// invitation of dave.
	dave := f.user("dave")
	alice.SendXML(fmt.Sprintf("<message to='%s'><x xmlns='%s'><invite to='dave@example.com'/></x></message>", roomJID, NSUser))
	alice.SendXML(fmt.Sprintf("<message to='%s'><x xmlns='%s'><invite to='carol@example.com'/></x></message>", roomJID, NSUser))
	carol.Next(func(s *stanza.Stanza) bool {
		x := s.El.Child(NSUser, "x")
		return x != nil && x.Child(NSUser, "invite") != nil
	})
	decline(carol, "alice@example.com")
	alice.Next(isDecline)
	decline(dave, "alice@example.com")
	if e := dave.Next(func(s *stanza.Stanza) bool { return s.IsError() }); modtest.ErrorCondition(e) != stanza.ItemNotFound {
		t.Fatalf("decline of a forgotten invitation: %s", e.El)
	}
	alice.Nothing(50*time.Millisecond, isDecline)
	bob.Nothing(10*time.Millisecond, isDecline)
}

func TestPendingInvitesAreBounded(t *testing.T) {
	r := newRoom(jid.MustParse(roomJID))
	const limit = 30
	for i := range limit + 50 {
		r.noteInvite(fmt.Sprintf("u%d@example.com", i), "alice@example.com", limit)
	}
	for i := range 20 {
		r.noteInvite("bob@example.com", fmt.Sprintf("i%d@example.com", i), limit)
	}
	if len(r.invited) > limit || len(r.invited["bob@example.com"]) != maxInviters {
		t.Fatalf("%d invitees, %d inviters of bob", len(r.invited), len(r.invited["bob@example.com"]))
	}
}

// TestPrivateMessageUnderPolicy: a private message through a room is a
// message between two people, decided by the contact policy with their
// real JIDs, so a room is no way around a policy that keeps them apart.
func TestPrivateMessageUnderPolicy(t *testing.T) {
	f := setup(t, nil)
	alice, bob := f.user("alice"), f.user("bob")
	join(t, alice, "Alice", "")
	join(t, bob, "Bob", "")
	for len(f.pol.asked) > 0 {
		<-f.pol.asked
	}
	alice.SendXML(fmt.Sprintf("<message to='%s/Bob' type='chat' id='pm1'><body>psst</body></message>", roomJID))
	if got := bob.Next(func(s *stanza.Stanza) bool { return s.ID == "pm1" }); got.From.Resource() != "Alice" {
		t.Fatalf("bob got %s", got.El)
	}
	select {
	case in := <-f.pol.asked:
		if in.Action != gate.ActionMessage || in.From.JID != "alice@example.com" || in.To.JID != "bob@example.com" || !in.From.Local || !in.To.Local {
			t.Errorf("asked %+v, want message from alice to bob, both local", in)
		}
	default:
		t.Error("the private message asked no contact question")
	}

	f.pol.deny["alice@example.com"] = true
	alice.SendXML(fmt.Sprintf("<message to='%s/Bob' type='chat' id='pm2'><body>psst</body></message>", roomJID))
	if e := alice.Next(func(s *stanza.Stanza) bool { return s.ID == "pm2" }); modtest.ErrorCondition(e) != stanza.PolicyViolation {
		t.Fatalf("refused private message answered %s", e.El)
	}
	bob.Nothing(50*time.Millisecond, func(s *stanza.Stanza) bool { return s.ID == "pm2" })
}

package muc

import (
	"fmt"
	"testing"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/stanza"
)

func statusMessage(code string) func(*stanza.Stanza) bool {
	return func(s *stanza.Stanza) bool {
		return s.Kind == stanza.KindMessage && s.El.Child(NSUser, "x") != nil && hasStatus(s, code)
	}
}

// TestConfigChangeNotices: XEP-0045 §10.2.1: a room that becomes
// members-only removes non-members (322); whois changes are announced (172,
// 173), other changes with 104; a room that is no longer moderated has no
// visitors.
func TestConfigChangeNotices(t *testing.T) {
	f := setup(t, nil)
	alice, bob, carol := f.user("alice"), f.user("bob"), f.user("carol")
	if self := join(t, alice, "Alice", ""); !hasStatus(self, "170") {
		t.Fatalf("a room with an archive does not say so (170): %s", self.El)
	}
	configure(t, alice, "c0", map[string]string{fModerated: "1"})
	alice.Next(statusMessage("104"))
	alice.SendXML(fmt.Sprintf("<iq to='%s' type='set' id='m1'><query xmlns='%s'><item jid='bob@example.com' affiliation='member'/></query></iq>", roomJID, NSAdmin))
	alice.NextIQ("m1")
	join(t, bob, "Bob", "")
	if self := join(t, carol, "Carol", ""); item(self).Get("role") != Visitor {
		t.Fatalf("carol: %s", self.El)
	}
	configure(t, alice, "c1", map[string]string{fModerated: "0"})
	if p := carol.Next(presenceFrom("Carol", "")); item(p).Get("role") != Participant {
		t.Fatalf("carol in an unmoderated room: %s", p.El)
	}
	configure(t, alice, "c2", map[string]string{fWhoIs: "anyone"})
	bob.Next(statusMessage("172"))
	configure(t, alice, "c3", map[string]string{fWhoIs: "moderators"})
	bob.Next(statusMessage("173"))
	configure(t, alice, "c4", map[string]string{fMembersOnly: "1"})
	if p := carol.Next(presenceFrom("Carol", "unavailable")); !hasStatus(p, "322") {
		t.Fatalf("non-member in a room turned members-only: %s", p.El)
	}
	if p := bob.Next(presenceFrom("Carol", "unavailable")); !hasStatus(p, "322") {
		t.Fatalf("bob sees %s", p.El)
	}
	bob.Nothing(50e6, presenceFrom("Bob", "unavailable"))
	if f.mod.lookup(roomBare()).occupants["Carol"] != nil {
		t.Fatal("carol is still in the room")
	}
}

// TestAffiliationRules: who may see and change which list (§9, §10).
func TestAffiliationRules(t *testing.T) {
	f := setup(t, nil)
	alice, bob, carol := f.user("alice"), f.user("bob"), f.user("carol")
	join(t, alice, "Alice", "")
	set := func(c *modtest.Client, id, item string) *stanza.Stanza {
		c.SendXML(fmt.Sprintf("<iq to='%s' type='set' id='%s'><query xmlns='%s'>%s</query></iq>", roomJID, id, NSAdmin, item))
		return c.NextIQ(id)
	}
	get := func(c *modtest.Client, id, item string) *stanza.Stanza {
		c.SendXML(fmt.Sprintf("<iq to='%s' type='get' id='%s'><query xmlns='%s'>%s</query></iq>", roomJID, id, NSAdmin, item))
		return c.NextIQ(id)
	}
	if r := set(alice, "a1", "<item jid='bob@example.com' affiliation='admin'/>"); r.Type != "result" {
		t.Fatalf("make bob admin: %s", r.El)
	}
	set(alice, "a2", "<item jid='carol@example.com' affiliation='member'/>")
	cases := []struct {
		name string
		do   func() *stanza.Stanza
		want string
	}{
		{"admin grants admin", func() *stanza.Stanza { return set(bob, "b1", "<item jid='carol@example.com' affiliation='admin'/>") }, stanza.Forbidden},
		{"admin bans the owner", func() *stanza.Stanza { return set(bob, "b2", "<item jid='alice@example.com' affiliation='outcast'/>") }, stanza.NotAllowed},
		{"admin bans himself", func() *stanza.Stanza { return set(bob, "b3", "<item jid='bob@example.com' affiliation='outcast'/>") }, stanza.Conflict},
		{"last owner steps down", func() *stanza.Stanza { return set(alice, "b4", "<item jid='alice@example.com' affiliation='member'/>") }, stanza.Conflict},
		{"admin reads the owner list", func() *stanza.Stanza { return get(bob, "g1", "<item affiliation='owner'/>") }, stanza.Forbidden},
		{"member reads the member list", func() *stanza.Stanza { return get(carol, "g2", "<item affiliation='member'/>") }, stanza.Forbidden},
		{"member reads the moderator list", func() *stanza.Stanza { return get(carol, "g3", "<item role='moderator'/>") }, stanza.Forbidden},
		{"admin reads the member list", func() *stanza.Stanza { return get(bob, "g4", "<item affiliation='member'/>") }, ""},
		{"owner reads the admin list", func() *stanza.Stanza { return get(alice, "g5", "<item affiliation='admin'/>") }, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.do()
			if got := modtest.ErrorCondition(r); got != tc.want || (tc.want == "" && r.Type != "result") {
				t.Fatalf("got %s, want %q", r.El, tc.want)
			}
		})
	}
	// A disco request to an occupant from outside the room is bad-request
	// (§6.6).
	carol.SendXML(fmt.Sprintf("<iq to='%s/Alice' type='get' id='d1'><query xmlns='%s'/></iq>", roomJID, NSDiscoInfo))
	if r := carol.NextIQ("d1"); modtest.ErrorCondition(r) != stanza.BadRequest {
		t.Fatalf("non-occupant's disco to an occupant: %s", r.El)
	}
}

func roomBare() jid.JID { return jid.MustParse(roomJID) }

// TestRoomLocking: XEP-0045 §10.1: a new room admits nobody but its owner
// until the owner configures it or accepts the default (instant room); a
// cancelled initial configuration, or the owner leaving first, destroys
// it. lock_new_rooms false opens new rooms at once.
func TestRoomLocking(t *testing.T) {
	f := setup(t, nil)
	alice, bob := f.user("alice"), f.user("bob")
	create := func() {
		t.Helper()
		alice.SendXML(fmt.Sprintf("<presence to='%s/Alice'><x xmlns='%s'/></presence>", roomJID, NS))
		if self := alice.Next(selfPresence); !hasStatus(self, "201") {
			t.Fatalf("create: %s", self.El)
		}
		alice.Next(isSubject)
	}
	bobJoins := func() *stanza.Stanza {
		t.Helper()
		bob.SendXML(fmt.Sprintf("<presence to='%s/Bob'><x xmlns='%s'/></presence>", roomJID, NS))
		return bob.Next(func(s *stanza.Stanza) bool { return s.Kind == stanza.KindPresence && s.From.Resource() == "Bob" })
	}
	create()
	if e := bobJoins(); modtest.ErrorCondition(e) != stanza.ItemNotFound {
		t.Fatalf("join of a locked room: %s", e.El)
	}
	// Cancelling the initial configuration destroys the room.
	alice.SendXML(fmt.Sprintf("<iq to='%s' type='set' id='c0'><query xmlns='%s'><x xmlns='jabber:x:data' type='cancel'/></query></iq>", roomJID, NSOwner))
	alice.Next(destroyedPresence)
	if r := alice.NextIQ("c0"); r.Type != "result" || f.mod.lookup(roomBare()) != nil {
		t.Fatalf("cancel: %s", r.El)
	}
	// The owner leaving first destroys it too.
	create()
	alice.SendXML(fmt.Sprintf("<presence to='%s/Alice' type='unavailable'/>", roomJID))
	alice.Next(destroyedPresence)
	if f.mod.lookup(roomBare()) != nil {
		t.Fatal("the locked room outlived its owner")
	}
	// A configuration unlocks it.
	create()
	if r := configure(t, alice, "c1", map[string]string{fName: "Plans"}); r.Type != "result" {
		t.Fatalf("configure: %s", r.El)
	}
	if p := bobJoins(); p.Type != "" || !hasStatus(p, "110") {
		t.Fatalf("join after configuration: %s", p.El)
	}

	g := setup(t, func(o *Options) { o.LockNewRooms = false })
	carol, dave := g.user("carol"), g.user("dave")
	carol.SendXML(fmt.Sprintf("<presence to='%s/Carol'><x xmlns='%s'/></presence>", roomJID, NS))
	carol.Next(isSubject)
	dave.SendXML(fmt.Sprintf("<presence to='%s/Dave'><x xmlns='%s'/></presence>", roomJID, NS))
	if self := dave.Next(selfPresence); self.Type != "" {
		t.Fatalf("join of an unlocked new room: %s", self.El)
	}
}

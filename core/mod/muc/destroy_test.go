package muc

import (
	"context"
	"fmt"
	"testing"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

// mamBodies queries the room's archive as c and returns the bodies.
func mamBodies(t *testing.T, c *modtest.Client, id string) (*stanza.Stanza, []string) {
	t.Helper()
	c.SendXML(fmt.Sprintf("<iq to='%s' type='set' id='%s'><query xmlns='%s' queryid='q-%s'/></iq>", roomJID, id, NSMAM, id))
	var got []string
	for {
		s := c.Next(nil)
		if s.Kind == stanza.KindIQ && s.ID == id {
			return s, got
		}
		if res := s.El.Child(NSMAM, "result"); res != nil && res.Get("queryid") == "q-"+id {
			msg := res.Child(NSForward, "forwarded").Child(stanza.NSClient, "message")
			got = append(got, msg.ChildText(stanza.NSClient, "body"))
		}
	}
}

func destroyedPresence(s *stanza.Stanza) bool {
	x := s.El.Child(NSUser, "x")
	return s.Kind == stanza.KindPresence && s.Type == "unavailable" && x != nil && x.Child(NSUser, "destroy") != nil
}

func TestDestroyRoom(t *testing.T) {
	f := setup(t, nil)
	alice, bob := f.user("alice"), f.user("bob")
	join(t, alice, "Alice", "")
	if r := configure(t, alice, "c1", map[string]string{fPersistent: "1"}); r.Type != "result" {
		t.Fatalf("configure: %s", r.El)
	}
	alice.SendXML(fmt.Sprintf("<iq to='%s' type='set' id='a1'><query xmlns='%s'><item jid='bob@example.com' affiliation='admin'/></query></iq>", roomJID, NSAdmin))
	if r := alice.NextIQ("a1"); r.Type != "result" {
		t.Fatalf("admin: %s", r.El)
	}
	join(t, bob, "Bob", "")
	say(alice, "before")
	bob.Next(body("before"))
	st := f.srv.Store.(storage.MUCRooms)
	if recs, _ := st.MUCRooms(context.Background(), "conference.example.com"); len(recs) != 1 {
		t.Fatalf("stored rooms %v: want the persistent room", recs)
	}

	// An admin is not an owner: forbidden, and nothing changes.
	bob.SendXML(fmt.Sprintf("<iq to='%s' type='set' id='d0'><query xmlns='%s'><destroy/></query></iq>", roomJID, NSOwner))
	if r := bob.NextIQ("d0"); modtest.ErrorCondition(r) != stanza.Forbidden {
		t.Fatalf("destroy by an admin: %s", r.El)
	}
	if f.mod.lookup(jid.MustParse(roomJID)) == nil {
		t.Fatal("a refused destroy removed the room")
	}
	alice.SendXML(fmt.Sprintf("<iq to='%s' type='set' id='d1'><query xmlns='%s'><destroy jid='new@conference.example.com'>"+
		"<password>pw</password><reason>Moving on</reason></destroy></query></iq>", roomJID, NSOwner))
	for _, c := range []struct {
		client *modtest.Client
		nick   string
	}{{alice, "Alice"}, {bob, "Bob"}} {
		p := c.client.Next(destroyedPresence)
		x := p.El.Child(NSUser, "x")
		d, it := x.Child(NSUser, "destroy"), x.Child(NSUser, "item")
		if p.From.String() != roomJID+"/"+c.nick || d.Get("jid") != "new@conference.example.com" ||
			d.ChildText(NSUser, "reason") != "Moving on" || d.ChildText(NSUser, "password") != "pw" ||
			it.Get("role") != None || it.Get("affiliation") != None {
			t.Fatalf("%s got %s", c.nick, p.El)
		}
	}
	if r := alice.NextIQ("d1"); r.Type != "result" {
		t.Fatalf("destroy: %s", r.El)
	}
	// Each occupant gets its own presence only, not the others'.
	bob.Nothing(50e6, presenceFrom("Alice", "unavailable"))
	if f.mod.lookup(jid.MustParse(roomJID)) != nil {
		t.Fatal("the destroyed room is still there")
	}
	if recs, _ := st.MUCRooms(context.Background(), "conference.example.com"); len(recs) != 0 {
		t.Fatalf("the destroyed room is still stored: %v", recs)
	}
	// The room's archive stays (under its retention) ...
	page, err := f.arch.Query(context.Background(), module.ArchiveQuery{Owner: roomJID, Max: 10})
	if err != nil || len(page.Messages) != 1 {
		t.Fatalf("archive of the destroyed room: %v, %v", page.Messages, err)
	}
	// ... but a new room at the address starts anew: bob creates it,
	// owns it, and neither history nor its archive shows the old room's.
	bob.SendXML(fmt.Sprintf("<presence to='%s/Bob'><x xmlns='%s'/></presence>", roomJID, NS))
	self := bob.Next(selfPresence)
	if !hasStatus(self, "201") || item(self).Get("affiliation") != Owner {
		t.Fatalf("join after destroy: %s", self.El)
	}
	bob.Next(isSubject)
	bob.Nothing(50e6, body("before"))
	if _, got := mamBodies(t, bob, "q1"); len(got) != 0 {
		t.Fatalf("the new room shows the destroyed room's archive: %v", got)
	}
	say(bob, "after")
	bob.Next(body("after"))
	if _, got := mamBodies(t, bob, "q2"); fmt.Sprint(got) != "[after]" {
		t.Fatalf("new room's archive: %v", got)
	}
	// Destroying a room that is not there is item-not-found.
	alice.SendXML(fmt.Sprintf("<iq to='gone@conference.example.com' type='set' id='d2'><query xmlns='%s'><destroy/></query></iq>", NSOwner))
	if r := alice.NextIQ("d2"); modtest.ErrorCondition(r) != stanza.ItemNotFound {
		t.Fatalf("destroy of no room: %s", r.El)
	}
}

// TestDestroyedRoomStaysGoneAfterRestart: a second server on the same
// store does not bring a destroyed persistent room back, and the created
// time of a stored room survives, so a restored room still hides the
// archive of an earlier room at its address.
func TestDestroyedRoomStaysGoneAfterRestart(t *testing.T) {
	f := setup(t, nil)
	alice := f.user("alice")
	join(t, alice, "Alice", "")
	configure(t, alice, "c1", map[string]string{fPersistent: "1"})
	created := f.mod.lookup(jid.MustParse(roomJID)).created
	if created.IsZero() {
		t.Fatal("a new room has no creation time")
	}
	restart := func() *Module {
		info, _ := module.Lookup(ID)
		m := info.New().(*Module)
		m.SetDecider(&decider{deny: map[string]bool{}})
		modtest.New(t, modtest.Options{Store: f.srv.Store}, router.Enabled{Info: info, Module: m})
		return m
	}
	if r := restart().lookup(jid.MustParse(roomJID)); r == nil || !r.created.Equal(created) {
		t.Fatalf("restored room %+v: want created %v", r, created)
	}
	alice.SendXML(fmt.Sprintf("<iq to='%s' type='set' id='d1'><query xmlns='%s'><destroy/></query></iq>", roomJID, NSOwner))
	p := alice.Next(destroyedPresence)
	if d := p.El.Child(NSUser, "x").Child(NSUser, "destroy"); d.Get("jid") != "" || len(d.Nodes) != 0 {
		t.Fatalf("destroy without venue or reason: %s", p.El)
	}
	if r := alice.NextIQ("d1"); r.Type != "result" {
		t.Fatalf("destroy: %s", r.El)
	}
	if r := restart().lookup(jid.MustParse(roomJID)); r != nil {
		t.Fatal("the destroyed room came back after a restart")
	}
}

// TestStalePersistAfterDestroy: a write of a room's state that was under
// way when the room was destroyed (persist of the old room object) does
// not store it again, and once a new room holds the address, the old
// object's writes do not touch the new room's record.
func TestStalePersistAfterDestroy(t *testing.T) {
	f := setup(t, nil)
	alice := f.user("alice")
	join(t, alice, "Alice", "")
	configure(t, alice, "c1", map[string]string{fPersistent: "1"})
	old := f.mod.lookup(jid.MustParse(roomJID))
	st := f.srv.Store.(storage.MUCRooms)
	stored := func() bool {
		t.Helper()
		rooms, err := st.MUCRooms(context.Background(), f.mod.service.String())
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rooms {
			if r.JID == roomJID {
				return true
			}
		}
		return false
	}
	if !stored() {
		t.Fatal("the persistent room is not stored")
	}
	alice.SendXML(fmt.Sprintf("<iq to='%s' type='set' id='d1'><query xmlns='%s'><destroy/></query></iq>", roomJID, NSOwner))
	alice.Next(destroyedPresence)
	if r := alice.NextIQ("d1"); r.Type != "result" {
		t.Fatalf("destroy: %s", r.El)
	}
	f.mod.persist(context.Background(), old)
	if stored() {
		t.Fatal("a late write stored the destroyed room again")
	}
	// A new persistent room at the address; the old object's late
	// writes leave its record alone.
	join(t, alice, "Alice", "")
	configure(t, alice, "c2", map[string]string{fPersistent: "1"})
	if f.mod.lookup(jid.MustParse(roomJID)) == old || !stored() {
		t.Fatal("the new room is not a new, stored room")
	}
	old.mu.Lock()
	old.cfg.Persistent = false
	old.mu.Unlock()
	f.mod.persist(context.Background(), old)
	if !stored() {
		t.Fatal("the destroyed room's late write deleted the new room's record")
	}
}

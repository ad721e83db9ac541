package muc

import (
	"fmt"
	"strings"
	"testing"

	"kontor.im/kontor/core/dataform"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/stanza"
)

func registerForm(id, nick string) string {
	return fmt.Sprintf("<iq to='%s' type='set' id='%s'><query xmlns='%s'><x xmlns='jabber:x:data' type='submit'>"+
		"<field var='FORM_TYPE'><value>%s</value></field><field var='%s'><value>%s</value></field></x></query></iq>",
		roomJID, id, NSRegister, NSRegisterForm, fRegisterNick, nick)
}

func reservedNick(t *testing.T, c *modtest.Client, id string) string {
	t.Helper()
	c.SendXML(fmt.Sprintf("<iq to='%s' type='get' id='%s'><query xmlns='%s' node='x-roomuser-item'/></iq>", roomJID, id, NSDiscoInfo))
	r := c.NextIQ(id)
	q := r.El.Child(NSDiscoInfo, "query")
	if r.Type != "result" || q == nil || q.Get("node") != nodeRoomUser {
		t.Fatalf("reserved nick query: %s", r.El)
	}
	if idt := q.Child(NSDiscoInfo, "identity"); idt != nil {
		return idt.Get("name")
	}
	return ""
}

func TestRegistration(t *testing.T) {
	f := setup(t, nil)
	alice, bob, carol := f.user("alice"), f.user("bob"), f.user("carol")
	join(t, alice, "Alice", "")
	// Registration is off until the owner allows it.
	bob.SendXML(fmt.Sprintf("<iq to='%s' type='get' id='g0'><query xmlns='%s'/></iq>", roomJID, NSRegister))
	if r := bob.NextIQ("g0"); modtest.ErrorCondition(r) != stanza.NotAllowed {
		t.Fatalf("registration in a room that does not allow it: %s", r.El)
	}
	bob.SendXML(fmt.Sprintf("<iq to='nope@conference.example.com' type='get' id='g1'><query xmlns='%s'/></iq>", NSRegister))
	if r := bob.NextIQ("g1"); modtest.ErrorCondition(r) != stanza.ItemNotFound {
		t.Fatalf("registration with no room: %s", r.El)
	}
	if r := configure(t, alice, "c1", map[string]string{fAllowRegister: "1", fModerated: "1", fPersistent: "1"}); r.Type != "result" {
		t.Fatalf("configure: %s", r.El)
	}
	bob.SendXML(fmt.Sprintf("<iq to='%s' type='get' id='d0'><query xmlns='%s'/></iq>", roomJID, NSDiscoInfo))
	if r := bob.NextIQ("d0"); !strings.Contains(r.El.String(), "var='"+NSRegister+"'") {
		t.Fatalf("disco#info does not announce registration: %s", r.El)
	}
	bob.SendXML(fmt.Sprintf("<iq to='%s' type='get' id='g2'><query xmlns='%s'/></iq>", roomJID, NSRegister))
	r := bob.NextIQ("g2")
	form, err := dataform.Parse(r.El.Child(NSRegister, "query").Child(dataform.NS, "x"))
	if err != nil || form.FormType() != NSRegisterForm {
		t.Fatalf("registration form %s (%v)", r.El, err)
	}
	if _, ok := form.Field(fRegisterNick); !ok {
		t.Fatalf("no nickname field: %s", r.El)
	}
	if n := reservedNick(t, bob, "n0"); n != "" {
		t.Fatalf("bob has a reserved nick before registering: %q", n)
	}
	// Bob is a visitor in the moderated room; registering makes him a
	// member (participant), which everyone sees.
	if self := join(t, bob, "Bobby", ""); item(self).Get("role") != Visitor {
		t.Fatalf("bob: %s", self.El)
	}
	bob.SendXML(registerForm("s1", "Bob"))
	if r := bob.NextIQ("s1"); r.Type != "result" {
		t.Fatalf("register: %s", r.El)
	}
	if p := alice.Next(func(s *stanza.Stanza) bool {
		return presenceFrom("Bobby", "")(s) && item(s).Get("affiliation") == Member
	}); item(p).Get("role") != Participant {
		t.Fatalf("alice sees %s", p.El)
	}
	if n := reservedNick(t, bob, "n1"); n != "Bob" {
		t.Fatalf("reserved nick %q", n)
	}
	bob.SendXML(fmt.Sprintf("<iq to='%s' type='get' id='g3'><query xmlns='%s'/></iq>", roomJID, NSRegister))
	if q := bob.NextIQ("g3").El.Child(NSRegister, "query"); q.Child(NSRegister, "registered") == nil || q.ChildText(NSRegister, "username") != "Bob" {
		t.Fatalf("registered: %s", q)
	}
	// The reserved nickname is bob's: carol may neither register nor
	// join with it, nor change to it.
	carol.SendXML(registerForm("s2", "Bob"))
	if r := carol.NextIQ("s2"); modtest.ErrorCondition(r) != stanza.Conflict {
		t.Fatalf("registering a reserved nick: %s", r.El)
	}
	carol.SendXML(fmt.Sprintf("<presence to='%s/Bob'/>", roomJID))
	if e := carol.Next(nil); modtest.ErrorCondition(e) != stanza.Conflict {
		t.Fatalf("joining with a reserved nick: %s", e.El)
	}
	join(t, carol, "Carol", "")
	carol.SendXML(fmt.Sprintf("<presence to='%s/Bob'/>", roomJID))
	if e := carol.Next(func(s *stanza.Stanza) bool { return s.IsError() }); modtest.ErrorCondition(e) != stanza.Conflict {
		t.Fatalf("changing to a reserved nick: %s", e.El)
	}
	// Bob himself may take it.
	bob.SendXML(fmt.Sprintf("<presence to='%s/Bob'/>", roomJID))
	bob.Next(presenceFrom("Bob", ""))
	// An invalid form is bad-request; another node is item-not-found.
	bob.SendXML(fmt.Sprintf("<iq to='%s' type='set' id='s3'><query xmlns='%s'/></iq>", roomJID, NSRegister))
	if r := bob.NextIQ("s3"); modtest.ErrorCondition(r) != stanza.BadRequest {
		t.Fatalf("no form: %s", r.El)
	}
	bob.SendXML(fmt.Sprintf("<iq to='%s' type='get' id='d1'><query xmlns='%s' node='other'/></iq>", roomJID, NSDiscoInfo))
	if r := bob.NextIQ("d1"); modtest.ErrorCondition(r) != stanza.ItemNotFound {
		t.Fatalf("unknown node: %s", r.El)
	}
	// The member list shows the reserved nick.
	alice.SendXML(fmt.Sprintf("<iq to='%s' type='get' id='l1'><query xmlns='%s'><item affiliation='member'/></query></iq>", roomJID, NSAdmin))
	if r := alice.NextIQ("l1"); !strings.Contains(r.El.String(), "nick='Bob'") {
		t.Fatalf("member list: %s", r.El)
	}

	// Cancelling needs a registration; carol has none.
	carol.SendXML(fmt.Sprintf("<iq to='%s' type='set' id='u0'><query xmlns='%s'><remove/></query></iq>", roomJID, NSRegister))
	if r := carol.NextIQ("u0"); modtest.ErrorCondition(r) != stanza.ItemNotFound {
		t.Fatalf("cancel without registration: %s", r.El)
	}

	// The reservation survives a restart (the room is persistent) ...
	info, _ := module.Lookup(ID)
	m2 := info.New().(*Module)
	m2.SetDecider(&decider{deny: map[string]bool{}})
	modtest.New(t, modtest.Options{Store: f.srv.Store}, router.Enabled{Info: info, Module: m2})
	if r2 := m2.lookup(jid.MustParse(roomJID)); r2 == nil || r2.nicks["bob@example.com"] != "Bob" || !r2.cfg.AllowRegister {
		t.Fatalf("restored room %+v", r2)
	}
	// ... and ends with the membership.
	alice.SendXML(fmt.Sprintf("<iq to='%s' type='set' id='a1'><query xmlns='%s'><item jid='bob@example.com' affiliation='none'/></query></iq>", roomJID, NSAdmin))
	alice.NextIQ("a1")
	if n := reservedNick(t, bob, "n2"); n != "" {
		t.Fatalf("reserved nick after losing membership: %q", n)
	}
	// An outcast may not register.
	alice.SendXML(fmt.Sprintf("<iq to='%s' type='set' id='a2'><query xmlns='%s'><item jid='carol@example.com' affiliation='outcast'/></query></iq>", roomJID, NSAdmin))
	alice.NextIQ("a2")
	carol.SendXML(registerForm("s4", "Caro"))
	if r := carol.NextIQ("s4"); modtest.ErrorCondition(r) != stanza.NotAllowed {
		t.Fatalf("outcast registers: %s", r.El)
	}
}

func TestRegistrationMembersOnly(t *testing.T) {
	f := setup(t, nil)
	alice, bob, carol := f.user("alice"), f.user("bob"), f.user("carol")
	join(t, alice, "Alice", "")
	if r := configure(t, alice, "c1", map[string]string{fAllowRegister: "1", fMembersOnly: "1"}); r.Type != "result" {
		t.Fatalf("configure: %s", r.El)
	}
	// Not on the member list: registration does not let bob in.
	bob.SendXML(registerForm("s1", "Bob"))
	if r := bob.NextIQ("s1"); modtest.ErrorCondition(r) != stanza.NotAllowed {
		t.Fatalf("non-member registers with a members-only room: %s", r.El)
	}
	// A member reserves a nickname; the admin's member list item may set
	// one too.
	alice.SendXML(fmt.Sprintf("<iq to='%s' type='set' id='a1'><query xmlns='%s'><item jid='bob@example.com' affiliation='member'/>"+
		"<item jid='carol@example.com' affiliation='member' nick='Caro'/></query></iq>", roomJID, NSAdmin))
	if r := alice.NextIQ("a1"); r.Type != "result" {
		t.Fatalf("members: %s", r.El)
	}
	bob.SendXML(registerForm("s2", "Bob"))
	if r := bob.NextIQ("s2"); r.Type != "result" {
		t.Fatalf("member registers: %s", r.El)
	}
	if n := reservedNick(t, carol, "n1"); n != "Caro" {
		t.Fatalf("carol's nick from the member list: %q", n)
	}
	bob.SendXML(registerForm("s3", "Caro"))
	if r := bob.NextIQ("s3"); modtest.ErrorCondition(r) != stanza.Conflict {
		t.Fatalf("taking carol's nick: %s", r.El)
	}
	// Carol, in the room, cancels her registration: no longer a member of
	// a members-only room, she is removed (321), and her nick is free.
	join(t, carol, "Caro", "")
	carol.SendXML(fmt.Sprintf("<iq to='%s' type='set' id='u1'><query xmlns='%s'><remove/></query></iq>", roomJID, NSRegister))
	if p := carol.Next(presenceFrom("Caro", "unavailable")); !hasStatus(p, "321") {
		t.Fatalf("cancelled member in a members-only room: %s", p.El)
	}
	if r := carol.NextIQ("u1"); r.Type != "result" {
		t.Fatalf("cancel: %s", r.El)
	}
	if n := reservedNick(t, carol, "n2"); n != "" {
		t.Fatalf("nick after cancelling: %q", n)
	}
	if r := f.mod.lookup(roomBare()); r.affiliations["carol@example.com"] != "" {
		t.Fatalf("carol is still %q", r.affiliations["carol@example.com"])
	}
}

func TestParseRegisterForm(t *testing.T) {
	ok := func(n string) bool { return n != "" && len(n) < 10 }
	field := func(v, val string) dataform.Field { return dataform.Field{Var: v, Values: []string{val}} }
	cases := []struct {
		name string
		form dataform.Form
		want string
	}{
		{"nick", dataform.New(dataform.TypeSubmit, NSRegisterForm, field(fRegisterNick, "Bob")), "Bob"},
		{"no nick", dataform.New(dataform.TypeSubmit, NSRegisterForm), ""},
		{"long nick", dataform.New(dataform.TypeSubmit, NSRegisterForm, field(fRegisterNick, "Bartholomew")), ""},
		{"other field", dataform.New(dataform.TypeSubmit, NSRegisterForm, field(fRegisterNick, "Bob"), field("muc#register_email", "b@x")), ""},
		{"no form type", dataform.Form{Type: dataform.TypeSubmit, Fields: []dataform.Field{field(fRegisterNick, "Bob")}}, ""},
		{"type form", dataform.New(dataform.TypeForm, NSRegisterForm, field(fRegisterNick, "Bob")), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseRegisterForm(tc.form, ok)
			if got != tc.want || (err == nil) != (tc.want != "") {
				t.Fatalf("parseRegisterForm = %q, %v", got, err)
			}
		})
	}
}

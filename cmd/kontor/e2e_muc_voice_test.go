package main

// End-to-end test of voice requests (XEP-0045 §7.13, §8.6) with
// mellium.im/xmpp sessions.

import (
	"fmt"
	"testing"

	"mellium.im/xmpp/muc"
)

// TestE2EMUCVoiceRequest: a visitor in a moderated room asks for voice
// (XEP-0045 §7.13), the moderator gets the approval form and approves it
// (§8.6), and the visitor may speak.
func TestE2EMUCVoiceRequest(t *testing.T) {
	ts := startTestServer(t, "sqlite", nil)
	for _, u := range []string{"alice", "bob"} {
		ts.addUser(t, u, u+"-password")
	}
	const room = "townhall@conference.localhost"
	alice := ts.dial(t, "alice", "alice-password")
	bob := ts.dial(t, "bob", "bob-password")
	subject := func(n xmlNode) bool { return n.child("", "subject") != nil }
	alice.send(t, fmt.Sprintf("<presence to='%s/Alice'><x xmlns='%s'/></presence>", room, muc.NS))
	alice.Messages.expect(t, "alice's subject", subject)
	cfg := alice.iq(t, fmt.Sprintf("<iq type='set' to='%s'><query xmlns='%s'><x xmlns='jabber:x:data' type='submit'>"+
		"<field var='muc#roomconfig_moderatedroom'><value>1</value></field></x></query></iq>", room, muc.NSOwner))
	if cfg.attr("type") != "result" {
		t.Fatalf("configure: %s", cfg)
	}
	bob.send(t, fmt.Sprintf("<presence to='%s/Bob'><x xmlns='%s'/></presence>", room, muc.NS))
	bob.Messages.expect(t, "bob's subject", subject)
	const request = "http://jabber.org/protocol/muc#request"
	bob.send(t, fmt.Sprintf("<message to='%s'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>%s</value></field>"+
		"<field var='muc#role'><value>participant</value></field></x></message>", room, request))
	form := alice.Messages.expect(t, "the approval form", func(n xmlNode) bool {
		x := n.child("jabber:x:data", "x")
		return x != nil && x.attr("type") == "form"
	})
	var nick, realJID string
	for _, f := range form.child("jabber:x:data", "x").Nodes {
		switch f.attr("var") {
		case "muc#roomnick":
			nick = f.childText("", "value")
		case "muc#jid":
			realJID = f.childText("", "value")
		}
	}
	if form.attr("from") != room || nick != "Bob" || realJID == "" {
		t.Fatalf("approval form %s", form)
	}
	alice.send(t, fmt.Sprintf("<message to='%s'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>%s</value></field>"+
		"<field var='muc#role'><value>participant</value></field><field var='muc#jid'><value>%s</value></field>"+
		"<field var='muc#roomnick'><value>Bob</value></field><field var='muc#request_allow'><value>true</value></field></x></message>",
		room, request, realJID))
	bob.Presences.expect(t, "bob's voice", func(n xmlNode) bool {
		x := n.child(muc.NSUser, "x")
		return n.attr("from") == room+"/Bob" && x != nil && x.child(muc.NSUser, "item") != nil &&
			x.child(muc.NSUser, "item").attr("role") == "participant"
	})
	bob.send(t, fmt.Sprintf("<message type='groupchat' to='%s'><body>thanks</body></message>", room))
	alice.Messages.expect(t, "bob speaks", func(n xmlNode) bool { return n.body() == "thanks" })
}

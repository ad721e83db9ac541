package main

// End-to-end test of room destruction (XEP-0045 §10.9) with mellium.im/xmpp
// sessions on both storage backends: a persistent room's owner destroys
// it; each occupant gets its own unavailable presence with the alternate
// venue and the reason; an admin may not; the address is free afterwards
// (the next join creates a new room).

import (
	"fmt"
	"testing"

	"mellium.im/xmpp/muc"
)

func TestE2EMUCDestroy(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		ts := startTestServer(t, backend, nil)
		for _, u := range []string{"alice", "bob"} {
			ts.addUser(t, u, u+"-password")
		}
		const room = "plans@conference.localhost"
		alice := ts.dial(t, "alice", "alice-password")
		bob := ts.dial(t, "bob", "bob-password")
		subject := func(n xmlNode) bool { return n.child("", "subject") != nil }
		alice.send(t, fmt.Sprintf("<presence to='%s/Alice'><x xmlns='%s'/></presence>", room, muc.NS))
		alice.Messages.expect(t, "alice's subject", subject)
		cfg := alice.iq(t, fmt.Sprintf("<iq type='set' to='%s'><query xmlns='%s'><x xmlns='jabber:x:data' type='submit'>"+
			"<field var='muc#roomconfig_persistentroom'><value>1</value></field></x></query></iq>", room, muc.NSOwner))
		if cfg.attr("type") != "result" {
			t.Fatalf("configure: %s", cfg)
		}
		adm := alice.iq(t, fmt.Sprintf("<iq type='set' to='%s'><query xmlns='%s'><item jid='bob@localhost' affiliation='admin'/></query></iq>", room, muc.NSAdmin))
		if adm.attr("type") != "result" {
			t.Fatalf("admin: %s", adm)
		}
		bob.send(t, fmt.Sprintf("<presence to='%s/Bob'><x xmlns='%s'/></presence>", room, muc.NS))
		bob.Messages.expect(t, "bob's subject", subject)

		destroy := func(c *testClient, inner string) xmlNode {
			return c.iq(t, fmt.Sprintf("<iq type='set' to='%s'><query xmlns='%s'><destroy%s</query></iq>", room, muc.NSOwner, inner))
		}
		if r := destroy(bob, "/>"); r.attr("type") != "error" {
			t.Fatalf("destroy by an admin: %s", r)
		} else if _, cond := r.stanzaError(); cond != "forbidden" {
			t.Fatalf("destroy by an admin: %s", r)
		}
		if r := destroy(alice, " jid='plans2@conference.localhost'><reason>moved</reason></destroy>"); r.attr("type") != "result" {
			t.Fatalf("destroy: %s", r)
		}
		for _, c := range []struct {
			client *testClient
			nick   string
		}{{alice, "Alice"}, {bob, "Bob"}} {
			p := c.client.Presences.expect(t, c.nick+" removed", func(n xmlNode) bool {
				x := n.child(muc.NSUser, "x")
				return n.attr("type") == "unavailable" && x != nil && x.child(muc.NSUser, "destroy") != nil
			})
			d := p.child(muc.NSUser, "x").child(muc.NSUser, "destroy")
			if p.attr("from") != room+"/"+c.nick || d.attr("jid") != "plans2@conference.localhost" || d.childText(muc.NSUser, "reason") != "moved" {
				t.Fatalf("%s got %s", c.nick, p)
			}
		}
		// The address is free: bob's next join creates a new room (201)
		// that he owns.
		bob.send(t, fmt.Sprintf("<presence to='%s/Bob'><x xmlns='%s'/></presence>", room, muc.NS))
		p := bob.Presences.expect(t, "bob's new room", func(n xmlNode) bool {
			x := n.child(muc.NSUser, "x")
			return n.attr("type") == "" && n.attr("from") == room+"/Bob" && x != nil && x.child(muc.NSUser, "destroy") == nil && hasCode(x, "201")
		})
		if p.child(muc.NSUser, "x").child(muc.NSUser, "item").attr("affiliation") != "owner" {
			t.Fatalf("join after destroy: %s", p)
		}
	})
}

// hasCode reports whether a muc#user <x/> has the status code.
func hasCode(x *xmlNode, code string) bool {
	for _, c := range x.Nodes {
		if c.XMLName.Local == "status" && c.attr("code") == code {
			return true
		}
	}
	return false
}

package main

// End-to-end test of room destruction (XEP-0045 §10.9) with mellium.im/xmpp
// sessions on both storage backends: a persistent room with a registered
// (reserved) nickname survives a restart; its owner destroys it; each
// occupant gets its own unavailable presence with the alternate venue and
// the reason; an admin may not; after another restart the room is gone
// from the store and the next join creates a new room.

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
			"<field var='muc#roomconfig_persistentroom'><value>1</value></field>"+
			"<field var='{https://kontor.im/ns/muc}allowregister'><value>1</value></field></x></query></iq>", room, muc.NSOwner))
		if cfg.attr("type") != "result" {
			t.Fatalf("configure: %s", cfg)
		}
		// Bob registers with the room (XEP-0045 §7.10) and so reserves a
		// nickname, stored with the persistent room.
		reg := bob.iq(t, fmt.Sprintf("<iq type='set' to='%s'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>"+
			"<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>"+
			"<field var='muc#register_roomnick'><value>Bobby</value></field></x></query></iq>", room))
		if reg.attr("type") != "result" {
			t.Fatalf("register: %s", reg)
		}

		// After a restart the room, its configuration and bob's reserved
		// nickname are back from the store.
		ts = ts.restart(t)
		alice = ts.dial(t, "alice", "alice-password")
		bob = ts.dial(t, "bob", "bob-password")
		nick := bob.iq(t, fmt.Sprintf("<iq type='get' to='%s'><query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'/></iq>", room))
		if q := nick.child("", "query"); q == nil || q.child("", "identity") == nil || q.child("", "identity").attr("name") != "Bobby" {
			t.Fatalf("reserved nickname after the restart: %s", nick)
		}
		alice.send(t, fmt.Sprintf("<presence to='%s/Alice'><x xmlns='%s'/></presence>", room, muc.NS))
		alice.Messages.expect(t, "alice's subject", subject)
		adm := alice.iq(t, fmt.Sprintf("<iq type='set' to='%s'><query xmlns='%s'><item jid='bob@localhost' affiliation='admin'/></query></iq>", room, muc.NSAdmin))
		if adm.attr("type") != "result" {
			t.Fatalf("admin: %s", adm)
		}
		bob.send(t, fmt.Sprintf("<presence to='%s/Bobby'><x xmlns='%s'/></presence>", room, muc.NS))
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
		}{{alice, "Alice"}, {bob, "Bobby"}} {
			p := c.client.Presences.expect(t, c.nick+" removed", func(n xmlNode) bool {
				x := n.child(muc.NSUser, "x")
				return n.attr("type") == "unavailable" && x != nil && x.child(muc.NSUser, "destroy") != nil
			})
			d := p.child(muc.NSUser, "x").child(muc.NSUser, "destroy")
			if p.attr("from") != room+"/"+c.nick || d.attr("jid") != "plans2@conference.localhost" || d.childText(muc.NSUser, "reason") != "moved" {
				t.Fatalf("%s got %s", c.nick, p)
			}
		}

		// The destroyed room is gone from the store: after another
		// restart there is no such room, and bob's next join creates a
		// new one (201) that he owns.
		ts = ts.restart(t)
		bob = ts.dial(t, "bob", "bob-password")
		info := bob.iq(t, fmt.Sprintf("<iq type='get' to='%s'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", room))
		if _, cond := info.stanzaError(); cond != "item-not-found" {
			t.Fatalf("disco#info of the destroyed room after a restart: %s", info)
		}
		bob.send(t, fmt.Sprintf("<presence to='%s/Bob'><x xmlns='%s'/></presence>", room, muc.NS))
		p := bob.Presences.expect(t, "bob's new room", func(n xmlNode) bool {
			x := n.child(muc.NSUser, "x")
			return n.attr("type") == "" && n.attr("from") == room+"/Bob" && x != nil && hasCode(x, "201")
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

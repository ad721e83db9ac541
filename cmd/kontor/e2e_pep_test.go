package main

// End-to-end test of PEP (core/mod/pep) with mellium.im/xmpp's pubsub
// package: an OMEMO device list published by one contact reaches the
// other's client as a notification, because that client's entity
// capabilities (which the server learns by asking the client) say
// +notify; and a bundle published with access model open is fetched by a
// user who is no contact.

import (
	"context"
	"crypto/sha1"
	"encoding/xml"
	"fmt"
	"net"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/disco"
	"mellium.im/xmpp/disco/info"
	"mellium.im/xmpp/mux"
	"mellium.im/xmpp/ping"
	"mellium.im/xmpp/pubsub"
	"mellium.im/xmpp/stanza"

	"kontor.im/kontor/core/storage"
)

const (
	nsOMEMODevices = "eu.siacs.conversations.axolotl.devicelist"
	nsOMEMO        = "eu.siacs.conversations.axolotl"
	e2eCapsNode    = "https://kontor.im/e2e-client"
)

// capsClient is what a client says about itself in disco#info: an
// identity and features, among them NODE+notify for PEP.
type capsClient struct {
	features []info.Feature
	asked    chan string // the node of each disco#info query answered
}

func (c *capsClient) info(node string) disco.Info {
	return disco.Info{InfoQuery: disco.InfoQuery{Node: node},
		Identity: []info.Identity{{Category: "client", Type: "pc", Name: "Kontor e2e"}},
		Features: c.features}
}

// ver is the XEP-0115 verification string, computed by mellium.
func (c *capsClient) ver() string { return c.info("").Hash(sha1.New()) }

// answer answers the server's disco#info query.
func (c *capsClient) answer(iq stanza.IQ, t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	node := ""
	for _, a := range start.Attr {
		if a.Name.Local == "node" {
			node = a.Value
		}
	}
	_, err := xmlstream.Copy(t, iq.Result(c.info(node).TokenReader()))
	select {
	case c.asked <- node:
	default:
	}
	return err
}

// dialCaps logs in like dial, with a client that answers disco#info with
// caps and files messages (notifications) in Messages.
func (ts *testServer) dialCaps(t *testing.T, user, password string, caps *capsClient) *testClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	s, conn, err := ts.connect(ctx, user, password)
	if err != nil {
		t.Fatalf("login as %s: %v", bare(user), err)
	}
	return serveWith(t, user, s, conn, mux.New(stanza.NSClient, ping.Handle(),
		mux.IQFunc(stanza.GetIQ, xml.Name{Space: disco.NSInfo, Local: "query"}, caps.answer)))
}

func serveWith(t *testing.T, name string, s *xmpp.Session, conn net.Conn, iqs *mux.ServeMux) *testClient {
	c := &testClient{Session: s, name: name, conn: conn,
		Messages: newInbox(), Presences: newInbox(), RosterPushes: newInbox(), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		c.err = s.Serve(xmpp.HandlerFunc(func(tr xmlstream.TokenReadEncoder, start *xml.StartElement) error {
			switch start.Name.Local {
			case "message", "presence":
				n, err := decodeElement(tr, start)
				if err != nil {
					return err
				}
				if start.Name.Local == "message" {
					c.Messages.put(n)
				} else {
					c.Presences.put(n)
				}
				return nil
			}
			return iqs.HandleXMPP(tr, start)
		}))
		conn.Close()
	}()
	t.Cleanup(func() { c.close() })
	return c
}

// deviceEvent matches a PEP notification of alice's device list and
// returns its device ids.
func deviceEvent(n xmlNode) ([]string, bool) {
	ev := n.child("http://jabber.org/protocol/pubsub#event", "event")
	if n.attr("from") != bare("alice") || ev == nil {
		return nil, false
	}
	items := ev.child("", "items")
	if items == nil || items.attr("node") != nsOMEMODevices {
		return nil, false
	}
	var ids []string
	if it := items.child("", "item"); it != nil {
		if l := it.child(nsOMEMO, "list"); l != nil {
			for _, d := range l.Nodes {
				ids = append(ids, d.attr("id"))
			}
		}
	}
	return ids, true
}

func TestE2EPEP(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		ts := startTestServer(t, backend, nil)
		for _, u := range []string{"alice", "bob", "carol"} {
			ts.addUser(t, u, "password-"+u)
		}
		// alice and bob are contacts; carol is not.
		ctx := context.Background()
		for _, p := range [][2]string{{"alice", "bob"}, {"bob", "alice"}} {
			if _, err := ts.srv.store.PutRosterItem(ctx, bare(p[0]), storage.RosterItem{Contact: bare(p[1]), Subscription: storage.SubBoth}); err != nil {
				t.Fatal(err)
			}
		}

		caps := &capsClient{asked: make(chan string, 4), features: []info.Feature{
			{Var: disco.NSInfo}, {Var: disco.NSCaps}, {Var: nsOMEMODevices + "+notify"},
		}}
		bob := ts.dialCaps(t, "bob", "password-bob", caps)
		alice := ts.dial(t, "alice", "password-alice")
		carol := ts.dial(t, "carol", "password-carol")
		alice.send(t, "<presence/>")
		bob.send(t, fmt.Sprintf("<presence><c xmlns='%s' hash='sha-1' node='%s' ver='%s'/></presence>", disco.NSCaps, e2eCapsNode, caps.ver()))
		select {
		case node := <-caps.asked:
			if want := e2eCapsNode + "#" + caps.ver(); node != want {
				t.Errorf("the server asked for node %q, want %q", node, want)
			}
		case <-time.After(e2eWait):
			t.Fatal("the server did not ask bob's client for its capabilities")
		}

		publish := func(ids ...string) {
			t.Helper()
			list := "<list xmlns='" + nsOMEMO + "'>"
			for _, id := range ids {
				list += "<device id='" + id + "'/>"
			}
			list += "</list>"
			ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
			defer cancel()
			id, err := pubsub.Publish(ctx, alice.Session, nsOMEMODevices, "current", tokens(t, list))
			if err != nil || id != "current" {
				t.Fatalf("alice publishing her device list: id %q, %v", id, err)
			}
		}
		expect := func(want string) xmlNode {
			t.Helper()
			return bob.Messages.expect(t, "bob's device list notification", func(n xmlNode) bool {
				ids, ok := deviceEvent(n)
				return ok && len(ids) > 0 && ids[len(ids)-1] == want
			})
		}

		// The first publish may race with the server learning bob's
		// capabilities: bob gets it either as a notification or as the last
		// item once his capabilities are known. The second one, after
		// that, is a live notification.
		publish("1001")
		expect("1001")
		publish("1001", "2002")
		n := expect("2002")
		if n.attr("type") != "headline" || n.child(nsDelay, "delay") != nil || n.attr("to") != bob.JID().String() {
			t.Errorf("live notification %s: want a headline to bob's full JID without delay", n)
		}

		t.Run("bob fetches the list with pubsub.Fetch", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
			defer cancel()
			it := pubsub.FetchIQ(ctx, stanza.IQ{To: alice.JID().Bare()}, bob.Session, pubsub.Query{Node: nsOMEMODevices})
			defer it.Close()
			var ids []string
			for it.Next() {
				id, _ := it.Item()
				ids = append(ids, id)
			}
			if err := it.Err(); err != nil || len(ids) != 1 || ids[0] != "current" {
				t.Errorf("items %q, %v", ids, err)
			}
		})

		t.Run("carol fetches an open bundle but not the presence-only list", func(t *testing.T) {
			r := alice.iq(t, "<iq type='set'><pubsub xmlns='http://jabber.org/protocol/pubsub'>"+
				"<publish node='"+nsOMEMO+".bundles:1001'><item id='current'><bundle xmlns='"+nsOMEMO+"'><identityKey>BQ==</identityKey></bundle></item></publish>"+
				"<publish-options><x xmlns='jabber:x:data' type='submit'>"+
				"<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>"+
				"<field var='pubsub#access_model'><value>open</value></field></x></publish-options></pubsub></iq>")
			if r.attr("type") != "result" {
				t.Fatalf("publishing the bundle: %s", r)
			}
			ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
			defer cancel()
			it := pubsub.FetchIQ(ctx, stanza.IQ{To: alice.JID().Bare()}, carol.Session, pubsub.Query{Node: nsOMEMO + ".bundles:1001"})
			n := 0
			for it.Next() {
				n++
			}
			if err := it.Err(); err != nil || n != 1 {
				t.Errorf("carol fetching the open bundle: %d items, %v", n, err)
			}
			it.Close()
			it = pubsub.FetchIQ(ctx, stanza.IQ{To: alice.JID().Bare()}, carol.Session, pubsub.Query{Node: nsOMEMODevices})
			for it.Next() {
				t.Errorf("carol got an item of the presence-only device list")
			}
			var se stanza.Error
			if err := it.Err(); !asStanzaError(err, &se) || se.Condition != stanza.ServiceUnavailable {
				t.Errorf("carol fetching the device list: %v, want service-unavailable", err)
			}
			it.Close()
		})
	})
}

func asStanzaError(err error, se *stanza.Error) bool {
	if err == nil {
		return false
	}
	e, ok := err.(stanza.Error)
	if ok {
		*se = e
	}
	return ok
}

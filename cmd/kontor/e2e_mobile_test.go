package main

// End-to-end tests of what a user with several devices relies on: message
// carbons (XEP-0280) and the blocking command (XEP-0191), driven by
// mellium.im/xmpp's own carbons and blocklist packages, over TCP and TLS
// against a real server on both storage backends.

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/blocklist"
	"mellium.im/xmpp/carbons"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/mux"
	"mellium.im/xmpp/ping"
	"mellium.im/xmpp/stanza"
)

const nsBlockingErrors = "urn:xmpp:blocking:errors"

// mobileClient is a testClient whose messages pass through mellium's
// carbons handler and whose IQs through mellium's blocklist handler, as
// in a client application built on mellium.
type mobileClient struct {
	*testClient
	// Carbons holds what carbons.Handler unwrapped: an element named
	// {urn:xmpp:carbons:2}sent or received, with the wrapping message's
	// from and to, around the forwarded message.
	Carbons *inbox
	// Pushes holds the blocklist pushes blocklist.Handler saw: elements
	// named block or unblock with the JID as text (none: unblock all).
	Pushes *inbox
}

// dialMobile logs in like dial, then serves the session with mellium's
// carbons and blocklist handlers.
func (ts *testServer) dialMobile(t *testing.T, user, password string, opts ...dialOption) *mobileClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	s, conn, err := ts.connect(ctx, user, password, opts...)
	if err != nil {
		t.Fatalf("login as %s: %v", bare(user), err)
	}
	c := &mobileClient{
		testClient: &testClient{Session: s, name: user + "/" + s.LocalAddr().Resourcepart(), conn: conn,
			Messages: newInbox(), Presences: newInbox(), RosterPushes: newInbox(), done: make(chan struct{})},
		Carbons: newInbox(),
		Pushes:  newInbox(),
	}
	push := func(local, j string) {
		c.Pushes.put(xmlNode{XMLName: xml.Name{Space: blocklist.NS, Local: local}, Text: j})
	}
	iqs := mux.New(stanza.NSClient,
		ping.Handle(),
		blocklist.Handle(blocklist.Handler{
			Block:      func(i blocklist.Item) { push("block", i.JID.String()) },
			Unblock:    func(j jid.JID) { push("unblock", j.String()) },
			UnblockAll: func() { push("unblock", "") },
		}),
	)
	unwrap := carbons.Handler{F: func(m stanza.Message, sent bool, inner xml.TokenReader) error {
		var n xmlNode
		if err := xml.NewTokenDecoder(inner).Decode(&n); err != nil {
			return err
		}
		kind := "received"
		if sent {
			kind = "sent"
		}
		c.Carbons.put(xmlNode{XMLName: xml.Name{Space: carbons.NS, Local: kind},
			Attrs: []xml.Attr{{Name: xml.Name{Local: "from"}, Value: m.From.String()}, {Name: xml.Name{Local: "to"}, Value: m.To.String()}},
			Nodes: []xmlNode{n}})
		return nil
	}}
	go func() {
		defer close(c.done)
		c.err = s.Serve(xmpp.HandlerFunc(func(tr xmlstream.TokenReadEncoder, start *xml.StartElement) error {
			switch start.Name.Local {
			case "message":
				toks, err := elementTokens(tr, start)
				if err != nil {
					return err
				}
				var n xmlNode
				if err := xml.NewTokenDecoder(&sliceTokens{toks: toks}).Decode(&n); err != nil {
					return err
				}
				if n.child(carbons.NS, "received") == nil && n.child(carbons.NS, "sent") == nil {
					c.Messages.put(n)
					return nil
				}
				msg, err := stanza.NewMessage(*start)
				if err != nil {
					return err
				}
				return unwrap.HandleMessage(msg, struct {
					xml.TokenReader
					xmlstream.Encoder
				}{&sliceTokens{toks: toks}, tr})
			case "presence":
				n, err := decodeElement(tr, start)
				if err != nil {
					return err
				}
				c.Presences.put(n)
				return nil
			}
			return iqs.HandleXMPP(tr, start)
		}))
		conn.Close()
	}()
	t.Cleanup(func() { c.close() })
	return c
}

// elementTokens reads the rest of an element whose start was read, and
// returns all of its tokens, start and end included.
func elementTokens(r xml.TokenReader, start *xml.StartElement) ([]xml.Token, error) {
	toks := []xml.Token{start.Copy()}
	depth := 1
	for depth > 0 {
		tok, err := r.Token()
		if errors.Is(err, io.EOF) && tok == nil {
			return nil, io.ErrUnexpectedEOF
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		if tok == nil {
			continue
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		}
		toks = append(toks, xml.CopyToken(tok))
	}
	return toks, nil
}

// carbonOf matches a carbon of kind ("sent" or "received") whose
// forwarded message has body.
func carbonOf(kind, body string) func(xmlNode) bool {
	return func(n xmlNode) bool {
		return n.is(carbons.NS, kind) && len(n.Nodes) == 1 && n.Nodes[0].body() == body
	}
}

func TestE2EMobile(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		ts := startTestServer(t, backend, nil)
		ts.addUser(t, "alice", "password-1")
		ts.addUser(t, "bob", "password-2")
		phone := ts.dialMobile(t, "alice", "password-1", withResource("phone"))
		laptop := ts.dialMobile(t, "alice", "password-1", withResource("laptop"))
		bob := ts.dial(t, "bob", "password-2", withResource("desk"))
		ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
		defer cancel()
		for _, c := range []*mobileClient{phone, laptop} {
			if err := carbons.Enable(ctx, c.Session); err != nil {
				t.Fatalf("%s: carbons.Enable: %v", c.name, err)
			}
		}
		// The phone has the higher priority: messages to alice's bare JID
		// go to it alone (RFC 6121 §8.5.2.1.1), and the laptop relies on
		// carbons.
		phone.send(t, "<presence><priority>1</priority></presence>")
		laptop.send(t, "<presence><priority>0</priority></presence>")
		bob.send(t, "<presence/>")
		for _, c := range []*testClient{phone.testClient, laptop.testClient, bob} {
			c.barrier(t)
		}

		t.Run("received carbon", func(t *testing.T) {
			bob.chat(t, "alice@localhost", "for alice's phone")
			phone.Messages.expect(t, "the phone's message", func(n xmlNode) bool { return n.body() == "for alice's phone" })
			n := laptop.Carbons.expect(t, "the laptop's received carbon", carbonOf("received", "for alice's phone"))
			// mellium empties a 'from' that is the account's own bare JID
			// (Session normalises it); anything else would be a forgery.
			if f := n.attr("from"); (f != "" && f != "alice@localhost") || n.attr("to") != laptop.JID().String() {
				t.Errorf("carbon from %q to %q, want from alice's bare JID to the laptop (XEP-0280 §11)", f, n.attr("to"))
			}
			if f := n.Nodes[0].attr("from"); f != bob.JID().String() {
				t.Errorf("the forwarded message is from %q, want %s", f, bob.JID())
			}
			phone.barrier(t)
			phone.Carbons.none(t, "the phone got the message itself", carbonOf("received", "for alice's phone"))
		})

		t.Run("sent carbon", func(t *testing.T) {
			phone.chat(t, "bob@localhost", "from alice's phone")
			bob.Messages.expect(t, "bob's message", func(n xmlNode) bool { return n.body() == "from alice's phone" })
			n := laptop.Carbons.expect(t, "the laptop's sent carbon", carbonOf("sent", "from alice's phone"))
			if inner := n.Nodes[0]; inner.attr("to") != "bob@localhost" || inner.attr("from") != phone.JID().String() {
				t.Errorf("the forwarded message goes from %q to %q", inner.attr("from"), inner.attr("to"))
			}
			phone.barrier(t)
			phone.Carbons.none(t, "the sender got a carbon of its own message", carbonOf("sent", "from alice's phone"))
		})

		t.Run("private", func(t *testing.T) {
			if err := phone.Send(ctx, carbons.Private(tokens(t, "<message xmlns='jabber:client' type='chat' to='bob@localhost'><body>just this device</body></message>"))); err != nil {
				t.Fatal(err)
			}
			m := bob.Messages.expect(t, "bob's message", func(n xmlNode) bool { return n.body() == "just this device" })
			if m.child(carbons.NS, "private") == nil {
				t.Errorf("bob got %s: <private/> was removed (XEP-0280 1.0.1 §9 keeps it)", m)
			}
			laptop.barrier(t)
			laptop.Carbons.none(t, "a carbon of a private message", carbonOf("sent", "just this device"))
		})

		bobJID := jid.MustParse("bob@localhost")
		t.Run("blocked", func(t *testing.T) {
			// The phone asks for the list first: it gets the pushes.
			if list := fetch(t, ctx, phone); len(list) != 0 {
				t.Fatalf("initial blocklist %q", list)
			}
			if err := blocklist.Add(ctx, phone.Session, bobJID); err != nil {
				t.Fatalf("blocklist.Add: %v", err)
			}
			phone.Pushes.expect(t, "the block push", func(n xmlNode) bool { return n.XMLName.Local == "block" && n.Text == "bob@localhost" })
			if list := fetch(t, ctx, laptop); len(list) != 1 || list[0] != "bob@localhost" {
				t.Errorf("the laptop reads blocklist %q, want [bob@localhost]", list)
			}

			bob.chat(t, "alice@localhost", "can you hear me?")
			m := bob.Messages.expect(t, "bob's bounce", func(n xmlNode) bool { return n.attr("type") == "error" })
			if typ, cond := m.stanzaError(); typ != "cancel" || cond != "service-unavailable" {
				t.Errorf("bob got %s/%s, want cancel/service-unavailable (XEP-0191 §3.3)", typ, cond)
			}
			phone.chat(t, "bob@localhost", "and you?")
			m = phone.Messages.expect(t, "alice's refusal", func(n xmlNode) bool { return n.attr("type") == "error" })
			if typ, cond := m.stanzaError(); typ != "cancel" || cond != "not-acceptable" || m.child("", "error").child(nsBlockingErrors, "blocked") == nil {
				t.Errorf("alice got %s, want cancel/not-acceptable with <blocked xmlns='%s'/>", m, nsBlockingErrors)
			}
			for _, c := range []*testClient{phone.testClient, laptop.testClient, bob} {
				c.barrier(t)
			}
			for _, c := range []*mobileClient{phone, laptop} {
				c.Messages.none(t, c.name, func(n xmlNode) bool { return n.body() == "can you hear me?" })
				c.Carbons.none(t, c.name, carbonOf("received", "can you hear me?"))
				c.Carbons.none(t, c.name, carbonOf("sent", "and you?"))
			}
			bob.Messages.none(t, "bob", func(n xmlNode) bool { return n.body() == "and you?" })
		})

		t.Run("unblocked", func(t *testing.T) {
			if err := blocklist.Remove(ctx, phone.Session, bobJID); err != nil {
				t.Fatalf("blocklist.Remove: %v", err)
			}
			phone.Pushes.expect(t, "the unblock push", func(n xmlNode) bool { return n.XMLName.Local == "unblock" && n.Text == "bob@localhost" })
			bob.chat(t, "alice@localhost", "hello again")
			phone.Messages.expect(t, "the phone's message", func(n xmlNode) bool { return n.body() == "hello again" })
			laptop.Carbons.expect(t, "the laptop's carbon", carbonOf("received", "hello again"))
			if list := fetch(t, ctx, laptop); len(list) != 0 {
				t.Errorf("blocklist after unblock %q", list)
			}
		})
	})
}

// fetch reads the blocklist with blocklist.Fetch.
func fetch(t *testing.T, ctx context.Context, c *mobileClient) []string {
	t.Helper()
	it := blocklist.Fetch(ctx, c.Session)
	var out []string
	for it.Next() {
		out = append(out, it.JID().String())
	}
	if err := it.Err(); err != nil {
		t.Fatalf("%s: blocklist.Fetch: %v", c.name, err)
	}
	if err := it.Close(); err != nil {
		t.Fatalf("%s: blocklist.Fetch: %v", c.name, err)
	}
	return out
}

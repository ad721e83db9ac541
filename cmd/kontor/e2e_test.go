package main

// End-to-end tests: the real server (startServer, as `kontor serve` runs it)
// on loopback TCP/TLS, driven by client code that is not Kontor's
// (mellium.im/xmpp and mellium.im/sasl), and by raw sockets where a test
// needs to see the exact bytes of a failure. Helpers are in
// e2e_helpers_test.go; the smoke test with non-Go clients is in
// e2e_smoke_test.go.

import (
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp/disco"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/ping"
	"mellium.im/xmpp/version"
)

// TestE2ELogin: every SASL mechanism over STARTTLS and direct TLS, and the
// ways a login must fail.
func TestE2ELogin(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		ts := startTestServer(t, backend, nil)
		ts.addUser(t, "alice", "password-1")
		ts.addUser(t, "dave", "password-4")
		ts.addUser(t, "carol", "password-3")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ts.srv.store.SetDisabled(ctx, "carol@localhost", true); err != nil {
			t.Fatal(err)
		}

		for _, transport := range []string{"starttls", "direct_tls"} {
			for _, m := range []sasl.Mechanism{sasl.ScramSha256Plus, sasl.ScramSha256, sasl.ScramSha1Plus, sasl.ScramSha1, sasl.Plain} {
				t.Run(transport+"/"+m.Name, func(t *testing.T) {
					res := "r-" + strings.ToLower(strings.ReplaceAll(m.Name, "-", ""))
					opts := []dialOption{withMechanisms(m), withResource(res)}
					if transport == "direct_tls" {
						opts = append(opts, withDirectTLS())
					}
					c := ts.dial(t, "alice", "password-1", opts...)
					if got, want := c.JID().String(), "alice@localhost/"+res; got != want {
						t.Errorf("bound JID = %q, want %q", got, want)
					}
					if cs := c.ConnectionState(); cs.Version < tls.VersionTLS12 || !cs.HandshakeComplete {
						t.Errorf("TLS state after login: version %x, handshake complete %v", cs.Version, cs.HandshakeComplete)
					}
					c.barrier(t) // the session routes stanzas
				})
			}
		}

		t.Run("TLS 1.2 client", func(t *testing.T) {
			// Without a tls-exporter binding (TLS 1.2) the client falls back to a
			// mechanism without channel binding.
			c := ts.dial(t, "alice", "password-1", withTLSMaxVersion(tls.VersionTLS12))
			if c.JID().Bare().String() != "alice@localhost" {
				t.Errorf("bound JID = %q", c.JID())
			}
			if v := c.ConnectionState().Version; v != tls.VersionTLS12 {
				t.Errorf("TLS version %x, want TLS 1.2", v)
			}
			c.barrier(t)
		})

		t.Run("mechanisms offered", func(t *testing.T) {
			r := ts.rawDial(t, "starttls")
			f := r.open()
			st := f.child(nsTLSFeature, "starttls")
			if st == nil || st.child(nsTLSFeature, "required") == nil {
				t.Errorf("before TLS the features must offer <starttls><required/></starttls>: %s", f)
			}
			if m := mechanisms(f); len(m) > 0 {
				t.Errorf("SASL mechanisms offered before TLS (RFC 6120 §5.3.1 makes TLS mandatory here): %v", m)
			}
			if err := r.startTLS(ts.tlsConfig()); err != nil {
				t.Fatal(err)
			}
			f = r.open()
			got := mechanisms(f)
			for _, want := range []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-1", "PLAIN"} {
				if !slices.Contains(got, want) {
					t.Errorf("over TLS 1.3 the mechanisms %v lack %s", got, want)
				}
			}
		})

		t.Run("wrong password", func(t *testing.T) {
			for _, m := range []sasl.Mechanism{sasl.ScramSha256Plus, sasl.ScramSha1, sasl.Plain} {
				if cond := ts.rawAuth(t, "starttls", m, "dave", "not-the-password"); cond != "failure/not-authorized" {
					t.Errorf("%s with a wrong password: got %s, want failure/not-authorized (RFC 6120 §6.5.10)", m.Name, cond)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, _, err := ts.connect(ctx, "dave", "not-the-password")
			if err == nil {
				t.Fatal("mellium logged in with a wrong password")
			}
			if c := saslCondition(err); c != "not-authorized" {
				t.Errorf("mellium's error: %v (condition %q), want not-authorized", err, c)
			}
		})

		t.Run("unknown user", func(t *testing.T) {
			// Indistinguishable from a wrong password (RFC 6120 §6.5.10, §13.10).
			if cond := ts.rawAuth(t, "direct_tls", sasl.ScramSha256, "nobody", "password-1"); cond != "failure/not-authorized" {
				t.Errorf("SCRAM for an unknown user: got %s, want failure/not-authorized", cond)
			}
			if cond := ts.rawAuth(t, "direct_tls", sasl.Plain, "nobody", "password-1"); cond != "failure/not-authorized" {
				t.Errorf("PLAIN for an unknown user: got %s, want failure/not-authorized", cond)
			}
		})

		t.Run("disabled account", func(t *testing.T) {
			for _, m := range []sasl.Mechanism{sasl.ScramSha256, sasl.Plain} {
				if cond := ts.rawAuth(t, "starttls", m, "carol", "password-3"); cond != "failure/account-disabled" {
					t.Errorf("%s for a disabled account with the right password: got %s, want failure/account-disabled (RFC 6120 §6.5.1)", m.Name, cond)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, _, err := ts.connect(ctx, "carol", "password-3"); err == nil {
				t.Error("mellium logged in to a disabled account")
			} else if c := saslCondition(err); c != "account-disabled" {
				t.Errorf("mellium's error for a disabled account: %v (condition %q), want account-disabled", err, c)
			}
		})

		t.Run("no TLS", func(t *testing.T) {
			r := ts.rawDial(t, "starttls")
			r.open()
			r.mustWrite("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" +
				base64.StdEncoding.EncodeToString([]byte("\x00alice\x00password-1")) + "</auth>")
			var got []string
			sawRefusal := false
			for {
				n, err := r.next()
				if err != nil {
					break
				}
				got = append(got, n.String())
				switch {
				case n.is(nsSASLFeature, "success"):
					t.Fatalf("authenticated over plain TCP: %v", got)
				case n.is(nsSASLFeature, "failure"), n.is(nsStreams, "error"):
					sawRefusal = true
				}
			}
			if !sawRefusal {
				t.Errorf("<auth/> before STARTTLS: want a SASL failure (encryption-required) or a stream error, got %v", got)
			}
			t.Logf("answer to <auth/> before STARTTLS: %v", got)
		})

		t.Run("TLS 1.1 refused", func(t *testing.T) {
			old := ts.tlsConfig()
			old.MinVersion, old.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
			d := net.Dialer{Timeout: e2eWait}
			if c, err := tls.DialWithDialer(&d, "tcp", ts.addr("direct_tls"), old); err == nil {
				c.Close()
				t.Error("direct TLS: a TLS 1.1 handshake succeeded")
			}
			r := ts.rawDial(t, "starttls")
			r.open()
			if err := r.startTLS(old); err == nil {
				t.Error("STARTTLS: a TLS 1.1 handshake succeeded")
			}
		})
	})
}

// rawAuth runs one SASL exchange on a fresh connection and returns
// "success" or "failure/<condition>".
func (ts *testServer) rawAuth(t *testing.T, listener string, m sasl.Mechanism, user, password string) string {
	t.Helper()
	r := ts.rawDial(t, listener)
	f := r.open()
	if listener == "starttls" {
		if err := r.startTLS(ts.tlsConfig()); err != nil {
			t.Fatal(err)
		}
		f = r.open()
	}
	n := r.auth(m, user, password, mechanisms(f))
	defer r.conn.Close()
	switch {
	case n.is(nsSASLFeature, "success"):
		return "success"
	case n.is(nsSASLFeature, "failure"):
		return "failure/" + n.firstChildName()
	}
	return n.String()
}

// TestE2EResource: resource binding (RFC 6120 §7).
func TestE2EResource(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		ts := startTestServer(t, backend, nil)
		ts.addUser(t, "alice", "password-1")

		t.Run("server chosen", func(t *testing.T) {
			c1 := ts.dial(t, "alice", "password-1")
			c2 := ts.dial(t, "alice", "password-1")
			for _, c := range []*testClient{c1, c2} {
				if c.JID().Resourcepart() == "" || c.JID().Bare().String() != "alice@localhost" {
					t.Errorf("bound JID %q: want alice@localhost/<resource chosen by the server>", c.JID())
				}
			}
			if c1.JID().Equal(c2.JID()) {
				t.Errorf("two sessions got the same resource %q", c1.JID())
			}
			c1.barrier(t)
			c2.barrier(t)
		})

		t.Run("conflict", func(t *testing.T) {
			// RFC 6120 §7.7.2.2: the server may terminate the older session with
			// a <conflict/> stream error; Kontor does.
			older := ts.dial(t, "alice", "password-1", withResource("phone"))
			newer := ts.dial(t, "alice", "password-1", withResource("phone"))
			err := older.ended(t, e2eWait)
			if streamCondition(err) != "conflict" {
				t.Errorf("the older session ended with %v, want a <conflict/> stream error", err)
			}
			if got := newer.JID().String(); got != "alice@localhost/phone" {
				t.Errorf("the newer session is bound to %q", got)
			}
			newer.barrier(t)
			if !newer.isOpen() {
				t.Error("the newer session was closed too")
			}
		})

		t.Run("conflict seen on the wire", func(t *testing.T) {
			r := ts.rawDial(t, "starttls")
			if got := r.login("alice", "password-1", "tablet", ""); got != "alice@localhost/tablet" {
				t.Fatalf("raw login bound %q", got)
			}
			newer := ts.dial(t, "alice", "password-1", withResource("tablet"))
			if cond, _ := r.streamError(); cond != "conflict" {
				t.Errorf("the replaced raw session got stream error %q, want conflict", cond)
			}
			newer.barrier(t)
		})
	})
}

// body is a message body with non-ASCII characters and characters that XML
// must escape.
const chatBody = "Grüße 👋 <&> \"quoted\" 'apostrophe' ✓"

// TestE2EChat: one-to-one messages (RFC 6121 §5, §8.5; XEP-0160, XEP-0203).
func TestE2EChat(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		ts := startTestServer(t, backend, nil)
		ts.addUser(t, "alice", "password-1")
		ts.addUser(t, "bob", "password-2")
		ts.addUser(t, "carol", "password-3")

		alice := ts.dial(t, "alice", "password-1", withResource("laptop"))
		bob := ts.dial(t, "bob", "password-2", withResource("phone"))
		for _, c := range []*testClient{alice, bob} {
			c.send(t, "<presence/>")
			c.barrier(t) // the initial presence has been handled
		}

		for _, tc := range []struct{ name, to string }{
			{"full JID", "bob@localhost/phone"},
			{"bare JID", "bob@localhost"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				body := chatBody + " to " + tc.name
				alice.chat(t, tc.to, body)
				m := bob.Messages.expect(t, "bob's message", func(n xmlNode) bool { return n.body() == body })
				if got := m.attr("from"); got != alice.JID().String() {
					t.Errorf("from = %q, want the sender's full JID %q", got, alice.JID())
				}
				if m.attr("type") != "chat" {
					t.Errorf("type = %q, want chat", m.attr("type"))
				}
				if got := m.attr("to"); got != tc.to {
					t.Errorf("to = %q, want %q as sent", got, tc.to)
				}
			})
		}

		t.Run("offline", func(t *testing.T) {
			sent := time.Now()
			body := chatBody + " while you were away"
			alice.chat(t, "carol@localhost", body)
			alice.barrier(t)
			alice.Messages.none(t, "alice", func(n xmlNode) bool { return n.attr("type") == "error" })

			carol := ts.dial(t, "carol", "password-3")
			carol.barrier(t)
			carol.Messages.none(t, "carol before her initial presence (XEP-0160 §3)", func(n xmlNode) bool { return n.body() == body })
			carol.send(t, "<presence/>")
			m := carol.Messages.expect(t, "carol's offline message", func(n xmlNode) bool { return n.body() == body })
			if got := m.attr("from"); got != alice.JID().String() {
				t.Errorf("from = %q, want %q", got, alice.JID())
			}
			d := m.child(nsDelay, "delay")
			if d == nil {
				t.Fatalf("the offline message has no <delay xmlns='urn:xmpp:delay'/> (XEP-0160 §3, XEP-0203): %s", m)
			}
			stamp, err := time.Parse(time.RFC3339Nano, d.attr("stamp"))
			if err != nil {
				t.Errorf("delay stamp %q is not an XEP-0082 date-time: %v", d.attr("stamp"), err)
			} else if stamp.Before(sent.Add(-2*time.Second)) || stamp.After(time.Now().Add(2*time.Second)) {
				t.Errorf("delay stamp %v is not when the message was sent (%v)", stamp, sent)
			}
			if !strings.HasSuffix(d.attr("stamp"), "Z") {
				t.Errorf("delay stamp %q is not in UTC (XEP-0203 §3)", d.attr("stamp"))
			}
			if f := d.attr("from"); f != "" && f != "localhost" {
				t.Errorf("delay from = %q, want the server (localhost) or none", f)
			}
			// Delivered once: a second session gets nothing.
			carol2 := ts.dial(t, "carol", "password-3")
			carol2.send(t, "<presence/>")
			carol2.barrier(t)
			carol2.Messages.none(t, "carol's second session", func(n xmlNode) bool { return n.body() == body })
		})

		t.Run("no such user", func(t *testing.T) {
			alice.chat(t, "nobody@localhost", "hello?")
			m := alice.Messages.expect(t, "the bounce", func(n xmlNode) bool {
				return n.attr("type") == "error" && n.attr("from") == "nobody@localhost"
			})
			if typ, cond := m.stanzaError(); cond != "service-unavailable" || typ != "cancel" {
				t.Errorf("error = %s/%s, want cancel/service-unavailable (RFC 6121 §8.5.2.2.1, §8.5.1): %s", typ, cond, m)
			}
		})

		t.Run("other domain", func(t *testing.T) {
			alice.chat(t, "someone@example.org", "hello, world")
			m := alice.Messages.expect(t, "the bounce", func(n xmlNode) bool {
				return n.attr("type") == "error" && n.attr("from") == "someone@example.org"
			})
			if typ, cond := m.stanzaError(); cond != "remote-server-not-found" || typ != "cancel" {
				t.Errorf("error = %s/%s, want cancel/remote-server-not-found (RFC 6120 §8.3.3.16): %s", typ, cond, m)
			}
		})
	})
}

// escapeXML escapes text for XML character data or attribute values.
func escapeXML(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// rosterItem finds the item for a JID in a roster query or push.
func rosterItem(iq xmlNode, j string) *xmlNode {
	q := iq.child(nsRoster, "query")
	if q == nil {
		if iq.is(nsRoster, "query") {
			q = &iq
		} else {
			return nil
		}
	}
	for i := range q.Nodes {
		if q.Nodes[i].XMLName.Local == "item" && q.Nodes[i].attr("jid") == j {
			return &q.Nodes[i]
		}
	}
	return nil
}

// subscription is an item's subscription ("none" when absent, RFC 6121
// §2.1.2.5).
func subscription(item *xmlNode) string {
	if s := item.attr("subscription"); s != "" {
		return s
	}
	return "none"
}

// TestE2ERosterSubscription: roster management and a mutual presence
// subscription (RFC 6121 §2, §3, §4), roster versioning (§2.6, XEP-0237).
func TestE2ERosterSubscription(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		ts := startTestServer(t, backend, nil)
		ts.addUser(t, "alice", "password-1")
		ts.addUser(t, "bob", "password-2")
		alice := ts.dial(t, "alice", "password-1", withResource("laptop"))
		bob := ts.dial(t, "bob", "password-2", withResource("phone"))

		for _, c := range []*testClient{alice, bob} {
			// A roster get makes the resource interested in pushes (§2.1.6).
			r := c.iq(t, "<iq type='get'><query xmlns='jabber:iq:roster'/></iq>")
			if r.attr("type") != "result" || r.child(nsRoster, "query") == nil {
				t.Fatalf("%s: roster get: %s", c.name, r)
			}
			c.send(t, "<presence/>")
			c.barrier(t)
		}

		pushFor := func(c *testClient, who, what string, ok func(item *xmlNode) bool) *xmlNode {
			t.Helper()
			p := c.RosterPushes.expect(t, c.name+": roster push "+what, func(n xmlNode) bool {
				it := rosterItem(n, who)
				return it != nil && ok(it)
			})
			if f := p.attr("from"); f != "" && f != c.JID().Bare().String() {
				t.Errorf("%s: a roster push from %q (must be absent or the account's bare JID, §2.1.6)", c.name, f)
			}
			return rosterItem(p, who)
		}

		// Alice adds Bob (§2.3).
		r := alice.iq(t, "<iq type='set'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bob'><group>Friends</group></item></query></iq>")
		if r.attr("type") != "result" {
			t.Fatalf("roster set: %s", r)
		}
		it := pushFor(alice, "bob@localhost", "after the roster set", func(*xmlNode) bool { return true })
		if it.attr("name") != "Bob" || subscription(it) != "none" || it.childText("", "group") != "Friends" {
			t.Errorf("pushed item %s: want name Bob, subscription none, group Friends", it)
		}

		// Alice subscribes to Bob (§3.1.2, §3.1.3).
		alice.send(t, "<presence to='bob@localhost' type='subscribe'/>")
		pushFor(alice, "bob@localhost", "with ask=subscribe", func(it *xmlNode) bool { return it.attr("ask") == "subscribe" })
		req := bob.Presences.expect(t, "bob: the subscription request", func(n xmlNode) bool { return n.attr("type") == "subscribe" })
		if req.attr("from") != "alice@localhost" {
			t.Errorf("subscription request from %q, want the bare JID alice@localhost (§3.1.3)", req.attr("from"))
		}

		// Bob approves (§3.1.5, §3.1.6).
		bob.send(t, "<presence to='alice@localhost' type='subscribed'/>")
		pushFor(bob, "alice@localhost", "with subscription from", func(it *xmlNode) bool { return subscription(it) == "from" })
		ok := alice.Presences.expect(t, "alice: subscribed", func(n xmlNode) bool { return n.attr("type") == "subscribed" })
		if ok.attr("from") != "bob@localhost" {
			t.Errorf("subscribed from %q, want bob@localhost", ok.attr("from"))
		}
		pushFor(alice, "bob@localhost", "with subscription to", func(it *xmlNode) bool { return subscription(it) == "to" })
		alice.Presences.expect(t, "alice: bob's available presence (§3.1.6)", func(n xmlNode) bool {
			return n.attr("from") == bob.JID().String() && n.attr("type") == ""
		})

		// And the other way round.
		bob.send(t, "<presence to='alice@localhost' type='subscribe'/>")
		alice.Presences.expect(t, "alice: bob's subscription request", func(n xmlNode) bool {
			return n.attr("type") == "subscribe" && n.attr("from") == "bob@localhost"
		})
		alice.send(t, "<presence to='bob@localhost' type='subscribed'/>")
		pushFor(alice, "bob@localhost", "with subscription both", func(it *xmlNode) bool { return subscription(it) == "both" })
		pushFor(bob, "alice@localhost", "with subscription both", func(it *xmlNode) bool { return subscription(it) == "both" })
		bob.Presences.expect(t, "bob: subscribed", func(n xmlNode) bool {
			return n.attr("type") == "subscribed" && n.attr("from") == "alice@localhost"
		})
		bob.Presences.expect(t, "bob: alice's available presence", func(n xmlNode) bool {
			return n.attr("from") == alice.JID().String() && n.attr("type") == ""
		})

		// Both rosters say both (§2.1.3).
		for _, tc := range []struct {
			c     *testClient
			other string
		}{{alice, "bob@localhost"}, {bob, "alice@localhost"}} {
			r := tc.c.iq(t, "<iq type='get'><query xmlns='jabber:iq:roster'/></iq>")
			it := rosterItem(r, tc.other)
			if it == nil || subscription(it) != "both" || it.hasAttr("ask") {
				t.Errorf("%s's roster: want %s with subscription both and no ask, got %s", tc.c.name, tc.other, r)
			}
		}

		// Presence broadcast reaches the contact (§4.2, §4.4).
		alice.send(t, "<presence><show>away</show><status>lunch</status></presence>")
		p := bob.Presences.expect(t, "bob: alice away", func(n xmlNode) bool { return n.childText("", "show") == "away" })
		if p.attr("from") != alice.JID().String() || p.childText("", "status") != "lunch" {
			t.Errorf("alice's broadcast as bob got it: %s", p)
		}
		bob.send(t, "<presence><show>dnd</show></presence>")
		p = alice.Presences.expect(t, "alice: bob dnd", func(n xmlNode) bool { return n.childText("", "show") == "dnd" })
		if p.attr("from") != bob.JID().String() {
			t.Errorf("bob's broadcast as alice got it: %s", p)
		}

		// Roster versioning (§2.6, XEP-0237).
		r = alice.iq(t, "<iq type='get'><query xmlns='jabber:iq:roster' ver=''/></iq>")
		q := r.child(nsRoster, "query")
		if q == nil || q.attr("ver") == "" {
			t.Fatalf("roster get with ver='': want the whole roster with a ver attribute (§2.6.2), got %s", r)
		}
		ver := q.attr("ver")
		r = alice.iq(t, "<iq type='get'><query xmlns='jabber:iq:roster' ver='"+ver+"'/></iq>")
		if r.attr("type") != "result" || len(r.Nodes) != 0 {
			t.Errorf("roster get with the current ver %q: want an empty IQ result (§2.6.3), got %s", ver, r)
		}
		r = alice.iq(t, "<iq type='get'><query xmlns='jabber:iq:roster' ver='stale-version'/></iq>")
		if rosterItem(r, "bob@localhost") == nil {
			t.Errorf("roster get with a stale ver: want the whole roster, got %s", r)
		}
	})
}

// TestE2EServiceDiscovery: disco#info and caps of the server (XEP-0030,
// XEP-0115), ping (XEP-0199), vCard (XEP-0054), software version (XEP-0092)
// and the answer to an unknown IQ (RFC 6120 §8.4).
func TestE2EServiceDiscovery(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		ts := startTestServer(t, backend, nil)
		ts.addUser(t, "alice", "password-1")
		ts.addUser(t, "bob", "password-2")
		alice := ts.dial(t, "alice", "password-1", withFeatures(disco.StreamFeature()))
		bob := ts.dial(t, "bob", "password-2")
		server := jid.MustParse("localhost")

		var info disco.Info
		t.Run("disco#info", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
			defer cancel()
			var err error
			info, err = disco.GetInfo(ctx, "", server, alice.Session)
			if err != nil {
				t.Fatalf("disco#info: %v", err)
			}
			var features []string
			for _, f := range info.Features {
				features = append(features, f.Var)
			}
			for _, want := range []string{"http://jabber.org/protocol/disco#info", "urn:xmpp:ping", "vcard-temp", "msgoffline", "jabber:iq:version"} {
				if !slices.Contains(features, want) {
					t.Errorf("disco#info features %v lack %q", features, want)
				}
			}
			hasServerIM := false
			for _, id := range info.Identity {
				hasServerIM = hasServerIM || id.Category == "server" && id.Type == "im"
			}
			if !hasServerIM {
				t.Errorf("disco#info identities %v lack server/im", info.Identity)
			}
		})

		t.Run("caps stream feature", func(t *testing.T) {
			caps, ok := disco.ServerCaps(alice.Session)
			if !ok {
				t.Fatal("no <c xmlns='http://jabber.org/protocol/caps'/> stream feature (XEP-0115 §6.3)")
			}
			if caps.Node == "" || caps.Ver == "" || caps.Hash.String() != "sha-1" {
				t.Errorf("caps feature: node %q, ver %q, hash %q", caps.Node, caps.Ver, caps.Hash)
			}
			// The ver string must be the hash of what disco#info answers
			// (XEP-0115 §5.1), computed here independently of the server.
			r := alice.iq(t, "<iq type='get' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
			q := r.child("http://jabber.org/protocol/disco#info", "query")
			if q == nil {
				t.Fatalf("disco#info: %s", r)
			}
			if got := capsVer(*q); got != caps.Ver {
				t.Errorf("caps ver %q does not verify: the disco#info answer hashes to %q", caps.Ver, got)
			}
			// And the node#ver query is answered like the plain one.
			r = alice.iq(t, "<iq type='get' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info' node='"+caps.Node+"#"+caps.Ver+"'/></iq>")
			if q := r.child("http://jabber.org/protocol/disco#info", "query"); q == nil || capsVer(*q) != caps.Ver {
				t.Errorf("disco#info for node %s#%s: %s", caps.Node, caps.Ver, r)
			}
		})

		t.Run("ping", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
			defer cancel()
			if err := ping.Send(ctx, alice.Session, server); err != nil {
				t.Errorf("ping to the server: %v", err)
			}
		})

		t.Run("vcard", func(t *testing.T) {
			r := alice.iq(t, "<iq type='set'><vCard xmlns='vcard-temp'><FN>Alice Liddell</FN><NICKNAME>"+escapeXML(chatBody)+"</NICKNAME></vCard></iq>")
			if r.attr("type") != "result" {
				t.Fatalf("vCard set: %s", r)
			}
			r = bob.iq(t, "<iq type='get' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>")
			v := r.child("vcard-temp", "vCard")
			if r.attr("type") != "result" || v == nil || v.childText("", "FN") != "Alice Liddell" || v.childText("", "NICKNAME") != chatBody {
				t.Errorf("bob reading alice's vCard: %s", r)
			}
		})

		t.Run("unknown namespace", func(t *testing.T) {
			for _, typ := range []string{"get", "set"} {
				r := alice.iq(t, "<iq type='"+typ+"' to='localhost'><query xmlns='urn:example:kontor:no-such-thing'/></iq>")
				if et, cond := r.stanzaError(); r.attr("type") != "error" || cond != "service-unavailable" || et != "cancel" {
					t.Errorf("IQ %s with an unknown payload: want a cancel/service-unavailable error (RFC 6120 §8.4), got %s", typ, r)
				}
			}
		})

		t.Run("software version", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
			defer cancel()
			v, err := version.Get(ctx, alice.Session, server)
			if err != nil {
				t.Fatalf("software version: %v", err)
			}
			if v.Name != "Kontor" {
				t.Errorf("software name = %q, want Kontor", v.Name)
			}
		})

		t.Run("features after authentication", func(t *testing.T) {
			r := ts.rawDial(t, "direct_tls")
			f := r.open()
			n := r.auth(sasl.ScramSha256, "bob", "password-2", mechanisms(f))
			if !n.is(nsSASLFeature, "success") {
				t.Fatalf("auth: %s", n)
			}
			r.dec = xml.NewDecoder(r.conn)
			f = r.open()
			for _, want := range [][2]string{{nsBindFeature, "bind"}, {nsCaps, "c"}, {"urn:xmpp:features:rosterver", "ver"}} {
				if f.child(want[0], want[1]) == nil {
					t.Errorf("stream features after authentication lack {%s}%s: %s", want[0], want[1], f)
				}
			}
		})
	})
}

// capsVer computes the XEP-0115 §5.1 verification string (SHA-1) of a
// disco#info query.
func capsVer(q xmlNode) string {
	const nsInfo = "http://jabber.org/protocol/disco#info"
	var ids, features []string
	var forms []string
	for _, c := range q.Nodes {
		switch {
		case c.is(nsInfo, "identity"):
			ids = append(ids, c.attr("category")+"/"+c.attr("type")+"/"+c.attr("lang")+"/"+c.attr("name"))
		case c.is(nsInfo, "feature"):
			features = append(features, c.attr("var"))
		case c.is("jabber:x:data", "x"):
			formType := ""
			var fields []string
			for _, f := range c.Nodes {
				if f.XMLName.Local != "field" {
					continue
				}
				var vals []string
				for _, v := range f.Nodes {
					if v.XMLName.Local == "value" {
						vals = append(vals, v.Text)
					}
				}
				if f.attr("var") == "FORM_TYPE" {
					if len(vals) > 0 {
						formType = vals[0]
					}
					continue
				}
				sort.Strings(vals)
				fields = append(fields, f.attr("var")+"<"+strings.Join(vals, "<"))
			}
			sort.Strings(fields)
			s := formType + "<"
			for _, f := range fields {
				s += f + "<"
			}
			forms = append(forms, s)
		}
	}
	sort.Strings(ids)
	sort.Strings(features)
	sort.Strings(forms)
	var s strings.Builder
	for _, id := range ids {
		s.WriteString(id + "<")
	}
	for _, f := range features {
		s.WriteString(f + "<")
	}
	for _, f := range forms {
		s.WriteString(f)
	}
	sum := sha1.Sum([]byte(s.String()))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// TestE2EStanzaSizeLimit: a stanza over c2s.max_stanza_bytes ends the
// sender's stream with policy-violation (RFC 6120 §4.9.3.18, §13.12) and
// nobody else's.
func TestE2EStanzaSizeLimit(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		ts := startTestServer(t, backend, func(c *Config) { c.C2S.MaxStanzaBytes = 10000 })
		for _, u := range []string{"alice", "bob", "carol"} {
			ts.addUser(t, u, "password-"+u)
		}
		alice := ts.dial(t, "alice", "password-alice", withResource("a"))
		bob := ts.dial(t, "bob", "password-bob", withResource("b"))
		carol := ts.dial(t, "carol", "password-carol", withResource("c"))

		// Just under the limit passes intact.
		mid := strings.Repeat("m", 9000)
		bob.chat(t, carol.JID().String(), mid)
		carol.Messages.expect(t, "carol: a 9000-byte body", func(n xmlNode) bool { return n.body() == mid })

		big := strings.Repeat("x", 20000)
		ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
		defer cancel()
		_ = alice.Send(ctx, tokens(t, "<message to='"+bob.JID().String()+"' type='chat'><body>"+big+"</body></message>"))
		err := alice.ended(t, e2eWait)
		if c := streamCondition(err); c != "policy-violation" {
			t.Errorf("after a 20000-byte stanza the sender's session ended with %v, want a policy-violation stream error", err)
		}

		bob.chat(t, carol.JID().String(), "still there?")
		carol.Messages.expect(t, "carol: bob's message after the oversized stanza", func(n xmlNode) bool { return n.body() == "still there?" })
		carol.chat(t, bob.JID().String(), "yes")
		bob.Messages.expect(t, "bob: carol's answer", func(n xmlNode) bool { return n.body() == "yes" })
		bob.barrier(t)
		bob.Messages.none(t, "bob", func(n xmlNode) bool { return len(n.body()) == len(big) })
	})
}

// TestE2EConnectionsPerIP: c2s.max_connections_per_ip.
func TestE2EConnectionsPerIP(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		ts := startTestServer(t, backend, func(c *Config) { c.C2S.MaxConnectionsPerIP = 3 })
		ts.addUser(t, "alice", "password-1")

		var open []*rawClient
		for i := range 2 {
			r := ts.rawDial(t, "starttls")
			if f := r.open(); f.child(nsTLSFeature, "starttls") == nil {
				t.Fatalf("connection %d: %s", i+1, f)
			}
			open = append(open, r)
		}
		third := ts.dial(t, "alice", "password-1")

		for _, l := range []string{"starttls", "direct_tls"} {
			r := ts.rawDial(t, l)
			f := r.open()
			if c := f.streamErrorCondition(); c != "policy-violation" {
				t.Errorf("4th connection (%s): want a policy-violation stream error, got %s", l, f)
			}
			r.waitClosed()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, _, err := ts.connect(ctx, "alice", "password-1"); streamCondition(err) != "policy-violation" {
			t.Errorf("4th connection with mellium: %v, want a policy-violation stream error", err)
		}

		// Closing one lets a new one in. The rejected connections are
		// released when the server has finished with them, just after the
		// error was written: poll for a short while.
		open[0].mustWrite("</stream:stream>")
		open[0].waitClosed()
		deadline := time.Now().Add(e2eWait)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
			s, conn, err := ts.connect(ctx, "alice", "password-1")
			cancel()
			if err == nil {
				c := ts.serve(t, "alice (new)", s, conn)
				c.barrier(t)
				break
			}
			if streamCondition(err) != "policy-violation" || time.Now().After(deadline) {
				t.Fatalf("a new connection after closing one: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		third.barrier(t)
	})
}

// TestE2EAuthBackoff: auth.max_failures_per_account and auth.backoff, for
// wrong passwords given with SCRAM and with PLAIN.
func TestE2EAuthBackoff(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		for _, wrong := range []sasl.Mechanism{sasl.ScramSha256, sasl.Plain} {
			t.Run("wrong passwords with "+wrong.Name, func(t *testing.T) {
				t.Parallel()
				ts := startTestServer(t, backend, func(c *Config) {
					c.Auth.MaxFailuresPerAccount = 3
					c.Auth.Backoff = time.Second
					c.Auth.MaxBackoff = 2 * time.Second
				})
				ts.addUser(t, "bob", "password-2")
				ts.addUser(t, "alice", "password-1")

				for i := range 3 {
					if got := ts.rawAuth(t, "direct_tls", wrong, "bob", "wrong-password"); got != "failure/not-authorized" {
						t.Fatalf("wrong password #%d: %s", i+1, got)
					}
				}
				lastFailure := time.Now()
				if got := ts.rawAuth(t, "direct_tls", sasl.ScramSha256, "bob", "password-2"); got != "failure/temporary-auth-failure" {
					t.Errorf("the right password right after 3 wrong ones (max_failures_per_account 3, backoff 1s): %s, want failure/temporary-auth-failure (RFC 6120 §6.5.13)", got)
				}
				// A wrong one gets the same answer during the back-off:
				// the answer must not tell which guess was right.
				if got := ts.rawAuth(t, "direct_tls", wrong, "bob", "another-guess"); got != "failure/temporary-auth-failure" {
					t.Errorf("a wrong password during the back-off: %s, want the answer the right one gets", got)
				}
				lastFailure = time.Now()
				// Another account is not affected.
				ts.dial(t, "alice", "password-1").barrier(t)

				// After the back-off the right password works.
				deadline := lastFailure.Add(e2eWait)
				for {
					got := ts.rawAuth(t, "direct_tls", sasl.ScramSha256, "bob", "password-2")
					if got == "success" {
						if waited := time.Since(lastFailure); waited < 900*time.Millisecond {
							t.Errorf("login succeeded %v after the third failure, before the 1s back-off ended", waited.Round(time.Millisecond))
						}
						break
					}
					if got != "failure/temporary-auth-failure" || time.Now().After(deadline) {
						t.Fatalf("right password after the back-off: %s", got)
					}
					time.Sleep(100 * time.Millisecond)
				}
				ts.dial(t, "bob", "password-2").barrier(t)
			})
		}
	})
}

// TestE2EUserAdmin: `kontor user disable|enable|passwd|delete` while the
// server runs.
func TestE2EUserAdmin(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		ts := startTestServer(t, backend, nil)
		ts.addUser(t, "bob", "password-2")
		login := func(password string) error {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, conn, err := ts.connect(ctx, "bob", password)
			if err == nil {
				s.Close()
				conn.Close()
			}
			return err
		}
		run := func(stdin string, args ...string) string {
			t.Helper()
			out, err := ts.cli(t, stdin, args...)
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		// closedWithin: the session must end within 5 seconds of the command
		// (auth.account_watch_interval is 1s by default).
		closedWithin := func(c *testClient, start time.Time, what string) {
			t.Helper()
			err := c.ended(t, 5*time.Second-time.Since(start))
			took := time.Since(start)
			if streamCondition(err) == "" {
				t.Errorf("%s: the session ended without a stream error: %v", what, err)
			}
			t.Logf("%s: session closed after %v with %v", what, took.Round(time.Millisecond), err)
		}

		bob := ts.dial(t, "bob", "password-2")
		start := time.Now()
		if out := run("", "user", "disable", "bob@localhost"); !strings.Contains(out, "disabled bob@localhost") {
			t.Errorf("user disable printed %q", out)
		}
		closedWithin(bob, start, "disable")
		if err := login("password-2"); err == nil {
			t.Error("a disabled account logged in")
		} else if c := saslCondition(err); c != "account-disabled" {
			t.Errorf("login to a disabled account: %v (condition %q), want account-disabled", err, c)
		}

		if out := run("", "user", "enable", "bob@localhost"); !strings.Contains(out, "enabled bob@localhost") {
			t.Errorf("user enable printed %q", out)
		}
		if err := login("password-2"); err != nil {
			t.Errorf("login after enable: %v", err)
		}

		if out := run("password-new-2\n", "user", "passwd", "bob@localhost"); !strings.Contains(out, "password of bob@localhost changed") {
			t.Errorf("user passwd printed %q", out)
		}
		if err := login("password-2"); saslCondition(err) != "not-authorized" {
			t.Errorf("login with the old password after passwd: %v, want not-authorized", err)
		}
		bob = ts.dial(t, "bob", "password-new-2")

		start = time.Now()
		if out := run("", "user", "delete", "bob@localhost"); !strings.Contains(out, "deleted bob@localhost") {
			t.Errorf("user delete printed %q", out)
		}
		closedWithin(bob, start, "delete")
		if err := login("password-new-2"); saslCondition(err) != "not-authorized" {
			t.Errorf("login to a deleted account: %v, want not-authorized", err)
		}
		if out := run("", "user", "list"); strings.Contains(out, "bob@localhost") {
			t.Errorf("user list after delete still shows bob:\n%s", out)
		}
	})
}

// TestE2EAddressReused: an account deleted while the server runs and
// created anew at once for someone else. The running server learns of the
// deletion late (auth.account_watch_interval, 5 s here, so that the
// deletion, the new account and its login all fall before the watcher's
// first look): it closes the old owner's session and keeps the new
// owner's, which authenticated against the new account.
func TestE2EAddressReused(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		ts := startTestServer(t, backend, func(c *Config) { c.Auth.AccountWatchInterval = 5 * time.Second })
		ts.addUser(t, "bob", "old-owner-password")
		old := ts.dial(t, "bob", "old-owner-password")
		start := time.Now()
		if out, err := ts.cli(t, "", "user", "delete", "bob@localhost"); err != nil || !strings.Contains(out, "deleted bob@localhost") {
			t.Fatalf("user delete: %q, %v", out, err)
		}
		ts.addUser(t, "bob", "new-owner-password")
		fresh := ts.dial(t, "bob", "new-owner-password")
		fresh.barrier(t)
		before := time.Since(start)
		if err := old.ended(t, 10*time.Second); streamCondition(err) != "not-authorized" {
			t.Errorf("the old owner's session ended with %v, want not-authorized", err)
		}
		t.Logf("the new owner logged in %v after the deletion; the old session was closed after %v",
			before.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		if !strings.Contains(ts.logs.String(), "closed the former owner's sessions of an address created anew") {
			t.Errorf("the watcher did not see the address created anew (the new login took %v, the watcher looks every 5 s)", before)
		}
		if !fresh.isOpen() {
			t.Fatal("the new owner's session was closed with the old owner's")
		}
		fresh.barrier(t)
	})
}

// TestE2EShutdown: a graceful stop sends <system-shutdown/> (RFC 6120
// §4.9.3.22) to every stream, bound or still negotiating.
func TestE2EShutdown(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		t.Run("bound session", func(t *testing.T) {
			ts := startTestServer(t, backend, nil)
			ts.addUser(t, "alice", "password-1")
			c := ts.dial(t, "alice", "password-1")
			c.barrier(t)
			start := time.Now()
			if err := ts.shutdown(); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("Shutdown took %v", took)
			}
			if err := c.ended(t, e2eWait); streamCondition(err) != "system-shutdown" {
				t.Errorf("the client's session ended with %v, want a system-shutdown stream error", err)
			}
			if conn, err := net.DialTimeout("tcp", ts.addr("starttls"), time.Second); err == nil {
				conn.Close()
				t.Error("the server still accepts connections after Shutdown")
			}
		})
		t.Run("negotiating stream", func(t *testing.T) {
			ts := startTestServer(t, backend, nil)
			r := ts.rawDial(t, "starttls")
			r.open()
			done := make(chan error, 1)
			start := time.Now()
			go func() { done <- ts.shutdown() }()
			var got []string
			cond := ""
			for cond == "" {
				n, err := r.next()
				if err != nil {
					got = append(got, err.Error())
					break
				}
				got = append(got, n.String())
				cond = n.streamErrorCondition()
			}
			if cond != "system-shutdown" {
				t.Errorf("a stream still negotiating (after <stream:features/>) got %v within %v, want a system-shutdown stream error", got, time.Since(start).Round(time.Millisecond))
			}
			r.conn.Close()
			select {
			case err := <-done:
				took := time.Since(start)
				if err != nil {
					t.Errorf("Shutdown with a client in negotiation: %v after %v", err, took.Round(time.Millisecond))
				} else if took > 3*time.Second {
					t.Errorf("Shutdown took %v with a client in negotiation", took.Round(time.Millisecond))
				}
			case <-time.After(20 * time.Second):
				t.Fatal("Shutdown did not return")
			}
		})
	})
}

// TestE2EWhitespaceKeepalive: whitespace between top-level elements is
// allowed everywhere (RFC 6120 §4.6.1, §11.7 note).
func TestE2EWhitespaceKeepalive(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		ts := startTestServer(t, backend, nil)
		ts.addUser(t, "alice", "password-1")
		for _, l := range []string{"starttls", "direct_tls"} {
			t.Run(l, func(t *testing.T) {
				r := ts.rawDial(t, l)
				full := r.login("alice", "password-1", "ws-"+l, " \n\t \r\n")
				for i := range 3 {
					r.mustWrite(" \n \t ")
					r.mustWrite(fmt.Sprintf("<message to='%s' id='ka%d'><body>keepalive %d</body></message>", full, i, i))
					r.mustWrite("\n")
					n := r.mustNext("echo")
					if !n.is("jabber:client", "message") || n.body() != fmt.Sprintf("keepalive %d", i) {
						t.Fatalf("after whitespace, got %s", n)
					}
				}
				r.mustWrite("\n\n\n")
				r.mustWrite("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
				if n := r.mustNext("ping reply"); n.attr("id") != "p1" || n.attr("type") != "result" {
					t.Errorf("ping after whitespace: %s", n)
				}
				r.mustWrite("</stream:stream>")
				if _, err := r.next(); err != errStreamEnd {
					t.Errorf("closing the stream: %v, want </stream:stream>", err)
				}
			})
		}
	})
}

package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/history"
)

// freePort reserves a loopback port for a listener that must be known
// before the server starts (the other server's static route).
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startFederated starts a server for domain with federation on, its s2s
// listener at addr and the given static routes.
func startFederated(t *testing.T, domain, addr string, routes ...string) *testServer {
	t.Helper()
	return startTestServer(t, "sqlite", func(c *Config) {
		c.Domains = []string{domain}
		c.S2S.Enabled = true
		c.S2S.Addr = addr
		c.S2S.Routes = routes
		c.S2S.ConnectTimeout = 5 * time.Second
	})
}

// TestFederation runs two Kontors, a.test and b.test, federating over
// loopback with self-signed certificates (so they authenticate with
// dialback), and mellium clients on both.
func TestFederation(t *testing.T) {
	t.Parallel()
	addrA, addrB, addrG := freePort(t), freePort(t), freePort(t)
	dead := freePort(t) // nothing listens here
	a := startFederated(t, "a.test", addrA, "b.test="+addrB, "c.test="+dead, "g.test="+addrG)
	b := startFederated(t, "b.test", addrB, "a.test="+addrA)
	a.addUser(t, "alice@a.test", "password-a")
	b.addUser(t, "bob@b.test", "password-b")
	alice := a.dial(t, "alice@a.test", "password-a", withResource("laptop"))
	bob := b.dial(t, "bob@b.test", "password-b", withResource("phone"))
	for _, c := range []*testClient{alice, bob} {
		c.iq(t, "<iq type='get'><query xmlns='jabber:iq:roster'/></iq>")
		c.send(t, "<presence/>")
		c.barrier(t)
	}

	t.Run("messages both ways", func(t *testing.T) {
		alice.chat(t, "bob@b.test", "hello from a")
		m := bob.Messages.expect(t, "bob: alice's message", func(n xmlNode) bool { return n.body() == "hello from a" })
		if m.attr("from") != "alice@a.test/laptop" || m.attr("type") != "chat" {
			t.Errorf("bob got %s", m)
		}
		bob.chat(t, "alice@a.test/laptop", "hello from b")
		m = alice.Messages.expect(t, "alice: bob's answer", func(n xmlNode) bool { return n.body() == "hello from b" })
		if m.attr("from") != "bob@b.test/phone" {
			t.Errorf("alice got %s", m)
		}
	})

	t.Run("presence subscription", func(t *testing.T) {
		alice.send(t, "<presence to='bob@b.test' type='subscribe'/>")
		req := bob.Presences.expect(t, "bob: the subscription request", func(n xmlNode) bool { return n.attr("type") == "subscribe" })
		if req.attr("from") != "alice@a.test" {
			t.Errorf("subscription request from %q, want alice@a.test", req.attr("from"))
		}
		bob.send(t, "<presence to='alice@a.test' type='subscribed'/>")
		alice.Presences.expect(t, "alice: subscribed", func(n xmlNode) bool {
			return n.attr("type") == "subscribed" && n.attr("from") == "bob@b.test"
		})
		alice.RosterPushes.expect(t, "alice: bob with subscription to", func(n xmlNode) bool {
			it := rosterItem(n, "bob@b.test")
			return it != nil && subscription(it) == "to"
		})
		// Bob's server answers alice's server's probe, or bob's broadcast
		// reaches her now that she is subscribed.
		bob.send(t, "<presence><show>dnd</show></presence>")
		alice.Presences.expect(t, "alice: bob's presence", func(n xmlNode) bool {
			return n.attr("from") == "bob@b.test/phone" && n.childText("", "show") == "dnd"
		})
	})

	t.Run("IQ to the remote server", func(t *testing.T) {
		r := alice.iq(t, "<iq type='get' to='b.test' id='ping-1'><ping xmlns='urn:xmpp:ping'/></iq>")
		if r.attr("type") != "result" || r.attr("from") != "b.test" {
			t.Errorf("ping b.test: %s", r)
		}
		r = bob.iq(t, "<iq type='get' to='a.test' id='v-1'><query xmlns='jabber:iq:version'/></iq>")
		if q := r.child("jabber:iq:version", "query"); r.attr("type") != "result" || q == nil || q.childText("jabber:iq:version", "name") == "" {
			t.Errorf("version of a.test: %s", r)
		}
	})

	t.Run("unreachable domain bounces", func(t *testing.T) {
		alice.send(t, "<message to='carol@c.test' id='to-c' type='chat'><body>anyone?</body></message>")
		m := alice.Messages.expect(t, "alice: the bounce", func(n xmlNode) bool { return n.attr("id") == "to-c" })
		if typ, cond := m.stanzaError(); m.attr("type") != "error" || cond != "remote-server-not-found" {
			t.Errorf("bounce %s: type %s condition %s, want remote-server-not-found", m, typ, cond)
		}
		if m.attr("from") != "carol@c.test" {
			t.Errorf("bounce from %q, want carol@c.test", m.attr("from"))
		}
	})

	t.Run("the recipient's policy applies to remote senders", func(t *testing.T) {
		// On g.test, accounts the directory does not know are guests, and
		// the default policy lets guests talk only to their sponsors.
		g := startTestServer(t, "sqlite", func(c *Config) {
			c.Domains = []string{"g.test"}
			c.S2S.Enabled, c.S2S.Addr, c.S2S.Routes = true, addrG, []string{"a.test=" + addrA}
			c.Policy.UnknownLocalKind = "guest"
		})
		g.addUser(t, "gina@g.test", "password-g")
		gina := g.dial(t, "gina@g.test", "password-g", withResource("desk"))
		gina.send(t, "<presence/>")
		gina.barrier(t)
		alice.send(t, "<message to='gina@g.test' id='to-g' type='chat'><body>offer</body></message>")
		m := alice.Messages.expect(t, "alice: g.test's refusal", func(n xmlNode) bool { return n.attr("id") == "to-g" })
		if _, cond := m.stanzaError(); m.attr("type") != "error" || cond != "policy-violation" {
			t.Errorf("alice got %s, want a policy-violation error", m)
		}
		if !strings.Contains(m.String(), "guest_not_sponsored") {
			t.Errorf("refusal %s does not give g.test's reason guest_not_sponsored", m)
		}
		gina.Messages.none(t, "gina: alice's message", func(n xmlNode) bool { return n.body() == "offer" })
	})

	t.Run("metrics", func(t *testing.T) {
		m := scrape(t, a)
		if m["kontor_s2s_connections_outbound"] < 1 || m["kontor_s2s_connections_inbound"] < 1 {
			t.Errorf("a.test's s2s gauges: out %v in %v, want at least 1 each", m["kontor_s2s_connections_outbound"], m["kontor_s2s_connections_inbound"])
		}
	})

	t.Run("forged from is refused", func(t *testing.T) {
		// A peer that authenticates as a.test (dialback with a.test's
		// real key, verified by a.test) and then sends a stanza from
		// another domain.
		secret, err := os.ReadFile(filepath.Join(a.dir, "keys", "dialback.key"))
		if err != nil {
			t.Fatal(err)
		}
		// authenticated returns a stream to b.test that passed dialback
		// as a.test.
		authenticated := func() *s2sPeer {
			p := dialS2S(t, b.addr("s2s"), "a.test", "b.test")
			p.write("<db:result from='a.test' to='b.test'>" + xepKey(secret, "b.test", "a.test", p.id) + "</db:result>")
			res := p.next("the dialback result")
			if res.XMLName.Local != "result" || res.attr("type") != "valid" {
				t.Fatalf("dialback with a.test's key: %s", res)
			}
			return p
		}
		for _, tc := range []struct{ name, stanza, cond string }{
			{"forged from", "<message from='mallory@evil.test' to='bob@b.test' type='chat'><body>trust me</body></message>", "invalid-from"},
			{"no from", "<message to='bob@b.test' type='chat'><body>trust me</body></message>", "improper-addressing"},
			{"relay through b.test", "<message from='alice@a.test' to='carol@c.test' type='chat'><body>trust me</body></message>", "host-unknown"},
		} {
			p := authenticated()
			p.write(tc.stanza)
			if c := p.next("the stream error").streamErrorCondition(); c != tc.cond {
				t.Errorf("%s: stream error %q, want %s", tc.name, c, tc.cond)
			}
		}
		bob.Messages.none(t, "bob: the forged message", func(n xmlNode) bool { return n.body() == "trust me" })
		// An honest stanza on such a stream is delivered.
		p := authenticated()
		p.write("<message from='alice@a.test/raw' to='bob@b.test/phone' type='chat'><body>raw but honest</body></message>")
		bob.Messages.expect(t, "bob: the raw stream's message", func(n xmlNode) bool { return n.body() == "raw but honest" })

		// A wrong key is refused.
		q := dialS2S(t, b.addr("s2s"), "a.test", "b.test")
		q.write("<db:result from='a.test' to='b.test'>" + strings.Repeat("ab", 32) + "</db:result>")
		res := q.next("the dialback result for a wrong key")
		if res.attr("type") != "invalid" {
			t.Errorf("dialback with a wrong key: %s", res)
		}

		// Stanzas before authentication end the stream.
		u := dialS2S(t, b.addr("s2s"), "a.test", "b.test")
		u.write("<message from='alice@a.test' to='bob@b.test'><body>early</body></message>")
		if c := u.next("the stream error").streamErrorCondition(); c != "not-authorized" {
			t.Errorf("stanza before authentication: stream error %q, want not-authorized", c)
		}
	})
}

// xepKey computes a dialback key as XEP-0220 §2.4 defines it.
func xepKey(secret []byte, receiving, originating, id string) string {
	k := sha256.Sum256(secret)
	m := hmac.New(sha256.New, k[:])
	io.WriteString(m, receiving+" "+originating+" "+id)
	return hex.EncodeToString(m.Sum(nil))
}

// s2sPeer is a raw server-to-server stream for tests.
type s2sPeer struct {
	t    *testing.T
	conn net.Conn
	dec  *xml.Decoder
	id   string
}

// dialS2S connects to an s2s listener as from, negotiates STARTTLS and
// stops after the features of the new stream, which must offer dialback
// when wantDialback is true.
func dialS2S(t *testing.T, addr, from, to string, wantDialback ...bool) *s2sPeer {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, e2eWait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	p := &s2sPeer{t: t, conn: conn}
	open := func() xmlNode {
		p.write(fmt.Sprintf("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='%s' to='%s' version='1.0'>", from, to))
		p.header()
		return p.next("the stream features")
	}
	f := open()
	if f.child("urn:ietf:params:xml:ns:xmpp-tls", "starttls") == nil {
		t.Fatalf("features without STARTTLS: %s", f)
	}
	p.write("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	if n := p.next("proceed"); n.XMLName.Local != "proceed" {
		t.Fatalf("STARTTLS answered with %s", n)
	}
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) // the test checks dialback, not the certificate
	_ = tc.SetDeadline(time.Now().Add(e2eWait))
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	p.conn = tc
	f = open()
	if (len(wantDialback) == 0 || wantDialback[0]) && f.child("urn:xmpp:features:dialback", "dialback") == nil {
		t.Fatalf("features after TLS without dialback: %s", f)
	}
	return p
}

// header reads the server's stream header and keeps its id.
func (p *s2sPeer) header() {
	p.t.Helper()
	p.dec = xml.NewDecoder(p.conn)
	_ = p.conn.SetReadDeadline(time.Now().Add(e2eWait))
	for {
		tok, err := p.dec.Token()
		if err != nil {
			p.t.Fatalf("reading the stream header: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "stream" {
			for _, a := range se.Attr {
				if a.Name.Local == "id" {
					p.id = a.Value
				}
			}
			return
		}
	}
}

func (p *s2sPeer) write(s string) {
	p.t.Helper()
	_ = p.conn.SetWriteDeadline(time.Now().Add(e2eWait))
	if _, err := io.WriteString(p.conn, s); err != nil {
		p.t.Fatalf("write: %v", err)
	}
}

func (p *s2sPeer) next(what string) xmlNode {
	p.t.Helper()
	_ = p.conn.SetReadDeadline(time.Now().Add(2 * e2eWait))
	for {
		tok, err := p.dec.Token()
		if err != nil {
			p.t.Fatalf("%s: %v", what, err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			var n xmlNode
			if err := p.dec.DecodeElement(&n, &se); err != nil {
				p.t.Fatalf("%s: %v", what, err)
			}
			return n
		}
	}
}

// TestFederationSASLExternal: servers that trust each other's certificate
// (s2s.ca_file) authenticate with SASL EXTERNAL instead of dialback, and
// with require_valid_certificates a peer whose certificate does not
// verify is refused.
func TestFederationSASLExternal(t *testing.T) {
	t.Parallel()
	addrA, addrB := freePort(t), freePort(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	for _, d := range []struct{ dir, domain string }{{dirA, "a.test"}, {dirB, "b.test"}} {
		if err := ensureSelfSigned(filepath.Join(d.dir, "tls", "selfsigned.crt"), filepath.Join(d.dir, "tls", "selfsigned.key"), []string{d.domain}); err != nil {
			t.Fatal(err)
		}
	}
	start := func(domain, addr, route, ownDir, peerDir string, more ...func(*Config)) *testServer {
		return startTestServer(t, "sqlite", func(c *Config) {
			for _, m := range more {
				m(c)
			}
			c.Domains = []string{domain}
			c.TLS.CertFile, c.TLS.KeyFile = filepath.Join(ownDir, "tls", "selfsigned.crt"), filepath.Join(ownDir, "tls", "selfsigned.key")
			c.S2S.Enabled, c.S2S.Addr, c.S2S.Routes = true, addr, []string{route}
			c.S2S.CAFile = filepath.Join(peerDir, "tls", "selfsigned.crt")
			c.S2S.RequireValidCertificates = true
			c.S2S.ConnectTimeout = 5 * time.Second
		})
	}
	// b.test is reached over direct TLS (XEP-0368), a.test over STARTTLS.
	directB := freePort(t)
	a := start("a.test", addrA, "b.test=tls://"+directB, dirA, dirB)
	b := start("b.test", addrB, "a.test="+addrA, dirB, dirA, func(c *Config) { c.S2S.DirectTLSAddr = directB })
	a.addUser(t, "alice@a.test", "password-a")
	b.addUser(t, "bob@b.test", "password-b")
	alice := a.dial(t, "alice@a.test", "password-a", withResource("laptop"))
	bob := b.dial(t, "bob@b.test", "password-b", withResource("phone"))
	bob.send(t, "<presence/>")
	bob.barrier(t)
	alice.chat(t, "bob@b.test", "over EXTERNAL")
	bob.Messages.expect(t, "bob: alice's message", func(n xmlNode) bool { return n.body() == "over EXTERNAL" })
	if !strings.Contains(a.logs.String(), "auth=sasl-external") {
		t.Errorf("a.test did not authenticate with SASL EXTERNAL:\n%s", a.logs)
	}
	bob.chat(t, "alice@a.test/laptop", "back over STARTTLS")
	alice.Messages.expect(t, "alice: bob's message", func(n xmlNode) bool { return n.body() == "back over STARTTLS" })
	if !strings.Contains(b.logs.String(), "auth=sasl-external") {
		t.Errorf("b.test did not authenticate with SASL EXTERNAL:\n%s", b.logs)
	}

	// A raw peer with a certificate nobody trusts gets no dialback.
	p := dialS2S(t, b.addr("s2s"), "a.test", "b.test", false)
	p.write("<db:result from='a.test' to='b.test'>" + strings.Repeat("ab", 32) + "</db:result>")
	if n := p.next("the answer"); n.attr("type") != "invalid" {
		t.Errorf("dialback without a valid certificate under require_valid_certificates: %s", n)
	}
}

// TestFederationLimits: the inbound listener's limits (s2s.*) hold.
func TestFederationLimits(t *testing.T) {
	t.Parallel()
	ts := startTestServer(t, "sqlite", func(c *Config) {
		c.Domains = []string{"b.test"}
		c.S2S.Enabled, c.S2S.Addr = true, "127.0.0.1:0"
		c.S2S.MaxStanzaBytes = 4096
		c.S2S.MaxConnectionsPerIP = 2
		c.S2S.HandshakeTimeout = 2 * time.Second
	})
	addr := ts.addr("s2s")

	t.Run("max_stanza_bytes", func(t *testing.T) {
		p := dialS2S(t, addr, "a.test", "b.test")
		p.write("<db:result from='a.test' to='b.test'>" + strings.Repeat("k", 8000) + "</db:result>")
		if c := p.next("the stream error").streamErrorCondition(); c != "policy-violation" {
			t.Errorf("an 8 kB element: stream error %q, want policy-violation", c)
		}
		p.conn.Close()
	})

	t.Run("plaintext is refused", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", addr, e2eWait)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		p := &s2sPeer{t: t, conn: conn}
		p.write("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='a.test' to='b.test' version='1.0'>")
		p.header()
		if f := p.next("the features"); f.child("urn:ietf:params:xml:ns:xmpp-tls", "starttls") == nil {
			t.Errorf("features before TLS: %s, want starttls", f)
		}
		p.write("<db:result from='a.test' to='b.test'>abc</db:result>")
		if c := p.next("the stream error").streamErrorCondition(); c != "not-authorized" {
			t.Errorf("dialback before STARTTLS: stream error %q, want not-authorized", c)
		}
	})

	t.Run("handshake_timeout and max_connections_per_ip", func(t *testing.T) {
		// The streams above have ended on the server's side too.
		for deadline := time.Now().Add(e2eWait); scrape(t, ts)["kontor_s2s_connections_inbound"] != 0; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("inbound s2s connections are still open")
			}
		}
		var conns []net.Conn
		for i := 0; i < 3; i++ {
			c, err := net.DialTimeout("tcp", addr, e2eWait)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			conns = append(conns, c)
		}
		// The third is over the limit: closed at once.
		_ = conns[2].SetReadDeadline(time.Now().Add(e2eWait))
		if n, err := conns[2].Read(make([]byte, 1)); err == nil {
			t.Errorf("the third connection from one address was served (%d bytes)", n)
		}
		// The first two send nothing: closed after the handshake timeout.
		start := time.Now()
		for _, c := range conns[:2] {
			_ = c.SetReadDeadline(time.Now().Add(3 * e2eWait))
			if _, err := io.Copy(io.Discard, c); err != nil {
				t.Errorf("a silent connection: %v, want it closed by the server", err)
			}
		}
		if d := time.Since(start); d > 2*e2eWait {
			t.Errorf("silent connections closed after %v", d)
		}
	})
}

// TestFederationArchive: with the archive on, a local user's messages to
// and from a user of another server are archived for the local user.
func TestFederationArchive(t *testing.T) {
	t.Parallel()
	addrA, addrB := freePort(t), freePort(t)
	archiveOn := enableArchive(t)
	a := startTestServer(t, "sqlite", func(c *Config) {
		archiveOn(c)
		c.Domains = []string{"a.test"}
		c.S2S.Enabled, c.S2S.Addr, c.S2S.Routes = true, addrA, []string{"b.test=" + addrB}
	})
	b := startFederated(t, "b.test", addrB, "a.test="+addrA)
	a.addUser(t, "alice@a.test", "password-a")
	b.addUser(t, "bob@b.test", "password-b")
	alice := a.dialArchive(t, "alice@a.test", "password-a")
	bob := b.dial(t, "bob@b.test", "password-b", withResource("phone"))
	bob.send(t, "<presence/>")
	bob.barrier(t)
	alice.s.send(t, "<message to='bob@b.test' id='out-1' type='chat'><body>to bob</body></message>")
	bob.Messages.expect(t, "bob: alice's message", func(n xmlNode) bool { return n.body() == "to bob" })
	bob.send(t, "<message to='"+alice.s.JID().String()+"' id='in-1' type='chat'><body>to alice</body></message>")
	alice.waitBody(t, "in-1")
	var got []string
	for deadline := time.Now().Add(e2eWait); ; time.Sleep(20 * time.Millisecond) {
		rs, _ := alice.fetch(t, history.Query{})
		got = bodiesOf(rs)
		if len(got) >= 2 || time.Now().After(deadline) {
			break
		}
	}
	if strings.Join(got, "|") != "to bob|to alice" {
		t.Errorf("alice's archive: %q, want [to bob to alice]", got)
	}
}

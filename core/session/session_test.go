package session_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"io"
	"math/big"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"kontor.im/kontor/core/account"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/limit"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/sasl"
	"kontor.im/kontor/core/session"
	"kontor.im/kontor/core/storage/sqlite"
)

type env struct {
	srv    *session.Server
	router *router.Router
	addr   string
}

func selfSigned(t testing.TB) *tls.Config {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "example.com"},
		DNSNames: []string{"example.com"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

func start(t *testing.T, mutate func(*session.Config)) *env {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, u := range []string{"alice", "bob"} {
		if err := account.Create(context.Background(), st, jid.MustParse(u+"@example.com"), "secret-password"); err != nil {
			t.Fatal(err)
		}
	}
	r := router.New(router.Config{Store: st})
	if _, err := r.AddHost(jid.MustParse("example.com"), nil); err != nil {
		t.Fatal(err)
	}
	cfg := session.Config{
		Router: r,
		Auth:   func(d string) sasl.Authenticator { return account.Authenticator{Store: st, Domain: d} },
		TLS:    selfSigned(t),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	srv := session.NewServer(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln, false)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return &env{srv: srv, router: r, addr: ln.Addr().String()}
}

// client is a raw XMPP client that reads text, to see exactly what the
// server sends.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	seen strings.Builder
}

func dial(t *testing.T, e *env) *client {
	t.Helper()
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, conn: conn, r: bufio.NewReader(conn)}
}

const header = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>"

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := c.conn.Write([]byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// expect reads until marker appears (within d), returning what was read.
func (c *client) expect(marker string, d time.Duration) string {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	for !strings.Contains(c.seen.String(), marker) {
		b, err := c.r.ReadByte()
		if err != nil {
			c.t.Fatalf("waiting for %q: %v; got %q", marker, err, c.seen.String())
		}
		c.seen.WriteByte(b)
	}
	s := c.seen.String()
	i := strings.Index(s, marker) + len(marker)
	c.seen.Reset()
	c.seen.WriteString(s[i:])
	return s[:i]
}

// closed asserts that the server closes the connection within d.
func (c *client) closed(d time.Duration) {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	for {
		if _, err := c.r.ReadByte(); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				c.t.Fatal("the server did not close the connection")
			}
			return
		}
	}
}

func (c *client) startTLS() {
	c.t.Helper()
	c.send(header)
	c.expect("</stream:features>", 5*time.Second)
	c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	c.expect("<proceed", 5*time.Second)
	tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true}) // test server with a throwaway certificate
	if err := tc.Handshake(); err != nil {
		c.t.Fatal(err)
	}
	c.conn = tc
	c.r = bufio.NewReader(tc)
	c.seen.Reset()
}

func (c *client) login(user, resource string) {
	c.t.Helper()
	c.startTLS()
	c.send(header)
	c.expect("</stream:features>", 5*time.Second)
	c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00secret-password")) + "</auth>")
	c.expect("<success", 5*time.Second)
	c.send(header)
	c.expect("</stream:features>", 5*time.Second)
	c.send("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>" + resource + "</resource></bind></iq>")
	c.expect("</iq>", 5*time.Second)
}

func TestBadStreamHeaders(t *testing.T) {
	e := start(t, nil)
	tests := []struct{ name, header, cond string }{
		{"unknown host", "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='other.example' version='1.0'>", "host-unknown"},
		{"no to", "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>", "host-unknown"},
		{"server namespace", "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>", "invalid-namespace"},
		{"wrong stream namespace", "<stream:stream xmlns='jabber:client' xmlns:stream='urn:nope' to='example.com' version='1.0'>", "invalid-namespace"},
		{"old version", "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.com'>", "unsupported-version"},
		{"not XML", "GET / HTTP/1.1\r\n\r\n", "not-well-formed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, e)
			c.send(tt.header)
			got := c.expect("</stream:stream>", 5*time.Second)
			if !strings.Contains(got, "<stream:stream ") || !strings.Contains(got, "<"+tt.cond+" xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>") {
				t.Fatalf("want a stream header and <%s/>, got %q", tt.cond, got)
			}
			c.closed(3 * time.Second)
		})
	}
}

func TestTLSRequiredBeforeAuth(t *testing.T) {
	e := start(t, nil)
	c := dial(t, e)
	c.send(header)
	feats := c.expect("</stream:features>", 5*time.Second)
	if !strings.Contains(feats, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>") || strings.Contains(feats, "mechanism") {
		t.Fatalf("features before TLS: %q", feats)
	}
	c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + base64.StdEncoding.EncodeToString([]byte("\x00alice\x00secret-password")) + "</auth>")
	got := c.expect("</stream:stream>", 5*time.Second)
	if !strings.Contains(got, "<encryption-required/>") || !strings.Contains(got, "<policy-violation") {
		t.Fatalf("auth before TLS: %q", got)
	}
}

func TestFeaturesAfterTLS(t *testing.T) {
	e := start(t, nil)
	c := dial(t, e)
	c.startTLS()
	c.send(header)
	feats := c.expect("</stream:features>", 5*time.Second)
	for _, m := range []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"} {
		if !strings.Contains(feats, "<mechanism>"+m+"</mechanism>") {
			t.Errorf("mechanism %s not offered over TLS 1.3: %q", m, feats)
		}
	}
	if !strings.Contains(feats, "<channel-binding type='tls-exporter'/>") {
		t.Errorf("XEP-0440 channel binding capability missing: %q", feats)
	}
	// A stanza before authentication ends the stream.
	c.send("<message to='bob@example.com'><body>x</body></message>")
	if got := c.expect("</stream:stream>", 5*time.Second); !strings.Contains(got, "<not-authorized") {
		t.Fatalf("stanza before auth: %q", got)
	}
}

func TestHandshakeTimeout(t *testing.T) {
	e := start(t, func(c *session.Config) { c.HandshakeTimeout = 300 * time.Millisecond })
	c := dial(t, e)
	c.send(header)
	c.expect("</stream:features>", 5*time.Second)
	if got := c.expect("</stream:stream>", 3*time.Second); !strings.Contains(got, "<connection-timeout") {
		t.Fatalf("handshake timeout: %q", got)
	}
}

func TestTooManyAuthAttempts(t *testing.T) {
	e := start(t, func(c *session.Config) {
		c.MaxAuthAttempts = 2
		c.AuthGuard = limit.NewAuth(limit.AuthConfig{MaxPerIP: 100, MaxPerAccount: 100})
	})
	c := dial(t, e)
	c.startTLS()
	c.send(header)
	c.expect("</stream:features>", 5*time.Second)
	bad := "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + base64.StdEncoding.EncodeToString([]byte("\x00alice\x00wrong-password")) + "</auth>"
	c.send(bad)
	if got := c.expect("</failure>", 5*time.Second); !strings.Contains(got, "<not-authorized/>") {
		t.Fatalf("first failure: %q", got)
	}
	c.send(bad)
	if got := c.expect("</stream:stream>", 5*time.Second); !strings.Contains(got, "<policy-violation") {
		t.Fatalf("second failure: %q", got)
	}
}

func TestForgedFromClosesStream(t *testing.T) {
	e := start(t, nil)
	c := dial(t, e)
	c.login("alice", "r")
	c.send("<message from='bob@example.com/x' to='alice@example.com/r'><body>hi</body></message>")
	if got := c.expect("</stream:stream>", 5*time.Second); !strings.Contains(got, "<invalid-from") {
		t.Fatalf("forged from: %q", got)
	}
}

func TestStampsFromAndEchoes(t *testing.T) {
	e := start(t, nil)
	c := dial(t, e)
	c.login("alice", "r")
	c.send("  <message to='alice@example.com/r' id='m1'><body>to myself</body></message>\n")
	got := c.expect("</message>", 5*time.Second)
	if !strings.Contains(got, "from='alice@example.com/r'") || !strings.Contains(got, "<body>to myself</body>") {
		t.Fatalf("own message: %q", got)
	}
	c.send("<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>")
	if got := c.expect("id='s1'/>", 5*time.Second); !strings.Contains(got, "type='result'") {
		t.Fatalf("legacy session reply: %q", got)
	}
}

// TestStalledClientIsCutOff: a client that stops reading cannot make the
// server buffer without bound; its queue fills and it is closed with
// resource-constraint, while the sender goes on.
func TestStalledClientIsCutOff(t *testing.T) {
	e := start(t, func(c *session.Config) { c.QueueSize = 16; c.WriteTimeout = 2 * time.Second })
	bob := dial(t, e)
	bob.login("bob", "stalled")
	alice := dial(t, e)
	alice.login("alice", "r")
	// Alice reads what comes back (errors for messages to bob once he is
	// gone), as any client does.
	go io.Copy(io.Discard, alice.r)
	big := strings.Repeat("x", 60000)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if len(e.router.Resources(jid.MustParse("bob@example.com"))) == 0 {
			break
		}
		alice.send("<message to='bob@example.com/stalled' type='chat'><body>" + big + "</body></message>")
	}
	if n := len(e.router.Resources(jid.MustParse("bob@example.com"))); n != 0 {
		t.Fatal("the stalled session is still bound")
	}
	// Alice's session is unaffected.
	alice.send("<presence/>")
	time.Sleep(100 * time.Millisecond)
	if n := len(e.router.Resources(jid.MustParse("alice@example.com"))); n != 1 {
		t.Fatal("the sender was cut off too")
	}
}

func TestPingsSilentClients(t *testing.T) {
	e := start(t, func(c *session.Config) {
		c.PingInterval = 300 * time.Millisecond
		c.PingTimeout = 300 * time.Millisecond
	})
	silent := dial(t, e)
	silent.login("alice", "silent")
	got := silent.expect("<ping xmlns='urn:xmpp:ping'/>", 5*time.Second)
	if !strings.Contains(got, "type='get'") {
		t.Fatalf("ping: %q", got)
	}
	if got := silent.expect("</stream:stream>", 5*time.Second); !strings.Contains(got, "<connection-timeout") {
		t.Fatalf("unanswered ping: %q", got)
	}

	// A client that answers stays connected.
	live := dial(t, e)
	live.login("bob", "live")
	for range 3 {
		got := live.expect("<ping xmlns='urn:xmpp:ping'/></iq>", 5*time.Second)
		i := strings.Index(got, "id='")
		id := got[i+4:]
		id = id[:strings.IndexByte(id, '\'')]
		live.send("<iq type='result' id='" + id + "' to='example.com'/>")
	}
	if len(e.router.Resources(jid.MustParse("bob@example.com"))) != 1 {
		t.Fatal("a client answering pings was disconnected")
	}
}

func TestConnectionLimit(t *testing.T) {
	e := start(t, func(c *session.Config) { c.Conns = limit.NewConns(1) })
	first := dial(t, e)
	first.send(header)
	first.expect("</stream:features>", 5*time.Second)
	second := dial(t, e)
	second.send(header)
	if got := second.expect("</stream:stream>", 5*time.Second); !strings.Contains(got, "<policy-violation") || !strings.Contains(got, "too many connections") {
		t.Fatalf("over the limit: %q", got)
	}
	first.conn.Close()
	time.Sleep(200 * time.Millisecond)
	third := dial(t, e)
	third.send(header)
	third.expect("</stream:features>", 5*time.Second)
}

func TestShutdownSendsSystemShutdown(t *testing.T) {
	e := start(t, nil)
	c := dial(t, e)
	c.login("alice", "r")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go e.srv.Shutdown(ctx)
	if got := c.expect("</stream:stream>", 5*time.Second); !strings.Contains(got, "<system-shutdown") {
		t.Fatalf("shutdown: %q", got)
	}
}

// plainOnly is an authenticator like a directory's: it can verify PLAIN
// only, and says so.
type plainOnly struct{ sasl.Authenticator }

func (plainOnly) Mechanisms(tlsOn bool, _ sasl.ChannelBinding) []string {
	if !tlsOn {
		return nil
	}
	return []string{sasl.Plain}
}

func TestAuthenticatorNarrowsMechanisms(t *testing.T) {
	e := start(t, func(c *session.Config) {
		inner := c.Auth
		c.Auth = func(d string) sasl.Authenticator { return plainOnly{inner(d)} }
	})
	c := dial(t, e)
	c.startTLS()
	c.send(header)
	feats := c.expect("</stream:features>", 5*time.Second)
	if !strings.Contains(feats, "<mechanism>PLAIN</mechanism>") || strings.Contains(feats, "SCRAM") {
		t.Fatalf("mechanisms: %q", feats)
	}
	c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>" + base64.StdEncoding.EncodeToString([]byte("n,,n=alice,r=abcdefgh")) + "</auth>")
	if got := c.expect("</failure>", 5*time.Second); !strings.Contains(got, "<invalid-mechanism/>") {
		t.Fatalf("a mechanism that was not offered: %q", got)
	}
}

// TestShutdownDuringNegotiation: a client that has not logged in yet also
// gets system-shutdown, and does not hold up the shutdown.
func TestShutdownDuringNegotiation(t *testing.T) {
	e := start(t, nil)
	plain := dial(t, e)
	plain.send(header)
	plain.expect("</stream:features>", 5*time.Second)
	tlsOnly := dial(t, e)
	tlsOnly.startTLS()
	tlsOnly.send(header)
	tlsOnly.expect("</stream:features>", 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- e.srv.Shutdown(ctx) }()
	for _, c := range []*client{plain, tlsOnly} {
		if got := c.expect("</stream:stream>", 5*time.Second); !strings.Contains(got, "<system-shutdown") {
			t.Fatalf("shutdown during negotiation: %q", got)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown = %v after %v", err, time.Since(start))
	}
}

// TestStalledRecipientDoesNotHoldUpTheSender: when a recipient stops
// reading and its socket fills, its writer goroutine waits, not the
// sender: the sender's reader goes on handling the sender's stanzas, and
// once the recipient reads again it gets every message, in order, once.
func TestStalledRecipientDoesNotHoldUpTheSender(t *testing.T) {
	e := start(t, func(c *session.Config) { c.QueueSize = 4096; c.WriteTimeout = 60 * time.Second })
	bob := dial(t, e)
	bob.login("bob", "slow")
	alice := dial(t, e)
	alice.login("alice", "r")
	body := strings.Repeat("x", 32<<10)
	const total = 400 // about 13 MB: more than loopback's socket buffers hold
	for i := range total {
		alice.send(fmt.Sprintf("<message to='bob@example.com/slow' id='m%d' type='chat'><body>%s</body></message>", i, body))
		if i%50 == 49 {
			// A message to herself comes back at once: her reader is not
			// stuck writing to bob.
			mark := fmt.Sprintf("self%d", i)
			alice.send("<message to='alice@example.com/r' id='" + mark + "' type='chat'><body>hi</body></message>")
			alice.expect("id='"+mark+"'", 5*time.Second)
		}
	}
	_ = bob.conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	for i := range total {
		got := bob.expect("</message>", 60*time.Second)
		want := fmt.Sprintf("id='m%d'", i)
		if !strings.Contains(got, want) {
			j := strings.Index(got, "id='")
			t.Fatalf("message %d: got %q, want %s", i, got[j:min(len(got), j+12)], want)
		}
	}
}

// writers returns the ids of the goroutines running a session writer.
func writers() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var ids []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "session.(*conn).writer(") {
			ids = append(ids, strings.Fields(g)[1])
		}
	}
	return ids
}

// A session in a conversation keeps its writer goroutine between
// messages (one start, not one per message), and an idle one has none
// after writerLinger.
func TestWriterLingers(t *testing.T) {
	old := *session.WriterLinger
	*session.WriterLinger = 500 * time.Millisecond // more than the 20 ms between messages below, with room for a slow machine
	t.Cleanup(func() { *session.WriterLinger = old })
	e := start(t, nil)
	bob := dial(t, e)
	bob.login("bob", "r")
	alice := dial(t, e)
	alice.login("alice", "r")
	waitFor(t, "the logins' writers to end", func() bool { return len(writers()) == 0 })

	seen := map[string]bool{}
	for i := range 20 {
		alice.send(fmt.Sprintf("<message to='bob@example.com/r' id='w%d' type='chat'><body>hi</body></message>", i))
		bob.expect(fmt.Sprintf("id='w%d'", i), 5*time.Second)
		ids := writers()
		if len(ids) != 1 {
			t.Fatalf("message %d: writer goroutines %v, want bob's one", i, ids)
		}
		seen[ids[0]] = true
		time.Sleep(20 * time.Millisecond)
	}
	if len(seen) != 1 {
		t.Errorf("bob's messages were written by %d goroutines, want one", len(seen))
	}
	waitFor(t, "bob's writer to end after writerLinger", func() bool { return len(writers()) == 0 })

	// A lingering writer (bob's, just after a message) ends the stream
	// on shutdown.
	alice.send("<message to='bob@example.com/r' id='last' type='chat'><body>hi</body></message>")
	bob.expect("id='last'", 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go e.srv.Shutdown(ctx)
	if got := bob.expect("</stream:stream>", 5*time.Second); !strings.Contains(got, "<system-shutdown") {
		t.Fatalf("shutdown: %q", got)
	}
}

// A session idle for longer than write_timeout has no passed write
// deadline on its connection: crypto/tls's own writes for the reader (a
// KeyUpdate's answer) still go out, and so does the next stanza.
func TestIdleSessionHasNoStaleWriteDeadline(t *testing.T) {
	old := *session.WriterLinger
	*session.WriterLinger = 50 * time.Millisecond
	t.Cleanup(func() { *session.WriterLinger = old })
	e := start(t, func(c *session.Config) { c.WriteTimeout = 200 * time.Millisecond })
	bob := dial(t, e)
	bob.login("bob", "r")
	alice := dial(t, e)
	alice.login("alice", "r")
	alice.send("<message to='bob@example.com/r' id='m1' type='chat'><body>hi</body></message>")
	bob.expect("id='m1'", 5*time.Second)
	time.Sleep(600 * time.Millisecond) // the writers ended, write_timeout passed
	// A whitespace keepalive, written as crypto/tls writes for the reader.
	if err := session.WriteAsReader(e.srv, []byte(" ")); err != nil {
		t.Fatalf("a write after an idle write_timeout: %v", err)
	}
	alice.send("<message to='bob@example.com/r' id='m2' type='chat'><body>again</body></message>")
	bob.expect("id='m2'", 5*time.Second)
}

package main

// Helpers of the end-to-end tests (e2e_test.go): a real server started in
// process with startServer on loopback ports, and two kinds of client that
// are not ours:
//
//   - testClient: a mellium.im/xmpp session (STARTTLS or direct TLS, SASL,
//     resource binding done by mellium), with Serve running in a goroutine
//     that files incoming messages, presences and roster pushes into
//     inboxes the test waits on;
//   - rawClient: a socket with encoding/xml for checks below what a client
//     library lets one do (plain TCP, exact SASL failures, stream errors,
//     whitespace keepalives). Its SASL exchanges use mellium.im/sasl.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/mux"
	"mellium.im/xmpp/ping"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"kontor.im/kontor/core/account"
	kjid "kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/storage/pgtest"
)

// Namespaces the tests look for.
const (
	nsStreams      = "http://etherx.jabber.org/streams"
	nsStreamErrors = "urn:ietf:params:xml:ns:xmpp-streams"
	nsStanzaErrors = "urn:ietf:params:xml:ns:xmpp-stanzas"
	nsTLSFeature   = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASLFeature  = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBindFeature  = "urn:ietf:params:xml:ns:xmpp-bind"
	nsRoster       = "jabber:iq:roster"
	nsDelay        = "urn:xmpp:delay"
	nsCaps         = "http://jabber.org/protocol/caps"
)

const (
	e2eDomain = "localhost"
	// e2eWait bounds every wait for something the server should do now.
	e2eWait = 5 * time.Second
)

// backends are the storage backends every storage-touching test runs on.
var backends = []string{"sqlite", "postgres"}

// forBackends runs fn as a parallel subtest per storage backend.
func forBackends(t *testing.T, fn func(t *testing.T, backend string)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			t.Parallel()
			fn(t, b)
		})
	}
}

// testServer is a running Kontor for one test.
type testServer struct {
	srv     *Server
	cfg     Config
	dir     string
	cfgFile string // a kontor.yaml for the `kontor` commands
	roots   *x509.CertPool
	logs    *syncBuffer

	shutdownOnce sync.Once
	shutdownErr  error
}

// syncBuffer collects the server's log; it is printed when a test fails.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startTestServer starts Kontor with the defaults, a temporary data
// directory, loopback listeners on free ports, the domain "localhost" and
// the given storage backend ("sqlite" or "postgres"); mutate may change
// the configuration before it is validated. The server is shut down when
// the test ends, and Shutdown must succeed.
func startTestServer(t *testing.T, backend string, mutate func(*Config)) *testServer {
	t.Helper()
	dir := t.TempDir()
	cfg := defaultConfig()
	cfg.Domains = []string{e2eDomain}
	cfg.DataDir = dir
	cfg.Log.Level = "debug"
	cfg.C2S.StartTLSAddr = "127.0.0.1:0"
	cfg.C2S.DirectTLSAddr = "127.0.0.1:0"
	cfg.Admin.Addr = "127.0.0.1:0"
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.Storage.Backend = backend
	cfg.Storage.SQLitePath = ""
	cfg.Seal.KeyFile = ""
	switch backend {
	case "sqlite":
	case "postgres":
		cfg.Storage.PostgresDSN = pgtest.DSN(t)
	default:
		t.Fatalf("unknown backend %q", backend)
	}
	if mutate != nil {
		mutate(&cfg)
	}
	if problems := cfg.validate(); len(problems) > 0 {
		t.Fatalf("test configuration is invalid:\n  %s", strings.Join(problems, "\n  "))
	}
	cfg.resolvePaths()

	ts := &testServer{cfg: cfg, dir: dir, logs: &syncBuffer{}}
	ts.cfgFile = filepath.Join(dir, "kontor.yaml")
	yaml := fmt.Sprintf("domains: [%s]\ndata_dir: %q\nstorage:\n  backend: %s\n", e2eDomain, dir, backend)
	if backend == "postgres" {
		yaml += fmt.Sprintf("  postgres_dsn: %q\n", cfg.Storage.PostgresDSN)
	}
	if err := os.WriteFile(ts.cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}

	log := slog.New(slog.NewTextHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := startServer(ctx, cfg, log)
	if err != nil {
		t.Fatalf("startServer: %v\nserver log:\n%s", err, ts.logs)
	}
	ts.srv = srv
	t.Cleanup(func() {
		if err := ts.shutdown(); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", ts.logs)
		}
	})
	for _, name := range []string{"starttls", "direct_tls", "admin"} {
		if ts.srv.Addrs[name] == nil {
			t.Fatalf("Server.Addrs[%q] is missing: %v", name, ts.srv.Addrs)
		}
	}

	certFile := filepath.Join(dir, "tls", "selfsigned.crt")
	if cfg.TLS.CertFile != "" {
		certFile = cfg.TLS.CertFile
	}
	pem, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatalf("reading the generated certificate: %v", err)
	}
	ts.roots = x509.NewCertPool()
	if !ts.roots.AppendCertsFromPEM(pem) {
		t.Fatal("the generated certificate is not PEM")
	}
	return ts
}

// shutdown stops the server once and returns Shutdown's result.
func (ts *testServer) shutdown() error {
	ts.shutdownOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		ts.shutdownErr = ts.srv.Shutdown(ctx)
	})
	return ts.shutdownErr
}

// addr returns a listener address: "starttls", "direct_tls" or "admin".
func (ts *testServer) addr(name string) string { return ts.srv.Addrs[name].String() }

// tlsConfig trusts only the server's generated certificate and verifies
// the server name (the first domain; e2eDomain for a server run as a
// process, whose testServer has no configuration).
func (ts *testServer) tlsConfig() *tls.Config {
	name := e2eDomain
	if len(ts.cfg.Domains) > 0 {
		name = ts.cfg.Domains[0]
	}
	return &tls.Config{RootCAs: ts.roots, ServerName: name, MinVersion: tls.VersionTLS12}
}

// bare returns user@localhost for "user" (or the argument if it has a '@').
func bare(user string) string {
	if strings.Contains(user, "@") {
		return user
	}
	return user + "@" + e2eDomain
}

// addUser creates an account in the server's store.
func (ts *testServer) addUser(t *testing.T, user, password string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := account.Create(ctx, ts.srv.store, kjid.MustParse(bare(user)), password); err != nil {
		t.Fatalf("account.Create(%s): %v", bare(user), err)
	}
}

// cli runs a `kontor` command against this server's configuration file and
// returns its standard output.
func (ts *testServer) cli(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	root := newRootCmd(&stdout, &stderr)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(append(args, "--config", ts.cfgFile))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	if err != nil {
		err = fmt.Errorf("kontor %s: %w (stderr: %s)", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), err
}

// ---------------------------------------------------------------------------
// mellium.im/xmpp clients

type dialConfig struct {
	resource string
	direct   bool
	mechs    []sasl.Mechanism
	features []xmpp.StreamFeature
	tlsMax   uint16
}

type dialOption func(*dialConfig)

// withResource asks for a resource (default: let the server choose).
func withResource(r string) dialOption { return func(c *dialConfig) { c.resource = r } }

// withDirectTLS connects to the XEP-0368 direct TLS port instead of STARTTLS.
func withDirectTLS() dialOption { return func(c *dialConfig) { c.direct = true } }

// withMechanisms limits the SASL mechanisms the client may use.
func withMechanisms(m ...sasl.Mechanism) dialOption { return func(c *dialConfig) { c.mechs = m } }

// withTLSMaxVersion limits the client's TLS version.
func withTLSMaxVersion(v uint16) dialOption { return func(c *dialConfig) { c.tlsMax = v } }

// withFeatures adds stream features (e.g. disco.StreamFeature()).
func withFeatures(f ...xmpp.StreamFeature) dialOption {
	return func(c *dialConfig) { c.features = append(c.features, f...) }
}

var allMechanisms = []sasl.Mechanism{sasl.ScramSha256Plus, sasl.ScramSha256, sasl.ScramSha1Plus, sasl.ScramSha1, sasl.Plain}

// connect negotiates a session with mellium; nothing is served yet. The
// caller owns the connection.
func (ts *testServer) connect(ctx context.Context, user, password string, opts ...dialOption) (*xmpp.Session, net.Conn, error) {
	dc := dialConfig{mechs: allMechanisms}
	for _, o := range opts {
		o(&dc)
	}
	origin, err := jid.Parse(bare(user))
	if err != nil {
		return nil, nil, err
	}
	if dc.resource != "" {
		if origin, err = origin.WithResource(dc.resource); err != nil {
			return nil, nil, err
		}
	}
	var d net.Dialer
	var conn net.Conn
	tc := ts.tlsConfig()
	if dc.tlsMax != 0 {
		tc.MaxVersion = dc.tlsMax
	}
	bind := xmpp.BindResource()
	if dc.resource != "" {
		bind = bindRequested()
	}
	features := []xmpp.StreamFeature{xmpp.SASL("", password, dc.mechs...), bind}
	if dc.direct {
		td := tls.Dialer{NetDialer: &d, Config: tc}
		conn, err = td.DialContext(ctx, "tcp", ts.addr("direct_tls"))
	} else {
		conn, err = d.DialContext(ctx, "tcp", ts.addr("starttls"))
		features = append([]xmpp.StreamFeature{xmpp.StartTLS(tc)}, features...)
	}
	if err != nil {
		return nil, nil, err
	}
	features = append(features, dc.features...)
	s, err := xmpp.NewClientSession(ctx, origin, conn, features...)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return s, conn, nil
}

// bindRequested is the client side of resource binding (RFC 6120 §7) for a
// requested resource. mellium v0.22.0's BindResource sends an empty
// <resource/> instead of the requested one (bindPayload.TokenReader writes
// the JID field, which is empty on a request), so every mellium session
// would get a server-chosen resource; this feature sends the resource
// part of the session's origin JID. Without a requested resource the tests
// use mellium's own BindResource.
func bindRequested() xmpp.StreamFeature {
	return xmpp.StreamFeature{
		Name:       xml.Name{Space: nsBindFeature, Local: "bind"},
		Necessary:  xmpp.Authn,
		Prohibited: xmpp.Ready,
		Parse: func(_ context.Context, d *xml.Decoder, _ *xml.StartElement) (bool, interface{}, error) {
			return true, nil, d.Skip()
		},
		Negotiate: func(ctx context.Context, s *xmpp.Session, _ interface{}) (xmpp.SessionState, io.ReadWriter, error) {
			id := fmt.Sprintf("bind-%d", time.Now().UnixNano())
			req := stanza.IQ{ID: id, Type: stanza.SetIQ}.Wrap(xmlstream.Wrap(
				xmlstream.Wrap(xmlstream.Token(xml.CharData(s.LocalAddr().Resourcepart())), xml.StartElement{Name: xml.Name{Local: "resource"}}),
				xml.StartElement{Name: xml.Name{Space: nsBindFeature, Local: "bind"}}))
			w := s.TokenWriter()
			if _, err := xmlstream.Copy(w, req); err != nil {
				w.Close()
				return 0, nil, err
			}
			if err := w.Close(); err != nil {
				return 0, nil, err
			}
			r := s.TokenReader()
			defer r.Close()
			var resp struct {
				XMLName xml.Name
				ID      string        `xml:"id,attr"`
				Type    string        `xml:"type,attr"`
				JID     string        `xml:"urn:ietf:params:xml:ns:xmpp-bind bind>jid"`
				Err     *stanza.Error `xml:"error"`
			}
			if err := xml.NewTokenDecoder(r).Decode(&resp); err != nil {
				return 0, nil, err
			}
			switch {
			case resp.ID != id:
				return 0, nil, fmt.Errorf("bind: reply with id %q to request %q", resp.ID, id)
			case resp.Type == "error" && resp.Err != nil:
				return 0, nil, *resp.Err
			case resp.Type != "result":
				return 0, nil, fmt.Errorf("bind: reply of type %q", resp.Type)
			}
			j, err := jid.Parse(resp.JID)
			if err != nil {
				return 0, nil, fmt.Errorf("bind: bad JID %q: %w", resp.JID, err)
			}
			s.UpdateAddr(j)
			return xmpp.Ready, nil, nil
		},
	}
}

// testClient is a logged-in mellium session whose Serve runs in the
// background.
type testClient struct {
	*xmpp.Session
	name string
	conn net.Conn

	Messages     *inbox
	Presences    *inbox
	RosterPushes *inbox

	done chan struct{}
	err  error // what Serve returned; read after done
}

// dial logs in and serves the session until the test ends (or the server
// ends it); it fails the test if the login fails.
func (ts *testServer) dial(t *testing.T, user, password string, opts ...dialOption) *testClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	s, conn, err := ts.connect(ctx, user, password, opts...)
	if err != nil {
		t.Fatalf("login as %s: %v", bare(user), err)
	}
	return ts.serve(t, user, s, conn)
}

func (ts *testServer) serve(t *testing.T, name string, s *xmpp.Session, conn net.Conn) *testClient {
	c := &testClient{Session: s, name: name, conn: conn,
		Messages: newInbox(), Presences: newInbox(), RosterPushes: newInbox(), done: make(chan struct{})}
	iqs := mux.New(stanza.NSClient,
		ping.Handle(),
		mux.IQFunc(stanza.SetIQ, xml.Name{Space: nsRoster, Local: "query"}, c.rosterPush),
	)
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

// rosterPush files a roster push (RFC 6121 §2.1.6) and acknowledges it.
func (c *testClient) rosterPush(iq stanza.IQ, tr xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	q, err := decodeElement(tr, start)
	if err != nil {
		return err
	}
	c.RosterPushes.put(xmlNode{XMLName: xml.Name{Space: stanza.NSClient, Local: "iq"},
		Attrs: []xml.Attr{{Name: xml.Name{Local: "from"}, Value: iq.From.String()}, {Name: xml.Name{Local: "id"}, Value: iq.ID}},
		Nodes: []xmlNode{q}})
	_, err = xmlstream.Copy(tr, iq.Result(nil))
	return err
}

// decodeElement decodes an element whose start was already read: a token
// decoder that has not seen the start token itself would refuse the end.
func decodeElement(r xml.TokenReader, start *xml.StartElement) (xmlNode, error) {
	var n xmlNode
	err := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(start.Copy()), r)).Decode(&n)
	return n, err
}

// JID is the bound full JID.
func (c *testClient) JID() jid.JID { return c.LocalAddr() }

// close ends the stream (if still open) and the connection.
func (c *testClient) close() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.Session.Close()
	select {
	case <-c.done:
	case <-time.After(e2eWait):
		c.conn.Close()
		<-c.done
	}
}

// ended waits up to d for the server to end the session and returns what
// Serve returned.
func (c *testClient) ended(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-c.done:
		return c.err
	case <-time.After(d):
		t.Fatalf("%s: the session did not end within %v", c.name, d)
		return nil
	}
}

// isOpen reports whether the session is still being served.
func (c *testClient) isOpen() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// send writes a stanza given as XML text (no namespace needed on the
// stanza itself).
func (c *testClient) send(t *testing.T, rawXML string) {
	t.Helper()
	if err := c.Send(sendContext(), tokens(t, rawXML)); err != nil {
		t.Fatalf("%s: send %s: %v", c.name, rawXML, err)
	}
}

// sendContext is the context of one mellium send: it ends after e2eWait
// and is never cancelled early. mellium (v0.22.0) turns the end of a
// send's context into a write deadline in the past from a goroutine that
// also watches the send's own end; cancelling the context as soon as the
// send returned lets that goroutine, when it runs late on a loaded
// machine, see both and pick the context, and the next send's write fails
// with "i/o timeout" at once.
func sendContext() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	time.AfterFunc(e2eWait, cancel) // what the timeout does anyway; keeps vet's lostcancel content
	return ctx
}

// iq sends an IQ given as XML text and returns the reply.
func (c *testClient) iq(t *testing.T, rawXML string) xmlNode {
	t.Helper()
	resp, err := c.SendIQ(sendContext(), tokens(t, rawXML))
	if err != nil {
		t.Fatalf("%s: iq %s: %v", c.name, rawXML, err)
	}
	defer resp.Close()
	var n xmlNode
	if err := xml.NewTokenDecoder(resp).Decode(&n); err != nil {
		t.Fatalf("%s: decoding the reply to %s: %v", c.name, rawXML, err)
	}
	return n
}

// chat sends a chat message with a body.
func (c *testClient) chat(t *testing.T, to, body string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("<message type='chat' to='")
	xml.EscapeText(&b, []byte(to))
	b.WriteString("'><body>")
	xml.EscapeText(&b, []byte(body))
	b.WriteString("</body></message>")
	c.send(t, b.String())
}

// barrier sends a message to the client's own full JID and waits for it.
// The server handles a client's stanzas in order (RFC 6120 §10.1), so
// whatever the server sent this client because of earlier stanzas is in
// its inboxes once the barrier returns.
func (c *testClient) barrier(t *testing.T) {
	t.Helper()
	id := fmt.Sprintf("barrier-%d", time.Now().UnixNano())
	c.send(t, fmt.Sprintf("<message to='%s' id='%s' type='normal'><body>%s</body></message>", c.JID(), id, id))
	c.Messages.expect(t, c.name+" barrier", func(n xmlNode) bool { return n.attr("id") == id && n.attr("type") != "error" })
}

// tokens turns XML text into a token stream for mellium, dropping the
// xmlns attributes encoding/xml keeps beside the resolved names.
func tokens(t *testing.T, rawXML string) xml.TokenReader {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(rawXML))
	var toks []xml.Token
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("bad test XML %q: %v", rawXML, err)
		}
		tok = xml.CopyToken(tok)
		if se, ok := tok.(xml.StartElement); ok {
			attrs := se.Attr[:0]
			for _, a := range se.Attr {
				if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
					continue
				}
				attrs = append(attrs, a)
			}
			se.Attr = attrs
			tok = se
		}
		toks = append(toks, tok)
	}
	return &sliceTokens{toks: toks}
}

type sliceTokens struct{ toks []xml.Token }

func (s *sliceTokens) Token() (xml.Token, error) {
	if len(s.toks) == 0 {
		return nil, io.EOF
	}
	tok := s.toks[0]
	s.toks = s.toks[1:]
	return tok, nil
}

// streamCondition returns the stream error condition in err, or "".
func streamCondition(err error) string {
	var se stream.Error
	if errors.As(err, &se) {
		return se.Err
	}
	return ""
}

// saslCondition returns the SASL failure condition mellium reports in err
// (its error type is internal to mellium, so it is read by reflection), or
// "".
func saslCondition(err error) string {
	for e := err; e != nil; e = errors.Unwrap(e) {
		v := reflect.ValueOf(e)
		if v.Kind() == reflect.Struct && strings.HasSuffix(v.Type().PkgPath(), "internal/saslerr") {
			if f := v.FieldByName("Condition"); f.IsValid() && f.CanInterface() {
				if s, ok := f.Interface().(fmt.Stringer); ok {
					return s.String()
				}
			}
		}
	}
	return ""
}

// ---------------------------------------------------------------------------
// inbox: what a client received, for order-independent waiting.

type inbox struct {
	mu     sync.Mutex
	items  []xmlNode
	signal chan struct{} // closed and replaced on every put
}

func newInbox() *inbox { return &inbox{signal: make(chan struct{})} }

func (b *inbox) put(n xmlNode) {
	b.mu.Lock()
	b.items = append(b.items, n)
	close(b.signal)
	b.signal = make(chan struct{})
	b.mu.Unlock()
}

// take removes and returns the first item that matches, waiting until ctx
// ends.
func (b *inbox) take(ctx context.Context, match func(xmlNode) bool) (xmlNode, error) {
	for {
		b.mu.Lock()
		for i, n := range b.items {
			if match(n) {
				b.items = append(b.items[:i:i], b.items[i+1:]...)
				b.mu.Unlock()
				return n, nil
			}
		}
		sig := b.signal
		b.mu.Unlock()
		select {
		case <-sig:
		case <-ctx.Done():
			return xmlNode{}, ctx.Err()
		}
	}
}

// expect waits up to e2eWait for a matching item.
func (b *inbox) expect(t *testing.T, what string, match func(xmlNode) bool) xmlNode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	n, err := b.take(ctx, match)
	if err != nil {
		t.Fatalf("%s: nothing matching arrived within %v; received meanwhile:\n%s", what, e2eWait, b.dump())
	}
	return n
}

// none fails if an item matches now (call after a barrier).
func (b *inbox) none(t *testing.T, what string, match func(xmlNode) bool) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, n := range b.items {
		if match(n) {
			t.Errorf("%s: unexpected %s", what, n)
		}
	}
}

func (b *inbox) dump() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.items) == 0 {
		return "  (nothing)"
	}
	var s strings.Builder
	for _, n := range b.items {
		fmt.Fprintf(&s, "  %s\n", n)
	}
	return s.String()
}

// ---------------------------------------------------------------------------
// xmlNode: a generic element tree for assertions.

type xmlNode struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Text    string     `xml:",chardata"`
	Nodes   []xmlNode  `xml:",any"`
}

func (n xmlNode) is(space, local string) bool {
	return n.XMLName.Space == space && n.XMLName.Local == local
}

// attr returns an attribute by local name (xmlns declarations excluded).
func (n xmlNode) attr(local string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == local && a.Name.Space != "xmlns" {
			return a.Value
		}
	}
	return ""
}

func (n xmlNode) hasAttr(local string) bool {
	for _, a := range n.Attrs {
		if a.Name.Local == local && a.Name.Space != "xmlns" {
			return true
		}
	}
	return false
}

// child returns the first child with the name (space "" matches any).
func (n xmlNode) child(space, local string) *xmlNode {
	for i := range n.Nodes {
		c := &n.Nodes[i]
		if c.XMLName.Local == local && (space == "" || c.XMLName.Space == space) {
			return c
		}
	}
	return nil
}

// childText returns the text of the first child with the name.
func (n xmlNode) childText(space, local string) string {
	if c := n.child(space, local); c != nil {
		return c.Text
	}
	return ""
}

// body is a message's body.
func (n xmlNode) body() string { return n.childText("", "body") }

// stanzaError returns the error type and defined condition of an error
// stanza, or "" "".
func (n xmlNode) stanzaError() (typ, cond string) {
	e := n.child("", "error")
	if e == nil {
		return "", ""
	}
	for _, c := range e.Nodes {
		if c.XMLName.Space == nsStanzaErrors && c.XMLName.Local != "text" {
			return e.attr("type"), c.XMLName.Local
		}
	}
	return e.attr("type"), ""
}

// streamErrorCondition returns the condition of a <stream:error/>.
func (n xmlNode) streamErrorCondition() string {
	if !n.is(nsStreams, "error") {
		return ""
	}
	for _, c := range n.Nodes {
		if c.XMLName.Space == nsStreamErrors && c.XMLName.Local != "text" {
			return c.XMLName.Local
		}
	}
	return "(none)"
}

// firstChildName is the local name of the first child (a SASL failure's
// condition, for instance).
func (n xmlNode) firstChildName() string {
	for _, c := range n.Nodes {
		if c.XMLName.Local != "text" {
			return c.XMLName.Local
		}
	}
	return ""
}

func (n xmlNode) String() string {
	var b strings.Builder
	n.write(&b)
	return b.String()
}

func (n xmlNode) write(b *strings.Builder) {
	fmt.Fprintf(b, "<%s", n.XMLName.Local)
	if n.XMLName.Space != "" {
		fmt.Fprintf(b, " xmlns='%s'", n.XMLName.Space)
	}
	for _, a := range n.Attrs {
		if a.Name.Local == "xmlns" || a.Name.Space == "xmlns" {
			continue
		}
		fmt.Fprintf(b, " %s='%s'", a.Name.Local, a.Value)
	}
	if n.Text == "" && len(n.Nodes) == 0 {
		b.WriteString("/>")
		return
	}
	b.WriteString(">")
	xml.EscapeText(b, []byte(n.Text))
	for _, c := range n.Nodes {
		c.write(b)
	}
	fmt.Fprintf(b, "</%s>", n.XMLName.Local)
}

// ---------------------------------------------------------------------------
// rawClient: a socket and encoding/xml.

type rawClient struct {
	t    *testing.T
	ts   *testServer
	conn net.Conn
	dec  *xml.Decoder
}

// errStreamEnd is returned by next when the server closed its stream.
var errStreamEnd = errors.New("the server closed its stream (</stream:stream>)")

// rawDial connects to the STARTTLS port ("starttls") over plain TCP, or to
// the direct TLS port ("direct_tls") with TLS.
func (ts *testServer) rawDial(t *testing.T, listener string) *rawClient {
	t.Helper()
	var conn net.Conn
	var err error
	d := net.Dialer{Timeout: e2eWait}
	if listener == "direct_tls" {
		conn, err = tls.DialWithDialer(&d, "tcp", ts.addr(listener), ts.tlsConfig())
	} else {
		conn, err = d.Dial("tcp", ts.addr(listener))
	}
	if err != nil {
		t.Fatalf("dial %s: %v", listener, err)
	}
	r := &rawClient{t: t, ts: ts, conn: conn}
	r.dec = xml.NewDecoder(conn)
	t.Cleanup(func() { conn.Close() })
	return r
}

func (r *rawClient) write(s string) error {
	_ = r.conn.SetWriteDeadline(time.Now().Add(e2eWait))
	_, err := io.WriteString(r.conn, s)
	return err
}

func (r *rawClient) mustWrite(s string) {
	r.t.Helper()
	if err := r.write(s); err != nil {
		r.t.Fatalf("raw write %q: %v", s, err)
	}
}

// next returns the next top-level element, skipping stream headers and
// whitespace. It returns errStreamEnd at </stream:stream>.
func (r *rawClient) next() (xmlNode, error) {
	_ = r.conn.SetReadDeadline(time.Now().Add(e2eWait))
	for {
		tok, err := r.dec.Token()
		if err != nil {
			return xmlNode{}, err
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			if tk.Name.Space == nsStreams && tk.Name.Local == "stream" {
				continue
			}
			var n xmlNode
			err := r.dec.DecodeElement(&n, &tk)
			return n, err
		case xml.EndElement:
			if tk.Name.Space == nsStreams && tk.Name.Local == "stream" {
				return xmlNode{}, errStreamEnd
			}
		}
	}
}

func (r *rawClient) mustNext(what string) xmlNode {
	r.t.Helper()
	n, err := r.next()
	if err != nil {
		r.t.Fatalf("%s: %v", what, err)
	}
	return n
}

// open sends a stream header and returns what follows the server's header:
// normally <stream:features/>.
func (r *rawClient) open() xmlNode {
	r.t.Helper()
	r.mustWrite("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='" + e2eDomain + "' version='1.0'>")
	return r.mustNext("reading the stream features")
}

// startTLS upgrades the connection after <starttls/>.
func (r *rawClient) startTLS(cfg *tls.Config) error {
	r.t.Helper()
	r.mustWrite("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	n := r.mustNext("reading the STARTTLS answer")
	if !n.is(nsTLSFeature, "proceed") {
		r.t.Fatalf("STARTTLS answered with %s", n)
	}
	tc := tls.Client(r.conn, cfg)
	_ = tc.SetDeadline(time.Now().Add(e2eWait))
	if err := tc.Handshake(); err != nil {
		return err
	}
	_ = tc.SetDeadline(time.Time{})
	r.conn = tc
	r.dec = xml.NewDecoder(tc)
	return nil
}

// mechanisms lists the SASL mechanisms in a features element.
func mechanisms(features xmlNode) []string {
	var out []string
	if m := features.child(nsSASLFeature, "mechanisms"); m != nil {
		for _, c := range m.Nodes {
			if c.XMLName.Local == "mechanism" {
				out = append(out, strings.TrimSpace(c.Text))
			}
		}
	}
	return out
}

// auth runs one SASL exchange with mellium.im/sasl as the client and
// returns the server's final answer (<success/> or <failure/>). On
// success the server's SCRAM signature is verified.
func (r *rawClient) auth(mech sasl.Mechanism, user, password string, offered []string) xmlNode {
	r.t.Helper()
	opts := []sasl.Option{
		sasl.Credentials(func() ([]byte, []byte, []byte) { return []byte(user), []byte(password), nil }),
		sasl.RemoteMechanisms(offered...),
	}
	if tc, ok := r.conn.(*tls.Conn); ok {
		opts = append(opts, sasl.TLSState(tc.ConnectionState()))
	}
	c := sasl.NewClient(mech, opts...)
	_, resp, err := c.Step(nil)
	if err != nil {
		r.t.Fatalf("SASL %s start: %v", mech.Name, err)
	}
	r.mustWrite(fmt.Sprintf("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='%s'>%s</auth>", mech.Name, b64(resp)))
	for {
		n := r.mustNext("SASL " + mech.Name)
		switch {
		case n.is(nsSASLFeature, "challenge"):
			data, err := base64.StdEncoding.DecodeString(strings.TrimSpace(n.Text))
			if err != nil {
				r.t.Fatalf("SASL challenge is not base64: %s", n)
			}
			_, resp, err := c.Step(data)
			if err != nil {
				r.t.Fatalf("SASL %s step: %v", mech.Name, err)
			}
			r.mustWrite("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + b64(resp) + "</response>")
		case n.is(nsSASLFeature, "success"):
			if t := strings.TrimSpace(n.Text); t != "" && t != "=" {
				data, err := base64.StdEncoding.DecodeString(t)
				if err != nil {
					r.t.Fatalf("SASL success data is not base64: %s", n)
				}
				if _, _, err := c.Step(data); err != nil {
					r.t.Fatalf("SASL %s: the server's final message does not verify: %v", mech.Name, err)
				}
			}
			return n
		default:
			return n
		}
	}
}

func b64(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

// login does STARTTLS (on the plain port), SASL (SCRAM-SHA-256) and binds
// a resource; it returns the bound full JID. Whitespace is sent between
// the negotiation steps when ws is set (RFC 6120 §4.6.1 allows it
// anywhere between top-level elements).
func (r *rawClient) login(user, password, resource string, ws string) string {
	r.t.Helper()
	f := r.open()
	if _, isTLS := r.conn.(*tls.Conn); !isTLS {
		if f.child(nsTLSFeature, "starttls") == nil {
			r.t.Fatalf("no STARTTLS offered: %s", f)
		}
		r.mustWrite(ws)
		if err := r.startTLS(r.ts.tlsConfig()); err != nil {
			r.t.Fatalf("TLS handshake: %v", err)
		}
		f = r.open()
	}
	r.mustWrite(ws)
	if res := r.auth(sasl.ScramSha256, user, password, mechanisms(f)); !res.is(nsSASLFeature, "success") {
		r.t.Fatalf("authentication as %s: %s", user, res)
	}
	r.dec = xml.NewDecoder(r.conn)
	f = r.open()
	if f.child(nsBindFeature, "bind") == nil {
		r.t.Fatalf("no bind feature after authentication: %s", f)
	}
	r.mustWrite(ws)
	res := ""
	if resource != "" {
		res = "<resource>" + resource + "</resource>"
	}
	r.mustWrite("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>" + res + "</bind></iq>")
	n := r.mustNext("bind")
	if n.attr("type") != "result" {
		r.t.Fatalf("bind failed: %s", n)
	}
	b := n.child(nsBindFeature, "bind")
	if b == nil || b.childText("", "jid") == "" {
		r.t.Fatalf("bind result without a JID: %s", n)
	}
	return b.childText("", "jid")
}

// streamError reads until a stream error and returns its condition, then
// expects the end of the stream or of the connection. Other elements are
// returned in skipped.
func (r *rawClient) streamError() (cond string, skipped []xmlNode) {
	r.t.Helper()
	for {
		n, err := r.next()
		if err != nil {
			r.t.Fatalf("waiting for a stream error: %v (received before: %v)", err, skipped)
		}
		if n.is(nsStreams, "error") {
			cond = n.streamErrorCondition()
			break
		}
		skipped = append(skipped, n)
	}
	if _, err := r.next(); err != errStreamEnd && !errors.Is(err, io.EOF) && !isConnReset(err) {
		r.t.Errorf("after the stream error: want </stream:stream> or the end of the connection, got %v", err)
	}
	return cond, skipped
}

// waitClosed reads until the server closes the connection.
func (r *rawClient) waitClosed() {
	r.t.Helper()
	_ = r.conn.SetReadDeadline(time.Now().Add(e2eWait))
	if _, err := io.Copy(io.Discard, r.conn); err != nil && !isConnReset(err) {
		r.t.Fatalf("waiting for the server to close the connection: %v", err)
	}
}

func isConnReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

package session_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"kontor.im/kontor/core/account"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/sasl"
	"kontor.im/kontor/core/session"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/storage/sqlite"

	_ "kontor.im/kontor/core/mod/carbons"
	_ "kontor.im/kontor/core/mod/offline"
	_ "kontor.im/kontor/core/mod/presence"
	_ "kontor.im/kontor/core/mod/roster"
)

// Namespaces the stream management tests use.
const (
	nsSM      = "urn:xmpp:sm:3"
	nsCSI     = "urn:xmpp:csi:0"
	nsStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas"
	nsStreams = "urn:ietf:params:xml:ns:xmpp-streams"
	nsDelay   = "urn:xmpp:delay"
	wait      = 5 * time.Second
)

// smEnv is a server whose router runs the given modules (with a test
// sealer) on a fresh SQLite store with the accounts alice, bob and carol.
type smEnv struct {
	srv    *session.Server
	router *router.Router
	store  storage.Store
	addr   string
}

func startSM(t testing.TB, modules []string, mutate func(*session.Config)) *smEnv {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var mods []router.Enabled
	for _, id := range modules {
		mods = append(mods, modtest.Module(t, id))
	}
	ms := modtest.New(t, modtest.Options{Domain: "example.com", Store: st}, mods...)
	for _, u := range []string{"alice", "bob", "carol"} {
		if err := account.Create(context.Background(), st, jid.MustParse(u+"@example.com"), "secret-password"); err != nil {
			t.Fatal(err)
		}
	}
	cfg := session.Config{
		Router: ms.Router,
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
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return &smEnv{srv: srv, router: ms.Router, store: st, addr: ln.Addr().String()}
}

// node is an element as the test client sees it.
type node struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Nodes   []node     `xml:",any"`
	Text    string     `xml:",chardata"`
}

func (n node) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

func (n node) child(space, local string) (node, bool) {
	for _, c := range n.Nodes {
		if c.XMLName.Space == space && c.XMLName.Local == local {
			return c, true
		}
	}
	return node{}, false
}

func (n node) is(space, local string) bool {
	return n.XMLName.Space == space && n.XMLName.Local == local
}

func (n node) String() string {
	var b strings.Builder
	b.WriteString("<" + n.XMLName.Local)
	for _, a := range n.Attrs {
		if a.Name.Space == "" {
			fmt.Fprintf(&b, " %s='%s'", a.Name.Local, a.Value)
		}
	}
	b.WriteString(">")
	for _, c := range n.Nodes {
		b.WriteString(c.String())
	}
	b.WriteString(n.Text)
	b.WriteString("</" + n.XMLName.Local + ">")
	return b.String()
}

// streamEnd is what next returns when the server closed the stream.
var streamEnd = errors.New("the server closed the stream")

// xc is a raw client that parses what the server sends into elements. A
// goroutine per stream decodes one element per request, so that a wait
// can time out without breaking the decoder.
type xc struct {
	t    testing.TB
	name string
	tcp  net.Conn // the socket, to cut it
	conn net.Conn // TCP, then TLS
	jid  string
	// h counts the stanzas received since SM was enabled or resumed.
	h      uint32
	counts bool

	reqs        chan struct{}
	results     chan decoded
	outstanding bool
}

type decoded struct {
	n   node
	err error
}

func dialX(t testing.TB, e *smEnv, name string) *xc {
	t.Helper()
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &xc{t: t, name: name, tcp: conn, conn: conn}
}

func (c *xc) send(s string) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("%s: write: %v", c.name, err)
	}
}

// open sends a stream header, starts decoding the server's stream and
// returns its features.
func (c *xc) open() node {
	c.t.Helper()
	if c.reqs != nil {
		close(c.reqs)
	}
	c.send(header)
	dec := xml.NewDecoder(c.conn)
	reqs, results := make(chan struct{}), make(chan decoded, 1)
	c.reqs, c.results, c.outstanding = reqs, results, false
	go func() {
		for range reqs {
			n, err := decodeNext(dec)
			results <- decoded{n, err}
			if err != nil {
				return
			}
		}
	}()
	// The header itself.
	_ = c.conn.SetReadDeadline(time.Now().Add(wait))
	for {
		tok, err := dec.Token()
		if err != nil {
			c.t.Fatalf("%s: reading the stream header: %v", c.name, err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "stream" {
			break
		}
	}
	_ = c.conn.SetReadDeadline(time.Time{})
	f := c.must()
	if !f.is("http://etherx.jabber.org/streams", "features") {
		c.t.Fatalf("%s: want features, got %s", c.name, f)
	}
	return f
}

func decodeNext(dec *xml.Decoder) (node, error) {
	for {
		tok, err := dec.Token()
		if err != nil {
			return node{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			var n node
			err := dec.DecodeElement(&n, &t)
			return n, err
		case xml.EndElement:
			return node{}, streamEnd
		}
	}
}

// errTimeout is what next returns when nothing came.
var errTimeout = errors.New("nothing received")

// next returns the next top-level element within d; streamEnd when the
// server closed the stream.
func (c *xc) next(d time.Duration) (node, error) {
	if !c.outstanding {
		c.reqs <- struct{}{}
		c.outstanding = true
	}
	select {
	case r := <-c.results:
		c.outstanding = false
		if r.err == nil && c.counts && r.n.XMLName.Space == "jabber:client" {
			c.h++
		}
		return r.n, r.err
	case <-time.After(d):
		return node{}, errTimeout
	}
}

func (c *xc) must() node {
	c.t.Helper()
	n, err := c.next(wait)
	if err != nil {
		c.t.Fatalf("%s: %v", c.name, err)
	}
	return n
}

// nothing asserts that the server sends nothing within d.
func (c *xc) nothing(d time.Duration) {
	c.t.Helper()
	if n, err := c.next(d); err != errTimeout {
		c.t.Fatalf("%s: want nothing, got %s (%v)", c.name, n, err)
	}
}

// ended asserts that the server ends the stream within d, after an
// optional stream error, which it returns (zero if none).
func (c *xc) ended(d time.Duration) node {
	c.t.Helper()
	var se node
	for {
		n, err := c.next(d)
		switch {
		case err == streamEnd, err != nil && err != errTimeout:
			return se
		case err == errTimeout:
			c.t.Fatalf("%s: the server did not end the stream", c.name)
		case n.is("http://etherx.jabber.org/streams", "error"):
			se = n
		}
	}
}

// auth runs STARTTLS and SASL PLAIN, then opens the authenticated stream
// and returns its features.
func (c *xc) auth(user string) node {
	c.t.Helper()
	c.open()
	c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	if n := c.must(); n.XMLName.Local != "proceed" {
		c.t.Fatalf("%s: starttls: %s", c.name, n)
	}
	tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true}) // test server with a throwaway certificate
	if err := tc.Handshake(); err != nil {
		c.t.Fatal(err)
	}
	c.conn = tc
	c.open()
	c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00secret-password")) + "</auth>")
	if n := c.must(); n.XMLName.Local != "success" {
		c.t.Fatalf("%s: auth: %s", c.name, n)
	}
	return c.open()
}

// bind binds a resource.
func (c *xc) bind(resource string) {
	c.t.Helper()
	c.send("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>" + resource + "</resource></bind></iq>")
	n := c.must()
	b, ok := n.child("urn:ietf:params:xml:ns:xmpp-bind", "bind")
	if n.attr("type") != "result" || !ok {
		c.t.Fatalf("%s: bind: %s", c.name, n)
	}
	j, _ := b.child("urn:ietf:params:xml:ns:xmpp-bind", "jid")
	c.jid = j.Text
}

// login authenticates and binds.
func (c *xc) login(user, resource string) {
	c.t.Helper()
	c.auth(user)
	c.bind(resource)
}

// enable enables stream management and returns <enabled/>.
func (c *xc) enable(attrs string) node {
	c.t.Helper()
	c.send("<enable xmlns='urn:xmpp:sm:3' " + attrs + "/>")
	n := c.must()
	if !n.is(nsSM, "enabled") {
		c.t.Fatalf("%s: enable: %s", c.name, n)
	}
	c.counts, c.h = true, 0
	return n
}

// resume sends <resume/> and returns the answer.
func (c *xc) resume(previd string, h uint32) node {
	c.t.Helper()
	c.send(fmt.Sprintf("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='%d'/>", previd, h))
	n := c.must()
	if n.is(nsSM, "resumed") {
		c.counts, c.h = true, h
	}
	return n
}

// ack sends <a h/> with what the client counted.
func (c *xc) ack() { c.send(fmt.Sprintf("<a xmlns='urn:xmpp:sm:3' h='%d'/>", c.h)) }

// ackSync acknowledges what was received and waits until the server has
// handled it (its answer to an <r/> sent after).
func (c *xc) ackSync() {
	c.t.Helper()
	c.ack()
	c.send("<r xmlns='urn:xmpp:sm:3'/>")
	for {
		if n := c.must(); n.is(nsSM, "a") {
			return
		}
	}
}

// cut drops the TCP connection without closing the stream.
func (c *xc) cut() { c.tcp.Close() }

// collect reads elements until n stanzas satisfying keep were seen,
// answering the server's <r/> with what was counted when answer is set.
func (c *xc) collect(n int, answer bool, keep func(node) bool) []node {
	c.t.Helper()
	var out []node
	for len(out) < n {
		el, err := c.next(wait)
		if err != nil {
			c.t.Fatalf("%s: waiting for %d stanzas, got %d (%v): %v", c.name, n, len(out), out, err)
		}
		if el.is(nsSM, "r") {
			if answer {
				c.ack()
			}
			continue
		}
		if keep(el) {
			out = append(out, el)
		}
	}
	return out
}

// isMessage keeps messages.
func isMessage(n node) bool { return n.is("jabber:client", "message") }

// ids returns the id attributes of elements.
func ids(list []node) []string {
	out := make([]string, len(list))
	for i, n := range list {
		out[i] = n.attr("id")
	}
	return out
}

// waitFor polls cond until it holds or the wait is over.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// offline returns the bodies of the offline messages stored for an
// account (the test sealer only prefixes the plaintext) and whether each
// carries a delay stamp.
func offline(t testing.TB, st storage.Store, owner string) []string {
	t.Helper()
	msgs, err := st.OfflineMessages(context.Background(), owner, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		plain := string(m.Sealed)
		i := strings.Index(plain, "<body>")
		j := strings.Index(plain, "</body>")
		if i < 0 || j < i {
			t.Fatalf("stored message without a body: %q", plain)
		}
		if !strings.Contains(plain, "urn:xmpp:delay") {
			t.Errorf("stored message without a delay stamp: %q", plain)
		}
		out = append(out, plain[i+6:j])
	}
	return out
}

// message builds a chat message with an id and a body.
func message(to, id, body string) string {
	return "<message to='" + to + "' id='" + id + "' type='chat'><body>" + body + "</body></message>"
}

func itoa(i int) string { return strconv.Itoa(i) }

package load

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	nsClient  = "jabber:client"
	nsStream  = "http://etherx.jabber.org/streams"
	nsTLS     = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL    = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind    = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSession = "urn:ietf:params:xml:ns:xmpp-session"
	nsSM      = "urn:xmpp:sm:3"
)

// element is a parsed stanza: just enough of XML for a load generator.
type element struct {
	space, local string
	attrs        []xml.Attr
	children     []*element
	text         strings.Builder
}

func (e *element) attr(name string) string {
	for _, a := range e.attrs {
		if a.Name.Local == name && (a.Name.Space == "" || a.Name.Space == "xml") {
			return a.Value
		}
	}
	return ""
}

// child returns the first child with this local name (and namespace, if
// space is not empty), or nil.
func (e *element) child(space, local string) *element {
	if e == nil {
		return nil
	}
	for _, c := range e.children {
		if c.local == local && (space == "" || c.space == space) {
			return c
		}
	}
	return nil
}

// conn is one client connection: STARTTLS, SASL SCRAM, bind. It speaks
// the protocol directly (no XMPP library) so that the generator costs
// little next to the server it measures.
type conn struct {
	cfg  *Config
	raw  net.Conn
	tls  *tls.Conn
	dec  *xml.Decoder
	wmu  sync.Mutex
	w    *bufio.Writer
	jid  string
	iqID int
	// Stream management (XEP-0198), after enableSM: h counts the stanzas
	// received; next answers the server's <r/> and swallows its <a/>.
	sm     bool
	h      atomic.Uint32
	acked  atomic.Int64 // stanzas the server acknowledged (its last h)
	smSent atomic.Int64 // stanzas sent while stream management was on
}

// dial connects and negotiates TLS; the stream is open and its features
// read when it returns.
func dial(ctx context.Context, cfg *Config) (*conn, *element, error) {
	d := net.Dialer{Timeout: cfg.Timeout}
	raw, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, nil, err
	}
	if tc, ok := raw.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	c := &conn{cfg: cfg, raw: raw}
	raw.SetDeadline(time.Now().Add(cfg.Timeout))
	c.reset(raw)
	feats, err := c.open()
	if err != nil {
		raw.Close()
		return nil, nil, err
	}
	if feats.child(nsTLS, "starttls") == nil {
		raw.Close()
		return nil, nil, errors.New("load: server offers no STARTTLS")
	}
	c.write("<starttls xmlns='" + nsTLS + "'/>")
	if err := c.flush(); err != nil {
		raw.Close()
		return nil, nil, err
	}
	if e, err := c.next(); err != nil || e.local != "proceed" {
		raw.Close()
		return nil, nil, fmt.Errorf("load: starttls: %v %v", elemName(e), err)
	}
	c.tls = tls.Client(raw, &tls.Config{ServerName: cfg.Domain, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) // load tool: the servers under test use throw-away self-signed certificates on loopback
	if err := c.tls.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, nil, err
	}
	c.reset(c.tls)
	if feats, err = c.open(); err != nil {
		raw.Close()
		return nil, nil, err
	}
	return c, feats, nil
}

func elemName(e *element) string {
	if e == nil {
		return "<nil>"
	}
	return e.local
}

func (c *conn) reset(rw io.ReadWriter) {
	c.dec = xml.NewDecoder(bufio.NewReaderSize(rw, 4096))
	c.w = bufio.NewWriterSize(rw, 4096)
}

// open sends a stream header, reads the server's and its features.
func (c *conn) open() (*element, error) {
	c.write("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='" + nsStream + "' to='" + c.cfg.Domain + "' version='1.0'>")
	if err := c.flush(); err != nil {
		return nil, err
	}
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return nil, err
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Space == nsStream && se.Name.Local == "stream" {
				break
			}
			return nil, fmt.Errorf("load: expected a stream header, got %s", se.Name.Local)
		}
	}
	f, err := c.next()
	if err != nil {
		return nil, err
	}
	if f.local != "features" {
		return nil, fmt.Errorf("load: expected stream features, got %s", f.local)
	}
	return f, nil
}

// next reads the next top-level element of the stream. With stream
// management on it counts stanzas, answers <r/> and takes <a/> itself.
func (c *conn) next() (*element, error) {
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			e, err := c.element(t)
			if err != nil || !c.sm {
				return e, err
			}
			if e.space == nsSM {
				switch e.local {
				case "r":
					if err := c.send("<a xmlns='" + nsSM + "' h='" + strconv.FormatUint(uint64(c.h.Load()), 10) + "'/>"); err != nil {
						return nil, err
					}
				case "a":
					if h, perr := strconv.ParseUint(e.attr("h"), 10, 32); perr == nil {
						c.acked.Store(int64(h))
					}
				}
				continue
			}
			if e.local == "message" || e.local == "presence" || e.local == "iq" {
				c.h.Add(1)
			}
			return e, nil
		case xml.EndElement:
			return nil, io.EOF // </stream:stream>
		}
	}
}

// ready waits until the server has handled everything the connection sent
// so far, its initial presence in particular: a server handles one
// stream's stanzas in order (RFC 6120 §10.1), so the answer to a ping sent
// now comes after. Messages sent to a user before the server has the
// user's presence go to offline storage and arrive later, delayed, as if
// lost to the measurement. It reads the stream, so nobody else may yet.
func (c *conn) ready() error {
	if err := c.send("<iq type='get' id='ready'><ping xmlns='urn:xmpp:ping'/></iq>"); err != nil {
		return err
	}
	for {
		e, err := c.next()
		if err != nil {
			return err
		}
		if e.local == "iq" && e.attr("id") == "ready" {
			return nil // a result, or an error from a server without ping: handled either way
		}
	}
}

// enableSM enables stream management (XEP-0198, without resumption) on a
// logged-in connection whose stream nobody else reads yet.
func (c *conn) enableSM() error {
	if err := c.send("<enable xmlns='" + nsSM + "'/>"); err != nil {
		return err
	}
	for {
		e, err := c.next()
		if err != nil {
			return err
		}
		if e.space != nsSM {
			continue // presence and the like that came before; not counted (sm was off)
		}
		switch e.local {
		case "enabled":
			c.sm = true
			return nil
		case "failed":
			return fmt.Errorf("load: stream management refused: %s", describeChildren(e))
		}
	}
}

// sendCounted sends a stanza that counts for stream management, followed
// by a request for an acknowledgement (<r/>) as mobile clients do after
// each message.
func (c *conn) sendCounted(s string) error {
	if !c.sm {
		return c.send(s)
	}
	c.smSent.Add(1)
	return c.send(s + "<r xmlns='" + nsSM + "'/>")
}

func (c *conn) element(start xml.StartElement) (*element, error) {
	e := &element{space: start.Name.Space, local: start.Name.Local, attrs: start.Attr}
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			ch, err := c.element(t)
			if err != nil {
				return nil, err
			}
			e.children = append(e.children, ch)
		case xml.CharData:
			e.text.Write(t)
		case xml.EndElement:
			return e, nil
		}
	}
}

func (c *conn) write(s string) { c.w.WriteString(s) }
func (c *conn) flush() error   { return c.w.Flush() }

// send writes one stanza and flushes; safe for concurrent use.
func (c *conn) send(s string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.w.WriteString(s)
	return c.w.Flush()
}

func (c *conn) close() {
	c.wmu.Lock()
	c.raw.SetWriteDeadline(time.Now().Add(time.Second))
	if c.sm {
		// Acknowledge what arrived, as a client does before it closes:
		// the server would otherwise hand unacknowledged messages to
		// offline storage (XEP-0198 §5), and the next run would get them.
		c.w.WriteString("<a xmlns='" + nsSM + "' h='" + strconv.FormatUint(uint64(c.h.Load()), 10) + "'/>")
	}
	c.w.WriteString("</stream:stream>")
	c.w.Flush()
	c.wmu.Unlock()
	c.raw.Close()
}

// register creates an account in band (XEP-0077) on a fresh connection.
func register(ctx context.Context, cfg *Config, user string) error {
	c, _, err := dial(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.close()
	c.write("<iq type='set' id='reg1'><query xmlns='jabber:iq:register'><username>" + xmlEscape(user) + "</username><password>" + xmlEscape(cfg.Password) + "</password></query></iq>")
	if err := c.flush(); err != nil {
		return err
	}
	for {
		e, err := c.next()
		if err != nil {
			return err
		}
		if e.local != "iq" || e.attr("id") != "reg1" {
			continue
		}
		if e.attr("type") == "result" {
			return nil
		}
		if er := e.child("", "error"); er != nil && er.child("", "conflict") != nil {
			return nil // exists already: provisioning is idempotent
		}
		return fmt.Errorf("load: registering %s refused: %s", user, describeError(e))
	}
}

func describeError(e *element) string {
	er := e.child("", "error")
	if er == nil {
		return e.local
	}
	var names []string
	for _, ch := range er.children {
		names = append(names, ch.local)
	}
	return strings.Join(names, ",")
}

// login runs a whole login: TLS, SCRAM, bind, roster and initial presence.
func login(ctx context.Context, cfg *Config, user string) (*conn, error) {
	c, feats, err := dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := c.auth(feats, user); err != nil {
		c.raw.Close()
		return nil, fmt.Errorf("load: %s: %w", user, err)
	}
	feats, err = c.open()
	if err != nil {
		c.raw.Close()
		return nil, err
	}
	c.write("<iq type='set' id='bind'><bind xmlns='" + nsBind + "'><resource>load</resource></bind></iq>")
	if feats.child(nsSession, "session") != nil && feats.child(nsSession, "session").child("", "optional") == nil {
		c.write("<iq type='set' id='sess'><session xmlns='" + nsSession + "'/></iq>")
	}
	c.write("<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq><presence/>")
	if err := c.flush(); err != nil {
		c.raw.Close()
		return nil, err
	}
	for {
		e, err := c.next()
		if err != nil {
			c.raw.Close()
			return nil, err
		}
		if e.local != "iq" {
			continue
		}
		if e.attr("type") == "error" {
			c.raw.Close()
			return nil, fmt.Errorf("load: %s: iq %s: %s", user, e.attr("id"), describeError(e))
		}
		switch e.attr("id") {
		case "bind":
			if b := e.child(nsBind, "bind"); b != nil {
				if j := b.child("", "jid"); j != nil {
					c.jid = j.text.String()
				}
			}
		case "roster":
			c.raw.SetDeadline(time.Time{})
			return c, nil
		}
	}
}

// auth runs SCRAM-SHA-256 or SCRAM-SHA-1 (without channel binding, which
// all three servers accept).
func (c *conn) auth(feats *element, user string) error {
	mechs := feats.child(nsSASL, "mechanisms")
	offered := map[string]bool{}
	if mechs != nil {
		for _, m := range mechs.children {
			offered[strings.TrimSpace(m.text.String())] = true
		}
	}
	var h func() hash.Hash
	var name string
	switch {
	case offered["SCRAM-SHA-256"]:
		h, name = sha256.New, "SCRAM-SHA-256"
	case offered["SCRAM-SHA-1"]:
		h, name = sha1.New, "SCRAM-SHA-1"
	default:
		return fmt.Errorf("no SCRAM mechanism offered (%v)", offered)
	}
	var nb [18]byte
	rand.Read(nb[:])
	cnonce := base64.RawStdEncoding.EncodeToString(nb[:])
	bare := "n=" + saslName(user) + ",r=" + cnonce
	c.write("<auth xmlns='" + nsSASL + "' mechanism='" + name + "'>" + base64.StdEncoding.EncodeToString([]byte("n,,"+bare)) + "</auth>")
	if err := c.flush(); err != nil {
		return err
	}
	e, err := c.next()
	if err != nil {
		return err
	}
	if e.local != "challenge" {
		return fmt.Errorf("sasl: %s", e.local)
	}
	first, err := base64.StdEncoding.DecodeString(strings.TrimSpace(e.text.String()))
	if err != nil {
		return err
	}
	var nonce, salt string
	iter := 0
	for _, kv := range strings.Split(string(first), ",") {
		if len(kv) < 2 {
			continue
		}
		switch kv[:2] {
		case "r=":
			nonce = kv[2:]
		case "s=":
			salt = kv[2:]
		case "i=":
			iter, _ = strconv.Atoi(kv[2:])
		}
	}
	saltB, err := base64.StdEncoding.DecodeString(salt)
	if err != nil || !strings.HasPrefix(nonce, cnonce) || iter <= 0 || iter > 1<<20 {
		return fmt.Errorf("sasl: bad server-first-message")
	}
	salted, err := c.cfg.saltedPassword(h, name, saltB, iter)
	if err != nil {
		return err
	}
	final := "c=biws,r=" + nonce
	authMsg := bare + "," + string(first) + "," + final
	ck := hmacSum(h, salted, []byte("Client Key"))
	sk := h()
	sk.Write(ck)
	sig := hmacSum(h, sk.Sum(nil), []byte(authMsg))
	proof := make([]byte, len(ck))
	for i := range ck {
		proof[i] = ck[i] ^ sig[i]
	}
	c.write("<response xmlns='" + nsSASL + "'>" + base64.StdEncoding.EncodeToString([]byte(final+",p="+base64.StdEncoding.EncodeToString(proof))) + "</response>")
	if err := c.flush(); err != nil {
		return err
	}
	if e, err = c.next(); err != nil {
		return err
	}
	if e.local != "success" {
		return fmt.Errorf("sasl: %s %s", e.local, describeChildren(e))
	}
	// Verify the server's signature: a load tool still should not accept
	// an impostor quietly.
	v, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(e.text.String()))
	if want := "v=" + base64.StdEncoding.EncodeToString(hmacSum(h, hmacSum(h, salted, []byte("Server Key")), []byte(authMsg))); !hmac.Equal(v, []byte(want)) {
		return errors.New("sasl: wrong server signature")
	}
	return nil
}

func describeChildren(e *element) string {
	var names []string
	for _, ch := range e.children {
		names = append(names, ch.local)
	}
	return strings.Join(names, ",")
}

func hmacSum(h func() hash.Hash, key, msg []byte) []byte {
	m := hmac.New(h, key)
	m.Write(msg)
	return m.Sum(nil)
}

// saltedPassword caches PBKDF2 results: every user of a run has the same
// password, and the servers reuse salts per account, so the generator does
// not spend its CPU on key stretching.
func (cfg *Config) saltedPassword(h func() hash.Hash, mech string, salt []byte, iter int) ([]byte, error) {
	key := mech + "\x00" + string(salt) + "\x00" + strconv.Itoa(iter)
	cfg.salts.mu.Lock()
	v, ok := cfg.salts.m[key]
	cfg.salts.mu.Unlock()
	if ok {
		return v, nil
	}
	v, err := pbkdf2.Key(h, cfg.Password, salt, iter, h().Size())
	if err != nil {
		return nil, err
	}
	cfg.salts.mu.Lock()
	if len(cfg.salts.m) < 100000 {
		cfg.salts.m[key] = v
	}
	cfg.salts.mu.Unlock()
	return v, nil
}

func saslName(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}

func xmlEscape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

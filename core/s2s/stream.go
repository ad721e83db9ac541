package s2s

import (
	"bufio"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"net"
	"strings"
	"sync"
	"time"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/xmlstream"
)

// stream is one side of a server stream: the connection, a reader of the
// current stream (replaced at every restart) and a buffered writer.
// Writes are serialised by mu; reads belong to one goroutine.
type stream struct {
	nc      net.Conn
	rd      *xmlstream.Reader
	lim     xmlstream.Limits
	timeout time.Duration // per write

	mu  sync.Mutex
	bw  *bufio.Writer
	buf []byte
}

func newStream(nc net.Conn, lim xmlstream.Limits, writeTimeout time.Duration) *stream {
	st := &stream{lim: lim, timeout: writeTimeout}
	st.reset(nc)
	return st
}

// reset starts a new stream over nc (after TLS or SASL).
func (st *stream) reset(nc net.Conn) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.nc = nc
	st.rd = xmlstream.NewReader(nc, st.lim)
	st.bw = bufio.NewWriterSize(nc, 4096)
}

// header writes our stream header.
func (st *stream) header(from, to, id string) error {
	b := []byte("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' version='1.0'")
	for _, a := range [][2]string{{"from", from}, {"to", to}, {"id", id}} {
		if a[1] == "" {
			continue
		}
		b = append(b, ' ')
		b = append(b, a[0]...)
		b = append(b, "='"...)
		b = append(b, xmlEscaper.Replace(a[1])...)
		b = append(b, '\'')
	}
	b = append(b, '>')
	st.mu.Lock()
	defer st.mu.Unlock()
	_ = st.nc.SetWriteDeadline(time.Now().Add(st.timeout))
	if _, err := st.bw.Write(b); err != nil {
		return err
	}
	return st.bw.Flush()
}

var xmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "'", "&apos;", "\"", "&quot;")

// write buffers an element. Stanzas (jabber:client elements inside the
// router) are written without a namespace declaration, so that the
// stream's default namespace, jabber:server, applies to them and to their
// jabber:client children; every other element declares its own.
func (st *stream) writeLocked(el *stanza.Element) error {
	parent := stanza.NSServer
	if el.Name.Space == stanza.NSClient {
		parent = stanza.NSClient
	}
	if el.Name.Space == NSDialback {
		st.buf = appendDialback(st.buf[:0], el)
	} else {
		st.buf = el.AppendXML(st.buf[:0], parent)
	}
	_ = st.nc.SetWriteDeadline(time.Now().Add(st.timeout))
	_, err := st.bw.Write(st.buf)
	if cap(st.buf) > 64<<10 {
		st.buf = nil
	}
	return err
}

// send writes and flushes elements.
func (st *stream) send(els ...*stanza.Element) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, el := range els {
		if err := st.writeLocked(el); err != nil {
			return err
		}
	}
	_ = st.nc.SetWriteDeadline(time.Now().Add(st.timeout))
	return st.bw.Flush()
}

// close ends the stream, with a stream error when se is not nil, and
// closes the connection.
func (st *stream) close(se *stanza.StreamError) {
	st.mu.Lock()
	if se != nil {
		_ = st.writeLocked(se.Element())
	}
	_ = st.nc.SetWriteDeadline(time.Now().Add(st.timeout))
	_, _ = st.bw.WriteString("</stream:stream>")
	_ = st.bw.Flush()
	st.mu.Unlock()
	st.nc.Close()
}

// appendDialback writes a dialback element with the db: prefix the stream
// header declares. Namespace-aware parsers do not care, but some servers
// (ejabberd) match the prefixed name and ignore <result
// xmlns='jabber:server:dialback'/>.
func appendDialback(b []byte, el *stanza.Element) []byte {
	b = append(b, "<db:"...)
	b = append(b, el.Name.Local...)
	for _, a := range el.Attr {
		if a.Name.Space != "" {
			continue
		}
		b = append(b, ' ')
		b = append(b, a.Name.Local...)
		b = append(b, "='"...)
		b = append(b, xmlEscaper.Replace(a.Value)...)
		b = append(b, '\'')
	}
	if len(el.Nodes) == 0 {
		return append(b, "/>"...)
	}
	b = append(b, '>')
	for _, n := range el.Nodes {
		if n.Elem != nil {
			b = n.Elem.AppendXML(b, stanza.NSServer)
		} else {
			b = append(b, xmlEscaper.Replace(n.Text)...)
		}
	}
	b = append(b, "</db:"...)
	b = append(b, el.Name.Local...)
	return append(b, '>')
}

// toClient renames the jabber:server elements of a stanza a peer sent to
// jabber:client, the namespace stanzas have inside the router.
func toClient(el *stanza.Element) {
	if el.Name.Space == stanza.NSServer {
		el.Name.Space = stanza.NSClient
	}
	for _, n := range el.Nodes {
		if n.Elem != nil {
			toClient(n.Elem)
		}
	}
}

// newID returns a random stream id.
func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// secretKey is the dialback HMAC key: SHA-256 of the secret (XEP-0220
// §2.4).
func secretKey(secret []byte) [32]byte { return sha256.Sum256(secret) }

// dialbackKey computes a dialback key (XEP-0220 §2.4): HMAC-SHA256 keyed
// with SHA256(secret) over "receiving originating streamID", hex-encoded.
func dialbackKey(key [32]byte, receiving, originating, streamID string) string {
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte(receiving))
	m.Write([]byte{' '})
	m.Write([]byte(originating))
	m.Write([]byte{' '})
	m.Write([]byte(streamID))
	return hex.EncodeToString(m.Sum(nil))
}

// keyValid compares a presented key with the expected one in constant
// time.
func keyValid(key [32]byte, receiving, originating, streamID, presented string) bool {
	want := dialbackKey(key, receiving, originating, streamID)
	return subtle.ConstantTimeCompare([]byte(want), []byte(presented)) == 1
}

// dialback is a parsed <db:result/> or <db:verify/> (XEP-0220).
type dialback struct {
	Verify   bool   // db:verify (else db:result)
	From, To string // domains
	ID       string // stream id (db:verify)
	Type     string // "", valid, invalid, error
	Key      string // the key (requests)
}

// errNotDialback is returned for elements that are not dialback elements.
var errNotDialback = errors.New("s2s: not a dialback element")

// parseDialback reads a dialback element. It checks that from and to are
// domains, that a request carries a key of sane length and that answers
// have a known type.
func parseDialback(el *stanza.Element) (dialback, error) {
	var d dialback
	if el.Name.Space != NSDialback || (el.Name.Local != "result" && el.Name.Local != "verify") {
		return d, errNotDialback
	}
	d.Verify = el.Name.Local == "verify"
	d.From, d.To, d.ID, d.Type = el.Get("from"), el.Get("to"), el.Get("id"), el.Get("type")
	for _, dom := range []*string{&d.From, &d.To} {
		j, err := jid.Parse(*dom)
		if err != nil || j.Local() != "" || !j.IsBare() {
			return d, errors.New("s2s: dialback: from and to must be domains")
		}
		*dom = j.String()
	}
	if d.Verify && d.ID == "" {
		return d, errors.New("s2s: dialback: db:verify without id")
	}
	switch d.Type {
	case "":
		d.Key = strings.TrimSpace(el.Text())
		if d.Key == "" || len(d.Key) > 256 {
			return d, errors.New("s2s: dialback: missing or oversized key")
		}
	case "valid", "invalid", "error":
	default:
		return d, errors.New("s2s: dialback: unknown type " + d.Type)
	}
	return d, nil
}

// element renders a dialback element.
func (d dialback) element() *stanza.Element {
	local := "result"
	if d.Verify {
		local = "verify"
	}
	el := stanza.New(NSDialback, local).Set("from", d.From).Set("to", d.To)
	if d.ID != "" {
		el.Set("id", d.ID)
	}
	if d.Type != "" {
		el.Set("type", d.Type)
	}
	if d.Key != "" {
		el.SetText(d.Key)
	}
	return el
}

// verifyPeer reports whether the peer's certificate chain verifies for
// domain with roots (nil: the system roots). Any extended key usage is
// accepted: servers present their one certificate in both roles.
func verifyPeer(cs tls.ConnectionState, domain string, roots *x509.CertPool) bool {
	if len(cs.PeerCertificates) == 0 {
		return false
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{DNSName: domain, Roots: roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err == nil
}

// streamError returns err as a stream error if it is one.
func streamError(err error) (*stanza.StreamError, bool) {
	var se *stanza.StreamError
	if errors.As(err, &se) {
		return se, true
	}
	return nil, false
}

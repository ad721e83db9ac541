package session

import (
	"crypto/tls"
	"io"
	"net"
	"sync"

	"kontor.im/kontor/core/stanza"
)

// Framing is how the server's side of a stream goes onto a transport. The
// session code negotiates and serves a stream in terms of its parts (a
// header, top-level elements, the end); a framing turns them into bytes:
// RFC 6120's one XML document over TCP, RFC 7395's one element per
// WebSocket message, or XEP-0206's <body/> wrappers. Writes may be
// buffered until Flush. A framing is used by one goroutine at a time (the
// reader during negotiation, then the writer).
type Framing interface {
	// WriteHeader opens a (re)started stream: <stream:stream> on TCP,
	// <open/> on a WebSocket.
	WriteHeader(from, to, id string) error
	// WriteElement writes one top-level element (a stanza or a nonza).
	WriteElement(el *stanza.Element) error
	// WriteClose ends the stream, after the stream error errEl if it is
	// not nil.
	WriteClose(errEl *stanza.Element) error
	Flush() error
}

// Transport is a client connection whose framing is not RFC 6120's TCP
// stream (see Server.ServeTransport). Its Read yields the client's side
// as RFC 6120 stream XML: a stream header for each (re)started stream,
// the top-level elements, and </stream:stream> when the client closed
// the stream. Its deadlines bound reads and writes as net.Conn's do (a
// transport may close itself when one passes), and Close ends it.
type Transport interface {
	net.Conn
	Framing
	// TLS is the state of the TLS connection that carries the transport
	// (for channel binding); never nil: a transport is always encrypted,
	// so the stream offers no STARTTLS.
	TLS() *tls.ConnectionState
}

// tcpFraming is RFC 6120's framing: one XML document per stream. What is
// written collects in a buffer taken from a pool at the first write and
// given back at Flush, so that an idle session holds no write buffer; a
// batch larger than flushAt is written out as it grows, as a bufio.Writer
// would.
type tcpFraming struct {
	w   io.Writer
	out *[]byte // from outPool between the first write and Flush
}

// flushAt is the size at which a growing batch is written out before
// Flush: one TLS record's worth.
const flushAt = 16 << 10

var outPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func newTCPFraming(nc net.Conn) *tcpFraming {
	return &tcpFraming{w: nc}
}

// buf returns the batch buffer, taking one from the pool if needed.
func (f *tcpFraming) buf() []byte {
	if f.out == nil {
		f.out = outPool.Get().(*[]byte)
	}
	return *f.out
}

// done stores the grown batch and writes it out when it is large.
func (f *tcpFraming) done(b []byte) error {
	*f.out = b
	if len(b) >= flushAt {
		return f.write()
	}
	return nil
}

// write writes the batch and keeps the (emptied) buffer.
func (f *tcpFraming) write() error {
	b := *f.out
	*f.out = b[:0]
	if len(b) == 0 {
		return nil
	}
	_, err := f.w.Write(b)
	return err
}

func (f *tcpFraming) WriteHeader(from, to, id string) error {
	b := append(f.buf(), "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' xml:lang='en' id='"...)
	b = append(b, id...)
	b = append(b, '\'')
	if from != "" {
		b = append(b, ' ')
		b = appendAttr(b, "from", from)
	}
	if to != "" {
		b = append(b, ' ')
		b = appendAttr(b, "to", to)
	}
	b = append(b, '>')
	return f.done(b)
}

func (f *tcpFraming) WriteElement(el *stanza.Element) error {
	return f.done(el.AppendXML(f.buf(), stanza.NSClient))
}

func (f *tcpFraming) WriteClose(errEl *stanza.Element) error {
	if errEl != nil {
		if err := f.WriteElement(errEl); err != nil {
			return err
		}
	}
	return f.done(append(f.buf(), "</stream:stream>"...))
}

// Flush writes the batch and gives the buffer back to the pool (unless it
// grew large: a huge stanza should not stay in the pool).
func (f *tcpFraming) Flush() error {
	if f.out == nil {
		return nil
	}
	err := f.write()
	if cap(*f.out) <= 64<<10 {
		outPool.Put(f.out)
	}
	f.out = nil
	return err
}

// ServeTransport serves one client connection of another framing (a
// WebSocket, a BOSH session) with the same negotiation and session code
// as a TCP connection, and returns when it has ended. The transport is
// already encrypted: no STARTTLS is offered, and SASL channel binding
// uses its TLS connection. It returns ErrServerClosed after Shutdown.
func (s *Server) ServeTransport(t Transport) error {
	c := s.newConn(t, false)
	c.fr = t
	c.tls = true
	c.tlsState = t.TLS()
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		t.Close()
		return ErrServerClosed
	}
	s.conns[c] = struct{}{}
	s.tasks.add()
	s.mu.Unlock()
	ended := make(chan struct{})
	c.serve(func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.tasks.done()
		close(ended)
	})
	<-ended
	return nil
}

package session

import (
	"bufio"
	"crypto/tls"
	"net"

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

// tcpFraming is RFC 6120's framing: one XML document per stream.
type tcpFraming struct {
	bw  *bufio.Writer
	buf []byte
}

func newTCPFraming(nc net.Conn) *tcpFraming {
	return &tcpFraming{bw: bufio.NewWriterSize(nc, 4096)}
}

func (f *tcpFraming) WriteHeader(from, to, id string) error {
	b := []byte("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' xml:lang='en' id='")
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
	_, err := f.bw.Write(b)
	return err
}

func (f *tcpFraming) WriteElement(el *stanza.Element) error {
	f.buf = el.AppendXML(f.buf[:0], stanza.NSClient)
	_, err := f.bw.Write(f.buf)
	if cap(f.buf) > 64<<10 {
		f.buf = nil
	}
	return err
}

func (f *tcpFraming) WriteClose(errEl *stanza.Element) error {
	if errEl != nil {
		if err := f.WriteElement(errEl); err != nil {
			return err
		}
	}
	_, err := f.bw.WriteString("</stream:stream>")
	return err
}

func (f *tcpFraming) Flush() error { return f.bw.Flush() }

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
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.tasks.done()
	}()
	c.serve()
	return nil
}

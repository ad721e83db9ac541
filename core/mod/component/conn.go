package component

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/xmlstream"
)

// conn is one connection on the component listener. Until the handshake
// succeeds its reader goroutine writes; afterwards only its writer
// goroutine does, draining the queue.
//
// Lock order: Module.mu, then conn.mu; neither is held while writing or
// calling the router.
type conn struct {
	m      *Module
	nc     net.Conn
	bw     *bufio.Writer
	remote netip.Addr
	log    *slog.Logger
	comp   *component // after a successful handshake

	mu     sync.Mutex
	queue  []*stanza.Stanza
	closed bool // no more Sends: the queue is drained or being drained

	wake      chan struct{}
	closing   chan struct{}
	closeOnce sync.Once
	closeErr  atomic.Pointer[stanza.StreamError]
}

func (m *Module) newConn(nc net.Conn) *conn {
	c := &conn{m: m, nc: nc, bw: bufio.NewWriterSize(nc, 4096), wake: make(chan struct{}, 1), closing: make(chan struct{})}
	if ap, err := netip.ParseAddrPort(nc.RemoteAddr().String()); err == nil {
		c.remote = ap.Addr().Unmap()
	}
	c.log = m.log.With("remote", c.remote.String())
	return c
}

// Send queues a stanza for the component without blocking and reports
// whether it was taken. A full queue closes the connection with
// resource-constraint.
func (c *conn) Send(s *stanza.Stanza) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	if len(c.queue) >= c.m.opts.QueueSize {
		c.mu.Unlock()
		c.Close(&stanza.StreamError{Condition: stanza.StreamResourceConstraint, Text: "the component does not read what the server sends"})
		return false
	}
	c.queue = append(c.queue, s)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return true
}

// Close ends the connection with a stream error (nil: a clean close),
// asynchronously.
func (c *conn) Close(err *stanza.StreamError) {
	c.closeOnce.Do(func() {
		if err != nil {
			c.closeErr.Store(err)
		}
		close(c.closing)
		// Interrupt a reader still in the handshake; after it, the
		// writer closes the connection.
		_ = c.nc.SetReadDeadline(time.Now())
	})
}

// serve runs the connection: handshake, then stanzas until either side
// ends it.
func (c *conn) serve(ctx context.Context) {
	m := c.m
	defer m.detach(c)
	defer c.lingerClose()
	within := m.conns.Acquire(c.remote)
	defer m.conns.Release(c.remote)
	_ = c.nc.SetDeadline(time.Now().Add(m.opts.HandshakeTimeout))
	rd := xmlstream.NewReader(c.nc, m.limits)
	if !within {
		c.refuse("", &stanza.StreamError{Condition: stanza.StreamPolicyViolation, Text: "too many connections from your address"})
		return
	}
	comp, err := c.handshake(rd)
	if err != nil {
		var se *stanza.StreamError
		switch {
		case c.isClosing():
			if ce := c.closeErr.Load(); ce != nil {
				c.writeError(ce)
			}
		case errors.As(err, &se):
			c.writeError(se)
		case isTimeout(err):
			c.writeError(&stanza.StreamError{Condition: stanza.StreamConnectionTimeout, Text: "the handshake took too long"})
		default:
			c.log.Debug("component connection ended during the handshake", "err", err)
		}
		return
	}
	since := time.Now()
	_ = c.nc.SetDeadline(time.Time{})
	c.log.Info("component connected", "component", comp.domain.String())
	m.audit("component.connect", comp, map[string]string{"remote": c.remote.String()})

	done := make(chan struct{})
	go func() {
		defer close(done)
		c.write()
	}()
	reason := c.read(ctx, rd)
	c.Close(nil)
	<-done
	// Detach at once (not after the linger below), so that the component
	// may connect again right away; what was still queued bounces.
	c.bounceQueued(context.WithoutCancel(ctx))
	m.detach(c)
	if ce := c.closeErr.Load(); ce != nil {
		reason = ce.Condition
	}
	c.log.Info("component disconnected", "component", comp.domain.String(), "reason", reason)
	m.audit("component.disconnect", comp, map[string]string{"remote": c.remote.String(), "reason": reason,
		"connected_seconds": strconv.FormatInt(int64(time.Since(since).Seconds()), 10)})
}

// handshake reads the header and the handshake and attaches the
// connection to its component.
func (c *conn) handshake(rd *xmlstream.Reader) (*component, error) {
	m := c.m
	id := streamID()
	d, err := opening(rd)
	if err != nil {
		c.header("", id)
		return nil, err
	}
	if err := c.header(d.String(), id); err != nil {
		return nil, err
	}
	comp := m.comps[d.String()]
	if comp == nil {
		c.log.Info("component handshake refused: unknown domain", "component", d.String())
		return nil, &stanza.StreamError{Condition: stanza.StreamHostUnknown, Text: "no component is configured for this domain"}
	}
	if !allowed(comp.allowed, c.remote) {
		c.log.Warn("component handshake refused: address not allowed", "component", d.String())
		return nil, &stanza.StreamError{Condition: stanza.StreamNotAuthorized, Text: "this component may not connect from your address"}
	}
	if w := m.guard.Wait(c.remote, d.String()); w > 0 {
		c.log.Info("component handshake refused: back-off after failures", "component", d.String(), "retry_in", w.Round(time.Second))
		return nil, &stanza.StreamError{Condition: stanza.StreamPolicyViolation,
			Text: fmt.Sprintf("too many failed handshakes: try again in %s", w.Round(time.Second))}
	}
	digest, err := readHandshake(rd)
	if err != nil {
		var se *stanza.StreamError
		if errors.As(err, &se) && se.Condition == stanza.StreamNotAuthorized {
			c.failed(d.String())
		}
		return nil, err
	}
	if !validDigest(id, comp.secret, digest) {
		c.failed(d.String())
		return nil, &stanza.StreamError{Condition: stanza.StreamNotAuthorized, Text: "wrong handshake"}
	}
	if w := m.guard.Wait(c.remote, d.String()); w > 0 {
		// Right, but failures came in meanwhile: refuse anyway.
		return nil, &stanza.StreamError{Condition: stanza.StreamPolicyViolation,
			Text: fmt.Sprintf("too many failed handshakes: try again in %s", w.Round(time.Second))}
	}
	c.comp = comp
	if !m.attach(comp, c) {
		c.comp = nil
		c.log.Info("component handshake refused: connected already", "component", d.String())
		return nil, &stanza.StreamError{Condition: stanza.StreamConflict, Text: "this component is connected already"}
	}
	m.guard.Success(d.String())
	_ = c.nc.SetWriteDeadline(time.Now().Add(m.opts.WriteTimeout))
	if _, err := c.bw.WriteString("<handshake/>"); err != nil {
		return nil, err
	}
	if err := c.bw.Flush(); err != nil {
		return nil, err
	}
	return comp, nil
}

// failed counts a failed handshake.
func (c *conn) failed(domain string) {
	c.m.failures.Add(1)
	c.m.guard.Fail(c.remote, domain)
	c.log.Info("component handshake failed", "component", domain)
}

// allowed reports whether addr is in one of the prefixes (any address when
// there are none).
func allowed(prefixes []netip.Prefix, addr netip.Addr) bool {
	if len(prefixes) == 0 {
		return true
	}
	for _, p := range prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// read handles stanzas until the stream ends and says why it ended.
func (c *conn) read(ctx context.Context, rd *xmlstream.Reader) string {
	for {
		el, err := rd.Next()
		if err != nil {
			var se *stanza.StreamError
			switch {
			case c.isClosing():
				return "closed by the server"
			case errors.Is(err, io.EOF):
				return "closed by the component"
			case errors.As(err, &se):
				c.Close(se)
				return se.Condition
			}
			return "connection lost"
		}
		if !c.handle(ctx, el) {
			return "stream error"
		}
	}
}

// handle routes one stanza from the component; false when it ended the
// stream. A panic ends this one stream.
func (c *conn) handle(ctx context.Context, el *stanza.Element) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("panic while handling a stanza from a component", "panic", fmt.Sprint(p), "stanza", el.Tag())
			c.Close(&stanza.StreamError{Condition: stanza.StreamInternalServerError})
			ok = false
		}
	}()
	toClient(el)
	s, err := stanza.Parse(el)
	if err != nil {
		var se *stanza.StreamError
		var e stanza.Error
		switch {
		case errors.As(err, &se):
			c.Close(se)
			return false
		case errors.As(err, &e):
			if r := stanza.ErrorReply(s, e); r != nil {
				c.Send(r)
			}
			return true
		}
		c.Close(&stanza.StreamError{Condition: stanza.StreamBadFormat})
		return false
	}
	if s.From.IsZero() || s.To.IsZero() {
		c.Close(&stanza.StreamError{Condition: stanza.StreamImproperAddressing, Text: "a component's stanzas need 'from' and 'to'"})
		return false
	}
	if s.From.Domain() != c.comp.domain.String() {
		c.log.Info("component sent a forged 'from'", "component", c.comp.domain.String())
		c.Close(&stanza.StreamError{Condition: stanza.StreamInvalidFrom, Text: "'from' must be at the component's domain"})
		return false
	}
	if to := s.To; to.Local() != "" && c.m.host.IsLocal(to.Domain()) {
		if in, asks := question(s, party(s.From, false), party(to, true)); asks {
			if d := c.m.decide(ctx, in); !d.Allow {
				if r := stanza.ErrorReply(s, d.StanzaError()); r != nil {
					c.Send(r)
				}
				return true
			}
		}
	}
	c.m.host.Route(ctx, s)
	return true
}

// write drains the queue until the connection closes, then sends the
// stream error if any and the closing tag. The reader goroutine closes the
// connection (Close has interrupted its read).
func (c *conn) write() {
	var buf []byte
	for {
		select {
		case <-c.wake:
		case <-c.closing:
			_ = c.nc.SetWriteDeadline(time.Now().Add(c.m.opts.WriteTimeout))
			c.writeClose(c.closeErr.Load())
			return
		}
		for {
			c.mu.Lock()
			batch := c.queue
			c.queue = nil
			c.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			_ = c.nc.SetWriteDeadline(time.Now().Add(c.m.opts.WriteTimeout))
			for _, s := range batch {
				buf = s.El.AppendXML(buf[:0], stanza.NSClient)
				if _, err := c.bw.Write(buf); err != nil {
					c.Close(nil)
					return
				}
			}
		}
		if err := c.bw.Flush(); err != nil {
			c.Close(nil)
			return
		}
	}
}

// bounceQueued takes what is still queued after the connection ended and
// answers messages and requests in it with service-unavailable.
func (c *conn) bounceQueued(ctx context.Context) {
	c.mu.Lock()
	c.closed = true
	left := c.queue
	c.queue = nil
	c.mu.Unlock()
	for _, s := range left {
		if err := notConnected(s); err != nil {
			var e stanza.Error
			if errors.As(err, &e) {
				if r := stanza.ErrorReply(s, e); r != nil && !r.To.IsZero() {
					c.m.host.Route(ctx, r)
				}
			}
		}
	}
}

func (c *conn) isClosing() bool {
	select {
	case <-c.closing:
		return true
	default:
		return false
	}
}

// header writes the server's stream header (during the handshake).
func (c *conn) header(from, id string) error {
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.m.opts.WriteTimeout))
	if _, err := c.bw.Write(header(from, id)); err != nil {
		return err
	}
	return c.bw.Flush()
}

// refuse answers a connection that may not go on: a header, then the
// stream error.
func (c *conn) refuse(from string, se *stanza.StreamError) {
	if c.header(from, streamID()) == nil {
		c.writeError(se)
	}
}

// writeError writes a stream error and closes the stream (during the
// handshake, from the reader goroutine).
func (c *conn) writeError(se *stanza.StreamError) {
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.m.opts.WriteTimeout))
	c.writeClose(se)
}

func (c *conn) writeClose(se *stanza.StreamError) {
	if se != nil {
		_, _ = c.bw.Write(se.Element().AppendXML(nil, stanza.NSClient))
	}
	_, _ = c.bw.WriteString("</stream:stream>")
	_ = c.bw.Flush()
}

// lingerClose reads and discards what the component still sends, for up
// to a second or a megabyte, before closing, so that the kernel does not
// reset the connection and lose the stream error.
func (c *conn) lingerClose() {
	_ = c.nc.SetReadDeadline(time.Now().Add(time.Second))
	_, _ = io.CopyN(io.Discard, c.nc, 1<<20)
	c.nc.Close()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded)
}

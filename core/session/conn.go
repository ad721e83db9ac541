package session

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/sasl"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/xmlstream"
)

// Namespaces of stream negotiation.
const (
	nsTLS     = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL    = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind    = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSession = "urn:ietf:params:xml:ns:xmpp-session"
	nsSASLCB  = "urn:xmpp:sasl-cb:0"
	nsPing    = "urn:xmpp:ping"
	nsRegFeat = "http://jabber.org/features/iq-register"
	nsReg     = "jabber:iq:register"
)

var shutdownErr = &stanza.StreamError{Condition: stanza.StreamSystemShutdown, Text: "the server is shutting down"}

// conn is one transport: a client connection. Fields above sess belong to
// the reader goroutine; sess, full and res are set before the writer
// starts and not changed after; the ones below them are shared with the
// writer and other goroutines, except those marked as the writer's own.
type conn struct {
	srv *Server
	log *slog.Logger
	nc  net.Conn // the current transport (plain TCP, then TLS)
	// rc is between crypto/tls and the TCP connection (see recordConn);
	// nil for a Transport, or where it cannot wait.
	rc *recordConn
	// dlMu orders the read deadlines of the reader's warm wait
	// (awaitWarm) and of closeStream: once readClosing is set, the
	// reader leaves the deadline to closeStream.
	dlMu        sync.Mutex
	readClosing bool
	remote      netip.Addr
	direct      bool

	tls     bool
	authed  bool
	domain  string
	host    *router.Host
	account jid.JID // bare, after SASL
	// authAt is when the last authentication attempt began, before the
	// account was read; incarnation is the account's that the successful
	// one checked (sasl.Incarnation; zero when unknown). router.AuthInfo.
	authAt      time.Time
	incarnation time.Time
	full        jid.JID // after bind or resume
	res         module.Resource
	rd          *xmlstream.Reader
	failures    int
	smIn        bool // stream management is on: count handled stanzas
	// v2 is set while and after the client authenticates with SASL2
	// (XEP-0388); auth2 is its request (sasl2.go).
	v2    bool
	auth2 *authRequest

	sess     *session     // after bind or resume; set before the writer starts
	lastRead atomic.Int64 // unix nanoseconds of the last byte read
	bound    atomic.Bool  // run took over: Close leaves the stream's end to the writer
	ncMu     sync.Mutex   // guards nc against Close during negotiation
	// lost is set when the connection failed (rather than being closed
	// by either side on purpose): a resumable session detaches.
	lost atomic.Bool
	// replaced is set when a resumption took the session over.
	replaced atomic.Bool

	// The writer runs only while it has something to do (see writer):
	// wmu guards wRun, wWork and wEnded; it is a leaf lock.
	wmu       sync.Mutex
	wRun      bool          // a writer goroutine runs (or is starting)
	wLive     bool          // run has started serving: kicks start writers
	wEnded    bool          // the writer ended for good (closed, or failed)
	wWork     uint8         // what the writer has to do: wWrite, wAck, wPing
	wIdle     bool          // the writer lingers (see writerLinger), waiting on wWake
	wWake     chan struct{} // while a writer lingers, and until it exits
	wTimer    *time.Timer   // the lingering writer's; only the writer goroutine uses it
	wDeadline time.Time     // the write deadline armWrite set last; the writer's
	pingTimer *time.Timer   // the silent-client check (pingCheck), every pingEvery
	ackTimer  *time.Timer   // fires AckIdle after a write that left stanzas unacknowledged
	// pingSent is when a ping (or an <r/> that counts as one) was sent
	// and not answered yet (unix nanoseconds; 0: none).
	pingSent  atomic.Int64
	closeOnce sync.Once
	closing   chan struct{}
	closeErr  atomic.Pointer[stanza.StreamError]
	// closeApp is an application-specific condition for the stream error.
	closeApp atomic.Pointer[stanza.Element]
	wdone    chan struct{}
	end      func() // run once the bound transport has ended (see reading)
	// fr frames what the server writes: negotiation writes, then the
	// writer's. TCP connections get a tcpFraming (replaced after
	// STARTTLS); a Transport is its own framing.
	fr Framing
	// tlsState is a Transport's TLS connection (nil for TCP, where nc is
	// the *tls.Conn).
	tlsState *tls.ConnectionState
	// cb is the channel binding, derived once per TLS connection while
	// negotiating (features, SASL and SASL2 all ask for it) and dropped
	// when negotiation ends, so that a bound session does not hold it.
	cb *sasl.ChannelBinding

	// The writer's own (passed from one writer goroutine to the next
	// through wmu).
	spare []entry
	smOut bool // <enabled/> or <resumed/> was taken: ping with <r/>
}

func (s *Server) newConn(nc net.Conn, direct bool) *conn {
	c := &conn{srv: s, nc: nc, direct: direct, closing: make(chan struct{})}
	if ap, err := netip.ParseAddrPort(nc.RemoteAddr().String()); err == nil {
		c.remote = ap.Addr().Unmap()
	}
	c.setLog()
	return c
}

// readTracker records when the client last sent anything, whitespace
// keepalives included.
type readTracker struct{ c *conn }

func (t readTracker) Read(p []byte) (int, error) {
	n, err := t.c.nc.Read(p)
	if n > 0 {
		t.c.lastRead.Store(time.Now().UnixNano())
	}
	return n, err
}

// Close ends the transport with a stream error (nil: a clean close). It
// never blocks. A bound transport's writer sends the error and closes the
// connection; during negotiation, when the reader goroutine writes, the
// pending read is interrupted and the reader sends it.
func (c *conn) Close(err *stanza.StreamError) {
	c.closeOnce.Do(func() {
		if err != nil {
			c.closeErr.Store(err)
		}
		close(c.closing)
		if !c.bound.Load() {
			c.ncMu.Lock()
			_ = c.nc.SetReadDeadline(time.Now())
			c.ncMu.Unlock()
			return
		}
		// The writer sends the error (it sees closing).
		c.kick(0)
	})
}

// closeWith ends the transport with a stream error that carries an
// application-specific condition.
func (c *conn) closeWith(err *stanza.StreamError, app *stanza.Element) {
	c.closeApp.Store(app)
	c.Close(err)
}

// What the writer has to do (conn.wWork).
const (
	wWrite uint8 = 1 << iota // take and write the queue
	wAck                     // AckIdle passed: ask for an acknowledgement
	wPing                    // the client was silent for PingInterval: ping it
)

// signal tells the writer that the queue has something to take.
func (c *conn) signal() { c.kick(wWrite) }

// kick records work for the writer and starts a writer goroutine unless
// one runs; a running writer looks at wWork again before it exits, under
// wmu, so no work is lost between its last look and its exit. Before run
// starts serving (binding, resuming), kicks only record the work (run
// starts the first writer), and after the writer ended for good they do
// nothing.
func (c *conn) kick(work uint8) {
	c.wmu.Lock()
	c.wWork |= work
	start := c.wLive && !c.wRun && !c.wEnded
	if start {
		c.wRun = true
	}
	var wake chan struct{}
	if c.wIdle {
		wake = c.wWake
	}
	c.wIdle = false
	c.wmu.Unlock()
	switch {
	case start:
		go c.writer()
	case wake != nil:
		select {
		case wake <- struct{}{}:
		default: // a wake-up is pending already
		}
	}
}

// closeRequested reports whether Close was called.
func (c *conn) closeRequested() bool {
	select {
	case <-c.closing:
		return true
	default:
		return false
	}
}

// setConn swaps the transport (after a TLS handshake).
func (c *conn) setConn(nc net.Conn) {
	c.ncMu.Lock()
	c.nc = nc
	c.ncMu.Unlock()
}

// streamErrorElement renders a stream error with the application-specific
// condition set by closeWith, if any.
func (c *conn) streamErrorElement(se *stanza.StreamError) *stanza.Element {
	el := se.Element()
	if app := c.closeApp.Load(); app != nil {
		el.Append(app)
	}
	return el
}

// serve negotiates the stream on the calling goroutine and, once a
// resource is bound, hands the connection over to a reader and a writer
// goroutine of its own and returns (see run); end runs once the
// connection has ended, on whichever goroutine ends it.
func (c *conn) serve(end func()) {
	cfg := &c.srv.cfg
	within := cfg.Conns.Acquire(c.remote)
	handedOver := false
	defer func() {
		if !handedOver {
			c.finish(end)
		}
	}()
	c.lastRead.Store(time.Now().UnixNano())
	_ = c.nc.SetDeadline(time.Now().Add(cfg.HandshakeTimeout))

	if c.direct {
		c.rc, _ = newRecordConn(c.nc).(*recordConn)
		tc := tls.Server(c.tlsUnder(), cfg.TLS)
		if err := tc.Handshake(); err != nil {
			c.log.Debug("TLS handshake failed", "err", err)
			return
		}
		c.setConn(tc)
		c.tls = true
	}
	if c.fr == nil {
		c.fr = newTCPFraming(c.nc)
	}
	if !within {
		// Answer the header so that the client gets a proper error.
		if _, err := c.restart(); err == nil {
			c.fail(&stanza.StreamError{Condition: stanza.StreamPolicyViolation, Text: "too many connections from your address"})
		}
		return
	}
	err := c.negotiate()
	c.cb = nil
	if err != nil {
		c.endNegotiation(err)
		return
	}
	handedOver = c.run(end)
}

// finish releases what the connection held and closes it, then runs end.
func (c *conn) finish(end func()) {
	c.srv.cfg.Conns.Release(c.remote)
	c.lingerClose()
	if end != nil {
		end()
	}
}

// lingerClose reads and discards what the client still sends, for up to a
// second or a megabyte, before closing. Closing a socket with unread input
// makes the kernel answer with a reset, and the client would lose the
// stream error that explains why (for example a stanza over the size limit
// that it is still sending).
func (c *conn) lingerClose() {
	_ = c.nc.SetReadDeadline(time.Now().Add(time.Second))
	_, _ = io.CopyN(io.Discard, c.nc, 1<<20)
	c.nc.Close()
}

// endNegotiation reports an error that ended the stream before binding.
func (c *conn) endNegotiation(err error) {
	var se *stanza.StreamError
	switch {
	case c.closeRequested():
		// Close interrupted negotiation (server shutdown): say why.
		if ce := c.closeErr.Load(); ce != nil {
			_ = c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
			c.fail(ce)
		}
	case errors.As(err, &se):
		c.fail(se)
	case errors.Is(err, io.EOF):
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
		if c.fr.WriteClose(nil) == nil {
			_ = c.fr.Flush()
		}
	case isTimeout(err):
		c.fail(&stanza.StreamError{Condition: stanza.StreamConnectionTimeout, Text: "negotiation took too long"})
	default:
		c.log.Debug("connection ended during negotiation", "err", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded)
}

// fail writes a stream error and the closing tag, synchronously (during
// negotiation, before the writer runs).
func (c *conn) fail(se *stanza.StreamError) {
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
	if c.fr.WriteClose(c.streamErrorElement(se)) == nil {
		_ = c.fr.Flush()
	}
}

func (c *conn) writeElem(e *stanza.Element) error {
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
	if err := c.fr.WriteElement(e); err != nil {
		return err
	}
	return c.fr.Flush()
}

// restart reads a stream header and answers it with ours. It returns the
// header; a bad header is answered with the stream error it deserves.
func (c *conn) restart() (xmlstream.Header, error) {
	c.rd = xmlstream.NewReader(readTracker{c}, c.srv.cfg.Limits)
	h, err := c.rd.Header()
	if err != nil {
		c.header("", "")
		return h, err
	}
	domain := h.To
	if d, perr := jid.Parse(h.To); perr == nil {
		domain = d.Domain()
	}
	if c.domain != "" && domain != c.domain {
		c.header(c.domain, "")
		return h, &stanza.StreamError{Condition: stanza.StreamHostUnknown, Text: "the domain changed during negotiation"}
	}
	if h.To == "" || !c.srv.cfg.Router.IsLocal(domain) {
		c.header("", "")
		return h, &stanza.StreamError{Condition: stanza.StreamHostUnknown, Text: "this server does not serve " + strconv.Quote(h.To)}
	}
	c.domain = domain
	c.host = c.srv.cfg.Router.Host(domain)
	// RFC 6120 §4.7.2: the response header's 'to' is the 'from' the client
	// gave (clients take their own address from it). After authentication
	// it is echoed only when it is the authenticated account.
	to := ""
	if j, perr := jid.Parse(h.From); perr == nil && (!c.authed || j.Bare() == c.account) {
		to = j.String()
	}
	if err := c.header(domain, to); err != nil {
		return h, err
	}
	if h.Namespace != stanza.NSClient {
		return h, &stanza.StreamError{Condition: stanza.StreamInvalidNamespace, Text: "the default namespace must be jabber:client"}
	}
	if h.Version == "" || h.Version[0] != '1' {
		return h, &stanza.StreamError{Condition: stanza.StreamUnsupportedVersion, Text: "XMPP 1.0 is required"}
	}
	return h, nil
}

// header writes our stream header without flushing it: the features (or
// the stream error) that always follow it go out in the same write, one
// TCP segment and TLS record instead of two at every stream restart.
func (c *conn) header(from, to string) error {
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
	return c.fr.WriteHeader(from, to, newStreamID())
}

// appendAttr appends name='value', escaped.
func appendAttr(b []byte, name, value string) []byte {
	el := stanza.New("", "x").Set(name, value)
	str := el.AppendXML(nil, "") // <x name='value'/>
	return append(b, str[3:len(str)-2]...)
}

// negotiate runs the stream until a resource is bound.
func (c *conn) negotiate() error {
	for {
		if _, err := c.restart(); err != nil {
			return err
		}
		features := stanza.New(stanza.NSStream, "features")
		switch {
		case !c.tls:
			features.Append(stanza.New(nsTLS, "starttls").Append(stanza.New(nsTLS, "required")))
		case !c.authed:
			features.Append(c.mechanisms())
			if cb := c.channelBinding(); cb.Data != nil {
				features.Append(stanza.New(nsSASLCB, "sasl-channel-binding").Append(
					stanza.New(nsSASLCB, "channel-binding").Set("type", cb.Type)))
			}
			if r := c.srv.cfg.Registration; r != nil && r.Open(c.domain) {
				features.Append(stanza.New(nsRegFeat, "register"))
			}
			if f := c.sasl2Feature(); f != nil {
				features.Append(f)
			}
		default:
			c.boundFeatures(features, true)
		}
		if err := c.writeElem(features); err != nil {
			return err
		}
		var restart bool
		var err error
		switch {
		case !c.tls:
			restart, err = c.startTLS()
		case !c.authed:
			restart, err = c.authenticate()
			if err == nil && c.v2 {
				// SASL2 (XEP-0388): no restart; bound inline, or bind next.
				return c.afterSASL2()
			}
		default:
			return c.bind()
		}
		if err != nil {
			return err
		}
		if !restart {
			return io.EOF
		}
	}
}

// next reads the next top-level element during negotiation.
func (c *conn) next() (*stanza.Element, error) {
	el, err := c.rd.Next()
	if err != nil {
		return nil, err
	}
	return el, nil
}

func (c *conn) startTLS() (bool, error) {
	el, err := c.next()
	if err != nil {
		return false, err
	}
	if el.Name.Space != nsTLS || el.Name.Local != "starttls" {
		if el.Name.Space == nsSASL && el.Name.Local == "auth" {
			_ = c.writeElem(saslFailure("encryption-required", "use STARTTLS first"))
		}
		return false, &stanza.StreamError{Condition: stanza.StreamPolicyViolation, Text: "STARTTLS is required before anything else"}
	}
	if err := c.writeElem(stanza.New(nsTLS, "proceed")); err != nil {
		return false, err
	}
	c.rc, _ = newRecordConn(c.nc).(*recordConn)
	tc := tls.Server(c.tlsUnder(), c.srv.cfg.TLS)
	if err := tc.Handshake(); err != nil {
		c.log.Debug("STARTTLS handshake failed", "err", err)
		return false, err
	}
	c.setConn(tc)
	c.fr = newTCPFraming(tc)
	c.tls = true
	return true, nil
}

// tlsUnder is what crypto/tls reads from and writes to: the recordConn
// if there is one, else the connection.
func (c *conn) tlsUnder() net.Conn {
	if c.rc != nil {
		return c.rc
	}
	return c.nc
}

// channelBinding returns the tls-exporter binding when the connection
// allows one (see sasl.TLSExporter), or the zero value.
func (c *conn) channelBinding() sasl.ChannelBinding {
	if c.cb != nil {
		return *c.cb
	}
	var cb sasl.ChannelBinding
	if c.tlsState != nil {
		cb = sasl.TLSExporter(c.tlsState)
	} else if tc, ok := c.nc.(*tls.Conn); ok {
		st := tc.ConnectionState()
		cb = sasl.TLSExporter(&st)
	}
	if c.tls {
		c.cb = &cb // final once TLS is up (STARTTLS or direct)
	}
	return cb
}

// MechanismLister is implemented by authenticators that support fewer
// mechanisms than sasl.Mechanisms offers: a directory (LDAP bind) can only
// verify PLAIN, and a client offered SCRAM would pick it and fail.
type MechanismLister interface {
	Mechanisms(tlsOn bool, cb sasl.ChannelBinding) []string
}

// offered lists the mechanisms for this connection's domain, within
// Config.Mechanisms.
func (c *conn) offered(cb sasl.ChannelBinding) []string {
	var m []string
	if ml, ok := c.srv.cfg.Auth(c.domain).(MechanismLister); ok {
		m = ml.Mechanisms(c.tls, cb)
	} else {
		m = sasl.Mechanisms(c.tls, cb)
	}
	if allow := c.srv.cfg.Mechanisms; len(allow) > 0 {
		m = slices.DeleteFunc(m, func(name string) bool { return !slices.Contains(allow, name) })
	}
	return m
}

func (c *conn) mechanisms() *stanza.Element {
	el := stanza.New(nsSASL, "mechanisms")
	for _, m := range c.offered(c.channelBinding()) {
		el.Append(stanza.New(nsSASL, "mechanism").AppendText(m))
	}
	return el
}

func saslFailure(cond, text string) *stanza.Element {
	f := stanza.New(nsSASL, "failure").Append(stanza.New(nsSASL, cond))
	if text != "" {
		f.Append(stanza.New(nsSASL, "text").AppendText(text))
	}
	return f
}

// authenticate runs SASL exchanges until one succeeds (restart) or the
// connection has failed too often.
func (c *conn) authenticate() (bool, error) {
	cfg := &c.srv.cfg
	for {
		el, err := c.next()
		if err != nil {
			return false, err
		}
		if el.Name.Space == stanza.NSClient && el.Name.Local == "iq" && cfg.Registration != nil {
			if err := c.register(el); err != nil {
				return false, err
			}
			continue
		}
		var ok bool
		c.authAt = time.Now()
		switch {
		case el.Name.Space == nsSASL && el.Name.Local == "auth":
			ok, err = c.saslExchange(el)
		case el.Name.Space == nsSASL2 && el.Name.Local == "authenticate" && c.sasl2Offered():
			ok, err = c.sasl2Exchange(el)
		default:
			return false, &stanza.StreamError{Condition: stanza.StreamNotAuthorized, Text: "authenticate first"}
		}
		if err != nil {
			return false, err
		}
		if ok {
			return true, nil
		}
		c.failures++
		if c.failures >= cfg.MaxAuthAttempts {
			return false, &stanza.StreamError{Condition: stanza.StreamPolicyViolation, Text: "too many failed authentication attempts"}
		}
	}
}

// saslExchange runs one exchange started by <auth/>. It returns true on
// success; a failure has been reported to the client.
func (c *conn) saslExchange(auth *stanza.Element) (bool, error) {
	// No text means no initial response; "=" means an empty one.
	var msg []byte
	if t := auth.Text(); t != "" {
		var err error
		if msg, err = decode64(t); err != nil {
			return false, c.writeElem(saslFailure("incorrect-encoding", ""))
		}
	}
	return c.exchange(auth.Get("mechanism"), msg)
}

// exchange runs a SASL exchange of the offered mechanisms (RFC 6120 §6, or
// XEP-0388 when c.v2 is set), from the client's initial response (nil:
// none). It returns true on success; a failure has been reported to the
// client.
func (c *conn) exchange(mechanism string, msg []byte) (bool, error) {
	cfg := &c.srv.cfg
	if w := cfg.AuthGuard.Wait(c.remote, ""); w > 0 {
		c.log.Info("authentication refused: too many failures from this address", "retry_in", w.Round(time.Second))
		return false, c.writeElem(c.backoffFailure(w))
	}
	cb := c.channelBinding()
	offered := c.offered(cb)
	srv, err := sasl.NewServer(mechanism, cfg.Auth(c.domain), cb, offered, cfg.SASL...)
	if err != nil {
		return false, c.saslFail(err, "")
	}
	ns := c.saslNS()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctx, inc := sasl.WithIncarnation(ctx)
	for {
		out, done, err := srv.Step(ctx, msg)
		if err != nil {
			return false, c.saslFail(err, srv.AttemptedUsername())
		}
		if done {
			c.incarnation, _ = inc.Get()
			return c.saslSuccess(srv, out)
		}
		ch := stanza.New(ns, "challenge")
		if len(out) > 0 {
			ch.AppendText(base64.StdEncoding.EncodeToString(out))
		}
		if err := c.writeElem(ch); err != nil {
			return false, err
		}
		el, err := c.next()
		if err != nil {
			return false, err
		}
		switch {
		case el.Name.Space == ns && el.Name.Local == "response":
			if msg, err = decode64(el.Text()); err != nil {
				return false, c.writeElem(c.authFailure("incorrect-encoding", ""))
			}
			if msg == nil {
				msg = []byte{}
			}
		case el.Name.Space == ns && el.Name.Local == "abort":
			return false, c.writeElem(c.authFailure("aborted", ""))
		default:
			return false, &stanza.StreamError{Condition: stanza.StreamNotAuthorized, Text: "unexpected element during authentication"}
		}
	}
}

func decode64(s string) ([]byte, error) {
	if s == "=" {
		return []byte{}, nil
	}
	return base64.StdEncoding.DecodeString(s)
}

func (c *conn) saslFail(err error, username string) error {
	var f *sasl.Failure
	if !errors.As(err, &f) {
		c.log.Error("authentication error", "err", err)
		f = &sasl.Failure{Condition: "temporary-auth-failure"}
	}
	account := ""
	if username != "" {
		if j, jerr := jid.New(username, c.domain, ""); jerr == nil {
			account = j.String()
		}
	}
	// Only a wrong password or an unknown user is a guess worth counting.
	// Channel-binding mismatches and malformed messages are client bugs (a
	// client that falls back from -PLUS fails twice before it succeeds):
	// counting them per account would lock out users of such clients.
	if errors.Is(err, sasl.ErrBadPassword) || errors.Is(err, sasl.ErrUnknownUser) {
		// While the account is in back-off, a wrong password gets the same
		// answer as the right one (saslSuccess): otherwise the answer
		// would tell a guesser with many addresses which guess was right.
		w := time.Duration(0)
		if account != "" {
			w = c.srv.cfg.AuthGuard.Wait(c.remote, account)
		}
		c.srv.cfg.AuthGuard.Fail(c.remote, account)
		if w > 0 {
			c.log.Info("authentication refused: account in back-off", "account", account, "retry_in", w.Round(time.Second))
			return c.writeElem(c.backoffFailure(w))
		}
	}
	c.log.Info("authentication failed", "condition", f.Condition, "account", account)
	return c.writeElem(c.authFailure(f.Condition, f.Text))
}

// backoffFailure is the answer to any attempt while back-off lasts.
func (c *conn) backoffFailure(w time.Duration) *stanza.Element {
	return c.authFailure("temporary-auth-failure", fmt.Sprintf("too many failed attempts; try again in %d seconds", int(w.Seconds()+1)))
}

func (c *conn) saslSuccess(srv *sasl.Server, additional []byte) (bool, error) {
	account, err := jid.New(srv.Username(), c.domain, "")
	if err != nil {
		return false, c.writeElem(c.authFailure("not-authorized", ""))
	}
	if w := c.srv.cfg.AuthGuard.Wait(c.remote, account.String()); w > 0 {
		// The password was right, but this account is under back-off
		// after failures: refuse anyway, or guessing would still pay off.
		c.log.Info("authentication refused: account in back-off", "account", account.String(), "retry_in", w.Round(time.Second))
		return false, c.writeElem(c.backoffFailure(w))
	}
	if az := srv.Authzid(); az != "" {
		if j, err := jid.Parse(az); err != nil || j.Bare() != account {
			c.srv.cfg.AuthGuard.Fail(c.remote, account.String())
			return false, c.writeElem(c.authFailure("invalid-authzid", "acting for another entity is not supported"))
		}
	}
	c.srv.cfg.AuthGuard.Success(account.String())
	if c.v2 {
		return c.sasl2Success(account, additional)
	}
	succ := stanza.New(nsSASL, "success")
	if len(additional) > 0 {
		succ.AppendText(base64.StdEncoding.EncodeToString(additional))
	}
	if err := c.writeElem(succ); err != nil {
		return false, err
	}
	c.authed = true
	c.account = account
	c.setLog()
	c.log.Info("authenticated")
	return true, nil
}

// register answers in-band registration IQs before authentication.
func (c *conn) register(el *stanza.Element) error {
	reg := c.srv.cfg.Registration
	id := el.Get("id")
	q := el.FirstChild()
	reply := func(typ string, payload *stanza.Element) error {
		r := stanza.New(stanza.NSClient, "iq").Set("type", typ).Set("id", id)
		r.Append(payload)
		return c.writeElem(r)
	}
	errReply := func(e stanza.Error) error {
		r := stanza.New(stanza.NSClient, "iq").Set("type", "error").Set("id", id)
		r.Append(e.Element())
		return c.writeElem(r)
	}
	if q == nil || q.Name.Space != nsReg || !reg.Open(c.domain) {
		return errReply(stanza.ErrServiceUnavailable("authenticate first"))
	}
	switch el.Get("type") {
	case "get":
		form := stanza.New(nsReg, "query")
		form.Append(stanza.New(nsReg, "instructions").AppendText("Choose a username and password."))
		form.Append(stanza.New(nsReg, "username"), stanza.New(nsReg, "password"))
		return reply("result", form)
	case "set":
		user, pass := q.ChildText(nsReg, "username"), q.ChildText(nsReg, "password")
		if user == "" || pass == "" {
			return errReply(stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable, Text: "username and password are required"})
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := reg.Register(ctx, c.domain, user, pass, c.remote); err != nil {
			var se stanza.Error
			if errors.As(err, &se) {
				return errReply(se)
			}
			c.log.Error("registration failed", "err", err)
			return errReply(stanza.ErrInternal(""))
		}
		return reply("result", nil)
	}
	return errReply(stanza.ErrBadRequest(""))
}

// bind waits for the resource binding request, or a stream management
// resumption that takes over a session instead.
func (c *conn) bind() error {
	for {
		el, err := c.next()
		if err != nil {
			return err
		}
		switch el.Name.Space {
		case nsSM:
			switch el.Name.Local {
			case "resume":
				ok, err := c.resume(el)
				if err != nil || ok {
					return err
				}
			case "enable":
				// XEP-0198 §3: only after binding.
				if err := c.writeElem(smFailed(stanza.UnexpectedRequest, -1)); err != nil {
					return err
				}
			default:
				return &stanza.StreamError{Condition: stanza.StreamUnsupportedStanzaType, Text: "bind a resource first"}
			}
			continue
		case nsCSI:
			// A state before binding has nothing to apply to.
			continue
		}
		s, perr := stanza.Parse(el)
		if perr != nil || s.Kind != stanza.KindIQ || s.Type != "set" {
			return &stanza.StreamError{Condition: stanza.StreamNotAuthorized, Text: "bind a resource first"}
		}
		p := s.Payload()
		if p == nil || p.Name.Space != nsBind || p.Name.Local != "bind" {
			if p != nil && p.Name.Space == nsSession {
				if err := c.writeElem(stanza.New(stanza.NSClient, "iq").Set("type", "result").Set("id", s.ID)); err != nil {
					return err
				}
				continue
			}
			return &stanza.StreamError{Condition: stanza.StreamNotAuthorized, Text: "bind a resource first"}
		}
		res := p.ChildText(nsBind, "resource")
		if res == "" {
			res = newResource()
		}
		full, err := c.account.WithResource(res)
		if err != nil {
			e := stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: "the resource is not valid"}
			r := stanza.New(stanza.NSClient, "iq").Set("type", "error").Set("id", s.ID).Append(e.Element())
			if err := c.writeElem(r); err != nil {
				return err
			}
			continue
		}
		c.full = full
		c.setLog()
		sess := newSession(c.srv, c, full)
		ctx := context.Background()
		r, err := c.srv.cfg.Router.Bind(ctx, full, sess)
		if err != nil {
			return err
		}
		sess.mu.Lock()
		sess.res = r
		sess.mu.Unlock()
		c.srv.addSession(sess)
		c.sess, c.res = sess, r
		result := stanza.New(stanza.NSClient, "iq").Set("type", "result").Set("id", s.ID).Append(
			stanza.New(nsBind, "bind").Append(stanza.New(nsBind, "jid").AppendText(full.String())))
		if err := c.writeElem(result); err != nil {
			sess.transportEnded(c)
			return err
		}
		return nil
	}
}

// run starts serving a bound session: a fresh reader goroutine takes
// over (see reading), and writer goroutines start when there is something
// to write (see writer); the reader runs end once the writer has ended
// for good and the transport has ended. It reports whether it handed the
// connection over (false: the connection was closed while binding and has
// ended; the caller finishes).
//
// Negotiation (the TLS handshake, SASL, binding) grows the stack of the
// goroutine that runs it to 16 KiB or more, and the runtime shrinks a
// stack only at a garbage collection, by half each time. A long-lived
// reader or writer on that goroutine would hold the grown stack for a
// long time after login; fresh ones grow only as far as serving stanzas
// needs (measured by TestIdleSessionMemory).
func (c *conn) run(end func()) bool {
	s := c.sess
	c.wdone = make(chan struct{})
	c.ncMu.Lock()
	c.bound.Store(true)
	c.ncMu.Unlock()
	if c.closeRequested() {
		// Closed while binding: end as a bound session does.
		if ce := c.closeErr.Load(); ce != nil {
			c.fail(ce)
		}
		close(c.wdone)
		s.transportEnded(c)
		return false
	}
	_ = c.nc.SetDeadline(time.Time{})
	c.wmu.Lock()
	c.pingTimer = time.AfterFunc(c.pingEvery(), c.pingCheck)
	c.wLive = true
	c.wmu.Unlock()
	// Write what was queued while binding or resuming (and end the stream
	// if Close came after the check above).
	c.kick(wWrite)
	c.end = end
	go c.reading()
	return true
}

// reading is the reader goroutine of a bound transport. It waits for the
// client at a shallow depth (await), then reads and handles what came;
// then it waits up to warmWait for more on the same goroutine
// (awaitWarm), and when nothing came in that time it hands over to a
// fresh reader goroutine and exits. Handling a stanza (routing, modules,
// storage) grows a goroutine's stack to 8 KiB or more, and the runtime
// shrinks a stack only at a garbage collection, by half, and not below
// four times what is in use; an idle session's waiting reader would keep
// that stack. A fresh one waits on the small stack it starts with. The
// hand-over costs a goroutine start, its stack growing again and (over
// TCP) a non-blocking peek; paid for every message when every message is
// its own burst (kontor-load chat at 100 messages/s: about 30 ms more
// server CPU per 1,000 messages), so a session that is in a conversation
// keeps its reader for as long as input keeps coming within warmWait, and
// only one that goes quiet hands over.
func (c *conn) reading() {
	c.await()
	for c.read(context.Background()) {
		if !c.awaitWarm() {
			go c.reading()
			return
		}
	}
	c.Close(nil)
	<-c.wdone
	c.sess.transportEnded(c)
	c.finish(c.end)
}

// warmWait is how long a reader that has just handled a burst waits for
// the next one on its own goroutine before it hands over to a fresh one
// (see reading): a session that is in a conversation (a message every
// few seconds or more often) pays no goroutine start and no stack growth
// per burst, and one that goes quiet still waits on a small stack after
// warmWait. A variable so that tests can change it.
var warmWait = time.Second

// awaitWarm waits, over TCP, up to warmWait for the client to send more,
// on the current goroutine. It reports whether the reader should go on
// reading here: input (or the end of the connection, or a close) came,
// or something is buffered already. False: nothing came in time (or the
// transport cannot wait this way), and the caller hands over to a fresh
// goroutine.
func (c *conn) awaitWarm() bool {
	if c.rd.Buffered() {
		return true
	}
	if c.rc == nil || !canPeek || !c.rc.drained() {
		return false
	}
	c.dlMu.Lock()
	if c.readClosing {
		c.dlMu.Unlock()
		return true // closeStream's deadline ends the next read
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(warmWait))
	c.dlMu.Unlock()
	c.rd.Release()
	err := c.rc.waitReadable()
	c.dlMu.Lock()
	closing := c.readClosing
	if !closing {
		_ = c.nc.SetReadDeadline(time.Time{})
	}
	c.dlMu.Unlock()
	return closing || err == nil || !isTimeout(err)
}

// await waits until the client sent something (or the connection ended).
// Over TCP, when nothing is buffered in the stream reader, crypto/tls or
// the recordConn below it, it waits for the socket to become readable
// without reading: the shallowest wait there is, so that an idle reader
// fits the smallest goroutine stack. Otherwise it waits in a read
// (xmlstream.Reader.Wait), still outside the XML tokenizer.
func (c *conn) await() {
	if c.rc != nil && !c.rd.Buffered() && c.rc.drained() {
		// A session that went quiet (or has just bound) may stay so for
		// hours: the stream reader lets its tokenizer go as well.
		c.rd.Idle()
		if c.rc.waitReadable() == nil {
			return
		}
		// The read that follows reports what ended the wait.
	}
	c.rd.Wait()
}

// read reads and handles elements of a bound transport, each before
// reading the next, until the stream or the connection ends (false), or
// until it has handled something and no more input is buffered (true: the
// caller waits for more on a fresh goroutine).
func (c *conn) read(ctx context.Context) bool {
	for handled := false; ; handled = true {
		if handled && !c.rd.Buffered() {
			return true
		}
		el, err := c.rd.Next()
		if err != nil {
			var se *stanza.StreamError
			switch {
			case errors.As(err, &se):
				c.Close(se)
			case errors.Is(err, io.EOF):
				c.Close(nil)
			default:
				select {
				case <-c.closing:
				default:
					c.log.Debug("connection lost", "err", err)
					c.lost.Store(true)
					c.Close(nil)
				}
			}
			return false
		}
		if !c.element(ctx, el) {
			return false
		}
	}
}

// element handles one top-level element of a bound stream; false ends the
// transport.
func (c *conn) element(ctx context.Context, el *stanza.Element) bool {
	s := c.sess
	s.handling.Lock()
	defer s.handling.Unlock()
	if c.replaced.Load() {
		return false
	}
	switch el.Name.Space {
	case nsSM:
		return c.smElement(el)
	case nsCSI:
		return c.csiElement(el)
	}
	ok := c.handle(ctx, el)
	if c.smIn {
		s.inbound++
	}
	return ok
}

// handle processes one stanza; false ends the session. A panic while
// handling closes this stream only.
func (c *conn) handle(ctx context.Context, el *stanza.Element) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("panic while handling a stanza", "panic", fmt.Sprint(p), "stanza", el.Tag(), "stack", string(debug.Stack()))
			c.Close(&stanza.StreamError{Condition: stanza.StreamInternalServerError})
			ok = false
		}
	}()
	s, err := stanza.Parse(el)
	if err != nil {
		var se *stanza.StreamError
		if errors.As(err, &se) {
			c.Close(se)
			return false
		}
		var stErr stanza.Error
		if errors.As(err, &stErr) && s != nil {
			s.From = c.full
			s.To = jid.JID{}
			if r := stanza.ErrorReply(s, stErr); r != nil {
				r.El.Set("from", "")
				c.sess.Send(r)
			}
		}
		return true
	}
	if !s.From.IsZero() && s.From != c.full && s.From != c.account {
		c.Close(&stanza.StreamError{Condition: stanza.StreamInvalidFrom, Text: "the 'from' address is not yours"})
		return false
	}
	s.SetFrom(c.full)
	if s.Kind == stanza.KindIQ && c.ownIQ(s) {
		return true
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c.srv.cfg.Router.RouteFrom(sctx, c.res, s)
	return true
}

// ownIQ handles IQs that belong to the session itself: the legacy session
// request, and answers to the server's pings.
func (c *conn) ownIQ(s *stanza.Stanza) bool {
	if (s.Type == "result" || s.Type == "error") && len(s.ID) > 5 && s.ID[:5] == "ping-" && (s.To.IsZero() || s.To.Domain() == c.domain && s.To.Local() == "") {
		return true
	}
	if s.Type == "set" && s.To.IsZero() {
		if p := s.Payload(); p != nil && p.Name.Space == nsSession && p.Name.Local == "session" {
			c.sess.Send(stanza.NewIQ(jid.JID{}, c.full, "result", s.ID, nil))
			return true
		}
	}
	return false
}

// writer does the work that kick recorded, in a loop, and exits when
// none has come for writerLinger: a session's writer goroutine runs only
// while there is something to write (a batch of the queue, an ack
// request, a ping, the end of the stream) or was lately. An idle session
// has its reader goroutine only; the
// silent-client check (pingCheck) and the ack request after AckIdle are
// timers (time.AfterFunc) that kick a writer when they find work. A
// goroutine's stack is most of what an idle session would otherwise cost
// (TestIdleSessionMemory).
//
// At most one writer runs at a time (wRun under wmu), so what the writer
// owns (spare, smOut) passes from one to the next through wmu. On Close
// the writer ends the stream (closeStream) and ends for good (wEnded,
// wdone closed), as it does when a write fails.
func (c *conn) writer() {
	for {
		c.wmu.Lock()
		work := c.wWork
		c.wWork = 0
		closing := c.closeRequested()
		if work == 0 && !closing {
			c.wIdle = true
			if c.wWake == nil {
				c.wWake = make(chan struct{}, 1)
			}
			c.wmu.Unlock()
			if c.linger() {
				continue
			}
			c.dropWriteDeadline()
			c.wmu.Lock()
			if !c.wIdle {
				// A kick came as the wait ended; its wake-up is (or will
				// be) in wWake, and the next linger takes it.
				c.wmu.Unlock()
				continue
			}
			// Nobody kicked since wIdle was set, so nobody holds wWake:
			// an idle session keeps neither it nor the timer.
			c.wIdle = false
			c.wRun = false
			c.wWake, c.wTimer = nil, nil
			c.wmu.Unlock()
			return
		}
		c.wmu.Unlock()
		if closing {
			c.closeStream()
			c.endWriter()
			return
		}
		if !c.work(work) {
			c.endWriter()
			return
		}
	}
}

// work does one round of the writer's work; false when the connection
// failed.
func (c *conn) work(work uint8) bool {
	cfg := &c.srv.cfg
	if work&wWrite != 0 {
		pending, ok := c.writeQueued()
		if !ok {
			return false
		}
		if pending {
			c.armAckIdle()
		}
	}
	if work&wAck != 0 {
		sent, ok := c.requestAck(false)
		if !ok {
			return false
		}
		if sent {
			// The answer also tells that the client is alive.
			c.pingSent.CompareAndSwap(0, time.Now().UnixNano())
		}
	}
	if work&wPing != 0 {
		now := time.Now()
		if time.Duration(now.UnixNano()-c.lastRead.Load()) <= cfg.PingInterval || !c.pingSent.CompareAndSwap(0, now.UnixNano()) {
			// The client spoke since, or a ping is out already.
			return true
		}
		if c.smOut {
			_, ok := c.requestAck(true)
			return ok
		}
		ping := stanza.NewIQ(jid.MustParse(c.domain), c.full, "get", "ping-"+strconv.FormatInt(now.UnixNano(), 36), stanza.New(nsPing, "ping"))
		return c.write(ping.El) && c.flush()
	}
	return true
}

// writerLinger is how long a writer goroutine that ran out of work waits
// for more before it exits. A session that gets stanzas less than
// writerLinger apart (a busy conversation, a bot, a room) then reuses its
// writer: a goroutine started for every message costs its start and the
// growth of its stack on the way into crypto/tls, about 6 % of the
// server's CPU at 100 messages/s, 10 per second and session (kontor-load
// chat, perf). It is short because every lingering writer holds its grown
// stack: during a burst of 5,000 logins a second's linger added about
// 0.7 KiB to the memory per idle session (kontor-load idle). A variable
// so that tests can change it.
var writerLinger = 250 * time.Millisecond

// linger waits up to writerLinger for a kick; true if one came.
func (c *conn) linger() bool {
	if c.wTimer == nil {
		c.wTimer = time.NewTimer(writerLinger)
	} else {
		c.wTimer.Reset(writerLinger)
	}
	select {
	case <-c.wWake:
		c.wTimer.Stop()
		return true
	case <-c.wTimer.C:
		return false
	}
}

// endWriter marks the writer as ended for good: no writer starts again,
// the timers stop, and the reader's goroutine may finish (wdone).
func (c *conn) endWriter() {
	c.wmu.Lock()
	c.wEnded = true
	if c.pingTimer != nil {
		c.pingTimer.Stop()
	}
	if c.ackTimer != nil {
		c.ackTimer.Stop()
	}
	c.wmu.Unlock()
	close(c.wdone)
}

// armAckIdle (re)starts the AckIdle timer after a write that left stanzas
// unacknowledged; when it fires, a writer asks for an acknowledgement.
func (c *conn) armAckIdle() {
	d := c.srv.cfg.AckIdle
	c.wmu.Lock()
	if !c.wEnded {
		if c.ackTimer == nil {
			c.ackTimer = time.AfterFunc(d, func() { c.kick(wAck) })
		} else {
			c.ackTimer.Reset(d)
		}
	}
	c.wmu.Unlock()
}

// pingEvery is how often pingCheck looks at a session.
func (c *conn) pingEvery() time.Duration {
	cfg := &c.srv.cfg
	return min(cfg.PingInterval, cfg.PingTimeout) / 2
}

// pingCheck runs every pingEvery on a timer: it forgets an answered ping,
// closes a stream whose ping went unanswered for PingTimeout, and kicks a
// writer to ping a client that has been silent for PingInterval.
func (c *conn) pingCheck() {
	cfg := &c.srv.cfg
	now := time.Now().UnixNano()
	last := c.lastRead.Load()
	sent := c.pingSent.Load()
	switch {
	case sent != 0 && last > sent:
		c.pingSent.CompareAndSwap(sent, 0)
	case sent != 0 && time.Duration(now-sent) > cfg.PingTimeout:
		c.log.Info("client did not answer a ping; closing")
		c.lost.Store(true)
		c.Close(&stanza.StreamError{Condition: stanza.StreamConnectionTimeout, Text: "no answer to ping"})
	case sent == 0 && time.Duration(now-last) > cfg.PingInterval:
		c.kick(wPing)
	}
	c.wmu.Lock()
	if !c.wEnded {
		c.pingTimer.Reset(c.pingEvery())
	}
	c.wmu.Unlock()
}

// writeQueued writes everything queued and flushes. It reports whether
// stanzas remain unacknowledged, and false when the connection failed.
func (c *conn) writeQueued() (pending, ok bool) {
	s := c.sess
	s.mu.Lock()
	if s.t != c || (s.state != attached && s.sm) {
		// Taken over, or ending: what is queued is not ours to write (an
		// ending session reroutes it).
		s.mu.Unlock()
		return false, true
	}
	batch := s.queue
	s.queue = c.spare
	for _, e := range batch {
		if e.at != 0 {
			s.unacked.push(e)
		}
	}
	c.smOut = s.sm
	req := s.askLocked()
	pending = s.unacked.len() > 0
	s.mu.Unlock()
	ok = true
	for i := range batch {
		if ok && !c.write(batch[i].s.El) {
			ok = false
		}
		batch[i] = entry{}
	}
	if cap(batch) > 256 {
		batch = nil
	}
	c.spare = batch[:0]
	if !ok {
		return pending, false
	}
	if req {
		if err := c.fr.WriteElement(smRequest); err != nil {
			return pending, c.writeFailed(err)
		}
	}
	return pending, c.flush()
}

// requestAck writes <r/> if stanzas are unacknowledged (or always, for a
// ping). ok is false when the connection failed.
func (c *conn) requestAck(ping bool) (sent, ok bool) {
	s := c.sess
	s.mu.Lock()
	if s.t != c || !s.sm || (!ping && s.unacked.len() == 0) {
		s.mu.Unlock()
		return false, true
	}
	s.rOut, s.rLast = true, time.Now()
	s.mu.Unlock()
	c.armWrite()
	if err := c.fr.WriteElement(smRequest); err != nil {
		return false, c.writeFailed(err)
	}
	return true, c.flush()
}

// write serialises one element into the buffered writer.
func (c *conn) write(el *stanza.Element) bool {
	c.armWrite()
	if err := c.fr.WriteElement(el); err != nil {
		return c.writeFailed(err)
	}
	return true
}

// armWrite gives the writes that follow at least three quarters of
// WriteTimeout: it moves the write deadline to WriteTimeout from now only
// when less than that is left, not before every element (each move
// changes a runtime timer, several per message at 100 messages/s). Only
// the writer calls it; the writers before it set wDeadline.
func (c *conn) armWrite() {
	t := c.srv.cfg.WriteTimeout
	now := time.Now()
	if t > 0 && c.wDeadline.Sub(now) >= t-t/4 {
		return
	}
	c.wDeadline = now.Add(t)
	_ = c.nc.SetWriteDeadline(c.wDeadline)
}

// dropWriteDeadline takes the write deadline off when the writer runs out
// of work: what crypto/tls writes on the reader's behalf later (the answer
// to a KeyUpdate, an alert) would otherwise meet a deadline that passed
// long ago, and the failed answer would break the stream's output for
// good. The next writer sets one again (armWrite); a close sets its own.
func (c *conn) dropWriteDeadline() {
	c.wDeadline = time.Time{}
	_ = c.nc.SetWriteDeadline(time.Time{})
}

func (c *conn) flush() bool {
	if err := c.fr.Flush(); err != nil {
		return c.writeFailed(err)
	}
	return true
}

// writeFailed gives up on a connection the writer cannot write to.
func (c *conn) writeFailed(err error) bool {
	if !c.closeRequested() {
		c.log.Debug("write failed", "err", err)
		c.lost.Store(true)
	}
	c.nc.Close()
	return false
}

// closeStream ends the stream on Close: what is queued (without stream
// management: with it, the queue is kept for resumption or rerouting),
// then the error and the closing tag.
func (c *conn) closeStream() {
	cfg := &c.srv.cfg
	s := c.sess
	s.mu.Lock()
	var batch []entry
	if s.t == c && !s.sm {
		batch = s.queue
		s.queue = nil
	}
	s.mu.Unlock()
	for _, e := range batch {
		if !c.write(e.s.El) {
			return
		}
	}
	var errEl *stanza.Element
	if se := c.closeErr.Load(); se != nil {
		errEl = c.streamErrorElement(se)
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(cfg.WriteTimeout))
	if c.fr.WriteClose(errEl) == nil {
		_ = c.fr.Flush()
	}
	if tc, ok := c.nc.(*tls.Conn); ok {
		_ = tc.CloseWrite()
	}
	// Give the client a moment to close its side, then cut.
	c.dlMu.Lock()
	c.readClosing = true
	_ = c.nc.SetReadDeadline(time.Now().Add(time.Second))
	c.dlMu.Unlock()
}

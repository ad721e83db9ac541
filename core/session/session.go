// Package session serves client-to-server connections (RFC 6120): stream
// negotiation and restarts, STARTTLS (or direct TLS, XEP-0368), SASL,
// resource binding, stream management (XEP-0198) and client state
// indication (XEP-0352), and then the stanzas of one bound session.
//
// # Transports and sessions
//
// Two types split what a connection is. A conn is a transport: one socket,
// its stream negotiation, and, once bound, a reader goroutine and, while
// there is something to write, a writer goroutine.
// A session is what the router knows as a bound resource (it implements
// router.Conn): the outbound queue, the stream management counters, the
// list of stanzas written but not yet acknowledged, and the client's state.
// Without stream management a session lives and dies with its one
// transport. With resumption enabled, a session whose transport is lost
// stays bound (detached) for the resume timeout, and a new transport of
// the same account can take it over with <resume/>.
//
// The reader of the attached transport handles stanzas in the order they
// arrive (RFC 6120 §10.1), routing each before reading the next. The writer
// drains the queue in batches and flushes when it is empty, so a burst costs
// one write; it also pings the client when it has been silent (with <r/>
// when stream management is on). The writer runs only while it has work:
// queueing to an empty queue, a Close, or one of two timers (the
// silent-client check every half ping interval, and the ack request
// AckIdle after a write) start it, and it exits when it finds none left
// (conn.kick and conn.writer; a flag under conn.wmu, looked at again
// before exiting, so that no wake-up is lost). Delivering to a session (Send) only
// enqueues: a session whose queue is full (a client that stopped reading)
// is closed with resource-constraint instead of growing memory; so is a
// session whose client lets QueueSize stanzas go unacknowledged, and a
// detached session that gathers QueueSize stanzas while its client is
// away. A session holds at most QueueSize queued and twice QueueSize
// unacknowledged stanzas (the writer moves a whole batch at once).
//
// # Framings
//
// The negotiation and session code never touches the wire format: it
// reads RFC 6120 stream XML (a header per stream, top-level elements,
// </stream:stream>) through core/xmlstream from a net.Conn, and writes the
// parts of a stream through a Framing (WriteHeader, WriteElement,
// WriteClose, Flush). Serve runs TCP connections with tcpFraming (one XML
// document per stream; STARTTLS replaces it with one over TLS).
// ServeTransport runs any other Transport, a net.Conn that is its own
// Framing and already encrypted: core/websocket (RFC 7395, one element
// per message, <open/> and <close/>) and core/bosh (XEP-0206, elements in
// <body/> wrappers of HTTP requests) translate their client's side into
// stream XML for the reader and frame what the session writes, so
// SASL (with -PLUS bound to the HTTPS connection, Transport.TLS), binding,
// stream management, CSI, pings, limits and shutdown are the same code for
// every transport. A transport offers no STARTTLS. Deadlines keep their
// net.Conn meaning; a transport that cannot interrupt a read may close
// itself when one passes.
//
// # Stream management (XEP-0198 1.6, urn:xmpp:sm:3)
//
// <sm/> is offered after authentication; <enable/> is accepted after
// binding (before it: <failed><unexpected-request/></failed>). From
// <enabled/> on, the server counts the stanzas it handled (h, answered to
// <r/> with <a/>) and keeps every stanza it writes until the client
// acknowledges it. It asks for acknowledgements (<r/>) once AckEvery
// stanzas are unacknowledged, no request is outstanding and AckInterval
// has passed since the last request (at once when a quarter of QueueSize
// is unacknowledged; also right after an answer that leaves that many),
// and when stanzas are unacknowledged and nothing was written for
// AckIdle. An
// <a/> that acknowledges more than was sent (counts wrap at 2^32) ends the
// stream with undefined-condition and <handled-count-too-high/>.
//
// With resume='true' the session gets an unguessable id and a resume
// timeout (max: ResumeTimeout, or less if the client asked for less). When
// its transport is lost (a read or write error, a cut connection, an
// unanswered ping) the session detaches: it stays bound, keeps its
// presence, and keeps queueing what is routed to it, within the same
// bound. A client that authenticates as the same account and sends
// <resume previd h/> instead of binding takes it over: the server drops
// what h acknowledges, answers <resumed/> with its own h, and writes the
// unacknowledged stanzas again, then the queue. A resume of an unknown,
// expired or foreign id gets <failed><item-not-found/></failed> (with h
// when the id was this account's and ended recently) and the client may
// bind. A second resume of an attached session closes the older transport
// with conflict. A clean close (</stream:stream>), a stream error, or a
// Close from the router (a replaced resource, a disabled account, a full
// queue, server shutdown) ends the session instead of detaching it.
//
// A session that ends with stream management on never drops what it
// holds: after it is unbound, its unacknowledged and queued stanzas are
// handled as stanzas to an unavailable resource (XEP-0198 §5). Messages of
// type normal or chat are routed again, as the server, to the account's
// bare JID, keeping their sender and gaining a XEP-0203 delay stamp (the
// time they were queued) unless the server already stamped one: another
// resource gets them, or offline storage. IQ requests are answered with
// recipient-unavailable; presence, IQ results and errors, other message
// types, carbon copies (XEP-0280: the original went to another resource)
// and archive query results (XEP-0313: the client can query again) are
// dropped. Stanzas routed to the session after it ended
// (a race with the unbinding) are routed again the same way, from a
// tracked goroutine. Resumption resends instead, so nothing is stored
// twice. Server.Shutdown unbinds every session first (so that the
// messages go to offline storage rather than to another closing session),
// ends them, and returns after the rerouting, before the caller closes the
// store.
//
// # Client state indication (XEP-0352 1.0.0, urn:xmpp:csi:0)
//
// <csi/> is offered after authentication. While the client is inactive,
// availability presence (no type, or unavailable) routed to it is held,
// latest per sender full JID; anything else (messages, IQs, subscription
// presence) is delivered at once, after the held presences, so that the
// client never sees a message before a presence that came earlier.
// <active/> delivers what is held. At MaxHeldPresences distinct senders
// the held presences are delivered as they are. A resumed session starts
// active, as a new stream does.
//
// # Locks
//
// Lock order: session.handling, then session.mu, then Server.mu (which is
// also taken alone). session.ackMu is a leaf. conn.ncMu may be taken under any of them. None is held
// while calling the router (which calls Send and Close of sessions).
// session.handling is held by a reader while it handles one element, so
// that a takeover (resume) waits for the stanza in progress and reads an
// exact h.
//
// # Cost
//
// An idle session holds no preallocated queue: the queue and the
// unacknowledged list are slices that grow with use and are released when
// they drain; the write buffer is taken from a pool for a batch and given
// back at the flush (tcpFraming), and the stream reader takes its 4 KiB
// read buffer from a pool while input flows and gives it back before the
// session waits (core/xmlstream: Reader.Wait, Reader.Release). An idle session has one goroutine,
// its reader, waiting for input on a small stack: the reader is a fresh
// goroutine started after binding (so that it does not keep the stack the
// TLS handshake and SASL grew); after handling a burst of input it hands
// over to a fresh goroutine before waiting again, so that the stack that
// routing and modules grew is not kept (the runtime shrinks stacks only
// at a collection, by half); and over TCP it waits for the socket to
// become readable rather than in a Read through crypto/tls and the XML
// tokenizer (conn.await; recordConn keeps crypto/tls from reading ahead,
// so that nothing can be buffered above the socket when it waits). That
// wait fits the 2 KiB a goroutine starts with; a Read through crypto/tls
// needs 4 KiB. The writer exits when the queue is drained, and the ping
// check and ack request are timers. TestIdleSessionMemory measures an
// idle bound TLS session: about 13 KiB of heap and goroutine stacks (19
// KiB with a writer goroutine per session and the reader waiting in a
// Read on the stack it handled stanzas with; 39 KiB with 4 KiB bufio
// buffers and the negotiating goroutine as the reader), with or without
// stream management; what remains is mostly crypto/tls's own (its record
// buffer grown by the ClientHello, the AEAD states), the XML decoder and
// the reader's 2 KiB stack. Stream management adds, per message, a timestamp and keeping the
// stanza until it is acknowledged (BenchmarkSessionPath: under 100 ns),
// and under load one <r/>/<a/> round trip per few dozen messages
// (BenchmarkMessageCPU reports acks/msg and the server's CPU per message,
// with the clients in another process). A client that asks for an ack
// after every message (Conversations does) costs per message a <r/> to
// read (a fast path in core/xmlstream, no tokenizer) and a share of one
// storage barrier and one <a/> per group commit of the archive
// (BenchmarkAckPath).
//
// # Durability
//
// An acknowledgement promises that the server will not lose what it
// acknowledges, even if it is killed right after. What handling a stanza
// stores synchronously (offline messages) is stored before the stanza
// counts as handled. What it only queues for storage (the message
// archive) is covered by Config.Stored: <a/> is answered once the archive
// has stored everything queued until the <r/> arrived, without holding up
// the reader (answers stay in order; the requests one barrier releases
// are answered together by one <a/> with the latest h, see ackLoop);
// <resumed/> and <failed h/> wait for it too. While the archive's database is down, acknowledgements are
// therefore late, not wrong.
//
// # SASL2, Bind 2 and FAST
//
// Over TLS the server also offers SASL2 (XEP-0388): one <authenticate/>
// may bind a resource (Bind 2, XEP-0386) with stream management, carbons
// and CSI enabled inline, resume a session, and ask for or use a FAST
// token (XEP-0484, Config.FAST), without a stream restart. It runs the
// same mechanisms, failure counting and back-off as RFC 6120 SASL, which
// stays as it was. See sasl2.go.
package session

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/limit"
	"kontor.im/kontor/core/listen"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/sasl"
	"kontor.im/kontor/core/xmlstream"
)

// Config configures client connections.
type Config struct {
	Router *router.Router
	// Auth returns the authenticator for a domain.
	Auth   func(domain string) sasl.Authenticator
	TLS    *tls.Config
	Logger *slog.Logger
	Limits xmlstream.Limits
	// QueueSize bounds the stanzas queued for a session, and (with stream
	// management) those its client has not acknowledged.
	QueueSize int
	// HandshakeTimeout bounds the time from connect to a bound resource.
	HandshakeTimeout time.Duration
	// PingInterval: after this much silence from the client the server
	// pings it (XEP-0199, or <r/> with stream management); PingTimeout
	// later without an answer the connection is closed with
	// connection-timeout.
	PingInterval, PingTimeout time.Duration
	// WriteTimeout bounds one write to a client.
	WriteTimeout time.Duration
	// MaxAuthAttempts is how many SASL failures one connection may have
	// before it is closed.
	MaxAuthAttempts int
	// Conns limits connections per address; AuthGuard slows down password
	// guessing.
	Conns     *limit.Conns
	AuthGuard *limit.Auth
	// SASL options for every exchange: the secret for simulated
	// credentials of unknown users and the iteration count they announce.
	SASL []sasl.Option
	// Registration, when set, answers in-band registration (XEP-0077)
	// before authentication.
	Registration Registrar
	// DisableSASL2 turns off SASL2 (XEP-0388) with Bind 2 (XEP-0386),
	// which are offered over TLS otherwise (sasl2.go).
	DisableSASL2 bool
	// FAST, when set, offers XEP-0484 tokens with SASL2.
	FAST FASTTokens
	// Mechanisms, when not empty, is the only SASL mechanisms offered
	// (of those the connection and the domain's authenticator allow),
	// e.g. PLAIN alone while imported SCRAM-SHA-1 accounts are upgraded
	// (core/account). FAST's HT mechanisms are not affected.
	Mechanisms []string

	// ResumeTimeout is how long a session whose connection was lost stays
	// resumable (XEP-0198); default 5 minutes.
	ResumeTimeout time.Duration
	// AckEvery: the server requests an acknowledgement once this many
	// stanzas are unacknowledged (and no request is outstanding);
	// default 5.
	AckEvery int
	// AckIdle: the server requests an acknowledgement when stanzas are
	// unacknowledged and nothing was written for this long; default 5s.
	AckIdle time.Duration
	// AckInterval: after a request, the next one waits this long unless
	// a quarter of QueueSize is unacknowledged, so that a busy stream is
	// not asked again on every answer (askDueLocked); default 5s,
	// negative: none (a request whenever AckEvery are unacknowledged).
	// Every answer is a read of its own: at 100 messages/s over 10
	// receiving streams (kontor-load chat -sm, quiet machine), stream
	// management cost a median 13 % more server CPU per message than none
	// at 1s, 4 % at 5s. The price is a longer stretch (up to AckInterval of
	// traffic) that a client which drops its connection without resuming
	// may get again from offline storage (clients recognise the ids).
	AckInterval time.Duration
	// MaxHeldPresences bounds the presences held for an inactive client
	// (XEP-0352); default 100.
	MaxHeldPresences int
	// Stored, when set, is the barrier of what handling a stanza stored
	// asynchronously (the message archive's queue): it returns a channel
	// closed once everything queued before the call is stored, or nil when
	// nothing is pending. Stream management acknowledges stanzas (<a/>,
	// <resumed/>, <failed h/>) only once it is reached.
	Stored func() <-chan struct{}
}

// Registrar creates accounts in band before authentication (XEP-0077).
type Registrar interface {
	// Open reports whether registration is open on this domain.
	Open(domain string) bool
	Register(ctx context.Context, domain, username, password string, remote netip.Addr) error
}

func (c *Config) defaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 1024
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 60 * time.Second
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 5 * time.Minute
	}
	if c.PingTimeout <= 0 {
		c.PingTimeout = 60 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.MaxAuthAttempts <= 0 {
		c.MaxAuthAttempts = 5
	}
	if c.Conns == nil {
		c.Conns = limit.NewConns(0)
	}
	if c.AuthGuard == nil {
		c.AuthGuard = limit.NewAuth(limit.AuthConfig{})
	}
	if c.ResumeTimeout <= 0 {
		c.ResumeTimeout = 5 * time.Minute
	}
	if c.AckEvery <= 0 {
		c.AckEvery = 5
	}
	if c.AckIdle <= 0 {
		c.AckIdle = 5 * time.Second
	}
	if c.AckInterval == 0 {
		c.AckInterval = 5 * time.Second
	}
	if c.MaxHeldPresences <= 0 {
		c.MaxHeldPresences = 100
	}
}

// Server accepts client connections on any number of listeners.
type Server struct {
	cfg Config
	log *slog.Logger

	// shutting is set when Shutdown starts: lost connections no longer
	// detach their sessions.
	shutting atomic.Bool
	// tasks tracks every goroutine the server starts: connections,
	// resume timers, rerouting.
	tasks group

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	closing   bool
	// sessions are the bound sessions, attached or detached.
	sessions map[*session]struct{}
	// resumable maps stream management ids to their sessions.
	resumable map[string]*session
	// tombs remember, for a resume timeout, the h of resumable sessions
	// that ended, for <failed h/>.
	tombs tombstones
}

// NewServer returns a server; nothing is started until Serve.
func NewServer(cfg Config) *Server {
	cfg.defaults()
	return &Server{cfg: cfg, log: cfg.Logger, listeners: map[net.Listener]struct{}{}, conns: map[*conn]struct{}{},
		sessions: map[*session]struct{}{}, resumable: map[string]*session{}}
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("session: server closed")

// Serve accepts connections on ln until Shutdown. With directTLS the TLS
// handshake comes first (XEP-0368); otherwise clients must use STARTTLS
// before they may authenticate.
func (s *Server) Serve(ln net.Listener, directTLS bool) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	for {
		nc, err := listen.Accept(ln, s.log)
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			return err
		}
		c := s.newConn(nc, directTLS)
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		s.conns[c] = struct{}{}
		s.tasks.add()
		s.mu.Unlock()
		go c.serve(func() {
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			s.tasks.done()
		})
	}
}

// Shutdown stops accepting, unbinds every session (so that what is routed
// to their accounts from now on goes to offline storage), closes every
// connection with a system-shutdown stream error, ends detached sessions,
// and waits until every session has ended and rerouted what its client had
// not acknowledged, or for ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutting.Store(true)
	s.mu.Lock()
	s.closing = true
	for ln := range s.listeners {
		ln.Close()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	sessions := make([]*session, 0, len(s.sessions))
	for x := range s.sessions {
		sessions = append(sessions, x)
	}
	s.mu.Unlock()
	for _, x := range sessions {
		x.unbind(ctx)
	}
	for _, x := range sessions {
		x.Close(shutdownErr)
	}
	for _, c := range conns {
		c.Close(shutdownErr)
	}
	select {
	case <-s.tasks.wait():
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.ncMu.Lock()
			c.nc.Close()
			c.ncMu.Unlock()
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}

// ConnCount is the number of open client connections.
func (s *Server) ConnCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// DetachedCount is the number of sessions waiting to be resumed.
func (s *Server) DetachedCount() int {
	s.mu.Lock()
	list := make([]*session, 0, len(s.resumable))
	for _, x := range s.resumable {
		list = append(list, x)
	}
	s.mu.Unlock()
	n := 0
	for _, x := range list {
		x.mu.Lock()
		if x.state == detached {
			n++
		}
		x.mu.Unlock()
	}
	return n
}

// addSession records a bound session.
func (s *Server) addSession(x *session) {
	s.mu.Lock()
	s.sessions[x] = struct{}{}
	s.mu.Unlock()
}

// forget removes an ended session from the tables; a resumable one leaves
// a tombstone with its h.
func (s *Server) forget(x *session, id string, h uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, x)
	if id != "" {
		delete(s.resumable, id)
		s.tombs.add(id, tombstone{account: x.account, h: h, until: time.Now().Add(s.cfg.ResumeTimeout)})
	}
}

// group counts running goroutines; unlike sync.WaitGroup it may gain
// members at any time, also while someone waits for it to be idle.
type group struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n drops to zero; nil when nobody waits
}

func (g *group) add() {
	g.mu.Lock()
	g.n++
	g.mu.Unlock()
}

func (g *group) done() {
	g.mu.Lock()
	g.n--
	if g.n == 0 && g.idle != nil {
		close(g.idle)
		g.idle = nil
	}
	g.mu.Unlock()
}

// wait returns a channel closed when no member runs.
func (g *group) wait() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n == 0 {
		c := make(chan struct{})
		close(c)
		return c
	}
	if g.idle == nil {
		g.idle = make(chan struct{})
	}
	return g.idle
}

// tombstone is what remains of an ended resumable session.
type tombstone struct {
	account jid.JID
	h       uint32
	until   time.Time
}

// maxTombstones bounds the tombstones kept (the oldest go first).
const maxTombstones = 10000

// tombstones is a bounded, time-ordered table.
type tombstones struct {
	byID  map[string]tombstone
	order []string // insertion order, which is expiry order
}

func (t *tombstones) add(id string, ts tombstone) {
	if t.byID == nil {
		t.byID = map[string]tombstone{}
	}
	now := time.Now()
	for len(t.order) > 0 {
		first := t.byID[t.order[0]]
		if len(t.order) < maxTombstones && now.Before(first.until) {
			break
		}
		delete(t.byID, t.order[0])
		t.order[0] = ""
		t.order = t.order[1:]
	}
	if len(t.order) == 0 {
		t.order = nil // let the backing array go
	}
	t.byID[id] = ts
	t.order = append(t.order, id)
}

func (t *tombstones) get(id string) (tombstone, bool) {
	ts, ok := t.byID[id]
	if !ok || time.Now().After(ts.until) {
		return tombstone{}, false
	}
	return ts, true
}

func newStreamID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// newSMID returns an unguessable stream management id.
func newSMID() string {
	var b [18]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func newResource() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("kontor-%x", b[:])
}

package session

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/stanza"
)

// state is where a session is in its life.
type state uint8

const (
	// attached: a transport serves the session.
	attached state = iota
	// detached: the transport was lost; the session waits to be resumed
	// until its timer fires.
	detached
	// ending: the session will not be resumed; it is being unbound and
	// what it holds will be rerouted.
	ending
	// ended: unbound and drained; stanzas that still arrive are rerouted.
	ended
)

func (s state) String() string {
	return [...]string{"attached", "detached", "ending", "ended"}[s]
}

// entry is one element in a session's queue or unacknowledged list.
type entry struct {
	// s is a stanza, or a nonza (Kind == stanza.KindOther): stream
	// management and other elements that are never counted.
	s *stanza.Stanza
	// at is when a counted stanza was queued (Unix milliseconds), for the
	// delay stamp if it is rerouted; 0 for anything not counted: nonzas,
	// and stanzas queued before stream management was enabled.
	at int64
}

// session is a bound resource: what the router delivers to (router.Conn),
// independent of the transport that currently serves it.
type session struct {
	srv     *Server
	log     *slog.Logger
	account jid.JID // bare
	full    jid.JID
	domain  string
	// authAt is when the client began the authentication that bound the
	// session, incarnation the account's it checked; a resumption keeps
	// the first (router.AuthInfo).
	authAt      time.Time
	incarnation time.Time

	// handling is held by a transport's reader while it handles one
	// element; it guards inbound.
	handling sync.Mutex
	// inbound is h: the stanzas handled since stream management was
	// enabled (XEP-0198), modulo 2^32.
	inbound uint32
	// acks are the answers to <r/> that wait for storage (Config.Stored),
	// in order; ackWaiting is set while a goroutine (ackLoop) works
	// through them. One goroutine per session rather than one per <r/>:
	// a client that asks after every message would otherwise keep one
	// waiting goroutine per message for up to the archive's linger, and
	// the collector scans every one of their stacks. ackMu guards both;
	// it is a leaf lock.
	ackMu      sync.Mutex
	acks       []pendingAck
	ackWaiting bool

	// finishOnce runs finish.
	finishOnce sync.Once

	mu    sync.Mutex
	res   module.Resource // set once Router.Bind returned
	state state
	t     *conn // the attached transport; nil unless attached
	// queue holds what the writer has not taken yet, bounded by
	// QueueSize.
	queue []entry
	// unacked holds the counted stanzas written (or being written) since
	// the client's last acknowledgement, oldest first.
	unacked fifo
	// late holds stanzas routed to the session after it ended, on their
	// way to be routed again; lateRunning tells whether a goroutine does it.
	late        []entry
	lateRunning bool
	// dropped counts stanzas dropped because even the ending session's
	// allowance was exhausted.
	dropped int

	// Stream management.
	sm        bool          // <enabled/> is queued or written
	smID      string        // resumption id, "" when not resumable
	maxResume time.Duration // how long it stays resumable
	acked     uint32        // the client's last h
	rOut      bool          // an <r/> is unanswered
	rLast     time.Time     // when the last <r/> was asked for (askLocked)
	timer     *time.Timer   // the resume timer while detached
	detachGen uint64        // tells a stale timer from the current one

	// Client state indication.
	inactive bool
	held     []entry // held presences in arrival order; s == nil for replaced ones
	heldIdx  map[jid.JID]int
	heldLive int
}

func newSession(srv *Server, c *conn, full jid.JID) *session {
	return &session{srv: srv, account: full.Bare(), full: full, domain: c.domain, authAt: c.authAt,
		incarnation: c.incarnation, log: c.log, t: c}
}

// AuthStarted and Incarnation implement router.AuthInfo: when the client
// began the authentication that bound the session, and the incarnation
// of the account it checked. A resumption, which authenticates again,
// changes neither: the session's state is the account's as it was then.
func (s *session) AuthStarted() time.Time { return s.authAt }
func (s *session) Incarnation() time.Time { return s.incarnation }

var _ router.AuthInfo = (*session)(nil)

// after is what must be done once session.mu is released.
type after struct {
	wake       *conn               // signal this transport's writer
	close      *conn               // close this transport...
	closeErr   *stanza.StreamError // ...with this error
	finish     bool                // run finish in a goroutine that owns the timer's task slot
	startLate  bool                // start the goroutine that reroutes late stanzas
	overflowed bool                // log a full queue...
	logArgs    []any               // ...with these attributes
}

func (a *after) run(s *session) {
	if a.overflowed {
		s.log.Warn("outbound queue full; closing session", a.logArgs...)
	}
	if a.close != nil {
		a.close.Close(a.closeErr)
	}
	if a.wake != nil {
		a.wake.signal()
	}
	if a.finish {
		go func() {
			defer s.srv.tasks.done()
			s.finishOnce.Do(s.finish)
		}()
	}
	if a.startLate {
		s.srv.tasks.add()
		go s.drainLate()
	}
}

var errQueueFull = &stanza.StreamError{Condition: stanza.StreamResourceConstraint, Text: "too many stanzas queued for this client"}

// Send queues a stanza for the client (router.Conn). It never blocks. A
// full queue ends the session with resource-constraint.
func (s *session) Send(st *stanza.Stanza) {
	var a after
	s.mu.Lock()
	e := entry{s: st}
	if s.sm {
		e.at = time.Now().UnixMilli()
	}
	switch s.state {
	case attached, detached:
		if s.inactive {
			if s.holdLocked(e, &a) {
				s.mu.Unlock()
				a.run(s)
				return
			}
			s.flushHeldLocked(&a)
		}
		s.enqueueLocked(e, &a)
	case ending:
		s.enqueueLocked(e, &a)
	case ended:
		s.lateLocked(e, &a)
	}
	s.mu.Unlock()
	a.run(s)
}

// enqueueLocked appends e to the queue, or ends the session when the
// queue is full, or when the client let QueueSize stanzas go
// unacknowledged (the writer moves stanzas from the queue to the
// unacknowledged list without a check, so that list stays below twice
// QueueSize). An ending session with stream management keeps queueing (up
// to as much again) what it will reroute; one without drops it.
func (s *session) enqueueLocked(e entry, a *after) {
	limit := s.srv.cfg.QueueSize
	switch s.state {
	case attached, detached:
		if len(s.queue) < limit && s.unacked.len() < limit {
			s.queue = append(s.queue, e)
			a.wake = s.t
			return
		}
		a.overflowed = true
		a.logArgs = []any{"jid", s.full.String(), "queued", len(s.queue), "unacked", s.unacked.len(), "state", s.state.String()}
		s.endLocked(errQueueFull, a)
	}
	// Ending.
	if !s.sm {
		return
	}
	if len(s.queue) < 2*limit {
		s.queue = append(s.queue, e)
		return
	}
	s.dropped++
}

// lateLocked takes a stanza routed to an ended session.
func (s *session) lateLocked(e entry, a *after) {
	if !s.sm || e.s.Kind == stanza.KindOther {
		return
	}
	if len(s.late) >= s.srv.cfg.QueueSize {
		s.dropped++
		return
	}
	s.late = append(s.late, e)
	if !s.lateRunning {
		s.lateRunning = true
		a.startLate = true
	}
}

// pushNonza queues an element that is not a stanza (never counted, never
// held). It returns false if the session is no longer attached to c.
func (s *session) pushNonza(c *conn, el *stanza.Element) bool {
	var a after
	s.mu.Lock()
	ok := s.t == c && s.state == attached
	if ok {
		s.enqueueLocked(entry{s: &stanza.Stanza{El: el}}, &a)
	}
	s.mu.Unlock()
	a.run(s)
	return ok
}

// Close ends the session with a stream error (router.Conn): an attached
// transport sends it; a detached session ends at once. It never blocks.
func (s *session) Close(err *stanza.StreamError) {
	var a after
	s.mu.Lock()
	s.endLocked(err, &a)
	s.mu.Unlock()
	a.run(s)
}

// endLocked decides that the session ends.
func (s *session) endLocked(err *stanza.StreamError, a *after) {
	switch s.state {
	case attached:
		s.state = ending
		a.close, a.closeErr = s.t, err
	case detached:
		s.state = ending
		// Whoever stops the timer owns its task slot and finishes the
		// session; if it already fired, expire does.
		if s.timer.Stop() {
			a.finish = true
		}
	}
}

// transportEnded is called by a transport's goroutine when it is done
// (reader and writer stopped). A lost connection detaches a resumable
// session; anything else ends it.
func (s *session) transportEnded(c *conn) {
	s.mu.Lock()
	if s.t != c {
		// Taken over by a resumption, or never attached.
		s.mu.Unlock()
		return
	}
	s.t = nil
	if s.state == attached && s.smID != "" && c.lost.Load() && !s.srv.shutting.Load() {
		s.state = detached
		s.detachGen++
		gen := s.detachGen
		s.srv.tasks.add()
		s.timer = time.AfterFunc(s.maxResume, func() { s.expire(gen) })
		pending := len(s.queue) + s.unacked.len()
		s.mu.Unlock()
		s.log.Info("connection lost; session kept for resumption", "timeout", s.maxResume, "unacked", pending)
		return
	}
	if s.state == attached {
		s.state = ending
	}
	s.mu.Unlock()
	s.finishOnce.Do(s.finish)
}

// expire ends a detached session whose resume timeout passed.
func (s *session) expire(gen uint64) {
	defer s.srv.tasks.done()
	s.mu.Lock()
	if s.detachGen != gen || (s.state != detached && s.state != ending) {
		s.mu.Unlock()
		return
	}
	if s.state == detached {
		s.log.Info("session not resumed in time; ended")
	}
	s.state = ending
	s.mu.Unlock()
	s.finishOnce.Do(s.finish)
}

// unbind removes the session from the router (Server.Shutdown does it
// before closing, finish does it again, harmlessly).
func (s *session) unbind(ctx context.Context) {
	s.mu.Lock()
	res := s.res
	s.mu.Unlock()
	if res != nil {
		s.srv.cfg.Router.Unbind(ctx, res)
	}
}

// finish ends the session for good: it unbinds it, forgets it, and
// reroutes what the client had not acknowledged. It runs once.
func (s *session) finish() {
	ctx := context.Background()
	s.unbind(ctx)
	s.handling.Lock()
	h := s.inbound
	s.handling.Unlock()
	s.mu.Lock()
	s.state = ended
	sm, id := s.sm, s.smID
	var list []entry
	if sm {
		list = make([]entry, 0, s.unacked.len()+len(s.queue))
		list = append(list, s.unacked.all()...)
		list = append(list, s.queue...)
	}
	s.unacked = fifo{}
	s.queue = nil
	s.held, s.heldIdx, s.heldLive = nil, nil, 0
	dropped := s.dropped
	s.dropped = 0
	s.mu.Unlock()
	s.srv.forget(s, id, h)
	if dropped > 0 {
		s.log.Warn("stanzas dropped while the session ended", "count", dropped)
	}
	if sm {
		s.reroute(ctx, list)
	}
}

// drainLate reroutes stanzas that arrived after the session ended.
func (s *session) drainLate() {
	defer s.srv.tasks.done()
	for {
		s.mu.Lock()
		list := s.late
		s.late = nil
		if len(list) == 0 {
			s.lateRunning = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		s.reroute(context.Background(), list)
	}
}

// stampFormat is XEP-0082 DateTime in UTC with milliseconds.
const stampFormat = "2006-01-02T15:04:05.000Z"

// reroute handles stanzas the client never acknowledged as stanzas to an
// unavailable resource (see the package documentation).
func (s *session) reroute(ctx context.Context, list []entry) {
	if len(list) == 0 {
		return
	}
	r := s.srv.cfg.Router
	bare := s.full.Bare()
	var messages, errs, dropped int
	for _, e := range list {
		st := e.s
		switch st.Kind {
		case stanza.KindMessage:
			switch st.Type {
			case "", "normal", "chat":
			default:
				dropped++
				continue
			}
			if copyForSession(st.El) {
				dropped++
				continue
			}
			m := st.Readdress(st.From, bare)
			if !hasDelayFrom(st.El, s.domain) {
				at := time.Now()
				if e.at != 0 {
					at = time.UnixMilli(e.at)
				}
				d := stanza.New(stanza.NSDelay, "delay").Set("from", s.domain).Set("stamp", at.UTC().Format(stampFormat))
				n := len(m.El.Nodes)
				m.El.Nodes = append(m.El.Nodes[:n:n], stanza.Node{Elem: d})
			}
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			r.Redeliver(rctx, m)
			cancel()
			messages++
		case stanza.KindIQ:
			if st.Type != "get" && st.Type != "set" {
				dropped++
				continue
			}
			reply := stanza.ErrorReply(st, stanza.Error{Type: stanza.Wait, Condition: stanza.RecipientUnavailable,
				Text: "the recipient's session ended before it acknowledged the request"})
			if reply == nil || reply.To.IsZero() {
				continue
			}
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			r.Route(rctx, reply)
			cancel()
			errs++
		case stanza.KindPresence:
			dropped++
		}
	}
	s.log.Info("unacknowledged stanzas handled", "rerouted_messages", messages, "iq_errors", errs, "dropped", dropped)
}

// Namespaces of messages that were made for one session: a carbon copy
// (XEP-0280) of a message another resource got or sent, and an archive
// query result (XEP-0313), which the client can fetch again.
var sessionCopyNS = map[string]bool{
	"urn:xmpp:carbons:2": true,
	"urn:xmpp:mam:2":     true,
	"urn:xmpp:mam:1":     true,
	"urn:xmpp:mam:0":     true,
}

// copyForSession reports whether a message is a carbon copy or an archive
// result: routing it again would show other resources, or offline
// storage, a duplicate.
func copyForSession(el *stanza.Element) bool {
	found := false
	el.Children(func(c *stanza.Element) bool {
		if sessionCopyNS[c.Name.Space] && (c.Name.Local == "sent" || c.Name.Local == "received" || c.Name.Local == "result") {
			found = true
			return false
		}
		return true
	})
	return found
}

// hasDelayFrom reports whether el carries a delay stamp from domain.
func hasDelayFrom(el *stanza.Element, domain string) bool {
	found := false
	el.Children(func(c *stanza.Element) bool {
		if c.Name.Space == stanza.NSDelay && c.Name.Local == "delay" && c.Get("from") == domain {
			found = true
			return false
		}
		return true
	})
	return found
}

// fifo is a queue of entries that drops from the front.
type fifo struct {
	buf  []entry
	head int
}

func (f *fifo) len() int { return len(f.buf) - f.head }

func (f *fifo) all() []entry { return f.buf[f.head:] }

func (f *fifo) push(e entry) {
	if f.head > 0 && len(f.buf) == cap(f.buf) && f.head >= len(f.buf)/2 {
		n := copy(f.buf, f.buf[f.head:])
		clear(f.buf[n:])
		f.buf = f.buf[:n]
		f.head = 0
	}
	f.buf = append(f.buf, e)
}

// drop removes the n oldest entries (n <= len).
func (f *fifo) drop(n int) {
	clear(f.buf[f.head : f.head+n])
	f.head += n
	if f.head == len(f.buf) {
		f.head = 0
		f.buf = f.buf[:0]
		if cap(f.buf) > 64 {
			f.buf = nil
		}
	}
}

package session

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"kontor.im/kontor/core/stanza"
)

// Namespaces of stream management (XEP-0198) and client state indication
// (XEP-0352).
const (
	nsSM  = "urn:xmpp:sm:3"
	nsCSI = "urn:xmpp:csi:0"
)

// smRequest is <r/>.
var smRequest = stanza.New(nsSM, "r")

// smFailed builds <failed/> with a stanza error condition, and h when h is
// not negative.
func smFailed(cond string, h int64) *stanza.Element {
	f := stanza.New(nsSM, "failed")
	if h >= 0 {
		f.Set("h", strconv.FormatInt(h, 10))
	}
	return f.Append(stanza.New(stanza.NSStanzas, cond))
}

// parseH reads an h attribute: an unsigned 32-bit count.
func parseH(v string) (uint32, error) {
	n, err := strconv.ParseUint(v, 10, 32)
	return uint32(n), err
}

// tooHigh is the stream error for an acknowledgement of more stanzas than
// were sent (XEP-0198 §4), with its application-specific condition.
func tooHigh(h, sent uint32) (*stanza.StreamError, *stanza.Element) {
	return &stanza.StreamError{Condition: stanza.StreamUndefinedCondition,
			Text: fmt.Sprintf("You acknowledged %d stanzas, but I only sent you %d so far.", h, sent)},
		stanza.New(nsSM, "handled-count-too-high").Set("h", strconv.FormatUint(uint64(h), 10)).
			Set("send-count", strconv.FormatUint(uint64(sent), 10))
}

// ackLocked applies the client's h: the stanzas it acknowledges are
// dropped. Counts wrap at 2^32, so the number newly acknowledged is the
// difference modulo 2^32, which must not exceed what is unacknowledged.
// It returns the server's count of stanzas sent, and false for an h that
// acknowledges more than that (nothing is changed then).
func (s *session) ackLocked(h uint32) (sent uint32, ok bool) {
	pending := uint32(s.unacked.len())
	sent = s.acked + pending
	n := h - s.acked
	if n > pending {
		return sent, false
	}
	s.unacked.drop(int(n))
	s.acked = h
	return sent, true
}

// askDueLocked reports whether the writer should ask for an
// acknowledgement (<r/>) now: stream management is on, no request is
// outstanding, at least AckEvery stanzas are unacknowledged, and either
// AckInterval has passed since the last request or the unacknowledged
// list has reached a quarter of QueueSize (it never nears the bound at
// which enqueueLocked ends the session, however fast stanzas come).
//
// Under load, the answer to one request comes while more stanzas are
// unacknowledged, and asking again at once would make every round trip
// an extra write and read for the server (a standalone <r/>, the client's
// <a/>); the interval bounds the requests to one per AckInterval per
// stream. An idle stream is still asked after AckIdle (armAckIdle).
func (s *session) askDueLocked(now time.Time) bool {
	cfg := &s.srv.cfg
	n := s.unacked.len()
	if !s.sm || s.rOut || n < cfg.AckEvery {
		return false
	}
	return cfg.AckInterval < 0 || n >= cfg.QueueSize/4 || now.Sub(s.rLast) >= cfg.AckInterval
}

// askLocked is askDueLocked for the writer, which then writes <r/>: it
// records the request as outstanding.
func (s *session) askLocked() bool {
	if !s.sm || s.rOut || s.unacked.len() < s.srv.cfg.AckEvery {
		return false // the common case, without reading the clock
	}
	now := time.Now()
	if !s.askDueLocked(now) {
		return false
	}
	s.rOut, s.rLast = true, now
	return true
}

// smElement handles a stream management element on a bound stream (the
// reader holds session.handling); false ends the transport.
func (c *conn) smElement(el *stanza.Element) bool {
	s := c.sess
	switch el.Name.Local {
	case "enable":
		return c.enable(el)
	case "r":
		if !c.smIn {
			return true
		}
		return c.answerR()
	case "a":
		if !c.smIn {
			return true
		}
		h, err := parseH(el.Get("h"))
		if err != nil {
			c.Close(&stanza.StreamError{Condition: stanza.StreamUndefinedCondition, Text: "the h attribute must be an unsigned 32-bit number"})
			return false
		}
		s.mu.Lock()
		sent, ok := s.ackLocked(h)
		if ok {
			s.rOut = false
		}
		// Still AckEvery unacknowledged (written after the request that
		// was answered) and a request is due (askDueLocked): the writer
		// asks again. When it is not due yet, the next write asks once
		// it is, or the AckIdle timer armed by the last write does.
		again := ok && s.askDueLocked(time.Now())
		s.mu.Unlock()
		if again {
			c.signal()
		}
		if !ok {
			c.log.Info("client acknowledged more stanzas than were sent", "h", h, "sent", sent)
			c.closeWith(tooHigh(h, sent))
			return false
		}
		return true
	case "resume":
		return s.pushNonza(c, smFailed(stanza.UnexpectedRequest, -1))
	}
	// <enabled/>, <resumed/>, <failed/> are the server's to send.
	c.Close(&stanza.StreamError{Condition: stanza.StreamUnsupportedStanzaType, Text: "unexpected stream management element"})
	return false
}

// answerR answers <r/> with the h of the stanzas handled so far, once what
// handling them queued for storage is stored (Config.Stored). Answers
// that must wait are queued and written in order by one goroutine per
// session (ackLoop), so the reader goes on. The reader holds
// session.handling.
//
// An answer that need not wait (nothing queued for storage, none waiting
// before it) is queued for the writer at once, without a goroutine.
// Answers that wait are released together: the archive gives the barriers
// asked before one of its transactions one channel (archive.Stored), and
// ackLoop answers every request that channel releases with one <a/>, in
// one write instead of one each.
func (c *conn) answerR() bool {
	s := c.sess
	h := s.inbound
	var pending <-chan struct{}
	if f := c.srv.cfg.Stored; f != nil {
		pending = f()
	}
	s.ackMu.Lock()
	if pending == nil && len(s.acks) == 0 && !s.ackWaiting {
		s.ackMu.Unlock()
		return s.pushNonza(c, smAnswer(h))
	}
	if n := len(s.acks); n > 0 && s.acks[n-1].c == c && s.acks[n-1].stored == pending {
		// The same barrier releases both, and they are answered by one
		// <a/> with the latest h: the list stays short however often a
		// client asks while the archive cannot store (a database outage).
		s.acks[n-1].h = h
	} else {
		s.acks = append(s.acks, pendingAck{c: c, stored: pending, h: h})
	}
	start := !s.ackWaiting
	s.ackWaiting = true
	s.ackMu.Unlock()
	if start {
		c.srv.tasks.add()
		go s.ackLoop(c.srv)
	}
	return true
}

// smAnswer is <a h/>.
func smAnswer(h uint32) *stanza.Element {
	return stanza.New(nsSM, "a").Set("h", strconv.FormatUint(uint64(h), 10))
}

// pendingAck is an answer to <r/> on transport c, with the h counted when
// it came, to be written once stored is closed (nil: at once, after the
// ones before it).
type pendingAck struct {
	c      *conn
	stored <-chan struct{}
	h      uint32
}

// reached reports whether ch is nil or closed.
func reached(ch <-chan struct{}) bool {
	if ch == nil {
		return true
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// ackLoop writes the queued answers to <r/> in order, each once its
// storage barrier is reached, and ends when none is left. An answer whose
// transport ends first is dropped: a resumption answers h instead.
//
// The requests whose barriers are reached when it looks are answered
// together, by one <a/> with the h of the last of them. h is cumulative
// and XEP-0198 §4 lets either party send <a/> at any time, so that one
// element acknowledges everything each of those requests asked about;
// clients treat <a/> as "handled up to h" and do not pair answers with
// requests (Conversations, Smack). At full load a group commit releases
// hundreds of requests of one session at once: one <a/> each would cost
// as many allocations and bytes, and could fill the session's outbound
// queue (QueueSize) in one go and close it.
func (s *session) ackLoop(srv *Server) {
	defer srv.tasks.done()
	for {
		s.ackMu.Lock()
		if len(s.acks) == 0 {
			s.acks = nil
			s.ackWaiting = false
			s.ackMu.Unlock()
			return
		}
		p := s.acks[0]
		s.ackMu.Unlock()
		if !reached(p.stored) {
			select {
			case <-p.stored:
			case <-p.c.closing:
			}
		}
		// Take every answer, from the first, that may go now on the same
		// transport. The first is dropped if its transport closed before
		// its barrier was reached.
		s.ackMu.Lock()
		n := 0
		var h uint32
		for ; n < len(s.acks) && s.acks[n].c == p.c && reached(s.acks[n].stored); n++ {
			h = s.acks[n].h
		}
		answer := n > 0
		n = max(n, 1)
		clear(s.acks[:n])
		s.acks = s.acks[n:]
		s.ackMu.Unlock()
		if answer {
			s.pushNonza(p.c, smAnswer(h))
		}
	}
}

// waitStored waits until what handled stanzas queued for storage is stored
// (Config.Stored), before an h is given out during negotiation; false when
// the transport is closed first.
func (c *conn) waitStored() bool {
	f := c.srv.cfg.Stored
	if f == nil {
		return true
	}
	ch := f()
	if ch == nil {
		return true
	}
	select {
	case <-ch:
		return true
	case <-c.closing:
		return false
	}
}

// errClosedWaiting ends a negotiation that was closed while it waited for
// storage.
var errClosedWaiting = errors.New("session: closed while waiting for storage")

// enable answers <enable/>.
func (c *conn) enable(el *stanza.Element) bool {
	s := c.sess
	if c.smIn {
		return s.pushNonza(c, smFailed(stanza.UnexpectedRequest, -1))
	}
	enabled, id, maxResume := c.smSettings(el)
	var a after
	s.mu.Lock()
	if s.t != c || s.state != attached {
		s.mu.Unlock()
		return false
	}
	s.sm = true
	s.smID = id
	s.maxResume = maxResume
	s.enqueueLocked(entry{s: &stanza.Stanza{El: enabled}}, &a)
	if id != "" {
		c.srv.mu.Lock()
		c.srv.resumable[id] = s
		c.srv.mu.Unlock()
	}
	s.mu.Unlock()
	a.run(s)
	c.smIn = true
	c.log.Debug("stream management enabled", "resumable", id != "", "max", maxResume)
	return true
}

// smSettings reads <enable/>: the <enabled/> answer, and the resumption
// id ("" when the client did not ask for resumption) and timeout.
func (c *conn) smSettings(el *stanza.Element) (enabled *stanza.Element, id string, maxResume time.Duration) {
	enabled = stanza.New(nsSM, "enabled")
	maxResume = c.srv.cfg.ResumeTimeout
	if r := el.Get("resume"); r == "true" || r == "1" {
		if v, err := strconv.ParseUint(el.Get("max"), 10, 32); err == nil && v > 0 && time.Duration(v)*time.Second < maxResume {
			maxResume = time.Duration(v) * time.Second
		}
		id = newSMID()
		secs := int64((maxResume + time.Second - 1) / time.Second)
		enabled.Set("id", id).Set("resume", "true").Set("max", strconv.FormatInt(secs, 10))
	}
	return enabled, id, maxResume
}

// resume answers <resume/> during negotiation. It returns true when this
// transport took the session over; false (and a nil error) when the client
// got <failed/> and may bind instead.
func (c *conn) resume(el *stanza.Element) (bool, error) {
	_, failed, err := c.takeOver(el, true)
	if err != nil {
		return false, err
	}
	if failed != nil {
		return false, c.writeElem(failed)
	}
	return true, nil
}

// takeOver tries to take over the session that <resume/> names. On
// success it returns <resumed/>, which goes first in the session's queue
// when queued is set (and is for the caller to send otherwise); on failure
// the <failed/> to send.
func (c *conn) takeOver(el *stanza.Element, queued bool) (resumed, failed *stanza.Element, err error) {
	prev := el.Get("previd")
	h, herr := parseH(el.Get("h"))
	if prev == "" || herr != nil {
		return nil, smFailed(stanza.BadRequest, -1), nil
	}
	srv := c.srv
	srv.mu.Lock()
	s := srv.resumable[prev]
	ts, tsOK := srv.tombs.get(prev)
	srv.mu.Unlock()
	// A session of the address's former owner (deleted, and the address
	// given to someone else) is not this account's.
	if s == nil || s.account != c.account || !s.incarnation.Equal(c.incarnation) {
		// h only for this account's own session that ended.
		known := int64(-1)
		if s == nil && tsOK && ts.account == c.account {
			known = int64(ts.h)
			if !c.waitStored() {
				return nil, nil, errClosedWaiting
			}
		}
		c.log.Info("resumption refused: unknown or expired session")
		return nil, smFailed(stanza.ItemNotFound, known), nil
	}

	// Wait for the stanza the old transport's reader may be handling, so
	// that inbound is exact, and keep it from handling more.
	s.handling.Lock()
	// h is given out below: what the handled stanzas queued for storage
	// must be stored first. The old transport's reader waits meanwhile.
	if !c.waitStored() {
		s.handling.Unlock()
		return nil, nil, errClosedWaiting
	}
	s.mu.Lock()
	if s.state != attached && s.state != detached {
		s.mu.Unlock()
		known := int64(s.inbound)
		s.handling.Unlock()
		c.log.Info("resumption refused: the session has ended")
		return nil, smFailed(stanza.ItemNotFound, known), nil
	}
	if sent, ok := s.ackLocked(h); !ok {
		s.mu.Unlock()
		s.handling.Unlock()
		c.log.Info("client acknowledged more stanzas than were sent", "h", h, "sent", sent)
		se, app := tooHigh(h, sent)
		c.closeApp.Store(app)
		return nil, nil, se
	}
	old := s.t
	if s.state == detached && s.timer.Stop() {
		// The timer will not fire: its task slot is released here.
		srv.tasks.done()
	}
	s.state = attached
	s.t = c
	s.rOut = false
	resent := s.unacked.len()
	resumed = stanza.New(nsSM, "resumed").Set("h", strconv.FormatUint(uint64(s.inbound), 10)).Set("previd", prev)
	q := make([]entry, 0, 1+resent+len(s.queue)+s.heldLive)
	if queued {
		q = append(q, entry{s: &stanza.Stanza{El: resumed}})
	}
	q = append(q, s.unacked.all()...)
	q = append(q, s.queue...)
	s.unacked = fifo{}
	// A new stream starts active (XEP-0352); what was held goes last, as
	// it came after everything queued.
	for _, e := range s.held {
		if e.s != nil {
			q = append(q, e)
		}
	}
	s.held, s.heldIdx, s.heldLive, s.inactive = nil, nil, 0, false
	s.queue = q
	full, res := s.full, s.res
	s.mu.Unlock()
	if old != nil {
		old.replaced.Store(true)
	}
	s.handling.Unlock()
	if old != nil {
		old.Close(&stanza.StreamError{Condition: stanza.StreamConflict, Text: "the session was resumed on another connection"})
	}
	c.sess, c.full, c.res = s, full, res
	c.smIn = true
	c.log = c.log.With("jid", full.String())
	c.log.Info("session resumed", "resent", resent, "previous_connection_open", old != nil)
	return resumed, nil, nil
}

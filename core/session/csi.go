package session

import (
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/stanza"
)

// csiElement handles <active/> and <inactive/> (XEP-0352); other elements
// of the namespace are ignored.
func (c *conn) csiElement(el *stanza.Element) bool {
	switch el.Name.Local {
	case "active":
		c.sess.setInactive(c, false)
	case "inactive":
		c.sess.setInactive(c, true)
	}
	return true
}

// setInactive records the client's state; becoming active delivers what
// was held.
func (s *session) setInactive(c *conn, inactive bool) {
	var a after
	s.mu.Lock()
	if s.t == c && s.state == attached {
		if !inactive {
			s.flushHeldLocked(&a)
		}
		s.inactive = inactive
	}
	s.mu.Unlock()
	a.run(s)
}

// holdLocked holds an availability presence for an inactive client,
// replacing an earlier one from the same sender. It reports false for
// anything that must be delivered now.
func (s *session) holdLocked(e entry, a *after) bool {
	st := e.s
	if st.Kind != stanza.KindPresence || (st.Type != "" && st.Type != "unavailable") || st.From.IsZero() {
		return false
	}
	limit := s.srv.cfg.MaxHeldPresences
	if i, ok := s.heldIdx[st.From]; ok {
		s.held[i].s = nil
		s.heldLive--
	} else if s.heldLive >= limit {
		// Too many senders: deliver what is held, and this one after it.
		s.flushHeldLocked(a)
		return false
	}
	if s.heldIdx == nil {
		s.heldIdx = map[jid.JID]int{}
	}
	s.held = append(s.held, e)
	s.heldIdx[st.From] = len(s.held) - 1
	s.heldLive++
	if len(s.held) >= 2*limit {
		s.compactHeldLocked()
	}
	return true
}

// compactHeldLocked removes replaced presences from held.
func (s *session) compactHeldLocked() {
	live := make([]entry, 0, s.heldLive)
	for _, e := range s.held {
		if e.s != nil {
			s.heldIdx[e.s.From] = len(live)
			live = append(live, e)
		}
	}
	s.held = live
}

// flushHeldLocked queues the held presences, in the order they came.
func (s *session) flushHeldLocked(a *after) {
	if len(s.held) == 0 {
		return
	}
	held := s.held
	s.held, s.heldIdx, s.heldLive = nil, nil, 0
	for _, e := range held {
		if e.s != nil {
			s.enqueueLocked(e, a)
		}
	}
}

package router

import (
	"strconv"
	"sync"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
)

// resource is a bound session as the router and modules see it.
type resource struct {
	jid  jid.JID
	conn Conn
	host *Host

	mu       sync.Mutex
	presence *stanza.Stanza
	priority int
	gone     bool
	values   map[any]any
}

func (x *resource) JID() jid.JID                { return x.jid }
func (x *resource) Send(s *stanza.Stanza)       { x.conn.Send(s) }
func (x *resource) Close(e *stanza.StreamError) { x.conn.Close(e) }
func (x *resource) String() string              { return x.jid.String() }
func (x *resource) Presence() *stanza.Stanza    { x.mu.Lock(); defer x.mu.Unlock(); return x.presence }
func (x *resource) Priority() int               { x.mu.Lock(); defer x.mu.Unlock(); return x.priority }
func (x *resource) Value(key any) any           { x.mu.Lock(); defer x.mu.Unlock(); return x.values[key] }

var _ module.Hibernating = (*resource)(nil)

// Hibernating reports whether the session waits to be resumed: its Conn
// says so when it implements module.Hibernating.
func (x *resource) Hibernating() bool {
	h, ok := x.conn.(module.Hibernating)
	return ok && h.Hibernating()
}

func (x *resource) availability() (int, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.priority, x.presence != nil
}
func (x *resource) SetValue(key, value any) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.values == nil {
		x.values = map[any]any{}
	}
	x.values[key] = value
}

// setPresence records p (nil: unavailable) and reports the transition.
func (x *resource) setPresence(p *stanza.Stanza) (wasAvailable, isAvailable bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	wasAvailable = x.presence != nil
	x.presence = p
	x.priority = 0
	if p != nil {
		x.priority = parsePriority(p.El.ChildText(stanza.NSClient, "priority"))
	}
	return wasAvailable, p != nil
}

// parsePriority reads a presence priority (RFC 6121 §4.7.2.3: -128..127,
// default 0).
func parsePriority(s string) int {
	if s == "" {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0
	}
	return max(-128, min(127, n))
}

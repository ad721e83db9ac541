// Package carbons implements XEP-0280 Message Carbons: a user's clients
// that enable carbons get a copy of every instant message the user's other
// clients send or receive, so that a conversation can move between devices.
//
// # Enabling
//
// A session enables or disables carbons with an IQ set of <enable/> or
// <disable/> (urn:xmpp:carbons:2) to its own account (no 'to', or its bare
// JID); repeated requests are answered with a result (§10.1). The state is
// per session and ends with it. A request from anyone else gets
// not-allowed. The feature is announced in the server's disco#info.
//
// # Which messages are copied
//
// The recommended rules of §6.1, for types chat and normal (or none):
//
//   - chat messages; normal messages with a <body/>; messages with the IM
//     payloads of XEP-0184 receipts, XEP-0085 chat states or XEP-0333 chat
//     markers; invitations to a room (XEP-0249, and mediated invitations of
//     XEP-0045);
//   - not a message with <private xmlns='urn:xmpp:carbons:2'/> (§9) or the
//     XEP-0334 hint <no-copy xmlns='urn:xmpp:hints'/>;
//   - not a private message from a room occupant (received with a
//     muc#user <x/> element): the room sends those to every joined
//     client itself.
//
// Groupchat, headline and error messages are never copied. The rule for
// errors that answer a copied message is not implemented (it would need the
// server to remember what it copied), so the stricter promise of
// urn:xmpp:carbons:rules:0 (§6.2) is not announced.
//
// # Received carbons
//
// A Deliver-phase hook on the Inbound chain sees the resources the router
// chose for a message to an account (Packet.Targets, by the rules of RFC
// 6121 §8.5: a full JID's resource, or the highest-priority available
// resources for the bare JID). Every other resource of the account that
// enabled carbons and is available gets
// <message from='bare' to='full' type='…'><received
// xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>
// <message …/></forwarded></received></message> (§7), carrying the
// message as the packet holds it at that point (with the recipient's
// XEP-0359 stanza-id, if the archive stamped one). A message a user sends
// to their own account is copied this way only, never as a sent carbon,
// and never to the sending resource.
//
// # Sent carbons
//
// A message a client sends to another account is copied, after routing
// (the Outbound Observe phase), to every other resource of the sender that
// enabled carbons and is available, whether the sending client enabled
// carbons or not (§8), wrapped in <sent/>. The copy carries the message as
// the sender's Outbound chain left it: the Inbound chain of a local
// recipient may replace the packet's stanza (with the recipient's
// stanza-id, which is not for the sender's devices), so the module keeps
// the stanza of the Process phase, per session (a session's stanzas pass
// one at a time, in its reader goroutine).
//
// # Forged carbons
//
// A message that carries <sent/> or <received/> in urn:xmpp:carbons:2 and
// does not come from the recipient's own bare JID is dropped in the Filter
// phase of the Inbound chain: only the user's server sends carbons, and
// clients must ignore others (§11, CVE-2017-5589). The server's own copies
// never pass a chain: they are handed to the sessions directly.
//
// # <private/>
//
// Since version 0.14.0 the XEP no longer asks the receiving server to
// remove <private/> before delivery (§9, interoperability note): a
// recipient that sees it knows the message was not copied to its other
// devices, and a sender cannot silently change how a message is
// delivered. The module therefore leaves it in place. The option
// strip_private (default false) removes it from what a local recipient is
// delivered, for deployments whose clients stumble over it.
//
// # Order with other Deliver hooks
//
// Received carbons are queued in the Deliver phase, just before the router
// delivers the original. A Deliver hook that runs before this one and
// takes the message (offline storage, when no resource may receive it)
// leaves nothing to copy; one that runs after it and stores the message
// finds the copies sent already, to sessions with a negative priority,
// which XEP-0280 allows: copies go to every resource that did not receive
// the message under the rules of RFC 6121.
package carbons

import (
	"context"
	"sync"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
)

// ID is the module's configuration key.
const ID = "carbons"

// Namespaces.
const (
	NS           = "urn:xmpp:carbons:2"
	NSForward    = "urn:xmpp:forward:0"                    // XEP-0297
	nsHints      = "urn:xmpp:hints"                        // XEP-0334
	nsReceipts   = "urn:xmpp:receipts"                     // XEP-0184
	nsChatStates = "http://jabber.org/protocol/chatstates" // XEP-0085
	nsMarkers    = "urn:xmpp:chat-markers:0"               // XEP-0333
	nsConference = "jabber:x:conference"                   // XEP-0249
	nsMUCUser    = "http://jabber.org/protocol/muc#user"   // XEP-0045
)

func init() {
	module.Register(module.Info{
		ID:          ID,
		Description: "Message carbons: copies of a user's messages to all of the user's clients",
		Specs: []module.Spec{
			{ID: "XEP-0280", Name: "Message Carbons", Version: "1.0.1", Status: module.Complete,
				Note: "the rules of §6.1 except copying errors; urn:xmpp:carbons:rules:0 is not announced"},
			{ID: "XEP-0334", Name: "Message Processing Hints", Version: "1.0.0", Status: module.Partial,
				Note: "no-copy is honoured by carbons"},
		},
		Default: true,
		New:     func() module.Module { return &Module{} },
	})
}

// Options configure the module.
type Options struct {
	// StripPrivate removes <private xmlns='urn:xmpp:carbons:2'/> from
	// messages delivered to local recipients (see the package
	// documentation).
	StripPrivate bool `mapstructure:"strip_private"`
}

// Module is the carbons module of one virtual host.
type Module struct {
	opts Options
	host module.Host

	// flip serialises changes of a session's enabled flag with the count
	// of its account; it is taken alone, and only on enable, disable and
	// session end, never on the message path.
	flip sync.Mutex
	// countMu guards counts: per bare JID, how many of its sessions
	// enabled carbons. The message hooks read it to skip the account's
	// sessions altogether (Host.Resources allocates) when no other session
	// could want a copy: the common case of a user with one device. A
	// count may exceed the live sessions (one enabled as it ended), never
	// fall short of them. Entries stay for accounts that enabled carbons
	// once: one small entry per such account.
	countMu sync.RWMutex
	counts  map[string]*int32
}

var _ module.Configurable = (*Module)(nil)

// Options returns the module's options, filled with defaults.
func (m *Module) Options() any { return &m.opts }

// Provision declares the IQ handlers, the hooks and the disco feature.
func (m *Module) Provision(h module.Host) error {
	m.host = h
	m.counts = map[string]*int32{}
	h.HandleIQ(module.ToAccount, module.Set, stanza.Name{Space: NS, Local: "enable"}, m.enable)
	h.HandleIQ(module.ToAccount, module.Set, stanza.Name{Space: NS, Local: "disable"}, m.disable)
	h.Hook(module.Inbound, module.Filter, dropForged)
	h.Hook(module.Inbound, module.Deliver, m.received)
	h.Hook(module.Outbound, module.Process, m.keepSent)
	h.Hook(module.Outbound, module.Observe, m.sent)
	h.On(module.SessionClosed, func(_ context.Context, ev module.Event) { m.setEnabled(ev.Resource, false) })
	h.AddDisco(module.ToHost, module.Disco{Features: []string{NS}})
	return nil
}

// enabledKey marks a session that enabled carbons (its value is true).
type enabledKey struct{}

func enabled(r module.Resource) bool {
	v, _ := r.Value(enabledKey{}).(bool)
	return v
}

func (m *Module) enable(_ context.Context, iq *module.IQ) (*stanza.Element, error) {
	if err := mayChange(iq); err != nil {
		return nil, err
	}
	m.setEnabled(iq.Origin, true)
	return nil, nil
}

func (m *Module) disable(_ context.Context, iq *module.IQ) (*stanza.Element, error) {
	if err := mayChange(iq); err != nil {
		return nil, err
	}
	m.setEnabled(iq.Origin, false)
	return nil, nil
}

// mayChange allows only the session itself to enable or disable its
// carbons (§4.1, §5.1: not-allowed otherwise).
func mayChange(iq *module.IQ) error {
	if iq.Origin == nil || (!iq.To.IsZero() && iq.To != iq.From.Bare()) {
		return stanza.ErrNotAllowed("carbons are enabled and disabled by the client's own session")
	}
	return nil
}

// setEnabled records a session's choice and counts it for its account.
func (m *Module) setEnabled(r module.Resource, on bool) {
	m.flip.Lock()
	defer m.flip.Unlock()
	if enabled(r) == on {
		return
	}
	r.SetValue(enabledKey{}, on)
	own := r.JID().Bare().String()
	m.countMu.Lock()
	n := m.counts[own]
	if n == nil {
		n = new(int32)
		m.counts[own] = n
	}
	if on {
		*n++
	} else {
		*n--
	}
	m.countMu.Unlock()
}

// enabledSessions is how many of own's sessions enabled carbons (see
// Module.counts).
func (m *Module) enabledSessions(own jid.JID) int32 {
	m.countMu.RLock()
	defer m.countMu.RUnlock()
	if n := m.counts[own.String()]; n != nil {
		return *n
	}
	return 0
}

// direction says which copy a rule is about.
type direction uint8

const (
	dirReceived direction = iota
	dirSent
)

// eligible applies the rules of §6.1 (see the package documentation).
func eligible(s *stanza.Stanza, dir direction) bool {
	if s.Kind != stanza.KindMessage {
		return false
	}
	chat := false
	switch s.Type {
	case "chat":
		chat = true
	case "", "normal":
	default:
		return false // groupchat, headline, error
	}
	var body, im, invite, occupant bool
	for _, n := range s.El.Nodes {
		c := n.Elem
		if c == nil {
			continue
		}
		switch c.Name.Space {
		case stanza.NSClient:
			body = body || c.Name.Local == "body"
		case NS:
			return false // <private/>, or a carbon itself
		case nsHints:
			if c.Name.Local == "no-copy" {
				return false
			}
		case nsReceipts, nsChatStates, nsMarkers:
			im = true
		case nsConference:
			invite = invite || c.Name.Local == "x"
		case nsMUCUser:
			if c.Name.Local == "x" {
				occupant = true
				invite = invite || c.Child(nsMUCUser, "invite") != nil
			}
		}
	}
	switch {
	case invite:
		return true
	case occupant && dir == dirReceived && !s.From.IsBare():
		return false // a room's private message: the room copies it
	}
	return chat || body || im
}

// isCarbon reports whether s carries a carbon (<sent/> or <received/>).
func isCarbon(s *stanza.Stanza) bool {
	for _, n := range s.El.Nodes {
		if c := n.Elem; c != nil && c.Name.Space == NS && (c.Name.Local == "sent" || c.Name.Local == "received") {
			return true
		}
	}
	return false
}

// recipient returns the account an inbound message is for.
func recipient(p *module.Packet) (jid.JID, bool) {
	switch {
	case p.Target != module.ToAccount && p.Target != module.ToResource:
		return jid.JID{}, false
	case !p.Stanza.To.IsZero():
		return p.Stanza.To.Bare(), true
	case p.Origin != nil:
		return p.Origin.JID().Bare(), true
	}
	return jid.JID{}, false
}

// dropForged is the Inbound Filter hook against forged carbons (§11).
func dropForged(_ context.Context, p *module.Packet) (module.Verdict, error) {
	s := p.Stanza
	if s.Kind != stanza.KindMessage || !isCarbon(s) {
		return module.Continue, nil
	}
	if own, ok := recipient(p); ok && s.From == own {
		return module.Continue, nil
	}
	return module.Drop, nil
}

// wrapper is the <received/> or <sent/> element of a carbon and its
// <forwarded/>, allocated together: every message copied costs one
// allocation for it, shared by all its copies (sessions only serialise
// it).
type wrapper struct {
	outer, fwd         stanza.Element
	outerNode, fwdNode [1]stanza.Node
}

func wrap(local string, m *stanza.Element) *stanza.Element {
	w := &wrapper{}
	w.fwdNode[0].Elem = m
	w.fwd.Name = stanza.Name{Space: NSForward, Local: "forwarded"}
	w.fwd.Nodes = w.fwdNode[:]
	w.outerNode[0].Elem = &w.fwd
	w.outer.Name = stanza.Name{Space: NS, Local: local}
	w.outer.Nodes = w.outerNode[:]
	return &w.outer
}

// copyMessage is one carbon: the stanza and its element, allocated
// together.
type copyMessage struct {
	st    stanza.Stanza
	el    stanza.Element
	attrs [3]stanza.Attr
	node  [1]stanza.Node
}

// carbon addresses one copy: from the account's bare JID to one of its
// sessions, of the message's type (§7, §8).
func carbon(own, to jid.JID, typ string, wrapped *stanza.Element) *stanza.Stanza {
	c := &copyMessage{}
	c.attrs[0].Name.Local, c.attrs[0].Value = "from", own.String()
	c.attrs[1].Name.Local, c.attrs[1].Value = "to", to.String()
	n := 2
	if typ != "" {
		c.attrs[2].Name.Local, c.attrs[2].Value = "type", typ
		n = 3
	}
	c.node[0].Elem = wrapped
	c.el.Name = stanza.Name{Space: stanza.NSClient, Local: "message"}
	c.el.Attr, c.el.Nodes = c.attrs[:n:n], c.node[:]
	c.st.El, c.st.Kind, c.st.From, c.st.To, c.st.Type = &c.el, stanza.KindMessage, own, to, typ
	return &c.st
}

// copyTo sends a carbon of s to each resource of own that enabled carbons,
// is available and is not skipped.
func (m *Module) copyTo(own jid.JID, s *stanza.Stanza, local string, skip func(jid.JID) bool) {
	rs := m.host.Resources(own)
	if len(rs) < 2 {
		return // one session: it sent or got the message itself
	}
	var wrapped *stanza.Element
	for _, r := range rs {
		if !enabled(r) || r.Presence() == nil || skip(r.JID()) {
			continue
		}
		if wrapped == nil {
			wrapped = wrap(local, s.El)
		}
		r.Send(carbon(own, r.JID(), s.Type, wrapped))
	}
}

// received is the Inbound Deliver hook: received carbons (§7), and
// <private/> removed when so configured.
func (m *Module) received(_ context.Context, p *module.Packet) (module.Verdict, error) {
	s := p.Stanza
	if s.Kind != stanza.KindMessage || !p.AccountExists {
		return module.Continue, nil
	}
	own, ok := recipient(p)
	if !ok {
		return module.Continue, nil
	}
	if m.opts.StripPrivate {
		stripPrivate(p)
	}
	if !eligible(s, dirReceived) {
		return module.Continue, nil
	}
	// Sessions that could want a copy: the enabled ones that are not
	// targets.
	n := m.enabledSessions(own)
	for _, t := range p.Targets {
		if n <= 0 {
			break
		}
		if enabled(t) {
			n--
		}
	}
	if n <= 0 {
		return module.Continue, nil
	}
	var from jid.JID
	if p.Origin != nil {
		from = p.Origin.JID()
	}
	m.copyTo(own, s, "received", func(j jid.JID) bool {
		if j == from {
			return true
		}
		for _, t := range p.Targets {
			if t.JID() == j {
				return true
			}
		}
		return false
	})
	return module.Continue, nil
}

// sentKey keys a session's *pending.
type sentKey struct{}

// pending is the message a session is sending, as its Outbound chain left
// it before routing, for the sent carbon.
type pending struct {
	mu sync.Mutex
	p  *module.Packet
	s  *stanza.Stanza
}

// keepSent is the Outbound Process hook that remembers the stanza to copy.
func (m *Module) keepSent(_ context.Context, p *module.Packet) (module.Verdict, error) {
	s := p.Stanza
	if p.Origin == nil || p.Target == module.ToHost || s.To.IsZero() || s.To.Bare() == p.Origin.JID().Bare() ||
		!eligible(s, dirSent) {
		return module.Continue, nil
	}
	// Sessions that could want a copy: the enabled ones but the sender.
	n := m.enabledSessions(p.Origin.JID().Bare())
	if enabled(p.Origin) {
		n--
	}
	if n <= 0 {
		return module.Continue, nil
	}
	st, _ := p.Origin.Value(sentKey{}).(*pending)
	if st == nil {
		st = &pending{}
		p.Origin.SetValue(sentKey{}, st)
	}
	st.mu.Lock()
	st.p, st.s = p, s
	st.mu.Unlock()
	return module.Continue, nil
}

// sent is the Outbound Observe hook: sent carbons (§8).
func (m *Module) sent(_ context.Context, p *module.Packet) (module.Verdict, error) {
	if p.Stanza.Kind != stanza.KindMessage || p.Origin == nil {
		return module.Continue, nil
	}
	st, _ := p.Origin.Value(sentKey{}).(*pending)
	if st == nil {
		return module.Continue, nil
	}
	st.mu.Lock()
	s := st.s
	if st.p != p {
		s = nil
	}
	st.p, st.s = nil, nil
	st.mu.Unlock()
	if s == nil {
		return module.Continue, nil
	}
	from := p.Origin.JID()
	m.copyTo(from.Bare(), s, "sent", func(j jid.JID) bool { return j == from })
	return module.Continue, nil
}

// stripPrivate gives the packet a copy of its message without <private/>;
// the router delivers Packet.Stanza to the targets, which stay its own
// (a wrapper here once hid module.Hibernating from the push module).
func stripPrivate(p *module.Packet) {
	s := p.Stanza
	if s.El.Child(NS, "private") == nil {
		return
	}
	c := s.Readdress(s.From, s.To)
	nodes := make([]stanza.Node, 0, len(c.El.Nodes))
	for _, n := range c.El.Nodes {
		if n.Elem != nil && n.Elem.Name == (stanza.Name{Space: NS, Local: "private"}) {
			continue
		}
		nodes = append(nodes, n)
	}
	c.El.Nodes = nodes
	p.Stanza = c
}

// Package presence implements presence subscriptions and presence exchange
// of RFC 6121 §3 and §4: the server side of subscribe, subscribed,
// unsubscribe and unsubscribed (state tables of Appendix A, kept in
// core/rosterstate), initial, broadcast, directed and unavailable presence,
// and presence probes.
//
// What a local user sends runs through the Outbound hook: broadcast presence
// is recorded with Host.SetPresence and sent to the user's available
// resources and to the contacts subscribed to it; the first one of a session
// also probes the contacts the user is subscribed to, shows the user's other
// resources to the new one and resends the subscription requests waiting
// for an answer. Subscription stanzas are re-addressed from and to bare
// JIDs, change the sender's roster state and are routed when the tables say
// so. What a local user receives runs through the Inbound hook: subscription
// stanzas change the receiver's state and are delivered (or stored, for an
// unanswered request) when the tables say so; probes are answered on the
// user's behalf, and only to subscribers. Everything else (directed
// presence, errors) goes on to the router's delivery rules.
//
// When a session ends without unavailable presence, its contacts and the
// entities that got directed presence from it are told it is gone, and the
// last activity (XEP-0012) of the account is stored when it was the last
// session.
//
// Pre-approval (§3.4) is not offered: storage.RosterItem has no field to
// keep it.
package presence

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/rosterstate"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/xmlstream"
)

// ID is the module's configuration key.
const ID = "presence"

func init() {
	module.Register(module.Info{
		ID:          ID,
		Description: "Presence subscriptions, broadcast, directed presence and probes",
		Specs: []module.Spec{
			{ID: "RFC 6121", Name: "XMPP IM: presence subscriptions (§3) and presence (§4)", Status: module.Partial,
				Note: "no subscription pre-approval (§3.4)"},
		},
		Requires: []string{"roster"},
		Default:  true,
		New:      func() module.Module { return new(Presence) },
	})
}

// Presence is the module instance of one virtual host.
type Presence struct {
	h     module.Host
	store storage.Store
	log   *slog.Logger
}

// Provision hooks both chains at Process, after policy decided, and
// watches sessions end.
func (m *Presence) Provision(h module.Host) error {
	m.h, m.store, m.log = h, h.Store(), h.Logger()
	if m.store == nil {
		return errors.New("presence: the host has no store")
	}
	h.Hook(module.Outbound, module.Process, m.outbound)
	h.Hook(module.Inbound, module.Process, m.inbound)
	h.On(module.SessionClosed, m.closed)
	return nil
}

// sessionKey keys a resource's *session.
type sessionKey struct{}

// session is what the module remembers of one resource.
type session struct {
	mu       sync.Mutex
	directed map[jid.JID]bool // got directed available presence (§4.6)
	status   string           // of the last unavailable presence
}

// sessionOf returns r's state, creating it; only r's own reader goroutine
// (the Outbound chain) creates it.
func sessionOf(r module.Resource) *session {
	if s, ok := r.Value(sessionKey{}).(*session); ok {
		return s
	}
	s := &session{directed: map[jid.JID]bool{}}
	r.SetValue(sessionKey{}, s)
	return s
}

// takeDirected returns and forgets the JIDs r sent directed presence to.
func takeDirected(r module.Resource) []jid.JID {
	s, ok := r.Value(sessionKey{}).(*session)
	if !ok {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]jid.JID, 0, len(s.directed))
	for j := range s.directed {
		out = append(out, j)
	}
	clear(s.directed)
	return out
}

func (m *Presence) outbound(ctx context.Context, p *module.Packet) (module.Verdict, error) {
	s, r := p.Stanza, p.Origin
	if s.Kind != stanza.KindPresence || r == nil {
		return module.Continue, nil
	}
	if s.To.IsZero() {
		switch s.Type {
		case "":
			return module.Done, m.available(ctx, r, s)
		case "unavailable":
			return module.Done, m.unavailable(ctx, r, s)
		}
		return module.Drop, nil // nothing else means anything without 'to'
	}
	if t, ok := rosterstate.ParseType(s.Type); ok {
		return module.Done, m.subscriptionOut(ctx, r.JID().Bare(), s, t)
	}
	if (s.Type == "" || s.Type == "unavailable") && s.To.Bare() != r.JID().Bare() {
		sess := sessionOf(r)
		sess.mu.Lock()
		if s.Type == "" {
			sess.directed[s.To] = true
		} else {
			delete(sess.directed, s.To)
		}
		sess.mu.Unlock()
	}
	return module.Continue, nil // directed presence, probes, errors: routed as they are
}

// available handles initial and broadcast presence (§4.2, §4.4).
func (m *Presence) available(ctx context.Context, r module.Resource, s *stanza.Stanza) error {
	own := r.JID().Bare()
	first := r.Presence() == nil
	m.h.SetPresence(ctx, r, s)
	// An initial presence also resends the pending subscription requests:
	// both come in one statement.
	var (
		items []storage.RosterItem
		reqs  []storage.SubscriptionRequest
		err   error
	)
	if first {
		items, _, reqs, err = m.store.RosterWithRequests(ctx, own.String())
	} else {
		items, _, err = m.store.RosterItems(ctx, own.String())
	}
	if err != nil {
		return fmt.Errorf("presence: broadcast: %w", err)
	}
	// The user's available resources, this one included (§4.2.2), then
	// the subscribers.
	m.h.Route(ctx, s.Readdress(r.JID(), own))
	for _, c := range rosterstate.Contacts(items, rosterstate.State.HasFrom) {
		m.h.Route(ctx, s.Readdress(r.JID(), c))
	}
	if !first {
		return nil
	}
	for _, c := range rosterstate.Contacts(items, rosterstate.State.HasTo) {
		m.h.Route(ctx, stanza.NewPresence(own, c, "probe"))
	}
	for _, o := range m.h.Resources(own) {
		if op := o.Presence(); op != nil && o.JID() != r.JID() {
			r.Send(op.Readdress(o.JID(), r.JID()))
		}
	}
	for _, req := range reqs {
		r.Send(m.request(own, req))
	}
	return nil
}

// unavailable handles unavailable presence without 'to' (§4.5).
func (m *Presence) unavailable(ctx context.Context, r module.Resource, s *stanza.Stanza) error {
	wasAvailable := r.Presence() != nil
	m.h.SetPresence(ctx, r, nil)
	sess := sessionOf(r)
	sess.mu.Lock()
	sess.status = s.El.ChildText(stanza.NSClient, "status")
	sess.mu.Unlock()
	return m.gone(ctx, r, s, wasAvailable)
}

// gone sends unavailable presence s from r to the entities r sent directed
// presence to and, if r was available, to the user's other resources and
// the subscribers; each of them once.
func (m *Presence) gone(ctx context.Context, r module.Resource, s *stanza.Stanza, wasAvailable bool) error {
	own := r.JID().Bare()
	told := map[jid.JID]bool{}
	if wasAvailable {
		items, _, err := m.store.RosterItems(ctx, own.String())
		if err != nil {
			return fmt.Errorf("presence: broadcast unavailable: %w", err)
		}
		// The user's resources, if any are left (a session that ended is
		// no longer among them): with none, the router would only look the
		// account up to find nobody to tell.
		told[own] = true
		if len(m.h.Resources(own)) > 0 {
			m.h.Route(ctx, s.Readdress(r.JID(), own))
		}
		for _, c := range rosterstate.Contacts(items, rosterstate.State.HasFrom) {
			told[c] = true
			m.h.Route(ctx, s.Readdress(r.JID(), c))
		}
	}
	for _, d := range takeDirected(r) {
		if !told[d.Bare()] {
			m.h.Route(ctx, s.Readdress(r.JID(), d))
		}
	}
	return nil
}

// closed handles a session that ended: if it did not say it was going,
// the server says it on its behalf (§4.5.2 for a vanished client).
func (m *Presence) closed(ctx context.Context, ev module.Event) {
	r := ev.Resource
	own := r.JID().Bare()
	if err := m.gone(ctx, r, stanza.NewPresence(r.JID(), jid.JID{}, "unavailable"), ev.Presence != nil); err != nil {
		m.log.ErrorContext(ctx, "session end", "err", err)
	}
	if len(m.h.Resources(own)) > 0 {
		return
	}
	status := ev.Status
	if sess, ok := r.Value(sessionKey{}).(*session); ok && status == "" {
		sess.mu.Lock()
		status = sess.status
		sess.mu.Unlock()
	}
	if err := m.store.SetLastActivity(ctx, own.String(), time.Now(), status); err != nil {
		m.log.ErrorContext(ctx, "store last activity", "err", err)
	}
}

// subscriptionOut handles a subscription stanza the user sent (§3, A.2).
func (m *Presence) subscriptionOut(ctx context.Context, own jid.JID, s *stanza.Stanza, t rosterstate.Type) error {
	contact := s.To.Bare()
	if contact == own {
		return nil // the user's presence reaches its own resources anyway
	}
	unlock := rosterstate.Lock(own)
	e, err := rosterstate.Load(ctx, m.store, own, contact)
	cur, rule := e.State, rosterstate.Outbound(e.State, t)
	var (
		changed bool
		ver     int64
	)
	if err == nil {
		changed, ver, err = e.Apply(ctx, m.store, own, rule.Next, nil)
	}
	unlock()
	if err != nil {
		return fmt.Errorf("presence: %s to %s: %w", t, contact, err)
	}
	if changed {
		rosterstate.Push(m.h.Resources(own), rosterstate.Item(e.Item), ver)
	}
	if rule.Forward {
		m.h.Route(ctx, s.Readdress(own, contact))
	}
	switch {
	case !cur.HasFrom() && rule.Next.HasFrom():
		rosterstate.SharePresence(ctx, m.h, own, contact) // §3.1.5
	case cur.HasFrom() && !rule.Next.HasFrom():
		rosterstate.WithdrawPresence(ctx, m.h, own, contact) // §3.2.2
	}
	return nil
}

func (m *Presence) inbound(ctx context.Context, p *module.Packet) (module.Verdict, error) {
	s := p.Stanza
	if s.Kind != stanza.KindPresence || p.Target == module.ToHost || !p.AccountExists || s.To.IsZero() {
		return module.Continue, nil
	}
	if t, ok := rosterstate.ParseType(s.Type); ok {
		return m.subscriptionIn(ctx, p, t)
	}
	if s.Type == "probe" {
		return module.Done, m.probe(ctx, s)
	}
	return module.Continue, nil
}

// subscriptionIn handles a subscription stanza to a local user (§3, A.3).
// Subscription stanzas concern the account, whatever resource they name
// (§8.5.3.1), so they are delivered as to the bare JID.
func (m *Presence) subscriptionIn(ctx context.Context, p *module.Packet, t rosterstate.Type) (module.Verdict, error) {
	own, contact := p.Stanza.To.Bare(), p.Stanza.From.Bare()
	if contact.IsZero() || contact == own {
		return module.Drop, nil
	}
	s := p.Stanza.Readdress(contact, own)

	unlock := rosterstate.Lock(own)
	e, err := rosterstate.Load(ctx, m.store, own, contact)
	cur, rule := e.State, rosterstate.Inbound(e.State, t)
	var (
		changed bool
		ver     int64
	)
	if err == nil {
		changed, ver, err = e.Apply(ctx, m.store, own, rule.Next, s.El.AppendXML(nil, stanza.NSClient))
	}
	unlock()
	if err != nil {
		return module.Drop, fmt.Errorf("presence: %s from %s: %w", t, contact, err)
	}
	if changed {
		rosterstate.Push(m.h.Resources(own), rosterstate.Item(e.Item), ver)
	}
	if rule.AutoReply {
		// The requester's server lost track of its subscription: confirm
		// it, and show the presence its probe would have got.
		m.h.Route(ctx, stanza.NewPresence(own, contact, "subscribed"))
		rosterstate.SharePresence(ctx, m.h, own, contact)
	}
	if cur.HasFrom() && !rule.Next.HasFrom() {
		rosterstate.WithdrawPresence(ctx, m.h, own, contact) // §3.3.3
	}
	if !rule.Forward {
		return module.Done, nil
	}
	p.Stanza, p.Target = s, module.ToAccount
	return module.Continue, nil
}

// probe answers a presence probe on the user's behalf (§4.3.2): with the
// presence of each available resource (of the probed one, for a probe to a
// full JID), or with unavailable presence stamped with the last activity;
// and only if the prober is subscribed to the user's presence.
func (m *Presence) probe(ctx context.Context, s *stanza.Stanza) error {
	own, prober := s.To.Bare(), s.From.Bare()
	if prober.IsZero() || prober == own {
		return nil
	}
	e, err := rosterstate.Load(ctx, m.store, own, prober)
	if err != nil {
		return fmt.Errorf("presence: probe: %w", err)
	}
	if !e.State.HasFrom() {
		return nil // not a subscriber: reveal nothing
	}
	answered := false
	for _, r := range m.h.Resources(own) {
		if s.To.IsBare() || r.JID() == s.To {
			if p := r.Presence(); p != nil {
				m.h.Route(ctx, p.Readdress(r.JID(), prober))
				answered = true
			}
		}
	}
	if answered {
		return nil
	}
	u := stanza.NewPresence(s.To, prober, "unavailable")
	at, status, err := m.store.LastActivity(ctx, own.String())
	switch {
	case err == nil:
		if status != "" {
			u.El.Append(stanza.New(stanza.NSClient, "status").AppendText(status))
		}
		u.El.Append(stanza.New(stanza.NSDelay, "delay").Set("from", own.Domain()).
			Set("stamp", at.UTC().Format("2006-01-02T15:04:05.000Z")))
	case !errors.Is(err, storage.ErrNotFound):
		m.log.ErrorContext(ctx, "read last activity", "err", err)
	}
	m.h.Route(ctx, u)
	return nil
}

// request rebuilds a stored subscription request for redelivery (§3.1.3:
// "resent on login"); a request that does not parse is rebuilt bare.
func (m *Presence) request(own jid.JID, req storage.SubscriptionRequest) *stanza.Stanza {
	from, err := jid.Parse(req.From)
	if err != nil {
		from = jid.JID{}
	}
	if el, err := xmlstream.ParseElement(req.Stanza, xmlstream.Limits{}); err == nil {
		if s, err := stanza.Parse(el); err == nil && s.Kind == stanza.KindPresence && s.Type == "subscribe" {
			return s.Readdress(from, own)
		}
	}
	m.log.Warn("stored subscription request does not parse", "from", req.From)
	return stanza.NewPresence(from, own, "subscribe")
}

package pep

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync"

	"kontor.im/kontor/core/caps"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
)

// tracker remembers, per account, the available resources that sent the
// account presence with entity capabilities: the implicit subscribers of
// its PEP service (XEP-0163 §4.3). Only their capabilities are kept, never
// the presence itself.
//
// Its mutex is a leaf lock: nothing else is taken, and nothing is routed,
// while it is held.
type tracker struct {
	mu     sync.Mutex
	max    int // per owner
	owners map[jid.JID]map[jid.JID]capsKey
}

// watcher is one tracked resource.
type watcher struct {
	full jid.JID
	key  capsKey
}

func newTracker(max int) *tracker {
	return &tracker{max: max, owners: map[jid.JID]map[jid.JID]capsKey{}}
}

// set records full's capabilities for owner. It returns the previous ones
// and whether there were any; ok is false when the owner already tracks
// as many resources as it may.
func (t *tracker) set(owner, full jid.JID, k capsKey) (prev capsKey, existed, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.owners[owner]
	if m == nil {
		m = map[jid.JID]capsKey{}
		t.owners[owner] = m
	}
	prev, existed = m[full]
	if !existed && len(m) >= t.max {
		return capsKey{}, false, false
	}
	m[full] = k
	return prev, existed, true
}

func (t *tracker) remove(owner, full jid.JID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if m := t.owners[owner]; m != nil {
		delete(m, full)
		if len(m) == 0 {
			delete(t.owners, owner)
		}
	}
}

func (t *tracker) get(owner, full jid.JID) (capsKey, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k, ok := t.owners[owner][full]
	return k, ok
}

// watchers returns owner's tracked resources (of contact only, unless
// contact is zero).
func (t *tracker) watchers(owner, contact jid.JID) []watcher {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.owners[owner]
	out := make([]watcher, 0, len(m))
	for full, k := range m {
		if contact.IsZero() || full.Bare() == contact {
			out = append(out, watcher{full, k})
		}
	}
	return out
}

// inbound watches presence to accounts and catches the answers to the
// module's disco#info queries.
func (m *Module) inbound(ctx context.Context, p *module.Packet) (module.Verdict, error) {
	s := p.Stanza
	switch s.Kind {
	case stanza.KindPresence:
		if (p.Target == module.ToAccount || p.Target == module.ToResource) && p.AccountExists &&
			(s.Type == "" || s.Type == "unavailable") && !s.From.IsZero() && !s.From.IsBare() {
			m.presence(ctx, s.To.Bare(), s)
		}
	case stanza.KindIQ:
		if p.Target == module.ToAccount && (s.Type == "result" || s.Type == "error") && len(s.ID) > len(capsQueryIDPrefix) &&
			s.ID[:len(capsQueryIDPrefix)] == capsQueryIDPrefix {
			m.capsAnswer(ctx, s)
			return module.Drop, nil // ours, even when it came too late
		}
	}
	return module.Continue, nil
}

// presence updates owner's tracker with a resource's presence, learns its
// capabilities, and sends it the last items it is newly interested in.
func (m *Module) presence(ctx context.Context, owner jid.JID, s *stanza.Stanza) {
	from := s.From
	if s.Type == "unavailable" {
		m.tracked.remove(owner, from)
		return
	}
	key, ok := parseCaps(s.El)
	if !ok {
		m.tracked.remove(owner, from)
		return
	}
	prev, existed, ok := m.tracked.set(owner, from, key)
	if !ok || (existed && prev == key) {
		return
	}
	nodes, known := m.caps.get(key)
	if !known {
		m.askCaps(ctx, key, waiter{owner: owner, full: from, prev: prev, hasPrev: existed})
		return
	}
	var already interest
	if existed {
		already, _ = m.caps.get(prev)
	}
	m.sendLast(ctx, owner, from, nodes, already, SendOnSubAndPresence)
}

// askCaps asks full for its capabilities, unless a query for the same
// capabilities is already out; the answer serves every waiter.
func (m *Module) askCaps(ctx context.Context, key capsKey, w waiter) {
	q := m.pending.add(key, w)
	if q == nil {
		return
	}
	query := stanza.New(nsDiscoInfo, "query").Set("node", key.node+"#"+key.ver)
	m.h.Route(ctx, stanza.NewIQ(w.owner, w.full, "get", q.id, query))
}

// capsAnswer handles the answer to a disco#info query. Only an answer that
// verifies against the ver hash is cached: capabilities are shared by
// every entity that advertises the same ones, so an error or a false
// answer must not decide for the others (an entity could copy a popular
// client's caps and answer wrongly to silence its users). After such an
// answer the next waiting entity is asked instead. Caps with a hash this
// server cannot compute (and legacy caps without one) cannot be verified
// and are not used.
func (m *Module) capsAnswer(ctx context.Context, s *stanza.Stanza) {
	q, ok := m.pending.take(s.ID, s.From)
	if !ok {
		return
	}
	nodes, ok := m.verifiedInterest(ctx, s, q.key)
	if !ok {
		for _, w := range q.waiters {
			if w.full == q.to {
				continue
			}
			if k, ok := m.tracked.get(w.owner, w.full); ok && k == q.key {
				m.askCaps(ctx, q.key, w)
			}
		}
		return
	}
	m.caps.put(q.key, nodes)
	for _, w := range q.waiters {
		if k, ok := m.tracked.get(w.owner, w.full); ok && k == q.key {
			var already interest
			if w.hasPrev {
				already, _ = m.caps.get(w.prev)
			}
			m.sendLast(ctx, w.owner, w.full, nodes, already, SendOnSubAndPresence)
		}
	}
}

// verifiedInterest returns the +notify nodes of a disco#info result that
// verifies against key.
func (m *Module) verifiedInterest(ctx context.Context, s *stanza.Stanza, key capsKey) (interest, bool) {
	info := s.Payload()
	if s.Type != "result" || info == nil || info.Name.Space != nsDiscoInfo || info.Name.Local != "query" {
		return nil, false
	}
	h := caps.Hash(key.hash)
	if h == nil {
		return nil, false
	}
	parsed, err := caps.ParseInfo(info)
	var ver string
	if err == nil {
		ver, err = parsed.VerWith(h)
	}
	if err != nil || ver != key.ver {
		m.log.DebugContext(ctx, "entity capabilities do not verify", "from", s.From.String(), "hash", key.hash)
		return nil, false
	}
	nodes := notifyNodes(info)
	if nodes == nil {
		nodes = interest{}
	}
	return nodes, true
}

// outboundObserve sends a new subscriber the last items it may now see,
// when the owner approves its subscription (send_last_published_item
// on_sub).
func (m *Module) outboundObserve(ctx context.Context, p *module.Packet) (module.Verdict, error) {
	s := p.Stanza
	if s.Kind != stanza.KindPresence || s.Type != "subscribed" || p.Origin == nil || s.To.IsZero() {
		return module.Continue, nil
	}
	owner, contact := p.Origin.JID().Bare(), s.To.Bare()
	for _, w := range m.tracked.watchers(owner, contact) {
		if nodes, ok := m.caps.get(w.key); ok {
			m.sendLast(ctx, owner, w.full, nodes, nil, SendOnSub)
		}
	}
	return module.Continue, nil
}

// sessionClosed forgets an own resource that ended, in case its
// unavailable presence did not come through.
func (m *Module) sessionClosed(ctx context.Context, ev module.Event) {
	j := ev.Resource.JID()
	m.tracked.remove(j.Bare(), j)
}

// wants reports whether send_last_published_item s covers trigger
// (SendOnSub: a new subscription; SendOnSubAndPresence: availability).
func (s SendLast) wants(trigger SendLast) bool {
	switch s {
	case SendOnSubAndPresence:
		return true
	case SendOnSub:
		return trigger == SendOnSub
	}
	return false
}

// sendLast sends full the last item of each of owner's nodes it is
// interested in (and was not already), may read, and whose
// send_last_published_item covers trigger.
func (m *Module) sendLast(ctx context.Context, owner, full jid.JID, nodes, already interest, trigger SendLast) {
	if len(nodes) == 0 {
		return
	}
	all, err := m.pep.PEPNodes(ctx, owner.String())
	if err != nil {
		m.log.ErrorContext(ctx, "last items", "err", err)
		return
	}
	configs := map[string]Config{}
	for _, n := range all {
		if nodes.has(n.Node) && !already.has(n.Node) {
			if cfg := decodeConfig(n.Config); cfg.SendLast.wants(trigger) {
				configs[n.Node] = cfg
			}
		}
	}
	if len(configs) == 0 {
		return
	}
	rel, err := m.relationOf(ctx, owner, full)
	if err != nil {
		m.log.ErrorContext(ctx, "last items", "err", err)
		return
	}
	last, err := m.pep.PEPLastItems(ctx, owner.String())
	if err != nil {
		m.log.ErrorContext(ctx, "last items", "err", err)
		return
	}
	for _, it := range last {
		cfg, ok := configs[it.Node]
		if !ok || !rel.may(cfg) {
			continue
		}
		p, err := parsePayload(it.Payload)
		if err != nil {
			m.log.ErrorContext(ctx, "stored item does not parse", "owner", owner.String(), "node", it.Node, "err", err)
			continue
		}
		items := stanza.New(NSEvent, "items").Set("node", it.Node).Append(itemElement(NSEvent, it.ID, p))
		msg := m.eventMessage(owner, full, stanza.New(NSEvent, "event").Append(items))
		msg.El.Append(stanza.New(stanza.NSDelay, "delay").Set("from", owner.String()).
			Set("stamp", it.Published.UTC().Format("2006-01-02T15:04:05.000000Z")))
		m.h.Route(ctx, msg)
	}
}

// newMsgPrefix makes the random prefix of a module's notification ids.
func newMsgPrefix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "pep-" + hex.EncodeToString(b[:]) + "-"
}

// eventMessage wraps an <event/> in a headline message from the account.
func (m *Module) eventMessage(owner, to jid.JID, event *stanza.Element) *stanza.Stanza {
	msg := stanza.NewMessage(owner, to, "headline", m.msgPrefix+strconv.FormatUint(m.msgSeq.Add(1), 10))
	msg.El.Append(event)
	return msg
}

// notify sends event (about node, configured as cfg) to every tracked
// resource of owner's service that is interested in node and may read it.
// The event element is shared by the messages: nobody changes it once
// routed.
func (m *Module) notify(ctx context.Context, owner jid.JID, node string, cfg Config, event *stanza.Element) {
	var targets []watcher
	others := false
	for _, w := range m.tracked.watchers(owner, jid.JID{}) {
		if nodes, ok := m.caps.get(w.key); ok && nodes.has(node) {
			targets = append(targets, w)
			others = others || w.full.Bare() != owner
		}
	}
	if len(targets) == 0 {
		return
	}
	roster := map[jid.JID]relation{owner: {owner: true}}
	if others && cfg.Access != AccessOpen && cfg.Access != AccessWhitelist {
		items, _, err := m.store.RosterItems(ctx, owner.String())
		if err != nil {
			m.log.ErrorContext(ctx, "notify", "err", err)
			return
		}
		for _, it := range items {
			if j, err := jid.Parse(it.Contact); err == nil {
				roster[j] = relationTo(it)
			}
		}
	}
	for _, w := range targets {
		rel := roster[w.full.Bare()]
		if rel.may(cfg) {
			m.h.Route(ctx, m.eventMessage(owner, w.full, event))
		}
	}
}

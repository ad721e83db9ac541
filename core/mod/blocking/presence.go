package blocking

import (
	"context"
	"sync"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

// maxDirected bounds the directed presence recipients remembered per
// session; beyond it, new ones are not remembered (they do not get
// unavailable presence when blocked, but they still get it when the
// session ends, from the presence module).
const maxDirected = 1000

// directedKey keys a resource's *directed.
type directedKey struct{}

// directed remembers the entities a resource sent directed available
// presence to (RFC 6121 §4.6), which may see its presence until it sends
// them unavailable presence. The presence module keeps the same set for
// itself; modules do not share state.
type directed struct {
	mu sync.Mutex
	to map[jid.JID]struct{}
}

// trackDirected is the Outbound Observe hook that maintains directed:
// directed available presence adds its recipient, directed unavailable
// presence removes it, and broadcast unavailable presence (which the
// presence module also sends to every directed recipient) empties the
// set. Only the resource's own reader goroutine creates its set.
func (m *Module) trackDirected(_ context.Context, p *module.Packet) (module.Verdict, error) {
	s, r := p.Stanza, p.Origin
	if s.Kind != stanza.KindPresence || r == nil || (s.Type != "" && s.Type != "unavailable") {
		return module.Continue, nil
	}
	d, _ := r.Value(directedKey{}).(*directed)
	if s.To.IsZero() {
		if d != nil && s.Type == "unavailable" {
			d.mu.Lock()
			clear(d.to)
			d.mu.Unlock()
		}
		return module.Continue, nil
	}
	if s.To.Bare() == r.JID().Bare() {
		return module.Continue, nil
	}
	if d == nil {
		if s.Type != "" {
			return module.Continue, nil
		}
		d = &directed{to: map[jid.JID]struct{}{}}
		r.SetValue(directedKey{}, d)
	}
	d.mu.Lock()
	if s.Type == "" {
		if len(d.to) < maxDirected {
			d.to[s.To] = struct{}{}
		}
	} else {
		delete(d.to, s.To)
	}
	d.mu.Unlock()
	return module.Continue, nil
}

// directedTo returns the entities r sent directed available presence to.
func directedTo(r module.Resource) []jid.JID {
	d, _ := r.Value(directedKey{}).(*directed)
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]jid.JID, 0, len(d.to))
	for j := range d.to {
		out = append(out, j)
	}
	return out
}

// available returns the resources among rs that sent available presence.
func available(rs []module.Resource) []module.Resource {
	out := rs[:0:0]
	for _, r := range rs {
		if r.Presence() != nil {
			out = append(out, r)
		}
	}
	return out
}

func hasFrom(s storage.Subscription) bool { return s == storage.SubFrom || s == storage.SubBoth }
func hasTo(s storage.Subscription) bool   { return s == storage.SubTo || s == storage.SubBoth }

// contact is a roster item whose JID parses.
type contact struct {
	jid      jid.JID
	from, to bool
}

func (m *Module) contacts(ctx context.Context, own jid.JID) []contact {
	items, _, err := m.roster.RosterItems(ctx, own.String())
	if err != nil {
		m.log.ErrorContext(ctx, "roster unavailable; presence not updated for a blocklist change", "owner", own.String(), "err", err)
		return nil
	}
	out := make([]contact, 0, len(items))
	for _, it := range items {
		if j, err := jid.Parse(it.Contact); err == nil {
			out = append(out, contact{jid: j, from: hasFrom(it.Subscription), to: hasTo(it.Subscription)})
		}
	}
	return out
}

// targets returns the addresses of the roster contact c (a bare JID) that
// the blocked JIDs items cover: c itself when an item covers every
// resource of it, else the resources items name.
func targets(items []jid.JID, c jid.JID) []jid.JID {
	var out []jid.JID
	for _, j := range items {
		switch {
		case matchItem(j, c): // c itself, or its domain
			return []jid.JID{c}
		case j.Local() != "" && !j.IsBare() && j.Bare() == c:
			out = append(out, j)
		case j.Local() == "" && !j.IsBare() && j.Domain() == c.Domain():
			if t, err := c.WithResource(j.Resource()); err == nil {
				out = append(out, t)
			}
		}
	}
	return out
}

func anyMatch(items []jid.JID, j jid.JID) bool {
	for _, it := range items {
		if matchItem(it, j) {
			return true
		}
	}
	return false
}

// blocked sends the presence XEP-0191 §3.3 asks for when own blocked
// added: unavailable from each available resource to the entities allowed
// to see it, and, for the user's clients, unavailable from the blocked
// contacts.
func (m *Module) blocked(ctx context.Context, own jid.JID, added []jid.JID) {
	mine := available(m.host.Resources(own))
	if len(mine) == 0 {
		return
	}
	cs := m.contacts(ctx, own)
	for _, c := range cs {
		if !c.from {
			continue
		}
		for _, t := range targets(added, c.jid) {
			for _, r := range mine {
				m.tell(ctx, stanza.NewPresence(r.JID(), t, "unavailable"))
			}
		}
	}
	for _, r := range mine {
		for _, d := range directedTo(r) {
			if anyMatch(added, d) {
				m.tell(ctx, stanza.NewPresence(r.JID(), d, "unavailable"))
			}
		}
	}

	// The user's side: the contacts the user is subscribed to showed as
	// available; their blocked addresses go offline.
	l := newList(strs(added))
	for _, c := range cs {
		if !c.to || len(targets(added, c.jid)) == 0 {
			continue
		}
		if m.host.IsLocal(c.jid.Domain()) {
			for _, x := range m.host.Resources(c.jid) {
				if x.Presence() != nil && l.matches(x.JID()) {
					for _, r := range mine {
						r.Send(stanza.NewPresence(x.JID(), r.JID(), "unavailable"))
					}
				}
			}
			continue
		}
		for _, t := range targets(added, c.jid) {
			for _, r := range mine {
				r.Send(stanza.NewPresence(t, r.JID(), "unavailable"))
			}
		}
	}
}

// tell delivers presence from one of the user's resources once its
// blocklist is changed: to a local entity's available sessions directly
// (the filters would now stop it on the way), unless that entity blocks
// the user in turn; to another domain, routed.
func (m *Module) tell(ctx context.Context, p *stanza.Stanza) {
	to := p.To
	if !m.host.IsLocal(to.Domain()) {
		m.host.Route(ctx, p)
		return
	}
	if to.Local() == "" {
		return // the server itself (or a service of it): no session to tell
	}
	l, err := m.list(ctx, to.Bare())
	if err != nil {
		m.log.ErrorContext(ctx, "blocklist unavailable; presence not sent", "owner", to.Bare().String(), "err", err)
		return
	}
	if l.matches(p.From) {
		return
	}
	for _, x := range m.host.Resources(to.Bare()) {
		if x.Presence() != nil && (to.IsBare() || x.JID() == to) {
			x.Send(p)
		}
	}
}

// unblocked sends the presence XEP-0191 §3.4 asks for when own unblocked
// removed: the current presence of each available resource to the
// entities allowed to see it, and a probe of the contacts the user is
// subscribed to, so that their presence shows again. Entities still
// blocked by what remains in the list are skipped.
func (m *Module) unblocked(ctx context.Context, own jid.JID, removed []jid.JID) {
	mine := available(m.host.Resources(own))
	if len(mine) == 0 {
		return
	}
	l, err := m.list(ctx, own)
	if err != nil {
		m.log.ErrorContext(ctx, "blocklist unavailable; presence not sent after unblock", "owner", own.String(), "err", err)
		return
	}
	for _, c := range m.contacts(ctx, own) {
		for _, t := range targets(removed, c.jid) {
			if l.matches(t) {
				continue
			}
			if c.from {
				for _, r := range mine {
					if p := r.Presence(); p != nil {
						m.host.Route(ctx, p.Readdress(r.JID(), t))
					}
				}
			}
			if c.to {
				m.host.Route(ctx, stanza.NewPresence(own, t, "probe"))
			}
		}
	}
	for _, r := range mine {
		for _, d := range directedTo(r) {
			if anyMatch(removed, d) && !l.matches(d) {
				if p := r.Presence(); p != nil {
					m.host.Route(ctx, p.Readdress(r.JID(), d))
				}
			}
		}
	}
}

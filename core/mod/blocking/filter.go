package blocking

import (
	"context"

	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
)

// errBlocked is the error a user gets for a stanza to a JID they blocked
// (XEP-0191 §3.3). Its App element is shared by every reply: replies are
// only serialised.
var errBlocked = stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAcceptable,
	App: stanza.New(NSErrors, "blocked")}

// outbound is the Outbound Filter hook: a client's stanza to a JID its
// account blocked is refused.
func (m *Module) outbound(ctx context.Context, p *module.Packet) (module.Verdict, error) {
	s := p.Stanza
	if p.Origin == nil || s.To.IsZero() {
		return module.Continue, nil
	}
	own := p.Origin.JID().Bare()
	if s.To.Bare() == own || s.To == m.domain {
		return module.Continue, nil
	}
	l, err := m.list(ctx, own)
	if err != nil {
		return module.Drop, err
	}
	if !l.matches(s.To) {
		return module.Continue, nil
	}
	// Straight to the session: routed, the error would come from the
	// blocked JID and be filtered on the way in.
	if reply := stanza.ErrorReply(s, errBlocked); reply != nil {
		p.Origin.Send(reply)
	}
	return module.Drop, nil
}

// inbound is the Inbound Filter hook. It refuses what a blocked JID sends
// to an account of this host, and drops what the server routes on a local
// user's behalf to a JID that user blocked.
func (m *Module) inbound(ctx context.Context, p *module.Packet) (module.Verdict, error) {
	s := p.Stanza
	if (p.Target != module.ToAccount && p.Target != module.ToResource) || !p.AccountExists ||
		s.From.IsZero() || s.To.IsZero() {
		return module.Continue, nil
	}
	owner, from := s.To.Bare(), s.From
	if from.Bare() == owner {
		return module.Continue, nil
	}
	if from != m.domain {
		l, err := m.list(ctx, owner)
		if err != nil {
			if s.Type == "error" {
				// The refusal of what the user sent (the router's
				// internal-server-error when this very check failed).
				return module.Continue, nil
			}
			return module.Drop, err
		}
		if l.matches(from) {
			return refuse(s)
		}
	}
	// A client's own stanzas passed its Outbound filter already; errors
	// are the answers to refused stanzas and must reach their sender.
	if p.Origin != nil || s.Type == "error" || from.Local() == "" || !m.host.IsLocal(from.Domain()) {
		return module.Continue, nil
	}
	l, err := m.list(ctx, from.Bare())
	if err != nil {
		return module.Drop, err
	}
	if l.matches(s.To) {
		return module.Drop, nil
	}
	return module.Continue, nil
}

// refuse answers a stanza from a blocked JID as XEP-0191 §3.3 says: the
// user appears not to exist.
func refuse(s *stanza.Stanza) (module.Verdict, error) {
	switch s.Kind {
	case stanza.KindMessage:
		if s.Type != "error" {
			return module.Drop, stanza.ErrServiceUnavailable("")
		}
	case stanza.KindIQ:
		if s.Type == "get" || s.Type == "set" {
			return module.Drop, stanza.ErrServiceUnavailable("")
		}
	}
	return module.Drop, nil
}

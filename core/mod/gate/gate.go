// Package gate enforces the policy on the stanza path: before a stanza a
// local client sends reaches another user, it asks the Decider (core/gate,
// implemented by package policy) whether the sender may do that, and
// refuses with a policy-violation error that says why.
//
// It hooks the Outbound chain at the Policy phase, so it runs after the
// server stamped 'from' and before any feature module acts. What it asks:
//
//   - a message to another user: contact "message"; a direct invitation
//     to a room (XEP-0249, <x xmlns='jabber:x:conference' jid='ROOM'/>)
//     then also contact "muc.invite" with the room set, like a mediated
//     one the room relays; if the message is end-
//     to-end encrypted (OMEMO, OpenPGP for XMPP, XEP-0027 or an XEP-0380
//     marker), then also e2ee. A groupchat message asks only e2ee (who may
//     be in a room is the room's join decision).
//   - a roster set adding or changing an item: contact "roster.add" for
//     each item (removing an item is always allowed).
//   - presence of type subscribe and subscribed: contact "subscribe" and
//     "subscribed" (requesting and granting a subscription); directed
//     available presence and probes: contact "presence".
//   - an IQ get or set to another user: contact "iq".
//
// Stanzas from users of other servers (federation, core/s2s) ask the same
// contact questions when they reach the recipient's host: the gate also
// hooks the Inbound chain at the Policy phase, for stanzas that no local
// client sent (no origin) whose sender is a user (a local part) of a
// domain this server neither serves nor hosts as a component. There the
// sender is the party with Local false and the recipient the local one, so
// the policy's rules for external parties apply in both directions. A
// groupchat message from a remote room asks nothing (the local user chose
// to join it). A refusal goes back to the remote sender as
// policy-violation.
//
// Stanzas to a domain a module serves (module.Host.ServeDomain: rooms,
// components, the upload and proxy services) ask no contact question
// here: the serving module asks its own, with the people involved (MUC:
// muc.join and muc.invite; components: contact for the component's JID;
// proxy65: the two parties of a transfer). Asking here too would ask
// about a room's or service's address as if it were a person, and a
// policy that refuses unknown or external parties would lock everyone out
// of rooms. End-to-end encrypted messages to them still ask e2ee.
//
// Stanzas of type error, IQ results, unavailable presence and withdrawals
// (unsubscribe, unsubscribed) always pass: refusing them would break the
// protocol or keep someone from ending a contact, and an error cannot be
// answered with an error. Stanzas to the server, to the sender's own
// account and to domains without a local part are not gated.
//
// A refusal is a stanza.Error the router returns to the sender: condition
// policy-violation, the policy's message and reason code as text, and
// <decision xmlns='urn:kontor:policy:0' reason='…' id='…'/> (core/gate).
// Nothing is dropped silently.
//
// The module is enabled by default, with the embedded policy, whose
// defaults let local accounts without directory data talk to each other.
// cmd/kontor gives it the policy engine through SetDecider before the
// host starts; without one it refuses every stanza it would ask about
// (fail closed) with reason policy_unavailable.
package gate

import (
	"context"
	"log/slog"

	contract "kontor.im/kontor/core/gate"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
)

// ID is the module's configuration key.
const ID = "policy_gate"

// NSRoster is the roster namespace (RFC 6121 §2).
const NSRoster = "jabber:iq:roster"

func init() {
	module.Register(module.Info{
		ID:          ID,
		Description: "Policy enforcement: asks the policy engine before a message, subscription, roster addition, directed presence or IQ reaches another user; refusals are policy-violation errors with the reason",
		Default:     true,
		New:         func() module.Module { return new(Gate) },
	})
}

// Gate is the module instance of one virtual host.
type Gate struct {
	decider contract.Decider
	host    module.Host
	domain  string // the host's domain, the common case of isLocal
	log     *slog.Logger
}

// SetDecider gives the module its policy engine. cmd/kontor calls it after
// constructing the module and before the host provisions it.
func (g *Gate) SetDecider(d contract.Decider) { g.decider = d }

// Provision hooks the Outbound chain (local senders) and the Inbound chain
// (senders on other servers) at the Policy phase.
func (g *Gate) Provision(h module.Host) error {
	g.host, g.log, g.domain = h, h.Logger(), h.Domain().String()
	if g.decider == nil {
		g.log.Warn("no policy engine: every message, subscription, roster addition and IQ to another user is refused")
	}
	h.Hook(module.Outbound, module.Policy, g.outbound)
	h.Hook(module.Inbound, module.Policy, g.inbound)
	return nil
}

// inbound asks the contact question for a stanza a remote server delivered
// from one of its users to one of ours.
func (g *Gate) inbound(ctx context.Context, p *module.Packet) (module.Verdict, error) {
	s := p.Stanza
	if p.Origin != nil || s.IsError() || s.From.IsZero() || s.From.Local() == "" {
		return module.Continue, nil
	}
	if d := s.From.Domain(); g.isLocal(d) || g.host.ServedBy(d) != "" {
		return module.Continue, nil
	}
	if s.To.IsZero() || !g.isLocal(s.To.Domain()) {
		return module.Continue, nil
	}
	in, ok := classify(s, g.isLocal)
	if !ok || in.Action == "" {
		return module.Continue, nil
	}
	in.From.Local = false
	if err := g.ask(ctx, in); err != nil {
		return module.Drop, err
	}
	return module.Continue, nil
}

// unavailable is the refusal when no decider is wired in.
var unavailable = contract.Failed(contract.ReasonUnavailable,
	"The server has no policy engine, so it refuses rather than skip the policy check. Tell your administrator.", nil)

func (g *Gate) outbound(ctx context.Context, p *module.Packet) (module.Verdict, error) {
	s := p.Stanza
	if p.Origin == nil || s.IsError() || s.From.IsZero() {
		return module.Continue, nil
	}
	if items := rosterItems(s, p.Target); items != nil {
		for _, item := range items {
			in := contract.ContactInput{Action: contract.ActionRosterAdd, StanzaType: s.Type,
				From: contract.Party{JID: s.From.Bare().String(), Local: true},
				To:   contract.Party{JID: item.Bare().String(), Local: g.isLocal(item.Domain())}}
			if err := g.ask(ctx, in); err != nil {
				return module.Drop, err
			}
		}
		return module.Continue, nil
	}
	in, ok := classify(s, g.isLocal)
	if !ok {
		return module.Continue, nil
	}
	if in.Action != "" && g.host.ServedBy(s.To.Domain()) == "" {
		if err := g.ask(ctx, in); err != nil {
			return module.Drop, err
		}
	}
	if in.Action == contract.ActionMessage {
		if room, ok := directInvitation(s.El); ok {
			inv := in
			inv.Action, inv.Room = contract.ActionMUCInvite, room
			if err := g.ask(ctx, inv); err != nil {
				return module.Drop, err
			}
		}
	}
	if s.Kind == stanza.KindMessage && encrypted(s.El) {
		e := contract.E2EEInput{From: in.From, To: in.To, Room: in.Room, StanzaType: s.Type}
		if err := g.refusal(ctx, "e2ee", g.e2ee(ctx, e), in); err != nil {
			return module.Drop, err
		}
	}
	return module.Continue, nil
}

func (g *Gate) isLocal(domain string) bool {
	return domain == g.domain || g.host.IsLocal(domain)
}

func (g *Gate) e2ee(ctx context.Context, in contract.E2EEInput) contract.Decision {
	if g.decider == nil {
		return unavailable
	}
	return g.decider.E2EE(ctx, in)
}

// ask asks the contact decision and returns the refusal as an error.
func (g *Gate) ask(ctx context.Context, in contract.ContactInput) error {
	d := unavailable
	if g.decider != nil {
		d = g.decider.Contact(ctx, in)
	}
	return g.refusal(ctx, "contact", d, in)
}

func (g *Gate) refusal(ctx context.Context, decision string, d contract.Decision, in contract.ContactInput) error {
	if d.Allow {
		return nil
	}
	g.log.DebugContext(ctx, "policy refused", "decision", decision, "decision_id", d.ID, "reason", d.Reason,
		"action", string(in.Action), "from", in.From.JID, "to", in.To.JID)
	return d.StanzaError()
}

// classify returns the contact question a stanza asks (Action "" when it
// asks only about end-to-end encryption, a groupchat message), or false
// when it asks none.
func classify(s *stanza.Stanza, isLocal func(domain string) bool) (in contract.ContactInput, ok bool) {
	to := s.To
	if to.IsZero() || to.Local() == "" {
		return contract.ContactInput{}, false
	}
	from := s.From.Bare()
	peer := to.Bare()
	if peer == from {
		return contract.ContactInput{}, false
	}
	in = contract.ContactInput{StanzaType: s.Type,
		From: contract.Party{JID: from.String(), Local: true},
		To:   contract.Party{JID: peer.String(), Local: isLocal(peer.Domain())}}
	if s.Kind == stanza.KindMessage && s.Type == "groupchat" {
		in.To, in.Room = contract.Party{}, peer.String()
		return in, true
	}
	in.Action, ok = contract.StanzaAction(s)
	return in, ok
}

// NSDirectInvite is the namespace of XEP-0249 direct invitations.
const NSDirectInvite = "jabber:x:conference"

// directInvitation returns the room a message invites its recipient to
// (XEP-0249), as a bare JID. An invitation whose jid is not a room's JID
// is not one (the recipient's client ignores it); it goes as a message.
func directInvitation(msg *stanza.Element) (string, bool) {
	x := msg.Child(NSDirectInvite, "x")
	if x == nil {
		return "", false
	}
	room, err := jid.Parse(x.Get("jid"))
	if err != nil || room.Local() == "" {
		return "", false
	}
	return room.Bare().String(), true
}

// rosterItems returns the contacts a roster set adds or changes (never
// those it removes), or nil when s is not a roster set to the sender's own
// account. Items with an invalid JID are left to the roster module, which
// refuses them.
func rosterItems(s *stanza.Stanza, target module.Target) []jid.JID {
	if s.Kind != stanza.KindIQ || s.Type != "set" || target != module.ToAccount {
		return nil
	}
	if !s.To.IsZero() && s.To.Bare() != s.From.Bare() {
		return nil
	}
	q := s.Payload()
	if q == nil || q.Name.Space != NSRoster || q.Name.Local != "query" {
		return nil
	}
	items := []jid.JID{}
	q.Children(func(c *stanza.Element) bool {
		if c.Name.Space != NSRoster || c.Name.Local != "item" || c.Get("subscription") == "remove" {
			return true
		}
		j, err := jid.Parse(c.Get("jid"))
		if err != nil || j.Local() == "" || j.Bare() == s.From.Bare() {
			return true
		}
		items = append(items, j)
		return true
	})
	return items
}

// Payloads that mark a message as end-to-end encrypted.
var encryptionMarkers = []stanza.Name{
	{Space: "eu.siacs.conversations.axolotl", Local: "encrypted"}, // OMEMO 0.3 (legacy, still what most clients send)
	{Space: "urn:xmpp:omemo:2", Local: "encrypted"},               // XEP-0384 OMEMO 0.8+
	{Space: "urn:xmpp:openpgp:0", Local: "openpgp"},               // XEP-0373 OpenPGP for XMPP
	{Space: "jabber:x:encrypted", Local: "x"},                     // XEP-0027 (obsolete)
	{Space: "urn:xmpp:eme:0", Local: "encryption"},                // XEP-0380 Explicit Message Encryption (OTR, ...)
}

// encrypted reports whether a message carries an end-to-end encrypted
// payload or says it is encrypted. It looks at child element names only,
// never at the body.
func encrypted(el *stanza.Element) bool {
	for _, n := range el.Nodes {
		if n.Elem == nil {
			continue
		}
		for _, m := range encryptionMarkers {
			if n.Elem.Name == m {
				return true
			}
		}
	}
	return false
}

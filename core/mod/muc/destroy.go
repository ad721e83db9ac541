package muc

import (
	"context"
	"unicode/utf8"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/stanza"
)

// maxDestroyReasonBytes bounds the reason and the alternate venue's
// password an owner gives when destroying a room.
const maxDestroyReasonBytes = 1024

// destroy handles an owner's <destroy/> (XEP-0045 §10.9): each occupant
// gets one unavailable presence, its own, with a muc#user <destroy/>
// carrying the alternate venue, its password and the reason as the owner
// gave them; the room leaves the service and its stored state (the
// configuration, affiliations and reserved nicknames) is deleted, even for
// a persistent room. The room's archive is not touched: its messages stay
// under the retention they were archived with (and under legal holds),
// until the archive's purge removes them, and GDPR exports and eDiscovery
// of the room's JID still find them. A new room at the same address
// starts empty and does not show them (its archive is read from its
// creation on). Only an owner may destroy a room: anyone else is
// forbidden.
func (m *Module) destroy(ctx context.Context, r *room, s *stanza.Stanza, d *stanza.Element) error {
	var alt jid.JID
	if v := d.Get("jid"); v != "" {
		j, err := jid.Parse(v)
		if err != nil {
			return stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed, Text: "the alternate venue is not a JID"}
		}
		alt = j
	}
	reason, password := d.ChildText(NSOwner, "reason"), d.ChildText(NSOwner, "password")
	if len(reason) > maxDestroyReasonBytes || len(password) > maxDestroyReasonBytes || !utf8.ValidString(reason+password) {
		return stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable, Text: "the reason or password is too long"}
	}
	// The stored state goes before anyone may create a room at this
	// address again, and no persist under way can store it again.
	m.storeMu.Lock()
	m.mu.Lock()
	r.mu.Lock()
	if r.affiliation(s.From) != Owner {
		r.mu.Unlock()
		m.mu.Unlock()
		m.storeMu.Unlock()
		return stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden, Text: "only owners destroy the room"}
	}
	if r.gone {
		r.mu.Unlock()
		m.mu.Unlock()
		m.storeMu.Unlock()
		return stanza.ErrItemNotFound("no such room")
	}
	r.gone = true
	if m.rooms[r.jid.String()] == r {
		delete(m.rooms, r.jid.String())
	}
	out := make([]outgoing, 0, len(r.occupants))
	for _, o := range r.occupants {
		p := stanza.NewPresence(r.occupantJID(o.nick), o.real, "unavailable")
		el := stanza.New(NSUser, "destroy")
		if !alt.IsZero() {
			el.Set("jid", alt.String())
		}
		if password != "" {
			el.Append(stanza.New(NSUser, "password").AppendText(password))
		}
		if reason != "" {
			el.Append(stanza.New(NSUser, "reason").AppendText(reason))
		}
		p.El.Append(stanza.New(NSUser, "x").Append(
			stanza.New(NSUser, "item").Set("affiliation", None).Set("role", None), el))
		out = append(out, p)
	}
	clear(r.occupants)
	clear(r.byJID)
	r.mu.Unlock()
	m.mu.Unlock()
	var stored error
	if m.store != nil {
		if stored = m.store.DeleteMUCRoom(ctx, r.jid.String()); stored != nil {
			m.log.ErrorContext(ctx, "destroyed room still stored", "room", r.jid.String(), "err", stored)
		}
	}
	m.storeMu.Unlock()
	m.send(ctx, out)
	m.log.InfoContext(ctx, "room destroyed", "room", r.jid.String(), "occupants", len(out))
	if stored != nil {
		return stanza.ErrInternal("")
	}
	return nil
}

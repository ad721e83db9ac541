// Package roster implements the roster of RFC 6121 §2: the jabber:iq:roster
// get and set of a user's own contact list, roster pushes to the user's
// interested resources, and roster versioning (RFC 6121 §2.6, formerly
// XEP-0237).
//
// Subscription states are not the client's to set: a roster set changes
// only an item's name and groups (other 'subscription' values than "remove"
// and 'ask' are ignored, as §2.1.2.5 and §2.1.2.1 say); the states move
// through core/rosterstate when subscription stanzas flow (core/mod/presence)
// or when an item is removed here.
//
// A roster get that carries the version the client has cached gets an
// empty result; any other version gets the whole roster. That is the
// "exact-match" conformance of XEP-0237 §4.2: a changed roster is sent
// whole, not as pushes of the differences.
package roster

import (
	"context"
	"errors"
	"fmt"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/rosterstate"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

// ID is the module's configuration key.
const ID = "roster"

// Limits of a roster set (§2.3.3 leaves them to the server), in bytes.
const (
	MaxNameBytes  = 1023
	MaxGroupBytes = 1023
)

func init() {
	module.Register(module.Info{
		ID:          ID,
		Description: "Contact lists (rosters) with roster pushes and versioning",
		Specs: []module.Spec{
			{ID: "RFC 6121", Name: "XMPP IM: roster management (§2)", Status: module.Complete},
			{ID: "XEP-0237", Name: "Roster Versioning", Version: "1.3", Status: module.Complete,
				Note: "obsolete, now RFC 6121 §2.6; a changed roster is sent whole"},
		},
		Default: true,
		New:     func() module.Module { return new(Roster) },
	})
}

// Roster is the module instance of one virtual host.
type Roster struct {
	h     module.Host
	store storage.Store
}

var query = stanza.Name{Space: rosterstate.NS, Local: "query"}

// Provision registers the roster IQ handlers and the versioning stream
// feature.
func (m *Roster) Provision(h module.Host) error {
	m.h, m.store = h, h.Store()
	if m.store == nil {
		return errors.New("roster: the host has no store")
	}
	h.HandleIQ(module.ToAccount, module.Get, query, m.get)
	h.HandleIQ(module.ToAccount, module.Set, query, m.set)
	h.AddStreamFeature(func() *stanza.Element { return stanza.New(rosterstate.NSVersioning, "ver") })
	return nil
}

// owner returns the account whose roster iq addresses, and refuses anyone
// but that account's own resources (§2.1.3, §2.3.3).
func owner(iq *module.IQ) (jid.JID, error) {
	own := iq.From.Bare()
	if !iq.To.IsZero() && iq.To != own {
		return jid.JID{}, stanza.ErrForbidden("only the account itself may use its roster")
	}
	return own, nil
}

// get answers a roster get (§2.1.3) and makes the sender an interested
// resource.
func (m *Roster) get(ctx context.Context, iq *module.IQ) (*stanza.Element, error) {
	own, err := owner(iq)
	if err != nil || iq.Origin == nil {
		return nil, stanza.ErrForbidden("only the account itself may read its roster")
	}
	q := iq.Payload()
	cached, versioned := q.Get("ver"), q.Has("ver")
	rosterstate.SetInterested(iq.Origin, versioned)
	if versioned && cached != "" {
		v, err := m.store.RosterVersion(ctx, own.String())
		if err != nil {
			return nil, fmt.Errorf("roster: version: %w", err)
		}
		if cached == rosterstate.Version(v) {
			return nil, nil // §2.6.3: the client's cache is current
		}
	}
	items, v, err := m.store.RosterItems(ctx, own.String())
	if err != nil {
		return nil, fmt.Errorf("roster: get: %w", err)
	}
	res := stanza.New(rosterstate.NS, "query")
	if versioned {
		res.Set("ver", rosterstate.Version(v))
	}
	for _, it := range items {
		res.Append(rosterstate.Item(it))
	}
	return res, nil
}

// set adds, updates (§2.3, §2.4) or removes (§2.5) one item.
func (m *Roster) set(ctx context.Context, iq *module.IQ) (*stanza.Element, error) {
	own, err := owner(iq)
	if err != nil {
		return nil, err
	}
	item, err := parseItem(iq.Payload())
	if err != nil {
		return nil, err
	}
	contact := jid.MustParse(item.Contact) // parseItem checked it
	if contact == own {
		return nil, stanza.ErrNotAllowed("the roster holds contacts, not the account itself")
	}
	if item.Subscription == "remove" {
		return nil, m.remove(ctx, own, contact)
	}

	unlock := rosterstate.Lock(own)
	stored, ver, err := m.update(ctx, own, contact, item)
	unlock()
	if err != nil {
		return nil, fmt.Errorf("roster: set: %w", err)
	}
	rosterstate.Push(m.h.Resources(own), rosterstate.Item(stored), ver)
	return nil, nil
}

// update stores item's name and groups, keeping the subscription state.
func (m *Roster) update(ctx context.Context, own, contact jid.JID, item storage.RosterItem) (storage.RosterItem, int64, error) {
	e, err := rosterstate.Load(ctx, m.store, own, contact)
	if err != nil {
		return storage.RosterItem{}, 0, err
	}
	e.Item.Name, e.Item.Groups = item.Name, item.Groups
	ver, err := m.store.PutRosterItem(ctx, own.String(), e.Item)
	return e.Item, ver, err
}

// remove deletes an item and ends the subscriptions it carried (§2.5.2):
// unsubscribe if the user was subscribed or asking, unsubscribed if the
// contact was subscribed or asking, and unavailable presence from the
// user's available resources if the contact was getting it.
func (m *Roster) remove(ctx context.Context, own, contact jid.JID) error {
	unlock := rosterstate.Lock(own)
	e, err := rosterstate.Load(ctx, m.store, own, contact)
	var ver int64
	switch {
	case err != nil:
	case !e.InRoster:
		unlock()
		return stanza.ErrItemNotFound("the contact is not in the roster")
	default:
		ver, err = m.store.DeleteRosterItem(ctx, own.String(), contact.String())
		if err == nil && e.Pending {
			err = m.store.DeleteSubscriptionRequest(ctx, own.String(), contact.String())
		}
	}
	unlock()
	if err != nil {
		return fmt.Errorf("roster: remove: %w", err)
	}

	s := e.State
	if s.HasTo() || s.PendingOut() {
		m.h.Route(ctx, stanza.NewPresence(own, contact, "unsubscribe"))
	}
	if s.HasFrom() || s.PendingIn() {
		m.h.Route(ctx, stanza.NewPresence(own, contact, "unsubscribed"))
	}
	if s.HasFrom() {
		rosterstate.WithdrawPresence(ctx, m.h, own, contact)
	}
	rosterstate.Push(m.h.Resources(own), rosterstate.Removed(contact.String()), ver)
	return nil
}

// parseItem validates the single item of a roster set (§2.3.3, §2.4.3) and
// returns it with Subscription "remove" or empty.
func parseItem(q *stanza.Element) (storage.RosterItem, error) {
	var items []*stanza.Element
	q.Children(func(c *stanza.Element) bool {
		if c.Name == (stanza.Name{Space: rosterstate.NS, Local: "item"}) {
			items = append(items, c)
		}
		return true
	})
	if len(items) != 1 {
		return storage.RosterItem{}, stanza.ErrBadRequest("a roster set carries exactly one item")
	}
	el := items[0]
	contact, err := jid.Parse(el.Get("jid"))
	if err != nil || !contact.IsBare() {
		return storage.RosterItem{}, stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed,
			Text: "the item's jid must be a valid bare JID"}
	}
	item := storage.RosterItem{Contact: contact.String(), Name: el.Get("name")}
	if el.Get("subscription") == "remove" {
		item.Subscription = "remove"
		return item, nil
	}
	if len(item.Name) > MaxNameBytes {
		return storage.RosterItem{}, notAcceptable(fmt.Sprintf("the name is longer than %d bytes", MaxNameBytes))
	}
	var groupErr error
	el.Children(func(g *stanza.Element) bool {
		if g.Name != (stanza.Name{Space: rosterstate.NS, Local: "group"}) {
			return true
		}
		name := g.Text()
		switch {
		case name == "":
			groupErr = notAcceptable("a group name is empty")
		case len(name) > MaxGroupBytes:
			groupErr = notAcceptable(fmt.Sprintf("a group name is longer than %d bytes", MaxGroupBytes))
		default:
			for _, seen := range item.Groups {
				if seen == name {
					groupErr = stanza.ErrBadRequest("the item names a group twice")
				}
			}
			item.Groups = append(item.Groups, name)
		}
		return groupErr == nil
	})
	if groupErr != nil {
		return storage.RosterItem{}, groupErr
	}
	return item, nil
}

func notAcceptable(text string) stanza.Error {
	return stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable, Text: text}
}

package rosterstate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"sync"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

// Namespaces of RFC 6121 §2: the roster and its versioning stream feature.
const (
	NS           = "jabber:iq:roster"
	NSVersioning = "urn:xmpp:features:rosterver" // §2.6.1
)

// locks serialise the read-modify-write of one owner's roster entry. The
// roster and presence modules both change items (a roster set keeps the
// subscription; a subscription stanza keeps name and groups), in the
// sessions' reader goroutines, and storage.Roster has no compare-and-set.
// A fixed array of mutexes, chosen by a hash of the owner, holds no
// instance state and needs no cleanup.
//
// Lock order: hold at most one of them, and only around store calls: never
// while routing a stanza (routing may process the contact's roster, which
// may hash to the same mutex).
var locks [64]sync.Mutex

// Lock locks owner's roster and returns the unlock function.
func Lock(owner jid.JID) (unlock func()) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(owner.String()))
	mu := &locks[h.Sum32()%uint32(len(locks))]
	mu.Lock()
	return mu.Unlock
}

// Entry is what the owner's server knows about one contact: the roster item
// (if any) and whether a subscription request from the contact is stored.
type Entry struct {
	Item     storage.RosterItem
	InRoster bool
	Pending  bool // a stored subscription request from the contact
	State    State
}

// Load reads owner's entry for contact. Call it under Lock(owner) when the
// entry is going to be changed.
func Load(ctx context.Context, st storage.Roster, owner, contact jid.JID) (Entry, error) {
	e := Entry{Item: storage.RosterItem{Contact: contact.String(), Subscription: storage.SubNone}}
	item, err := st.RosterItem(ctx, owner.String(), contact.String())
	switch {
	case err == nil:
		e.Item, e.InRoster = item, true
	case !errors.Is(err, storage.ErrNotFound):
		return Entry{}, fmt.Errorf("rosterstate: load %s: %w", contact, err)
	}
	reqs, err := st.SubscriptionRequests(ctx, owner.String())
	if err != nil {
		return Entry{}, fmt.Errorf("rosterstate: load %s: %w", contact, err)
	}
	for _, r := range reqs {
		if r.From == e.Item.Contact {
			e.Pending = true
			break
		}
	}
	e.State = Of(e.Item.Subscription, e.Item.AskOut, e.Pending)
	return e, nil
}

// Apply stores the move of e to state next: the roster item's subscription
// and ask (creating the item if the new state needs one), and the stored
// request (request is the inbound subscribe, serialised, for a move into
// PendingIn). It reports whether the item changed and, if so, the new
// roster version, so that the caller can push the item.
func (e *Entry) Apply(ctx context.Context, st storage.Roster, owner jid.JID, next State, request []byte) (changed bool, ver int64, err error) {
	switch {
	case next.PendingIn() && !e.Pending:
		err = st.PutSubscriptionRequest(ctx, owner.String(), storage.SubscriptionRequest{From: e.Item.Contact, Stanza: request})
		e.Pending = true
	case !next.PendingIn() && e.Pending:
		err = st.DeleteSubscriptionRequest(ctx, owner.String(), e.Item.Contact)
		e.Pending = false
	}
	if err != nil {
		return false, 0, fmt.Errorf("rosterstate: %s: %w", e.Item.Contact, err)
	}
	sub, ask := next.Subscription(), next.PendingOut()
	needed := e.InRoster || sub != storage.SubNone || ask
	if !needed || (e.InRoster && e.Item.Subscription == sub && e.Item.AskOut == ask) {
		e.State = next
		return false, 0, nil
	}
	e.Item.Subscription, e.Item.AskOut = sub, ask
	if ver, err = st.PutRosterItem(ctx, owner.String(), e.Item); err != nil {
		return false, 0, fmt.Errorf("rosterstate: %s: %w", e.Item.Contact, err)
	}
	e.InRoster, e.State = true, next
	return true, ver, nil
}

// Item renders a roster item as a roster result or push carries it
// (§2.1.2).
func Item(it storage.RosterItem) *stanza.Element {
	sub := it.Subscription
	if sub == "" {
		sub = storage.SubNone
	}
	el := stanza.New(NS, "item").Set("jid", it.Contact).Set("name", it.Name).Set("subscription", string(sub))
	if it.AskOut {
		el.Set("ask", "subscribe")
	}
	for _, g := range it.Groups {
		el.Append(stanza.New(NS, "group").AppendText(g))
	}
	return el
}

// Removed renders the push of a removed item (§2.5.2).
func Removed(contact string) *stanza.Element {
	return stanza.New(NS, "item").Set("jid", contact).Set("subscription", "remove")
}

// Version renders a roster version as the 'ver' attribute carries it.
func Version(v int64) string { return strconv.FormatInt(v, 10) }

// interestKey keys a resource's interest in roster pushes (its value is an
// interest).
type interestKey struct{}

type interest struct {
	versioned bool // the roster get carried 'ver' (§2.6): pushes carry it too
}

// SetInterested records that r requested the roster in this session, which
// makes it an "interested resource" (§2.2) that gets roster pushes.
// versioned says whether it uses roster versioning.
func SetInterested(r module.Resource, versioned bool) {
	r.SetValue(interestKey{}, interest{versioned: versioned})
}

// Interested reports whether r requested the roster in this session.
func Interested(r module.Resource) bool {
	_, ok := r.Value(interestKey{}).(interest)
	return ok
}

// Push sends a roster push (§2.1.6) of item at version ver to every
// interested resource among rs.
func Push(rs []module.Resource, item *stanza.Element, ver int64) {
	var plain, versioned *stanza.Element
	for _, r := range rs {
		in, ok := r.Value(interestKey{}).(interest)
		if !ok {
			continue
		}
		q := &plain
		if in.versioned {
			q = &versioned
		}
		if *q == nil {
			*q = stanza.New(NS, "query").Append(item)
			if in.versioned {
				(*q).Set("ver", Version(ver))
			}
		}
		r.Send(stanza.NewIQ(jid.JID{}, r.JID(), "set", pushID(), *q))
	}
}

func pushID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "push-" + hex.EncodeToString(b[:])
}

// SharePresence sends the current presence of each of owner's available
// resources to contact, as the server does when it starts a subscription
// (§3.1.5).
func SharePresence(ctx context.Context, h module.Host, owner, contact jid.JID) {
	for _, r := range h.Resources(owner) {
		if p := r.Presence(); p != nil {
			h.Route(ctx, p.Readdress(r.JID(), contact))
		}
	}
}

// WithdrawPresence sends unavailable presence from each of owner's
// available resources to contact, as the server does when a subscription
// ends (§3.2.2, §3.3.3).
func WithdrawPresence(ctx context.Context, h module.Host, owner, contact jid.JID) {
	for _, r := range h.Resources(owner) {
		if r.Presence() != nil {
			h.Route(ctx, stanza.NewPresence(r.JID(), contact, "unavailable"))
		}
	}
}

// Contacts returns the contacts of the items whose state passes keep (for
// example State.HasFrom: the subscribers). Items whose stored JID does not
// parse are skipped: they cannot be addressed.
func Contacts(items []storage.RosterItem, keep func(State) bool) []jid.JID {
	var out []jid.JID
	for _, it := range items {
		if !keep(Of(it.Subscription, it.AskOut, false)) {
			continue
		}
		if j, err := jid.Parse(it.Contact); err == nil {
			out = append(out, j)
		}
	}
	return out
}

// SharesPresence reports whether requester may see owner's presence: it is
// the owner itself, or owner's roster has requester with subscription 'from'
// or 'both' (RFC 6121 §2.1.2.5). Account disco and last activity answer only
// such requesters.
func SharesPresence(ctx context.Context, st storage.Roster, owner, requester jid.JID) (bool, error) {
	if requester.IsZero() || owner.IsZero() {
		return false, nil
	}
	if requester.Bare() == owner.Bare() {
		return true, nil
	}
	item, err := st.RosterItem(ctx, owner.Bare().String(), requester.Bare().String())
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("rosterstate: roster of %s: %w", owner, err)
	}
	return item.Subscription == storage.SubFrom || item.Subscription == storage.SubBoth, nil
}

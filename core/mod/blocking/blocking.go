// Package blocking implements XEP-0191 Blocking Command: a user's
// blocklist (get, block, unblock, unblock all), kept in the store per
// owner (storage.Blocklist), pushed to the user's interested resources, and
// enforced by the server in both directions.
//
// # The list
//
// IQs with <blocklist/>, <block/> and <unblock/> (urn:xmpp:blocking) are
// answered for the account itself only, from one of its own sessions;
// anyone else gets forbidden. Blocked JIDs are stored in canonical form
// (RFC 7622), in any of the four forms of XEP-0191 §6. A block without
// items is bad-request, an item whose jid does not parse is jid-malformed,
// and an item naming the account itself (its bare JID or one of its
// resources) is not-acceptable: communication between a user's own
// resources is never blocked (XEP-0191 §5). A list holds at most max_items
// JIDs; a block that would exceed it adds nothing and gets
// policy-violation. Children of an item (XEP-0377 reports) are ignored.
//
// A resource that asked for the blocklist is an interested resource for
// the rest of its session (like roster pushes, RFC 6121 §2.2): every block
// and unblock, from any of the user's resources, is pushed to it as an IQ
// set carrying the items of the request (an empty <unblock/> for unblock
// all), before the request is answered.
//
// # Matching
//
// A blocked JID matches an address by the rules of XEP-0191 §6, tried in
// XEP-0016's order on forms derived from the address: the full JID itself
// (only that resource), the bare JID (every resource), domain/resource (that
// resource of any address at the domain, as XEP-0016 servers read it), and
// the domain (the domain itself and every address at it; not subdomains,
// since version 1.3).
//
// # Enforcement
//
// Two Filter-phase hooks run before any other module sees a stanza:
//
//   - Outbound: a stanza a user's client sends to a blocked JID is not
//     routed; the client gets a not-acceptable error with the application
//     condition <blocked xmlns='urn:xmpp:blocking:errors'/> (XEP-0191 §3.3).
//     The error goes straight to the sending session, so that it is not
//     itself filtered as a stanza from a blocked JID.
//   - Inbound: a stanza from a blocked JID to the user is not delivered:
//     presence of any type (subscriptions and probes included) and IQ
//     results and errors are dropped silently, messages and IQ get and set
//     get service-unavailable (no text, the answer for an account that does
//     not exist), error messages are dropped. The same hook also stops what
//     the server routes on a user's behalf (presence broadcasts, probe
//     answers, unavailable presence when a session ends; everything without
//     a client session as origin except errors) to a JID the user blocked.
//     Errors pass, so that the refusals above reach the blocked sender.
//
// Stanzas between a user's own resources, and from or to the user's own
// server (the host's domain itself), are never blocked, whatever the list
// says: blocking one's own domain blocks every other account of it, not
// the server the session depends on.
//
// Only stanzas between local entities can be filtered today: the server
// does not federate (core/router's Remote), and what the server routes on a
// user's behalf to another domain does not pass an Inbound chain.
//
// # Presence on block and unblock
//
// When JIDs are blocked, each of the user's available resources sends
// unavailable presence to those of them allowed to see its presence (RFC
// 6121): contacts subscribed to the user (subscription from or both) and
// entities the resource sent directed available presence to (tracked
// here, in the Outbound Observe phase). The user's own resources get
// unavailable presence from the blocked contacts the user is subscribed
// to (from each of their available resources, or from the blocked address
// for contacts of other domains), so that clients show them offline. This
// presence is handed to local sessions directly rather than routed,
// because the filters now rightly stop anything between the two; an
// entity that blocks the user in turn gets none.
//
// When JIDs are unblocked, the same entities get the current presence of
// the user's available resources again, and the user probes the contacts
// it is subscribed to, so that their presence comes back; both are routed
// as usual. Entities still blocked by what remains in the list are
// skipped.
//
// # Cost
//
// The filters run for every stanza. Lists live in a per-host cache (see
// cache): after an owner's first stanza, a check is a read-locked map
// lookup and at most four lookups in the owner's set, without allocation.
// When the store fails, the filters fail closed: the stanza is refused
// with internal-server-error rather than delivered unchecked (errors
// excepted, so that the user hears of the refusal). A list is cached by
// the module of its owner's host; a check for a user of another virtual
// host of the same server (a presence broadcast between two local
// domains) reads the store. Lists changed by another server sharing the
// database are seen when the owner next logs in, or when the entry is
// evicted.
//
// # Options
//
// max_items (default 1000) bounds each blocklist. cache_size (default
// 100000) bounds how many owners' lists are cached.
package blocking

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

// ID is the module's configuration key.
const ID = "blocking"

// Namespaces of XEP-0191.
const (
	NS       = "urn:xmpp:blocking"
	NSErrors = "urn:xmpp:blocking:errors"
)

// Defaults and bounds of the options.
const (
	DefaultMaxItems  = 1000
	DefaultCacheSize = 100_000
	maxMaxItems      = 100_000
	maxCacheSize     = 10_000_000
)

func init() {
	module.Register(module.Info{
		ID:          ID,
		Description: "Blocking command: per-user blocklists, enforced by the server in both directions",
		Specs: []module.Spec{
			{ID: "XEP-0191", Name: "Blocking Command", Version: "1.3", Status: module.Complete,
				Note: "enforced for local entities; the server does not federate yet"},
		},
		Default: true,
		New:     func() module.Module { return &Module{opts: DefaultOptions()} },
	})
}

// Options configure the module.
type Options struct {
	// MaxItems bounds the JIDs one blocklist holds.
	MaxItems int `mapstructure:"max_items"`
	// CacheSize bounds the owners whose lists are kept in memory.
	CacheSize int `mapstructure:"cache_size"`
}

// DefaultOptions returns the defaults.
func DefaultOptions() Options {
	return Options{MaxItems: DefaultMaxItems, CacheSize: DefaultCacheSize}
}

// Validate checks the bounds.
func (o *Options) Validate() error {
	if o.MaxItems < 1 || o.MaxItems > maxMaxItems {
		return fmt.Errorf("blocking: max_items must be between 1 and %d, got %d", maxMaxItems, o.MaxItems)
	}
	if o.CacheSize < 1 || o.CacheSize > maxCacheSize {
		return fmt.Errorf("blocking: cache_size must be between 1 and %d, got %d", maxCacheSize, o.CacheSize)
	}
	return nil
}

// Module is the blocking module of one virtual host.
type Module struct {
	opts   Options
	host   module.Host
	domain jid.JID
	store  storage.Blocklist
	roster storage.Roster
	log    *slog.Logger
	cache  *cache
}

var _ module.Configurable = (*Module)(nil)

// Options returns the module's options, filled with defaults.
func (m *Module) Options() any { return &m.opts }

// Element names of the protocol.
var (
	nameBlocklist = stanza.Name{Space: NS, Local: "blocklist"}
	nameBlock     = stanza.Name{Space: NS, Local: "block"}
	nameUnblock   = stanza.Name{Space: NS, Local: "unblock"}
	nameItem      = stanza.Name{Space: NS, Local: "item"}
)

// Provision declares the IQ handlers, the filters and the disco feature.
func (m *Module) Provision(h module.Host) error {
	st, ok := h.Store().(storage.Blocklist)
	if !ok {
		return errors.New("blocking: the host's store does not keep blocklists")
	}
	m.host, m.domain, m.store, m.roster, m.log = h, h.Domain(), st, h.Store(), h.Logger()
	m.cache = newCache(m.opts.CacheSize)
	h.HandleIQ(module.ToAccount, module.Get, nameBlocklist, m.get)
	h.HandleIQ(module.ToAccount, module.Set, nameBlock, m.block)
	h.HandleIQ(module.ToAccount, module.Set, nameUnblock, m.unblock)
	h.Hook(module.Outbound, module.Filter, m.outbound)
	h.Hook(module.Inbound, module.Filter, m.inbound)
	h.Hook(module.Outbound, module.Observe, m.trackDirected)
	h.On(module.SessionBound, m.bound)
	h.AddDisco(module.ToHost, module.Disco{Features: []string{NS}})
	return nil
}

// bound reloads an owner's list when its first session binds, and reads
// it into the cache at once, so that an account that is online keeps
// chatting while the database is unreachable (a failure here is logged;
// the first stanza that needs the list tries again).
func (m *Module) bound(ctx context.Context, ev module.Event) {
	own := ev.Resource.JID().Bare()
	if len(m.host.Resources(own)) == 1 {
		m.cache.drop(own.String())
	}
	if _, err := m.list(ctx, own); err != nil {
		m.host.Logger().WarnContext(ctx, "blocklist not loaded at login", "owner", own.String(), "err", err)
	}
}

// list returns owner's blocklist: from the cache for an account of this
// host, from the store for any other.
func (m *Module) list(ctx context.Context, owner jid.JID) (*list, error) {
	key := owner.String()
	if owner.Domain() != m.domain.String() {
		jids, err := m.store.BlockedJIDs(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("blocking: read blocklist: %w", err)
		}
		return newList(jids), nil
	}
	l, ok, gen := m.cache.lookup(key)
	if ok {
		return l, nil
	}
	jids, err := m.store.BlockedJIDs(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("blocking: read blocklist: %w", err)
	}
	l = newList(jids)
	m.cache.put(key, l, gen)
	return l, nil
}

// interestKey marks a resource that requested the blocklist (its value is
// true).
type interestKey struct{}

func interested(r module.Resource) bool {
	v, _ := r.Value(interestKey{}).(bool)
	return v
}

// owner returns the account whose blocklist iq is about, and refuses
// anyone but that account's own sessions.
func owner(iq *module.IQ) (jid.JID, error) {
	own := iq.From.Bare()
	if iq.Origin == nil || own.IsZero() || (!iq.To.IsZero() && iq.To != own) {
		return jid.JID{}, stanza.ErrForbidden("only the account itself may use its blocklist")
	}
	return own, nil
}

// get answers a blocklist request (XEP-0191 §3.2) and makes the sender an
// interested resource.
func (m *Module) get(ctx context.Context, iq *module.IQ) (*stanza.Element, error) {
	own, err := owner(iq)
	if err != nil {
		return nil, err
	}
	// Interested first: a change that lands between the read and the
	// answer is pushed, rather than lost.
	iq.Origin.SetValue(interestKey{}, true)
	jids, err := m.store.BlockedJIDs(ctx, own.String())
	if err != nil {
		return nil, fmt.Errorf("blocking: get: %w", err)
	}
	res := stanza.New(NS, "blocklist")
	for _, j := range jids {
		res.Append(stanza.New(NS, "item").Set("jid", j))
	}
	return res, nil
}

// items parses the items of a block or unblock: canonical, each once. An
// item naming self (unless zero) is not-acceptable.
func items(el *stanza.Element, self jid.JID) ([]jid.JID, error) {
	var (
		out  []jid.JID
		seen = map[jid.JID]bool{}
		bad  error
	)
	el.Children(func(c *stanza.Element) bool {
		if c.Name != nameItem {
			return true
		}
		j, err := jid.Parse(c.Get("jid"))
		switch {
		case err != nil:
			bad = stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed,
				Text: "an item's jid is not a valid JID"}
		case !self.IsZero() && j.Bare() == self:
			bad = stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable,
				Text: "an account cannot block itself"}
		case !seen[j]:
			seen[j] = true
			out = append(out, j)
		}
		return bad == nil
	})
	return out, bad
}

func strs(js []jid.JID) []string {
	out := make([]string, len(js))
	for i, j := range js {
		out[i] = j.String()
	}
	return out
}

func jids(ss []string) []jid.JID {
	out := make([]jid.JID, 0, len(ss))
	for _, s := range ss {
		if j, err := jid.Parse(s); err == nil {
			out = append(out, j)
		}
	}
	return out
}

// block adds JIDs to the list (XEP-0191 §3.3).
func (m *Module) block(ctx context.Context, iq *module.IQ) (*stanza.Element, error) {
	own, err := owner(iq)
	if err != nil {
		return nil, err
	}
	js, err := items(iq.Payload(), own)
	if err != nil {
		return nil, err
	}
	if len(js) == 0 {
		return nil, stanza.ErrBadRequest("a block needs at least one item")
	}
	if len(js) > m.opts.MaxItems {
		return nil, tooMany(m.opts.MaxItems)
	}
	added, err := m.store.BlockJIDs(ctx, own.String(), strs(js), m.opts.MaxItems)
	switch {
	case errors.Is(err, storage.ErrQuotaExceeded):
		return nil, tooMany(m.opts.MaxItems)
	case err != nil:
		return nil, fmt.Errorf("blocking: block: %w", err)
	}
	m.cache.invalidate(own.String())
	m.push(own, itemsElement("block", js))
	if len(added) > 0 {
		m.blocked(ctx, own, jids(added))
	}
	return nil, nil
}

func tooMany(n int) stanza.Error {
	return stanza.Error{Type: stanza.Modify, Condition: stanza.PolicyViolation,
		Text: fmt.Sprintf("a blocklist holds at most %d JIDs", n)}
}

// unblock removes JIDs from the list, or all of them (XEP-0191 §3.4,
// §3.5).
func (m *Module) unblock(ctx context.Context, iq *module.IQ) (*stanza.Element, error) {
	own, err := owner(iq)
	if err != nil {
		return nil, err
	}
	// No self check here: an item naming the account cannot be in the
	// list, and unblocking it changes nothing.
	js, err := items(iq.Payload(), jid.JID{})
	if err != nil {
		return nil, err
	}
	var removed []string
	if len(js) == 0 {
		removed, err = m.store.UnblockAllJIDs(ctx, own.String())
	} else {
		removed, err = m.store.UnblockJIDs(ctx, own.String(), strs(js))
	}
	if err != nil {
		return nil, fmt.Errorf("blocking: unblock: %w", err)
	}
	m.cache.invalidate(own.String())
	m.push(own, itemsElement("unblock", js))
	if len(removed) > 0 {
		m.unblocked(ctx, own, jids(removed))
	}
	return nil, nil
}

// itemsElement builds the payload of a push.
func itemsElement(local string, js []jid.JID) *stanza.Element {
	el := stanza.New(NS, local)
	for _, j := range js {
		el.Append(stanza.New(NS, "item").Set("jid", j.String()))
	}
	return el
}

// push sends a block or unblock push to the owner's interested resources.
// The payload is shared: sessions only serialise it.
func (m *Module) push(own jid.JID, payload *stanza.Element) {
	for _, r := range m.host.Resources(own) {
		if interested(r) {
			r.Send(stanza.NewIQ(jid.JID{}, r.JID(), "set", pushID(), payload))
		}
	}
}

func pushID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "block-" + hex.EncodeToString(b[:])
}

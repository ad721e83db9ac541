// Package offline implements XEP-0160 best practices for offline messages:
// a message for an account that no resource can receive is stored, sealed,
// and delivered when the account next sends available presence with a
// non-negative priority.
//
// # What is stored
//
// A Deliver-phase hook on the Inbound chain takes a message when the router
// found no resource for it (Packet.Targets is empty), it is addressed to an
// existing local account (its bare JID, or a full JID whose resource is
// gone: RFC 6121 §8.5.3.2.1 treats chat and normal messages to those as
// sent to the bare JID), and it is worth storing (XEP-0160 §3):
//
//   - type normal (or none) and chat only: headline, groupchat and error
//     messages are never stored; the router drops or bounces them as RFC
//     6121 says.
//   - a message needs content: a non-empty body or subject, or any child
//     that is not mere metadata (receipts, chat markers, encrypted
//     payloads, invitations, out-of-band data... all count, so that the
//     sender learns about delivery when the recipient comes back). Chat
//     state notifications (XEP-0085), message ids (XEP-0359), threads and
//     hints alone are not stored (XEP-0160 §3: chat messages with only chat
//     state content SHOULD NOT be stored).
//   - XEP-0334 hints: <no-store/> keeps the message out of offline storage
//     and wins over <store/>; <store/> stores a message that would not be
//     stored for lack of content (but never one of a type that is not
//     stored). <no-permanent-store/> does not prevent offline storage,
//     which is temporary (XEP-0334 §4.1).
//
// A message that is not stored goes on to the router, which returns
// service-unavailable to the sender (RFC 6121 §8.5.2.1.1).
//
// The stored copy is the message with a XEP-0203 delay element (from the
// host's domain, stamped with the time of storage, "Offline Storage" as
// text), added to a clone: the router's stanza is never changed. Delay
// elements in the incoming message that claim to come from this host are
// removed from the copy, so that a sender cannot forge the server's
// timestamp. The copy is serialised and sealed with the host's Sealer; the
// store only ever sees the sealed bytes. The associated data binds the owner
// (the Sealer's owner argument) and the row's clear metadata, the sender and
// the stamp, so that a row moved to another owner, or whose sender or time
// was altered, fails to open. The store's row id cannot be bound: it is
// assigned after sealing.
//
// When the owner already has max_per_user messages, the message is not
// stored and the sender gets service-unavailable with the text "the
// recipient's offline storage is full" (XEP-0160 §2).
//
// # Delivery
//
// When a resource of the owner becomes available with a priority of zero
// or more (module.SessionAvailable), or raises a negative priority to zero
// or more (seen on its presence broadcast, in the Outbound Observe phase),
// the owner's messages are opened and sent to that resource, oldest first,
// and deleted. A per-owner lock makes sure that two resources coming online
// at once do not both get them: the first takes all. The storing hook takes
// the same lock and, under it, checks again whether a resource became
// available since the router chose the targets; if one did, the message is
// delivered to it instead of being stored, so that no message is stranded
// in storage while its owner is online.
//
// A message that cannot be opened is kept and skipped: the likely cause is
// a key provider that is unavailable for a while, and deleting would
// destroy messages that a later login could still read (rows whose key was
// destroyed on purpose are erased with the account). A message that opens
// but does not parse, or is not a message, is deleted: its plaintext was
// written by this module and will never parse. Both are logged with the
// owner and the row id, never the content.
//
// Delivery only queues the messages on the session. A session that breaks
// before its queue is written loses them, unless stream management
// resends or stores what the client did not acknowledge.
//
// # Options
//
// enabled (default true) turns storing on; when off, messages stored
// earlier are still delivered, and msgoffline is not announced.
// max_per_user (default 500) bounds each account's storage: delivery sends
// them all at once into a session's bounded outbound queue (1024 stanzas by
// default in core/session), next to the presence of every contact at login,
// so the bound must stay well below that queue.
//
// Out of scope: XEP-0013 flexible offline message retrieval; clients that
// need more than "everything at login" use the archive (XEP-0313).
package offline

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/xmlstream"
)

// Feature is the XEP-0160 disco feature.
const Feature = "msgoffline"

// Namespaces this module reads.
const (
	nsHints      = "urn:xmpp:hints"                        // XEP-0334
	nsChatStates = "http://jabber.org/protocol/chatstates" // XEP-0085
	nsStanzaID   = "urn:xmpp:sid:0"                        // XEP-0359
)

// DefaultMaxPerUser is the default bound on an account's stored messages
// (see the package documentation).
const DefaultMaxPerUser = 500

// maxMaxPerUser bounds max_per_user, to catch typos.
const maxMaxPerUser = 100_000

// batch is how many messages one delivery reads from the store at a time.
const batch = 100

func init() {
	module.Register(module.Info{
		ID:          "offline",
		Description: "Offline messages: stores messages for users who are not online, sealed, and delivers them at their next login",
		Specs: []module.Spec{
			{ID: "XEP-0160", Name: "Best Practices for Handling Offline Messages", Version: "1.0.1", Status: module.Complete,
				Note: "XEP-0013 flexible offline message retrieval is not implemented"},
			{ID: "XEP-0203", Name: "Delayed Delivery", Version: "2.0", Status: module.Complete,
				Note: "added to messages delivered from offline storage"},
			{ID: "XEP-0334", Name: "Message Processing Hints", Version: "1.0.0", Status: module.Partial,
				Note: "store and no-store are honoured by offline storage"},
		},
		Default: true,
		New:     func() module.Module { return &Module{opts: DefaultOptions()} },
	})
}

// Options configure the module.
type Options struct {
	// Enabled turns storing on.
	Enabled bool `mapstructure:"enabled"`
	// MaxPerUser bounds the messages stored for one account.
	MaxPerUser int `mapstructure:"max_per_user"`
}

// DefaultOptions returns the defaults.
func DefaultOptions() Options { return Options{Enabled: true, MaxPerUser: DefaultMaxPerUser} }

// Validate checks the bounds.
func (o *Options) Validate() error {
	if o.MaxPerUser < 1 || o.MaxPerUser > maxMaxPerUser {
		return fmt.Errorf("offline: max_per_user must be between 1 and %d, got %d", maxMaxPerUser, o.MaxPerUser)
	}
	return nil
}

// Module is the offline module of one virtual host.
type Module struct {
	opts   Options
	host   module.Host
	sealer module.Sealer
	now    func() time.Time

	// Lock order: mu guards the owners table only and is never held while
	// waiting for an owner's lock. An owner's lock is held while calling
	// the store, the sealer, Host.Resources and Resource.Send, none of
	// which call back into this module.
	mu     sync.Mutex
	owners map[string]*ownerLock
}

type ownerLock struct {
	mu   sync.Mutex
	refs int // guarded by Module.mu
}

var _ module.Configurable = (*Module)(nil)

// Options returns the module's options, filled with defaults.
func (m *Module) Options() any { return &m.opts }

// Provision declares the hooks, the events and the disco feature.
func (m *Module) Provision(h module.Host) error {
	m.host = h
	m.sealer = h.Sealer()
	m.now = time.Now
	m.owners = map[string]*ownerLock{}
	if m.sealer == nil {
		if m.opts.Enabled {
			return errors.New("offline: the host has no sealer, and messages are never stored in the clear")
		}
		return nil
	}
	if m.opts.Enabled {
		h.Hook(module.Inbound, module.Deliver, m.take)
		h.AddDisco(module.ToHost, module.Disco{Features: []string{Feature}})
	}
	h.On(module.SessionAvailable, func(ctx context.Context, ev module.Event) { m.presenceChanged(ctx, ev.Resource) })
	h.On(module.SessionUnavailable, func(ctx context.Context, ev module.Event) { m.presenceChanged(ctx, ev.Resource) })
	h.Hook(module.Outbound, module.Observe, m.presenceSent)
	return nil
}

// lock takes the owner's lock and returns its release.
func (m *Module) lock(owner string) (unlock func()) {
	m.mu.Lock()
	l := m.owners[owner]
	if l == nil {
		l = &ownerLock{}
		m.owners[owner] = l
	}
	l.refs++
	m.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		m.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(m.owners, owner)
		}
		m.mu.Unlock()
	}
}

// storable reports whether a message is worth storing (see the package
// documentation).
func storable(s *stanza.Stanza) bool {
	switch s.Type {
	case "", "normal", "chat":
	default:
		return false
	}
	var store, noStore, content bool
	s.El.Children(func(c *stanza.Element) bool {
		switch c.Name.Space {
		case nsHints:
			switch c.Name.Local {
			case "store":
				store = true
			case "no-store":
				noStore = true
			}
		case nsChatStates, nsStanzaID, stanza.NSDelay:
			// Metadata: not content on its own.
		case stanza.NSClient:
			if (c.Name.Local == "body" || c.Name.Local == "subject") && c.Text() != "" {
				content = true
			}
		default:
			content = true
		}
		return true
	})
	return !noStore && (store || content)
}

// eligible returns the resources that may receive a chat or normal message
// to the bare JID: the available ones with the highest non-negative
// priority (RFC 6121 §8.5.2.1.1), as the router chooses them.
func eligible(list []module.Resource) []module.Resource {
	best := -1
	var out []module.Resource
	for _, r := range list {
		if r.Presence() == nil {
			continue
		}
		switch p := r.Priority(); {
		case p < 0 || p < best:
		case p > best:
			best, out = p, append(out[:0], r)
		default:
			out = append(out, r)
		}
	}
	return out
}

// take is the Deliver hook that stores what nobody can receive.
func (m *Module) take(ctx context.Context, p *module.Packet) (module.Verdict, error) {
	s := p.Stanza
	if s.Kind != stanza.KindMessage || len(p.Targets) > 0 || !p.AccountExists ||
		(p.Target != module.ToAccount && p.Target != module.ToResource) || !storable(s) {
		return module.Continue, nil
	}
	owner := s.To.Bare()
	if s.To.IsZero() {
		if p.Origin == nil {
			return module.Continue, nil
		}
		owner = p.Origin.JID().Bare()
	}
	unlock := m.lock(owner.String())
	defer unlock()
	// A resource may have become available since the router chose the
	// targets; its delivery has run already (or waits for this lock and
	// will find the message), so give the message to it now.
	if t := eligible(m.host.Resources(owner)); len(t) > 0 {
		p.Targets = t
		return module.Continue, nil
	}
	err := m.save(ctx, owner, s)
	switch {
	case errors.Is(err, storage.ErrQuotaExceeded):
		return module.Drop, stanza.ErrServiceUnavailable("the recipient's offline storage is full")
	case err != nil:
		return module.Drop, err
	}
	return module.Done, nil
}

// AssociatedData is what an offline message's sealed stanza is bound to
// besides its owner: the sender and the stamp of the stored row. Whoever
// stores an offline message without this module (the server's own notices,
// written by the CLI) seals it with these bytes so that delivery opens it.
func AssociatedData(from string, stamp time.Time) []byte { return associatedData(from, stamp) }

// associatedData is what a stored message's seal binds besides the owner:
// the row's clear metadata.
func associatedData(from string, stamp time.Time) []byte {
	b := make([]byte, 0, 32+len(from))
	b = append(b, "kontor offline v1\x00"...)
	b = append(b, from...)
	b = append(b, 0)
	return strconv.AppendInt(b, stamp.UnixMicro(), 10)
}

// stampFormat is XEP-0082 DateTime in UTC with milliseconds.
const stampFormat = "2006-01-02T15:04:05.000Z"

// save seals and stores a copy of s with a delay element.
func (m *Module) save(ctx context.Context, owner jid.JID, s *stanza.Stanza) error {
	// The stores keep microseconds; the stamp is bound as it will be read
	// back.
	stamp := m.now().UTC().Truncate(time.Microsecond)
	domain := m.host.Domain().String()
	c := s.El.Clone()
	out := c.Nodes[:0]
	for _, n := range c.Nodes {
		if n.Elem != nil && n.Elem.Name == (stanza.Name{Space: stanza.NSDelay, Local: "delay"}) && n.Elem.Get("from") == domain {
			continue
		}
		out = append(out, n)
	}
	c.Nodes = out
	c.Append(stanza.New(stanza.NSDelay, "delay").Set("from", domain).Set("stamp", stamp.Format(stampFormat)).
		AppendText("Offline Storage"))

	from := s.From.String()
	sealed, err := m.sealer.Seal(owner.String(), associatedData(from, stamp), c.AppendXML(nil, ""))
	if err != nil {
		return fmt.Errorf("offline: seal: %w", err)
	}
	_, err = m.host.Store().StoreOffline(ctx, storage.OfflineMessage{Owner: owner.String(), From: from, Stamp: stamp, Sealed: sealed},
		m.opts.MaxPerUser)
	if err != nil {
		return fmt.Errorf("offline: store: %w", err)
	}
	return nil
}

// eligibleKey holds, per resource, whether it could receive offline
// messages the last time this module looked (available, priority >= 0).
type eligibleKey struct{}

// presenceSent sees a client's presence broadcast after the presence
// module recorded it, to catch a priority raised from negative.
func (m *Module) presenceSent(ctx context.Context, p *module.Packet) (module.Verdict, error) {
	s := p.Stanza
	if s.Kind == stanza.KindPresence && s.Type == "" && s.To.IsZero() && p.Origin != nil {
		m.presenceChanged(ctx, p.Origin)
	}
	return module.Continue, nil
}

// presenceChanged delivers the owner's messages when r becomes able to
// receive them. Calls for one resource come from its own session's reader,
// one at a time.
func (m *Module) presenceChanged(ctx context.Context, r module.Resource) {
	now := r.Presence() != nil && r.Priority() >= 0
	was, _ := r.Value(eligibleKey{}).(bool)
	if now == was {
		return
	}
	r.SetValue(eligibleKey{}, now)
	if now {
		m.deliver(ctx, r)
	}
}

// errOpen marks a message that does not open.
var errOpen = errors.New("offline: sealed message does not open")

// deliver sends the owner's stored messages to r and deletes them.
func (m *Module) deliver(ctx context.Context, r module.Resource) {
	owner := r.JID().Bare().String()
	log := m.host.Logger()
	unlock := m.lock(owner)
	defer unlock()
	kept := map[int64]bool{} // rows that do not open, skipped
	for {
		want := len(kept) + batch
		msgs, err := m.host.Store().OfflineMessages(ctx, owner, want)
		if err != nil {
			log.ErrorContext(ctx, "cannot read offline messages", "owner", owner, "err", err)
			return
		}
		var done []int64
		fresh := 0
		for _, msg := range msgs {
			if kept[msg.ID] {
				continue
			}
			fresh++
			s, err := m.open(msg)
			switch {
			case errors.Is(err, errOpen):
				log.WarnContext(ctx, "offline message does not open; kept", "owner", owner, "id", msg.ID, "err", err)
				kept[msg.ID] = true
				continue
			case err != nil:
				log.ErrorContext(ctx, "offline message is corrupt; deleted", "owner", owner, "id", msg.ID, "err", err)
			default:
				r.Send(s)
			}
			done = append(done, msg.ID)
		}
		if len(done) > 0 {
			if err := m.host.Store().DeleteOffline(ctx, owner, done); err != nil {
				log.ErrorContext(ctx, "cannot delete delivered offline messages", "owner", owner, "err", err)
				return
			}
		}
		// Each round deletes or skips at least one message, or ends.
		if len(msgs) < want || fresh == 0 {
			return
		}
	}
}

// open unseals and parses a stored message.
func (m *Module) open(msg storage.OfflineMessage) (*stanza.Stanza, error) {
	plain, err := m.sealer.Open(msg.Owner, associatedData(msg.From, msg.Stamp), msg.Sealed)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errOpen, err)
	}
	el, err := parseElement(plain)
	if err != nil {
		return nil, fmt.Errorf("offline: stored message does not parse: %w", err)
	}
	s, err := stanza.Parse(el)
	if err != nil || s.Kind != stanza.KindMessage {
		return nil, fmt.Errorf("offline: stored element is not a message: %v", err)
	}
	return s, nil
}

// parseElement parses one element serialised by Element.AppendXML, with
// the restrictions the stream reader applies to what clients send.
func parseElement(b []byte) (*stanza.Element, error) {
	return xmlstream.ParseElement(b, xmlstream.Limits{MaxStanzaBytes: len(b) + 1024})
}

// OpenStored opens a stored offline message sealed by this module with
// sealer: the serialised stanza, with its delay element. The data
// protection export reads offline messages with it.
func OpenStored(sealer module.Sealer, msg storage.OfflineMessage) ([]byte, error) {
	return sealer.Open(msg.Owner, associatedData(msg.From, msg.Stamp), msg.Sealed)
}

// SealStored seals a stanza for the offline store as this module does, so
// that OpenStored (and the module) open it: the data protection import
// stores offline messages with it.
func SealStored(sealer module.Sealer, owner, from string, stamp time.Time, stanza []byte) (storage.OfflineMessage, error) {
	stamp = stamp.UTC().Truncate(time.Microsecond)
	sealed, err := sealer.Seal(owner, associatedData(from, stamp), stanza)
	if err != nil {
		return storage.OfflineMessage{}, err
	}
	return storage.OfflineMessage{Owner: owner, From: from, Stamp: stamp, Sealed: sealed}, nil
}

// Package pep implements XEP-0163 Personal Eventing Protocol: every account
// is a XEP-0060 publish-subscribe service at its bare JID, where its clients
// keep what modern clients keep there: OMEMO device lists and bundles
// (XEP-0384, both the legacy eu.siacs.conversations.axolotl.* nodes and
// urn:xmpp:omemo:2:*), avatars (XEP-0084), bookmarks (XEP-0402), and other
// private data (XEP-0223).
//
// # Requests
//
// The owner (any session of the account) publishes (creating the node on
// first use, with the publish options as its configuration), retracts,
// creates, configures, purges and deletes nodes. Anyone may ask for items,
// within the node's access model:
//
//   - presence (the default): the owner and contacts with subscription
//     'from' or 'both';
//   - open: anyone, which OMEMO needs (other users fetch bundles without a
//     subscription);
//   - roster: the owner and roster contacts in one of the node's
//     roster_groups_allowed;
//   - whitelist: the owner only (private data; no one can be added).
//
// Publish options (XEP-0060 §7.1.5) are preconditions: on an existing
// node, each must equal the node's configuration, or the publish fails
// with conflict and <precondition-not-met/>, and the client may then
// reconfigure the node. max_items 'max' means the service's limit
// (max_items option). Subscriptions are implicit only (XEP-0163 §4.3):
// explicit subscribe requests get feature-not-implemented.
//
// An entity that does not share the owner's presence (no subscription
// 'from' or 'both') is told service-unavailable for a node that does not
// exist or that it may not read, the answer RFC 6121 §8.5.1 gives for an
// account that does not exist: it learns nothing but what open nodes
// publish. Contacts get XEP-0060's errors.
//
// # Notifications
//
// The service learns who is online from the presence its account receives
// (contacts' broadcast and directed presence, and its own resources'):
// each available resource with XEP-0115 entity capabilities is an implicit
// subscriber to the nodes of the +notify features in its capabilities
// (XEP-0163 §4.2). To learn them, the service asks the resource itself
// (disco#info from the account's bare JID to the resource's full JID, with
// node#ver), once per set of capabilities: the answer is checked against
// the ver hash and cached (caps_cache_size entries, least recently used
// first out). An answer that does not verify, or an error, is not cached
// (other entities advertise the same capabilities, and one must not decide
// for them): that entity gets no notifications, and another entity with
// the same capabilities is asked. Legacy caps without a hash, or with a
// hash this server cannot compute, cannot be verified and are not used.
// The query's answer is caught by an Inbound hook, before the router
// would drop it.
//
// A published or retracted item, a purge and a deletion are sent as
// headline messages from the account's bare JID to each such resource
// interested in the node and allowed by its access model. When a resource
// becomes available (or its capabilities change), and when the owner
// approves a subscription, it gets the last item of each node it is
// interested in, as send_last_published_item says (on_sub_and_presence by
// default), with a XEP-0203 delay stamp.
//
// # Limits
//
// A node keeps at most max_items items (the node's configuration, 1 by
// default, bounded by the max_items option); an account at most max_nodes
// nodes and quota_bytes of payloads; one payload is at most
// max_payload_bytes. Exceeding the account's limits gives
// resource-constraint; a payload too big, not-acceptable with
// <payload-too-big/>. Payloads are never logged.
//
// Nodes private by nature (urn:xmpp:bookmarks:1, storage:bookmarks,
// urn:xmpp:mds:displayed:0) get a private default configuration (whitelist,
// max_items 'max', never sent on presence) when a client creates them
// without options, so that a careless client does not show its bookmarks
// to its contacts.
//
// # Bookmarks
//
// With bookmarks_compat (the default), the urn:xmpp:bookmarks:1 node
// (XEP-0402) and XEP-0048 bookmarks in private XML storage (XEP-0049,
// storage:bookmarks) are kept in step, as XEP-0402 §5.3 describes
// (urn:xmpp:bookmarks:1#compat): a change to one is written to the other,
// and a change through private XML is notified like a publish.
//
// # Storage and account deletion
//
// Nodes and items are kept by the store (storage.PEPStore, migration track
// "pep"); deleting an account removes them.
//
// Not implemented: explicit subscriptions and subscription options,
// affiliations and whitelists beyond the owner, collection nodes, result
// set management of items, disco#items of an account's nodes, notifications
// of configuration changes, XEP-0398 (avatar conversion).
package pep

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"kontor.im/kontor/core/dataform"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

// ID is the module's configuration key.
const ID = "pep"

func init() {
	module.Register(module.Info{
		ID:          ID,
		Description: "Personal eventing (PEP): each account's pubsub service for OMEMO keys, avatars, bookmarks and other personal data",
		Specs: []module.Spec{
			{ID: "XEP-0060", Name: "Publish-Subscribe (the subset PEP uses)", Version: "1.26.0", Status: module.Partial,
				Note: "publish, publish-options, retract, items, create, configure, default, purge and delete on PEP nodes; no explicit subscriptions, affiliations, collections or RSM"},
			{ID: "XEP-0163", Name: "Personal Eventing Protocol", Version: "1.2.2", Status: module.Complete},
			{ID: "XEP-0115", Name: "Entity Capabilities (clients' +notify features for PEP)", Version: "1.6.0", Status: module.Partial,
				Note: "hashed caps (sha-1, sha-2) are verified and cached; legacy caps without a hash are not used"},
			{ID: "XEP-0223", Name: "Persistent Storage of Private Data via PubSub", Version: "1.1", Status: module.Complete},
			{ID: "XEP-0402", Name: "PEP Native Bookmarks", Version: "1.2.0", Status: module.Complete,
				Note: "with urn:xmpp:bookmarks:1#compat (kept in step with XEP-0048 private XML)"},
			{ID: "XEP-0048", Name: "Bookmarks (in private XML, kept in step with XEP-0402)", Version: "1.2", Status: module.Complete},
			{ID: "XEP-0153", Name: "vCard-Based Avatars (the photo hash in presences)", Version: "1.1.1", Status: module.Complete},
			{ID: "XEP-0398", Name: "User Avatar to vCard-Based Avatars Conversion", Version: "0.2.1", Status: module.Complete,
				Note: "both directions, and the hash in every available presence (XEP-0153); needs the vcard module"},
		},
		Requires: []string{"presence"},
		Default:  true,
		New:      func() module.Module { return &Module{opts: DefaultOptions()} },
	})
}

// Options configure the module.
type Options struct {
	// MaxItems bounds the items of one node; it is what max_items 'max'
	// means.
	MaxItems int `mapstructure:"max_items"`
	// MaxNodes bounds the nodes of one account.
	MaxNodes int `mapstructure:"max_nodes"`
	// MaxPayloadBytes bounds one item's payload, serialised.
	MaxPayloadBytes int `mapstructure:"max_payload_bytes"`
	// QuotaBytes bounds the payloads of one account together.
	QuotaBytes int64 `mapstructure:"quota_bytes"`
	// CapsCacheSize bounds the cached entity capabilities.
	CapsCacheSize int `mapstructure:"caps_cache_size"`
	// MaxTracked bounds the available resources one account's service
	// tracks for notifications.
	MaxTracked int `mapstructure:"max_tracked"`
	// BookmarksCompat keeps XEP-0402 bookmarks and XEP-0048 bookmarks in
	// private XML in step.
	BookmarksCompat bool `mapstructure:"bookmarks_compat"`
	// AvatarConversion keeps XEP-0084 avatars and the vCard's photo
	// (XEP-0153) in step and puts the avatar's hash into presences
	// (XEP-0398). The vCard photo is readable by anyone.
	AvatarConversion bool `mapstructure:"avatar_conversion"`
}

// DefaultOptions returns the defaults: 256 items per node, 256 nodes and
// 4 MiB of payloads per account, 128 KiB per payload (an avatar), 4096
// cached capabilities, 1024 tracked resources per account.
func DefaultOptions() Options {
	return Options{MaxItems: 256, MaxNodes: 256, MaxPayloadBytes: 128 << 10, QuotaBytes: 4 << 20,
		CapsCacheSize: 4096, MaxTracked: 1024, BookmarksCompat: true, AvatarConversion: true}
}

// Validate checks the bounds.
func (o *Options) Validate() error {
	switch {
	case o.MaxItems < 1 || o.MaxItems > 10000:
		return fmt.Errorf("pep: max_items must be between 1 and 10000, got %d", o.MaxItems)
	case o.MaxNodes < 1 || o.MaxNodes > 100000:
		return fmt.Errorf("pep: max_nodes must be between 1 and 100000, got %d", o.MaxNodes)
	case o.MaxPayloadBytes < 1<<10 || o.MaxPayloadBytes > 1<<20:
		return fmt.Errorf("pep: max_payload_bytes must be between 1024 and 1048576, got %d", o.MaxPayloadBytes)
	case o.QuotaBytes < int64(o.MaxPayloadBytes) || o.QuotaBytes > 1<<34:
		return fmt.Errorf("pep: quota_bytes must be between max_payload_bytes (%d) and 16 GiB, got %d", o.MaxPayloadBytes, o.QuotaBytes)
	case o.CapsCacheSize < 16 || o.CapsCacheSize > 1<<20:
		return fmt.Errorf("pep: caps_cache_size must be between 16 and 1048576, got %d", o.CapsCacheSize)
	case o.MaxTracked < 1 || o.MaxTracked > 1<<16:
		return fmt.Errorf("pep: max_tracked must be between 1 and 65536, got %d", o.MaxTracked)
	}
	return nil
}

// Module is the PEP service of one virtual host.
type Module struct {
	opts  Options
	h     module.Host
	log   *slog.Logger
	store storage.Store
	pep   storage.PEPStore

	tracked *tracker
	caps    *capsCache
	pending *pendingQueries
	avatars *avatarHashes

	// msgPrefix and msgSeq make the ids of notification messages.
	msgPrefix string
	msgSeq    atomic.Uint64
}

var (
	_ module.Configurable = (*Module)(nil)
	_ module.Validator    = (*Options)(nil)
)

// Options returns the module's options, filled with defaults.
func (m *Module) Options() any { return &m.opts }

// Features are the disco#info features of an account with this module:
// exactly what it implements.
var Features = []string{
	NS + "#access-open",
	NS + "#access-presence",
	NS + "#access-roster",
	NS + "#access-whitelist",
	NS + "#auto-create",
	NS + "#auto-subscribe",
	NS + "#config-node",
	NS + "#create-and-configure",
	NS + "#create-nodes",
	NS + "#delete-nodes",
	NS + "#filtered-notifications",
	NS + "#item-ids",
	NS + "#last-published",
	NS + "#multi-items",
	NS + "#persistent-items",
	NS + "#presence-notifications",
	NS + "#publish",
	NS + "#publish-options",
	NS + "#purge-nodes",
	NS + "#retract-items",
	NS + "#retrieve-default",
	NS + "#retrieve-items",
}

// FeatureBookmarksCompat is announced with bookmarks_compat.
const FeatureBookmarksCompat = "urn:xmpp:bookmarks:1#compat"

// Provision declares the handlers, hooks and disco information.
func (m *Module) Provision(h module.Host) error {
	m.h, m.log, m.store = h, h.Logger(), h.Store()
	if m.store == nil {
		return errors.New("pep: the host has no store")
	}
	ps, ok := m.store.(storage.PEPStore)
	if !ok {
		return fmt.Errorf("pep: the %s store does not keep PEP nodes", m.store.Backend())
	}
	m.pep = ps
	m.tracked = newTracker(m.opts.MaxTracked)
	m.caps = newCapsCache(m.opts.CapsCacheSize)
	m.pending = newPendingQueries()
	m.msgPrefix = newMsgPrefix()

	for _, ns := range []string{NS, NSOwner} {
		name := stanza.Name{Space: ns, Local: "pubsub"}
		h.HandleIQ(module.ToAccount, module.Get, name, m.handle)
		h.HandleIQ(module.ToAccount, module.Set, name, m.handle)
	}
	h.Hook(module.Inbound, module.Process, m.inbound)
	h.Hook(module.Outbound, module.Observe, m.outboundObserve)
	if m.opts.BookmarksCompat {
		h.Hook(module.Inbound, module.Observe, m.inboundObserve)
	}
	h.On(module.SessionClosed, m.sessionClosed)

	features := append([]string(nil), Features...)
	if m.opts.BookmarksCompat {
		features = append(features, FeatureBookmarksCompat)
	}
	if m.opts.AvatarConversion {
		m.provisionAvatars(h)
		features = append(features, FeatureVCardConversion)
	}
	h.AddDisco(module.ToAccount, module.Disco{
		Identities: []module.Identity{{Category: "pubsub", Type: "pep"}},
		Features:   features,
	})
	return nil
}

// ownerOf is the account an IQ is addressed to: its 'to', or the sender's
// own account when it has none.
func ownerOf(iq *module.IQ) jid.JID {
	if iq.To.IsZero() {
		return iq.From.Bare()
	}
	return iq.To.Bare()
}

// handle answers every pubsub request to an account.
func (m *Module) handle(ctx context.Context, iq *module.IQ) (*stanza.Element, error) {
	req, err := ParseRequest(iq.Type, iq.Payload())
	if err != nil {
		return nil, err
	}
	owner := ownerOf(iq)
	if req.Action == ActItems {
		return m.items(ctx, owner, iq.From, req)
	}
	if iq.From.IsZero() || iq.From.Bare() != owner {
		return nil, stanza.ErrForbidden("only the account itself may change its PEP nodes")
	}
	if req.Node == NodeBookmarks && (req.Action == ActPublish || req.Action == ActRetract) {
		if err := m.seedBookmarks(ctx, owner); err != nil {
			return nil, err
		}
	}
	switch req.Action {
	case ActPublish:
		return m.publish(ctx, owner, iq.From, req)
	case ActRetract:
		return nil, m.retract(ctx, owner, req)
	case ActCreate:
		return nil, m.create(ctx, owner, req)
	case ActConfigure:
		if iq.Type == "get" {
			return m.configureGet(ctx, owner, req)
		}
		return nil, m.configureSet(ctx, owner, req)
	case ActDefault:
		el := stanza.New(NSOwner, "default").Append(DefaultConfig().Form(dataform.TypeForm, nil).Element())
		return stanza.New(NSOwner, "pubsub").Append(el), nil
	case ActDelete:
		return nil, m.deleteNode(ctx, owner, req.Node)
	case ActPurge:
		return nil, m.purge(ctx, owner, req.Node)
	}
	return nil, stanza.ErrBadRequest("")
}

package storage

import (
	"context"
	"time"
)

// PEPNode is one node of an account's personal eventing service (XEP-0163:
// a XEP-0060 pubsub service at the account's bare JID).
type PEPNode struct {
	Owner string // bare JID of the account
	Node  string // the node's name, e.g. "urn:xmpp:omemo:2:devices"
	// Config is the node configuration serialised by the pep module; the
	// store keeps it opaque.
	Config []byte
	// MaxItems is how many items the node keeps (at least 1); the store
	// enforces it whenever an item is published or the node configured.
	MaxItems int
	Created  time.Time // a zero Created means now
}

// PEPItem is one published item of a node.
type PEPItem struct {
	Owner string
	Node  string
	ID    string // the item id, unique within the node
	// Payload is the item's payload element, serialised; the store keeps
	// it opaque and never logs it.
	Payload   []byte
	Publisher string    // the JID that published it
	Published time.Time // a zero Published means now
}

// PEPStore keeps PEP nodes and their items. Both backends implement it
// (*sqlite.Store and *postgres.Store), in tables of their own migration
// track "pep"; it is not part of Store, so a caller gets it with a type
// assertion. DeleteAccount removes an account's nodes and items with the
// rest of what it owns; DeletePEPOwner does the same on its own.
//
// Items of a node are ordered by publication: republishing an item id
// replaces that item and makes it the newest.
type PEPStore interface {
	// PEPNodes lists the owner's nodes, ordered by name (bytewise).
	PEPNodes(ctx context.Context, owner string) ([]PEPNode, error)
	// PEPNode returns ErrNotFound if the owner has no such node.
	PEPNode(ctx context.Context, owner, node string) (PEPNode, error)
	// CreatePEPNode creates a node: ErrExists if it exists, and
	// ErrQuotaExceeded if maxNodes > 0 and the owner already has that many
	// nodes (checked atomically with the insert).
	CreatePEPNode(ctx context.Context, n PEPNode, maxNodes int) error
	// ConfigurePEPNode replaces a node's Config and MaxItems and removes
	// the oldest items beyond the new MaxItems, in one transaction;
	// ErrNotFound if there is no such node.
	ConfigurePEPNode(ctx context.Context, owner, node string, config []byte, maxItems int) error
	// DeletePEPNode removes a node and its items; ErrNotFound if there is
	// no such node.
	DeletePEPNode(ctx context.Context, owner, node string) error
	// PublishPEPItem stores an item in its node, replacing the item with
	// the same ID, then removes the oldest items beyond the node's
	// MaxItems, in one transaction. ErrNotFound if the node does not exist.
	// If quotaBytes > 0 and the owner's payloads would then take more than
	// quotaBytes in total, nothing changes and ErrQuotaExceeded is
	// returned.
	PublishPEPItem(ctx context.Context, it PEPItem, quotaBytes int64) error
	// PEPItems returns items of a node, oldest first: with ids, those of
	// them that exist; without, the max most recent ones (max <= 0: all).
	// A node that does not exist has no items.
	PEPItems(ctx context.Context, owner, node string, ids []string, max int) ([]PEPItem, error)
	// PEPLastItems returns the newest item of each of the owner's nodes
	// that has one, ordered by node.
	PEPLastItems(ctx context.Context, owner string) ([]PEPItem, error)
	// RetractPEPItem removes one item; ErrNotFound if there is no such
	// item.
	RetractPEPItem(ctx context.Context, owner, node, id string) error
	// PurgePEPNode removes every item of a node; ErrNotFound if there is
	// no such node.
	PurgePEPNode(ctx context.Context, owner, node string) error
	// PEPUsage returns how many nodes the owner has and how many payload
	// bytes its items take.
	PEPUsage(ctx context.Context, owner string) (nodes int, bytes int64, err error)
	// DeletePEPOwner removes every node and item of an owner; no error
	// when there are none.
	DeletePEPOwner(ctx context.Context, owner string) error
}

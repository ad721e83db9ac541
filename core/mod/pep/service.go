package pep

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"kontor.im/kontor/core/dataform"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/rosterstate"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/xmlstream"
)

// Node names this module knows by name.
const (
	NodeBookmarks       = "urn:xmpp:bookmarks:1"     // XEP-0402
	NodeLegacyBookmarks = "storage:bookmarks"        // XEP-0048 over PEP
	NodeDisplayed       = "urn:xmpp:mds:displayed:0" // XEP-0490
)

// privateNodes get a private default configuration: a client that creates
// them without publish options must not show them to its contacts.
var privateNodes = map[string]bool{NodeBookmarks: true, NodeLegacyBookmarks: true, NodeDisplayed: true}

// nodeDefaults is the configuration of a node created without options.
func nodeDefaults(node string) Config {
	c := DefaultConfig()
	if privateNodes[node] {
		c.Access, c.MaxItems, c.SendLast = AccessWhitelist, 0, SendNever
	}
	return c
}

// relation is what a requester is to a node's owner, as far as access
// models care.
type relation struct {
	owner bool
	// contact: the owner's roster has the requester with subscription
	// 'from' or 'both' (it shares the owner's presence).
	contact bool
	// groups are the requester's roster groups, when it is in the roster.
	groups []string
}

// relationOf reads the owner's roster entry for requester.
func (m *Module) relationOf(ctx context.Context, owner, requester jid.JID) (relation, error) {
	if requester.IsZero() {
		return relation{}, nil
	}
	if requester.Bare() == owner {
		return relation{owner: true}, nil
	}
	it, err := m.store.RosterItem(ctx, owner.String(), requester.Bare().String())
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return relation{}, nil
	case err != nil:
		return relation{}, fmt.Errorf("pep: roster of %s: %w", owner, err)
	}
	return relationTo(it), nil
}

func relationTo(it storage.RosterItem) relation {
	groups := it.Groups
	if groups == nil {
		groups = []string{}
	}
	return relation{contact: rosterstate.Of(it.Subscription, it.AskOut, false).HasFrom(), groups: groups}
}

// may reports whether the access model of c lets r read the node and get
// its notifications.
func (r relation) may(c Config) bool {
	if r.owner {
		return true
	}
	switch c.Access {
	case AccessOpen:
		return true
	case AccessPresence:
		return r.contact
	case AccessRoster:
		for _, g := range r.groups {
			if slices.Contains(c.RosterGroups, g) {
				return true
			}
		}
	}
	return false
}

// stranger: neither the owner nor a contact that shares its presence.
func (r relation) stranger() bool { return !r.owner && !r.contact }

// notFound is the answer about a node that does not exist.
func (r relation) notFound() error {
	if r.stranger() {
		return stanza.ErrServiceUnavailable("")
	}
	return stanza.ErrItemNotFound("no such node")
}

// denied is the answer to a requester that may not read a node.
func (r relation) denied(c Config) error {
	switch {
	case r.stranger():
		return stanza.ErrServiceUnavailable("")
	case c.Access == AccessPresence:
		return pubsubError(stanza.Auth, stanza.NotAuthorized, "presence-subscription-required", "")
	case c.Access == AccessRoster:
		return pubsubError(stanza.Auth, stanza.NotAuthorized, "not-in-roster-group", "")
	}
	return pubsubError(stanza.Cancel, stanza.NotAllowed, "closed-node", "")
}

// parsePayload reads a stored payload.
func parsePayload(b []byte) (*stanza.Element, error) {
	return xmlstream.ParseElement(b, xmlstream.Limits{MaxStanzaBytes: len(b) + 1024})
}

// itemElement renders an item for a result or a notification.
func itemElement(ns, id string, payload *stanza.Element) *stanza.Element {
	return stanza.New(ns, "item").Set("id", id).Append(payload)
}

// items answers a retrieval (XEP-0060 §6.5).
func (m *Module) items(ctx context.Context, owner, from jid.JID, req Request) (*stanza.Element, error) {
	rel, err := m.relationOf(ctx, owner, from)
	if err != nil {
		return nil, err
	}
	if rel.owner && req.Node == NodeBookmarks {
		if err := m.seedBookmarks(ctx, owner); err != nil {
			return nil, err
		}
	}
	n, err := m.pep.PEPNode(ctx, owner.String(), req.Node)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, rel.notFound()
	case err != nil:
		return nil, fmt.Errorf("pep: load node: %w", err)
	}
	cfg := decodeConfig(n.Config)
	if !rel.may(cfg) {
		return nil, rel.denied(cfg)
	}
	stored, err := m.pep.PEPItems(ctx, owner.String(), req.Node, req.ItemIDs, req.MaxItems)
	if err != nil {
		return nil, fmt.Errorf("pep: load items: %w", err)
	}
	if len(req.ItemIDs) > 0 && len(stored) == 0 {
		return nil, stanza.ErrItemNotFound("no such item")
	}
	out := stanza.New(NS, "items").Set("node", req.Node)
	for _, it := range stored {
		p, err := parsePayload(it.Payload)
		if err != nil {
			m.log.ErrorContext(ctx, "stored item does not parse", "owner", owner.String(), "node", req.Node, "err", err)
			continue
		}
		out.Append(itemElement(NS, it.ID, p))
	}
	return stanza.New(NS, "pubsub").Append(out), nil
}

// newItemID makes an item id for a publish without one.
func newItemID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func quotaError(text string) stanza.Error {
	return stanza.Error{Type: stanza.Cancel, Condition: stanza.ResourceConstraint, Text: text}
}

// createNode creates a node with cfg within the account's node limit.
func (m *Module) createNode(ctx context.Context, owner jid.JID, node string, cfg Config) error {
	err := m.pep.CreatePEPNode(ctx, storage.PEPNode{Owner: owner.String(), Node: node, Config: cfg.encode(),
		MaxItems: cfg.limit(m.opts.MaxItems)}, m.opts.MaxNodes)
	switch {
	case errors.Is(err, storage.ErrQuotaExceeded):
		e := quotaError("an account may have at most " + strconv.Itoa(m.opts.MaxNodes) + " PEP nodes")
		e.App = stanza.New(NSErrors, "max-nodes-exceeded")
		return e
	case errors.Is(err, storage.ErrExists):
		return err
	case err != nil:
		return fmt.Errorf("pep: create node: %w", err)
	}
	return nil
}

// nodeFor returns the configuration of the node a publish goes to,
// creating the node (with the publish options as its configuration) if it
// does not exist, and checking the publish options as preconditions if it
// does.
func (m *Module) nodeFor(ctx context.Context, owner jid.JID, node string, options *dataform.Form) (Config, error) {
	for range 2 {
		n, err := m.pep.PEPNode(ctx, owner.String(), node)
		switch {
		case err == nil:
			cfg := decodeConfig(n.Config)
			if options != nil {
				if err := Preconditions(cfg, options, m.opts.MaxItems); err != nil {
					return cfg, preconditionError(err)
				}
			}
			return cfg, nil
		case !errors.Is(err, storage.ErrNotFound):
			return Config{}, fmt.Errorf("pep: load node: %w", err)
		}
		cfg := nodeDefaults(node)
		if options != nil {
			if cfg, err = ApplyForm(cfg, options, m.opts.MaxItems, NSPublishOptions); err != nil {
				return cfg, preconditionError(err)
			}
		}
		err = m.createNode(ctx, owner, node, cfg)
		if errors.Is(err, storage.ErrExists) {
			continue // created meanwhile: check that one
		}
		return cfg, err
	}
	return Config{}, stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint, Text: "the node changed meanwhile; try again"}
}

// publish handles a publish by the owner (XEP-0060 §7.1, §7.1.5).
func (m *Module) publish(ctx context.Context, owner, publisher jid.JID, req Request) (*stanza.Element, error) {
	payload := req.Payload.AppendXML(nil, "")
	if len(payload) > m.opts.MaxPayloadBytes {
		return nil, pubsubError(stanza.Modify, stanza.NotAcceptable, "payload-too-big",
			"a payload may have at most "+strconv.Itoa(m.opts.MaxPayloadBytes)+" bytes")
	}
	cfg, err := m.nodeFor(ctx, owner, req.Node, req.Form)
	if err != nil {
		return nil, err
	}
	id := req.ItemID
	if id == "" {
		id = newItemID()
	}
	if cfg.Persist {
		err := m.pep.PublishPEPItem(ctx, storage.PEPItem{Owner: owner.String(), Node: req.Node, ID: id,
			Payload: payload, Publisher: publisher.String()}, m.opts.QuotaBytes)
		switch {
		case errors.Is(err, storage.ErrQuotaExceeded):
			return nil, quotaError("the account's PEP storage is full")
		case errors.Is(err, storage.ErrNotFound):
			return nil, stanza.ErrItemNotFound("the node was deleted meanwhile")
		case err != nil:
			return nil, fmt.Errorf("pep: publish: %w", err)
		}
	}
	items := stanza.New(NSEvent, "items").Set("node", req.Node).Append(itemElement(NSEvent, id, req.Payload))
	m.notify(ctx, owner, req.Node, cfg, stanza.New(NSEvent, "event").Append(items))
	m.changed(ctx, owner, req.Node)
	res := stanza.New(NS, "publish").Set("node", req.Node).Append(stanza.New(NS, "item").Set("id", id))
	return stanza.New(NS, "pubsub").Append(res), nil
}

// loadNode returns a node's configuration, item-not-found if there is no
// such node.
func (m *Module) loadNode(ctx context.Context, owner jid.JID, node string) (Config, error) {
	n, err := m.pep.PEPNode(ctx, owner.String(), node)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return Config{}, stanza.ErrItemNotFound("no such node")
	case err != nil:
		return Config{}, fmt.Errorf("pep: load node: %w", err)
	}
	return decodeConfig(n.Config), nil
}

// retract handles a retraction (XEP-0060 §7.2).
func (m *Module) retract(ctx context.Context, owner jid.JID, req Request) error {
	cfg, err := m.loadNode(ctx, owner, req.Node)
	if err != nil {
		return err
	}
	var gone []string
	for _, id := range req.ItemIDs {
		switch err := m.pep.RetractPEPItem(ctx, owner.String(), req.Node, id); {
		case errors.Is(err, storage.ErrNotFound):
		case err != nil:
			return fmt.Errorf("pep: retract: %w", err)
		default:
			gone = append(gone, id)
		}
	}
	if len(gone) == 0 {
		return stanza.ErrItemNotFound("no such item")
	}
	if req.Notify || cfg.NotifyRetract {
		items := stanza.New(NSEvent, "items").Set("node", req.Node)
		for _, id := range gone {
			items.Append(stanza.New(NSEvent, "retract").Set("id", id))
		}
		m.notify(ctx, owner, req.Node, cfg, stanza.New(NSEvent, "event").Append(items))
	}
	m.changed(ctx, owner, req.Node)
	return nil
}

// create handles an explicit node creation (XEP-0060 §8.1).
func (m *Module) create(ctx context.Context, owner jid.JID, req Request) error {
	cfg := nodeDefaults(req.Node)
	if req.Form != nil {
		var err error
		if cfg, err = ApplyForm(cfg, req.Form, m.opts.MaxItems, NSNodeConfig); err != nil {
			return configErrorStanza(err)
		}
	}
	err := m.createNode(ctx, owner, req.Node, cfg)
	if errors.Is(err, storage.ErrExists) {
		return stanza.Error{Type: stanza.Cancel, Condition: stanza.Conflict, Text: "the node exists"}
	}
	return err
}

// rosterGroups returns the owner's roster groups.
func (m *Module) rosterGroups(ctx context.Context, owner jid.JID) ([]string, error) {
	items, _, err := m.store.RosterItems(ctx, owner.String())
	if err != nil {
		return nil, fmt.Errorf("pep: roster of %s: %w", owner, err)
	}
	var groups []string
	for _, it := range items {
		for _, g := range it.Groups {
			if !slices.Contains(groups, g) {
				groups = append(groups, g)
			}
		}
	}
	return groups, nil
}

// configureGet returns the node's configuration form (XEP-0060 §8.2).
func (m *Module) configureGet(ctx context.Context, owner jid.JID, req Request) (*stanza.Element, error) {
	cfg, err := m.loadNode(ctx, owner, req.Node)
	if err != nil {
		return nil, err
	}
	groups, err := m.rosterGroups(ctx, owner)
	if err != nil {
		return nil, err
	}
	el := stanza.New(NSOwner, "configure").Set("node", req.Node).Append(cfg.Form(dataform.TypeForm, groups).Element())
	return stanza.New(NSOwner, "pubsub").Append(el), nil
}

// configureSet applies a submitted configuration (XEP-0060 §8.2.4). A node
// that stops persisting items loses the ones it has.
func (m *Module) configureSet(ctx context.Context, owner jid.JID, req Request) error {
	cfg, err := m.loadNode(ctx, owner, req.Node)
	if err != nil {
		return err
	}
	if req.Form.Type == dataform.TypeCancel {
		return nil
	}
	next, err := ApplyForm(cfg, req.Form, m.opts.MaxItems, NSNodeConfig)
	if err != nil {
		return configErrorStanza(err)
	}
	switch err := m.pep.ConfigurePEPNode(ctx, owner.String(), req.Node, next.encode(), next.limit(m.opts.MaxItems)); {
	case errors.Is(err, storage.ErrNotFound):
		return stanza.ErrItemNotFound("no such node")
	case err != nil:
		return fmt.Errorf("pep: configure: %w", err)
	}
	if cfg.Persist && !next.Persist {
		if err := m.pep.PurgePEPNode(ctx, owner.String(), req.Node); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("pep: configure: %w", err)
		}
	}
	return nil
}

// deleteNode deletes a node (XEP-0060 §8.4) and tells whoever could see it.
func (m *Module) deleteNode(ctx context.Context, owner jid.JID, node string) error {
	cfg, err := m.loadNode(ctx, owner, node)
	if err != nil {
		return err
	}
	switch err := m.pep.DeletePEPNode(ctx, owner.String(), node); {
	case errors.Is(err, storage.ErrNotFound):
		return stanza.ErrItemNotFound("no such node")
	case err != nil:
		return fmt.Errorf("pep: delete node: %w", err)
	}
	if cfg.NotifyDelete {
		m.notify(ctx, owner, node, cfg, stanza.New(NSEvent, "event").Append(stanza.New(NSEvent, "delete").Set("node", node)))
	}
	m.changed(ctx, owner, node)
	return nil
}

// purge removes every item of a node (XEP-0060 §8.5) and says so.
func (m *Module) purge(ctx context.Context, owner jid.JID, node string) error {
	cfg, err := m.loadNode(ctx, owner, node)
	if err != nil {
		return err
	}
	switch err := m.pep.PurgePEPNode(ctx, owner.String(), node); {
	case errors.Is(err, storage.ErrNotFound):
		return stanza.ErrItemNotFound("no such node")
	case err != nil:
		return fmt.Errorf("pep: purge: %w", err)
	}
	m.notify(ctx, owner, node, cfg, stanza.New(NSEvent, "event").Append(stanza.New(NSEvent, "purge").Set("node", node)))
	m.changed(ctx, owner, node)
	return nil
}

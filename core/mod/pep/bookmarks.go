package pep

import (
	"context"
	"errors"
	"fmt"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/xmlstream"
)

// Bookmarks compatibility (XEP-0402 §5.3, urn:xmpp:bookmarks:1#compat):
// XEP-0402 bookmarks are items of the urn:xmpp:bookmarks:1 node, one per
// room (the item id is the room's JID); XEP-0048 bookmarks are one
// <storage xmlns='storage:bookmarks'/> element in private XML storage
// (XEP-0049), written whole by old clients.
//
//   - A change to the node (publish, retract, purge, delete) rewrites the
//     private element's <conference/> children from the node's items;
//     its other children (<url/> bookmarks) stay.
//   - A private XML set of storage:bookmarks (seen after the private
//     module stored it) is applied to the node: new and changed rooms are
//     published, rooms no longer there are retracted, each notified like a
//     publish or retraction by the owner. <extensions/> of an item that
//     XEP-0048 cannot carry are kept.
//
// Before the owner first uses the node (retrieves, publishes or retracts
// bookmarks while the node does not exist), it is seeded from the private
// element, so that bookmarks an old client stored are not lost when a new
// client starts. The private element is read and written through the store
// directly, so the two directions never trigger each other.

const (
	nsBookmarks       = NodeBookmarks // the node and the payload namespace
	nsLegacyBookmarks = "storage:bookmarks"
	nsPrivate         = "jabber:iq:private"
	// privateKey is the private XML key of XEP-0048 bookmarks.
	privateKey = "{storage:bookmarks}storage"
)

// room is a bookmark in neither format.
type room struct {
	jid      string
	name     string
	autojoin bool
	nick     string
	password string
	ext      *stanza.Element // XEP-0402 <extensions/>, if any
}

func parseBool(v string) bool { return v == "true" || v == "1" }

// roomFromLegacy reads a XEP-0048 <conference/>.
func roomFromLegacy(c *stanza.Element) (room, bool) {
	j, err := jid.Parse(c.Get("jid"))
	if err != nil || !j.IsBare() {
		return room{}, false
	}
	return room{jid: j.String(), name: c.Get("name"), autojoin: parseBool(c.Get("autojoin")),
		nick: c.ChildText(nsLegacyBookmarks, "nick"), password: c.ChildText(nsLegacyBookmarks, "password")}, true
}

// roomFromItem reads a XEP-0402 item.
func roomFromItem(id string, c *stanza.Element) (room, bool) {
	if c == nil || c.Name.Space != nsBookmarks || c.Name.Local != "conference" {
		return room{}, false
	}
	j, err := jid.Parse(id)
	if err != nil || !j.IsBare() {
		return room{}, false
	}
	return room{jid: j.String(), name: c.Get("name"), autojoin: parseBool(c.Get("autojoin")),
		nick: c.ChildText(nsBookmarks, "nick"), password: c.ChildText(nsBookmarks, "password"),
		ext: c.Child(nsBookmarks, "extensions")}, true
}

func (r room) same(o room) bool {
	return r.jid == o.jid && r.name == o.name && r.autojoin == o.autojoin && r.nick == o.nick && r.password == o.password
}

func boolAttr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// legacy renders r as a XEP-0048 <conference/>.
func (r room) legacy() *stanza.Element {
	c := stanza.New(nsLegacyBookmarks, "conference").Set("jid", r.jid).Set("name", r.name).Set("autojoin", boolAttr(r.autojoin))
	if r.nick != "" {
		c.Append(stanza.New(nsLegacyBookmarks, "nick").AppendText(r.nick))
	}
	if r.password != "" {
		c.Append(stanza.New(nsLegacyBookmarks, "password").AppendText(r.password))
	}
	return c
}

// item renders r as a XEP-0402 payload.
func (r room) item() *stanza.Element {
	c := stanza.New(nsBookmarks, "conference").Set("name", r.name).Set("autojoin", boolAttr(r.autojoin))
	if r.nick != "" {
		c.Append(stanza.New(nsBookmarks, "nick").AppendText(r.nick))
	}
	if r.password != "" {
		c.Append(stanza.New(nsBookmarks, "password").AppendText(r.password))
	}
	return c.Append(r.ext)
}

// changed keeps the private XML bookmarks in step with a change of the
// bookmarks node, and the vCard's photo with the avatar (avatars.go). Failures are logged: the PEP change stands.
func (m *Module) changed(ctx context.Context, owner jid.JID, node string) {
	if m.opts.AvatarConversion && node == NodeAvatarMetadata {
		m.avatarPublished(ctx, owner)
		return
	}
	if !m.opts.BookmarksCompat || node != NodeBookmarks {
		return
	}
	if err := m.syncToPrivate(ctx, owner); err != nil {
		m.log.ErrorContext(ctx, "bookmarks compatibility", "owner", owner.String(), "err", err)
	}
}

// syncToPrivate rewrites the conferences of the private element from the
// node's items, keeping everything else it holds.
func (m *Module) syncToPrivate(ctx context.Context, owner jid.JID) error {
	items, err := m.pep.PEPItems(ctx, owner.String(), NodeBookmarks, nil, 0)
	if err != nil {
		return err
	}
	rooms := map[string]room{}
	var order []string
	for _, it := range items {
		p, err := parsePayload(it.Payload)
		if err != nil {
			continue
		}
		if r, ok := roomFromItem(it.ID, p); ok {
			if _, dup := rooms[r.jid]; !dup {
				order = append(order, r.jid)
			}
			rooms[r.jid] = r
		}
	}
	storageEl, err := m.privateBookmarks(ctx, owner)
	if err != nil {
		return err
	}
	// The node was seeded from this element before its first use, so its
	// items are all the rooms there are; keep the rest (URLs).
	out := stanza.New(nsLegacyBookmarks, "storage")
	storageEl.Children(func(c *stanza.Element) bool {
		if c.Name.Space == nsLegacyBookmarks && c.Name.Local == "conference" {
			return true
		}
		out.Append(c)
		return true
	})
	for _, j := range order {
		out.Append(rooms[j].legacy())
	}
	b := out.AppendXML(nil, "")
	if err := m.store.SetPrivate(ctx, owner.String(), privateKey, b); err != nil {
		return fmt.Errorf("pep: store private bookmarks: %w", err)
	}
	return nil
}

// privateBookmarks returns the stored XEP-0048 element, or an empty one.
func (m *Module) privateBookmarks(ctx context.Context, owner jid.JID) (*stanza.Element, error) {
	b, err := m.store.Private(ctx, owner.String(), privateKey)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return stanza.New(nsLegacyBookmarks, "storage"), nil
	case err != nil:
		return nil, fmt.Errorf("pep: private bookmarks: %w", err)
	}
	el, err := xmlstream.ParseElement(b, xmlstream.Limits{MaxStanzaBytes: len(b) + 1024})
	if err != nil || el.Name.Space != nsLegacyBookmarks || el.Name.Local != "storage" {
		return stanza.New(nsLegacyBookmarks, "storage"), nil
	}
	return el, nil
}

// inboundObserve sees private XML sets that succeeded and applies XEP-0048
// bookmarks to the node.
func (m *Module) inboundObserve(ctx context.Context, p *module.Packet) (module.Verdict, error) {
	s := p.Stanza
	if s.Kind != stanza.KindIQ || s.Type != "set" || p.Target != module.ToAccount || s.From.IsZero() {
		return module.Continue, nil
	}
	q := s.Payload()
	if q == nil || q.Name.Space != nsPrivate || q.Name.Local != "query" {
		return module.Continue, nil
	}
	owner := s.From.Bare()
	if !s.To.IsZero() && s.To.Bare() != owner {
		return module.Continue, nil
	}
	el := q.Child(nsLegacyBookmarks, "storage")
	if el == nil {
		return module.Continue, nil
	}
	if err := m.syncFromPrivate(ctx, owner, s.From, el); err != nil {
		m.log.ErrorContext(ctx, "bookmarks compatibility", "owner", owner.String(), "err", err)
	}
	return module.Continue, nil
}

// syncFromPrivate makes the node's items the rooms of a XEP-0048 element.
func (m *Module) syncFromPrivate(ctx context.Context, owner, publisher jid.JID, el *stanza.Element) error {
	want := map[string]room{}
	var order []string
	el.Children(func(c *stanza.Element) bool {
		if c.Name.Space == nsLegacyBookmarks && c.Name.Local == "conference" {
			if r, ok := roomFromLegacy(c); ok {
				if _, dup := want[r.jid]; !dup {
					order = append(order, r.jid)
				}
				want[r.jid] = r
			}
		}
		return true
	})
	n, err := m.pep.PEPNode(ctx, owner.String(), NodeBookmarks)
	var cfg Config
	switch {
	case errors.Is(err, storage.ErrNotFound):
		if len(want) == 0 {
			return nil
		}
		cfg = nodeDefaults(NodeBookmarks)
		if err := m.createNode(ctx, owner, NodeBookmarks, cfg); err != nil && !errors.Is(err, storage.ErrExists) {
			return err
		}
	case err != nil:
		return err
	default:
		cfg = decodeConfig(n.Config)
	}
	items, err := m.pep.PEPItems(ctx, owner.String(), NodeBookmarks, nil, 0)
	if err != nil {
		return err
	}
	have := map[string]room{}
	for _, it := range items {
		p, err := parsePayload(it.Payload)
		if err != nil {
			continue
		}
		if r, ok := roomFromItem(it.ID, p); ok {
			have[r.jid] = r
		}
	}
	for _, j := range order {
		r := want[j]
		old, ok := have[j]
		if ok && old.same(r) {
			continue
		}
		r.ext = old.ext
		payload := r.item()
		if cfg.Persist {
			err := m.pep.PublishPEPItem(ctx, storage.PEPItem{Owner: owner.String(), Node: NodeBookmarks, ID: j,
				Payload: payload.AppendXML(nil, ""), Publisher: publisher.String()}, m.opts.QuotaBytes)
			if err != nil {
				return fmt.Errorf("pep: publish bookmark: %w", err)
			}
		}
		items := stanza.New(NSEvent, "items").Set("node", NodeBookmarks).Append(itemElement(NSEvent, j, payload))
		m.notify(ctx, owner, NodeBookmarks, cfg, stanza.New(NSEvent, "event").Append(items))
	}
	var gone []string
	for _, it := range items {
		if _, keep := want[it.ID]; keep {
			continue
		}
		if err := m.pep.RetractPEPItem(ctx, owner.String(), NodeBookmarks, it.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("pep: retract bookmark: %w", err)
		}
		gone = append(gone, it.ID)
	}
	if len(gone) > 0 && cfg.NotifyRetract {
		items := stanza.New(NSEvent, "items").Set("node", NodeBookmarks)
		for _, id := range gone {
			items.Append(stanza.New(NSEvent, "retract").Set("id", id))
		}
		m.notify(ctx, owner, NodeBookmarks, cfg, stanza.New(NSEvent, "event").Append(items))
	}
	return nil
}

// seedBookmarks creates the bookmarks node from the private element when
// the node does not exist yet and the element names rooms.
func (m *Module) seedBookmarks(ctx context.Context, owner jid.JID) error {
	if !m.opts.BookmarksCompat {
		return nil
	}
	switch _, err := m.pep.PEPNode(ctx, owner.String(), NodeBookmarks); {
	case err == nil:
		return nil
	case !errors.Is(err, storage.ErrNotFound):
		return fmt.Errorf("pep: load node: %w", err)
	}
	el, err := m.privateBookmarks(ctx, owner)
	if err != nil {
		return err
	}
	return m.syncFromPrivate(ctx, owner, owner, el)
}

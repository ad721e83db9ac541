package pep

// XEP-0398: the server keeps an account's XEP-0084 avatar (PEP nodes
// urn:xmpp:avatar:data and urn:xmpp:avatar:metadata) and its XEP-0153
// avatar (the PHOTO of its vCard) in step, and puts the avatar's hash into
// the account's available presences, so that clients of either kind, and
// rooms, show the same picture without downloading it on every connect.
//
//   - PEP to vCard: a publish to the metadata node makes the vCard's PHOTO
//     the data item the metadata names (the info without a url; its SHA-1
//     is checked). An empty metadata item (avatar removed) removes the
//     PHOTO.
//   - vCard to PEP: after a client sets its vCard (seen on the Outbound
//     chain once the vcard module has stored it), a PHOTO whose SHA-1 is
//     not the current metadata id is published to the data node and then
//     the metadata node, with notifications, as the client would have.
//     Both write stores directly, never through IQs, so neither direction
//     triggers the other.
//   - Presence: every available presence a client sends gets
//     <x xmlns='vcard-temp:x:update'><photo>SHA-1</photo></x>, unless it
//     carries an empty <photo/> (the client says it has none); an x
//     without a photo is filled in. Directed presences (room joins) too.
//
// A vCard avatar is public (XEP-0153 has no access control), so the
// conversion is announced (urn:xmpp:pep-vcard-conversion:0) and can be
// switched off with avatar_conversion.

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/xmlstream"
)

// Avatar nodes and namespaces.
const (
	NodeAvatarData         = "urn:xmpp:avatar:data"
	NodeAvatarMetadata     = "urn:xmpp:avatar:metadata"
	NSVCard                = "vcard-temp"
	NSVCardUpdate          = "vcard-temp:x:update"
	FeatureVCardConversion = "urn:xmpp:pep-vcard-conversion:0"
)

// maxVCardBytes bounds a vCard the conversion writes: a photo of the
// largest default payload (128 KiB of base64) and the rest of the card,
// well inside the 256 KiB stanza that carries it back to clients.
const maxVCardBytes = 192 << 10

// avatarHashes caches each account's avatar hash ("" for none) for the
// presence hook. It is bounded: when full it is emptied, and accounts
// load their hash again from the vCard on their next presence.
type avatarHashes struct {
	mu  sync.Mutex
	m   map[string]string
	max int
}

func (c *avatarHashes) get(owner string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.m[owner]
	return h, ok
}

func (c *avatarHashes) put(owner, hash string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[owner] = hash
}

// provisionAvatars declares the conversion's hooks.
func (m *Module) provisionAvatars(h module.Host) {
	m.avatars = &avatarHashes{m: map[string]string{}, max: m.opts.CapsCacheSize * 16}
	h.Hook(module.Outbound, module.Filter, m.presenceHash) // before presence broadcasts it
	h.Hook(module.Outbound, module.Observe, m.vcardSet)
}

// vcardPhoto returns the PHOTO of an account's stored vCard: its type, the
// image, and the vCard itself (nil when there is none).
func (m *Module) vcardPhoto(ctx context.Context, owner string) (typ string, img []byte, card *stanza.Element, err error) {
	b, err := m.store.VCard(ctx, owner)
	if errors.Is(err, storage.ErrNotFound) || len(b) == 0 {
		return "", nil, nil, nil
	}
	if err != nil {
		return "", nil, nil, fmt.Errorf("pep: read vCard: %w", err)
	}
	card, err = xmlstream.ParseElement(b, xmlstream.Limits{MaxStanzaBytes: len(b) + 1024})
	if err != nil || card.Name.Space != NSVCard {
		return "", nil, nil, nil // not a vCard we can read: leave it alone
	}
	photo := card.Child(NSVCard, "PHOTO")
	if photo == nil {
		return "", nil, card, nil
	}
	img, err = base64.StdEncoding.DecodeString(stripSpace(photo.ChildText(NSVCard, "BINVAL")))
	if err != nil || len(img) == 0 {
		return "", nil, card, nil
	}
	return photo.ChildText(NSVCard, "TYPE"), img, card, nil
}

// stripSpace removes the line breaks and blanks base64 in XML may carry.
func stripSpace(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, s)
}

func sha1Hex(b []byte) string {
	h := sha1.Sum(b)
	return hex.EncodeToString(h[:])
}

// hashOf returns the account's avatar hash, from the cache or the vCard.
func (m *Module) hashOf(ctx context.Context, owner string) (string, error) {
	if h, ok := m.avatars.get(owner); ok {
		return h, nil
	}
	_, img, _, err := m.vcardPhoto(ctx, owner)
	if err != nil {
		return "", err
	}
	h := ""
	if img != nil {
		h = sha1Hex(img)
	}
	m.avatars.put(owner, h)
	return h, nil
}

// presenceHash puts the avatar hash into available presences.
func (m *Module) presenceHash(ctx context.Context, p *module.Packet) (module.Verdict, error) {
	s := p.Stanza
	if s.Kind != stanza.KindPresence || s.Type != "" || p.Origin == nil {
		return module.Continue, nil
	}
	x := s.El.Child(NSVCardUpdate, "x")
	if x != nil {
		if ph := x.Child(NSVCardUpdate, "photo"); ph != nil {
			return module.Continue, nil // the client's own statement, empty or not
		}
	}
	hash, err := m.hashOf(ctx, s.From.Bare().String())
	if err != nil {
		m.log.WarnContext(ctx, "avatar hash not known; presence sent without it", "err", err)
		return module.Continue, nil
	}
	if hash == "" {
		return module.Continue, nil
	}
	c := *s
	c.El = s.El.ShallowClone()
	nodes := make([]stanza.Node, 0, len(s.El.Nodes)+1)
	for _, n := range s.El.Nodes {
		if n.Elem != nil && n.Elem.Name.Space == NSVCardUpdate && n.Elem.Name.Local == "x" {
			continue // an x without a photo: replaced
		}
		nodes = append(nodes, n)
	}
	upd := stanza.New(NSVCardUpdate, "x").Append(stanza.New(NSVCardUpdate, "photo").AppendText(hash))
	c.El.Nodes = append(nodes, stanza.Node{Elem: upd})
	p.Stanza = &c
	return module.Continue, nil
}

// avatarPublished makes the vCard's PHOTO the avatar the metadata node now
// names (PEP to vCard). Failures are logged: the PEP change stands.
func (m *Module) avatarPublished(ctx context.Context, owner jid.JID) {
	if err := m.avatarToVCard(ctx, owner.String()); err != nil {
		m.log.ErrorContext(ctx, "avatar conversion to vCard", "owner", owner.String(), "err", err)
	}
}

func (m *Module) avatarToVCard(ctx context.Context, owner string) error {
	items, err := m.pep.PEPItems(ctx, owner, NodeAvatarMetadata, nil, 1)
	if err != nil || len(items) == 0 {
		return err
	}
	meta, err := parsePayload(items[0].Payload)
	if err != nil || meta.Name.Space != NodeAvatarMetadata || meta.Name.Local != "metadata" {
		return nil
	}
	var id, typ string
	meta.Children(func(c *stanza.Element) bool {
		if c.Name.Space == NodeAvatarMetadata && c.Name.Local == "info" && c.Get("url") == "" && id == "" {
			id, typ = strings.ToLower(c.Get("id")), c.Get("type")
		}
		return true
	})
	var img []byte
	if id != "" {
		data, err := m.pep.PEPItems(ctx, owner, NodeAvatarData, []string{id}, 0)
		if err != nil {
			return err
		}
		if len(data) == 0 {
			// A metadata id whose data is elsewhere or not yet published.
			return nil
		}
		d, err := parsePayload(data[0].Payload)
		if err != nil || d.Name.Space != NodeAvatarData {
			return nil
		}
		if img, err = base64.StdEncoding.DecodeString(stripSpace(d.Text())); err != nil || sha1Hex(img) != id {
			m.log.WarnContext(ctx, "avatar data does not match its id; vCard left alone", "owner", owner)
			return nil
		}
	}
	_, old, card, err := m.vcardPhoto(ctx, owner)
	if err != nil {
		return err
	}
	if (img == nil && old == nil) || (img != nil && old != nil && sha1Hex(old) == id) {
		m.avatars.put(owner, id)
		return nil // already in step
	}
	if card == nil {
		card = stanza.New(NSVCard, "vCard")
	}
	out := card.ShallowClone()
	out.Nodes = nil
	card.Children(func(c *stanza.Element) bool {
		if !(c.Name.Space == NSVCard && c.Name.Local == "PHOTO") {
			out.Append(c)
		}
		return true
	})
	if img != nil {
		if typ == "" {
			typ = "image/png"
		}
		out.Append(stanza.New(NSVCard, "PHOTO").Append(
			stanza.New(NSVCard, "TYPE").AppendText(typ),
			stanza.New(NSVCard, "BINVAL").AppendText(base64.StdEncoding.EncodeToString(img))))
	}
	b := out.AppendXML(nil, "")
	if len(b) > maxVCardBytes {
		return fmt.Errorf("pep: the vCard with the avatar would have %d bytes, more than %d", len(b), maxVCardBytes)
	}
	if err := m.store.SetVCard(ctx, owner, b); err != nil {
		return fmt.Errorf("pep: store vCard: %w", err)
	}
	m.avatars.put(owner, id)
	return nil
}

// vcardSet publishes a vCard's new PHOTO as the PEP avatar (vCard to PEP)
// after a client set its vCard.
func (m *Module) vcardSet(ctx context.Context, p *module.Packet) (module.Verdict, error) {
	s := p.Stanza
	if s.Kind != stanza.KindIQ || s.Type != "set" || p.Origin == nil || p.Target != module.ToAccount {
		return module.Continue, nil
	}
	if q := s.Payload(); q == nil || q.Name.Space != NSVCard || q.Name.Local != "vCard" {
		return module.Continue, nil
	}
	owner := s.From.Bare()
	if !s.To.IsZero() && s.To.Bare() != owner {
		return module.Continue, nil
	}
	if err := m.vcardToAvatar(ctx, owner, s.From); err != nil {
		m.log.ErrorContext(ctx, "avatar conversion from vCard", "owner", owner.String(), "err", err)
	}
	return module.Continue, nil
}

func (m *Module) vcardToAvatar(ctx context.Context, owner, publisher jid.JID) error {
	// What the vcard module stored, not what the client sent: a refused
	// set changes nothing.
	typ, img, _, err := m.vcardPhoto(ctx, owner.String())
	if err != nil || img == nil {
		if err == nil {
			m.avatars.put(owner.String(), "")
		}
		return err
	}
	id := sha1Hex(img)
	m.avatars.put(owner.String(), id)
	items, err := m.pep.PEPItems(ctx, owner.String(), NodeAvatarMetadata, nil, 1)
	if err != nil {
		return err
	}
	if len(items) > 0 {
		if meta, err := parsePayload(items[0].Payload); err == nil {
			if info := meta.Child(NodeAvatarMetadata, "info"); info != nil && strings.EqualFold(info.Get("id"), id) {
				return nil // already the PEP avatar
			}
		}
	}
	if typ == "" {
		typ = "image/png"
	}
	data := stanza.New(NodeAvatarData, "data").AppendText(base64.StdEncoding.EncodeToString(img))
	meta := stanza.New(NodeAvatarMetadata, "metadata").Append(
		stanza.New(NodeAvatarMetadata, "info").Set("id", id).Set("type", typ).Set("bytes", strconv.Itoa(len(img))))
	for _, it := range []struct {
		node    string
		payload *stanza.Element
	}{{NodeAvatarData, data}, {NodeAvatarMetadata, meta}} {
		b := it.payload.AppendXML(nil, "")
		if len(b) > m.opts.MaxPayloadBytes {
			return fmt.Errorf("pep: the vCard's photo (%d bytes as base64) is larger than max_payload_bytes", len(b))
		}
		cfg, err := m.nodeFor(ctx, owner, it.node, nil)
		if err != nil {
			return err
		}
		if cfg.Persist {
			if err := m.pep.PublishPEPItem(ctx, storage.PEPItem{Owner: owner.String(), Node: it.node, ID: id,
				Payload: b, Publisher: publisher.String()}, m.opts.QuotaBytes); err != nil {
				return fmt.Errorf("pep: publish avatar: %w", err)
			}
		}
		items := stanza.New(NSEvent, "items").Set("node", it.node).Append(itemElement(NSEvent, id, it.payload))
		m.notify(ctx, owner, it.node, cfg, stanza.New(NSEvent, "event").Append(items))
	}
	return nil
}

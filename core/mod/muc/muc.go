// Package muc implements XEP-0045 Multi-User Chat as a component of each
// virtual host, at conference.DOMAIN unless configured otherwise: rooms,
// joining and leaving, nicknames, groupchat messages, the subject, history
// on join, kicks, bans, roles and affiliations through the admin IQs, room
// configuration through a XEP-0004 form, self-ping (XEP-0410), stable
// occupant ids (XEP-0421), the room's stanza-ids (XEP-0359) and archive
// queries addressed to the room (XEP-0313).
//
// # Routing
//
// The module serves its domain through module.Host.ServeDomain: the router
// hands it every stanza addressed to the service or a room, after the
// sender's Outbound chain (so the policy gate and limits have seen it).
// Everything a room sends to an occupant it sends with module.Host.Route,
// addressed to the occupant's full JID, so that it walks the recipient's
// Inbound chain like any other stanza. The host's disco#items lists the
// service.
//
// # Rooms
//
// A room comes into being when its first occupant joins, who becomes its
// owner (status 201). It is locked, with its owner alone in it (others get
// item-not-found), until the owner submits a configuration or the empty
// form of an instant room (XEP-0045 §10.1); cancelling that first
// configuration, or leaving before it, destroys the room. lock_new_rooms
// false opens new rooms at once instead. A temporary room ends when its
// last occupant leaves. An owner destroys a room (§10.9): each occupant
// gets its own unavailable presence with <destroy/> (alternate venue,
// password and reason as given), and the stored state is deleted; the
// room's archive stays (see below). A persistent
// room stays, and its state (configuration, affiliations, subject, the
// occupant-id key) is stored (storage.MUCRooms, on both backends), sealed
// with the host's Sealer under the room's JID because it may hold a
// password, each time it changes; it is restored when the server starts.
// Occupants are not stored; history is the room's archive (below). Rooms are
// semi-anonymous: an occupant's real JID is shown
// to moderators only.
//
// Joining asks the contact policy (core/gate, action muc.join, Room set);
// a refusal is a presence error with the policy's reason. A nickname held
// by another person is a conflict; an outcast is forbidden; a members-only
// room admits members, admins and owners only (registration-required); a
// full room is service-unavailable. A session that closes, or a resource
// that sends unavailable presence to the server, leaves every room it is
// in; an error bounced by an occupant's server removes the occupant.
//
// A mediated invitation (XEP-0045 §7.8.2) from an occupant asks the
// contact policy (muc.invite, inviter to invitee, Room set) and is relayed
// from the room; in a members-only room only admins and owners invite,
// and the invitee becomes a member. The room remembers the invitation
// (in memory, at most max_pending_invites invitees per room, ten inviters
// each) so that the invitee's
// <decline/> sent to the room goes back to that inviter, from the room,
// once; a decline without an invitation is item-not-found. Direct
// invitations (XEP-0249) go from client to client and need nothing of the
// room: the policy gate (core/mod/gate) asks muc.invite for them as well.
// Supporting them is a client's feature that the client announces
// (XEP-0249 §3), so the service lists no feature for them.
//
// Configuration changes are announced to the occupants (status 104, or
// 172 and 173 when who sees real JIDs changes); a room that becomes
// members-only removes its non-members (322), one that is no longer
// moderated makes its visitors participants. Where the room is archived,
// a joiner is told (170).
//
// # Voice and registration
//
// In a moderated room a visitor asks for voice with the muc#request form
// (§7.13); every moderator gets an approval form, and a moderator's
// submission with muc#request_allow true makes the visitor a participant
// (§8.6). An occupant may ask once per voice_request_interval.
//
// Where the owner allows it (the configuration field
// {https://kontor.im/ns/muc}allowregister, off by default), a user
// registers with the room (jabber:iq:register, §7.10): the muc#register
// form asks for a nickname
// only, which is then reserved for them (nobody else joins, changes to or
// registers it: conflict), and an unaffiliated user becomes a member. In a
// members-only room only those on the member list register (to reserve a
// nickname): the room makes nobody a member on their own request, and
// approval of registrations by an admin (§9.9) is not implemented. The
// reserved nickname is found at the disco#info node x-roomuser-item
// (§7.12), is shown in the member list and may be set there by an admin,
// and goes when the user leaves the member list (or is banned) or cancels
// the registration (<remove/>, which also ends a plain membership).
//
// # Messages
//
// A groupchat message from an occupant (a participant or moderator: in a
// moderated room visitors may not speak) is sent to every occupant from
// the sender's room JID, with <stanza-id by='ROOM' id='…'/> and
// <occupant-id/> added; forged ones are removed. A message with a subject
// and no body changes the subject (moderators only, unless the room lets
// participants change it). The last max_history messages with a body are
// kept in memory for history on join; the room's history length
// (muc#maxhistoryfetch, at most max_history) caps what a joiner gets, and
// the request's maxstanzas, maxchars (whole stanzas as sent, counted from
// the newest), seconds and since narrow it. A room restored at start
// loads its history from its archive at the first join (when the host has
// one), so history survives a restart with the stanza-ids, occupant-ids
// and delay stamps occupants saw first, and ends with the archive's
// retention; without an archive it is memory only.
//
// A destroyed room's archive is not deleted with it: its messages stay
// under the retention they were archived with (and under legal holds)
// until the archive's purge removes them, like any other archived
// message, and GDPR exports and eDiscovery of the room's JID find them. A
// new room at the same address reads its archive only from its own
// creation on (the creation time is stored with the room), so it neither
// replays nor serves the old room's messages; the same holds for a
// temporary room that ended and was created anew.
//
// When the host has an archive (module.Host.Archive), each message with a
// body goes into the room's archive: owner is the room's bare JID, With is
// the sender's room JID, the id is the stanza-id all occupants see. The
// archive seals it with the room's keys and asks the retention decision
// for the room's class (cmd/kontor fills RetentionInput.Room for owners at
// a MUC domain). It is queried with XEP-0313 IQs addressed to the room:
// in an open room by anyone but outcasts (as anyone may join and read
// along), in a members-only room by its occupants and members.
//
// # Rooms from the directory
//
// directory_rooms maps directory groups (core/directory, fed by ldapsync)
// to rooms: each listed room exists from the start, persistent,
// members-only and unlisted, and the module, a directory.Sink that
// cmd/kontor hands every directory snapshot, makes the group's members
// (nesting resolved) the room's members. Someone who leaves the group
// loses the membership and is removed from the room (status 321).
// Affiliations set by hand win: an owner, admin or outcast stays one. Such
// a room has no owner, so its configuration stays as the mapping made it.
//
// # Options
//
// domain (default "", meaning conference.DOMAIN); max_history (20, 0–100);
// max_occupants per room (200, 1–10000); max_rooms (1000, 1–100000);
// page_size and max_page_size of archive queries (50 and 250, at most 500);
// max_nick_bytes (64, 1–1023); max_pending_invites, the mediated
// invitations a room remembers for declines (1000, 1–100000);
// voice_request_interval, the least time between two voice requests of an
// occupant (1m, 1s–24h); lock_new_rooms (true); directory_rooms (a list of
// group, room and name).
package muc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"kontor.im/kontor/core/uuid7"

	"kontor.im/kontor/core/gate"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

// ID is the module's configuration key.
const ID = "muc"

// Namespaces.
const (
	NS          = "http://jabber.org/protocol/muc"
	NSUser      = NS + "#user"
	NSAdmin     = NS + "#admin"
	NSOwner     = NS + "#owner"
	NSStableID  = "http://jabber.org/protocol/muc#stable_id"
	NSSelfPing  = "urn:xmpp:ping" // XEP-0410 uses XEP-0199 pings
	NSOccupant  = "urn:xmpp:occupant-id:0"
	NSStanzaID  = "urn:xmpp:sid:0"
	NSMAM       = "urn:xmpp:mam:2"
	NSDelay     = "urn:xmpp:delay"
	NSForward   = "urn:xmpp:forward:0"
	NSDiscoInfo = "http://jabber.org/protocol/disco#info"
	NSDiscoItem = "http://jabber.org/protocol/disco#items"
	NSRoomInfo  = NS + "#roominfo"
	NSRoomConf  = NS + "#roomconfig"
)

// Bounds of the options.
const (
	DefaultMaxHistory   = 20
	DefaultMaxOccupants = 200
	DefaultMaxRooms     = 1000
	DefaultPageSize     = 50
	DefaultMaxPageSize  = 250
	DefaultMaxNickBytes = 64
	DefaultMaxInvites   = 1000
	// DefaultVoiceRequestInterval is how often an occupant may ask for
	// voice.
	DefaultVoiceRequestInterval = time.Minute
)

func init() {
	module.Register(module.Info{
		ID:          ID,
		Description: "Multi-user chat at conference.DOMAIN: rooms, history, subject, kicks and bans, room archives under the room's retention class; join asks the contact policy",
		Specs: []module.Spec{
			{ID: "XEP-0045", Name: "Multi-User Chat", Version: "1.34.6", Status: module.Complete,
				Note: "history on join survives a restart where archive.enabled is set (it comes from the room's archive); registration where the owner allows it, without admin approval (§9.9); semi-anonymous and non-anonymous rooms"},
			{ID: "XEP-0249", Name: "Direct MUC Invitations", Version: "1.2", Status: module.Complete,
				Note: "client to client; the policy gate asks the contact policy (muc.invite) for each"},
			{ID: "XEP-0421", Name: "Anonymous unique occupant identifiers for MUCs", Version: "0.1.0", Status: module.Complete},
			{ID: "XEP-0410", Name: "MUC Self-Ping (Schrödinger's Chat)", Version: "1.1.0", Status: module.Complete},
			{ID: "XEP-0359", Name: "Unique and Stable Stanza IDs", Version: "0.7.0", Status: module.Partial,
				Note: "the room's stanza-id on groupchat messages"},
			{ID: "XEP-0313", Name: "Message Archive Management", Version: "1.1.3", Status: module.Complete,
				Note: "room archives, with the #extended features (the same query code as user archives, core/mamquery); a room shows only what was said since it was created; the optional RSM index is not supported; needs archive.enabled"},
		},
		Default: true,
		New:     func() module.Module { return &Module{opts: DefaultOptions()} },
	})
}

// Options configure the module.
type Options struct {
	// Domain is the service's domain; "" means conference.DOMAIN.
	Domain       string `mapstructure:"domain"`
	MaxHistory   int    `mapstructure:"max_history"`
	MaxOccupants int    `mapstructure:"max_occupants"`
	MaxRooms     int    `mapstructure:"max_rooms"`
	PageSize     int    `mapstructure:"page_size"`
	MaxPageSize  int    `mapstructure:"max_page_size"`
	MaxNickBytes int    `mapstructure:"max_nick_bytes"`
	// MaxPendingInvites bounds the mediated invitations a room remembers
	// so that a decline reaches the inviter.
	MaxPendingInvites int `mapstructure:"max_pending_invites"`
	// VoiceRequestInterval is the least time between two voice requests
	// of one occupant.
	VoiceRequestInterval time.Duration `mapstructure:"voice_request_interval"`
	// LockNewRooms keeps a new room locked, with only its creator in it,
	// until the creator submits a configuration or accepts the default
	// one (an instant room), as XEP-0045 §10.1 requires.
	LockNewRooms bool `mapstructure:"lock_new_rooms"`
	// DirectoryRooms are rooms whose members follow directory groups.
	DirectoryRooms []DirectoryRoom `mapstructure:"directory_rooms"`
}

// DefaultOptions returns the defaults.
func DefaultOptions() Options {
	return Options{MaxHistory: DefaultMaxHistory, MaxOccupants: DefaultMaxOccupants, MaxRooms: DefaultMaxRooms,
		PageSize: DefaultPageSize, MaxPageSize: DefaultMaxPageSize, MaxNickBytes: DefaultMaxNickBytes,
		MaxPendingInvites: DefaultMaxInvites, VoiceRequestInterval: DefaultVoiceRequestInterval, LockNewRooms: true}
}

// Validate checks the values.
func (o *Options) Validate() error {
	check := func(name string, v, lo, hi int) error {
		if v < lo || v > hi {
			return fmt.Errorf("muc: %s must be between %d and %d, got %d", name, lo, hi, v)
		}
		return nil
	}
	if o.Domain != "" {
		d, err := jid.Parse(o.Domain)
		if err != nil || d.Local() != "" || !d.IsBare() {
			return fmt.Errorf("muc: domain %q is not a domain", o.Domain)
		}
	}
	return errors.Join(
		check("max_history", o.MaxHistory, 0, 100),
		check("max_occupants", o.MaxOccupants, 1, 10000),
		check("max_rooms", o.MaxRooms, 1, 100000),
		check("max_page_size", o.MaxPageSize, 1, 500),
		check("page_size", o.PageSize, 1, o.MaxPageSize),
		check("max_nick_bytes", o.MaxNickBytes, 1, 1023),
		check("max_pending_invites", o.MaxPendingInvites, 1, 100000),
		o.validateDirectoryRooms(),
		o.validateVoiceInterval(),
	)
}

// Module is the MUC service of one virtual host.
type Module struct {
	opts    Options
	host    module.Host
	service jid.JID
	decider gate.Decider
	archive module.Archive
	log     *slog.Logger
	store   storage.MUCRooms // nil: rooms are not stored
	sealer  module.Sealer
	now     func() time.Time
	ids     *uuid7.Generator

	// storeMu orders the writes of rooms' stored state (persist, destroy):
	// each takes its snapshot and writes it while holding storeMu, and
	// only for the room that is current at its address, so a destroyed
	// room is never stored again by a write that was under way, and a
	// room that went never touches the record of a new one at the same
	// address. It is taken before mu.
	storeMu sync.Mutex
	// mu guards rooms; a room's own lock may be taken while holding mu,
	// never the reverse.
	mu    sync.Mutex
	rooms map[string]*room // by bare room JID
}

var _ module.Configurable = (*Module)(nil)

// Options returns the module's options, filled with defaults.
func (m *Module) Options() any { return &m.opts }

// SetDecider gives the module its policy engine (cmd/kontor calls it
// before the host provisions the module). Without one every join is
// refused (fail closed).
func (m *Module) SetDecider(d gate.Decider) { m.decider = d }

// Service is the service's domain JID (after Provision).
func (m *Module) Service() jid.JID { return m.service }

// Provision serves the MUC domain.
func (m *Module) Provision(h module.Host) error {
	m.host, m.log, m.archive = h, h.Logger(), h.Archive()
	if m.now == nil {
		m.now = time.Now
	}
	m.ids = uuid7.New(m.now)
	m.rooms = map[string]*room{}
	domain := m.opts.Domain
	if domain == "" {
		domain = "conference." + h.Domain().String()
	}
	svc, err := jid.Parse(domain)
	if err != nil {
		return fmt.Errorf("muc: %w", err)
	}
	m.service = svc
	m.sealer = h.Sealer()
	if st, ok := h.Store().(storage.MUCRooms); ok && m.sealer != nil {
		m.store = st
	}
	if err := m.load(context.Background()); err != nil {
		return err
	}
	if err := h.ServeDomain(svc.String(), m.handle); err != nil {
		return fmt.Errorf("muc: %w", err)
	}
	if m.decider == nil {
		m.log.Warn("no policy engine: every room join is refused")
	}
	h.AddDisco(module.ToHost, module.Disco{Items: []module.DiscoItem{{JID: svc, Name: "Chatrooms"}}})
	m.directoryRooms()
	h.On(module.SessionClosed, m.sessionGone)
	h.On(module.SessionUnavailable, m.sessionGone)
	return nil
}

// handle is the DomainHandler: every stanza to the service or a room.
func (m *Module) handle(ctx context.Context, p *module.Packet) error {
	s := p.Stanza
	if s.From.IsZero() || s.From.Local() == "" {
		// Only users join rooms.
		if s.Kind == stanza.KindIQ && (s.Type == "get" || s.Type == "set") {
			return stanza.ErrForbidden("only users may use this service")
		}
		return nil
	}
	if s.To.Local() == "" {
		return m.serviceStanza(ctx, s)
	}
	if s.IsError() {
		m.bounced(ctx, s)
		return nil
	}
	switch s.Kind {
	case stanza.KindPresence:
		return m.presence(ctx, s)
	case stanza.KindMessage:
		return m.message(ctx, s)
	case stanza.KindIQ:
		if s.Type != "get" && s.Type != "set" {
			return nil
		}
		res, after, err := m.iq(ctx, s)
		if err != nil {
			return err
		}
		m.host.Route(ctx, stanza.NewIQ(s.To, s.From, "result", s.ID, res))
		m.send(ctx, after)
	}
	return nil
}

// serviceStanza answers what is addressed to the service itself.
func (m *Module) serviceStanza(ctx context.Context, s *stanza.Stanza) error {
	if s.Kind != stanza.KindIQ || (s.Type != "get" && s.Type != "set") {
		return nil
	}
	q := s.Payload()
	if q == nil || s.Type != "get" {
		return stanza.ErrServiceUnavailable("")
	}
	var res *stanza.Element
	switch {
	case q.Name.Space == NSDiscoInfo && q.Name.Local == "query" && q.Get("node") == "":
		res = stanza.New(NSDiscoInfo, "query").Append(
			stanza.New(NSDiscoInfo, "identity").Set("category", "conference").Set("type", "text").Set("name", "Chatrooms"),
			feature(NSDiscoInfo), feature(NSDiscoItem), feature(NS), feature(NSStableID), feature(NSOccupant))
	case q.Name.Space == NSDiscoItem && q.Name.Local == "query" && q.Get("node") == "":
		res = stanza.New(NSDiscoItem, "query")
		for _, r := range m.publicRooms() {
			res.Append(stanza.New(NSDiscoItem, "item").Set("jid", r.jid).Set("name", r.name))
		}
	default:
		return stanza.ErrServiceUnavailable("")
	}
	m.host.Route(ctx, stanza.NewIQ(s.To, s.From, "result", s.ID, res))
	return nil
}

func feature(v string) *stanza.Element { return stanza.New(NSDiscoInfo, "feature").Set("var", v) }

type roomItem struct{ jid, name string }

// publicRooms lists the public rooms, for disco#items.
func (m *Module) publicRooms() []roomItem {
	m.mu.Lock()
	list := make([]*room, 0, len(m.rooms))
	for _, r := range m.rooms {
		list = append(list, r)
	}
	m.mu.Unlock()
	var out []roomItem
	for _, r := range list {
		r.mu.Lock()
		if r.cfg.Public && !r.gone {
			name := r.cfg.Name
			if name == "" {
				name = r.jid.Local()
			}
			out = append(out, roomItem{r.jid.String(), name})
		}
		r.mu.Unlock()
	}
	sortItems(out)
	return out
}

// lookup returns an existing room.
func (m *Module) lookup(bare jid.JID) *room {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rooms[bare.String()]
}

// sessionGone removes a closed or unavailable session from every room.
func (m *Module) sessionGone(ctx context.Context, ev module.Event) {
	full := ev.Resource.JID()
	m.mu.Lock()
	list := make([]*room, 0, len(m.rooms))
	for _, r := range m.rooms {
		list = append(list, r)
	}
	m.mu.Unlock()
	for _, r := range list {
		r.mu.Lock()
		o := r.byJID[full]
		var out []outgoing
		if o != nil {
			out = r.removeLocked(o, nil, "")
		}
		r.mu.Unlock()
		m.send(ctx, out)
		if o != nil {
			m.maybeEnd(r)
		}
	}
}

// bounced handles an error an occupant's server returned: the occupant is
// gone (XEP-0045 §18.1, "ghost" users).
func (m *Module) bounced(ctx context.Context, s *stanza.Stanza) {
	r := m.lookup(s.To.Bare())
	if r == nil {
		return
	}
	r.mu.Lock()
	o := r.byJID[s.From]
	var out []outgoing
	if o != nil {
		out = r.removeLocked(o, []string{"333"}, "")
	}
	r.mu.Unlock()
	m.send(ctx, out)
	if o != nil {
		m.maybeEnd(r)
	}
}

// maybeEnd removes an empty temporary room.
func (m *Module) maybeEnd(r *room) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.occupants) == 0 && !r.cfg.Persistent && m.rooms[r.jid.String()] == r {
		r.gone = true
		delete(m.rooms, r.jid.String())
	}
}

// outgoing is a stanza a room sends, collected under the room's lock and
// routed after it is released.
type outgoing = *stanza.Stanza

func (m *Module) send(ctx context.Context, out []outgoing) {
	for _, s := range out {
		m.host.Route(ctx, s)
	}
}

// allowJoin asks the contact policy whether user may join the room.
func (m *Module) allowJoin(ctx context.Context, user jid.JID, room jid.JID) error {
	return m.ask(ctx, gate.ContactInput{Action: gate.ActionMUCJoin, StanzaType: "",
		From: gate.Party{JID: user.Bare().String(), Local: m.host.IsLocal(user.Domain())},
		Room: room.String()})
}

// ask asks the contact decision; a refusal is the error for the sender.
func (m *Module) ask(ctx context.Context, in gate.ContactInput) error {
	d := gate.Failed(gate.ReasonUnavailable, "The server has no policy engine, so it refuses rather than skip the policy check. Tell your administrator.", nil)
	if m.decider != nil {
		d = m.decider.Contact(ctx, in)
	}
	if d.Allow {
		return nil
	}
	m.log.InfoContext(ctx, "refused by policy", "action", string(in.Action), "room", in.Room, "decision", d.ID, "reason", d.Reason, "err", d.Err)
	return d.StanzaError()
}

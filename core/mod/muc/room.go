package muc

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"kontor.im/kontor/core/dataform"
	"kontor.im/kontor/core/gate"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
)

// Affiliations and roles (XEP-0045 §5).
const (
	Owner   = "owner"
	Admin   = "admin"
	Member  = "member"
	Outcast = "outcast"
	None    = "none"

	Moderator   = "moderator"
	Participant = "participant"
	Visitor     = "visitor"
)

// rank orders affiliations.
func rank(aff string) int {
	switch aff {
	case Owner:
		return 4
	case Admin:
		return 3
	case Member:
		return 2
	case None, "":
		return 1
	}
	return 0 // outcast
}

// room is one chat room. Its fields are guarded by mu; stanzas it sends
// are built under mu and routed after it is released, so that delivery
// (which may call back into the module for a bounced error) never runs
// under the lock.
type room struct {
	jid    jid.JID
	secret []byte // keys the occupant ids

	mu   sync.Mutex
	gone bool // removed from the service: a join must start anew
	// locked is set for a new room until its owner configures it (or
	// accepts the default configuration): only owners enter (§10.1.1).
	locked bool
	// created is when the room came into being (zero for a room stored
	// before it was recorded): its archive is read from then on, so that
	// a new room at the address of a destroyed one does not show the old
	// room's messages.
	created      time.Time
	cfg          Config
	subject      string
	subjectFrom  jid.JID // the room JID that set it
	occupants    map[string]*occupant
	byJID        map[jid.JID]*occupant
	affiliations map[string]string // bare JID → owner, admin, member, outcast
	// nicks are the reserved nicknames (registration, §7.10) by bare JID
	// of someone on the member list; nil when there are none.
	nicks   map[string]string
	history []historyItem // oldest first, at most max_history
	// primed is set once history holds what the archive had when the
	// room was restored (or for a room created here, which starts
	// empty); primeMu makes the load happen once.
	primed  bool
	primeMu sync.Mutex
	// invited maps an invitee's bare JID to the bare JIDs of those who
	// invited them here (mediated), so that a decline goes back to an
	// inviter only; at most max_pending_invites invitees.
	invited map[string]map[string]bool
	// directory holds the members the directory gave (bare JIDs) of a
	// room that follows a directory group; nil for other rooms.
	directory map[string]bool
}

type occupant struct {
	nick        string
	real        jid.JID // full JID
	role        string
	occupantID  string
	presence    *stanza.Stanza // the last presence, as the occupant sent it
	affiliation string
	voiceAt     time.Time // the occupant's last voice request
}

type historyItem struct {
	msg *stanza.Stanza // as sent to occupants (to not set)
	id  string         // the room's stanza-id (UUIDv7: orders items)
	at  time.Time
}

func newRoom(bare jid.JID) *room {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	return &room{jid: bare, secret: secret, cfg: DefaultConfig(),
		occupants: map[string]*occupant{}, byJID: map[jid.JID]*occupant{}, affiliations: map[string]string{}}
}

// occupantIDOf is the XEP-0421 id of a real bare JID in this room: stable,
// and telling nothing about the JID without the room's secret.
func (r *room) occupantIDOf(real jid.JID) string {
	mac := hmac.New(sha256.New, r.secret)
	mac.Write([]byte(real.Bare().String()))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:18])
}

func (r *room) affiliation(real jid.JID) string {
	if a, ok := r.affiliations[real.Bare().String()]; ok {
		return a
	}
	return None
}

func (r *room) roleFor(aff string) string {
	switch {
	case aff == Owner || aff == Admin:
		return Moderator
	case r.cfg.Moderated && aff != Member:
		return Visitor
	}
	return Participant
}

func (r *room) occupantJID(nick string) jid.JID {
	j, _ := jid.New(r.jid.Local(), r.jid.Domain(), nick)
	return j
}

// presenceOf builds o's presence as the occupant to gets it, with the
// given status codes (110 is added for o itself).
func (r *room) presenceOf(o *occupant, to *occupant, typ string, codes []string, extra func(item *stanza.Element)) *stanza.Stanza {
	var p *stanza.Stanza
	if typ == "" && o.presence != nil {
		p = o.presence.Readdress(r.occupantJID(o.nick), to.real)
		p.El = p.El.ShallowClone()
		nodes := p.El.Nodes[:0:0]
		for _, n := range p.El.Nodes {
			if n.Elem != nil && (n.Elem.Name.Space == NS || n.Elem.Name.Space == NSUser || n.Elem.Name.Space == NSOccupant) {
				continue
			}
			nodes = append(nodes, n)
		}
		p.El.Nodes = nodes
	} else {
		p = stanza.NewPresence(r.occupantJID(o.nick), to.real, typ)
	}
	item := stanza.New(NSUser, "item").Set("affiliation", o.affiliation).Set("role", o.role)
	if typ == "unavailable" {
		item.Set("role", None)
	}
	if to.role == Moderator || r.cfg.WhoIs == "anyone" {
		item.Set("jid", o.real.String())
	}
	if extra != nil {
		extra(item)
	}
	x := stanza.New(NSUser, "x").Append(item)
	if o == to {
		codes = append(slices.Clip(codes), "110")
	}
	if r.cfg.WhoIs == "anyone" && o == to {
		codes = append(codes, "100")
	}
	for _, c := range codes {
		x.Append(stanza.New(NSUser, "status").Set("code", c))
	}
	p.El.Append(x, stanza.New(NSOccupant, "occupant-id").Set("id", o.occupantID))
	return p
}

// broadcastPresence builds o's presence for every occupant.
func (r *room) broadcastPresence(o *occupant, typ string, codes []string, extra func(*stanza.Element)) []outgoing {
	out := make([]outgoing, 0, len(r.occupants))
	for _, to := range r.occupants {
		if to == o {
			continue
		}
		out = append(out, r.presenceOf(o, to, typ, codes, extra))
	}
	// The occupant's own presence comes last (XEP-0045 §7.2.3).
	return append(out, r.presenceOf(o, o, typ, codes, extra))
}

// removeLocked removes o and returns the unavailable presences for
// everyone, o included.
func (r *room) removeLocked(o *occupant, codes []string, reason string) []outgoing {
	delete(r.occupants, o.nick)
	delete(r.byJID, o.real)
	out := make([]outgoing, 0, len(r.occupants)+1)
	extra := func(item *stanza.Element) {
		if reason != "" {
			item.Append(stanza.New(NSUser, "reason").AppendText(reason))
		}
	}
	for _, to := range r.occupants {
		out = append(out, r.presenceOf(o, to, "unavailable", codes, extra))
	}
	out = append(out, r.presenceOf(o, o, "unavailable", codes, extra))
	return out
}

// validNick checks a nickname: the resource part of a JID, within the
// configured length.
func (m *Module) validNick(nick string) bool {
	return nick != "" && len(nick) <= m.opts.MaxNickBytes && utf8.ValidString(nick) && strings.TrimSpace(nick) != ""
}

// presence handles presence to room@service/nick: join, update, nick
// change and leave.
func (m *Module) presence(ctx context.Context, s *stanza.Stanza) error {
	bare := s.To.Bare()
	nick := s.To.Resource()
	switch s.Type {
	case "", "unavailable":
	default:
		return nil // subscriptions and probes mean nothing here
	}
	if nick == "" {
		if s.Type == "" {
			return stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed, Text: "a nickname is needed to join"}
		}
		return nil
	}
	if !m.validNick(nick) {
		return stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed, Text: "this nickname is not allowed"}
	}
	if s.Type == "unavailable" {
		r := m.lookup(bare)
		if r == nil {
			return nil
		}
		r.mu.Lock()
		o := r.byJID[s.From]
		var out []outgoing
		if o != nil {
			status := s.El.ChildText(stanza.NSClient, "status")
			out = r.removeLocked(o, nil, "")
			if r.locked && len(r.occupants) == 0 {
				// The owner left before configuring the new room: it is
				// destroyed (§10.1.2), and the presence says so.
				r.cfg.Persistent = false
				out[len(out)-1].El.Child(NSUser, "x").Append(stanza.New(NSUser, "destroy"))
			}
			if status != "" {
				for _, p := range out {
					p.El.Append(stanza.New(stanza.NSClient, "status").AppendText(status))
				}
			}
		}
		r.mu.Unlock()
		m.send(ctx, out)
		if o != nil {
			m.maybeEnd(r)
		}
		return nil
	}
	return m.join(ctx, s, bare, nick)
}

// join handles available presence: a new occupant, a presence update or a
// nick change.
func (m *Module) join(ctx context.Context, s *stanza.Stanza, bare jid.JID, nick string) error {
	for attempt := 0; ; attempt++ {
		r, created, err := m.room(bare)
		if err != nil {
			return err
		}
		m.primeHistory(ctx, r)
		r.mu.Lock()
		if r.gone {
			r.mu.Unlock()
			if attempt > 2 {
				return stanza.ErrInternal("")
			}
			continue
		}
		out, err := m.joinLocked(ctx, r, s, nick, created)
		r.mu.Unlock()
		if err != nil {
			if created {
				m.maybeEnd(r)
			}
			return err
		}
		m.send(ctx, out)
		return nil
	}
}

// room returns the room, creating it when it does not exist yet.
func (m *Module) room(bare jid.JID) (*room, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.rooms[bare.String()]; r != nil {
		return r, false, nil
	}
	if len(m.rooms) >= m.opts.MaxRooms {
		return nil, false, stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint, Text: "there are too many rooms"}
	}
	r := newRoom(bare)
	r.cfg.HistoryLength = m.opts.MaxHistory
	r.created = m.now().UTC().Truncate(time.Microsecond)
	r.locked = m.opts.LockNewRooms
	r.primed = true // a new room has no history of its own
	m.rooms[bare.String()] = r
	return r, true, nil
}

func (m *Module) joinLocked(ctx context.Context, r *room, s *stanza.Stanza, nick string, created bool) ([]outgoing, error) {
	if o := r.byJID[s.From]; o != nil {
		if o.nick == nick {
			// A presence update (status, show).
			o.presence = s
			return r.broadcastPresence(o, "", nil, nil), nil
		}
		if other := r.occupants[nick]; other != nil && other.real.Bare() != o.real.Bare() {
			return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.Conflict, Text: "this nickname is taken"}
		}
		if by := r.reservedBy(nick); by != "" && by != o.real.Bare().String() {
			return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.Conflict, Text: "this nickname is reserved by someone else"}
		}
		// A nick change (§7.6): unavailable with 303 and the new nick,
		// then available under the new one.
		var out []outgoing
		for _, to := range r.occupants {
			out = append(out, r.presenceOf(o, to, "unavailable", []string{"303"}, func(item *stanza.Element) { item.Set("nick", nick) }))
		}
		delete(r.occupants, o.nick)
		o.nick, o.presence = nick, s
		r.occupants[nick] = o
		return append(out, r.broadcastPresence(o, "", nil, nil)...), nil
	}
	x := s.El.Child(NS, "x")
	if x == nil {
		// Presence to a room JID without <x/>: XEP-0045 §7.2.1 lets
		// servers treat it as a join; clients that lost track send it.
		x = stanza.New(NS, "x")
	}
	if err := m.allowJoin(ctx, s.From, r.jid); err != nil {
		return nil, err
	}
	aff := r.affiliation(s.From)
	if created {
		aff = Owner
		r.affiliations[s.From.Bare().String()] = Owner
	}
	switch {
	case r.locked && aff != Owner:
		return nil, stanza.ErrItemNotFound("this room is being created and is locked until its owner configures it")
	case aff == Outcast:
		return nil, stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden, Text: "you are banned from this room"}
	case r.cfg.MembersOnly && rank(aff) < rank(Member):
		return nil, stanza.Error{Type: stanza.Auth, Condition: stanza.RegistrationRequired, Text: "this room is for members only"}
	case r.cfg.Password != "" && rank(aff) < rank(Owner) && !passwordOK(x, r.cfg.Password):
		return nil, stanza.Error{Type: stanza.Auth, Condition: stanza.NotAuthorized, Text: "this room needs a password"}
	}
	if other := r.occupants[nick]; other != nil {
		return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.Conflict, Text: "this nickname is taken"}
	}
	if by := r.reservedBy(nick); by != "" && by != s.From.Bare().String() {
		return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.Conflict, Text: "this nickname is reserved by someone else"}
	}
	if len(r.occupants) >= min(r.cfg.MaxUsers, m.opts.MaxOccupants) && rank(aff) < rank(Admin) {
		return nil, stanza.Error{Type: stanza.Wait, Condition: stanza.ServiceUnavailable, Text: "the room is full"}
	}
	o := &occupant{nick: nick, real: s.From, affiliation: aff, role: r.roleFor(aff), occupantID: r.occupantIDOf(s.From), presence: s}
	var out []outgoing
	// Existing occupants to the newcomer, then the newcomer to everyone.
	for _, other := range r.occupants {
		out = append(out, r.presenceOf(other, o, "", nil, nil))
	}
	r.occupants[nick], r.byJID[s.From] = o, o
	var codes []string
	if created {
		codes = []string{"201"}
	}
	out = append(out, r.broadcastPresence(o, "", codes, nil)...)
	if m.archive != nil {
		// The room's messages go to its archive, which others may read
		// later: the newcomer is told (status 170, §7.2.12), in the own
		// presence, which broadcastPresence sends last.
		out[len(out)-1].El.Child(NSUser, "x").Append(stanza.New(NSUser, "status").Set("code", "170"))
	}
	out = append(out, r.historyFor(o, x.Child(NS, "history"), min(r.cfg.HistoryLength, m.opts.MaxHistory), m.now())...)
	subj := stanza.NewMessage(r.jid, o.real, "groupchat", "")
	if !r.subjectFrom.IsZero() {
		subj.SetFrom(r.subjectFrom)
	}
	subj.El.Append(stanza.New(stanza.NSClient, "subject").AppendText(r.subject))
	return append(out, subj), nil
}

func passwordOK(x *stanza.Element, want string) bool {
	got := x.ChildText(NS, "password")
	return hmac.Equal([]byte(got), []byte(want))
}

// historyFor returns the history an occupant asked for (XEP-0045
// §7.2.15): at most limit messages (the room's history length), narrowed by
// the request's maxstanzas, seconds and since, and by maxchars, which
// counts the characters of the complete stanzas as sent (with their delay),
// the newest first: a message that does not fit ends the history.
func (r *room) historyFor(o *occupant, h *stanza.Element, limit int, now time.Time) []outgoing {
	items := r.history
	if limit < len(items) {
		items = items[len(items)-max(limit, 0):]
	}
	maxChars := -1
	if h != nil {
		if v, err := strconv.Atoi(h.Get("maxchars")); err == nil && v >= 0 {
			maxChars = v
		}
		if v, err := strconv.Atoi(h.Get("maxstanzas")); err == nil && v >= 0 && v < len(items) {
			items = items[len(items)-v:]
		}
		var since time.Time
		if v, err := strconv.Atoi(h.Get("seconds")); err == nil && v >= 0 {
			since = now.Add(-time.Duration(v) * time.Second)
		}
		if t, err := time.Parse(time.RFC3339Nano, h.Get("since")); err == nil && t.After(since) {
			since = t
		}
		if !since.IsZero() {
			i := 0
			for i < len(items) && items[i].at.Before(since) {
				i++
			}
			items = items[i:]
		}
	}
	out := make([]outgoing, len(items))
	first, chars := len(items), 0
	for i := len(items) - 1; i >= 0; i-- {
		it := items[i]
		c := it.msg.Readdress(it.msg.From, o.real)
		c.El = c.El.ShallowClone()
		c.El.Nodes = append(slices.Clip(c.El.Nodes), stanza.Node{Elem: stanza.New(NSDelay, "delay").
			Set("from", r.jid.String()).Set("stamp", it.at.UTC().Format("2006-01-02T15:04:05.000000Z"))})
		if maxChars >= 0 {
			chars += utf8.RuneCount(c.El.AppendXML(nil, ""))
			if chars > maxChars {
				break
			}
		}
		out[i], first = c, i
	}
	return out[first:]
}

// addHistory keeps msg for history on join, within max_history. r.mu is
// held.
func (r *room) addHistory(it historyItem, maxHistory int) {
	if maxHistory <= 0 {
		return
	}
	if len(r.history) >= maxHistory {
		r.history = append(r.history[:0:0], r.history[len(r.history)-maxHistory+1:]...)
	}
	r.history = append(r.history, it)
}

// primeHistory fills the history of a room restored at start from the
// room's archive, once: the last max_history messages with their
// stanza-ids, occupant-ids and times as occupants first got them, so that
// history on join survives a restart. Messages said since the restart stay
// after them. Without an archive there is nothing to load (history is
// then memory only). A failure is logged and tried again at the next join.
func (m *Module) primeHistory(ctx context.Context, r *room) {
	r.mu.Lock()
	done := r.primed
	r.mu.Unlock()
	if done || m.archive == nil || m.opts.MaxHistory == 0 {
		return
	}
	r.primeMu.Lock()
	defer r.primeMu.Unlock()
	r.mu.Lock()
	done, created := r.primed, r.created
	r.mu.Unlock()
	if done {
		return
	}
	page, err := m.archive.Query(ctx, module.ArchiveQuery{Owner: r.jid.String(), Start: created, Last: true, Max: m.opts.MaxHistory})
	if err != nil {
		m.log.ErrorContext(ctx, "room history not loaded from the archive", "room", r.jid.String(), "err", err)
		return
	}
	loaded := make([]historyItem, 0, len(page.Messages))
	for _, a := range page.Messages {
		el, err := parseStored(a.Stanza)
		if err != nil {
			m.log.ErrorContext(ctx, "archived room message does not parse", "room", r.jid.String(), "archive_id", a.ID, "err", err)
			continue
		}
		msg, err := stanza.Parse(el)
		if err != nil || el.ChildText(stanza.NSClient, "body") == "" {
			continue
		}
		loaded = append(loaded, historyItem{msg: msg, id: a.ID, at: a.Time})
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.primed {
		return
	}
	seen := make(map[string]bool, len(loaded))
	for _, it := range loaded {
		seen[it.id] = true
	}
	for _, it := range r.history {
		if !seen[it.id] {
			loaded = append(loaded, it)
		}
	}
	slices.SortStableFunc(loaded, func(a, b historyItem) int { return strings.Compare(a.id, b.id) })
	r.history = nil
	for _, it := range loaded {
		r.addHistory(it, m.opts.MaxHistory)
	}
	r.primed = true
}

// message handles messages to a room or an occupant.
func (m *Module) message(ctx context.Context, s *stanza.Stanza) error {
	r := m.lookup(s.To.Bare())
	if r == nil {
		if s.Type == "groupchat" || s.Type == "chat" || s.Type == "" || s.Type == "normal" {
			return stanza.ErrItemNotFound("no such room")
		}
		return nil
	}
	if s.To.Resource() != "" {
		return m.private(ctx, r, s)
	}
	if s.Type != "groupchat" {
		if x := s.El.Child(dataform.NS, "x"); x != nil && formType(x) == NSRequest {
			return m.voice(ctx, r, s, x)
		}
		if x := s.El.Child(NSUser, "x"); x != nil {
			switch {
			case x.Child(NSUser, "invite") != nil:
				return m.invite(ctx, r, s, x)
			case x.Child(NSUser, "decline") != nil:
				return m.decline(ctx, r, s, x.Child(NSUser, "decline"))
			}
		}
		return stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: "only groupchat messages go to the room"}
	}
	return m.groupchat(ctx, r, s)
}

// private relays a private message to one occupant (§7.5). It is a
// message between two people, so the contact policy decides it as one
// ("message" from the sender's real JID to the recipient's): a room must
// not be a way around a policy that keeps them apart. (The policy gate
// leaves the room's address to this module.)
func (m *Module) private(ctx context.Context, r *room, s *stanza.Stanza) error {
	r.mu.Lock()
	from, to := r.byJID[s.From], r.occupants[s.To.Resource()]
	var out outgoing
	var in gate.ContactInput
	if from != nil && to != nil && s.Type != "groupchat" {
		in = gate.ContactInput{Action: gate.ActionMessage, StanzaType: s.Type,
			From: gate.Party{JID: from.real.Bare().String(), Local: m.host.IsLocal(from.real.Domain())},
			To:   gate.Party{JID: to.real.Bare().String(), Local: m.host.IsLocal(to.real.Domain())}}
		out = s.Readdress(r.occupantJID(from.nick), to.real)
		out.El = out.El.ShallowClone()
		out.El.Nodes = append(slices.Clip(out.El.Nodes), stanza.Node{Elem: stanza.New(NSUser, "x")},
			stanza.Node{Elem: stanza.New(NSOccupant, "occupant-id").Set("id", from.occupantID)})
	}
	r.mu.Unlock()
	switch {
	case from == nil:
		return stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable, Text: "you are not in this room"}
	case to == nil:
		return stanza.ErrItemNotFound("no such occupant")
	case out == nil:
		return stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: "a private message is not groupchat"}
	}
	if in.From.JID != in.To.JID {
		if err := m.ask(ctx, in); err != nil {
			return err
		}
	}
	m.host.Route(ctx, out)
	return nil
}

// groupchat sends a message to every occupant and archives it.
func (m *Module) groupchat(ctx context.Context, r *room, s *stanza.Stanza) error {
	hasBody := s.El.ChildText(stanza.NSClient, "body") != ""
	subject := s.El.Child(stanza.NSClient, "subject")
	r.mu.Lock()
	o := r.byJID[s.From]
	if o == nil {
		r.mu.Unlock()
		return stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable, Text: "you are not in this room"}
	}
	if o.role == Visitor {
		r.mu.Unlock()
		return stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden, Text: "visitors may not speak in a moderated room"}
	}
	if subject != nil && !hasBody {
		if o.role != Moderator && !r.cfg.ChangeSubject {
			r.mu.Unlock()
			return stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden, Text: "only moderators may change the subject"}
		}
		r.subject, r.subjectFrom = subject.Text(), r.occupantJID(o.nick)
	}
	from := r.occupantJID(o.nick)
	id := m.ids.Next()
	at := m.now().UTC().Truncate(time.Microsecond)
	// The message as occupants get it: the sender's children without
	// forged room stanza-ids and occupant-ids, plus the room's own.
	el := stanza.New(stanza.NSClient, "message").Set("type", "groupchat").Set("from", from.String())
	if s.ID != "" {
		el.Set("id", s.ID)
	}
	for _, n := range s.El.Nodes {
		if e := n.Elem; e != nil && ((e.Name.Space == NSStanzaID && e.Name.Local == "stanza-id" && e.Get("by") == r.jid.String()) ||
			e.Name.Space == NSOccupant) {
			continue
		}
		el.Nodes = append(el.Nodes, n)
	}
	el.Append(stanza.New(NSStanzaID, "stanza-id").Set("id", id).Set("by", r.jid.String()),
		stanza.New(NSOccupant, "occupant-id").Set("id", o.occupantID))
	msg, err := stanza.Parse(el)
	if err != nil {
		r.mu.Unlock()
		return stanza.ErrBadRequest("")
	}
	if hasBody {
		r.addHistory(historyItem{msg: msg, id: id, at: at}, m.opts.MaxHistory)
	}
	targets := make([]jid.JID, 0, len(r.occupants))
	for _, x := range r.occupants {
		targets = append(targets, x.real)
	}
	r.mu.Unlock()

	if hasBody && m.archive != nil {
		err := m.archive.Append(ctx, module.ArchivedMessage{ID: id, Owner: r.jid.String(), With: from.String(),
			Time: at, Stanza: el.AppendXML(make([]byte, 0, 512), "")})
		if err != nil {
			m.log.ErrorContext(ctx, "room message not archived", "room", r.jid.String(), "archive_id", id, "err", err)
		}
	}
	for _, to := range targets {
		m.host.Route(ctx, msg.Readdress(from, to))
	}
	if subject != nil && !hasBody {
		m.persist(ctx, r)
	}
	return nil
}

// invite relays mediated invitations (XEP-0045 §7.8.2): the sender must
// be an occupant; each invitation asks the contact policy (muc.invite,
// from the inviter to the invitee, in the room). In a members-only room
// only admins and owners may invite, and the invitee becomes a member.
func (m *Module) invite(ctx context.Context, r *room, s *stanza.Stanza, x *stanza.Element) error {
	var invites []*stanza.Element
	x.Children(func(c *stanza.Element) bool {
		if c.Name.Space == NSUser && c.Name.Local == "invite" {
			invites = append(invites, c)
		}
		return len(invites) < 10
	})
	r.mu.Lock()
	o := r.byJID[s.From]
	aff := r.affiliation(s.From)
	membersOnly, password := r.cfg.MembersOnly, r.cfg.Password
	r.mu.Unlock()
	if o == nil {
		return stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable, Text: "you are not in this room"}
	}
	if membersOnly && rank(aff) < rank(Admin) {
		return stanza.ErrForbidden("only admins and owners invite to a members-only room")
	}
	for _, inv := range invites {
		to, err := jid.Parse(inv.Get("to"))
		if err != nil {
			return stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed, Text: "the invitee's JID is not valid"}
		}
		to = to.Bare()
		in := gate.ContactInput{Action: gate.ActionMUCInvite, StanzaType: s.Type,
			From: gate.Party{JID: s.From.Bare().String(), Local: m.host.IsLocal(s.From.Domain())},
			To:   gate.Party{JID: to.String(), Local: m.host.IsLocal(to.Domain())}, Room: r.jid.String()}
		if err := m.ask(ctx, in); err != nil {
			return err
		}
		if membersOnly {
			r.mu.Lock()
			if _, has := r.affiliations[to.String()]; !has {
				r.affiliations[to.String()] = Member
			}
			r.mu.Unlock()
			m.persist(ctx, r)
		}
		r.mu.Lock()
		r.noteInvite(to.String(), s.From.Bare().String(), m.opts.MaxPendingInvites)
		r.mu.Unlock()
		out := stanza.NewMessage(r.jid, to, "", "")
		fwd := stanza.New(NSUser, "invite").Set("from", s.From.Bare().String())
		if reason := inv.ChildText(NSUser, "reason"); reason != "" {
			fwd.Append(stanza.New(NSUser, "reason").AppendText(reason))
		}
		ux := stanza.New(NSUser, "x").Append(fwd)
		if password != "" {
			ux.Append(stanza.New(NSUser, "password").AppendText(password))
		}
		out.El.Append(ux)
		m.host.Route(ctx, out)
	}
	return nil
}

// maxInviters bounds the inviters remembered per invitee (as one message
// relays at most ten invitations).
const maxInviters = 10

// noteInvite remembers that inviter invited invitee (bare JIDs), for at
// most limit invitees. r.mu is held. When the room remembers too many, an
// arbitrary one is forgotten (its decline is then not relayed).
func (r *room) noteInvite(invitee, inviter string, limit int) {
	if r.invited == nil {
		r.invited = map[string]map[string]bool{}
	}
	if r.invited[invitee] == nil {
		if len(r.invited) >= limit {
			for k := range r.invited {
				delete(r.invited, k)
				break
			}
		}
		r.invited[invitee] = map[string]bool{}
	}
	if len(r.invited[invitee]) < maxInviters {
		r.invited[invitee][inviter] = true
	}
}

// decline relays an invitee's decline of a mediated invitation to the
// inviter (XEP-0045 §7.8.2), from the room, naming the invitee's bare JID
// and with the reason. Only a pending invitation can be declined, once:
// the room does not relay declines to someone who invited nobody (it
// would be a way to send anyone a message from the room).
func (m *Module) decline(ctx context.Context, r *room, s *stanza.Stanza, d *stanza.Element) error {
	to, err := jid.Parse(d.Get("to"))
	if err != nil {
		return stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed, Text: "the inviter's JID is not valid"}
	}
	invitee, inviter := s.From.Bare().String(), to.Bare().String()
	r.mu.Lock()
	pending := r.invited[invitee][inviter]
	if pending {
		delete(r.invited[invitee], inviter)
		if len(r.invited[invitee]) == 0 {
			delete(r.invited, invitee)
		}
	}
	r.mu.Unlock()
	if !pending {
		return stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound, Text: "there is no invitation from this JID to decline"}
	}
	fwd := stanza.New(NSUser, "decline").Set("from", invitee)
	if reason := d.ChildText(NSUser, "reason"); reason != "" {
		fwd.Append(stanza.New(NSUser, "reason").AppendText(reason))
	}
	out := stanza.NewMessage(r.jid, to.Bare(), "", "")
	out.El.Append(stanza.New(NSUser, "x").Append(fwd))
	m.host.Route(ctx, out)
	return nil
}

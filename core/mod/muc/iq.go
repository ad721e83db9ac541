package muc

import (
	"context"
	"errors"
	"strconv"

	"kontor.im/kontor/core/dataform"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/mamquery"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/xmlstream"
)

// iq answers an IQ get or set to a room or an occupant; the result is the
// payload of the reply, and after what the room sends once the reply is
// out (the notices of a configuration change follow the owner's result,
// §10.2).
func (m *Module) iq(ctx context.Context, s *stanza.Stanza) (res *stanza.Element, after []outgoing, err error) {
	q := s.Payload()
	if q == nil {
		return nil, nil, stanza.ErrBadRequest("an IQ get or set needs a payload")
	}
	r := m.lookup(s.To.Bare())
	if r == nil {
		return nil, nil, stanza.ErrItemNotFound("no such room")
	}
	if s.To.Resource() != "" {
		return withNoAfter(m.occupantIQ(r, s, q))
	}
	switch {
	case s.Type == "get" && q.Name.Space == NSDiscoInfo && q.Name.Local == "query" && q.Get("node") == nodeRoomUser:
		return r.reservedNickInfo(s.From), nil, nil
	case s.Type == "get" && q.Name.Space == NSDiscoInfo && q.Name.Local == "query" && q.Get("node") != "":
		return nil, nil, stanza.ErrItemNotFound("no such node")
	case s.Type == "get" && q.Name.Space == NSDiscoInfo && q.Name.Local == "query":
		return r.discoInfo(m.archive != nil), nil, nil
	case q.Name.Space == NSRegister && q.Name.Local == "query":
		return withNoAfter(m.register(ctx, r, s, q))
	case s.Type == "get" && q.Name.Space == NSDiscoItem && q.Name.Local == "query":
		return stanza.New(NSDiscoItem, "query"), nil, nil
	case q.Name.Space == NSAdmin && q.Name.Local == "query":
		return withNoAfter(m.admin(ctx, r, s, q))
	case q.Name.Space == NSOwner && q.Name.Local == "query" && s.Type == "set" && q.Child(NSOwner, "destroy") != nil:
		return nil, nil, m.destroy(ctx, r, s, q.Child(NSOwner, "destroy"))
	case q.Name.Space == NSOwner && q.Name.Local == "query":
		res, out, err := m.owner(r, s, q)
		if err == errDestroyLocked {
			// The owner cancelled the initial configuration (§10.1.3).
			return nil, nil, m.destroy(ctx, r, s, stanza.New(NSOwner, "destroy"))
		}
		if err == nil && s.Type == "set" {
			m.persist(ctx, r)
		}
		return res, out, err
	case m.archive != nil && (q.Name == mamquery.QueryName || q.Name == mamquery.MetadataName):
		return withNoAfter(m.mam(ctx, r, s, q))
	}
	return nil, nil, stanza.ErrServiceUnavailable("")
}

// occupantIQ answers IQs to an occupant's room JID: self-ping (XEP-0410)
// when the sender is that occupant; anything else is not relayed (real
// JIDs stay hidden).
func (m *Module) occupantIQ(r *room, s *stanza.Stanza, q *stanza.Element) (*stanza.Element, error) {
	r.mu.Lock()
	o := r.byJID[s.From]
	self := o != nil && o.nick == s.To.Resource()
	r.mu.Unlock()
	switch {
	case o == nil && (q.Name.Space == NSDiscoInfo || q.Name.Space == NSDiscoItem):
		return nil, stanza.ErrBadRequest("disco requests to occupants are for occupants")
	case o == nil:
		return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAcceptable, Text: "you are not in this room"}
	case self && q.Name.Space == NSSelfPing && q.Name.Local == "ping" && s.Type == "get":
		return nil, nil
	}
	return nil, stanza.ErrFeatureNotImplemented("IQs are not relayed to occupants")
}

func (r *room) discoInfo(archive bool) *stanza.Element {
	r.mu.Lock()
	defer r.mu.Unlock()
	name := r.cfg.Name
	if name == "" {
		name = r.jid.Local()
	}
	q := stanza.New(NSDiscoInfo, "query").Append(
		stanza.New(NSDiscoInfo, "identity").Set("category", "conference").Set("type", "text").Set("name", name),
		feature(NS), feature(NSStableID), feature(NSOccupant), feature(NSSelfPing))
	add := func(on bool, yes, no string) {
		if on {
			q.Append(feature(yes))
		} else if no != "" {
			q.Append(feature(no))
		}
	}
	add(r.cfg.Public, "muc_public", "muc_hidden")
	add(r.cfg.Persistent, "muc_persistent", "muc_temporary")
	add(r.cfg.MembersOnly, "muc_membersonly", "muc_open")
	add(r.cfg.Moderated, "muc_moderated", "muc_unmoderated")
	add(r.cfg.WhoIs == "anyone", "muc_nonanonymous", "muc_semianonymous")
	add(r.cfg.Password != "", "muc_passwordprotected", "muc_unsecured")
	add(archive, NSMAM, "")
	add(archive, mamquery.NSExtended, "")
	add(r.cfg.AllowRegister, NSRegister, "")
	info := dataform.New(dataform.TypeResult, NSRoomInfo,
		dataform.Field{Var: "muc#roominfo_description", Values: []string{r.cfg.Description}},
		dataform.Field{Var: "muc#roominfo_subject", Values: []string{r.subject}},
		dataform.Field{Var: "muc#roominfo_occupants", Values: []string{strconv.Itoa(len(r.occupants))}},
	)
	return q.Append(info.Element())
}

// admin handles muc#admin: a set changes roles (by nick) or affiliations
// (by JID); a get lists an affiliation or role.
func (m *Module) admin(ctx context.Context, r *room, s *stanza.Stanza, q *stanza.Element) (*stanza.Element, error) {
	var items []*stanza.Element
	q.Children(func(c *stanza.Element) bool {
		if c.Name.Space == NSAdmin && c.Name.Local == "item" {
			items = append(items, c)
		}
		return true
	})
	if len(items) == 0 {
		return nil, stanza.ErrBadRequest("no item")
	}
	r.mu.Lock()
	actor := r.byJID[s.From]
	actorAff := r.affiliation(s.From)
	actorRole := ""
	if actor != nil {
		actorRole = actor.role
	}
	if s.Type == "get" {
		defer r.mu.Unlock()
		res := stanza.New(NSAdmin, "query")
		it := items[0]
		switch {
		case it.Get("affiliation") != "":
			want := it.Get("affiliation")
			// The owner and admin lists are the owners' (the room is
			// semi-anonymous to everyone else); the member and ban lists
			// the admins' (§9.5, §10.5, §10.8).
			if (want == Owner || want == Admin) && actorAff != Owner {
				return nil, stanza.ErrForbidden("only owners see the owner and admin lists")
			}
			if rank(actorAff) < rank(Admin) {
				return nil, stanza.ErrForbidden("only admins and owners see the affiliation lists")
			}
			for bare, a := range r.affiliations {
				if a == want {
					item := stanza.New(NSAdmin, "item").Set("affiliation", a).Set("jid", bare)
					if nick := r.nicks[bare]; nick != "" {
						item.Set("nick", nick)
					}
					res.Append(item)
				}
			}
		case it.Get("role") != "":
			// The moderator list is the admins' (§9.8), the voice list
			// the moderators' (§8.5).
			if it.Get("role") == Moderator && rank(actorAff) < rank(Admin) {
				return nil, stanza.ErrForbidden("only admins and owners see the moderator list")
			}
			if actorRole != Moderator && rank(actorAff) < rank(Admin) {
				return nil, stanza.ErrForbidden("only moderators see the occupants by role")
			}
			for _, o := range r.occupants {
				if o.role == it.Get("role") {
					res.Append(stanza.New(NSAdmin, "item").Set("role", o.role).Set("nick", o.nick).
						Set("affiliation", o.affiliation).Set("jid", o.real.String()))
				}
			}
		default:
			return nil, stanza.ErrBadRequest("ask for an affiliation or a role")
		}
		return res, nil
	}
	var out []outgoing
	var err error
	for _, it := range items {
		var o []outgoing
		o, err = r.adminSetLocked(s.From, actorRole, actorAff, it)
		if err != nil {
			break
		}
		out = append(out, o...)
	}
	r.mu.Unlock()
	if err != nil {
		return nil, err // earlier items of the same request stay applied
	}
	m.send(ctx, out)
	m.persist(ctx, r)
	m.maybeEnd(r)
	return nil, nil
}

// adminSetLocked applies one admin item.
func (r *room) adminSetLocked(by jid.JID, actorRole, actorAff string, it *stanza.Element) ([]outgoing, error) {
	reason := it.ChildText(NSAdmin, "reason")
	if role := it.Get("role"); role != "" {
		o := r.occupants[it.Get("nick")]
		if o == nil {
			return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAcceptable, Text: "no occupant with this nickname"}
		}
		if actorRole != Moderator {
			return nil, stanza.ErrForbidden("only moderators change roles")
		}
		if role != Participant && role != Visitor && role != Moderator && role != None {
			return nil, stanza.ErrBadRequest("unknown role")
		}
		// A moderator may not kick or silence someone of higher
		// affiliation, and only admins and owners grant moderation.
		// Voice is not taken from someone at or above the moderator's
		// own affiliation (§8.4).
		if rank(o.affiliation) > rank(actorAff) || (role == Moderator && rank(actorAff) < rank(Admin)) ||
			(o.role == Moderator && rank(o.affiliation) >= rank(Admin) && role != Moderator) ||
			(role == Visitor && o.role != Visitor && rank(o.affiliation) >= rank(actorAff) && actorAff != Owner) {
			return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAllowed, Text: "you may not change this occupant's role"}
		}
		if role == None {
			return r.removeLocked(o, []string{"307"}, reason), nil
		}
		o.role = role
		return r.broadcastPresence(o, "", nil, nil), nil
	}
	aff := it.Get("affiliation")
	target, err := jid.Parse(it.Get("jid"))
	if err != nil || aff == "" {
		return nil, stanza.ErrBadRequest("an affiliation item needs jid and affiliation")
	}
	target = target.Bare()
	if rank(aff) == 0 && aff != Outcast {
		return nil, stanza.ErrBadRequest("unknown affiliation")
	}
	cur := r.affiliation(target)
	switch {
	case rank(actorAff) < rank(Admin):
		return nil, stanza.ErrForbidden("only admins and owners change affiliations")
	case aff == Outcast && target == by.Bare():
		return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.Conflict, Text: "you may not ban yourself"}
	case actorAff == Admin && aff == Outcast && rank(cur) >= rank(Admin):
		return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAllowed, Text: "an admin may not ban an admin or owner"}
	case actorAff == Admin && (rank(cur) >= rank(Admin) || rank(aff) >= rank(Admin)):
		return nil, stanza.ErrForbidden("only owners change the owner and admin lists")
	case cur == Owner && aff != Owner && r.owners() == 1:
		return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.Conflict, Text: "a room needs an owner"}
	}
	nick := it.Get("nick")
	if nick != "" && rank(aff) >= rank(Member) {
		if by := r.reservedBy(nick); by != "" && by != target.String() {
			return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.Conflict, Text: "this nickname is reserved by someone else"}
		}
		if r.nicks == nil {
			r.nicks = map[string]string{}
		}
		r.nicks[target.String()] = nick
	}
	if aff == None {
		delete(r.affiliations, target.String())
	} else {
		r.affiliations[target.String()] = aff
	}
	if rank(aff) < rank(Member) {
		// Off the member list: the reserved nickname goes with it.
		delete(r.nicks, target.String())
	}
	var out []outgoing
	for _, o := range r.occupants {
		if o.real.Bare() != target {
			continue
		}
		switch {
		case aff == Outcast:
			out = append(out, r.removeLocked(o, []string{"301"}, reason)...)
		case r.cfg.MembersOnly && rank(aff) < rank(Member):
			out = append(out, r.removeLocked(o, []string{"321"}, reason)...)
		default:
			o.affiliation, o.role = aff, r.roleFor(aff)
			out = append(out, r.broadcastPresence(o, "", nil, nil)...)
		}
	}
	return out, nil
}

func (r *room) owners() int {
	n := 0
	for _, a := range r.affiliations {
		if a == Owner {
			n++
		}
	}
	return n
}

// owner handles muc#owner: the configuration form (get) and its
// submission (set). Only owners may.
func (m *Module) owner(r *room, s *stanza.Stanza, q *stanza.Element) (*stanza.Element, []outgoing, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.affiliation(s.From) != Owner {
		return nil, nil, stanza.ErrForbidden("only owners configure the room")
	}
	if s.Type == "get" {
		return stanza.New(NSOwner, "query").Append(r.cfg.Form().Element()), nil, nil
	}
	x := q.Child(dataform.NS, "x")
	if x == nil {
		return nil, nil, stanza.ErrBadRequest("a configuration form or a destroy element is needed")
	}
	f, err := dataform.Parse(x)
	if err != nil {
		return nil, nil, stanza.ErrBadRequest(err.Error())
	}
	if f.Type == dataform.TypeCancel {
		if r.locked {
			return nil, nil, errDestroyLocked
		}
		return nil, nil, nil
	}
	cfg, err := r.cfg.ApplyForm(f)
	if err != nil {
		return nil, nil, stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable, Text: err.Error()}
	}
	old := r.cfg
	r.cfg = cfg
	if r.locked {
		// The initial configuration (or the instant room's empty form)
		// unlocks the room; its occupant is the owner alone, who needs
		// no notice of it.
		r.locked = false
		return nil, nil, nil
	}
	return nil, r.configChangedLocked(old), nil
}

// configChangedLocked tells the occupants what a new configuration
// changes for them (XEP-0045 §10.2): a room that became members-only
// removes its non-members (status 322); a change of who sees real JIDs is
// announced with 172 or 173, any other change with 104; in a room that is
// no longer moderated the visitors become participants.
// r.mu is held.
func (r *room) configChangedLocked(old Config) []outgoing {
	var out []outgoing
	if r.cfg == old {
		return nil
	}
	if r.cfg.MembersOnly && !old.MembersOnly {
		for _, o := range r.occupants {
			if rank(o.affiliation) < rank(Member) {
				out = append(out, r.removeLocked(o, []string{"322"}, "")...)
			}
		}
	}
	if !r.cfg.Moderated && old.Moderated {
		// Without moderation nobody is a visitor.
		for _, o := range r.occupants {
			if o.role == Visitor {
				o.role = Participant
				out = append(out, r.broadcastPresence(o, "", nil, nil)...)
			}
		}
	}
	code := "104"
	switch {
	case r.cfg.WhoIs == "anyone" && old.WhoIs != "anyone":
		code = "172"
	case r.cfg.WhoIs != "anyone" && old.WhoIs == "anyone":
		code = "173"
	}
	for _, o := range r.occupants {
		msg := stanza.NewMessage(r.jid, o.real, "groupchat", "")
		msg.El.Append(stanza.New(NSUser, "x").Append(stanza.New(NSUser, "status").Set("code", code)))
		out = append(out, msg)
	}
	return out
}

// mam answers the archive requests addressed to the room (XEP-0313 §5:
// a query, the query form, the metadata) with the same protocol as a
// user's archive (core/mamquery): in an open room anyone but outcasts may
// read it, in a members-only room its occupants and members. A room shows
// only what was said since it was created: an earlier room of the same
// address keeps its messages under their retention, unseen.
func (m *Module) mam(ctx context.Context, r *room, s *stanza.Stanza, q *stanza.Element) (*stanza.Element, error) {
	r.mu.Lock()
	allowed := r.byJID[s.From] != nil || (r.cfg.MembersOnly && rank(r.affiliation(s.From)) >= rank(Member)) ||
		(!r.cfg.MembersOnly && r.affiliation(s.From) != Outcast)
	arch := mamquery.Archive{Owner: r.jid, Since: r.created}
	r.mu.Unlock()
	if !allowed {
		return nil, stanza.ErrForbidden("only occupants and members may read this room's archive")
	}
	srv := mamquery.Server{Archive: m.archive, Log: m.log, PageSize: m.opts.PageSize, MaxPageSize: m.opts.MaxPageSize}
	switch {
	case q.Name == mamquery.MetadataName && s.Type == "get":
		return srv.Metadata(ctx, arch)
	case q.Name == mamquery.QueryName && s.Type == "get":
		return mamquery.Form(), nil
	case q.Name == mamquery.QueryName:
		return srv.Query(ctx, arch, s.From, q, func(res *stanza.Stanza) { m.host.Route(ctx, res) })
	}
	return nil, stanza.ErrBadRequest("not an archive request")
}

// parseStored parses an archived message.
func parseStored(b []byte) (*stanza.Element, error) {
	return xmlstream.ParseElement(b, xmlstream.Limits{MaxStanzaBytes: len(b) + 1024})
}

// errDestroyLocked is how owner tells that the initial configuration was
// cancelled: the new room goes.
var errDestroyLocked = errors.New("muc: initial configuration cancelled")

// withNoAfter is the answer of a handler that sends nothing after it.
func withNoAfter(res *stanza.Element, err error) (*stanza.Element, []outgoing, error) {
	return res, nil, err
}

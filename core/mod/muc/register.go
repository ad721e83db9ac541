package muc

import (
	"context"
	"fmt"

	"kontor.im/kontor/core/dataform"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/stanza"
)

// Namespaces of registration with a room (XEP-0045 §7.10, XEP-0077).
const (
	NSRegister     = "jabber:iq:register"
	NSRegisterForm = NS + "#register"
	// nodeRoomUser is the disco#info node where a user finds the nickname
	// reserved for them (§7.12).
	nodeRoomUser = "x-roomuser-item"
)

// fRegisterNick is the one field of the registration form. The form asks
// for nothing else (no names, e-mail or URL: the room has no use for
// them, and what it does not ask it need not keep).
const fRegisterNick = "muc#register_roomnick"

// parseRegisterForm reads a submitted muc#register form and returns the
// nickname asked for; nickOK checks it. An error wraps dataform.ErrInvalid.
func parseRegisterForm(f dataform.Form, nickOK func(string) bool) (string, error) {
	if f.Type != dataform.TypeSubmit {
		return "", fmt.Errorf("muc: %w: a registration is a form of type submit", dataform.ErrInvalid)
	}
	if ft := f.FormType(); ft != NSRegisterForm {
		return "", fmt.Errorf("muc: %w: FORM_TYPE is not %s", dataform.ErrInvalid, NSRegisterForm)
	}
	for _, fld := range f.Fields {
		switch fld.Var {
		case dataform.FormTypeVar, fRegisterNick:
		default:
			return "", fmt.Errorf("muc: %w: unknown field %s", dataform.ErrInvalid, fld.Var)
		}
	}
	nick := f.Value(fRegisterNick)
	if !nickOK(nick) {
		return "", fmt.Errorf("muc: %w: %s is not a valid nickname", dataform.ErrInvalid, fRegisterNick)
	}
	return nick, nil
}

// mayRegisterLocked tells whether user may register with the room: only
// where its owner allows registration (Config.AllowRegister), never an
// outcast, and in a members-only room only someone on the member list
// already (who reserves a nickname that way; the room does not make
// anyone a member of a members-only room on their own request, and
// approval by an admin, §9.9, is not implemented). r.mu is held.
func (r *room) mayRegisterLocked(user jid.JID) error {
	aff := r.affiliation(user)
	switch {
	case !r.cfg.AllowRegister:
		return stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAllowed, Text: "this room does not take registrations"}
	case aff == Outcast:
		return stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAllowed, Text: "you are banned from this room"}
	case r.cfg.MembersOnly && rank(aff) < rank(Member):
		return stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAllowed, Text: "only members register with a members-only room; ask an admin"}
	}
	return nil
}

// reservedBy returns the bare JID that reserved nick, or "".
func (r *room) reservedBy(nick string) string {
	for bare, n := range r.nicks {
		if n == nick {
			return bare
		}
	}
	return ""
}

// register handles jabber:iq:register to the room (XEP-0045 §7.10). A get
// returns the registered nickname (<registered/>) or the muc#register
// form; a set with the submitted form reserves the nickname (conflict if
// someone else has it) and makes an unaffiliated user a member, with a
// presence update to everyone if the user is in the room. The nickname is
// kept with the room (stored for a persistent room) while the user is on
// the member list (member, admin or owner). <remove/> cancels the
// registration.
func (m *Module) register(ctx context.Context, r *room, s *stanza.Stanza, q *stanza.Element) (*stanza.Element, error) {
	bare := s.From.Bare().String()
	if s.Type == "get" {
		r.mu.Lock()
		defer r.mu.Unlock()
		if nick := r.nicks[bare]; nick != "" {
			return stanza.New(NSRegister, "query").Append(stanza.New(NSRegister, "registered"),
				stanza.New(NSRegister, "username").AppendText(nick)), nil
		}
		if err := r.mayRegisterLocked(s.From); err != nil {
			return nil, err
		}
		form := dataform.New(dataform.TypeForm, NSRegisterForm,
			dataform.Field{Var: fRegisterNick, Type: dataform.TextSingle, Label: "Desired Nickname", Required: true})
		form.Title = "Registration with " + r.jid.String()
		form.Instructions = []string{"Choose the nickname to reserve in this room; you become a member."}
		return stanza.New(NSRegister, "query").Append(form.Element()), nil
	}
	if q.Child(NSRegister, "remove") != nil {
		return nil, m.unregister(ctx, r, s.From)
	}
	x := q.Child(dataform.NS, "x")
	if x == nil {
		return nil, stanza.ErrBadRequest("a muc#register form is needed")
	}
	f, err := dataform.Parse(x)
	if err != nil {
		return nil, stanza.ErrBadRequest(err.Error())
	}
	if f.Type == dataform.TypeCancel {
		return nil, nil
	}
	nick, err := parseRegisterForm(f, m.validNick)
	if err != nil {
		return nil, stanza.ErrBadRequest(err.Error())
	}
	var out []outgoing
	r.mu.Lock()
	if err := r.mayRegisterLocked(s.From); err != nil {
		r.mu.Unlock()
		return nil, err
	}
	if by := r.reservedBy(nick); by != "" && by != bare {
		r.mu.Unlock()
		return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.Conflict, Text: "this nickname is reserved by someone else"}
	}
	if o := r.occupants[nick]; o != nil && o.real.Bare().String() != bare {
		r.mu.Unlock()
		return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.Conflict, Text: "someone in the room uses this nickname"}
	}
	if r.nicks == nil {
		r.nicks = map[string]string{}
	}
	r.nicks[bare] = nick
	if r.affiliation(s.From) == None {
		r.affiliations[bare] = Member
		for _, o := range r.occupants {
			if o.real.Bare().String() == bare {
				o.affiliation, o.role = Member, r.roleFor(Member)
				out = append(out, r.broadcastPresence(o, "", nil, nil)...)
			}
		}
	}
	r.mu.Unlock()
	m.send(ctx, out)
	m.persist(ctx, r)
	return nil, nil
}

// unregister cancels a registration (XEP-0077 §3.2, <remove/>): the
// reserved nickname goes, and a member is a member no more (an admin's or
// owner's affiliation stays): in a members-only room such a member in the
// room is removed (321), elsewhere everyone gets the new affiliation.
// Without a registration it is item-not-found.
func (m *Module) unregister(ctx context.Context, r *room, user jid.JID) error {
	bare := user.Bare().String()
	var out []outgoing
	r.mu.Lock()
	if _, ok := r.nicks[bare]; !ok {
		r.mu.Unlock()
		return stanza.ErrItemNotFound("you are not registered with this room")
	}
	delete(r.nicks, bare)
	if r.affiliation(user) == Member {
		delete(r.affiliations, bare)
		for _, o := range r.occupants {
			if o.real.Bare().String() != bare {
				continue
			}
			if r.cfg.MembersOnly {
				out = append(out, r.removeLocked(o, []string{"321"}, "")...)
				continue
			}
			o.affiliation, o.role = None, r.roleFor(None)
			out = append(out, r.broadcastPresence(o, "", nil, nil)...)
		}
	}
	r.mu.Unlock()
	m.send(ctx, out)
	m.persist(ctx, r)
	return nil
}

// reservedNickInfo answers disco#info at the node x-roomuser-item (§7.12):
// the identity names the nickname reserved for the sender, or the query
// is empty.
func (r *room) reservedNickInfo(user jid.JID) *stanza.Element {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := stanza.New(NSDiscoInfo, "query").Set("node", nodeRoomUser)
	if nick := r.nicks[user.Bare().String()]; nick != "" {
		q.Append(stanza.New(NSDiscoInfo, "identity").Set("category", "conference").Set("type", "text").Set("name", nick))
	}
	return q
}

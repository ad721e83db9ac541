package muc

import (
	"context"
	"fmt"
	"time"

	"kontor.im/kontor/core/dataform"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/stanza"
)

// NSRequest is the FORM_TYPE of voice requests and their approval
// (XEP-0045 §7.13, §8.6).
const NSRequest = NS + "#request"

// Field vars of the muc#request form.
const (
	fRole         = "muc#role"
	fJID          = "muc#jid"
	fRoomNick     = "muc#roomnick"
	fRequestAllow = "muc#request_allow"
)

// voiceForm is a submitted muc#request form: a visitor's request, or a
// moderator's answer to one (it has muc#request_allow).
type voiceForm struct {
	Role     string
	JID      string
	Nick     string
	Answer   bool // muc#request_allow is present: a moderator's answer
	Allow    bool
	Canceled bool // a form of type cancel: nothing to do
}

// parseVoiceForm reads a muc#request form. An error wraps
// dataform.ErrInvalid.
func parseVoiceForm(f dataform.Form) (voiceForm, error) {
	var v voiceForm
	switch f.Type {
	case dataform.TypeCancel:
		v.Canceled = true
		return v, nil
	case dataform.TypeSubmit:
	default:
		return v, fmt.Errorf("muc: %w: a voice request is a form of type submit", dataform.ErrInvalid)
	}
	if f.FormType() != NSRequest {
		return v, fmt.Errorf("muc: %w: FORM_TYPE is not %s", dataform.ErrInvalid, NSRequest)
	}
	v.Role, v.JID, v.Nick = f.Value(fRole), f.Value(fJID), f.Value(fRoomNick)
	if v.Role != "" && v.Role != Participant {
		return v, fmt.Errorf("muc: %w: only the role participant can be requested", dataform.ErrInvalid)
	}
	if fld, ok := f.Field(fRequestAllow); ok {
		allow, err := fld.Bool()
		if err != nil {
			return v, fmt.Errorf("muc: %w", err)
		}
		v.Answer, v.Allow = true, allow
		if v.Nick == "" {
			return v, fmt.Errorf("muc: %w: an answer names the occupant in %s", dataform.ErrInvalid, fRoomNick)
		}
	}
	return v, nil
}

// voice handles a muc#request form sent to the room (XEP-0045 §7.13,
// §8.6). A visitor's request goes to every moderator as an approval form
// (with the visitor's nickname and real JID, which moderators see anyway),
// at most once per voice_request_interval per occupant; a participant or
// moderator has voice already (not-acceptable). A moderator's answer with
// muc#request_allow true makes the occupant named by muc#roomnick a
// participant (when muc#jid is given, only if that is still the same
// person), announced by presence as any role change; false does nothing.
func (m *Module) voice(ctx context.Context, r *room, s *stanza.Stanza, x *stanza.Element) error {
	f, err := dataform.Parse(x)
	if err != nil {
		return stanza.ErrBadRequest(err.Error())
	}
	v, err := parseVoiceForm(f)
	if err != nil {
		return stanza.ErrBadRequest(err.Error())
	}
	if v.Canceled {
		return nil
	}
	now := m.now()
	var out []outgoing
	r.mu.Lock()
	defer func() {
		r.mu.Unlock()
		m.send(ctx, out)
	}()
	o := r.byJID[s.From]
	if o == nil {
		return stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable, Text: "you are not in this room"}
	}
	if !v.Answer {
		switch {
		case o.role != Visitor:
			return stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable, Text: "you have voice already"}
		case !o.voiceAt.IsZero() && now.Sub(o.voiceAt) < m.opts.VoiceRequestInterval:
			return stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint, Text: "you asked for voice a short while ago"}
		}
		o.voiceAt = now
		for _, mod := range r.occupants {
			if mod.role != Moderator {
				continue
			}
			form := dataform.New(dataform.TypeForm, NSRequest,
				dataform.Field{Var: fRole, Type: dataform.ListSingle, Label: "Requested role", Values: []string{Participant},
					Options: []dataform.Option{{Label: "Participant", Value: Participant}}},
				dataform.Field{Var: fJID, Type: dataform.JIDSingle, Label: "User ID", Values: []string{o.real.String()}},
				dataform.Field{Var: fRoomNick, Type: dataform.TextSingle, Label: "Room Nickname", Values: []string{o.nick}},
				dataform.Field{Var: fRequestAllow, Type: dataform.Boolean, Label: "Grant voice to this person?", Values: []string{"false"}},
			)
			form.Title = "Voice request"
			form.Instructions = []string{"To grant voice to " + o.nick + ", check the box and submit the form."}
			msg := stanza.NewMessage(r.jid, mod.real, "", m.ids.Next())
			msg.El.Append(form.Element())
			out = append(out, msg)
		}
		return nil
	}
	if o.role != Moderator {
		return stanza.ErrForbidden("only moderators grant voice")
	}
	if !v.Allow {
		return nil
	}
	t := r.occupants[v.Nick]
	if t == nil {
		return stanza.ErrItemNotFound("no occupant with this nickname")
	}
	if v.JID != "" {
		if j, err := jid.Parse(v.JID); err != nil || j != t.real {
			return stanza.ErrItemNotFound("this nickname is someone else's now")
		}
	}
	if t.role != Visitor {
		return nil // voice already
	}
	if rank(t.affiliation) > rank(o.affiliation) {
		return stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAllowed, Text: "you may not change this occupant's role"}
	}
	t.role = Participant
	out = r.broadcastPresence(t, "", nil, nil)
	return nil
}

// formType is the FORM_TYPE value of a form element, read without parsing
// the whole form (it only picks the handler).
func formType(x *stanza.Element) string {
	ft := ""
	x.Children(func(c *stanza.Element) bool {
		if c.Name.Space == dataform.NS && c.Name.Local == "field" && c.Get("var") == dataform.FormTypeVar {
			ft = c.ChildText(dataform.NS, "value")
			return false
		}
		return true
	})
	return ft
}

// Bounds of voice_request_interval.
const (
	minVoiceRequestInterval = time.Second
	maxVoiceRequestInterval = 24 * time.Hour
)

func (o *Options) validateVoiceInterval() error {
	if o.VoiceRequestInterval < minVoiceRequestInterval || o.VoiceRequestInterval > maxVoiceRequestInterval {
		return fmt.Errorf("muc: voice_request_interval must be between %v and %v, got %v",
			minVoiceRequestInterval, maxVoiceRequestInterval, o.VoiceRequestInterval)
	}
	return nil
}

package muc

import (
	"fmt"
	"sort"
	"strconv"
	"unicode/utf8"

	"kontor.im/kontor/core/dataform"
)

// Config is a room's configuration (XEP-0045 §10.2, muc#roomconfig).
type Config struct {
	Name          string
	Description   string
	Public        bool   // listed in the service's disco#items
	Persistent    bool   // stays when the last occupant leaves
	MembersOnly   bool   // only members, admins and owners may join
	Moderated     bool   // occupants without affiliation are visitors
	ChangeSubject bool   // participants may change the subject
	WhoIs         string // "moderators" or "anyone": who sees real JIDs
	MaxUsers      int
	Password      string // "" for none
	// HistoryLength is how many messages history on join sends at most
	// (muc#maxhistoryfetch); the module's max_history caps it.
	HistoryLength int
	// AllowRegister lets users register with the room (XEP-0045 §7.10):
	// reserve a nickname and become a member (in a members-only room,
	// only those on the member list already).
	AllowRegister bool
}

// DefaultConfig is the configuration of a new room (the module sets
// HistoryLength to its max_history).
func DefaultConfig() Config {
	return Config{Public: true, WhoIs: "moderators", MaxUsers: 10000, HistoryLength: DefaultMaxHistory}
}

// Limits of configuration values.
const (
	maxNameBytes = 256
	maxDescBytes = 1024
)

// Field vars of the configuration form.
const (
	fName          = "muc#roomconfig_roomname"
	fDesc          = "muc#roomconfig_roomdesc"
	fPublic        = "muc#roomconfig_publicroom"
	fPersistent    = "muc#roomconfig_persistentroom"
	fMembersOnly   = "muc#roomconfig_membersonly"
	fModerated     = "muc#roomconfig_moderatedroom"
	fChangeSubject = "muc#roomconfig_changesubject"
	fWhoIs         = "muc#roomconfig_whois"
	fMaxUsers      = "muc#roomconfig_maxusers"
	fPassword      = "muc#roomconfig_roomsecret"
	fPasswordOn    = "muc#roomconfig_passwordprotectedroom"
	fHistory       = "muc#maxhistoryfetch"
	// fAllowRegister is Kontor's own field: XEP-0045 defines none for
	// registration, and XEP-0068 (Field Names) has a field added to a
	// form type someone else manages named in Clark notation under a URI
	// of the one who adds it.
	fAllowRegister = "{https://kontor.im/ns/muc}allowregister"
)

// maxHistoryLength bounds HistoryLength (as max_history is bounded).
const maxHistoryLength = 100

// Form is the configuration as a form of type form (an owner's get).
func (c Config) Form() dataform.Form {
	b := func(v bool) []string {
		if v {
			return []string{"1"}
		}
		return []string{"0"}
	}
	f := dataform.New(dataform.TypeForm, NSRoomConf,
		dataform.Field{Var: fName, Type: dataform.TextSingle, Label: "Name", Values: []string{c.Name}},
		dataform.Field{Var: fDesc, Type: dataform.TextSingle, Label: "Description", Values: []string{c.Description}},
		dataform.Field{Var: fPublic, Type: dataform.Boolean, Label: "List the room publicly", Values: b(c.Public)},
		dataform.Field{Var: fPersistent, Type: dataform.Boolean, Label: "Keep the room when it is empty", Values: b(c.Persistent)},
		dataform.Field{Var: fMembersOnly, Type: dataform.Boolean, Label: "Members only", Values: b(c.MembersOnly)},
		dataform.Field{Var: fModerated, Type: dataform.Boolean, Label: "Moderated", Values: b(c.Moderated)},
		dataform.Field{Var: fChangeSubject, Type: dataform.Boolean, Label: "Participants may change the subject", Values: b(c.ChangeSubject)},
		dataform.Field{Var: fWhoIs, Type: dataform.ListSingle, Label: "Who may see real JIDs", Values: []string{c.WhoIs},
			Options: []dataform.Option{{Label: "Moderators", Value: "moderators"}, {Label: "Anyone", Value: "anyone"}}},
		dataform.Field{Var: fMaxUsers, Type: dataform.TextSingle, Label: "Maximum number of occupants", Values: []string{strconv.Itoa(c.MaxUsers)}},
		dataform.Field{Var: fHistory, Type: dataform.TextSingle, Label: "Maximum number of history messages sent on join", Values: []string{strconv.Itoa(c.HistoryLength)}},
		dataform.Field{Var: fAllowRegister, Type: dataform.Boolean, Label: "Users may register (reserve a nickname and become members)", Values: b(c.AllowRegister)},
		dataform.Field{Var: fPasswordOn, Type: dataform.Boolean, Label: "Password protected", Values: b(c.Password != "")},
		dataform.Field{Var: fPassword, Type: dataform.TextPrivate, Label: "Password"},
	)
	return f
}

// ApplyForm returns c changed by a submitted configuration form. Fields
// the form leaves out keep their value; a field it does not know, or a
// value out of range, is an error wrapping dataform.ErrInvalid.
func (c Config) ApplyForm(f dataform.Form) (Config, error) {
	if f.Type != dataform.TypeSubmit {
		return c, fmt.Errorf("muc: %w: a configuration is a form of type submit", dataform.ErrInvalid)
	}
	if ft := f.FormType(); ft != "" && ft != NSRoomConf {
		return c, fmt.Errorf("muc: %w: FORM_TYPE %q is not %s", dataform.ErrInvalid, ft, NSRoomConf)
	}
	bools := map[string]*bool{fPublic: &c.Public, fPersistent: &c.Persistent, fMembersOnly: &c.MembersOnly,
		fModerated: &c.Moderated, fChangeSubject: &c.ChangeSubject, fAllowRegister: &c.AllowRegister}
	passwordOn := c.Password != ""
	for _, fld := range f.Fields {
		v := ""
		if len(fld.Values) > 0 {
			v = fld.Values[0]
		}
		if !utf8.ValidString(v) {
			return c, fmt.Errorf("muc: %w: %s is not UTF-8", dataform.ErrInvalid, fld.Var)
		}
		switch fld.Var {
		case dataform.FormTypeVar:
		case fName, fDesc:
			limit, dst := maxNameBytes, &c.Name
			if fld.Var == fDesc {
				limit, dst = maxDescBytes, &c.Description
			}
			if len(v) > limit {
				return c, fmt.Errorf("muc: %w: %s is longer than %d bytes", dataform.ErrInvalid, fld.Var, limit)
			}
			*dst = v
		case fPublic, fPersistent, fMembersOnly, fModerated, fChangeSubject, fAllowRegister, fPasswordOn:
			b, err := fld.Bool()
			if err != nil {
				return c, fmt.Errorf("muc: %w", err)
			}
			if fld.Var == fPasswordOn {
				passwordOn = b
			} else {
				*bools[fld.Var] = b
			}
		case fWhoIs:
			if v != "moderators" && v != "anyone" {
				return c, fmt.Errorf("muc: %w: %s must be moderators or anyone", dataform.ErrInvalid, fld.Var)
			}
			c.WhoIs = v
		case fMaxUsers:
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 10000 {
				return c, fmt.Errorf("muc: %w: %s must be a number from 1 to 10000", dataform.ErrInvalid, fld.Var)
			}
			c.MaxUsers = n
		case fHistory:
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > maxHistoryLength {
				return c, fmt.Errorf("muc: %w: %s must be a number from 0 to %d", dataform.ErrInvalid, fld.Var, maxHistoryLength)
			}
			c.HistoryLength = n
		case fPassword:
			if len(v) > maxNameBytes {
				return c, fmt.Errorf("muc: %w: %s is longer than %d bytes", dataform.ErrInvalid, fld.Var, maxNameBytes)
			}
			c.Password = v
		default:
			return c, fmt.Errorf("muc: %w: unknown field %s", dataform.ErrInvalid, fld.Var)
		}
	}
	if !passwordOn {
		c.Password = ""
	} else if c.Password == "" {
		return c, fmt.Errorf("muc: %w: a password protected room needs %s", dataform.ErrInvalid, fPassword)
	}
	return c, nil
}

func sortItems(list []roomItem) {
	sort.Slice(list, func(a, b int) bool { return list[a].jid < list[b].jid })
}

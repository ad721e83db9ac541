package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"kontor.im/kontor/core/directory"
	"kontor.im/kontor/core/gate"
)

// MaxInputBytes bounds an input file for `kontor policy eval`.
const MaxInputBytes = 1 << 20

// Input is a parsed input for `kontor policy eval`: the decision's gate
// input and the people whose attributes the input spelled out.
type Input struct {
	Decision string
	// Value is a gate.ContactInput, gate.RetentionInput, gate.AccessInput,
	// gate.E2EEInput, gate.RegistrationInput, gate.UploadInput or
	// gate.PushInput.
	Value any
	// People are parties given with attributes ("kind" set); they are
	// loaded as directory data before the decision.
	People []directory.Person
	// GroupNames maps the people's group ids to names.
	GroupNames map[string]string
}

// partyJSON is a party as an input file spells it: at least jid and local;
// with "kind", the other attributes describe the person as the directory
// would. group_names pair with groups by position; names alone double as
// group ids.
type partyJSON struct {
	JID        string   `json:"jid"`
	Local      *bool    `json:"local"`
	Known      *bool    `json:"known"`
	Kind       string   `json:"kind"`
	Department string   `json:"department"`
	Company    string   `json:"company"`
	Groups     []string `json:"groups"`
	GroupNames []string `json:"group_names"`
	Sponsors   []string `json:"sponsors"`
	Disabled   bool     `json:"disabled"`
}

type contactJSON struct {
	Action     string    `json:"action"`
	StanzaType string    `json:"stanza_type"`
	From       partyJSON `json:"from"`
	To         partyJSON `json:"to"`
	Room       string    `json:"room"`
}

type retentionJSON struct {
	From       partyJSON `json:"from"`
	To         partyJSON `json:"to"`
	Room       string    `json:"room"`
	StanzaType string    `json:"stanza_type"`
	Encrypted  bool      `json:"encrypted"`
	LegalHold  bool      `json:"legal_hold"`
}

type e2eeJSON struct {
	From       partyJSON `json:"from"`
	To         partyJSON `json:"to"`
	Room       string    `json:"room"`
	StanzaType string    `json:"stanza_type"`
}

type accessJSON struct {
	Operator struct {
		ID    string   `json:"id"`
		Roles []string `json:"roles"`
	} `json:"operator"`
	Action           string `json:"action"`
	Subject          string `json:"subject"`
	CaseNumber       string `json:"case_number"`
	Purpose          string `json:"purpose"`
	SubjectLegalHold bool   `json:"subject_legal_hold"`
	Remote           string `json:"remote"`
	Now              int64  `json:"now"`
	Approvals        []struct {
		By         string   `json:"by"`
		Roles      []string `json:"roles"`
		CaseNumber string   `json:"case_number"`
		At         *int64   `json:"at"`
	} `json:"approvals"`
}

type uploadJSON struct {
	From        partyJSON `json:"from"`
	Size        int64     `json:"size"`
	ContentType string    `json:"content_type"`
}

type pushJSON struct {
	User         partyJSON  `json:"user"`
	Service      string     `json:"service"`
	ServiceLocal bool       `json:"service_local"`
	Sender       *partyJSON `json:"sender"`
	Encrypted    bool       `json:"encrypted"`
}

type registrationJSON struct {
	Domain   string `json:"domain"`
	Username string `json:"username"`
	JID      string `json:"jid"`
	Remote   string `json:"remote"`
}

// ParseInput reads the JSON input of the named decision, in the schema the
// package documentation gives. Unknown fields, trailing data and parties
// without jid or local are errors.
func ParseInput(decision string, data []byte) (Input, error) {
	if len(data) > MaxInputBytes {
		return Input{}, fmt.Errorf("policy: input larger than %d bytes", MaxInputBytes)
	}
	in := Input{Decision: decision}
	var err error
	switch decision {
	case "contact":
		var j contactJSON
		if err = decodeStrict(data, &j); err != nil {
			break
		}
		if j.Action == "" {
			return Input{}, errors.New("policy: input: action is required")
		}
		v := gate.ContactInput{Action: gate.Action(j.Action), StanzaType: j.StanzaType, Room: j.Room}
		if v.From, err = in.party("from", j.From); err == nil {
			v.To, err = in.party("to", j.To)
		}
		in.Value = v
	case "retention":
		var j retentionJSON
		if err = decodeStrict(data, &j); err != nil {
			break
		}
		v := gate.RetentionInput{Room: j.Room, StanzaType: j.StanzaType, Encrypted: j.Encrypted, LegalHold: j.LegalHold}
		if v.From, err = in.party("from", j.From); err == nil {
			v.To, err = in.party("to", j.To)
		}
		in.Value = v
	case "e2ee":
		var j e2eeJSON
		if err = decodeStrict(data, &j); err != nil {
			break
		}
		v := gate.E2EEInput{Room: j.Room, StanzaType: j.StanzaType}
		if v.From, err = in.party("from", j.From); err == nil {
			v.To, err = in.party("to", j.To)
		}
		in.Value = v
	case "access":
		var j accessJSON
		if err = decodeStrict(data, &j); err != nil {
			break
		}
		if j.Action == "" || j.Operator.ID == "" {
			return Input{}, errors.New("policy: input: action and operator.id are required")
		}
		v := gate.AccessInput{Operator: gate.Operator{ID: j.Operator.ID, Roles: j.Operator.Roles}, Action: j.Action,
			Subject: j.Subject, CaseNumber: j.CaseNumber, Purpose: j.Purpose, SubjectLegalHold: j.SubjectLegalHold, Remote: j.Remote}
		if j.Now != 0 {
			v.Now = time.Unix(j.Now, 0)
		}
		for i, a := range j.Approvals {
			if a.By == "" || a.At == nil {
				return Input{}, fmt.Errorf("policy: input: approvals[%d]: by and at are required", i)
			}
			v.Approvals = append(v.Approvals, gate.Approval{By: a.By, Roles: a.Roles, CaseNumber: a.CaseNumber, At: time.Unix(*a.At, 0)})
		}
		in.Value = v
	case "registration":
		var j registrationJSON
		if err = decodeStrict(data, &j); err != nil {
			break
		}
		in.Value = gate.RegistrationInput{Domain: j.Domain, Username: j.Username, JID: j.JID, Remote: j.Remote}
	case "upload":
		var j uploadJSON
		if err = decodeStrict(data, &j); err != nil {
			break
		}
		v := gate.UploadInput{Size: j.Size, ContentType: j.ContentType}
		v.From, err = in.party("from", j.From)
		in.Value = v
	case "push":
		var j pushJSON
		if err = decodeStrict(data, &j); err != nil {
			break
		}
		if j.Service == "" {
			return Input{}, errors.New("policy: input: service (the app server's JID) is required")
		}
		v := gate.PushInput{Service: j.Service, ServiceLocal: j.ServiceLocal, Encrypted: j.Encrypted}
		if v.User, err = in.party("user", j.User); err == nil && j.Sender != nil {
			v.Sender, err = in.party("sender", *j.Sender)
		}
		in.Value = v
	default:
		return Input{}, fmt.Errorf("policy: unknown decision %q (one of %v)", decision, Decisions())
	}
	if err != nil {
		return Input{}, err
	}
	return in, nil
}

func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("policy: input: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("policy: input: trailing data after the JSON object")
	}
	return nil
}

// party checks a party and, when it comes with attributes, records the
// person.
func (in *Input) party(field string, p partyJSON) (gate.Party, error) {
	if p.Local == nil {
		return gate.Party{}, fmt.Errorf("policy: input: %s.local is required", field)
	}
	out := gate.Party{Local: *p.Local}
	if p.JID != "" {
		if out.JID = canonicalJID(p.JID); out.JID == "" {
			return gate.Party{}, fmt.Errorf("policy: input: %s.jid %q is not a bare JID with a local part", field, p.JID)
		}
	}
	attrs := p.Department != "" || p.Company != "" || len(p.Groups) > 0 || len(p.GroupNames) > 0 || len(p.Sponsors) > 0 || p.Disabled
	switch {
	case p.Kind == "" && attrs:
		return gate.Party{}, fmt.Errorf("policy: input: %s has attributes but no kind", field)
	case p.Kind == "":
		return out, nil
	case p.Known != nil && !*p.Known:
		return gate.Party{}, fmt.Errorf("policy: input: %s: known is false but a kind is given (leave both out for someone the directory does not know)", field)
	case out.JID == "":
		return gate.Party{}, fmt.Errorf("policy: input: %s: a party with a kind needs a jid", field)
	}
	switch directory.Kind(p.Kind) {
	case directory.Employee, directory.Guest, directory.External:
	default:
		return gate.Party{}, fmt.Errorf("policy: input: %s.kind %q is not employee, guest or external", field, p.Kind)
	}
	if len(p.Groups) > 0 && len(p.GroupNames) > 0 && len(p.Groups) != len(p.GroupNames) {
		return gate.Party{}, fmt.Errorf("policy: input: %s: groups and group_names pair up and must be as long", field)
	}
	ids := p.Groups
	if len(ids) == 0 {
		ids = p.GroupNames
	}
	for i, id := range ids {
		name := id
		if len(p.GroupNames) > 0 {
			name = p.GroupNames[i]
		}
		if in.GroupNames == nil {
			in.GroupNames = map[string]string{}
		}
		in.GroupNames[id] = name
	}
	in.People = slices.DeleteFunc(in.People, func(x directory.Person) bool { return x.JID == out.JID })
	in.People = append(in.People, directory.Person{JID: out.JID, Kind: directory.Kind(p.Kind), Department: p.Department,
		Company: p.Company, Groups: ids, Sponsors: p.Sponsors, Disabled: p.Disabled})
	return out, nil
}

// Eval makes the decision an Input asks for, with its people as the
// directory, and returns the typed decision (gate.Decision,
// gate.RetentionDecision or gate.AccessDecision). Retention periods count
// from at (zero: now). It replaces the engine's directory data: it is for
// `kontor policy eval`, not for a serving engine.
func (e *Engine) Eval(ctx context.Context, in Input, at time.Time) (any, error) {
	if len(in.People) > 0 {
		s := directory.Snapshot{People: map[string]directory.Person{}, Groups: map[string]directory.Group{}, Revision: "eval"}
		for _, p := range in.People {
			s.People[p.JID] = p
			for _, g := range p.Groups {
				grp := s.Groups[g]
				grp.ID, grp.Name = g, in.GroupNames[g]
				grp.Members = append(grp.Members, p.JID)
				s.Groups[g] = grp
			}
		}
		if err := e.UpdateDirectory(ctx, s); err != nil {
			return nil, err
		}
	}
	switch v := in.Value.(type) {
	case gate.ContactInput:
		return e.Contact(ctx, v), nil
	case gate.RetentionInput:
		v.At = at
		return e.Retention(ctx, v), nil
	case gate.E2EEInput:
		return e.E2EE(ctx, v), nil
	case gate.AccessInput:
		return e.Access(ctx, v), nil
	case gate.RegistrationInput:
		return e.Registration(ctx, v), nil
	case gate.UploadInput:
		v.At = at
		return e.Upload(ctx, v), nil
	case gate.PushInput:
		return e.Push(ctx, v), nil
	}
	return nil, fmt.Errorf("policy: nothing to evaluate for decision %q", in.Decision)
}

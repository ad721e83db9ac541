package policy

import (
	"encoding/json"
	"sort"

	"github.com/open-policy-agent/opa/v1/ast"

	"kontor.im/kontor/core/directory"
	"kontor.im/kontor/core/gate"
	"kontor.im/kontor/core/jid"
)

type partyRef = gate.Party

// Settings are the values from the configuration that policies read as
// data.kontor.config. They are part of the policy revision.
type Settings struct {
	// UnknownLocalKind is the kind of local accounts the directory does
	// not know (default employee).
	UnknownLocalKind directory.Kind `json:"unknown_local_kind"`
	// BusinessLetterGroups are directory groups (id or name) whose chats
	// are business letters.
	BusinessLetterGroups []string `json:"business_letter_groups"`
	// AccountingGroups are directory groups (id or name) whose chats are
	// accounting records.
	AccountingGroups []string `json:"accounting_groups"`
}

func (s Settings) normalized() Settings {
	if s.UnknownLocalKind == "" {
		s.UnknownLocalKind = directory.Employee
	}
	if s.BusinessLetterGroups == nil {
		s.BusinessLetterGroups = []string{}
	}
	if s.AccountingGroups == nil {
		s.AccountingGroups = []string{}
	}
	return s
}

// canonical is the settings' canonical JSON, hashed into the revision.
func (s Settings) canonical() []byte {
	b, _ := json.Marshal(s.normalized()) // cannot fail: strings only
	return b
}

func (s Settings) value() ast.Value {
	s = s.normalized()
	return ast.NewObject(
		ast.Item(ast.StringTerm("unknown_local_kind"), ast.StringTerm(string(s.UnknownLocalKind))),
		ast.Item(ast.StringTerm("business_letter_groups"), stringsTerm(s.BusinessLetterGroups)),
		ast.Item(ast.StringTerm("accounting_groups"), stringsTerm(s.AccountingGroups)),
	)
}

// dirData is a directory snapshot in the form policies read it
// (data.kontor.directory): people by bare JID, groups by id, both with
// only the attributes policies decide by (no e-mail, phone or display
// names). parties holds each person's party object, ready to put into
// inputs: [0] for a remote, [1] for a local address.
type dirData struct {
	revision string
	people   int
	value    ast.Value
	parties  map[string][2]*ast.Term
	// skipped counts entries whose JID is not valid.
	skipped int
}

func emptyDirectory() *dirData {
	return &dirData{parties: map[string][2]*ast.Term{}, value: ast.NewObject(
		ast.Item(ast.StringTerm("people"), ast.ObjectTerm()),
		ast.Item(ast.StringTerm("groups"), ast.ObjectTerm()),
		ast.Item(ast.StringTerm("revision"), ast.StringTerm("")),
	)}
}

// canonicalJID returns the canonical bare form of s, or "".
func canonicalJID(s string) string {
	j, err := jid.Parse(s)
	if err != nil || j.Local() == "" {
		return ""
	}
	return j.Bare().String()
}

func newDirData(s directory.Snapshot) *dirData {
	d := &dirData{revision: s.Revision, parties: make(map[string][2]*ast.Term, len(s.People))}
	people := ast.NewObject()
	for key, p := range s.People {
		j := canonicalJID(p.JID)
		if j == "" {
			j = canonicalJID(key)
		}
		if j == "" {
			d.skipped++
			continue
		}
		var names []string
		for _, g := range p.Groups {
			if grp, ok := s.Groups[g]; ok && grp.Name != "" {
				names = append(names, grp.Name)
			}
		}
		sort.Strings(names)
		var sponsors []string
		for _, sp := range p.Sponsors {
			if c := canonicalJID(sp); c != "" {
				sponsors = append(sponsors, c)
			}
		}
		attrs := [][2]*ast.Term{
			ast.Item(kJID, ast.StringTerm(j)),
			ast.Item(kKnown, ast.InternedTerm(true)),
			ast.Item(kKind, ast.StringTerm(string(p.Kind))),
			ast.Item(kDepartment, ast.StringTerm(p.Department)),
			ast.Item(kCompany, ast.StringTerm(p.Company)),
			ast.Item(kGroups, stringsTerm(p.Groups)),
			ast.Item(kGroupNames, stringsTerm(names)),
			ast.Item(kSponsors, stringsTerm(sponsors)),
			ast.Item(kDisabled, ast.InternedTerm(p.Disabled)),
		}
		people.Insert(ast.StringTerm(j), ast.ObjectTerm(attrs...))
		d.parties[j] = [2]*ast.Term{
			ast.ObjectTerm(append(attrs, ast.Item(kLocal, ast.InternedTerm(false)))...),
			ast.ObjectTerm(append(attrs[:len(attrs):len(attrs)], ast.Item(kLocal, ast.InternedTerm(true)))...),
		}
		d.people++
	}
	groups := ast.NewObject()
	for id, g := range s.Groups {
		if g.ID != "" {
			id = g.ID
		}
		var members []string
		for _, m := range g.Members {
			if c := canonicalJID(m); c != "" {
				members = append(members, c)
			}
		}
		groups.Insert(ast.StringTerm(id), ast.ObjectTerm(
			ast.Item(ast.StringTerm("id"), ast.StringTerm(id)),
			ast.Item(ast.StringTerm("name"), ast.StringTerm(g.Name)),
			ast.Item(ast.StringTerm("members"), stringsTerm(members)),
		))
	}
	d.value = ast.NewObject(
		ast.Item(ast.StringTerm("people"), ast.NewTerm(people)),
		ast.Item(ast.StringTerm("groups"), ast.NewTerm(groups)),
		ast.Item(ast.StringTerm("revision"), ast.StringTerm(s.Revision)),
	)
	return d
}

// standIn is the party object of someone the directory does not know:
// kind is the configured kind for a local account, external otherwise, and
// "" for no party at all (jid "").
func standIn(p partyRef, unknownLocal *ast.Term) *ast.Term {
	kind := externalTerm
	switch {
	case p.JID == "":
		kind = ast.InternedEmptyString
	case p.Local:
		kind = unknownLocal
	}
	return ast.ObjectTerm(
		ast.Item(kJID, ast.StringTerm(p.JID)),
		ast.Item(kLocal, ast.InternedTerm(p.Local)),
		ast.Item(kKnown, ast.InternedTerm(false)),
		ast.Item(kKind, kind),
		ast.Item(kDepartment, ast.InternedEmptyString),
		ast.Item(kCompany, ast.InternedEmptyString),
		ast.Item(kGroups, ast.InternedEmptyArray),
		ast.Item(kGroupNames, ast.InternedEmptyArray),
		ast.Item(kSponsors, ast.InternedEmptyArray),
		ast.Item(kDisabled, ast.InternedTerm(false)),
	)
}

var externalTerm = ast.StringTerm(string(directory.External))

func stringsTerm(ss []string) *ast.Term {
	if len(ss) == 0 {
		return ast.InternedEmptyArray
	}
	terms := make([]*ast.Term, len(ss))
	for i, s := range ss {
		terms[i] = ast.StringTerm(s)
	}
	return ast.ArrayTerm(terms...)
}

// dataDocument is the whole data document policies see.
func dataDocument(dir *dirData, s Settings) ast.Object {
	return ast.NewObject(ast.Item(ast.StringTerm("kontor"), ast.ObjectTerm(
		ast.Item(ast.StringTerm("directory"), ast.NewTerm(dir.value)),
		ast.Item(ast.StringTerm("config"), ast.NewTerm(s.value())),
	)))
}

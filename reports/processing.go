package reports

import (
	"context"
	"strconv"
	"strings"
)

// Processing describes the processing for the record of processing
// activities: cmd/kontor fills it from the configuration and the policy in
// force (the policy's retention rules and access requirements are asked
// from the engine, not copied).
type Processing struct {
	Controller string   // who runs the server (the configured domains when nothing better is known)
	Domains    []string // served domains
	// Purposes, DataCategories, SubjectCategories and Recipients are the
	// Art. 30(1)(b)-(d) entries.
	Purposes, DataCategories, SubjectCategories, Recipients []string
	Retention                                               []RetentionRule
	DualControl                                             []AccessRule
	Measures                                                []Fact // technical and organisational measures in force
}

// RetentionRule is a retention class and its period, from the policy.
type RetentionRule struct {
	Class, Period, AppliesTo string
}

// AccessRule is what the access policy requires for an operator action.
type AccessRule struct {
	Action          string
	Roles           []string // roles the requester needs (any of)
	ApprovalsNeeded int      // further approvers
	ApproverRoles   []string // roles the approvals must cover
}

func (p *Processing) retentionPeriod(class string) string {
	for _, r := range p.Retention {
		if r.Class == class {
			return r.Period
		}
	}
	return ""
}

// Processing30 is the record of processing activities (GDPR Art. 30(1)).
func Processing30(_ context.Context, src *Source, p Period) (*Report, error) {
	pr := &src.Processing
	r := &Report{Intro: "The record of processing activities for the messaging service (GDPR Art. 30(1)), generated from the configuration and the policy in force when it was made.",
		Meta: src.meta(p, "configuration", "policy (retention rules, access requirements)")}
	r.Facts = []Fact{{"Controller", pr.Controller}, {"Domains", strings.Join(pr.Domains, ", ")}}
	list := func(title string, items []string) Section {
		s := Section{Title: title, Columns: []string{title}}
		for _, it := range items {
			s.Rows = append(s.Rows, []string{it})
		}
		return s
	}
	ret := Section{Title: "Retention periods", Columns: []string{"class", "period", "applies to"}}
	for _, x := range pr.Retention {
		ret.Rows = append(ret.Rows, []string{x.Class, x.Period, x.AppliesTo})
	}
	dual := Section{Title: "Dual control of access to personal data", Columns: []string{"action", "requester roles", "further approvals", "approver roles"},
		Note: "As the access policy requires it; every access decision is written to the audit trail."}
	for _, a := range pr.DualControl {
		dual.Rows = append(dual.Rows, []string{a.Action, strings.Join(a.Roles, ", "), strconv.Itoa(a.ApprovalsNeeded), strings.Join(a.ApproverRoles, ", ")})
	}
	tom := Section{Title: "Technical and organisational measures in force", Columns: []string{"measure", "setting"}}
	for _, m := range pr.Measures {
		tom.Rows = append(tom.Rows, []string{m.Label, m.Value})
	}
	r.Sections = []Section{list("Purposes", pr.Purposes), list("Categories of personal data", pr.DataCategories),
		list("Categories of data subjects", pr.SubjectCategories), list("Recipients", pr.Recipients), ret, dual, tom}
	return r, nil
}

package reports

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// SubjectRequest is one data subject request.
type SubjectRequest struct {
	ID, Subject, Type string
	Received, Done    time.Time // Done zero: still open
	// Deadline is one month after receipt (Art. 12(3)); an extension is
	// not modelled.
	Deadline time.Time
	Status   string // "done", "done late", "open", "overdue"
}

// RequestsData lists the requests received before p.To that were not done
// before p.From.
func RequestsData(ctx context.Context, src *Source, p Period) ([]SubjectRequest, error) {
	recs, err := auditEntries(ctx, src.Audit, []string{ActionRequest, ActionRequestDone, ActionExport, ActionErase}, time.Time{}, p.To)
	if err != nil {
		return nil, err
	}
	byID := map[string]*SubjectRequest{}
	var order []string
	get := func(id string) *SubjectRequest {
		r := byID[id]
		if r == nil {
			r = &SubjectRequest{ID: id}
			byID[id] = r
			order = append(order, id)
		}
		return r
	}
	for _, e := range recs {
		// The data subject request's id: "dsr" on exports and erasures
		// (their "request" is the dual-control request), "request" on
		// the gdpr.request entries.
		id := e.Details["dsr"]
		if e.Action == ActionRequest || e.Action == ActionRequestDone {
			id = e.Details["request"]
		}
		switch e.Action {
		case ActionRequest:
			if id == "" {
				id = "#" + itoa(e.Seq)
			}
			r := get(id)
			r.Subject, r.Type, r.Received = e.Subject, e.Details["type"], e.At
		case ActionRequestDone, ActionExport, ActionErase:
			if id == "" {
				continue // not the answer to a request (e.g. eDiscovery)
			}
			r := get(id)
			if r.Subject == "" {
				r.Subject = e.Subject
			}
			if r.Type == "" {
				r.Type = map[string]string{ActionExport: "access", ActionErase: "erasure"}[e.Action]
			}
			if r.Done.IsZero() {
				r.Done = e.At
			}
		}
	}
	now := src.now()
	var out []SubjectRequest
	for _, id := range order {
		r := byID[id]
		if r.Received.IsZero() {
			r.Received = r.Done // recorded only when done
		}
		if !r.Done.IsZero() && r.Done.Before(p.From) {
			continue
		}
		r.Deadline = r.Received.AddDate(0, 1, 0)
		switch {
		case !r.Done.IsZero() && r.Done.After(r.Deadline):
			r.Status = "done late"
		case !r.Done.IsZero():
			r.Status = "done"
		case now.After(r.Deadline):
			r.Status = "overdue"
		default:
			r.Status = "open"
		}
		out = append(out, *r)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Received.Before(out[j].Received) })
	return out, nil
}

// Requests is the data subject requests report.
func Requests(ctx context.Context, src *Source, p Period) (*Report, error) {
	reqs, err := RequestsData(ctx, src, p)
	if err != nil {
		return nil, err
	}
	r := &Report{Intro: "Each data subject request open during the period: its type, when it was received and answered, and its deadline of one month from receipt (GDPR Art. 12(3)).",
		Meta: src.meta(p, "audit trail: "+strings.Join([]string{ActionRequest, ActionRequestDone, ActionExport, ActionErase}, ", "))}
	counts := map[string]int{}
	s := Section{Title: "Requests", Columns: []string{"request", "data subject", "type", "received", "deadline", "done", "status"}}
	for _, q := range reqs {
		counts[q.Status]++
		s.Rows = append(s.Rows, []string{q.ID, q.Subject, q.Type, fmtTime(q.Received), fmtTime(q.Deadline), fmtTime(q.Done), q.Status})
	}
	r.Facts = []Fact{{"Requests", strconv.Itoa(len(reqs))}, {"Done in time", strconv.Itoa(counts["done"])},
		{"Done late", strconv.Itoa(counts["done late"])}, {"Open", strconv.Itoa(counts["open"])}, {"Overdue", strconv.Itoa(counts["overdue"])}}
	r.Sections = []Section{s}
	return r, nil
}

// SyncRun is one directory sync run.
type SyncRun struct {
	At                                                   time.Time
	Domain, Mode, Reason                                 string
	Created, Changed, Disabled, Enabled, Deleted, Errors int64
	// ErasedSkipped counts directory entries of erased people that the
	// run did not recreate (GDPR Art. 17).
	ErasedSkipped int64
}

// SyncData lists the sync runs of the period.
func SyncData(ctx context.Context, src *Source, p Period) ([]SyncRun, error) {
	recs, err := auditEntries(ctx, src.Audit, []string{ActionSync}, p.From, p.To)
	if err != nil {
		return nil, err
	}
	var out []SyncRun
	for _, e := range recs {
		d := e.Details
		out = append(out, SyncRun{At: e.At, Domain: e.Subject, Mode: d["mode"], Reason: e.Reason,
			Created: atoi(d["created"]), Changed: atoi(d["updated"]), Disabled: atoi(d["disabled"]) + atoi(d["retired"]),
			Enabled: atoi(d["enabled"]) + atoi(d["restored"]), Deleted: atoi(d["deleted"]), Errors: atoi(d["errors"]),
			ErasedSkipped: atoi(d["erased_skipped"])})
	}
	return out, nil
}

// Sync is the directory sync report.
func Sync(ctx context.Context, src *Source, p Period) (*Report, error) {
	runs, err := SyncData(ctx, src, p)
	if err != nil {
		return nil, err
	}
	r := &Report{Intro: "Every directory sync run in the period and what it did to accounts. Disabled includes accounts retired because their directory entry disappeared; enabled includes restored ones. Erased, skipped counts directory entries of people who were erased (GDPR Art. 17) and were not recreated.",
		Meta: src.meta(p, "audit trail: "+ActionSync)}
	var tot SyncRun
	failed := 0
	s := Section{Title: "Sync runs", Columns: []string{"time", "domain", "mode", "trigger", "created", "changed", "disabled", "enabled", "deleted", "erased, skipped", "errors"}}
	chart := Chart{Title: "Accounts changed per run", Unit: "accounts"}
	for _, u := range runs {
		tot.Created, tot.Changed, tot.Disabled = tot.Created+u.Created, tot.Changed+u.Changed, tot.Disabled+u.Disabled
		tot.Enabled, tot.Deleted, tot.Errors = tot.Enabled+u.Enabled, tot.Deleted+u.Deleted, tot.Errors+u.Errors
		tot.ErasedSkipped += u.ErasedSkipped
		if u.Errors > 0 {
			failed++
		}
		s.Rows = append(s.Rows, []string{fmtTime(u.At), u.Domain, u.Mode, u.Reason, itoa(u.Created), itoa(u.Changed),
			itoa(u.Disabled), itoa(u.Enabled), itoa(u.Deleted), itoa(u.ErasedSkipped), itoa(u.Errors)})
		chart.Labels = append(chart.Labels, u.At.UTC().Format("01-02 15:04"))
		chart.Values = append(chart.Values, float64(u.Created+u.Changed+u.Disabled+u.Enabled+u.Deleted))
	}
	r.Facts = []Fact{{"Runs", strconv.Itoa(len(runs))}, {"Runs with errors", strconv.Itoa(failed)},
		{"Accounts created", itoa(tot.Created)}, {"Accounts changed", itoa(tot.Changed)}, {"Accounts disabled", itoa(tot.Disabled)},
		{"Accounts enabled", itoa(tot.Enabled)}, {"Accounts deleted", itoa(tot.Deleted)},
		{"Erased, skipped", itoa(tot.ErasedSkipped)}, {"Errors", itoa(tot.Errors)}}
	if len(runs) > 0 {
		r.Charts = []Chart{chart}
	}
	r.Sections = []Section{s}
	return r, nil
}

// DenialCount is how often one rule denied for one department.
type DenialCount struct {
	Rule, Decision, Department string
	Count                      int64
}

// DenialsData counts the denials of the period by rule (the decision's
// reason), decision point and the department of whoever was refused.
func DenialsData(ctx context.Context, src *Source, p Period) ([]DenialCount, error) {
	counts, err := src.Store.AuditCounts(ctx, ActionPolicyDeny, "decision", p.From, p.To)
	if err != nil {
		return nil, fmt.Errorf("reports: %w", err)
	}
	agg := map[DenialCount]int64{}
	for _, c := range counts {
		dep := ""
		if src.Department != nil {
			dep = src.Department(c.Actor)
		}
		if dep == "" {
			dep = "(unknown)"
		}
		agg[DenialCount{Rule: c.Reason, Decision: c.Detail, Department: dep}] += c.Count
	}
	var out []DenialCount
	for k, n := range agg {
		k.Count = n
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		if a.Rule != b.Rule {
			return a.Rule < b.Rule
		}
		if a.Decision != b.Decision {
			return a.Decision < b.Decision
		}
		return a.Department < b.Department
	})
	return out, nil
}

// Denials is the policy denials report.
func Denials(ctx context.Context, src *Source, p Period) (*Report, error) {
	ds, err := DenialsData(ctx, src, p)
	if err != nil {
		return nil, err
	}
	r := &Report{Intro: "How often each policy rule refused something in the period, by decision point and by the department of the person refused. Counts only: no message content, no addresses.",
		Meta: src.meta(p, "audit trail: "+ActionPolicyDeny+" (counted in SQL)", "directory departments")}
	s := Section{Title: "Denials", Columns: []string{"rule", "decision", "department", "count"}}
	perRule := map[string]int64{}
	var total int64
	for _, d := range ds {
		s.Rows = append(s.Rows, []string{d.Rule, d.Decision, d.Department, itoa(d.Count)})
		perRule[d.Rule] += d.Count
		total += d.Count
	}
	rules := make([]string, 0, len(perRule))
	for k := range perRule {
		rules = append(rules, k)
	}
	sort.Slice(rules, func(i, j int) bool {
		if perRule[rules[i]] != perRule[rules[j]] {
			return perRule[rules[i]] > perRule[rules[j]]
		}
		return rules[i] < rules[j]
	})
	chart := Chart{Title: "Denials by rule", Unit: "denials"}
	for _, k := range rules {
		chart.Labels, chart.Values = append(chart.Labels, k), append(chart.Values, float64(perRule[k]))
	}
	r.Facts = []Fact{{"Denials", itoa(total)}, {"Rules that denied", strconv.Itoa(len(rules))}}
	if len(rules) > 0 {
		r.Charts = []Chart{chart}
	}
	r.Sections = []Section{s}
	return r, nil
}

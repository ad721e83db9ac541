package reports

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/storage"
)

// auditEntries returns the records of these actions (each with the actions
// below it) with since <= At < until, oldest first, read in pages.
func auditEntries(ctx context.Context, st storage.AuditStore, actions []string, since, until time.Time) ([]storage.AuditRecord, error) {
	var out []storage.AuditRecord
	for _, a := range actions {
		after := int64(0)
		for {
			recs, err := st.AuditRecords(ctx, storage.AuditQuery{Action: a, Since: since, Until: until, After: after, Limit: 1000})
			if err != nil {
				return nil, fmt.Errorf("reports: reading the audit trail: %w", err)
			}
			for _, r := range recs {
				if r.Action == a || !slices.Contains(actions, r.Action) {
					out = append(out, r)
				}
			}
			if len(recs) < 1000 {
				break
			}
			after = recs[len(recs)-1].Seq
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return slices.CompactFunc(out, func(a, b storage.AuditRecord) bool { return a.Seq == b.Seq }), nil
}

func atoi(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// RetentionClass is what one retention class holds.
type RetentionClass struct {
	Class    string
	Period   string // from the policy, "" when unknown
	Messages int64
	Bytes    int64
	Oldest   time.Time
	PastDue  int64
}

// MonthVolume is what the archive holds from one month.
type MonthVolume struct {
	Month    int // YYYYMM
	Messages int64
	Bytes    int64
}

// PurgeRun is one purge recorded in the audit trail.
type PurgeRun struct {
	At                                  time.Time
	Actor                               string
	Messages, Keys, HeldOwners, Errored int64
}

// LegalHold is a hold in force.
type LegalHold struct {
	Subject, Case, By string
	Since             time.Time
}

// RetentionFigures are the retention report's numbers.
type RetentionFigures struct {
	Classes []RetentionClass
	Months  []MonthVolume
	Purges  []PurgeRun
	Holds   []LegalHold
}

// RetentionData computes the retention figures: archive totals as of now,
// purges within p, holds in force at p.To.
func RetentionData(ctx context.Context, src *Source, p Period) (RetentionFigures, error) {
	var f RetentionFigures
	stats, err := src.Store.ArchiveSliceStats(ctx, src.now())
	if err != nil {
		return f, fmt.Errorf("reports: %w", err)
	}
	byClass := map[string]*RetentionClass{}
	byMonth := map[int]*MonthVolume{}
	for _, s := range stats {
		c := byClass[s.Class]
		if c == nil {
			c = &RetentionClass{Class: s.Class, Period: src.Processing.retentionPeriod(s.Class)}
			byClass[s.Class] = c
		}
		c.Messages += s.Messages
		c.Bytes += s.Bytes
		c.PastDue += s.PastDue
		if c.Oldest.IsZero() || s.Oldest.Before(c.Oldest) {
			c.Oldest = s.Oldest
		}
		m := byMonth[s.Slice]
		if m == nil {
			m = &MonthVolume{Month: s.Slice}
			byMonth[s.Slice] = m
		}
		m.Messages += s.Messages
		m.Bytes += s.Bytes
	}
	for _, r := range src.Processing.Retention {
		if byClass[r.Class] == nil {
			byClass[r.Class] = &RetentionClass{Class: r.Class, Period: r.Period}
		}
	}
	for _, c := range byClass {
		f.Classes = append(f.Classes, *c)
	}
	sort.Slice(f.Classes, func(i, j int) bool { return f.Classes[i].Class < f.Classes[j].Class })
	for _, m := range byMonth {
		f.Months = append(f.Months, *m)
	}
	sort.Slice(f.Months, func(i, j int) bool { return f.Months[i].Month < f.Months[j].Month })

	purges, err := auditEntries(ctx, src.Audit, []string{ActionPurge}, p.From, p.To)
	if err != nil {
		return f, err
	}
	for _, r := range purges {
		f.Purges = append(f.Purges, PurgeRun{At: r.At, Actor: r.Actor, Messages: atoi(r.Details["messages"]),
			Keys: atoi(r.Details["keys"]), HeldOwners: atoi(r.Details["held_owners"]), Errored: atoi(r.Details["hold_errors"])})
	}
	f.Holds, err = holdsInForce(ctx, src.Audit, p.To)
	return f, err
}

// holdsInForce replays hold entries up to at.
func holdsInForce(ctx context.Context, st storage.AuditStore, at time.Time) ([]LegalHold, error) {
	recs, err := auditEntries(ctx, st, []string{ActionHoldSet, ActionHoldRelease}, time.Time{}, at)
	if err != nil {
		return nil, err
	}
	held := map[string]LegalHold{}
	for _, r := range recs {
		c := r.Details["case"]
		if c == "" {
			c = r.Reason
		}
		key := r.Subject + "\x00" + c
		switch r.Action {
		case ActionHoldSet:
			held[key] = LegalHold{Subject: r.Subject, Case: c, By: r.Actor, Since: r.At}
		case ActionHoldRelease:
			delete(held, key)
		}
	}
	var out []LegalHold
	for _, h := range held {
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Subject != out[j].Subject {
			return out[i].Subject < out[j].Subject
		}
		return out[i].Case < out[j].Case
	})
	return out, nil
}

// Retention is the retention status report.
func Retention(ctx context.Context, src *Source, p Period) (*Report, error) {
	f, err := RetentionData(ctx, src, p)
	if err != nil {
		return nil, err
	}
	r := &Report{Intro: "What the encrypted archive holds per retention class now, the purge runs of the period and the legal holds in force at its end. Counted from message metadata; no message was decrypted.",
		Meta: src.meta(p, "archive metadata (archive_messages, archive_keys)", "audit trail: "+ActionPurge+", "+ActionHoldSet+", "+ActionHoldRelease)}
	var total, bytes, due int64
	classes := Section{Title: "Retention classes", Columns: []string{"class", "retention period", "messages", "bytes", "oldest message", "past due"},
		Note: "Past due counts messages whose retention ended but which are still stored; it should be zero (messages under a legal hold are kept on purpose)."}
	for _, c := range f.Classes {
		total, bytes, due = total+c.Messages, bytes+c.Bytes, due+c.PastDue
		classes.Rows = append(classes.Rows, []string{c.Class, c.Period, itoa(c.Messages), itoa(c.Bytes), fmtTime(c.Oldest), itoa(c.PastDue)})
	}
	r.Facts = []Fact{{"Archived messages", itoa(total)}, {"Archived bytes (encrypted)", humanBytes(bytes)},
		{"Messages past due", itoa(due)}, {"Purge runs in the period", strconv.Itoa(len(f.Purges))}, {"Legal holds in force", strconv.Itoa(len(f.Holds))}}
	months := Section{Title: "Archive volume by month", Columns: []string{"month", "messages", "bytes"}}
	chart := Chart{Title: "Archived messages by month", Unit: "messages"}
	for _, m := range f.Months {
		label := fmt.Sprintf("%04d-%02d", m.Month/100, m.Month%100)
		months.Rows = append(months.Rows, []string{label, itoa(m.Messages), itoa(m.Bytes)})
		chart.Labels, chart.Values = append(chart.Labels, label), append(chart.Values, float64(m.Messages))
	}
	purges := Section{Title: "Purge runs", Columns: []string{"time", "run by", "messages deleted", "keys destroyed", "owners held", "hold check errors"}}
	for _, u := range f.Purges {
		purges.Rows = append(purges.Rows, []string{fmtTime(u.At), u.Actor, itoa(u.Messages), itoa(u.Keys), itoa(u.HeldOwners), itoa(u.Errored)})
	}
	holds := Section{Title: "Legal holds in force", Columns: []string{"subject", "case", "placed by", "since"}}
	for _, h := range f.Holds {
		holds.Rows = append(holds.Rows, []string{h.Subject, h.Case, h.By, fmtTime(h.Since)})
	}
	r.Charts = []Chart{chart}
	r.Sections = []Section{classes, months, purges, holds}
	return r, nil
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// OperatorActivity counts one operator's actions of one kind.
type OperatorActivity struct {
	Operator, Action string
	Count            int64
}

// AccessFigures are the access report's content.
type AccessFigures struct {
	Entries    []storage.AuditRecord
	ByOperator []OperatorActivity
	// Verified is the number of entries the chain check verified; Problem
	// is what it found wrong ("" when the trail is intact).
	Verified int64
	Head     string
	Problem  string
}

// AccessData reads the access entries of the period and verifies the
// whole audit chain.
func AccessData(ctx context.Context, src *Source, p Period) (AccessFigures, error) {
	var f AccessFigures
	var err error
	if f.Entries, err = auditEntries(ctx, src.Audit, accessActions, p.From, p.To); err != nil {
		return f, err
	}
	counts := map[[2]string]int64{}
	for _, e := range f.Entries {
		counts[[2]string{e.Actor, e.Action}]++
	}
	for k, n := range counts {
		f.ByOperator = append(f.ByOperator, OperatorActivity{Operator: k[0], Action: k[1], Count: n})
	}
	sort.Slice(f.ByOperator, func(i, j int) bool {
		a, b := f.ByOperator[i], f.ByOperator[j]
		if a.Operator != b.Operator {
			return a.Operator < b.Operator
		}
		return a.Action < b.Action
	})
	rep, err := audit.New(src.Audit).Verify(ctx, audit.VerifyOptions{})
	switch {
	case err == nil:
		f.Verified, f.Head = rep.Verified, rep.Head.String()
	case errors.Is(err, audit.ErrTampered):
		f.Problem = err.Error()
	default:
		return f, fmt.Errorf("reports: verifying the audit trail: %w", err)
	}
	return f, nil
}

// Access is the access and audit report.
func Access(ctx context.Context, src *Source, p Period) (*Report, error) {
	f, err := AccessData(ctx, src, p)
	if err != nil {
		return nil, err
	}
	r := &Report{Intro: "Every export, erasure, legal hold, approval, access decision and policy change recorded in the audit trail in the period, by operator, and the result of checking the trail's hash chain.",
		Meta: src.meta(p, "audit trail: "+strings.Join(accessActions, ", "), "audit chain verification (whole trail)")}
	r.Facts = []Fact{{"Audit chain", "intact, " + itoa(f.Verified) + " entries verified"}}
	if f.Problem != "" {
		r.Facts = []Fact{{"Audit chain", "TAMPERED: " + f.Problem}}
	}
	r.Facts = append(r.Facts, Fact{"Entries in the period", strconv.Itoa(len(f.Entries))})
	if f.Head != "" {
		r.Facts = append(r.Facts, Fact{"Chain head (seq:hash)", f.Head})
	}
	by := Section{Title: "By operator", Columns: []string{"operator", "action", "count"}}
	chart := Chart{Title: "Actions by operator", Unit: "entries"}
	perOp := map[string]int64{}
	for _, o := range f.ByOperator {
		by.Rows = append(by.Rows, []string{o.Operator, o.Action, itoa(o.Count)})
		perOp[o.Operator] += o.Count
	}
	ops := make([]string, 0, len(perOp))
	for o := range perOp {
		ops = append(ops, o)
	}
	sort.Strings(ops)
	for _, o := range ops {
		chart.Labels, chart.Values = append(chart.Labels, o), append(chart.Values, float64(perOp[o]))
	}
	list := Section{Title: "Entries", Columns: []string{"seq", "time", "operator", "action", "subject", "reason / case", "details"}}
	for _, e := range f.Entries {
		list.Rows = append(list.Rows, []string{itoa(e.Seq), fmtTime(e.At), e.Actor, e.Action, e.Subject, e.Reason, detailText(e.Details)})
	}
	if len(chart.Labels) > 0 {
		r.Charts = []Chart{chart}
	}
	r.Sections = []Section{by, list}
	return r, nil
}

// detailText shows details as sorted key=value pairs.
func detailText(d map[string]string) string {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString(k + "=" + d[k])
	}
	return b.String()
}

// Package reports builds the reports a data protection officer files, prints
// and shows an auditor: the record of processing activities (GDPR Art. 30),
// retention status, access and audit, data subject requests, directory sync
// and policy denials. Each is built from the configuration and policy in
// force, the archive's metadata and the audit trail, and rendered as HTML
// (self-contained, charts as inline SVG, printable), PDF, CSV or JSON, all
// four from the same Report value.
//
// Reports read; they never write to the message path. Figures are
// aggregates the store computes in SQL over clear metadata
// (storage.ReportStore): no message is decrypted, so a report over ten
// million archived messages takes seconds (see BenchmarkReports10M and
// the README). Lists of events (exports, erasures, holds, approvals, sync
// runs) are read from the audit trail with the actions in Actions.
//
// PDF is written with github.com/go-pdf/fpdf: pure Go, no cgo and no
// external program, with the core fonts built in, which is all a table
// report needs; the alternatives either drive a browser (heavy, not always
// installed on a server) or are unmaintained.
package reports

import (
	"context"
	"errors"
	"fmt"
	"time"

	"kontor.im/kontor/core/storage"
)

// Report is one rendered-independent report: its facts, tables and charts.
// Renderers (HTML, PDF, CSV, JSON) show the same content.
type Report struct {
	Name  string `json:"name"`
	Title string `json:"title"`
	// Intro says in a sentence what the report shows.
	Intro    string    `json:"intro"`
	Meta     Meta      `json:"meta"`
	Facts    []Fact    `json:"facts,omitempty"`
	Charts   []Chart   `json:"charts,omitempty"`
	Sections []Section `json:"sections"`
}

// Meta says when and from what a report was made.
type Meta struct {
	Generated      time.Time `json:"generated"`
	From           time.Time `json:"from"`
	To             time.Time `json:"to"`
	ServerVersion  string    `json:"server_version"`
	ConfigRevision string    `json:"config_revision"`
	PolicyRevision string    `json:"policy_revision"`
	Backend        string    `json:"backend"`
	// Sources name the data it was made from.
	Sources []string `json:"sources"`
}

// Fact is one labelled value shown above the tables.
type Fact struct {
	Label string `json:"label"`
	Value string `json:"value"`
}

// Section is one table.
type Section struct {
	Title   string     `json:"title"`
	Note    string     `json:"note,omitempty"`
	Columns []string   `json:"columns"`
	Rows    [][]string `json:"rows"`
}

// Chart is a bar chart of one series.
type Chart struct {
	Title  string    `json:"title"`
	Unit   string    `json:"unit"`
	Labels []string  `json:"labels"`
	Values []float64 `json:"values"`
}

// Period bounds a report: From <= t < To.
type Period struct{ From, To time.Time }

// Source is what reports are made from.
type Source struct {
	Store storage.ReportStore
	Audit storage.AuditStore
	// Backend names the store ("sqlite", "postgres").
	Backend string
	Now     func() time.Time
	// ServerVersion, ConfigRevision and PolicyRevision go into every
	// report's Meta.
	ServerVersion, ConfigRevision, PolicyRevision string
	// Processing describes the processing for the Art. 30 record; cmd
	// fills it from the configuration and the policy in force.
	Processing Processing
	// Department names a person's department ("" when unknown); nil: none
	// known. The denials report groups by it.
	Department func(jid string) string
}

// Definition is one report kind.
type Definition struct {
	Name, Title, Description string
	Build                    func(ctx context.Context, src *Source, p Period) (*Report, error)
}

// Definitions lists the reports, in the order `kontor report list` shows.
var Definitions = []Definition{
	{"processing", "Record of processing activities (GDPR Art. 30)",
		"purposes, data and people, recipients, retention per class, technical and organisational measures in force", Processing30},
	{"retention", "Retention status",
		"messages and bytes per retention class, oldest message, past due, purge runs, legal holds, archive volume", Retention},
	{"access", "Access and audit",
		"every export, erasure, hold, approval and policy change in the period, by operator; audit chain verification", Access},
	{"requests", "Data subject requests",
		"each request, its type, received, done and deadline (one month, Art. 12(3))", Requests},
	{"sync", "Directory sync",
		"accounts created, changed, disabled and deleted per sync run; errors", Sync},
	{"denials", "Policy denials",
		"denials counted by rule and department, without content, for tuning policies", Denials},
}

// ErrUnknown is returned by Build for a name not in Definitions.
var ErrUnknown = errors.New("reports: unknown report")

// Build makes the report called name.
func Build(ctx context.Context, name string, src *Source, p Period) (*Report, error) {
	if !p.From.Before(p.To) {
		return nil, fmt.Errorf("reports: the period's start %s is not before its end %s", p.From.Format(time.RFC3339), p.To.Format(time.RFC3339))
	}
	for _, d := range Definitions {
		if d.Name == name {
			r, err := d.Build(ctx, src, p)
			if err != nil {
				return nil, err
			}
			r.Name, r.Title = d.Name, d.Title
			return r, nil
		}
	}
	return nil, fmt.Errorf("%w %q", ErrUnknown, name)
}

func (src *Source) meta(p Period, sources ...string) Meta {
	now := time.Now
	if src.Now != nil {
		now = src.Now
	}
	return Meta{Generated: now().UTC(), From: p.From.UTC(), To: p.To.UTC(), ServerVersion: src.ServerVersion,
		ConfigRevision: src.ConfigRevision, PolicyRevision: src.PolicyRevision, Backend: src.Backend, Sources: sources}
}

func (src *Source) now() time.Time {
	if src.Now != nil {
		return src.Now()
	}
	return time.Now()
}

const dateTime = "2006-01-02 15:04 MST"

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(dateTime)
}

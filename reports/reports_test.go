package reports_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/storage/pgtest"
	"kontor.im/kontor/core/storage/postgres"
	"kontor.im/kontor/core/storage/sqlite"
	"kontor.im/kontor/reports"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// backends opens an empty store on each backend.
var backends = []struct {
	name string
	open func(t *testing.T) storage.Store
}{
	{"sqlite", func(t *testing.T) storage.Store {
		s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "kontor.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
	{"postgres", func(t *testing.T) storage.Store {
		s, err := postgres.Open(t.Context(), pgtest.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
}

var (
	t0  = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	per = reports.Period{From: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
)

// fixture fills a store with a known archive and audit trail and returns
// the Source over it.
func fixture(t *testing.T, st storage.Store) *reports.Source {
	t.Helper()
	ctx := t.Context()
	as := st.(storage.ArchiveStore)
	key := func(owner string, slice int, class string) int64 {
		if err := as.CreateArchiveKeys(ctx, []storage.ArchiveKey{{ArchiveKeySlot: storage.ArchiveKeySlot{Owner: owner, Slice: slice, Class: class},
			KEKID: "kek", Wrapped: []byte("w"), KeepUntil: storage.ArchiveForever}}); err != nil {
			t.Fatal(err)
		}
		ks, err := as.ArchiveKeys(ctx, []storage.ArchiveKeySlot{{Owner: owner, Slice: slice, Class: class}})
		if err != nil || len(ks) != 1 {
			t.Fatalf("ArchiveKeys: %v %v", ks, err)
		}
		return ks[0].ID
	}
	kJan := key("alice@example.com", 202601, "internal")
	kFeb := key("alice@example.com", 202602, "internal")
	kBiz := key("bob@example.com", 202602, "business_letter")
	var rows []storage.ArchiveRow
	n := byte(0)
	add := func(owner string, k int64, at, exp time.Time, size int) {
		n++
		rows = append(rows, storage.ArchiveRow{Owner: owner, ID: [16]byte{n}, Peer: "p@example.com", Time: at, Expires: exp, KeyID: k, Sealed: make([]byte, size)})
	}
	jan, feb := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC), time.Date(2026, 2, 5, 0, 0, 0, 0, time.UTC)
	add("alice@example.com", kJan, jan, now.Add(-time.Hour), 100) // past due
	add("alice@example.com", kJan, jan.Add(time.Hour), now.Add(time.Hour), 100)
	add("alice@example.com", kFeb, feb, now.AddDate(0, 1, 0), 40)
	add("bob@example.com", kBiz, feb.Add(time.Minute), storage.ArchiveForever, 1000)
	add("bob@example.com", kBiz, feb.Add(2*time.Minute), storage.ArchiveForever, 1000)
	if err := as.AppendArchive(ctx, rows, nil); err != nil {
		t.Fatal(err)
	}

	at := t0
	tr := audit.New(st.(storage.AuditStore), audit.WithClock(func() time.Time { return at }))
	for i, e := range []audit.Entry{
		{Actor: "dpo", Action: reports.ActionHoldSet, Subject: "carol@example.com", Reason: "case-1"},
		{Actor: "dpo", Action: reports.ActionRequest, Subject: "dave@example.com", Details: map[string]string{"request": "R1", "type": "access"}},
		{Actor: "anna", Action: reports.ActionApproval, Subject: "dave@example.com", Details: map[string]string{"request": "R1"}},
		{Actor: "dpo", Action: reports.ActionExport, Subject: "dave@example.com", Details: map[string]string{"dsr": "R1", "request": "A7", "messages": "12"}},
		{Actor: "dpo", Action: reports.ActionRequest, Subject: "erin@example.com", Details: map[string]string{"request": "R2", "type": "erasure"}},
		{Actor: "dpo", Action: reports.ActionHoldSet, Subject: "frank@example.com", Reason: "case-2"},
		{Actor: "legal", Action: reports.ActionHoldRelease, Subject: "carol@example.com", Reason: "case-1"},
		{Actor: "ldapsync", Action: reports.ActionSync, Subject: "example.com", Reason: "scheduled", Details: map[string]string{"mode": "full", "created": "5", "updated": "2", "disabled": "1", "retired": "1", "deleted": "0", "errors": "0"}},
		{Actor: "ldapsync", Action: reports.ActionSync, Subject: "example.com", Reason: "scheduled", Details: map[string]string{"mode": "incremental", "created": "0", "updated": "3", "deleted": "1", "errors": "2", "erased_skipped": "1"}},
		{Actor: "alice@example.com", Action: reports.ActionPolicyDeny, Reason: "contact.ethical_wall", Details: map[string]string{"decision": "contact"}},
		{Actor: "alice@example.com", Action: reports.ActionPolicyDeny, Reason: "contact.ethical_wall", Details: map[string]string{"decision": "contact"}},
		{Actor: "bob@example.com", Action: reports.ActionPolicyDeny, Reason: "contact.ethical_wall", Details: map[string]string{"decision": "contact"}},
		{Actor: "zed@example.com", Action: reports.ActionPolicyDeny, Reason: "e2ee.required", Details: map[string]string{"decision": "e2ee"}},
		{Actor: "system", Action: reports.ActionPurge, Details: map[string]string{"messages": "40", "keys": "3", "held_owners": "1", "hold_errors": "0"}},
		{Actor: "root", Action: reports.ActionPolicyLoad, Subject: "/etc/kontor/policy"},
	} {
		at = t0.Add(time.Duration(i) * 24 * time.Hour)
		if _, err := tr.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	// Outside the period: not counted by period-bound figures.
	at = per.To.Add(time.Hour)
	if _, err := tr.Append(ctx, audit.Entry{Actor: "alice@example.com", Action: reports.ActionPolicyDeny, Reason: "contact.ethical_wall"}); err != nil {
		t.Fatal(err)
	}
	deps := map[string]string{"alice@example.com": "Trading", "bob@example.com": "Research"}
	return &reports.Source{Store: st.(storage.ReportStore), Audit: st.(storage.AuditStore), Backend: st.Backend(),
		Now: func() time.Time { return now }, ServerVersion: "test", ConfigRevision: "cfg1", PolicyRevision: "pol1",
		Department: func(j string) string { return deps[j] },
		Processing: reports.Processing{Controller: "Example GmbH", Domains: []string{"example.com"},
			Purposes: []string{"internal communication"}, Retention: []reports.RetentionRule{{Class: "internal", Period: "90 days"}, {Class: "accounting_record", Period: "8 years"}},
			DualControl: []reports.AccessRule{{Action: "archive.export", Roles: []string{"dpo"}, ApprovalsNeeded: 2}},
			Measures:    []reports.Fact{{Label: "TLS", Value: "1.2, 1.3"}}}}
}

func TestReports(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			st := b.open(t)
			defer st.Close()
			src := fixture(t, st)
			ctx := t.Context()

			t.Run("retention", func(t *testing.T) {
				f, err := reports.RetentionData(ctx, src, per)
				if err != nil {
					t.Fatal(err)
				}
				want := []reports.RetentionClass{
					{Class: "accounting_record", Period: "8 years"},
					{Class: "business_letter", Messages: 2, Bytes: 2000, Oldest: time.Date(2026, 2, 5, 0, 1, 0, 0, time.UTC)},
					{Class: "internal", Period: "90 days", Messages: 3, Bytes: 240, Oldest: time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC), PastDue: 1},
				}
				if !slices.EqualFunc(f.Classes, want, func(a, b reports.RetentionClass) bool {
					return a.Class == b.Class && a.Period == b.Period && a.Messages == b.Messages && a.Bytes == b.Bytes && a.Oldest.Equal(b.Oldest) && a.PastDue == b.PastDue
				}) {
					t.Errorf("classes:\n got %+v\nwant %+v", f.Classes, want)
				}
				if wantM := []reports.MonthVolume{{202601, 2, 200}, {202602, 3, 2040}}; !slices.Equal(f.Months, wantM) {
					t.Errorf("months: got %+v, want %+v", f.Months, wantM)
				}
				if len(f.Purges) != 1 || f.Purges[0].Messages != 40 || f.Purges[0].Keys != 3 || f.Purges[0].HeldOwners != 1 {
					t.Errorf("purges: %+v", f.Purges)
				}
				if len(f.Holds) != 1 || f.Holds[0].Subject != "frank@example.com" || f.Holds[0].Case != "case-2" || f.Holds[0].By != "dpo" {
					t.Errorf("holds in force: %+v", f.Holds)
				}
			})
			t.Run("access", func(t *testing.T) {
				f, err := reports.AccessData(ctx, src, per)
				if err != nil {
					t.Fatal(err)
				}
				var actions []string
				for _, e := range f.Entries {
					actions = append(actions, e.Action)
				}
				wantA := []string{"hold.add", "gdpr.request", "access.request.approve", "gdpr.export", "gdpr.request", "hold.add", "hold.release", "policy.load"}
				if !slices.Equal(actions, wantA) {
					t.Errorf("entries: got %v, want %v", actions, wantA)
				}
				wantO := []reports.OperatorActivity{{"anna", "access.request.approve", 1}, {"dpo", "gdpr.export", 1}, {"dpo", "gdpr.request", 2},
					{"dpo", "hold.add", 2}, {"legal", "hold.release", 1}, {"root", "policy.load", 1}}
				if !slices.Equal(f.ByOperator, wantO) {
					t.Errorf("by operator: got %v, want %v", f.ByOperator, wantO)
				}
				if f.Problem != "" || f.Verified != 16 {
					t.Errorf("chain: verified %d, problem %q; want 16 and none", f.Verified, f.Problem)
				}
			})
			t.Run("requests", func(t *testing.T) {
				rs, err := reports.RequestsData(ctx, src, per)
				if err != nil {
					t.Fatal(err)
				}
				if len(rs) != 2 {
					t.Fatalf("requests: %+v", rs)
				}
				r1, r2 := rs[0], rs[1]
				if r1.ID != "R1" || r1.Type != "access" || !r1.Received.Equal(t0.AddDate(0, 0, 1)) || !r1.Done.Equal(t0.AddDate(0, 0, 3)) ||
					!r1.Deadline.Equal(t0.AddDate(0, 1, 1)) || r1.Status != "done" {
					t.Errorf("R1: %+v", r1)
				}
				if r2.ID != "R2" || r2.Type != "erasure" || !r2.Done.IsZero() || r2.Status != "overdue" || r2.Subject != "erin@example.com" {
					t.Errorf("R2: %+v", r2)
				}
			})
			t.Run("sync", func(t *testing.T) {
				runs, err := reports.SyncData(ctx, src, per)
				if err != nil {
					t.Fatal(err)
				}
				if len(runs) != 2 || runs[0].Created != 5 || runs[0].Changed != 2 || runs[0].Disabled != 2 || runs[0].Errors != 0 ||
					runs[1].Changed != 3 || runs[1].Deleted != 1 || runs[1].Errors != 2 || runs[1].Mode != "incremental" ||
					runs[0].ErasedSkipped != 0 || runs[1].ErasedSkipped != 1 {
					t.Errorf("runs: %+v", runs)
				}
			})
			t.Run("denials", func(t *testing.T) {
				ds, err := reports.DenialsData(ctx, src, per)
				if err != nil {
					t.Fatal(err)
				}
				want := []reports.DenialCount{{"contact.ethical_wall", "contact", "Trading", 2}, {"contact.ethical_wall", "contact", "Research", 1},
					{"e2ee.required", "e2ee", "(unknown)", 1}}
				if !slices.Equal(ds, want) {
					t.Errorf("denials: got %+v, want %+v", ds, want)
				}
			})
			t.Run("render", func(t *testing.T) {
				for _, d := range reports.Definitions {
					r, err := reports.Build(ctx, d.Name, src, per)
					if err != nil {
						t.Fatalf("%s: %v", d.Name, err)
					}
					checkFormats(t, r)
				}
			})
		})
	}
}

// checkFormats renders r in every format and checks that each carries the
// same figures and the provenance.
func checkFormats(t *testing.T, r *reports.Report) {
	t.Helper()
	for _, f := range reports.Formats {
		var b bytes.Buffer
		if err := reports.Render(&b, r, f); err != nil {
			t.Fatalf("%s %s: %v", r.Name, f, err)
		}
		out := b.String()
		switch f {
		case "pdf":
			if !strings.HasPrefix(out, "%PDF-") || !strings.Contains(out, "%%EOF") {
				t.Errorf("%s: not a PDF", r.Name)
			}
			continue
		case "json":
			var back reports.Report
			if err := json.Unmarshal(b.Bytes(), &back); err != nil {
				t.Fatalf("%s json: %v", r.Name, err)
			}
			if len(back.Sections) != len(r.Sections) || back.Meta.PolicyRevision != "pol1" {
				t.Errorf("%s json: %d sections, policy %q", r.Name, len(back.Sections), back.Meta.PolicyRevision)
			}
		case "csv":
			cr := csv.NewReader(&b)
			cr.FieldsPerRecord = -1
			recs, err := cr.ReadAll()
			if err != nil {
				t.Fatalf("%s csv: %v", r.Name, err)
			}
			rows := 0
			for _, rec := range recs {
				for _, s := range r.Sections {
					if rec[0] == s.Title {
						rows++
						break
					}
				}
			}
			want := 0
			for _, s := range r.Sections {
				want += 1 + len(s.Rows)
			}
			if rows != want {
				t.Errorf("%s csv: %d section records, want %d", r.Name, rows, want)
			}
			out = strings.Join(func() []string {
				var all []string
				for _, rec := range recs {
					all = append(all, strings.Join(rec, ","))
				}
				return all
			}(), "\n")
		case "html":
			if strings.Contains(out, "src=\"http") || strings.Contains(out, "href=\"http") || strings.Contains(out, "<script") {
				t.Errorf("%s html: not self-contained", r.Name)
			}
			if !strings.Contains(out, "@media print") {
				t.Errorf("%s html: no print styles", r.Name)
			}
			if len(r.Charts) > 0 && !strings.Contains(out, "<svg") {
				t.Errorf("%s html: no inline SVG chart", r.Name)
			}
		}
		for _, want := range []string{"cfg1", "pol1", "2026-03-01"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s %s: does not say %q", r.Name, f, want)
			}
		}
		for _, s := range r.Sections {
			for _, row := range s.Rows {
				for _, c := range row {
					if c != "" && f == "html" && !strings.Contains(out, htmlEscape(c)) {
						t.Errorf("%s html: cell %q missing", r.Name, c)
					}
				}
			}
		}
	}
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;", "+", "&#43;").Replace(s)
}

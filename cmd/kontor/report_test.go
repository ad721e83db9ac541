package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReportCommand runs `kontor report` on both backends: the list, a
// refusal without a permitted role, every report in every format with one,
// and the audit entries of the access decisions.
func TestReportCommand(t *testing.T) {
	t.Setenv("SUDO_USER", "dpo-dora")
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			x := newAccessEnv(t, backend)
			e := x.auditEnv
			x.tokens["lea"] = tokenFrom(t, x.must(t, "", x.as(t, "ada", "operator", "add", "lea", "--role", "legal")...))
			list := e.must(t, "", "report", "list")
			for _, n := range []string{"processing", "retention", "access", "requests", "sync", "denials"} {
				if !strings.Contains(list, n) {
					t.Errorf("report list lacks %s:\n%s", n, list)
				}
			}
			if _, _, err := e.run(t, "", x.as(t, "lea", "report", "retention", "--format", "json")...); err == nil || !strings.Contains(err.Error(), "report.view") {
				t.Fatalf("without a role: err = %v, want a refusal of report.view", err)
			}
			if _, _, err := e.run(t, "", x.as(t, "dora", "report", "nosuch")...); err == nil {
				t.Fatal("an unknown report was made")
			}
			n := 0
			for _, name := range []string{"processing", "retention", "access", "requests", "sync", "denials"} {
				for _, f := range []string{"html", "pdf", "csv", "json"} {
					out := filepath.Join(e.dir, name+"."+f)
					e.must(t, "", x.as(t, "aud", "report", name, "--from", "2026-01-01", "--to", "2026-02-01", "--out", out)...)
					n++
					b, err := os.ReadFile(out)
					if err != nil || len(b) == 0 {
						t.Fatalf("%s: %v (%d bytes)", out, err, len(b))
					}
					if f == "json" {
						var r struct {
							Name string
							Meta struct {
								PolicyRevision string `json:"policy_revision"`
							}
						}
						if err := json.Unmarshal(b, &r); err != nil || r.Name != name || r.Meta.PolicyRevision == "" {
							t.Errorf("%s: %v %+v", out, err, r)
						}
					}
				}
			}
			// The processing record reflects the default policy.
			b, _ := os.ReadFile(filepath.Join(e.dir, "processing.csv"))
			for _, want := range []string{"internal,90 days", "archive.export,\"dpo, admin\",2,\"dpo, works_council\"", "TLS 1.2 and 1.3"} {
				if !strings.Contains(string(b), want) {
					t.Errorf("processing.csv lacks %q:\n%s", want, b)
				}
			}
			// Every access decision (1 refusal, n grants) is in the trail, and the
			// access report of the period after them lists them.
			out := e.must(t, "", "audit", "list", "--action", "policy.access", "--json")
			var lines []auditLine
			for _, l := range parseAuditLines(t, out) {
				if l.Details["action"] == "report.view" { // not the operator commands' decisions
					lines = append(lines, l)
				}
			}
			if len(lines) != n+1 {
				t.Fatalf("%d policy.access entries, want %d", len(lines), n+1)
			}
			if lines[0].Details["allow"] != "false" || lines[0].Actor != "lea" || lines[1].Details["allow"] != "true" || lines[1].Actor != "aud" {
				t.Errorf("access entries: %+v, %+v", lines[0], lines[1])
			}
			csv := e.must(t, "", x.as(t, "dora", "report", "access", "--format", "csv", "--from", "1d")...)
			// The refusal, the n grants, the grant of the unknown report
			// (authorized before the name is checked) and the grant of this
			// report itself.
			if got := strings.Count(csv, ",lea,policy.access,") + strings.Count(csv, ",aud,policy.access,") + strings.Count(csv, ",dora,policy.access,"); got != n+3 {
				t.Errorf("access report lists %d access decisions, want %d:\n%s", got, n+3, csv)
			}
			// A purge recorded in the trail shows in the retention report.
			kek := filepath.Join(t.TempDir(), "archive.kek")
			e.must(t, "", "keys", "init", "--file", kek)
			f, err := os.OpenFile(e.cfgFile, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString("archive:\n  enabled: true\n  kek_file: " + kek + "\n"); err != nil {
				t.Fatal(err)
			}
			f.Close()
			e.must(t, "", "archive", "purge")
			ret := e.must(t, "", x.as(t, "dora", "report", "retention", "--format", "csv", "--from", "1d")...)
			if !strings.Contains(ret, "fact,Purge runs in the period,1") || !strings.Contains(ret, "\nPurge runs,") ||
				!strings.Contains(ret, ",dpo-dora,0,0,0,0") {
				t.Errorf("retention report lacks the purge run:\n%s", ret)
			}
			if !strings.Contains(csv, "fact,Audit chain,\"intact, ") {
				t.Errorf("access report: chain not verified:\n%s", csv)
			}
		})
	}
}

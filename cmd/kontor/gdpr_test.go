package main

import (
	"archive/zip"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// gdprEnv is an auditEnv with the archive enabled (a key file outside the
// data directory) and an operator allowed to run the data protection
// commands.
func newGDPRTestEnv(t *testing.T, backend string) *auditEnv {
	t.Helper()
	e := newAuditEnv(t, backend)
	kek := filepath.Join(t.TempDir(), "archive.kek")
	e.must(t, "", "keys", "init", "--file", kek)
	f, err := os.OpenFile(e.cfgFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "archive:\n  enabled: true\n  kek_file: %q\n", kek)
	f.Close()
	allowGDPROperator(t, e)
	return e
}

// allowGDPROperator sets up an operator (erika, dpo) for the data
// protection commands, with a policy directory whose access policy allows
// every action: dual control is tested on its own (access_test.go and
// TestGDPRNeedsApproval); here the commands' effects are.
func allowGDPROperator(t *testing.T, e *auditEnv) {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"access.rego": `package kontor.access

decision := {"allow": true, "reason": "test_allows_all", "message": "", "approvals_needed": 0, "roles_needed": [], "obligations": {}}
`,
		"access_test.rego": `package kontor.access_test

import data.kontor.access

test_allows_all if access.decision.allow
`,
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.OpenFile(e.cfgFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "policy:\n  dir: %q\n", dir)
	f.Close()
	ada := tokenFrom(t, e.must(t, "", "operator", "add", "ada", "--role", "admin"))
	adaFile := filepath.Join(t.TempDir(), "ada.token")
	if err := os.WriteFile(adaFile, []byte(ada+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	erika := tokenFrom(t, e.must(t, "", "operator", "add", "erika", "--role", "dpo", "--operator", "ada", "--operator-token-file", adaFile))
	erikaFile := filepath.Join(t.TempDir(), "erika.token")
	if err := os.WriteFile(erikaFile, []byte(erika+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.operatorArgs = []string{"--operator", "erika", "--operator-token-file", erikaFile}
}

func TestGDPRCommands(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			e := newGDPRTestEnv(t, backend)
			e.must(t, auditTestPassword+"\n", "user", "add", "alice@localhost")
			e.must(t, auditTestPassword+"\n", "user", "add", "bob@localhost")

			out := e.must(t, "", "hold", "add", "bob@localhost", "--case", "LIT-9", "--reason", "lawsuit")
			if !strings.Contains(out, "hold 1 placed on bob@localhost (case LIT-9)") {
				t.Errorf("hold add: %s", out)
			}
			if out := e.must(t, "", "hold", "list"); !strings.Contains(out, "LIT-9") {
				t.Errorf("hold list: %s", out)
			}

			zipPath := filepath.Join(t.TempDir(), "alice.zip")
			out = e.must(t, "", "gdpr", "export", "alice@localhost", "--out", zipPath, "--case", "DSR-1")
			if !strings.Contains(out, "exported alice@localhost") {
				t.Errorf("export: %s", out)
			}
			zr, err := zip.OpenReader(zipPath)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, f := range zr.File {
				names = append(names, f.Name)
			}
			zr.Close()
			if strings.Join(names, " ") != "00-information.html data.json conversations.html xep0227.xml manifest.json" {
				t.Errorf("export files: %v", names)
			}
			if _, _, err := e.run(t, "", "gdpr", "export", "alice@localhost", "--out", zipPath, "--include-third-parties"); err == nil {
				t.Error("--include-third-parties without --justification succeeded")
			}

			edir := filepath.Join(t.TempDir(), "ed")
			out = e.must(t, "", "ediscovery", "export", "--people", "alice@localhost,bob@localhost", "--from", "2026-01-01",
				"--to", "2026-12-31", "--contains", "x", "--out", edir, "--case", "LIT-9")
			if !strings.Contains(out, "wrote 0 files") {
				t.Errorf("ediscovery: %s", out)
			}
			if _, err := os.Stat(filepath.Join(edir, "manifest.sha256")); err != nil {
				t.Error(err)
			}
			if out := e.must(t, "", "audit", "list", "--action", "ediscovery"); strings.Count(out, "ediscovery.export") != 2 {
				t.Errorf("ediscovery audit: %s", out)
			}

			out = e.must(t, "", "gdpr", "erase", "alice@localhost", "--dry-run")
			if !strings.Contains(out, "dry run") || !strings.Contains(out, "account: 1 deleted") {
				t.Errorf("dry run: %s", out)
			}
			out = e.must(t, "", "gdpr", "erase", "alice@localhost", "--reason", "Art. 17")
			if !strings.Contains(out, "erased alice@localhost") || !strings.Contains(out, "account: 1 deleted") {
				t.Errorf("erase: %s", out)
			}
			if _, _, err := e.run(t, "", "user", "passwd", "alice@localhost"); err == nil {
				t.Error("the erased account still exists")
			}
			if out := e.must(t, "", "gdpr", "erase", "--resume"); !strings.Contains(out, "nothing to resume") {
				t.Errorf("resume: %s", out)
			}
			out = e.must(t, "", "audit", "list", "--action", "gdpr")
			if !strings.Contains(out, "gdpr.export") || !strings.Contains(out, "gdpr.erase") {
				t.Errorf("audit list: %s", out)
			}
			if out := e.must(t, "", "audit", "list", "--action", "hold"); !strings.Contains(out, "hold.add") {
				t.Errorf("audit list hold: %s", out)
			}
			e.must(t, "", "audit", "verify")
			if out := e.must(t, "", "hold", "remove", "1", "--reason", "settled"); !strings.Contains(out, "released") {
				t.Errorf("hold remove: %s", out)
			}
		})
	}
}

// TestGDPRNeedsApproval: with the default access policy an erasure is dual
// control: the first run records a request and erases nothing; once a
// second data protection officer approved it, the rerun with --request
// erases.
func TestGDPRNeedsApproval(t *testing.T) {
	x := newAccessEnv(t, "sqlite")
	kek := filepath.Join(t.TempDir(), "archive.kek")
	x.must(t, "", "keys", "init", "--file", kek)
	f, err := os.OpenFile(x.cfgFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "archive:\n  enabled: true\n  kek_file: %q\n", kek)
	f.Close()
	x.must(t, auditTestPassword+"\n", "user", "add", "bob@localhost")
	erase := func(extra ...string) (string, error) {
		args := append([]string{"gdpr", "erase", "bob@localhost", "--case", "DSR-7", "--purpose", "Art. 17 request"}, extra...)
		out, _, err := x.run(t, "", x.as(t, "erika", args...)...)
		return out, err
	}
	_, err = erase()
	var reqID string
	if err == nil || !strings.Contains(err.Error(), "request") {
		t.Fatalf("erasure without approval: %v, want a recorded request", err)
	}
	for _, w := range strings.Fields(err.Error()) {
		if strings.HasPrefix(strings.Trim(w, ".,;:()\"'"), "r") && len(strings.Trim(w, ".,;:()\"'")) > 8 {
			reqID = strings.Trim(w, ".,;:()\"'")
		}
	}
	out := x.must(t, "", x.as(t, "dora", "request", "list")...)
	if reqID == "" || !strings.Contains(out, reqID) {
		// The request id is whatever the list shows as pending.
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "pending") && strings.Contains(line, "bob@localhost") {
				reqID = strings.Fields(line)[0]
			}
		}
	}
	if reqID == "" {
		t.Fatalf("no pending request for bob in:\n%s\n(error was %v)", out, err)
	}
	if _, err := x.store(t).Account(t.Context(), "bob@localhost"); err != nil {
		t.Fatalf("bob was erased without approval: %v", err)
	}
	x.must(t, "", x.as(t, "dora", "request", "approve", reqID)...)
	if out, err := erase("--request", reqID); err != nil {
		t.Fatalf("erasure with the approved request: %v\n%s", err, out)
	}
	if _, err := x.store(t).Account(t.Context(), "bob@localhost"); err == nil {
		t.Error("bob's account is still there after the approved erasure")
	}
}

// TestGDPRRequests: a data subject request recorded on receipt and
// answered by an erasure (--dsr) shows in the requests report as done,
// with its deadline.
func TestGDPRRequests(t *testing.T) {
	e := newGDPRTestEnv(t, "sqlite")
	e.must(t, auditTestPassword+"\n", "user", "add", "bob@localhost")
	out := e.must(t, "", "gdpr", "request", "add", "bob@localhost", "--type", "erasure", "--id", "DSR-1")
	if !strings.Contains(out, "request DSR-1 (erasure) of bob@localhost recorded; due by ") {
		t.Errorf("request add: %s", out)
	}
	if _, _, err := e.run(t, "", "gdpr", "request", "add", "bob@localhost", "--type", "gossip"); err == nil {
		t.Error("an unknown request type was recorded")
	}
	e.must(t, "", "gdpr", "request", "add", "bob@localhost", "--type", "rectification", "--id", "DSR-2")
	e.must(t, "", "gdpr", "request", "done", "DSR-2", "bob@localhost", "--note", "name corrected")
	e.must(t, "", "gdpr", "erase", "bob@localhost", "--dsr", "DSR-1")
	csv := e.must(t, "", "report", "requests", "--format", "csv", "--from", "1d")
	for _, id := range []string{"DSR-1", "DSR-2"} {
		line := ""
		for _, l := range strings.Split(csv, "\n") {
			if strings.Contains(l, id+",") {
				line = l
			}
		}
		if line == "" || !strings.Contains(line, "bob@localhost") || strings.Count(line, time.Now().UTC().Format(time.DateOnly)) < 2 {
			t.Errorf("%s is not in the requests report as received and done today:\n%s", id, csv)
		}
	}
}

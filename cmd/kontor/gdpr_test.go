package main

import (
	"archive/zip"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
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

// allowGDPROperator makes the operator running the commands allowed to run
// every data protection action. With the provisional access contract
// (access_pending.go) every operating system user is; the operators
// branch's contract needs its operator set up here.
func allowGDPROperator(t *testing.T, e *auditEnv) { t.Helper() }

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

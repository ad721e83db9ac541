package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"
)

// TestE2EImportEjabberd: the real ejabberd export (archive/gdpr/testdata/
// ejabberd, its host renamed to this server's domain: the SCRAM hashes do
// not depend on it) is imported with `kontor gdpr import DIR` into a
// running Kontor; alice then logs in with mellium over SCRAM-SHA-1 and
// PLAIN with the password she had on ejabberd, not with another.
func TestE2EImportEjabberd(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		ts := startTestServer(t, backend, enableArchive(t))
		e := &auditEnv{backend: backend, dir: ts.dir, cfgFile: ts.cfgFile}
		f, err := os.OpenFile(ts.cfgFile, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, "archive:\n  enabled: true\n  kek_file: %q\n", ts.cfg.Archive.KEKFile) // the server's key: offline messages are sealed
		f.Close()
		allowGDPROperator(t, e)
		dir := t.TempDir()
		src := filepath.Join("..", "..", "archive", "gdpr", "testdata", "ejabberd")
		for _, name := range []string{"export.xml", "example_org.xml"} {
			b, err := os.ReadFile(filepath.Join(src, name))
			if err != nil {
				t.Fatal(err)
			}
			b = []byte(strings.ReplaceAll(string(b), "example.org", e2eDomain))
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		out := e.must(t, "", "gdpr", "import", dir)
		if !strings.Contains(out, "imported 2 users, 3 contacts, 0 archived messages, 1 offline messages, 0 PEP items; 2 with their password") ||
			!strings.Contains(out, "not imported: alice@"+e2eDomain+": privacy lists") {
			t.Fatalf("import:\n%s", out)
		}
		for _, m := range []sasl.Mechanism{sasl.ScramSha1, sasl.Plain} {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			s, conn, err := ts.connect(ctx, "alice", "Alice-Secret-1", withMechanisms(m))
			cancel()
			if err != nil {
				t.Fatalf("alice over %s with her ejabberd password: %v", m.Name, err)
			}
			s.Close()
			conn.Close()
			ctx, cancel = context.WithTimeout(context.Background(), 15*time.Second)
			_, _, err = ts.connect(ctx, "alice", "Alice-Secret-2", withMechanisms(m))
			cancel()
			if err == nil {
				t.Errorf("alice logs in over %s with a wrong password", m.Name)
			}
		}
	})
}

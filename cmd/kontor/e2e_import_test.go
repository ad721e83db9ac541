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
// PLAIN with the password she had on ejabberd, not with another. ejabberd
// keeps SCRAM-SHA-1 hashes only, so SCRAM-SHA-256 (what clients pick
// first) fails until her first PLAIN login adds that credential; the
// import says so, and afterwards SCRAM-SHA-256 works.
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
		if !strings.Contains(out, "2 accounts have SCRAM-SHA-1 hashes only") {
			t.Errorf("the import does not say that the accounts need a PLAIN login:\n%s", out)
		}
		login := func(m sasl.Mechanism, password string) error {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			s, conn, err := ts.connect(ctx, "alice", password, withMechanisms(m))
			if err == nil {
				s.Close()
				conn.Close()
			}
			return err
		}
		if err := login(sasl.ScramSha256, "Alice-Secret-1"); err == nil {
			t.Fatal("alice logs in over SCRAM-SHA-256 with SCRAM-SHA-1 hashes only")
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
		if err := login(sasl.ScramSha256, "Alice-Secret-1"); err != nil {
			t.Errorf("alice over SCRAM-SHA-256 after a PLAIN login: %v", err)
		}
		if err := login(sasl.ScramSha256, "Alice-Secret-2"); err == nil {
			t.Error("alice logs in over SCRAM-SHA-256 with a wrong password")
		}
		if err := login(sasl.ScramSha1, "Alice-Secret-1"); err != nil {
			t.Errorf("alice over SCRAM-SHA-1 after the upgrade: %v", err)
		}
	})
}

// TestE2EMechanismsConfig: auth.mechanisms limits what is offered, and
// a mechanism that is not offered is refused even when a client asks for
// it (mellium tries only the mechanisms given to it).
func TestE2EMechanismsConfig(t *testing.T) {
	ts := startTestServer(t, "sqlite", func(c *Config) { c.Auth.Mechanisms = []string{"PLAIN"} })
	ts.addUser(t, "alice", "alice-password")
	for _, tt := range []struct {
		m    sasl.Mechanism
		want bool
	}{{sasl.Plain, true}, {sasl.ScramSha256, false}, {sasl.ScramSha1, false}} {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		s, conn, err := ts.connect(ctx, "alice", "alice-password", withMechanisms(tt.m))
		cancel()
		if err == nil {
			s.Close()
			conn.Close()
		}
		if (err == nil) != tt.want {
			t.Errorf("login over %s with auth.mechanisms [PLAIN]: %v, want success %v", tt.m.Name, err, tt.want)
		}
	}
}

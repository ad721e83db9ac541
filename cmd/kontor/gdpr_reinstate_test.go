package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kontor.im/kontor/archive/gdpr"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/ldapsync/slapdtest"
)

// TestErasedPersonStaysErased: directory sync (real slapd) creates alice;
// the DPO erases her while she is still in the directory; the next sync
// skips her ("erased, skipped", in its output and in the sync report) and
// the database holds no plaintext of who was erased; `kontor gdpr
// reinstate` (audited) lets the following sync create her again.
func TestErasedPersonStaysErased(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			s := slapdtest.Start(t, slapdtest.Options{Seed: ldapSeed()})
			e := newGDPRTestEnv(t, backend)
			f, err := os.OpenFile(e.cfgFile, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString(ldapYAML(s))
			f.Close()
			const alice = "alice@localhost"
			out := e.must(t, "", "ldap", "sync")
			if !strings.Contains(out, "create") || !strings.Contains(out, alice) {
				t.Fatalf("first sync:\n%s", out)
			}
			e.must(t, "", "gdpr", "erase", alice, "--reason", "Art. 17")
			st := openTestStore(t, e)
			if _, err := st.Account(t.Context(), alice); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("after the erasure: %v", err)
			}

			for _, args := range [][]string{{"ldap", "sync", "--dry-run", "--full"}, {"ldap", "sync", "--full"}} {
				out = e.must(t, "", args...)
				if !strings.Contains(out, "erased, skipped") || !strings.Contains(out, alice) || !strings.Contains(out, "1 erased, skipped") ||
					strings.Contains(out, "create        "+alice) {
					t.Errorf("%v after the erasure:\n%s", args, out)
				}
			}
			if _, err := st.Account(t.Context(), alice); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("the sync recreated the erased alice: %v", err)
			}
			gs := st.(storage.GDPRStore)
			ts, err := gs.ErasureTombstones(t.Context(), false)
			if err != nil || len(ts) != 1 || len(ts[0].StableHash) == 0 {
				t.Fatalf("tombstones = %+v, %v; want one with the directory id", ts, err)
			}
			// Keyed hashes, under a key outside the data directory.
			cfg, err := loadConfig(configFlags{file: e.cfgFile})
			if err != nil {
				t.Fatal(err)
			}
			if inside(cfg.tombstoneKeyPath(), e.dir) {
				t.Errorf("the tombstone key %s is in the data directory", cfg.tombstoneKeyPath())
			}
			key, err := gdpr.LoadTombstoneKey(cfg.tombstoneKeyPath(), false)
			if err != nil || len(key) != gdpr.TombstoneKeySize {
				t.Fatalf("tombstone key: %d bytes, %v", len(key), err)
			}
			plain := sha256.Sum256([]byte(alice))
			if h := (gdpr.Tombstones{Key: key}).HashJID(alice); !bytes.Equal(ts[0].JIDHash, h) || bytes.Equal(ts[0].JIDHash, plain[:]) {
				t.Errorf("the tombstone's JID hash is not the keyed hash of alice")
			}
			out = e.must(t, "", "report", "sync", "--format", "csv")
			if !strings.Contains(out, "erased, skipped") {
				t.Errorf("sync report:\n%s", out)
			}

			if _, _, err := e.run(t, "", "gdpr", "reinstate", alice); err == nil {
				t.Error("reinstate without --reason succeeded")
			}
			out = e.must(t, "", "gdpr", "reinstate", alice, "--reason", "re-hired, DPO decision 2026-11")
			if !strings.Contains(out, "reinstated "+alice) {
				t.Errorf("reinstate: %s", out)
			}
			if _, _, err := e.run(t, "", "gdpr", "reinstate", alice, "--reason", "again"); err == nil {
				t.Error("reinstating twice succeeded")
			}
			if out := e.must(t, "", "audit", "list", "--action", "gdpr.reinstate"); !strings.Contains(out, "erika") || !strings.Contains(out, alice) {
				t.Errorf("audit: %s", out)
			}
			out = e.must(t, "", "ldap", "sync", "--full")
			if !strings.Contains(out, "create") || strings.Contains(out, "erased, skipped "+alice) {
				t.Errorf("sync after reinstating:\n%s", out)
			}
			if _, err := st.Account(t.Context(), alice); err != nil {
				t.Errorf("alice not recreated after reinstating: %v", err)
			}
			e.must(t, "", "audit", "verify")
		})
	}
}

// TestGDPRImportAccess: the import is the access action archive.import of
// the default policy: an admin or the DPO may, an auditor or the works
// council may not.
func TestGDPRImportAccess(t *testing.T) {
	x := newAccessEnv(t, "sqlite")
	doc := filepath.Join(t.TempDir(), "in.xml")
	write := func(user string) {
		t.Helper()
		s := fmt.Sprintf(`<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'><user name='%s'>`+
			`<query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='both'/></query></user></host></server-data>`, user)
		if err := os.WriteFile(doc, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("imp1")
	for _, op := range []string{"aud", "max"} {
		_, _, err := x.run(t, "", x.as(t, op, "gdpr", "import", doc)...)
		if err == nil || !strings.Contains(err.Error(), "access denied") {
			t.Errorf("import as %s: %v, want access denied", op, err)
		}
	}
	if _, err := x.store(t).Account(t.Context(), "imp1@localhost"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a denied import created the account: %v", err)
	}
	for i, op := range []string{"ada", "erika"} {
		user := fmt.Sprintf("imp%d", i+1)
		write(user)
		out := x.must(t, "", x.as(t, op, "gdpr", "import", doc)...)
		if !strings.Contains(out, "imported 1 users, 1 contacts") {
			t.Errorf("import as %s: %s", op, out)
		}
		if _, err := x.store(t).Account(t.Context(), user+"@localhost"); err != nil {
			t.Errorf("import as %s: %v", op, err)
		}
	}
	if out := x.must(t, "", "audit", "list", "--action", "gdpr.import"); !strings.Contains(out, "ada") || !strings.Contains(out, "erika") {
		t.Errorf("audit: %s", out)
	}
}

// openTestStore opens e's store (closed when the test ends).
func openTestStore(t *testing.T, e *auditEnv) storage.Store {
	t.Helper()
	cfg, err := loadConfig(configFlags{file: e.cfgFile})
	if err != nil {
		t.Fatal(err)
	}
	st, err := openStore(t.Context(), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

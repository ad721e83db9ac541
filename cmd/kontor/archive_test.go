package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"kontor.im/kontor/archive"
	"kontor.im/kontor/archive/keyring"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/storage/pgtest"
)

func TestArchiveConfigValidate(t *testing.T) {
	dataDir := t.TempDir()
	tests := []struct {
		name string
		mod  func(a *ArchiveConfig)
		want []string // substrings of the problems, in order; nil: none
	}{
		{"defaults (off)", func(a *ArchiveConfig) {}, nil},
		{"on with a key file", func(a *ArchiveConfig) { a.Enabled, a.KEKFile = true, "/etc/kontor/archive.kek" }, nil},
		{"on with an environment variable", func(a *ArchiveConfig) { a.Enabled, a.KEKEnv = true, "KONTOR_ARCHIVE_KEK" }, nil},
		{"on without a key", func(a *ArchiveConfig) { a.Enabled = true }, []string{"archive.kek_file: the archive is enabled but has no key-encryption key"}},
		{"both kinds of key", func(a *ArchiveConfig) { a.KEKFile, a.KEKEnv = "/k", "K" }, []string{"archive.kek_file: set kek_file or kek_env, not both"}},
		{"key inside the data directory", func(a *ArchiveConfig) { a.KEKFile = filepath.Join(dataDir, "keys", "a.kek") }, []string{"is inside data_dir"}},
		{"bad variable name", func(a *ArchiveConfig) { a.KEKEnv = "1-KEK" }, []string{"archive.kek_env"}},
		{"unknown full policy", func(a *ArchiveConfig) { a.WhenFull = "drop" }, []string{`archive.when_full: "drop" is not block or refuse`}},
		{"bounds", func(a *ArchiveConfig) {
			a.QueueSize, a.BatchSize, a.FlushInterval, a.PurgeInterval, a.DefaultRetentionDays = 10, 0, 0, time.Second, -1
		}, []string{"default_retention_days", "queue_size", "batch_size", "flush_interval", "purge_interval"}},
		{"purge off", func(a *ArchiveConfig) { a.PurgeInterval = 0 }, nil},
		{"cache bounds", func(a *ArchiveConfig) { a.KeyCacheSize, a.PrefsCacheSize = 10, 0 }, []string{"key_cache_size", "prefs_cache_size"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := defaultConfig().Archive
			tt.mod(&a)
			got := a.validate(dataDir)
			if len(got) != len(tt.want) {
				t.Fatalf("problems = %q, want %d like %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
	if a := defaultConfig().Archive; a.Enabled || a.DefaultRetentionDays != 90 || a.WhenFull != "block" {
		t.Errorf("defaults: %+v", a)
	}
}

func TestServeRefusesWithoutKEK(t *testing.T) {
	dir := t.TempDir()
	cfg := defaultConfig()
	cfg.DataDir = dir
	cfg.C2S.StartTLSAddr, cfg.C2S.DirectTLSAddr, cfg.Admin.Addr, cfg.HTTP.Addr = "127.0.0.1:0", "", "", ""
	cfg.Archive.Enabled = true
	cfg.Archive.KEKFile = filepath.Join(t.TempDir(), "missing.kek")
	cfg.resolvePaths()
	srv, err := startServer(t.Context(), cfg, testLogger(t))
	if err == nil {
		srv.Shutdown(context.Background())
		t.Fatal("the server started with the archive on and no key-encryption key")
	}
	if !strings.Contains(err.Error(), "kontor keys init") {
		t.Errorf("the error does not say how to create a key: %v", err)
	}
	// The environment variable, unset.
	cfg.Archive.KEKFile, cfg.Archive.KEKEnv = "", "KONTOR_TEST_UNSET_KEK"
	if srv, err := startServer(t.Context(), cfg, testLogger(t)); err == nil || !strings.Contains(err.Error(), "KONTOR_TEST_UNSET_KEK") {
		if srv != nil {
			srv.Shutdown(context.Background())
		}
		t.Errorf("start with an unset key variable: %v", err)
	}
}

func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	return newLogger(&Config{Log: LogConfig{Level: "error", Format: "text"}}, &bytes.Buffer{})
}

func TestKeysInit(t *testing.T) {
	dir := t.TempDir()
	keyDir := t.TempDir()
	cfgFile := filepath.Join(dir, "kontor.yaml")
	if err := os.WriteFile(cfgFile, fmt.Appendf(nil, "data_dir: %q\n", filepath.Join(dir, "data")), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		root := newRootCmd(&out, &errOut)
		root.SetArgs(append(args, "--config", cfgFile))
		err := root.ExecuteContext(t.Context())
		return out.String() + errOut.String(), err
	}
	file := filepath.Join(keyDir, "archive.kek")
	tests := []struct {
		name    string
		args    []string
		wantErr string
		wantOut []string
	}{
		{"no file", []string{"keys", "init"}, "no file", nil},
		{"inside the data directory", []string{"keys", "init", "--file", filepath.Join(dir, "data", "a.kek")}, "inside the data directory", nil},
		{"created", []string{"keys", "init", "--file", file}, "", []string{"Created " + file, "back up this key now", "kek_file: " + file}},
		{"not overwritten", []string{"keys", "init", "--file", file}, "exists", nil},
		{"printed", []string{"keys", "init", "--print"}, "", []string{"kek-v1 k", "back up this key now"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := run(tt.args...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	if _, err := keyring.OpenFile(file); err != nil {
		t.Errorf("the created file does not load: %v", err)
	}
	out, _ := run("keys", "init", "--print")
	if _, err := keyring.Parse([]byte(strings.SplitN(out, "\n", 2)[0])); err != nil {
		t.Errorf("the printed entry does not parse: %v\n%s", err, out)
	}
}

// TestE2EArchive runs the server with the archive on. Messages sent
// through it (to a user offline, then online: the offline module stores
// the first, the MAM module archives all of them for both parties) carry
// a marker that must not be found in any file of the database. A rotation
// run while the server runs leaves everything readable, and a retired key
// is gone.
func TestE2EArchive(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		kekFile := filepath.Join(t.TempDir(), "archive.kek")
		if _, err := keyring.CreateFile(kekFile, time.Now()); err != nil {
			t.Fatal(err)
		}
		ts := startTestServer(t, backend, func(c *Config) {
			c.Archive.Enabled, c.Archive.KEKFile, c.Archive.FlushInterval = true, kekFile, 10*time.Millisecond
		})
		f, err := os.OpenFile(ts.cfgFile, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, "archive:\n  enabled: true\n  kek_file: %q\n", kekFile)
		f.Close()
		a := ts.srv.archive
		if a == nil {
			t.Fatal("the archive is not running")
		}
		ts.addUser(t, "alice", "password-1")
		ts.addUser(t, "bob", "password-2")

		secret := randomMarker(t, "SECRET")
		control := randomMarker(t, "CONTROL")
		alice := ts.dial(t, "alice", "password-1", withResource("laptop"))
		alice.send(t, "<presence/>")
		alice.barrier(t)
		// To bob, who is offline: the offline module seals it with the
		// archive's envelope encryption, and the MAM module archives it for
		// both.
		alice.chat(t, "bob@localhost", "offline "+secret)
		alice.barrier(t)
		alice.Messages.none(t, "alice", func(n xmlNode) bool { return n.attr("type") == "error" })
		if err := a.SetPrefs(t.Context(), "alice@localhost", module.ArchivePrefs{Default: "always", Always: []string{control + "@localhost"}}); err != nil {
			t.Fatal(err)
		}
		flushed(t, a)
		// The offline message was sealed by the archive's envelope sealer
		// (its format starts with 2; the core sealer's with 1).
		offline, err := ts.srv.store.OfflineMessages(t.Context(), "bob@localhost", 0)
		if err != nil || len(offline) != 1 || len(offline[0].Sealed) == 0 || offline[0].Sealed[0] != 2 {
			t.Fatalf("bob's offline messages: %d, %v", len(offline), err)
		}
		scanForMarker(t, ts, secret, control)

		// Bob gets his offline message, opened with his data key; then a
		// conversation while both are online.
		bob := ts.dial(t, "bob", "password-2", withResource("phone"))
		bob.send(t, "<presence/>")
		bob.Messages.expect(t, "bob's offline message", func(n xmlNode) bool { return n.body() == "offline "+secret })
		const online = 10
		for i := range online {
			body := fmt.Sprintf("online %d %s", i, secret)
			alice.chat(t, "bob@localhost", body)
			bob.Messages.expect(t, "bob's message", func(n xmlNode) bool { return n.body() == body })
		}
		flushed(t, a)
		scanForMarker(t, ts, secret, control)

		// Everything went through the archive, for both parties.
		for _, q := range []module.ArchiveQuery{
			{Owner: "bob@localhost", With: "alice@localhost", Max: 100},
			{Owner: "alice@localhost", With: "bob@localhost", Max: 100},
		} {
			p, err := a.Query(t.Context(), q)
			if err != nil || len(p.Messages) != online+1 {
				t.Fatalf("%s's archive: %d messages, want %d: %v", q.Owner, len(p.Messages), online+1, err)
			}
			for _, m := range p.Messages {
				if !bytes.Contains(m.Stanza, []byte(secret)) {
					t.Errorf("%s's archived message %s lacks the marker", q.Owner, m.ID)
				}
			}
		}

		// Rotation while the server runs.
		ring, err := keyring.OpenFile(kekFile)
		if err != nil {
			t.Fatal(err)
		}
		oldID, _ := ring.Current(t.Context())
		out, err := ts.cli(t, "", "keys", "rotate")
		if err != nil {
			t.Fatal(err)
		}
		newID, _ := ring.Current(t.Context()) // the file provider sees the new file
		if newID == oldID || !strings.Contains(out, "Rotation to "+newID+" finished") || !strings.Contains(out, "kontor keys retire "+oldID) {
			t.Fatalf("rotate output (old %s, new %s):\n%s", oldID, newID, out)
		}
		// A data key the server creates now is wrapped by the new KEK.
		if err := a.Append(t.Context(), module.ArchivedMessage{ID: archive.NewID(), Owner: "carol@localhost", With: "alice@localhost",
			Stanza: []byte("<message><body>after the rotation</body></message>")}); err != nil {
			t.Fatal(err)
		}
		flushed(t, a)
		out, err = ts.cli(t, "", "keys", "status")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, newID) || !strings.Contains(out, "(primary)") || !strings.Contains(out, "Last rotation: to "+newID) {
			t.Errorf("status:\n%s", out)
		}
		counts, err := ts.srv.store.(storage.ArchiveStore).ArchiveKeyCounts(t.Context())
		if err != nil || counts[oldID] != 0 || counts[newID] < 3 {
			t.Errorf("data keys per KEK after the rotation: %v, %v", counts, err)
		}
		if _, err := ts.cli(t, "", "keys", "retire", newID); err == nil {
			t.Error("retired the primary key")
		}
		if out, err := ts.cli(t, "", "keys", "retire", oldID); err != nil || !strings.Contains(out, "Removed "+oldID) {
			t.Fatalf("retire: %s, %v", out, err)
		}
		// With the old key gone, a fresh archive on the same database reads
		// everything.
		fresh, err := archive.New(archive.Config{Store: ts.srv.store.(storage.ArchiveStore), Keys: ring})
		if err != nil {
			t.Fatal(err)
		}
		for _, owner := range []string{"alice@localhost", "bob@localhost", "carol@localhost"} {
			p, err := fresh.Query(t.Context(), module.ArchiveQuery{Owner: owner})
			if err != nil || len(p.Messages) == 0 {
				t.Errorf("%s after retiring the old key: %d messages, %v", owner, len(p.Messages), err)
			}
		}
		if out, err := ts.cli(t, "", "archive", "purge"); err != nil || !strings.Contains(out, "purged 0 messages") {
			t.Errorf("archive purge: %s, %v", out, err)
		}
	})
}

func randomMarker(t *testing.T, what string) string {
	t.Helper()
	var r [12]byte
	if _, err := rand.Read(r[:]); err != nil {
		t.Fatal(err)
	}
	return "KONTOR-E2E-" + what + "-" + hex.EncodeToString(r[:])
}

func flushed(t *testing.T, a *archive.Archive) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// scanForMarker reads every file of the server's database and fails if
// secret is in one; control (stored in the clear on purpose) must be found.
func scanForMarker(t *testing.T, ts *testServer, secret, control string) {
	t.Helper()
	var files []string
	switch ts.cfg.Storage.Backend {
	case "sqlite":
		p := ts.cfg.Storage.SQLitePath
		files = []string{p, p + "-wal", p + "-shm"}
	case "postgres":
		dir := pgtest.DataDir()
		if dir == "" {
			t.Fatalf("no PostgreSQL data directory to scan (%s is set)", pgtest.EnvDSN)
		}
		conn, err := pgx.Connect(t.Context(), ts.cfg.Storage.PostgresDSN)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(t.Context(), "CHECKPOINT"); err != nil {
			t.Fatal(err)
		}
		conn.Close(context.Background())
		filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				files = append(files, path)
			}
			return nil
		})
	}
	found := false
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // a file of a database dropped meanwhile
		}
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("the marker is readable in %s", f)
		}
		found = found || bytes.Contains(b, []byte(control))
	}
	if !found {
		t.Errorf("the control marker is in none of the %d files: the scan does not see the data", len(files))
	}
}

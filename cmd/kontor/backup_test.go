package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"kontor.im/kontor/archive"
	"kontor.im/kontor/archive/keyring"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/storage/pgtest"
	"kontor.im/kontor/core/storage/postgres"
	"kontor.im/kontor/core/storage/sqlite"
)

// backupWorld is a running server with the archive on, two users who
// chatted (alice and bob), an operator for the commands, and the key file
// and erasure log in a directory of their own (outside the data).
type backupWorld struct {
	ts      *testServer
	env     *auditEnv // the CLI against ts's configuration
	kek     string
	keyDir  string
	backend string
	// bodies are the messages bob's archive holds.
	bodies []string
	// ottoFile holds the token of otto, an admin.
	ottoFile string
}

func newBackupWorld(t *testing.T, backend string) *backupWorld {
	t.Helper()
	w := &backupWorld{backend: backend, keyDir: t.TempDir()}
	w.kek = filepath.Join(w.keyDir, "archive.kek")
	if _, err := keyring.CreateFile(w.kek, time.Now()); err != nil {
		t.Fatal(err)
	}
	w.ts = startTestServer(t, backend, func(c *Config) {
		c.Archive.Enabled, c.Archive.KEKFile, c.Archive.FlushInterval = true, w.kek, 10*time.Millisecond
	})
	w.env = &auditEnv{backend: backend, dir: w.ts.dir, cfgFile: w.ts.cfgFile, dsn: w.ts.cfg.Storage.PostgresDSN}
	f, err := os.OpenFile(w.ts.cfgFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "archive:\n  enabled: true\n  kek_file: %q\n", w.kek)
	f.Close()
	allowGDPROperator(t, w.env)
	// otto, an admin: the default policy lets admins restore, with a case
	// and a second approver.
	otto := tokenFrom(t, w.env.must(t, "", append([]string{"operator", "add", "otto", "--role", "admin"}, w.env.operatorArgs...)...))
	w.ottoFile = filepath.Join(t.TempDir(), "otto.token")
	if err := os.WriteFile(w.ottoFile, []byte(otto+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	ts := w.ts
	ts.addUser(t, "alice", "password-a")
	ts.addUser(t, "bob", "password-b")
	ctx := t.Context()
	for _, p := range [][2]string{{"alice@localhost", "bob@localhost"}, {"bob@localhost", "alice@localhost"}} {
		if _, err := ts.srv.store.PutRosterItem(ctx, p[0], storage.RosterItem{Contact: p[1], Subscription: storage.SubBoth}); err != nil {
			t.Fatal(err)
		}
	}
	alice := ts.dial(t, "alice", "password-a", withResource("laptop"))
	bob := ts.dial(t, "bob", "password-b", withResource("phone"))
	for i := range 5 {
		a, b := fmt.Sprintf("from alice %d", i), fmt.Sprintf("from bob %d", i)
		alice.chat(t, "bob@localhost", a)
		bob.chat(t, "alice@localhost", b)
		w.bodies = append(w.bodies, a, b)
	}
	alice.barrier(t)
	bob.barrier(t)
	flushed(t, ts.srv.archive)
	// Every chat message is in bob's archive (and the barriers' probes).
	got := archivedBodies(t, ts.srv.archive, "bob@localhost")
	for _, b := range w.bodies {
		if !slices.Contains(got, b) {
			t.Fatalf("bob's archive before the backup lacks %q: %q", b, got)
		}
	}
	w.bodies = got
	return w
}

// cli runs a command as the operator erika (dpo).
func (w *backupWorld) cli(t *testing.T, cfgFile string, args ...string) (string, error) {
	t.Helper()
	return w.cliAs(t, cfgFile, w.env.operatorArgs, args...)
}

// cliAs runs a command with the operator arguments opArgs.
func (w *backupWorld) cliAs(t *testing.T, cfgFile string, opArgs []string, args ...string) (string, error) {
	t.Helper()
	e := *w.env
	e.cfgFile = cfgFile
	out, errOut, err := e.run(t, "", append(args, opArgs...)...)
	if err != nil {
		err = fmt.Errorf("%w\nstderr: %s", err, errOut)
	}
	return out, err
}

// fresh writes the configuration of a new instance (an empty data
// directory and database) with the same key file and erasure log.
func (w *backupWorld) fresh(t *testing.T) (cfgFile string, cfg Config) {
	t.Helper()
	dir := t.TempDir()
	yaml := fmt.Sprintf("domains: [localhost]\ndata_dir: %q\nstorage:\n  backend: %s\n", dir, w.backend)
	if w.backend == "postgres" {
		yaml += fmt.Sprintf("  postgres_dsn: %q\n", pgtest.DSN(t))
	}
	yaml += fmt.Sprintf("archive:\n  enabled: true\n  kek_file: %q\nadmin:\n  addr: \"\"\n", w.kek)
	cfgFile = filepath.Join(dir, "kontor.yaml")
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(configFlags{file: cfgFile})
	if err != nil {
		t.Fatal(err)
	}
	return cfgFile, cfg
}

// archivedBodies returns the bodies of owner's archive, opened with the
// archive's keys, sorted.
func archivedBodies(t *testing.T, a *archive.Archive, owner string) []string {
	t.Helper()
	var out []string
	q := module.ArchiveQuery{Owner: owner, Max: 100}
	for {
		page, err := a.Query(t.Context(), q)
		if err != nil {
			t.Fatalf("archive of %s: %v", owner, err)
		}
		for _, m := range page.Messages {
			var msg struct {
				Body string `xml:"body"`
			}
			if err := xml.Unmarshal(m.Stanza, &msg); err != nil {
				t.Fatalf("archived stanza %q: %v", m.Stanza, err)
			}
			out = append(out, msg.Body)
		}
		if page.Complete || len(page.Messages) == 0 {
			break
		}
		q.AfterID = page.Messages[len(page.Messages)-1].ID
	}
	sort.Strings(out)
	return out
}

// checkRestored opens the store of cfg with the archive's key and checks
// what an erasure of alice after the backup must leave: bob and every
// message of his archive, readable; nothing of alice; alice's keys gone.
func (w *backupWorld) checkRestored(t *testing.T, cfg Config) {
	t.Helper()
	ctx := t.Context()
	st, err := openStore(ctx, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Account(ctx, "alice@localhost"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("alice's account after the restore: %v, want not found", err)
	}
	if _, err := st.Account(ctx, "bob@localhost"); err != nil {
		t.Errorf("bob's account after the restore: %v", err)
	}
	if items, _, err := st.RosterItems(ctx, "alice@localhost"); err != nil || len(items) != 0 {
		t.Errorf("alice's roster after the restore: %v, %v", items, err)
	}
	if items, _, err := st.RosterItems(ctx, "bob@localhost"); err != nil || len(items) != 0 {
		t.Errorf("bob's roster still names alice after the restore: %v, %v", items, err)
	}
	as := st.(storage.ArchiveStore)
	if n, err := as.CountArchive(ctx, storage.ArchiveRowQuery{Owner: "alice@localhost", MaxID: [16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}, 1<<30); err != nil || n != 0 {
		t.Errorf("alice's archive rows after the restore: %d, %v", n, err)
	}
	if keys, err := st.(storage.GDPRStore).ArchiveKeysOf(ctx, "alice@localhost"); err != nil || len(keys) != 0 {
		t.Errorf("alice's data keys after the restore: %d, %v (want shredded)", len(keys), err)
	}
	keys, err := cfg.Archive.kekProvider()
	if err != nil {
		t.Fatal(err)
	}
	a, err := archive.New(archiveOptions(&cfg, as, keys, testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	if got := archivedBodies(t, a, "bob@localhost"); !slices.Equal(got, w.bodies) {
		t.Errorf("bob's archive after the restore: %q, want %q", got, w.bodies)
	}
	// The erasure is in the restored trail again, as a replay of the job
	// the restore undid, and the trail is intact.
	recs, err := st.AuditRecords(ctx, storage.AuditQuery{Action: "gdpr.erase", Subject: "alice@localhost", Limit: 10})
	if err != nil || len(recs) != 1 || recs[0].Details["replay_of"] == "" || !strings.HasPrefix(recs[0].Details["erased.account"], "deleted") {
		t.Errorf("gdpr.erase entries of alice after the restore: %+v, %v", recs, err)
	}
}

func TestBackupRestoreReplaysErasures(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		w := newBackupWorld(t, backend)
		ts := w.ts
		file := filepath.Join(t.TempDir(), "kontor.backup")
		// Online: the server runs.
		out, err := w.cli(t, ts.cfgFile, "backup", "--out", file)
		if err != nil || !strings.Contains(out, "backup written: "+file) {
			t.Fatalf("backup: %v\n%s", err, out)
		}
		m := readManifest(t, file)
		if m.Backend != backend || m.KeyProvider.Kind != "file" || m.KeyProvider.File != w.kek || m.KeyProvider.CurrentKEK == "" ||
			m.Schema["core"] == 0 || m.Schema["archive"] == 0 || m.Schema["audit"] == 0 || m.Operator != "erika" || len(m.Files) != 1 {
			t.Errorf("manifest: %+v", m)
		}
		// No key material: no field of the key file is in the backup.
		kek, _ := os.ReadFile(w.kek)
		raw, _ := os.ReadFile(file)
		for _, f := range strings.Fields(string(kek)) {
			if len(f) >= 16 && bytes.Contains(raw, []byte(f)) && f != m.KeyProvider.CurrentKEK {
				t.Errorf("the backup contains %q of the key file", f)
			}
		}
		if _, err := w.cli(t, ts.cfgFile, "backup", "--out", file); err == nil {
			t.Error("backup overwrote an existing file")
		}
		if out, _, err := w.env.run(t, "", "audit", "list", "--action", "backup"); err != nil || !strings.Contains(out, "backup.create") {
			t.Errorf("audit list: %v\n%s", err, out)
		}

		// After the backup, alice is erased.
		if out, err := w.cli(t, ts.cfgFile, "gdpr", "erase", "alice@localhost", "--reason", "Art. 17"); err != nil || !strings.Contains(out, "erased alice@localhost") {
			t.Fatalf("erase: %v\n%s", err, out)
		}

		// A damaged backup is refused before anything is touched.
		bad := filepath.Join(t.TempDir(), "bad.backup")
		damaged := bytes.Clone(raw)
		damaged[len(damaged)-2048] ^= 0x01 // inside the database copy (the tar ends with 1024 zero bytes)
		if err := os.WriteFile(bad, damaged, 0o600); err != nil {
			t.Fatal(err)
		}
		cfgFile, cfg := w.fresh(t)
		if _, err := w.cli(t, cfgFile, "restore", "--from", bad); err == nil || !strings.Contains(err.Error(), "SHA-256") {
			t.Errorf("restore of a damaged backup: %v", err)
		}
		if c, err := inspectStore(t.Context(), &cfg); err != nil || c.Data {
			t.Errorf("the damaged backup left data behind: %+v, %v", c, err)
		}

		// Not while a server answers on admin.addr.
		running, err := os.ReadFile(cfgFile)
		if err != nil {
			t.Fatal(err)
		}
		runningFile := filepath.Join(t.TempDir(), "running.yaml")
		if err := os.WriteFile(runningFile, bytes.Replace(running, []byte(`addr: ""`), []byte(fmt.Sprintf("addr: %q", ts.addr("admin"))), 1), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := w.cli(t, runningFile, "restore", "--from", file); err == nil || !strings.Contains(err.Error(), "stop it first") {
			t.Errorf("restore while a server answers: %v", err)
		}

		// The older backup into a fresh instance: alice stays erased.
		out, err = w.cli(t, cfgFile, "restore", "--from", file)
		if err != nil || !strings.Contains(out, "erasures re-applied: 1") || !strings.Contains(out, "erased alice@localhost") {
			t.Fatalf("restore: %v\n%s", err, out)
		}
		w.checkRestored(t, cfg)
		if _, err := w.cli(t, cfgFile, "restore", "--from", file); err == nil || !strings.Contains(err.Error(), "holds data") {
			t.Errorf("restore over data without --force: %v", err)
		}
		e := *w.env
		e.cfgFile = cfgFile
		if out := e.must(t, "", "audit", "verify"); !strings.Contains(out, "audit trail intact") {
			t.Errorf("audit verify after the restore: %s", out)
		}
		if out := e.must(t, "", "audit", "list", "--action", "backup"); !strings.Contains(out, "backup.restore") {
			t.Errorf("the restore is not in the audit trail:\n%s", out)
		}
		// Again with --force over the restored store: it has operators now,
		// and its default access policy (no test policy in this
		// configuration) wants an admin, a case and a second approver.
		if _, err := w.cli(t, cfgFile, "restore", "--from", file, "--force", "--case", "OPS-1", "--purpose", "test"); err == nil || !strings.Contains(err.Error(), "needs one of the roles admin") {
			t.Errorf("restore by the dpo: %v", err)
		}
		otto := []string{"--operator", "otto", "--operator-token-file", w.ottoFile}
		_, err = w.cliAs(t, cfgFile, otto, "restore", "--from", file, "--force", "--case", "OPS-1", "--purpose", "test")
		m2 := regexp.MustCompile(`Request (r-[a-z0-9]+) is recorded`).FindStringSubmatch(fmt.Sprint(err))
		if m2 == nil {
			t.Fatalf("restore --force by an admin without approval: %v", err)
		}
		if _, err := w.cli(t, cfgFile, "request", "approve", m2[1]); err != nil {
			t.Fatal(err)
		}
		if out, err := w.cliAs(t, cfgFile, otto, "restore", "--from", file, "--force", "--request", m2[1]); err != nil || !strings.Contains(out, "erasures re-applied: 1") || !strings.Contains(out, "kept as") {
			t.Fatalf("restore --force: %v\n%s", err, out)
		}
		w.checkRestored(t, cfg)

		// By hand (a copied file, pg_restore): `kontor serve` replays at
		// start, before it listens.
		_, cfg3 := w.fresh(t)
		restoreByHand(t, file, &cfg3)
		cfg3.C2S.StartTLSAddr, cfg3.C2S.DirectTLSAddr, cfg3.Admin.Addr, cfg3.HTTP.Addr = "127.0.0.1:0", "", "", ""
		srv, err := startServer(t.Context(), cfg3, testLogger(t))
		if err != nil {
			t.Fatalf("serve on the store restored by hand: %v", err)
		}
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		w.checkRestored(t, cfg3)
	})
}

// inspectStore is what restore sees of cfg's store.
func inspectStore(ctx context.Context, cfg *Config) (storage.Contents, error) {
	if cfg.Storage.Backend == "postgres" {
		return postgres.Inspect(ctx, cfg.Storage.PostgresDSN)
	}
	return sqlite.Inspect(ctx, cfg.Storage.SQLitePath)
}

// readManifest reads the manifest of a backup file.
func readManifest(t *testing.T, file string) backupManifest {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	if h, err := tr.Next(); err != nil || h.Name != manifestName {
		t.Fatalf("first entry: %v, %v", h, err)
	}
	var m backupManifest
	if err := json.NewDecoder(tr).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// restoreByHand puts the backup's database in place the way an operator
// could without kontor restore: the SQLite file copied out of the tar, or
// pg_restore run on the dump.
func restoreByHand(t *testing.T, file string, cfg *Config) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Fatal("no database in the backup")
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == manifestName {
			continue
		}
		dst := filepath.Join(t.TempDir(), h.Name)
		if cfg.Storage.Backend == "sqlite" {
			dst = cfg.Storage.SQLitePath
			if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		out, err := os.Create(dst)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, tr); err != nil {
			t.Fatal(err)
		}
		out.Close()
		if cfg.Storage.Backend == "postgres" {
			cmd := exec.Command("pg_restore", "--no-owner", "--exit-on-error", "--dbname="+cfg.Storage.PostgresDSN, dst)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("pg_restore: %v\n%s", err, b)
			}
		}
		return
	}
}

// tinyBackup is a well-formed backup file of a (fake) database, for the
// reader's tests and fuzz seeds.
func tinyBackup(t testing.TB, db []byte, mutate ...func(*backupManifest)) []byte {
	t.Helper()
	sum := sha256.Sum256(db)
	m := backupManifest{Format: backupFormat, Version: backupFormatVersion, Backend: "sqlite", Method: "sqlite-vacuum-into",
		Files: []backupFile{{Name: "kontor.db", Size: int64(len(db)), SHA256: hex.EncodeToString(sum[:])}}}
	for _, f := range mutate {
		f(&m)
	}
	manifest, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		data []byte
	}{{manifestName, manifest}, {m.Files[0].Name, db}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o600, Size: int64(len(f.data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestReadBackup(t *testing.T) {
	good := tinyBackup(t, []byte("SQLite format 3\x00 and more"))
	tests := []struct {
		name    string
		file    []byte
		wantErr string
	}{
		{"good", good, ""},
		{"empty", nil, "not a Kontor backup"},
		{"not tar", []byte("hello"), "not a Kontor backup"},
		{"damaged database", bytes.Replace(good, []byte("and more"), []byte("and m0re"), 1), "SHA-256"},
		{"truncated", good[:1024+512+10], ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "b")
			if err := os.WriteFile(path, tt.file, 0o600); err != nil {
				t.Fatal(err)
			}
			_, dst, err := readBackup(path, t.TempDir())
			switch {
			case tt.name == "truncated":
				if err == nil {
					t.Error("a truncated backup was accepted")
				}
			case tt.wantErr == "" && err != nil:
				t.Fatal(err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			case tt.wantErr == "":
				if b, _ := os.ReadFile(dst); string(b) != "SQLite format 3\x00 and more" {
					t.Errorf("copy = %q", b)
				}
			}
		})
	}
}

// TestRestoreRefuses: a backup of a newer schema, and an erasure log that
// names fewer people than when the backup was made, are refused before the
// store is touched.
func TestRestoreRefuses(t *testing.T) {
	e := newAuditEnv(t, "sqlite")
	tests := []struct {
		name    string
		mutate  func(*backupManifest)
		wantErr string
	}{
		{"newer schema", func(m *backupManifest) { m.Schema = map[string]int{"core": 1, "archive": 9999} }, "made by a newer Kontor"},
		{"unknown track", func(m *backupManifest) { m.Schema = map[string]int{"teleport": 1} }, "made by a newer Kontor"},
		{"erasure log rolled back", func(m *backupManifest) { m.ErasureLogSubjects = 3 }, "names 0 people, but 3"},
		{"postgres backup into sqlite", func(m *backupManifest) { m.Backend = "postgres"; m.Files[0].Name = "kontor.pgdump" }, "storage.backend is sqlite"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "b")
			if err := os.WriteFile(path, tinyBackup(t, []byte("not a database"), tt.mutate), 0o600); err != nil {
				t.Fatal(err)
			}
			_, _, err := e.run(t, "", "restore", "--from", path)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if _, err := os.Stat(filepath.Join(e.dir, "kontor.db")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the refused restore created the database: %v", err)
			}
		})
	}
}

// FuzzReadBackup: whatever the file holds, readBackup returns an error or
// a copy whose SHA-256 is the manifest's, and never panics.
func FuzzReadBackup(f *testing.F) {
	f.Add(tinyBackup(f, []byte("SQLite format 3\x00")))
	f.Add(tinyBackup(f, nil))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := os.MkdirTemp("", "fuzz-backup-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(out)
		m, dst, err := readBackupFrom(bytes.NewReader(data), "fuzz", out)
		if err != nil {
			return
		}
		f, err := hashFile(dst)
		if err != nil {
			t.Fatal(err)
		}
		if f.SHA256 != m.Files[0].SHA256 || f.Size != m.Files[0].Size || filepath.Dir(dst) != out {
			t.Fatalf("accepted %s with %+v, manifest %+v", dst, f, m.Files)
		}
	})
}

// TestPGArgs: the password leaves the DSN (process arguments are visible
// to every user of the machine) and goes to PGPASSWORD.
func TestPGArgs(t *testing.T) {
	tests := []struct{ dsn, db, password string }{
		{"postgres://kontor:s3cret@db.example:5432/kontor?sslmode=verify-full", "postgres://kontor@db.example:5432/kontor?sslmode=verify-full", "s3cret"},
		{"postgresql://kontor@/kontor?host=/run/postgresql", "postgresql://kontor@/kontor?host=/run/postgresql", ""},
		{"host=db user=kontor password=s3cret dbname=kontor", "host=db user=kontor dbname=kontor", "s3cret"},
		{"host=db password='it\\'s a \\\\ secret' dbname=kontor", "host=db dbname=kontor", "it's a \\ secret"},
		{"password=first host=db", "host=db", "first"},
		{"host=db dbname=kontor", "host=db dbname=kontor", ""},
	}
	for _, tt := range tests {
		db, pw := pgArgs(tt.dsn)
		if strings.Join(strings.Fields(db), " ") != tt.db || pw != tt.password {
			t.Errorf("pgArgs(%q) = %q, %q; want %q, %q", tt.dsn, db, pw, tt.db, tt.password)
		}
	}
}

// TestServeRefusesUnreadableErasureLog: the server does not start when it
// cannot tell whether erasures are missing (fail closed).
func TestServeRefusesUnreadableErasureLog(t *testing.T) {
	cfg := defaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.C2S.StartTLSAddr, cfg.C2S.DirectTLSAddr, cfg.Admin.Addr, cfg.HTTP.Addr = "127.0.0.1:0", "", "", ""
	cfg.GDPR.ErasureLog = filepath.Join(t.TempDir(), "erasures.log")
	if err := os.WriteFile(cfg.GDPR.ErasureLog, []byte("not json\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.resolvePaths()
	srv, err := startServer(t.Context(), cfg, testLogger(t))
	if err == nil {
		srv.Shutdown(context.Background())
		t.Fatal("the server started with an unreadable erasure log")
	}
	if !strings.Contains(err.Error(), "erasure log") {
		t.Errorf("err = %v, want it to name the erasure log", err)
	}
}

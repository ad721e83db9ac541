package main

// kontor backup and kontor restore (see README.md, "Backup and restore",
// and SECURITY.md, "Backups"):
//
//	kontor backup --out FILE      an online, consistent backup while the server runs
//	kontor restore --from FILE    into a fresh (or stopped) instance; then the erasures since
//
// A backup is one tar file: manifest.json first, then the database: on
// SQLite the copy VACUUM INTO makes (one read transaction: the server
// goes on writing, the copy is one point in time), on PostgreSQL a
// pg_dump in its custom format (one REPEATABLE READ snapshot, equally
// consistent while the server runs). The manifest records the SHA-256 and
// size of the database file, the schema version of every migration track,
// the time, the backend and how the copy was made, and who holds the keys
// (the key provider's kind, file or variable name and key ids), never key
// material: keys are backed up apart from data, and must expire before it.
//
// restore checks the manifest and the hash before it touches anything,
// refuses to overwrite a store that holds data without --force, and
// refuses while a server answers on admin.addr. It then re-applies every
// erasure recorded in the erasure log since the backup (archive/gdpr's
// Missing and Replay), before any server serves the restored data; `kontor
// serve` does the same at start, for databases restored by hand.
//
// Who may: backup.create and backup.restore are access-policy actions
// (admins; a restore over data needs a case and a second approver in the
// default policy). A restore into an empty store has no operators to ask:
// as with the first operator, root on the machine may do it, and the
// audit entry names the OS user.

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"kontor.im/kontor/archive/gdpr"
	"kontor.im/kontor/archive/keyring"
	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/gate"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/storage/postgres"
	"kontor.im/kontor/core/storage/sqlite"
)

func init() { featureCommands = append(featureCommands, backupCmd, restoreCmd) }

// backupFormat names the file format in its manifest.
const (
	backupFormat        = "kontor-backup"
	backupFormatVersion = 1
	manifestName        = "manifest.json"
	// maxManifest bounds what restore reads as the manifest.
	maxManifest = 1 << 20
)

// backupManifest is manifest.json.
type backupManifest struct {
	Format  string    `json:"format"`
	Version int       `json:"version"`
	Created time.Time `json:"created"`
	// Backend is sqlite or postgres; Method how the copy was made:
	// "sqlite-vacuum-into" or "pg_dump-custom".
	Backend string `json:"backend"`
	Method  string `json:"method"`
	// Tool is the pg_dump version for pg_dump-custom.
	Tool    string       `json:"tool,omitempty"`
	Domains []string     `json:"domains"`
	Files   []backupFile `json:"files"`
	// Schema is the version of every migration track at backup time.
	Schema map[string]int `json:"schema"`
	// KeyProvider says which keys open the archive in this backup. It
	// never holds key material.
	KeyProvider keyProviderIdentity `json:"key_provider"`
	// SealKeyFile is where the core sealing key was (not the key).
	SealKeyFile string `json:"seal_key_file"`
	// ErasureLog is where the erasure log was, and how many people it
	// named when the copy started (information: restore compares the log
	// with the restored audit trail, not with this number).
	ErasureLog         string `json:"erasure_log"`
	ErasureLogSubjects int    `json:"erasure_log_subjects"`
	// AuditHead is the audit trail's newest entry when the copy started
	// (SEQ:HASH); the copy holds it and possibly a few more.
	AuditHead string `json:"audit_head,omitempty"`
	// Operator made the backup.
	Operator string `json:"operator"`
}

// backupFile is one file of the backup after the manifest.
type backupFile struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// keyProviderIdentity names the key-encryption key provider: never a key.
type keyProviderIdentity struct {
	Kind       string   `json:"kind"` // file, env or none
	File       string   `json:"file,omitempty"`
	Env        string   `json:"env,omitempty"`
	CurrentKEK string   `json:"current_kek,omitempty"`
	KEKIDs     []string `json:"kek_ids,omitempty"`
}

// keyIdentity describes the configured key provider; errors reading it
// leave the ids out (a backup of a store whose archive is off).
func keyIdentity(ctx context.Context, cfg *Config) (keyProviderIdentity, error) {
	a := &cfg.Archive
	var id keyProviderIdentity
	switch {
	case a.KEKFile != "":
		id.Kind, id.File = "file", a.KEKFile
	case a.KEKEnv != "":
		id.Kind, id.Env = "env", a.KEKEnv
	default:
		id.Kind = "none"
		return id, nil
	}
	p, err := a.kekProvider()
	if err != nil {
		return id, err
	}
	if id.CurrentKEK, err = p.Current(ctx); err != nil {
		return id, err
	}
	var ring *keyring.Ring
	switch k := p.(type) {
	case *keyring.File:
		ring, err = k.Ring()
	case *keyring.Ring:
		ring = k
	}
	if err != nil {
		return id, err
	}
	if ring != nil {
		id.KEKIDs = ring.IDs()
	}
	return id, nil
}

func backupCmd(flags *configFlags) *cobra.Command {
	var out, pgDump string
	cmd := &cobra.Command{
		Use:   "backup --out FILE",
		Short: "Make a consistent backup of the store while the server runs (SQLite: VACUUM INTO; PostgreSQL: pg_dump)",
		Long: `Writes one file: a manifest (SHA-256 of the database copy, schema versions,
time, key provider identity but no key material) and a consistent copy of
the database, made while the server runs: on SQLite with VACUUM INTO, on
PostgreSQL with pg_dump --format=custom (from PATH, or --pg-dump). Keys
(archive.kek_file, seal.key_file) and the erasure log are not in it: back
them up apart, and let key backups expire before data backups. Restore with
kontor restore --from FILE. Needs the access-policy action backup.create.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--out FILE is required")
			}
			if _, err := os.Lstat(out); err == nil {
				return fmt.Errorf("%s exists: give a new file", out)
			}
			cfg, err := loadConfig(*flags)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			st, err := openStore(ctx, &cfg)
			if err != nil {
				return err
			}
			defer st.Close()
			g, err := authorizeAction(ctx, &cfg, st, cmd, gate.AccessBackupCreate, "")
			if err != nil {
				return err
			}
			m, sum, err := writeBackup(ctx, &cfg, st, out, pgDump, g.Operator.ID)
			if err != nil {
				return err
			}
			details := map[string]string{"file": out, "sha256": sum, "backend": m.Backend, "method": m.Method,
				"db_sha256": m.Files[0].SHA256, "db_size": strconv.FormatInt(m.Files[0].Size, 10), "decision_id": g.Decision.ID,
				"case_number": g.CaseNumber, "request": g.Request}
			if err := auditAs(ctx, &cfg, st, cmd, audit.Entry{Actor: g.Operator.ID, Action: "backup.create", Reason: g.Purpose, Details: details}); err != nil {
				return fmt.Errorf("the backup %s was written, but its audit entry was not: %w", out, err)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "backup written: %s (%s, %s, %d bytes of database)\n", out, m.Backend, m.Method, m.Files[0].Size)
			fmt.Fprintf(w, "sha256 of the file: %s\n", sum)
			fmt.Fprintf(w, "keys are not in it: back up %s apart from it", keyWhere(m.KeyProvider))
			fmt.Fprintf(w, ", and the erasure log %s with the keys\n", m.ErasureLog)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "the backup file to write (must not exist)")
	cmd.Flags().StringVar(&pgDump, "pg-dump", "pg_dump", "the pg_dump program (PostgreSQL; as new as the server)")
	addAccessFlags(cmd)
	return cmd
}

// keyWhere says where the keys of id are, for messages.
func keyWhere(id keyProviderIdentity) string {
	switch id.Kind {
	case "file":
		return "the key-encryption key " + id.File
	case "env":
		return "the key-encryption key (environment variable " + id.Env + ")"
	}
	return "the core sealing key"
}

// writeBackup writes the backup of st to out and returns its manifest and
// the SHA-256 of the whole file.
func writeBackup(ctx context.Context, cfg *Config, st storage.Store, out, pgDump, operator string) (backupManifest, string, error) {
	m := backupManifest{Format: backupFormat, Version: backupFormatVersion, Created: time.Now().UTC(), Backend: st.Backend(),
		Domains: cfg.Domains, SealKeyFile: cfg.Seal.KeyFile, ErasureLog: cfg.erasureLogPath(), Operator: operator}
	var err error
	if m.KeyProvider, err = keyIdentity(ctx, cfg); err != nil {
		return m, "", fmt.Errorf("backup: key provider: %w", err)
	}
	sr, ok := st.(storage.SchemaReporter)
	if !ok {
		return m, "", fmt.Errorf("backup: the %s store cannot report its schema", st.Backend())
	}
	if m.Schema, err = sr.SchemaVersions(ctx); err != nil {
		return m, "", err
	}
	recs, err := gdpr.ReadErasureLog(m.ErasureLog)
	if err != nil {
		return m, "", err
	}
	m.ErasureLogSubjects = len(recs)
	if h, err := st.AuditHead(ctx); err != nil {
		return m, "", err
	} else if h.Seq > 0 {
		m.AuditHead = audit.Head{Seq: h.Seq, Hash: h.Hash}.String()
	}

	tmp, err := os.MkdirTemp(filepath.Dir(out), ".kontor-backup-")
	if err != nil {
		return m, "", fmt.Errorf("backup: %w", err)
	}
	defer os.RemoveAll(tmp)
	var dbFile string
	switch st.Backend() {
	case "sqlite":
		snap, ok := st.(storage.Snapshotter)
		if !ok {
			return m, "", errors.New("backup: the sqlite store cannot make a snapshot")
		}
		m.Method, dbFile = "sqlite-vacuum-into", filepath.Join(tmp, "kontor.db")
		if err := snap.Snapshot(ctx, dbFile); err != nil {
			return m, "", err
		}
	case "postgres":
		m.Method, dbFile = "pg_dump-custom", filepath.Join(tmp, "kontor.pgdump")
		if m.Tool, err = pgToolVersion(ctx, pgDump); err != nil {
			return m, "", err
		}
		// pg_dump reads one snapshot (REPEATABLE READ): consistent while
		// the server writes. Owners and grants are left out at restore
		// (pg_restore --no-owner --no-privileges): the tables belong to
		// the role of the target's DSN.
		if err := runPG(ctx, pgDump, cfg.Storage.PostgresDSN, "--format=custom", "--file="+dbFile); err != nil {
			return m, "", err
		}
	default:
		return m, "", fmt.Errorf("backup: unknown backend %q", st.Backend())
	}
	f, err := hashFile(dbFile)
	if err != nil {
		return m, "", err
	}
	m.Files = []backupFile{f}
	manifest, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return m, "", err
	}
	sum, err := writeTar(filepath.Join(tmp, "backup.tar"), manifest, dbFile, f)
	if err != nil {
		return m, "", err
	}
	// No overwrite: the file must still not exist (link fails if it does).
	if err := os.Link(filepath.Join(tmp, "backup.tar"), out); err != nil {
		return m, "", fmt.Errorf("backup: %w", err)
	}
	return m, sum, syncDir(filepath.Dir(out))
}

// hashFile returns the name, size and SHA-256 of path.
func hashFile(path string) (backupFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return backupFile{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return backupFile{}, err
	}
	return backupFile{Name: filepath.Base(path), Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// writeTar writes the manifest and the database file into a tar file at
// path (owner-only, fsynced) and returns the SHA-256 of the whole file.
func writeTar(path string, manifest []byte, dbFile string, db backupFile) (string, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(f, h))
	now := time.Now().UTC()
	if err := tw.WriteHeader(&tar.Header{Name: manifestName, Mode: 0o600, Size: int64(len(manifest)), ModTime: now, Typeflag: tar.TypeReg}); err != nil {
		return "", err
	}
	if _, err := tw.Write(manifest); err != nil {
		return "", err
	}
	src, err := os.Open(dbFile)
	if err != nil {
		return "", err
	}
	defer src.Close()
	if err := tw.WriteHeader(&tar.Header{Name: db.Name, Mode: 0o600, Size: db.Size, ModTime: now, Typeflag: tar.TypeReg}); err != nil {
		return "", err
	}
	if _, err := io.Copy(tw, src); err != nil {
		return "", err
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// pgPassword matches a password in a key=value DSN.
var pgPassword = regexp.MustCompile(`(?i)(^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)`)

// pgArgs turns a DSN into a pg_dump/pg_restore --dbname argument without
// the password, and the password for PGPASSWORD: the arguments of a
// process are visible to every user of the machine, its environment is not.
func pgArgs(dsn string) (dbname, password string) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err == nil && u.User != nil {
			password, _ = u.User.Password()
			u.User = url.User(u.User.Username())
			return u.String(), password
		}
		return dsn, ""
	}
	if m := pgPassword.FindStringSubmatch(dsn); m != nil {
		password = m[2]
		if strings.HasPrefix(password, "'") {
			password = strings.NewReplacer(`\'`, `'`, `\\`, `\`).Replace(strings.Trim(password, "'"))
		}
		dsn = strings.TrimSpace(pgPassword.ReplaceAllString(dsn, "$1"))
	}
	return dsn, password
}

// runPG runs a PostgreSQL client program on the database dsn.
func runPG(ctx context.Context, prog, dsn string, args ...string) error {
	dbname, password := pgArgs(dsn)
	c := exec.CommandContext(ctx, prog, append(args, "--dbname="+dbname)...)
	c.Env = os.Environ()
	if password != "" {
		c.Env = append(c.Env, "PGPASSWORD="+password)
	}
	var stderr bytes.Buffer
	c.Stderr = &stderr
	if err := c.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", filepath.Base(prog), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// pgToolVersion returns `prog --version`.
func pgToolVersion(ctx context.Context, prog string) (string, error) {
	out, err := exec.CommandContext(ctx, prog, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s: %w (install PostgreSQL's client programs, as new as the server, or give their path)", prog, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// ---------------------------------------------------------------------------
// restore

func restoreCmd(flags *configFlags) *cobra.Command {
	var (
		from, pgRestore   string
		force, withoutLog bool
	)
	cmd := &cobra.Command{
		Use:   "restore --from FILE",
		Short: "Restore a backup into a fresh or stopped instance, then re-apply the erasures made since",
		Long: `Checks the backup's manifest and the SHA-256 of its database copy first, then
restores it into the configured store: SQLite by replacing the database file
(with --force the old one is kept beside it as kontor.db.replaced-TIME),
PostgreSQL with pg_restore (from PATH, or --pg-restore). It refuses while a
server answers on admin.addr, and refuses a store that holds data unless
--force is given. After the restore it re-applies every erasure of the
erasure log that the restored audit trail does not record (people erased
since the backup was taken), before anything serves the data; kontor serve
does the same at start. It refuses a backup of a newer schema than this
binary knows, and an erasure log that names fewer people than when the
backup was made (not this installation's log, or rolled back with the
data). Restoring over a store with operators needs the
access-policy action backup.restore; into an empty store, root on the machine
may restore (there is no operator to ask yet).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" {
				return errors.New("--from FILE is required")
			}
			cfg, err := loadConfig(*flags)
			if err != nil {
				return err
			}
			return runRestore(cmd, &cfg, from, pgRestore, force, withoutLog)
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "the backup file (written by kontor backup)")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite a store that holds data")
	cmd.Flags().BoolVar(&withoutLog, "without-erasure-log", false, "restore although the erasure log names fewer people than when the backup was made")
	cmd.Flags().StringVar(&pgRestore, "pg-restore", "pg_restore", "the pg_restore program (PostgreSQL)")
	addAccessFlags(cmd)
	return cmd
}

// readBackup reads the manifest of the backup at path and copies its
// database file into dir, checking size and SHA-256. It returns the
// manifest and the path of the verified copy.
func readBackup(path, dir string) (backupManifest, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return backupManifest{}, "", err
	}
	defer f.Close()
	return readBackupFrom(f, path, dir)
}

// readBackupFrom is readBackup of the backup r (named path in errors).
func readBackupFrom(r io.Reader, path, dir string) (backupManifest, string, error) {
	var m backupManifest
	tr := tar.NewReader(r)
	hdr, err := tr.Next()
	if err != nil || hdr.Name != manifestName || hdr.Typeflag != tar.TypeReg || hdr.Size > maxManifest {
		return m, "", fmt.Errorf("restore: %s is not a Kontor backup (it must start with %s)", path, manifestName)
	}
	raw, err := io.ReadAll(io.LimitReader(tr, maxManifest))
	if err != nil {
		return m, "", fmt.Errorf("restore: %s: %w", path, err)
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return m, "", fmt.Errorf("restore: %s: the manifest: %w", path, err)
	}
	if m.Format != backupFormat || m.Version != backupFormatVersion {
		return m, "", fmt.Errorf("restore: %s: format %q version %d is not %s version %d", path, m.Format, m.Version, backupFormat, backupFormatVersion)
	}
	if len(m.Files) != 1 || m.Files[0].Name != map[string]string{"sqlite": "kontor.db", "postgres": "kontor.pgdump"}[m.Backend] {
		return m, "", fmt.Errorf("restore: %s: the manifest lists %v for backend %q", path, m.Files, m.Backend)
	}
	want := m.Files[0]
	hdr, err = tr.Next()
	if err != nil || hdr.Name != want.Name || hdr.Typeflag != tar.TypeReg {
		return m, "", fmt.Errorf("restore: %s: %s is missing after the manifest", path, want.Name)
	}
	if hdr.Size != want.Size {
		return m, "", fmt.Errorf("restore: %s: %s has %d bytes, the manifest says %d", path, want.Name, hdr.Size, want.Size)
	}
	dst := filepath.Join(dir, want.Name)
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return m, "", err
	}
	defer out.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), tr)
	if err != nil {
		return m, "", fmt.Errorf("restore: %s: %w", path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != want.Size || got != want.SHA256 {
		return m, "", fmt.Errorf("restore: %s: the SHA-256 of %s is %s, the manifest says %s: the backup is damaged or was changed", path, want.Name, got, want.SHA256)
	}
	if _, err := tr.Next(); err != io.EOF {
		return m, "", fmt.Errorf("restore: %s: unexpected content after %s", path, want.Name)
	}
	if err := out.Sync(); err != nil {
		return m, "", err
	}
	return m, dst, out.Close()
}

// serverAnswers reports whether a Kontor answers /healthz on the admin
// listener of cfg.
func serverAnswers(cfg *Config) bool {
	if cfg.Admin.Addr == "" {
		return false
	}
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + cfg.Admin.Addr + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

func runRestore(cmd *cobra.Command, cfg *Config, from, pgRestore string, force, withoutLog bool) error {
	ctx := cmd.Context()
	w := cmd.OutOrStdout()
	tmpBase := ""
	if cfg.Storage.Backend == "sqlite" {
		// Beside the database: the verified copy is renamed into place.
		tmpBase = filepath.Dir(cfg.Storage.SQLitePath)
		if err := os.MkdirAll(tmpBase, 0o700); err != nil {
			return err
		}
	}
	tmp, err := os.MkdirTemp(tmpBase, ".kontor-restore-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// 1. The backup is whole, or nothing is touched.
	m, dbFile, err := readBackup(from, tmp)
	if err != nil {
		return err
	}
	if m.Backend != cfg.Storage.Backend {
		return fmt.Errorf("restore: the backup is of a %s store, but storage.backend is %s", m.Backend, cfg.Storage.Backend)
	}
	known, err := map[string]func() (map[string]int, error){"sqlite": sqlite.KnownSchemaVersions, "postgres": postgres.KnownSchemaVersions}[m.Backend]()
	if err != nil {
		return err
	}
	for track, v := range m.Schema {
		if v > known[track] {
			return fmt.Errorf("restore: the backup was made by a newer Kontor (schema track %s is at version %d, this binary knows %d): restore it with that version", track, v, known[track])
		}
	}
	// The erasure log only grows: one that names fewer people than when
	// the backup was made is not this installation's, or was rolled back
	// with the data, and erasures since the backup would be lost.
	recs, err := gdpr.ReadErasureLog(cfg.erasureLogPath())
	if err != nil {
		return err
	}
	if len(recs) < m.ErasureLogSubjects && !withoutLog {
		return fmt.Errorf("restore: the erasure log %s names %d people, but %d when the backup was made (log %s): it is not this installation's log, or it was rolled back, and people erased since the backup would come back. Point gdpr.erasure_log at the right file; --without-erasure-log restores anyway", cfg.erasureLogPath(), len(recs), m.ErasureLogSubjects, m.ErasureLog)
	}
	fmt.Fprintf(w, "backup %s: made %s by %s, %s (%s); SHA-256 of %s verified\n", from, m.Created.Format(time.RFC3339),
		auditDash(m.Operator), m.Backend, m.Method, m.Files[0].Name)
	if cur, err := keyIdentity(ctx, cfg); err == nil && m.KeyProvider.CurrentKEK != "" && !slices.Contains(cur.KEKIDs, m.KeyProvider.CurrentKEK) {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: the backup's archive was sealed under key-encryption key %s, which the configured key provider (%s) does not hold: restore that key too, or the archive stays unreadable\n",
			m.KeyProvider.CurrentKEK, keyWhere(cur))
	}
	// 2. Nothing serves the store while it is replaced.
	if serverAnswers(cfg) {
		return fmt.Errorf("restore: a server answers on %s: stop it first", cfg.Admin.Addr)
	}
	// 3. What the target holds, and who may replace it.
	var contents storage.Contents
	switch cfg.Storage.Backend {
	case "sqlite":
		contents, err = sqlite.Inspect(ctx, cfg.Storage.SQLitePath)
	case "postgres":
		contents, err = postgres.Inspect(ctx, cfg.Storage.PostgresDSN)
	}
	if err != nil {
		return err
	}
	if contents.Data && !force {
		return fmt.Errorf("restore: the store holds data (tables %s ...): restore into a fresh store, or give --force to replace it", strings.Join(contents.NonEmpty, ", "))
	}
	actor, grant, err := authorizeRestore(cmd, cfg, contents)
	if err != nil {
		return err
	}
	// 4. The restore itself.
	replaced := ""
	switch cfg.Storage.Backend {
	case "sqlite":
		if replaced, err = replaceSQLite(cfg.Storage.SQLitePath, dbFile, contents.Tables); err != nil {
			return err
		}
	case "postgres":
		args := []string{"--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction"}
		if contents.Tables {
			args = append(args, "--clean", "--if-exists")
		}
		if err := runPG(ctx, pgRestore, cfg.Storage.PostgresDSN, append(args, dbFile)...); err != nil {
			return fmt.Errorf("restore: %w (the transaction was rolled back: the store is as it was)", err)
		}
	}
	fmt.Fprintf(w, "database restored (%s)\n", m.Backend)
	if replaced != "" {
		fmt.Fprintf(w, "the database it replaced is kept as %s: delete it when it is no longer needed\n", replaced)
	}
	// 5. The restored store (migrated forward if the backup is older),
	// its audit trail told of the restore, and the erasures since.
	st, err := openStore(ctx, cfg)
	if err != nil {
		return fmt.Errorf("restore: the restored store does not open: %w", err)
	}
	defer st.Close()
	details := map[string]string{"backup_file": from, "backup_created": m.Created.Format(time.RFC3339), "backup_operator": m.Operator,
		"db_sha256": m.Files[0].SHA256, "backend": m.Backend, "method": m.Method, "force": strconv.FormatBool(force),
		"decision_id": grant.Decision.ID, "case_number": grant.CaseNumber, "request": grant.Request}
	schema := make([]string, 0, len(m.Schema))
	for track, v := range m.Schema {
		schema = append(schema, track+"="+strconv.Itoa(v))
	}
	sort.Strings(schema)
	details["backup_schema"] = strings.Join(schema, ",")
	// The saved audit head belongs to the history the restore replaced:
	// it is kept aside, named in the entry, and the next save verifies
	// the restored trail from its start.
	headPath := cfg.Audit.anchorPath(cfg.DataDir)
	if h, err := audit.ReadHeadFile(headPath); err == nil {
		aside := headPath + ".before-restore-" + time.Now().UTC().Format("20060102T150405Z")
		if err := os.Rename(headPath, aside); err != nil {
			return fmt.Errorf("restore: move the saved audit head aside: %w", err)
		}
		details["replaced_audit_head"] = h.String()
		details["replaced_audit_head_file"] = aside
		fmt.Fprintf(w, "the saved audit head %s (of the history before the restore) is kept as %s\n", h, aside)
	}
	if err := auditAs(ctx, cfg, st, cmd, audit.Entry{Actor: actor, Action: "backup.restore", Reason: grant.Purpose, Details: details}); err != nil {
		return fmt.Errorf("restore: the audit entry: %w", err)
	}
	n, err := replayErasuresCLI(cmd, cfg, st, actor)
	if err != nil {
		return fmt.Errorf("restore: the database is restored, but re-applying the erasures since the backup failed (do not start the server before `kontor gdpr erase --resume --replay` or a new kontor restore succeeds; kontor serve also retries it and refuses to start until it succeeds): %w", err)
	}
	fmt.Fprintf(w, "erasures re-applied: %d (erasure log %s)\n", n, cfg.erasureLogPath())
	return nil
}

// authorizeRestore asks the access policy (backup.restore) when the store
// has operators; an empty store has none, and root on the machine may
// restore into it. It returns the audit actor and the grant.
func authorizeRestore(cmd *cobra.Command, cfg *Config, contents storage.Contents) (string, operatorGrant, error) {
	ctx := cmd.Context()
	if contents.Data {
		st, err := openStore(ctx, cfg)
		if err != nil {
			return "", operatorGrant{}, err
		}
		defer st.Close()
		ops, err := operatorStoreOf(st)
		if err != nil {
			return "", operatorGrant{}, err
		}
		list, err := ops.ListOperators(ctx)
		if err != nil {
			return "", operatorGrant{}, err
		}
		if len(list) > 0 {
			g, err := authorizeAction(ctx, cfg, st, cmd, gate.AccessBackupRestore, "")
			return g.Operator.ID, g, err
		}
	}
	uid, name, err := osIdentity()
	if err != nil {
		return "", operatorGrant{}, err
	}
	if uid != 0 {
		return "", operatorGrant{}, fmt.Errorf("%w: the store has no operators to ask: only root on this machine may restore into it", errAccessDenied)
	}
	return "os:" + name, operatorGrant{}, nil
}

// replaceSQLite puts the verified copy src in place of the database at
// path. An existing database (with its WAL) is renamed aside, and its name
// returned.
func replaceSQLite(path, src string, existed bool) (string, error) {
	aside := ""
	if existed {
		aside = path + ".replaced-" + time.Now().UTC().Format("20060102T150405Z")
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if err := os.Rename(path+suffix, aside+suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
				return "", fmt.Errorf("restore: %w", err)
			}
		}
	} else {
		for _, suffix := range []string{"-wal", "-shm", "-journal"} {
			if err := os.Remove(path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
				return "", fmt.Errorf("restore: %w", err)
			}
		}
	}
	if err := os.Rename(src, path); err != nil {
		return "", fmt.Errorf("restore: %w", err)
	}
	return aside, syncDir(filepath.Dir(path))
}

// replayErasuresCLI re-applies the erasures the store lacks (see
// archive/gdpr's Missing), as actor, and prints their certificates.
func replayErasuresCLI(cmd *cobra.Command, cfg *Config, st storage.Store, actor string) (int, error) {
	gs, err := gdpr.AsStore(st)
	if err != nil {
		return 0, err
	}
	missing, err := gdpr.Missing(cmd.Context(), gs, cfg.erasureLogPath())
	if err != nil || len(missing) == 0 {
		return 0, err
	}
	tool, pe, err := newGDPRTool(cfg, st, cmd)
	if err != nil {
		return 0, err
	}
	if pe != nil {
		defer pe.Close()
	}
	certs, err := tool.Replay(cmd.Context(), gdpr.Grant{Operator: actor, Purpose: "re-apply erasures after a restore"}, missing)
	for _, c := range certs {
		printCertificate(cmd, c)
	}
	return len(certs), err
}

// replayErasuresAtStart is what `kontor serve` does before it listens:
// re-apply the erasures the store lacks (a database restored by hand,
// with pg_restore or a copied file, or a restore whose replay failed). A
// failure stops the start: the server must not serve erased people's data.
func replayErasuresAtStart(ctx context.Context, cfg *Config, st storage.Store, trail *audit.Trail, log *slog.Logger) error {
	gs, err := gdpr.AsStore(st)
	if err != nil {
		return nil // a store without the archive's tables keeps nothing an erasure removes beyond the core's
	}
	missing, err := gdpr.Missing(ctx, gs, cfg.erasureLogPath())
	if err != nil {
		return fmt.Errorf("erasure log: %w", err)
	}
	if len(missing) == 0 {
		return nil
	}
	if trail == nil {
		return errors.New("erasure log: erasures to re-apply, but no audit trail to record them")
	}
	log.Warn("the store lacks erasures of the erasure log (restored from a backup?): re-applying them before serving",
		"count", len(missing), "erasure_log", cfg.erasureLogPath())
	t := &gdpr.Tool{Store: gs, Trail: trail, DutyClasses: cfg.GDPR.DutyClasses, ErasureLog: cfg.erasureLogPath(), Logger: log,
		Audit: func(ctx context.Context, e audit.Entry) error { _, err := trail.Append(ctx, e); return err }}
	files, err := uploadFiles(cfg, st, nil)
	if err != nil {
		return err
	}
	if files != nil {
		t.Uploads = gdprUploads{files}
	}
	certs, err := t.Replay(ctx, gdpr.Grant{Operator: "kontor", Purpose: "re-apply erasures at start"}, missing)
	for _, c := range certs {
		log.Warn("erasure re-applied", "subject", c.Subject, "job", c.Job)
	}
	if err != nil {
		return fmt.Errorf("re-applying erasures of the erasure log: %w", err)
	}
	return nil
}

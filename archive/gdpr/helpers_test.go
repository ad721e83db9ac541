package gdpr

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"kontor.im/kontor/archive"
	"kontor.im/kontor/archive/keyring"
	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/storage/pgtest"
	"kontor.im/kontor/core/storage/postgres"
	"kontor.im/kontor/core/storage/sqlite"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// backend is a real database for one test.
type backend struct {
	name string
	path string // SQLite file
	dsn  string // PostgreSQL
	st   Store
	ring *keyring.Ring // the archive's keys, once newTool made it
}

func openBackend(t testing.TB, name string) *backend {
	t.Helper()
	b := &backend{name: name}
	var (
		s   storage.Store
		err error
	)
	switch name {
	case "sqlite":
		b.path = filepath.Join(t.TempDir(), "kontor.db")
		s, err = sqlite.Open(context.Background(), b.path)
	default:
		b.dsn = pgtest.DSN(t)
		s, err = postgres.Open(context.Background(), b.dsn)
	}
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	t.Cleanup(func() { s.Close() })
	if b.st, err = AsStore(s); err != nil {
		t.Fatal(err)
	}
	return b
}

func forBackends(t *testing.T, fn func(t *testing.T, b *backend)) {
	t.Helper()
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, openBackend(t, name))
		})
	}
}

func testRing(t testing.TB) *keyring.Ring {
	t.Helper()
	k, err := keyring.Generate(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r, err := keyring.NewRing(k)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// byPeer gives messages with peers in classes their class.
type byPeer map[string]archive.RetentionClass

func (b byPeer) Retention(_ context.Context, in archive.RetentionInput) (archive.RetentionClass, error) {
	if c, ok := b[in.With]; ok {
		return c, nil
	}
	return archive.RetentionClass{Name: "standard", Keep: 90 * 24 * time.Hour}, nil
}

// newArchive builds and starts an archive, closed when t ends.
func newArchive(t testing.TB, st Store, keys keyring.Provider, ret archive.RetentionDecider) *archive.Archive {
	t.Helper()
	a, err := archive.New(archive.Config{Store: st, Keys: keys, FlushInterval: 5 * time.Millisecond, Retention: ret,
		Holds: Holds{st}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := a.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return a
}

// recorder is an Auditor that keeps the entries, and writes them to a real
// trail too.
type recorder struct {
	mu      sync.Mutex
	entries []audit.Entry
	trail   *audit.Trail
}

func (r *recorder) append(ctx context.Context, e audit.Entry) error {
	if r.trail != nil {
		var err error
		if e, err = r.trail.Append(ctx, e); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.entries = append(r.entries, e)
	return nil
}

func (r *recorder) last(action string) (audit.Entry, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.entries) - 1; i >= 0; i-- {
		if r.entries[i].Action == action {
			return r.entries[i], true
		}
	}
	return audit.Entry{}, false
}

// newTool builds a Tool on b with a started archive.
func newTool(t *testing.T, b *backend, ret archive.RetentionDecider) (*Tool, *archive.Archive, *recorder) {
	t.Helper()
	b.ring = testRing(t)
	a := newArchive(t, b.st, b.ring, ret)
	rec := &recorder{trail: audit.New(b.st)}
	tool := &Tool{Store: b.st, Archive: a, Audit: rec.append, Trail: audit.New(b.st),
		OpenOffline: func(m storage.OfflineMessage) ([]byte, error) {
			return a.OfflineOpener().Open(m.Owner, offlineAD(m.From, m.Stamp), m.Sealed)
		},
		DutyClasses: []string{"business_letter"}, ErasureLog: filepath.Join(t.TempDir(), "keys", "erasures.log")}
	return tool, a, rec
}

// offlineAD is core/mod/offline's associated data of a stored message
// (offline.OpenStored uses it; the test seals as the module does).
func offlineAD(from string, stamp time.Time) []byte {
	return []byte("kontor offline v1\x00" + from + "\x00" + strconv.FormatInt(stamp.UnixMicro(), 10))
}

func marker(t *testing.T, what string) string {
	t.Helper()
	var r [12]byte
	if _, err := rand.Read(r[:]); err != nil {
		t.Fatal(err)
	}
	return "KONTOR-" + what + "-" + hex.EncodeToString(r[:])
}

func ok(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// chat builds an archived chat message.
func chat(owner, with string, outgoing bool, at time.Time, body string) module.ArchivedMessage {
	from, to := with, owner
	if outgoing {
		from, to = owner, with
	}
	return module.ArchivedMessage{ID: archive.NewIDAt(at), Owner: owner, With: with, Outgoing: outgoing, Time: at.UTC().Truncate(time.Microsecond),
		Stanza: fmt.Appendf(nil, "<message xmlns='jabber:client' from='%s' to='%s' type='chat'><body>%s</body></message>", from, to, body)}
}

// dbFiles lists the files that hold the database: the SQLite file with its
// WAL, or PostgreSQL's data directory (after a CHECKPOINT), with or
// without its WAL.
func dbFiles(t *testing.T, b *backend, withWAL bool) []string {
	t.Helper()
	if b.name == "sqlite" {
		return []string{b.path, b.path + "-wal", b.path + "-shm"}
	}
	dir := pgtest.DataDir()
	if dir == "" {
		t.Fatalf("no data directory: %s points to a server of its own; this test needs the cluster pgtest starts", pgtest.EnvDSN)
	}
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, b.dsn)
	ok(t, err)
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		t.Fatal(err)
	}
	var out []string
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if d.IsDir() && d.Name() == "pg_wal" && !withWAL {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			out = append(out, path)
		}
		return nil
	})
	ok(t, err)
	return out
}

// findIn returns the files among files that contain needle.
func findIn(t *testing.T, files []string, needle []byte) []string {
	t.Helper()
	var out []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue
		}
		ok(t, err)
		if bytes.Contains(data, needle) {
			out = append(out, f)
		}
	}
	return out
}

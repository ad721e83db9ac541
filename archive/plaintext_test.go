package archive

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/storage/pgtest"
)

// TestNoPlaintextAtRest archives messages and stores offline messages (the
// two stores that hold message content) with a unique marker in their
// bodies, and looks for the marker in every file the database keeps: the
// SQLite file with its WAL and shared memory, PostgreSQL's whole data
// directory (tables, indexes, WAL) after a CHECKPOINT. A second marker,
// stored in the clear on purpose (in the archiving preferences, which are
// not encrypted), must be found: it shows that the scan sees what reaches
// the disk.
func TestNoPlaintextAtRest(t *testing.T) {
	forBackends(t, func(t *testing.T, b *backend) {
		secret := marker(t, "SECRET")
		control := marker(t, "CONTROL")
		a := newArchive(t, b.store(), testRing(t), nil)
		for i := range 50 {
			at := time.Now().Add(time.Duration(i) * time.Millisecond)
			mustAppend(t, a, msg(alice, bob, true, at, secret), msg(bob, alice, false, at, secret))
		}
		// An offline message, sealed as the offline module seals it.
		sealed, err := a.Sealer(nil).Seal(bob, []byte("kontor offline v1\x00alice@example.com/x\x001"),
			[]byte("<message><body>"+secret+"</body></message>"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.db.StoreOffline(t.Context(), storage.OfflineMessage{Owner: bob, From: alice, Sealed: sealed}, 0); err != nil {
			t.Fatal(err)
		}
		if err := a.SetPrefs(t.Context(), alice, module.ArchivePrefs{Default: "always", Never: []string{control + "@example.com"}}); err != nil {
			t.Fatal(err)
		}
		mustFlush(t, a)
		if p := mustQuery(t, a, module.ArchiveQuery{Owner: alice, Max: 100}); len(p.Messages) != 50 ||
			!bytes.Contains(p.Messages[0].Stanza, []byte(secret)) {
			t.Fatalf("the archive does not give the messages back: %d", len(p.Messages))
		}

		var files []string
		switch b.name {
		case "sqlite":
			files = []string{b.path, b.path + "-wal", b.path + "-shm"}
		case "postgres":
			dir := pgtest.DataDir()
			if dir == "" {
				t.Fatalf("no data directory: %s points to a server of its own; this test needs the cluster pgtest starts", pgtest.EnvDSN)
			}
			checkpoint(t, b.dsn)
			files = walk(t, dir)
		}
		var foundControl bool
		scanned := 0
		for _, f := range files {
			data, err := os.ReadFile(f)
			if os.IsNotExist(err) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			scanned += len(data)
			if bytes.Contains(data, []byte(secret)) {
				t.Errorf("the marker is in the clear in %s", f)
			}
			foundControl = foundControl || bytes.Contains(data, []byte(control))
		}
		t.Logf("%s: scanned %d files, %d bytes", b.name, len(files), scanned)
		if !foundControl {
			t.Errorf("the control marker, stored in the clear, was not found in %d files: the scan does not see the data", len(files))
		}
	})
}

func marker(t *testing.T, what string) string {
	t.Helper()
	var r [12]byte
	if _, err := rand.Read(r[:]); err != nil {
		t.Fatal(err)
	}
	return "KONTOR-" + what + "-" + hex.EncodeToString(r[:])
}

// checkpoint makes PostgreSQL write everything to the data files.
func checkpoint(t *testing.T, dsn string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		t.Fatalf("CHECKPOINT: %v", err)
	}
}

// walk lists every regular file under dir.
func walk(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) { // a file removed while walking (a dropped test database)
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/storage/sqlite"
	"kontor.im/kontor/core/storage/storagetest"
)

// opener opens a store on a file of t's own; later calls with the same t
// reopen that file, as storagetest.Run requires.
func opener() func(t *testing.T) storage.Store {
	var (
		mu    sync.Mutex
		paths = map[*testing.T]string{}
	)
	return func(t *testing.T) storage.Store {
		t.Helper()
		mu.Lock()
		path, ok := paths[t]
		if !ok {
			path = filepath.Join(t.TempDir(), "kontor.db")
			paths[t] = path
			t.Cleanup(func() {
				mu.Lock()
				delete(paths, t)
				mu.Unlock()
			})
		}
		mu.Unlock()
		s, err := sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	}
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, opener())
}

func open(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSchemaTooNew(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kontor.db")
	s := open(t, path)
	known, err := s.SchemaVersion(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// A newer Kontor migrated the file.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES ($1, 0)`, known+1); err != nil {
		t.Fatal(err)
	}
	db.Close()

	_, err = sqlite.Open(t.Context(), path)
	if !errors.Is(err, storage.ErrSchemaTooNew) {
		t.Fatalf("Open on a newer schema: err = %v, want ErrSchemaTooNew", err)
	}
}

func TestOpenRejects(t *testing.T) {
	for _, path := range []string{"", ":memory:", "file:x.db", filepath.Join(t.TempDir(), "missing", "dir", "kontor.db")} {
		t.Run(path, func(t *testing.T) {
			if s, err := sqlite.Open(t.Context(), path); err == nil {
				s.Close()
				t.Errorf("Open(%q) succeeded", path)
			}
		})
	}
}

func TestOddPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a dir?with#odd%20chars")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "kontör.db")
	s := open(t, path)
	if err := s.SetVCard(t.Context(), "alice@example.com", []byte("<vCard/>")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database not at %q: %v", path, err)
	}
}

// writeLoad performs n mixed writes for owner, returning the first error.
func writeLoad(ctx context.Context, s storage.Store, owner string, n int) error {
	if err := s.CreateAccount(ctx, storage.Account{JID: owner}); err != nil {
		return err
	}
	for i := range n {
		if _, err := s.StoreOffline(ctx, storage.OfflineMessage{Owner: owner, From: "x@example.com", Sealed: []byte("m")}, 1000); err != nil {
			return err
		}
		if _, err := s.PutRosterItem(ctx, owner, storage.RosterItem{Contact: fmt.Sprintf("c%d@example.com", i)}); err != nil {
			return err
		}
		if err := s.SetVCard(ctx, owner, []byte(strconv.Itoa(i))); err != nil {
			return err
		}
		if err := s.SetDisabled(ctx, owner, i%2 == 0); err != nil {
			return err
		}
	}
	return nil
}

// TestTwoStoresOneFile is the server and the `kontor user` CLI using the same
// file at once.
func TestTwoStoresOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kontor.db")
	stores := []*sqlite.Store{open(t, path), open(t, path)}
	const perStore, writes = 4, 25
	errs := make(chan error, 2*perStore)
	var wg sync.WaitGroup
	for i, s := range stores {
		for j := range perStore {
			wg.Go(func() { errs <- writeLoad(t.Context(), s, fmt.Sprintf("u%d-%d@example.com", i, j), writes) })
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent write: %v", err)
		}
	}
	accts, err := stores[1].ListAccounts(t.Context(), "example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(accts) != 2*perStore {
		t.Errorf("%d accounts, want %d", len(accts), 2*perStore)
	}
	for _, a := range accts {
		n, err := stores[0].OfflineCount(t.Context(), a.JID)
		if err != nil || n != writes {
			t.Errorf("%s: %d offline messages (%v), want %d", a.JID, n, err, writes)
		}
	}
}

// TestConcurrentOpen opens one new file from several stores at once (the
// server and the CLI started together): all succeed, the schema once.
func TestConcurrentOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kontor.db")
	const n = 4
	stores := make([]*sqlite.Store, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = sqlite.Open(t.Context(), path)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	version, err := stores[0].SchemaVersion(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rows int
	if err := db.QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != version {
		t.Errorf("schema_migrations has %d rows for version %d, want one per migration", rows, version)
	}
}

const helperEnv = "KONTOR_SQLITE_TEST_WRITER"

// TestTwoProcesses writes from this process and from a child process (this
// test binary again) at once: SQLite's locks between processes, not just
// between connections of one process.
func TestTwoProcesses(t *testing.T) {
	if os.Getenv(helperEnv) != "" {
		t.Skip("running as the helper")
	}
	path := filepath.Join(t.TempDir(), "kontor.db")
	s := open(t, path) // migrated before the child starts

	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestHelperWriter$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+path)
	var wg sync.WaitGroup
	var childErr error
	var childOut []byte
	wg.Go(func() { childOut, childErr = cmd.CombinedOutput() })
	var parentErr error
	for i := range 3 {
		if parentErr = writeLoad(t.Context(), s, fmt.Sprintf("parent%d@example.com", i), 30); parentErr != nil {
			break
		}
	}
	wg.Wait()
	if parentErr != nil {
		t.Errorf("parent: %v", parentErr)
	}
	if childErr != nil {
		t.Errorf("child: %v\n%s", childErr, childOut)
	}
	accts, err := s.ListAccounts(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(accts) != 6 {
		t.Errorf("%d accounts, want 6", len(accts))
	}
}

// TestHelperWriter is the child process of TestTwoProcesses.
func TestHelperWriter(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		t.Skip("only run by TestTwoProcesses")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 3 {
		if err := writeLoad(ctx, s, fmt.Sprintf("child%d@example.com", i), 30); err != nil {
			t.Fatal(err)
		}
	}
}

func benchStore(b *testing.B) storage.Store {
	s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "kontor.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func BenchmarkStoreOffline(b *testing.B) { storagetest.BenchStoreOffline(b, benchStore(b)) }

func BenchmarkRosterItems(b *testing.B) { storagetest.BenchRosterItems(b, benchStore(b)) }

func BenchmarkRosterWithRequests(b *testing.B) {
	storagetest.BenchRosterWithRequests(b, benchStore(b))
}

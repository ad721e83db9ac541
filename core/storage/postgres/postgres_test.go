package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/storage/pgtest"
	"kontor.im/kontor/core/storage/postgres"
	"kontor.im/kontor/core/storage/storagetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// opener opens a store on a database of t's own; later calls with the same t
// reopen that database, as storagetest.Run requires.
func opener() func(t *testing.T) storage.Store {
	var (
		mu   sync.Mutex
		dsns = map[*testing.T]string{}
	)
	return func(t *testing.T) storage.Store {
		t.Helper()
		mu.Lock()
		dsn, ok := dsns[t]
		if !ok {
			dsn = pgtest.DSN(t)
			dsns[t] = dsn
			t.Cleanup(func() {
				mu.Lock()
				delete(dsns, t)
				mu.Unlock()
			})
		}
		mu.Unlock()
		s, err := postgres.Open(t.Context(), dsn)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	}
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, opener())
}

func open(t *testing.T, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// query returns the single integer a query selects, on its own connection.
func query(t *testing.T, dsn, sql string) int64 {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int64
	if err := conn.QueryRow(t.Context(), sql).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func TestSchemaTooNew(t *testing.T) {
	dsn := pgtest.DSN(t)
	s := open(t, dsn)
	known, err := s.SchemaVersion(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	// A newer Kontor migrated the database.
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(t.Context(), `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, 0)`, known+1); err != nil {
		t.Fatal(err)
	}
	conn.Close(t.Context())

	_, err = postgres.Open(t.Context(), dsn)
	if !errors.Is(err, storage.ErrSchemaTooNew) {
		t.Fatalf("Open on a newer schema: err = %v, want ErrSchemaTooNew", err)
	}
}

// TestConcurrentOpen is several servers starting at once against one fresh
// database: all must start, and each migration must be applied once.
func TestConcurrentOpen(t *testing.T) {
	dsn := pgtest.DSN(t)
	const n = 4
	stores := make([]*postgres.Store, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = postgres.Open(t.Context(), dsn)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
			continue
		}
		defer stores[i].Close()
	}
	if t.Failed() {
		return
	}
	version, err := stores[0].SchemaVersion(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rows := query(t, dsn, `SELECT count(*) FROM schema_migrations`); rows != int64(version) {
		t.Errorf("schema_migrations has %d rows for version %d, want one per migration", rows, version)
	}
	// No session still holds the migration lock.
	if locks := query(t, dsn, `SELECT count(*) FROM pg_locks
		WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`); locks != 0 {
		t.Errorf("%d advisory locks held after Open, want 0", locks)
	}
}

// TestLinguisticDefaultCollation runs on a database whose default collation
// sorts "émile" before "zed" (ICU en-US), as a production database created
// with a language locale would: the store must still order JIDs as bytes.
func TestLinguisticDefaultCollation(t *testing.T) {
	dsn := pgtest.DSN(t)
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	name := conn.Config().Database + "_icu"
	if _, err := conn.Exec(t.Context(), `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()+
		` TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'`); err != nil {
		skipUnlessCI(t, "cannot create a database with an ICU collation here: %v", err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), dsn)
		if err == nil {
			defer conn.Close(context.Background())
			_, err = conn.Exec(context.Background(), `DROP DATABASE `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`)
		}
		if err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	icu := open(t, withDatabase(dsn, name))

	var linguistic bool
	if err := conn.QueryRow(t.Context(), `SELECT 'émile' < 'zed' COLLATE "en-US-x-icu"`).Scan(&linguistic); err != nil || !linguistic {
		skipUnlessCI(t, "ICU collation does not sort linguistically here (%v)", err)
	}
	jids := []string{"émile@example.com", "zed@example.com", "Zed@example.com", "alice@example.com"}
	for _, j := range jids {
		if err := icu.CreateAccount(t.Context(), storage.Account{JID: j}); err != nil {
			t.Fatal(err)
		}
		if _, err := icu.PutRosterItem(t.Context(), "owner@example.com", storage.RosterItem{Contact: j}); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"Zed@example.com", "alice@example.com", "zed@example.com", "émile@example.com"}
	accts, err := icu.ListAccounts(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	items, _, err := icu.RosterItems(t.Context(), "owner@example.com")
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if accts[i].JID != want[i] || items[i].Contact != want[i] {
			t.Fatalf("order: accounts %v, roster %v; want bytewise %q", accts, items, want)
		}
	}
}

// withDatabase returns dsn naming another database.
func withDatabase(dsn, name string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.Path = "/" + name
		return u.String()
	}
	return dsn + " dbname=" + name // the last dbname wins
}

func TestOpenErrorHidesPassword(t *testing.T) {
	const password = "s3cr3t-pa55"
	// Port 1 on localhost: nothing listens there.
	for _, dsn := range []string{
		"postgres://kontor:" + password + "@127.0.0.1:1/kontor?connect_timeout=2",
		"host=127.0.0.1 port=1 user=kontor password=" + password + " connect_timeout=2",
		"host=127.0.0.1 port=notaport password=" + password,
	} {
		_, err := postgres.Open(t.Context(), dsn)
		if err == nil {
			t.Fatalf("Open(%q) succeeded", dsn)
		}
		if strings.Contains(err.Error(), password) {
			t.Errorf("error reveals the password: %v", err)
		}
	}
}

func benchStore(b *testing.B) storage.Store {
	s, err := postgres.Open(context.Background(), pgtest.DSN(b))
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

// skipUnlessCI skips a test that needs a capability of the PostgreSQL build
// (Debian's has ICU), but fails it under CI=true, where it must run.
func skipUnlessCI(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

func BenchmarkAppendArchive(b *testing.B) {
	for _, n := range []int{1, 5, 100} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			storagetest.BenchArchiveAppend(b, benchStore(b).(storage.ArchiveStore), n, clusterCPU(b))
		})
	}
}

// clusterCPU returns a function reading the CPU time of the test cluster's
// postmaster and its living children (backends, WAL writer, checkpointer),
// from /proc; nil with an external server. Clock ticks are 10 ms: it
// suits a benchmark of a second or more.
func clusterCPU(b *testing.B) func() time.Duration {
	dir := pgtest.DataDir()
	if dir == "" {
		return nil
	}
	pidFile, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		b.Logf("no database CPU: %v", err)
		return nil
	}
	main, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(pidFile), "\n", 2)[0]))
	if err != nil {
		return nil
	}
	const tick = 10 * time.Millisecond // USER_HZ
	stat := func(pid int) (ppid int, cpu time.Duration, ok bool) {
		raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return 0, 0, false
		}
		i := strings.LastIndexByte(string(raw), ')')
		if i < 0 {
			return 0, 0, false
		}
		f := strings.Fields(string(raw[i+1:]))
		if len(f) < 13 {
			return 0, 0, false
		}
		ppid, _ = strconv.Atoi(f[1])
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		return ppid, time.Duration(u+s) * tick, true
	}
	return func() time.Duration {
		_, total, _ := stat(main)
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if ppid, cpu, ok := stat(pid); ok && ppid == main {
				total += cpu
			}
		}
		return total
	}
}

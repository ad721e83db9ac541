package archive

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"kontor.im/kontor/archive/keyring"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/storage/pgtest"
	"kontor.im/kontor/core/storage/postgres"
	"kontor.im/kontor/core/storage/sqlite"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// backend is a real database for one test: SQLite in a temporary file or a
// PostgreSQL database of its own.
type backend struct {
	name string
	path string // SQLite file
	dsn  string // PostgreSQL
	db   storage.Store
}

// store returns the backend's store as an ArchiveStore.
func (b *backend) store() storage.ArchiveStore { return b.db.(storage.ArchiveStore) }

// reopen opens another Store on the same database, closed when t ends.
func (b *backend) reopen(t *testing.T) storage.Store {
	t.Helper()
	var (
		s   storage.Store
		err error
	)
	switch b.name {
	case "sqlite":
		s, err = sqlite.Open(t.Context(), b.path)
	default:
		s, err = postgres.Open(t.Context(), b.dsn)
	}
	if err != nil {
		t.Fatalf("open %s: %v", b.name, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openBackend(t testing.TB, name string) *backend {
	t.Helper()
	b := &backend{name: name}
	var err error
	switch name {
	case "sqlite":
		b.path = filepath.Join(t.TempDir(), "kontor.db")
		b.db, err = sqlite.Open(context.Background(), b.path)
	case "postgres":
		b.dsn = pgtest.DSN(t)
		b.db, err = postgres.Open(context.Background(), b.dsn)
	default:
		t.Fatalf("unknown backend %q", name)
	}
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	t.Cleanup(func() { b.db.Close() })
	return b
}

// forBackends runs fn as a parallel subtest on each backend.
func forBackends(t *testing.T, fn func(t *testing.T, b *backend)) {
	t.Helper()
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, openBackend(t, name))
		})
	}
}

// clock is a settable clock for tests.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock(t time.Time) *clock { return &clock{now: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
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

// newArchive builds and starts an archive on a store; mod may change the
// configuration first. It is closed when t ends.
func newArchive(t testing.TB, st storage.ArchiveStore, keys keyring.Provider, mod func(*Config)) *Archive {
	t.Helper()
	cfg := Config{Store: st, Keys: keys, FlushInterval: 5 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	a, err := New(cfg)
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

// msg builds a message from owner to/from with at t.
func msg(owner, with string, outgoing bool, at time.Time, body string) module.ArchivedMessage {
	from, to := with, owner
	if outgoing {
		from, to = owner, with
	}
	return module.ArchivedMessage{
		ID: FormatID(idAt(at)), Owner: owner, With: with, Outgoing: outgoing, Time: at.UTC().Truncate(time.Microsecond),
		Stanza: fmt.Appendf(nil, "<message xmlns='jabber:client' from='%s' to='%s' type='chat'><body>%s</body></message>", from, to, body),
	}
}

func mustAppend(t testing.TB, a *Archive, msgs ...module.ArchivedMessage) {
	t.Helper()
	for _, m := range msgs {
		if err := a.Append(context.Background(), m); err != nil {
			t.Fatalf("Append(%s): %v", m.ID, err)
		}
	}
}

func mustFlush(t testing.TB, a *Archive) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

func mustQuery(t testing.TB, a *Archive, q module.ArchiveQuery) module.ArchivePage {
	t.Helper()
	p, err := a.Query(context.Background(), q)
	if err != nil {
		t.Fatalf("Query(%+v): %v", q, err)
	}
	return p
}

// ids lists the IDs of messages.
func ids(msgs []module.ArchivedMessage) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

package archive

import (
	"context"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/storage"
)

// countingStore counts preference reads of a real store.
type countingStore struct {
	storage.ArchiveStore
	reads atomic.Int64
}

func (s *countingStore) ArchivePrefs(ctx context.Context, owner string) (storage.ArchivePrefs, error) {
	s.reads.Add(1)
	return s.ArchiveStore.ArchivePrefs(ctx, owner)
}

func TestPrefsCache(t *testing.T) {
	forBackends(t, func(t *testing.T, b *backend) {
		const alice, bob, carol = "alice@example.com", "bob@example.com", "carol@example.com"
		st := &countingStore{ArchiveStore: b.store()}
		clk := newClock(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
		a := newArchive(t, st, testRing(t), func(c *Config) {
			c.Now, c.PrefsCacheSize, c.PrefsCacheTTL = clk.Now, 2, time.Minute
		})
		get := func(owner string) module.ArchivePrefs {
			t.Helper()
			p, err := a.Prefs(t.Context(), owner)
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
		// An owner without preferences is cached too (the common case).
		get(alice)
		get(alice)
		if n := st.reads.Load(); n != 1 {
			t.Fatalf("%d store reads for two lookups, want 1", n)
		}
		// SetPrefs through the archive is seen at once.
		want := module.ArchivePrefs{Default: "never", Always: []string{bob}}
		if err := a.SetPrefs(t.Context(), alice, want); err != nil {
			t.Fatal(err)
		}
		if p := get(alice); !reflect.DeepEqual(p, want) {
			t.Fatalf("after SetPrefs: %+v, want %+v", p, want)
		}
		// A change behind the archive's back (another process) is seen
		// after the TTL, not before.
		other := module.ArchivePrefs{Default: "always"}
		if err := st.SetArchivePrefs(t.Context(), alice, storage.ArchivePrefs{Default: "always"}); err != nil {
			t.Fatal(err)
		}
		if p := get(alice); !reflect.DeepEqual(p, want) {
			t.Fatalf("within the TTL: %+v, want the cached %+v", p, want)
		}
		clk.Set(clk.Now().Add(time.Minute + time.Second))
		if p := get(alice); !reflect.DeepEqual(p, other) {
			t.Fatalf("after the TTL: %+v, want %+v", p, other)
		}
		// Bounded: never more than PrefsCacheSize owners.
		get(bob)
		get(carol)
		if n := a.prefs.len(); n > 2 {
			t.Fatalf("cache holds %d owners, limit 2", n)
		}
	})
}

// TestPrefsCacheRace: a read that raced with SetPrefs must not cache the
// old value.
func TestPrefsCacheRace(t *testing.T) {
	c := newPrefsCache(10, time.Hour, time.Now)
	_, gen, _ := c.get("alice@example.com")
	c.invalidate("alice@example.com") // SetPrefs ran meanwhile
	c.put("alice@example.com", module.ArchivePrefs{Default: "always"}, gen)
	if _, _, ok := c.get("alice@example.com"); ok {
		t.Fatal("a value read before an invalidation was cached")
	}
}

package blocking

import (
	"fmt"
	"testing"

	"kontor.im/kontor/core/jid"
)

// TestMatches checks the JID matching rules of XEP-0191 §6 for each form
// of blocked JID against each form of address.
func TestMatches(t *testing.T) {
	addresses := []string{
		"bob@example.com/desk", "bob@example.com/phone", "bob@example.com",
		"carol@example.com/desk", "example.com/desk", "example.com",
		"bob@sub.example.com/desk", "sub.example.com", "bob@example.org/desk",
	}
	tests := []struct {
		name    string
		item    string
		matches []string // the addresses above that the item blocks
	}{
		{"full JID: that resource only", "bob@example.com/desk",
			[]string{"bob@example.com/desk"}},
		{"bare JID: every resource", "bob@example.com",
			[]string{"bob@example.com/desk", "bob@example.com/phone", "bob@example.com"}},
		{"domain/resource: that resource at the domain", "example.com/desk",
			[]string{"bob@example.com/desk", "carol@example.com/desk", "example.com/desk"}},
		{"domain: everything at it, no subdomain", "example.com",
			[]string{"bob@example.com/desk", "bob@example.com/phone", "bob@example.com",
				"carol@example.com/desk", "example.com/desk", "example.com"}},
		{"subdomain", "sub.example.com",
			[]string{"bob@sub.example.com/desk", "sub.example.com"}},
		{"non-ASCII, canonical", "zoë@exämple.org", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newList([]string{tt.item})
			item := jid.MustParse(tt.item)
			for _, a := range addresses {
				j := jid.MustParse(a)
				want := false
				for _, m := range tt.matches {
					want = want || m == a
				}
				if got := l.matches(j); got != want {
					t.Errorf("list{%s}.matches(%s) = %v, want %v", tt.item, a, got, want)
				}
				if got := matchItem(item, j); got != want {
					t.Errorf("matchItem(%s, %s) = %v, want %v", tt.item, a, got, want)
				}
			}
		})
	}
	t.Run("empty and zero", func(t *testing.T) {
		var empty *list
		if empty.matches(jid.MustParse("bob@example.com")) || newList(nil) != nil {
			t.Error("an empty list blocks something")
		}
		if newList([]string{"example.com"}).matches(jid.JID{}) || matchItem(jid.MustParse("example.com"), jid.JID{}) {
			t.Error("the zero JID is blocked")
		}
	})
	t.Run("several items", func(t *testing.T) {
		l := newList([]string{"carol@example.org", "example.net", "dave@example.com/phone"})
		for a, want := range map[string]bool{
			"carol@example.org/x": true, "x@example.net/y": true, "dave@example.com/phone": true,
			"dave@example.com/desk": false, "bob@example.com": false,
		} {
			if got := l.matches(jid.MustParse(a)); got != want {
				t.Errorf("matches(%s) = %v, want %v", a, got, want)
			}
		}
		if l.len() != 3 {
			t.Errorf("len = %d", l.len())
		}
	})
}

func TestCache(t *testing.T) {
	bobs := newList([]string{"bob@example.com"})
	tests := []struct {
		name string
		run  func(t *testing.T, c *cache)
	}{
		{"miss, put, hit", func(t *testing.T, c *cache) {
			_, ok, gen := c.lookup("alice@example.com")
			if ok {
				t.Fatal("hit in an empty cache")
			}
			c.put("alice@example.com", bobs, gen)
			if l, ok, _ := c.lookup("alice@example.com"); !ok || l != bobs {
				t.Errorf("lookup = %v, %v", l, ok)
			}
		}},
		{"an empty list is cached too", func(t *testing.T, c *cache) {
			_, _, gen := c.lookup("alice@example.com")
			c.put("alice@example.com", nil, gen)
			if l, ok, _ := c.lookup("alice@example.com"); !ok || l != nil {
				t.Errorf("lookup = %v, %v", l, ok)
			}
		}},
		{"a load that raced with a change is not kept", func(t *testing.T, c *cache) {
			_, _, gen := c.lookup("alice@example.com")
			c.invalidate("alice@example.com") // a block landed while loading
			c.put("alice@example.com", nil, gen)
			if _, ok, _ := c.lookup("alice@example.com"); ok {
				t.Error("the stale load was cached")
			}
		}},
		{"invalidate drops", func(t *testing.T, c *cache) {
			_, _, gen := c.lookup("alice@example.com")
			c.put("alice@example.com", bobs, gen)
			c.invalidate("alice@example.com")
			if _, ok, _ := c.lookup("alice@example.com"); ok {
				t.Error("still cached")
			}
		}},
		{"drop keeps loads in flight", func(t *testing.T, c *cache) {
			_, _, gen := c.lookup("alice@example.com")
			c.drop("bob@example.com") // bob logged in
			c.put("alice@example.com", bobs, gen)
			if _, ok, _ := c.lookup("alice@example.com"); !ok {
				t.Error("alice's load was discarded")
			}
			c.drop("alice@example.com")
			if _, ok, _ := c.lookup("alice@example.com"); ok {
				t.Error("still cached after drop")
			}
		}},
		{"bounded", func(t *testing.T, c *cache) {
			for i := range 10 {
				owner := fmt.Sprintf("u%d@example.com", i)
				_, _, gen := c.lookup(owner)
				c.put(owner, nil, gen)
				if n := c.entries(); n > 3 {
					t.Fatalf("%d entries, want at most 3", n)
				}
				if _, ok, _ := c.lookup(owner); !ok {
					t.Fatalf("%s was not cached", owner)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, newCache(3))
		})
	}
}

func TestOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		ok   bool
	}{
		{"defaults", DefaultOptions(), true},
		{"max_items 0", Options{MaxItems: 0, CacheSize: 1}, false},
		{"max_items too large", Options{MaxItems: maxMaxItems + 1, CacheSize: 1}, false},
		{"cache_size 0", Options{MaxItems: 1, CacheSize: 0}, false},
		{"cache_size too large", Options{MaxItems: 1, CacheSize: maxCacheSize + 1}, false},
		{"smallest", Options{MaxItems: 1, CacheSize: 1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.opts.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

func BenchmarkListMatches(b *testing.B) {
	l := newList([]string{"spam.example", "carol@example.org", "dave@example.com/phone", "example.net/bot"})
	for _, a := range []string{"bob@example.com/desk", "dave@example.com/phone"} {
		j := jid.MustParse(a)
		b.Run(a, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				l.matches(j)
			}
		})
	}
}

package uuid7

import (
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func TestIDs(t *testing.T) {
	c := &clock{t: t0}
	g := New(c.now)
	tests := []struct {
		name string
		step time.Duration // clock change before the id
	}{
		{name: "first"},
		{name: "same millisecond"},
		{name: "same millisecond again"},
		{name: "next millisecond", step: time.Millisecond},
		{name: "clock steps back", step: -time.Hour},
		{name: "clock back to normal", step: time.Hour + time.Second},
	}
	var prev string
	latest := t0 // the latest time the clock showed: ids never go back
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c.set(c.now().Add(tc.step))
			if c.now().After(latest) {
				latest = c.now()
			}
			id := g.Next()
			ms, ok := Millis(id)
			if !ok {
				t.Fatalf("id %q is not a canonical lowercase UUIDv7", id)
			}
			if id <= prev {
				t.Fatalf("id %q does not sort after %q", id, prev)
			}
			if got := time.UnixMilli(ms).UTC(); got.Before(t0) || got.After(latest.Add(time.Millisecond)) {
				t.Fatalf("id %q has time %v, clock %v, latest %v", id, got, c.now(), latest)
			}
			prev = id
		})
	}
	seen := map[string]bool{}
	for range 10000 {
		id := g.Next()
		if _, ok := Millis(id); !ok || seen[id] || id <= prev {
			t.Fatalf("id %q malformed, repeated or out of order after %q", id, prev)
		}
		seen[id], prev = true, id
	}
}

func BenchmarkID(b *testing.B) {
	g := New(time.Now)
	b.ReportAllocs()
	for b.Loop() {
		if len(g.Next()) != Len {
			b.Fatal("bad id")
		}
	}
}

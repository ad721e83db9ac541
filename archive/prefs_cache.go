package archive

import (
	"sync"
	"time"

	"kontor.im/kontor/core/module"
)

// prefsCache keeps owners' archiving preferences in memory: the mam module
// asks for both parties' preferences on every archived message, and a
// database round trip per party was the largest share of the message
// path's CPU under load (kontor-load, chat at 100 messages/s).
//
// It holds at most size owners (when full it is emptied: bounded, and
// cheap next to a miss). SetPrefs through this Archive invalidates the
// owner at once; a change made elsewhere (another process on the same
// database, an account deleted with its preferences) is seen after at
// most ttl. A read that raced with an invalidation is not cached (gen).
type prefsCache struct {
	size int
	ttl  time.Duration
	now  func() time.Time

	mu  sync.Mutex
	gen uint64
	m   map[string]prefsEntry
}

type prefsEntry struct {
	p       module.ArchivePrefs
	expires time.Time
}

func newPrefsCache(size int, ttl time.Duration, now func() time.Time) *prefsCache {
	return &prefsCache{size: size, ttl: ttl, now: now, m: make(map[string]prefsEntry)}
}

// get returns the cached preferences and the generation to pass to put.
func (c *prefsCache) get(owner string) (module.ArchivePrefs, uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[owner]
	if ok && c.now().Before(e.expires) {
		return e.p, c.gen, true
	}
	return module.ArchivePrefs{}, c.gen, false
}

// stale returns what was cached for owner even after its ttl: during a
// database outage the preferences read last still hold, so that messages
// keep being archived (into the queue) as their owner wants.
func (c *prefsCache) stale(owner string) (module.ArchivePrefs, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[owner]
	return e.p, ok
}

// put caches p unless an invalidation happened since gen was read.
func (c *prefsCache) put(owner string, p module.ArchivePrefs, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if len(c.m) >= c.size {
		clear(c.m)
	}
	c.m[owner] = prefsEntry{p: p, expires: c.now().Add(c.ttl)}
}

func (c *prefsCache) invalidate(owner string) {
	c.mu.Lock()
	c.gen++
	delete(c.m, owner)
	c.mu.Unlock()
}

func (c *prefsCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

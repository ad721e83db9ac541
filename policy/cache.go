package policy

import (
	"hash/maphash"
	"math/bits"
	"sync/atomic"
)

// DefaultCacheSize is the default number of slots of the decision cache:
// room for every pair of people who chat in a company of a few hundred, or
// the active pairs of a larger one, in 512 KiB of slots.
const DefaultCacheSize = 65536

// cacheKey is everything a cacheable decision depends on besides the
// policy and the directory, which belong to the state the cache lives in:
// a new policy or directory comes with a new, empty cache.
type cacheKey struct {
	kind  kind
	flags uint8 // bit 0: from local, 1: to local, 2: encrypted, 3: legal hold
	a, b  string
	from  string
	to    string
	room  string
}

// cacheEntry is one cached answer: the outcome and the id of the
// evaluation that produced it, which every decision served from it
// carries (it is the same decision, applied again).
type cacheEntry struct {
	key cacheKey
	o   *outcome
	id  string
}

// decisionCache is a direct-mapped table of atomic pointers: a key hashes
// to one slot, a lookup is one atomic load and a comparison, a store
// replaces whatever the slot held. It is bounded by construction and
// lock-free, so the stanza path pays a hash and a load for a cached
// decision; the price is that two active keys that share a slot evict
// each other, which at the working set of a chat server (who talks to whom
// today) against tens of thousands of slots is rare, and costs one
// evaluation.
type decisionCache struct {
	seed  maphash.Seed
	mask  uint64
	slots []atomic.Pointer[cacheEntry]
}

func newDecisionCache(size int) *decisionCache {
	n := uint64(1) << bits.Len64(uint64(max(size, 2)-1)) // next power of two
	return &decisionCache{seed: maphash.MakeSeed(), mask: n - 1, slots: make([]atomic.Pointer[cacheEntry], n)}
}

// slot hashes the parties fully and the rest by length: the entry's key
// is compared whole, so a weaker hash only means that two keys share a
// slot, never a wrong answer.
func (c *decisionCache) slot(k *cacheKey) *atomic.Pointer[cacheEntry] {
	h := maphash.String(c.seed, k.from) ^ bits.RotateLeft64(maphash.String(c.seed, k.to), 29)
	h ^= uint64(k.kind) | uint64(k.flags)<<8 | uint64(len(k.a))<<16 | uint64(len(k.b))<<24 | uint64(len(k.room))<<32
	h *= 0x9e3779b97f4a7c15 // spread the small values into the low bits
	return &c.slots[(h>>32^h)&c.mask]
}

func (c *decisionCache) get(k *cacheKey) *cacheEntry {
	if e := c.slot(k).Load(); e != nil && e.key == *k {
		return e
	}
	return nil
}

func (c *decisionCache) put(k *cacheKey, o *outcome, id string) {
	c.slot(k).Store(&cacheEntry{key: *k, o: o, id: id})
}

func (c *decisionCache) len() int {
	n := 0
	for i := range c.slots {
		if c.slots[i].Load() != nil {
			n++
		}
	}
	return n
}

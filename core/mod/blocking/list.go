package blocking

import (
	"sync"

	"kontor.im/kontor/core/jid"
)

// list is one owner's blocklist as the filters use it: the canonical
// strings of the blocked JIDs. A nil *list is an empty one, so that the
// common case, an owner who blocked nobody, costs no memory beyond the
// cache entry and no map lookup.
type list struct {
	set map[string]struct{}
}

// newList builds a list from canonical JID strings (as the store returns
// them); nil for none.
func newList(jids []string) *list {
	if len(jids) == 0 {
		return nil
	}
	l := &list{set: make(map[string]struct{}, len(jids))}
	for _, j := range jids {
		l.set[j] = struct{}{}
	}
	return l
}

// matches reports whether j is blocked by the list, trying the forms of
// XEP-0191 §6 (as XEP-0016 §2.1 orders them) derived from j:
// user@domain/resource, user@domain, domain/resource, domain. A blocked
// domain matches the domain itself and every address at it, not its
// subdomains (XEP-0191 1.3). Every form is a substring of j's canonical
// text, so matching does not allocate.
func (l *list) matches(j jid.JID) bool {
	if l == nil || j.IsZero() {
		return false
	}
	s := j.String()
	if _, ok := l.set[s]; ok {
		return true // the exact address: full, bare, domain/resource or domain
	}
	if local := j.Local(); local != "" {
		if !j.IsBare() {
			if _, ok := l.set[j.Bare().String()]; ok {
				return true
			}
			// "domain/resource" is what follows "local@".
			if _, ok := l.set[s[len(local)+1:]]; ok {
				return true
			}
		}
		if _, ok := l.set[j.Domain()]; ok {
			return true
		}
	} else if !j.IsBare() {
		if _, ok := l.set[j.Domain()]; ok {
			return true
		}
	}
	return false
}

// len is the number of blocked JIDs.
func (l *list) len() int {
	if l == nil {
		return 0
	}
	return len(l.set)
}

// matchItem reports whether the single blocked JID item matches j, by the
// rules of list.matches.
func matchItem(item, j jid.JID) bool {
	switch {
	case item.IsZero() || j.IsZero():
		return false
	case item == j:
		return true
	case item.Local() != "" && item.IsBare(): // user@domain
		return j.Local() != "" && j.Bare() == item
	case item.Local() == "" && item.IsBare(): // domain
		return j.Domain() == item.Domain()
	case item.Local() == "": // domain/resource
		return !j.IsBare() && j.Domain() == item.Domain() && j.Resource() == item.Resource()
	}
	return false // user@domain/resource: only itself
}

// cache holds the lists of this host's accounts, so that the filters query
// the store once per owner rather than once per stanza. An owner's list is
// loaded at first use and dropped when the module changes it (and when the
// owner's first session binds, so that a list changed behind the server's
// back, or left from a deleted account of the same name, is read again).
// At most size owners are kept; when full, an arbitrary one is evicted.
//
// A load races with a change: the loader reads the generation before it
// queries the store and keeps its result only if the module changed no
// list meanwhile, so a list read before a change never outlives the
// change. Changes are rare; a lost load is only read again.
//
// mu is a leaf lock: nothing else is taken or called while holding it.
type cache struct {
	mu    sync.RWMutex
	lists map[string]*list // bare JID → list (nil: blocks nobody)
	gen   uint64           // incremented by every invalidation
	size  int
}

func newCache(size int) *cache {
	return &cache{lists: make(map[string]*list), size: size}
}

// lookup returns owner's list if cached, and otherwise the generation a
// load must present to put.
func (c *cache) lookup(owner string) (l *list, ok bool, gen uint64) {
	c.mu.RLock()
	l, ok = c.lists[owner]
	gen = c.gen
	c.mu.RUnlock()
	return l, ok, gen
}

// put caches a list loaded at generation gen, unless a change came since.
func (c *cache) put(owner string, l *list, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if _, ok := c.lists[owner]; !ok && len(c.lists) >= c.size {
		for k := range c.lists {
			delete(c.lists, k)
			break
		}
	}
	c.lists[owner] = l
}

// invalidate drops owner's list after the module changed it: loads in
// flight, which may have read the old list, are not kept either.
func (c *cache) invalidate(owner string) {
	c.mu.Lock()
	delete(c.lists, owner)
	c.gen++
	c.mu.Unlock()
}

// drop drops owner's list so that the next use reads it again. Unlike
// invalidate it keeps loads in flight (of any owner): it does not follow a
// change the module made, and logins are frequent enough that discarding
// every concurrent load at each one would cost store queries on the
// stanza path.
func (c *cache) drop(owner string) {
	c.mu.Lock()
	delete(c.lists, owner)
	c.mu.Unlock()
}

// entries is the number of cached lists, for tests.
func (c *cache) entries() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.lists)
}

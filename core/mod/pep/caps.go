package pep

import (
	"container/list"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"strings"
	"sync"
	"time"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/stanza"
)

// Namespaces of XEP-0030 and XEP-0115.
const (
	nsDiscoInfo = "http://jabber.org/protocol/disco#info"
	nsCaps      = "http://jabber.org/protocol/caps"
)

// notifySuffix marks a +notify feature (XEP-0163 §4.2: NODE+notify).
const notifySuffix = "+notify"

// capsKey names one set of capabilities: what a <c/> element in presence
// says. The node is part of the key even for hashed caps, so that an entry
// is only ever shared by clients that claim the same software (and an
// entry is only made from an answer that verifies against the hash).
type capsKey struct {
	hash, node, ver string
}

// parseCaps reads the XEP-0115 <c/> of a presence.
func parseCaps(p *stanza.Element) (capsKey, bool) {
	c := p.Child(nsCaps, "c")
	if c == nil {
		return capsKey{}, false
	}
	k := capsKey{hash: c.Get("hash"), node: c.Get("node"), ver: c.Get("ver")}
	if k.ver == "" || k.node == "" || len(k.ver)+len(k.node)+len(k.hash) > 1024 {
		return capsKey{}, false
	}
	return k, true
}

// notifyNodes returns the nodes of the +notify features of a disco#info
// <query/>, sorted.
func notifyNodes(q *stanza.Element) []string {
	var out []string
	q.Children(func(c *stanza.Element) bool {
		if c.Name.Space == nsDiscoInfo && c.Name.Local == "feature" {
			if v, ok := strings.CutSuffix(c.Get("var"), notifySuffix); ok && v != "" && !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
		return true
	})
	slices.Sort(out)
	return out
}

// interest is what one set of capabilities is interested in: the nodes of
// its +notify features, sorted.
type interest []string

func (in interest) has(node string) bool {
	_, ok := slices.BinarySearch(in, node)
	return ok
}

// capsCache remembers what each capsKey is interested in, for at most size
// keys, evicting the least recently used.
type capsCache struct {
	mu    sync.Mutex
	size  int
	order *list.List // of capsKey, most recent first
	byKey map[capsKey]capsEntry
}

type capsEntry struct {
	nodes interest
	elem  *list.Element
}

func newCapsCache(size int) *capsCache {
	return &capsCache{size: size, order: list.New(), byKey: map[capsKey]capsEntry{}}
}

func (c *capsCache) get(k capsKey) (interest, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[k]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e.elem)
	return e.nodes, true
}

func (c *capsCache) put(k capsKey, nodes interest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byKey[k]; ok {
		c.order.MoveToFront(e.elem)
		c.byKey[k] = capsEntry{nodes, e.elem}
		return
	}
	for c.order.Len() >= c.size {
		last := c.order.Back()
		delete(c.byKey, last.Value.(capsKey))
		c.order.Remove(last)
	}
	c.byKey[k] = capsEntry{nodes, c.order.PushFront(k)}
}

func (c *capsCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byKey)
}

// Bounds of the disco#info queries in flight.
const (
	maxPending        = 1024
	maxWaiters        = 256
	pendingTimeout    = 30 * time.Second
	capsQueryIDPrefix = "pep-caps-"
)

// waiter is an entity whose capabilities a query will tell: the owner
// whose service tracks it, the entity's full JID, and the capabilities it
// had before, if any (what it was interested in then has been sent).
type waiter struct {
	owner, full jid.JID
	prev        capsKey
	hasPrev     bool
}

// query is one disco#info query in flight.
type query struct {
	id      string
	key     capsKey
	to      jid.JID // the entity asked; only its answer counts
	sent    time.Time
	waiters []waiter
}

// pendingQueries are the disco#info queries in flight, one per capsKey:
// entities that advertise the same capabilities while a query is out wait
// for its answer.
type pendingQueries struct {
	mu    sync.Mutex
	byID  map[string]*query
	byKey map[capsKey]*query
	now   func() time.Time
}

func newPendingQueries() *pendingQueries {
	return &pendingQueries{byID: map[string]*query{}, byKey: map[capsKey]*query{}, now: time.Now}
}

// add registers w as waiting for k's capabilities. It returns the query to
// send, or nil if one is already in flight (or too many are).
func (p *pendingQueries) add(k capsKey, w waiter) *query {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if q, ok := p.byKey[k]; ok {
		if now.Sub(q.sent) < pendingTimeout {
			if len(q.waiters) < maxWaiters && !slices.Contains(q.waiters, w) {
				q.waiters = append(q.waiters, w)
			}
			return nil
		}
		p.drop(q) // unanswered: ask again, this entity
	}
	if len(p.byID) >= maxPending {
		for _, q := range p.byID {
			if now.Sub(q.sent) >= pendingTimeout {
				p.drop(q)
			}
		}
		if len(p.byID) >= maxPending {
			return nil
		}
	}
	var b [9]byte
	_, _ = rand.Read(b[:])
	q := &query{id: capsQueryIDPrefix + hex.EncodeToString(b[:]), key: k, to: w.full, sent: now, waiters: []waiter{w}}
	p.byID[q.id] = q
	p.byKey[k] = q
	return q
}

func (p *pendingQueries) drop(q *query) {
	delete(p.byID, q.id)
	if p.byKey[q.key] == q {
		delete(p.byKey, q.key)
	}
}

// take returns and forgets the query with this id if from is the entity
// it asked.
func (p *pendingQueries) take(id string, from jid.JID) (*query, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	q, ok := p.byID[id]
	if !ok || q.to != from {
		return nil, false
	}
	p.drop(q)
	return q, true
}

func (p *pendingQueries) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.byID)
}

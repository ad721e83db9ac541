package archive

import (
	"context"
	"time"

	"sync"

	"kontor.im/kontor/core/module"
)

// item is a message waiting to be stored.
type item struct {
	m    module.ArchivedMessage
	id   [16]byte
	seq  uint64
	size int
}

// queue is the bounded FIFO between Append and the flusher. It is bounded
// in messages and in bytes; the batch the flusher is storing no longer
// counts, so at most maxItems+batch messages are held at once.
//
// It also tracks, per owner, the sequence number of the owner's latest
// queued message, so that Query can wait until what its owner appended
// before the query is stored (read your writes).
//
// Lock order: mu is a leaf.
type queue struct {
	mu       sync.Mutex
	items    []item // items[head:] are queued
	head     int
	bytes    int
	maxItems int
	maxBytes int
	closed   bool
	seq      uint64            // the last sequence number given
	flushed  uint64            // every item up to this one is stored (or given up)
	latest   map[string]uint64 // owner → seq of its latest item not yet flushed
	wake     chan struct{}     // capacity 1: tells the flusher there is work
	// want is how many queued items make push wake the flusher: 1 while
	// it waits for a first item, the batch size while it lingers to fill
	// a batch (a timer ends that wait, a barrier or close cuts it short),
	// and wantNone while it is storing (take looks at the queue before it
	// waits). Without it every Append would wake the flusher only for it
	// to see that the batch is not full and sleep again: at a low rate
	// those wake-ups (a goroutine switch, a timer reset, often a futex to
	// wake an idle thread) cost more than the rest of Append.
	want int
	// woken counts the flusher's wake-ups in take, for the benchmark.
	woken int
	// hurry tells the flusher not to wait for a batch to fill: someone
	// waits for what is queued to be stored (a barrier). The flusher
	// still lingers up to its linger after hurrySince, so that barriers
	// that come in quick succession (an ack request after each message)
	// share one transaction.
	hurry      bool
	hurrySince time.Time
	// ownerBy is when a query of an owner's archive that waits for the
	// owner's queued messages (waitOwner) needs the flusher to have taken
	// them: ownerLinger after the first such query since the last batch
	// (zero: no query waits). Shorter than the barriers' linger: a query
	// is someone looking at a screen, an ack only a client's bookkeeping.
	ownerBy     time.Time
	ownerLinger time.Duration
	// open is the channel that the barriers asked since the flusher last
	// took a batch share, and openTarget the last sequence number any of
	// them waits for; take seals it into waiters. One channel per batch
	// rather than one per barrier: with an ack request after each message,
	// thousands of barriers a second would otherwise each allocate a
	// channel, and the flusher close each one.
	open       chan struct{}
	openTarget uint64
	// waiters are the sealed barriers not yet reached, in target order.
	waiters  []barrierWaiter
	space    chan struct{} // closed (and replaced) when space frees up
	progress chan struct{} // closed (and replaced) when flushed advances
}

func newQueue(maxItems, maxBytes int) *queue {
	return &queue{maxItems: maxItems, maxBytes: maxBytes, latest: map[string]uint64{},
		wake: make(chan struct{}, 1), want: 1, space: make(chan struct{}), progress: make(chan struct{})}
}

// wantNone is queue.want while the flusher is not waiting.
const wantNone = int(^uint(0) >> 1)

// signal wakes the flusher, if it is not awake already.
func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *queue) lenLocked() int { return len(q.items) - q.head }

// push adds an item. When the queue is full it waits for space if block,
// else fails with ErrQueueFull.
func (q *queue) push(ctx context.Context, it item, block bool) error {
	q.mu.Lock()
	for {
		if q.closed {
			q.mu.Unlock()
			return ErrClosed
		}
		n := q.lenLocked()
		if n < q.maxItems && (n == 0 || q.bytes+it.size <= q.maxBytes) {
			break
		}
		if !block {
			q.mu.Unlock()
			return ErrQueueFull
		}
		space := q.space
		q.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		}
		q.mu.Lock()
	}
	q.seq++
	it.seq = q.seq
	q.items = append(q.items, it)
	q.bytes += it.size
	q.latest[it.m.Owner] = it.seq
	wake := q.lenLocked() >= q.want
	q.mu.Unlock()
	if wake {
		q.signal()
	}
	return nil
}

// take waits for items and returns up to max of them: as soon as max are
// queued, or delay after the first one arrived, or linger after a barrier
// asked to hurry (if that is sooner), or at once when the queue is
// closed. It returns nil when the queue is closed and empty.
func (q *queue) take(max int, delay, linger time.Duration) []item {
	q.mu.Lock()
	for q.lenLocked() == 0 {
		if q.closed {
			q.mu.Unlock()
			return nil
		}
		q.want = 1
		q.mu.Unlock()
		<-q.wake
		q.mu.Lock()
		q.woken++
	}
	q.want = min(max, q.maxItems)
	first := time.Now()
	var timer *time.Timer
	for q.lenLocked() < max && !q.closed {
		deadline := first.Add(delay)
		if q.hurry {
			if d := q.hurrySince.Add(linger); d.Before(deadline) {
				deadline = d
			}
		}
		if !q.ownerBy.IsZero() && q.ownerBy.Before(deadline) {
			deadline = q.ownerBy
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			break
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		q.mu.Unlock()
		select {
		case <-q.wake:
			q.mu.Lock()
			q.woken++
		case <-timer.C:
			q.mu.Lock()
		}
	}
	q.want = wantNone
	if timer != nil {
		timer.Stop()
	}
	if q.open != nil {
		// Barriers asked from now on get a channel of their own: this
		// one is reached once what was queued when they asked is stored,
		// which may take more than this batch (when more is queued
		// than a batch holds), never more than what is queued now.
		q.waiters = append(q.waiters, barrierWaiter{target: q.openTarget, ch: q.open})
		q.open = nil
	}
	n := min(max, q.lenLocked())
	if n == q.lenLocked() {
		// Everything queued is in this batch; a barrier set from now on
		// waits for later items.
		q.hurry = false
		q.ownerBy = time.Time{}
	}
	out := make([]item, n)
	copy(out, q.items[q.head:q.head+n])
	clear(q.items[q.head : q.head+n]) // drop references to the content
	q.head += n
	for _, it := range out {
		q.bytes -= it.size
	}
	if q.head > len(q.items)/2 {
		q.items = append(q.items[:0], q.items[q.head:]...)
		q.head = 0
	}
	close(q.space)
	q.space = make(chan struct{})
	q.mu.Unlock()
	return out
}

// done records that a batch taken by take is stored (or given up).
func (q *queue) done(batch []item) {
	if len(batch) == 0 {
		return
	}
	q.mu.Lock()
	q.flushed = batch[len(batch)-1].seq
	for _, it := range batch {
		if q.latest[it.m.Owner] <= q.flushed {
			delete(q.latest, it.m.Owner)
		}
	}
	close(q.progress)
	q.progress = make(chan struct{})
	i := 0
	for ; i < len(q.waiters) && q.waiters[i].target <= q.flushed; i++ {
		close(q.waiters[i].ch)
	}
	q.waiters = append(q.waiters[:0], q.waiters[i:]...)
	if q.open != nil && q.openTarget <= q.flushed {
		// Asked while this batch was being stored, with nothing queued
		// after it: no take will seal it.
		close(q.open)
		q.open = nil
	}
	q.mu.Unlock()
}

// barrierWaiter is a barrier: ch is closed once flushed reaches target.
type barrierWaiter struct {
	target uint64
	ch     chan struct{}
}

// barrier returns a channel closed once every item queued before the call
// is flushed, or nil when all of them are. It tells the flusher to store
// what is queued without waiting for a batch to fill. Barriers asked
// between two batches share one channel (see open), which is closed once
// the last of them is reached: an earlier one may thus be told a little
// later than its own items were stored, never earlier.
func (q *queue) barrier() <-chan struct{} {
	q.mu.Lock()
	if q.flushed >= q.seq {
		q.mu.Unlock()
		return nil
	}
	if q.open == nil {
		q.open = make(chan struct{})
	}
	q.openTarget = q.seq
	ch := q.open
	wake := q.hurryLocked()
	q.mu.Unlock()
	if wake {
		q.signal()
	}
	return ch
}

// hurryLocked tells the flusher not to wait for a batch to fill (it
// still lingers for the ack linger from now), and reports whether it must
// be woken to hear it; false when it was told already (its deadline does
// not change).
func (q *queue) hurryLocked() bool {
	if q.hurry {
		return false
	}
	q.hurry, q.hurrySince = true, time.Now()
	return true
}

// waitOwner waits until every item of owner queued before the call is
// flushed, or ctx ends. It tells the flusher to take what is queued
// within ownerLinger (a barrier's linger may be as long as the flush
// interval): a query does not wait out a whole flush interval.
func (q *queue) waitOwner(ctx context.Context, owner string) error {
	q.mu.Lock()
	target, ok := q.latest[owner]
	if ok && q.flushed < target {
		by := time.Now().Add(q.ownerLinger)
		if q.ownerBy.IsZero() || by.Before(q.ownerBy) {
			q.ownerBy = by
			q.mu.Unlock()
			q.signal()
			q.mu.Lock()
		}
	}
	for ok && q.flushed < target {
		ch := q.progress
		q.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		q.mu.Lock()
	}
	q.mu.Unlock()
	return nil
}

// close refuses new items and wakes everyone waiting; the flusher drains
// what is queued.
func (q *queue) close() {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.space)
		q.space = make(chan struct{})
	}
	q.mu.Unlock()
	q.signal()
}

// full reports whether the queue has no room for another item.
func (q *queue) full() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := q.lenLocked()
	return n >= q.maxItems || (n > 0 && q.bytes >= q.maxBytes)
}

// size returns the queued messages and bytes.
func (q *queue) size() (int, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.lenLocked(), q.bytes
}

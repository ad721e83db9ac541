package archive

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/storage"
)

// slowStore is a real store whose AppendArchive waits for a gate (a
// database that has stalled) or fails a number of times first (a database
// that is down); everything else goes straight to the database.
type slowStore struct {
	storage.ArchiveStore
	gate    chan struct{} // closed: appends go through
	entered chan struct{} // one token per AppendArchive call
	fail    atomic.Int32  // AppendArchive calls that fail first
}

func newSlowStore(st storage.ArchiveStore) *slowStore {
	return &slowStore{ArchiveStore: st, gate: make(chan struct{}), entered: make(chan struct{}, 1000)}
}

func (s *slowStore) AppendArchive(ctx context.Context, rows []storage.ArchiveRow, keep []storage.ArchiveKeepUntil) error {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	if s.fail.Add(-1) >= 0 {
		return errors.New("connection refused")
	}
	select {
	case <-s.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.ArchiveStore.AppendArchive(ctx, rows, keep)
}

func (s *slowStore) open() { close(s.gate) }

func waitEntered(t *testing.T, s *slowStore) {
	t.Helper()
	select {
	case <-s.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the flusher never reached the database")
	}
}

func numbered(owner string, n int) []module.ArchivedMessage {
	var out []module.ArchivedMessage
	for i := range n {
		out = append(out, msg(owner, bob, true, t0.Add(time.Duration(i)*time.Millisecond), fmt.Sprint("n", i)))
	}
	return out
}

func stored(t *testing.T, st storage.ArchiveStore, owner string) int {
	t.Helper()
	n, err := st.CountArchive(t.Context(), storage.ArchiveRowQuery{Owner: owner, MinID: idLowest, MaxID: idHighest}, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestQueueFull(t *testing.T) {
	tests := []struct {
		name   string
		policy FullPolicy
	}{
		{"refuse", Refuse},
		{"block", Block},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := openBackend(t, "sqlite")
			slow := newSlowStore(b.store())
			a := newArchive(t, slow, testRing(t), func(c *Config) { c.QueueSize, c.BatchSize, c.WhenFull = 3, 1, tt.policy })
			ms := numbered(alice, 6)
			mustAppend(t, a, ms[0])
			waitEntered(t, slow) // the flusher holds ms[0] and waits on the database
			mustAppend(t, a, ms[1:4]...)

			ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := a.Append(ctx, ms[4])
			switch tt.policy {
			case Refuse:
				if !errors.Is(err, ErrQueueFull) {
					t.Fatalf("Append to a full queue = %v, want ErrQueueFull", err)
				}
				if d := time.Since(start); d > 50*time.Millisecond {
					t.Errorf("refusing took %v", d)
				}
				if st := a.Stats(); st.Refused != 1 || st.Queued != 3 {
					t.Errorf("stats = %+v", st)
				}
			case Block:
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("Append to a full queue = %v, want the caller's deadline", err)
				}
				// A blocked Append goes through once there is room.
				done := make(chan error, 1)
				go func() { done <- a.Append(context.Background(), ms[5]) }()
				select {
				case err := <-done:
					t.Fatalf("Append returned %v while the queue is full", err)
				case <-time.After(50 * time.Millisecond):
				}
				slow.open()
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			}
			if tt.policy == Refuse {
				slow.open()
			}
			mustFlush(t, a)
			want := map[FullPolicy]int{Refuse: 4, Block: 5}[tt.policy]
			if n := stored(t, b.store(), alice); n != want {
				t.Errorf("%d stored, want %d", n, want)
			}
		})
	}
}

func TestQueueBytesBound(t *testing.T) {
	b := openBackend(t, "sqlite")
	slow := newSlowStore(b.store())
	a := newArchive(t, slow, testRing(t), func(c *Config) { c.QueueBytes, c.BatchSize, c.WhenFull = 1200, 1, Refuse })
	big := func(i int) module.ArchivedMessage {
		m := msg(alice, bob, true, t0.Add(time.Duration(i)*time.Millisecond), "")
		m.Stanza = make([]byte, 400)
		return m
	}
	mustAppend(t, a, big(0))
	waitEntered(t, slow)
	mustAppend(t, a, big(1), big(2)) // 2 × (400 + 160 of metadata and overhead) < 1200
	if err := a.Append(t.Context(), big(3)); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Append beyond the byte bound = %v, want ErrQueueFull", err)
	}
	slow.open()
	mustFlush(t, a)
	if n := stored(t, b.store(), alice); n != 3 {
		t.Errorf("%d stored, want 3", n)
	}
}

// TestStalledDatabaseDoesNotStallAppend: with the database stalled, Append
// still returns at once for as long as the queue has room.
func TestStalledDatabaseDoesNotStallAppend(t *testing.T) {
	b := openBackend(t, "sqlite")
	slow := newSlowStore(b.store())
	a := newArchive(t, slow, testRing(t), func(c *Config) { c.QueueSize = 5000 })
	ms := numbered(alice, 2000)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	start := time.Now()
	var worst time.Duration
	for _, m := range ms {
		s := time.Now()
		if err := a.Append(ctx, m); err != nil {
			t.Fatalf("Append while the database is stalled: %v", err)
		}
		worst = max(worst, time.Since(s))
	}
	t.Logf("2000 appends with the database stalled: %v in all, the slowest %v", time.Since(start), worst)
	if n := stored(t, b.store(), alice); n != 0 {
		t.Fatalf("%d stored while the database was stalled", n)
	}
	slow.open()
	mustFlush(t, a)
	if n := stored(t, b.store(), alice); n != 2000 {
		t.Errorf("%d stored, want 2000", n)
	}
}

func TestRetriesWhileDatabaseFails(t *testing.T) {
	b := openBackend(t, "sqlite")
	slow := newSlowStore(b.store())
	slow.open()
	slow.fail.Store(2)
	a := newArchive(t, slow, testRing(t), nil)
	mustAppend(t, a, numbered(alice, 3)...)
	mustFlush(t, a)
	if n := stored(t, b.store(), alice); n != 3 {
		t.Errorf("%d stored, want 3", n)
	}
	if st := a.Stats(); st.FlushFailures != 2 || st.Stored != 3 {
		t.Errorf("stats = %+v", st)
	}
}

func TestCloseStoresTheQueue(t *testing.T) {
	b := openBackend(t, "sqlite")
	a, err := New(Config{Store: b.store(), Keys: testRing(t), FlushInterval: time.Hour, BatchSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, a, numbered(alice, 25)...)
	if err := a.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := stored(t, b.store(), alice); n != 25 {
		t.Errorf("%d stored after Close, want 25", n)
	}
	if err := a.Append(t.Context(), numbered(bob, 1)[0]); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
	if err := a.Close(t.Context()); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func TestCloseDeadlineCountsLosses(t *testing.T) {
	b := openBackend(t, "sqlite")
	slow := newSlowStore(b.store())
	a, err := New(Config{Store: slow, Keys: testRing(t), FlushInterval: time.Millisecond, BatchSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, a, numbered(alice, 10)...)
	waitEntered(t, slow)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	err = a.Close(ctx)
	if err == nil {
		t.Fatal("Close with the database stalled succeeded")
	}
	if st := a.Stats(); st.Lost != 10 || st.Stored != 0 {
		t.Errorf("stats = %+v, want 10 lost", st)
	}
}

func TestReadYourWrites(t *testing.T) {
	forBackends(t, func(t *testing.T, b *backend) {
		a := newArchive(t, b.store(), testRing(t), func(c *Config) { c.FlushInterval = 300 * time.Millisecond })
		var wg sync.WaitGroup
		for i := range 5 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				owner := fmt.Sprintf("u%d@example.com", i)
				m := msg(owner, bob, true, time.Now(), "just sent")
				if err := a.Append(t.Context(), m); err != nil {
					t.Error(err)
					return
				}
				p, err := a.Query(t.Context(), module.ArchiveQuery{Owner: owner})
				if err != nil || len(p.Messages) != 1 || p.Messages[0].ID != m.ID {
					t.Errorf("%s: query right after Append: %v, %v", owner, ids(p.Messages), err)
				}
			}()
		}
		wg.Wait()
	})
}

// TestStoredBarrier: Stored is nil with nothing pending; otherwise its
// channel closes only once what was appended before it is in the database,
// and it does not wait for a batch to fill (the flush interval is an
// hour here).
func TestStoredBarrier(t *testing.T) {
	b := openBackend(t, "sqlite")
	slow := newSlowStore(b.store())
	a := newArchive(t, slow, testRing(t), func(c *Config) { c.FlushInterval = time.Hour; c.BatchSize = 1000 })
	if ch := a.Stored(); ch != nil {
		t.Fatal("Stored with nothing appended is not nil")
	}
	mustAppend(t, a, numbered(alice, 3)...)
	first := a.Stored()
	if first == nil {
		t.Fatal("Stored with 3 messages queued is nil")
	}
	waitEntered(t, slow) // the barrier made the flusher go without a full batch
	mustAppend(t, a, numbered(bob, 2)...)
	second := a.Stored()
	select {
	case <-first:
		t.Fatal("the barrier was reached while the database stalled")
	case <-time.After(50 * time.Millisecond):
	}
	slow.open()
	for i, ch := range []<-chan struct{}{first, second} {
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("barrier %d not reached after the database came back", i+1)
		}
	}
	if n := stored(t, b.store(), alice) + stored(t, b.store(), bob); n != 5 {
		t.Errorf("%d stored when the barriers were reached, want 5", n)
	}
	if ch := a.Stored(); ch != nil {
		t.Error("Stored after everything was stored is not nil")
	}
}

// TestAccepting: with Refuse, Accepting says ErrQueueFull exactly while
// the queue is full (the database stalled), so that the MAM module refuses
// a message before delivering it; with Block it never refuses.
func TestAccepting(t *testing.T) {
	b := openBackend(t, "sqlite")
	slow := newSlowStore(b.store())
	ring := testRing(t)
	a := newArchive(t, slow, ring, func(c *Config) { c.QueueSize = 100; c.BatchSize = 10; c.WhenFull = Refuse })
	if err := a.Accepting(); err != nil {
		t.Fatalf("Accepting on an empty queue: %v", err)
	}
	ms := numbered(alice, 200)
	var appended int
	for _, m := range ms {
		if err := a.Append(t.Context(), m); err != nil {
			if !errors.Is(err, ErrQueueFull) {
				t.Fatal(err)
			}
			break
		}
		appended++
	}
	if err := a.Accepting(); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Accepting with a full queue (%d appended) = %v, want ErrQueueFull", appended, err)
	}
	slow.open()
	mustFlush(t, a)
	if err := a.Accepting(); err != nil {
		t.Fatalf("Accepting after the queue drained: %v", err)
	}
	blocking := newArchive(t, b.store(), ring, func(c *Config) { c.QueueSize = 100 })
	if err := blocking.Accepting(); err != nil {
		t.Fatalf("Accepting with Block: %v", err)
	}
}

// TestAckLinger: barriers in quick succession (an ack request after each
// message) share one transaction when they come within AckLinger of the
// first; with no linger each barrier stores at once.
func TestAckLinger(t *testing.T) {
	tests := []struct {
		name    string
		linger  time.Duration
		batches int // AppendArchive calls for three messages with a barrier each
	}{
		{"linger", 500 * time.Millisecond, 1},
		{"none", -1, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := openBackend(t, "sqlite")
			slow := newSlowStore(b.store())
			slow.open()
			a := newArchive(t, slow, testRing(t), func(c *Config) {
				c.FlushInterval, c.BatchSize, c.AckLinger = time.Hour, 1000, tt.linger
			})
			var barriers []<-chan struct{}
			for i, m := range numbered(alice, 3) {
				mustAppend(t, a, m)
				ch := a.Stored()
				if ch == nil {
					t.Fatalf("message %d: Stored is nil with a message queued", i)
				}
				barriers = append(barriers, ch)
				if tt.linger < 0 {
					<-ch // stored at once: not after the flush interval of an hour
				}
			}
			for i, ch := range barriers {
				select {
				case <-ch:
				case <-time.After(10 * time.Second):
					t.Fatalf("barrier %d not reached", i+1)
				}
			}
			if got := len(slow.entered); got != tt.batches {
				t.Errorf("%d transactions for 3 messages, want %d", got, tt.batches)
			}
			if n := stored(t, b.store(), alice); n != 3 {
				t.Errorf("%d stored, want 3", n)
			}
		})
	}
}

// TestBarrierShared: the barriers asked before the flusher takes a batch
// share one channel, reached when the batch that holds the last of their
// items is stored; a barrier asked while a batch is being stored, with
// nothing queued after it, is reached when that batch is; one asked after
// a partial take waits for what was queued when it was asked.
func TestBarrierShared(t *testing.T) {
	q := newQueue(100, 1<<20)
	push := func(n int) {
		for range n {
			if err := q.push(context.Background(), item{m: module.ArchivedMessage{Owner: "alice@example.com"}, size: 1}, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	if q.barrier() != nil {
		t.Fatal("a barrier with nothing queued is not nil")
	}
	push(1)
	b1 := q.barrier()
	push(1)
	b2 := q.barrier()
	if b1 == nil || b1 != b2 {
		t.Fatal("barriers asked before one take do not share a channel")
	}
	batch := q.take(10, time.Hour, 0) // hurried: no wait
	if len(batch) != 2 {
		t.Fatalf("took %d, want 2", len(batch))
	}
	b3 := q.barrier() // while the batch is stored, nothing queued after it
	if b3 == nil || b3 == b1 {
		t.Fatal("a barrier after the take shares the sealed channel or is nil")
	}
	if closed(b1) || closed(b3) {
		t.Fatal("a barrier was reached before its batch was stored")
	}
	q.done(batch)
	if !closed(b1) || !closed(b3) {
		t.Fatal("barriers not reached once their batch was stored")
	}

	// A partial take: the barrier waits for everything queued when it was
	// asked, over two batches.
	push(5)
	b4 := q.barrier()
	first := q.take(3, time.Hour, 0)
	q.done(first)
	if closed(b4) {
		t.Fatal("barrier reached with two of its items not stored")
	}
	second := q.take(3, time.Hour, 0)
	q.done(second)
	if !closed(b4) {
		t.Fatal("barrier not reached once all its items were stored")
	}
	if q.barrier() != nil {
		t.Fatal("a barrier with everything stored is not nil")
	}
}

// TestBarrierStress: many appenders each asking for a barrier after every
// message, and a flusher taking small batches (often partial): every
// barrier is reached once its items are stored, none is left waiting.
func TestBarrierStress(t *testing.T) {
	q := newQueue(1000, 1<<20)
	stop := make(chan struct{})
	flusherDone := make(chan struct{})
	go func() {
		defer close(flusherDone)
		for {
			batch := q.take(7, time.Millisecond, 100*time.Microsecond)
			if batch == nil {
				return
			}
			q.done(batch)
		}
	}()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				if err := q.push(context.Background(), item{m: module.ArchivedMessage{Owner: fmt.Sprint("u", g)}, size: 1}, true); err != nil {
					t.Error(err)
					return
				}
				ch := q.barrier()
				if ch == nil || g%2 == 1 && i%50 != 49 {
					// Half the appenders go on without waiting (as the
					// session's reader does) and wait for a later one.
					continue
				}
				select {
				case <-ch:
				case <-time.After(10 * time.Second):
					t.Errorf("appender %d: barrier %d not reached", g, i)
					return
				case <-stop:
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	q.close()
	<-flusherDone
	if q.open != nil || len(q.waiters) != 0 {
		t.Fatalf("left waiting: open %v, %d sealed", q.open != nil, len(q.waiters))
	}
}

// TestLingers: an ack barrier lets the flusher gather for the barriers'
// linger, while a query waiting for its owner's messages (waitOwner) gets
// them taken within ownerLinger; neither waits for the flush interval.
func TestLingers(t *testing.T) {
	q := newQueue(100, 1<<20)
	q.ownerLinger = 20 * time.Millisecond
	push := func() {
		if err := q.push(context.Background(), item{m: module.ArchivedMessage{Owner: "alice@example.com"}, size: 1}, false); err != nil {
			t.Fatal(err)
		}
	}
	flusher := func(linger time.Duration) <-chan time.Duration {
		took := make(chan time.Duration, 1)
		go func() {
			start := time.Now()
			batch := q.take(10, time.Hour, linger)
			took <- time.Since(start)
			q.done(batch)
		}()
		return took
	}

	// A barrier: the batch is taken after the barriers' linger.
	push()
	took := flusher(300 * time.Millisecond)
	if b := q.barrier(); b == nil {
		t.Fatal("no barrier with a message queued")
	}
	if d := <-took; d < 250*time.Millisecond || d > 10*time.Second {
		t.Errorf("a barrier's batch was taken after %v, want about the 300ms linger", d)
	}

	// A query of the owner's, with the barriers' linger an hour: taken
	// within ownerLinger, and the query returns once it is stored.
	push()
	took = flusher(time.Hour)
	start := time.Now()
	if err := q.waitOwner(context.Background(), "alice@example.com"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the owner's query waited %v", d)
	}
	if d := <-took; d > 5*time.Second {
		t.Errorf("the owner's batch was taken after %v, want about ownerLinger", d)
	}
	// Nothing of bob's is queued: no wait.
	if err := q.waitOwner(context.Background(), "bob@example.com"); err != nil {
		t.Fatal(err)
	}
}

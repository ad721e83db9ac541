package session

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/stanza"
)

func entries(n int) []entry {
	out := make([]entry, n)
	for i := range out {
		out[i] = entry{s: &stanza.Stanza{ID: fmt.Sprint(i)}, at: int64(i + 1)}
	}
	return out
}

// TestAckWraps: acknowledgements are counted modulo 2^32.
func TestAckWraps(t *testing.T) {
	tests := []struct {
		name      string
		acked     uint32
		unacked   int
		h         uint32
		wantOK    bool
		wantSent  uint32
		wantLeft  int
		wantAcked uint32
	}{
		{"nothing sent, nothing acknowledged", 0, 0, 0, true, 0, 0, 0},
		{"some", 10, 5, 12, true, 15, 3, 12},
		{"all", 10, 5, 15, true, 15, 0, 15},
		{"the same h again", 10, 5, 10, true, 15, 5, 10},
		{"one too many", 10, 5, 16, false, 15, 5, 10},
		{"an older h (looks like almost 2^32)", 10, 5, 9, false, 15, 5, 10},
		{"across the wrap", math.MaxUint32 - 1, 5, 2, true, 3, 1, 2},
		{"to the wrap exactly", math.MaxUint32 - 1, 5, math.MaxUint32, true, 3, 4, math.MaxUint32},
		{"past what was sent across the wrap", math.MaxUint32 - 1, 5, 4, false, 3, 5, math.MaxUint32 - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &session{acked: tt.acked}
			for _, e := range entries(tt.unacked) {
				s.unacked.push(e)
			}
			sent, ok := s.ackLocked(tt.h)
			if ok != tt.wantOK || sent != tt.wantSent || s.unacked.len() != tt.wantLeft || s.acked != tt.wantAcked {
				t.Fatalf("ackLocked(%d) = %d, %v; left %d, acked %d; want %d, %v; left %d, acked %d",
					tt.h, sent, ok, s.unacked.len(), s.acked, tt.wantSent, tt.wantOK, tt.wantLeft, tt.wantAcked)
			}
			// What is left is the newest, in order.
			for i, e := range s.unacked.all() {
				if want := fmt.Sprint(tt.unacked - tt.wantLeft + i); e.s.ID != want {
					t.Fatalf("left[%d] = %s, want %s", i, e.s.ID, want)
				}
			}
		})
	}
}

func TestFIFO(t *testing.T) {
	tests := []struct {
		name string
		ops  []int // positive: push that many; negative: drop that many
		want []string
		cap0 bool // the buffer was released
	}{
		{"empty", nil, nil, true},
		{"push", []int{3}, []string{"0", "1", "2"}, false},
		{"drop some", []int{3, -2}, []string{"2"}, false},
		{"drop all releases a large buffer", []int{100, -100}, nil, true},
		{"drop all keeps a small buffer", []int{3, -3}, nil, false},
		{"reuse after compaction", []int{8, -6, 8}, []string{"6", "7", "8", "9", "10", "11", "12", "13", "14", "15"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f fifo
			next := 0
			for _, op := range tt.ops {
				if op > 0 {
					for range op {
						f.push(entry{s: &stanza.Stanza{ID: fmt.Sprint(next)}})
						next++
					}
				} else {
					f.drop(-op)
				}
			}
			var got []string
			for _, e := range f.all() {
				got = append(got, e.s.ID)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) || f.len() != len(tt.want) {
				t.Fatalf("got %v (len %d), want %v", got, f.len(), tt.want)
			}
			if (cap(f.buf) == 0) != tt.cap0 {
				t.Fatalf("cap %d, want released=%v", cap(f.buf), tt.cap0)
			}
			// Dropped slots hold no references.
			for _, e := range f.buf[:f.head] {
				if e.s != nil {
					t.Fatal("a dropped entry still holds its stanza")
				}
			}
		})
	}
}

func TestTombstones(t *testing.T) {
	alice := jid.MustParse("alice@example.com")
	tests := []struct {
		name   string
		add    int
		until  time.Duration
		lookup string
		want   bool
	}{
		{"known", 1, time.Minute, "id0", true},
		{"unknown", 1, time.Minute, "nope", false},
		{"expired", 1, -time.Second, "id0", false},
		{"the oldest go beyond the bound", maxTombstones + 1, time.Minute, "id0", false},
		{"the newest stay", maxTombstones + 1, time.Minute, fmt.Sprint("id", maxTombstones), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ts tombstones
			for i := range tt.add {
				ts.add(fmt.Sprint("id", i), tombstone{account: alice, h: uint32(i), until: time.Now().Add(tt.until)})
			}
			if _, ok := ts.get(tt.lookup); ok != tt.want {
				t.Fatalf("get(%s) = %v, want %v", tt.lookup, ok, tt.want)
			}
			if len(ts.byID) > maxTombstones || len(ts.order) != len(ts.byID) {
				t.Fatalf("%d tombstones, %d in order", len(ts.byID), len(ts.order))
			}
		})
	}
}

func TestGroup(t *testing.T) {
	tests := []struct {
		name    string
		members int
		idle    bool
	}{
		{"no members is idle", 0, true},
		{"a running member", 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var g group
			for range tt.members {
				g.add()
			}
			select {
			case <-g.wait():
				if !tt.idle {
					t.Fatal("idle with members running")
				}
			default:
				if tt.idle {
					t.Fatal("not idle without members")
				}
			}
			w := g.wait()
			for range tt.members {
				g.done()
			}
			select {
			case <-w:
			case <-time.After(time.Second):
				t.Fatal("not idle after every member is done")
			}
		})
	}
}

// TestHoldDeduplicates: the held list stays bounded when one sender keeps
// changing its presence.
func TestHoldDeduplicates(t *testing.T) {
	srv := &Server{cfg: Config{MaxHeldPresences: 4, QueueSize: 100}}
	s := &session{srv: srv, inactive: true}
	tests := []struct {
		name      string
		senders   int
		perSender int
		wantLive  int
		wantQueue int
	}{
		{"one sender many times", 1, 50, 1, 0},
		{"within the bound", 4, 10, 4, 0},
		{"over the bound", 5, 1, 0, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.held, s.heldIdx, s.heldLive, s.queue = nil, nil, 0, nil
			for k := range tt.perSender {
				for i := range tt.senders {
					p := stanza.NewPresence(jid.MustParse(fmt.Sprintf("bob@example.com/%d", i)), jid.MustParse("alice@example.com/r"), "")
					p.ID = fmt.Sprint(k)
					var a after
					if !s.holdLocked(entry{s: p}, &a) {
						s.flushHeldLocked(&a)
						s.enqueueLocked(entry{s: p}, &a)
					}
				}
			}
			if s.heldLive != tt.wantLive || len(s.queue) != tt.wantQueue {
				t.Fatalf("held %d, queued %d; want %d, %d", s.heldLive, len(s.queue), tt.wantLive, tt.wantQueue)
			}
			if len(s.held) >= 2*srv.cfg.MaxHeldPresences {
				t.Fatalf("held list not compacted: %d entries", len(s.held))
			}
			for _, e := range s.held {
				if e.s != nil && e.s.ID != fmt.Sprint(tt.perSender-1) {
					t.Fatalf("held an old presence %s", e.s.ID)
				}
			}
		})
	}
}

// recorder is a router.Conn that records what it is sent.
type recorder struct {
	mu  sync.Mutex
	got []*stanza.Stanza
}

func (r *recorder) Send(s *stanza.Stanza)     { r.mu.Lock(); r.got = append(r.got, s); r.mu.Unlock() }
func (r *recorder) Close(*stanza.StreamError) {}
func (r *recorder) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, s := range r.got {
		out = append(out, s.ID)
	}
	return out
}

// TestLateStanzasRerouted: what is routed to a session after it ended
// (a race with its unbinding) is routed again, from a tracked goroutine,
// like its unacknowledged stanzas; without stream management it is
// dropped, as before.
func TestLateStanzasRerouted(t *testing.T) {
	tests := []struct {
		name string
		sm   bool
		send []*stanza.Stanza
		want []string
	}{
		{"messages go to another resource", true, []*stanza.Stanza{
			stanza.NewMessage(jid.MustParse("bob@example.com/r"), jid.MustParse("alice@example.com/phone"), "chat", "m1"),
			stanza.NewMessage(jid.MustParse("bob@example.com/r"), jid.MustParse("alice@example.com/phone"), "chat", "m2"),
		}, []string{"m1", "m2"}},
		{"presence and headlines are dropped", true, []*stanza.Stanza{
			stanza.NewPresence(jid.MustParse("bob@example.com/r"), jid.MustParse("alice@example.com/phone"), ""),
			stanza.NewMessage(jid.MustParse("bob@example.com/r"), jid.MustParse("alice@example.com/phone"), "headline", "h1"),
			stanza.NewMessage(jid.MustParse("bob@example.com/r"), jid.MustParse("alice@example.com/phone"), "", "m3"),
		}, []string{"m3"}},
		{"without stream management nothing", false, []*stanza.Stanza{
			stanza.NewMessage(jid.MustParse("bob@example.com/r"), jid.MustParse("alice@example.com/phone"), "chat", "m1"),
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := router.New(router.Config{})
			h, err := r.AddHost(jid.MustParse("example.com"), nil)
			if err != nil {
				t.Fatal(err)
			}
			desk := &recorder{}
			res, err := r.Bind(context.Background(), jid.MustParse("alice@example.com/desk"), desk)
			if err != nil {
				t.Fatal(err)
			}
			h.SetPresence(context.Background(), res, stanza.NewPresence(jid.MustParse("alice@example.com/desk"), jid.JID{}, ""))
			srv := NewServer(Config{Router: r})
			s := &session{srv: srv, log: srv.log, account: jid.MustParse("alice@example.com"),
				full: jid.MustParse("alice@example.com/phone"), domain: "example.com", state: ended, sm: tt.sm}
			for _, st := range tt.send {
				s.Send(st)
			}
			select {
			case <-srv.tasks.wait():
			case <-time.After(5 * time.Second):
				t.Fatal("the rerouting goroutine did not end")
			}
			if got := desk.ids(); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("desk got %v, want %v", got, tt.want)
			}
			for _, st := range desk.got {
				if st.To != jid.MustParse("alice@example.com") || st.El.Child(stanza.NSDelay, "delay") == nil {
					t.Fatalf("rerouted %s: want it to the bare JID with a delay stamp", st.El)
				}
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.lateRunning || len(s.late) != 0 {
				t.Fatal("late stanzas left behind")
			}
		})
	}
}

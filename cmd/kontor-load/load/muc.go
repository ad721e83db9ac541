package load

// The muc scenario: group chat fan-out. Occupants users log in and join
// one room (XEP-0045, no history); then the first of them posts Messages
// groupchat messages, one at a time: each is sent when the one before
// reached every occupant (or Timeout passed). For each message the time
// from sending to its first and to its last delivery is measured across
// all occupants (the sender's own copy counts: the room echoes it), and
// the server's and the database's CPU per room message.

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// MUCConfig configures the muc scenario.
type MUCConfig struct {
	Occupants int    `json:"occupants"` // accounts user0..user(N-1) join the room
	Messages  int    `json:"messages"`  // groupchat messages the first occupant posts
	Room      string `json:"room"`      // the room's bare JID; default loadroom@conference.DOMAIN
}

// MUCResult is the muc scenario's part of a Result.
type MUCResult struct {
	Occupants  int     `json:"occupants"`
	Deliveries int64   `json:"deliveries"`   // groupchat messages received, echoes included
	JoinS      float64 `json:"join_seconds"` // all occupants logged in and joined (not measured for CPU)
	// Fan-out per room message: time from sending to the first and to
	// the last occupant's delivery (ms), p50 and p99 over the messages.
	FirstP50ms float64 `json:"first_p50_ms"`
	FirstP99ms float64 `json:"first_p99_ms"`
	LastP50ms  float64 `json:"last_p50_ms"`
	LastP99ms  float64 `json:"last_p99_ms"`
	// Server+database CPU per room message (ms), and per delivery (µs).
	CPUPerMessageMS  float64 `json:"cpu_per_message_ms"`
	CPUPerDeliveryUS float64 `json:"cpu_per_delivery_us"`
}

// MUCFlags adds the muc scenario's flags to fs.
func MUCFlags(fs *flag.FlagSet, cfg *Config) {
	fs.IntVar(&cfg.MUC.Occupants, "occupants", 500, "muc: occupants of the room (accounts PREFIX0...)")
	fs.IntVar(&cfg.MUC.Messages, "messages", 50, "muc: room messages posted, one at a time")
	fs.StringVar(&cfg.MUC.Room, "room", "", "muc: the room's bare JID (default loadroom@conference.DOMAIN)")
}

// fanout tracks one room message's deliveries.
type fanout struct {
	sent        time.Time
	first, last time.Duration
	n           int
	done        chan struct{} // closed at the last expected delivery
}

type mucRun struct {
	cfg       *Config
	room      string
	occupants int

	mu        sync.Mutex
	messages  []*fanout
	delivered atomic.Int64
	refused   atomic.Int64
	// configured is closed when the room's creator has its answer to
	// the instant-room request (XEP-0045 §10.1.2: a new room is locked
	// until then).
	configured chan struct{}
}

// mucBody carries the message's number.
func mucBody(seq int) string { return "muc-load " + strconv.Itoa(seq) }

func mucSeq(body string) (int, bool) {
	s, ok := strings.CutPrefix(body, "muc-load ")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// deliver records one occupant's copy of message seq.
func (m *mucRun) deliver(seq int, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if seq < 0 || seq >= len(m.messages) || m.messages[seq] == nil {
		return
	}
	f := m.messages[seq]
	d := at.Sub(f.sent)
	if f.n == 0 || d < f.first {
		f.first = d
	}
	if d > f.last {
		f.last = d
	}
	f.n++
	m.delivered.Add(1)
	if f.n == m.occupants {
		close(f.done)
	}
}

// read drains an occupant's stream; joined is closed when the join ended
// (the room's subject arrived).
func (m *mucRun) read(c *conn, joined chan<- struct{}) {
	didJoin := false
	for {
		el, err := c.next()
		if err != nil {
			return
		}
		now := time.Now()
		switch {
		case el.local == "message" && el.attr("type") == "error":
			m.refused.Add(1)
		case el.local == "message" && el.attr("type") == "groupchat":
			if body := el.child("", "body"); body != nil {
				if seq, ok := mucSeq(body.text.String()); ok {
					m.deliver(seq, now)
				}
			} else if !didJoin && el.child("", "subject") != nil {
				didJoin = true
				close(joined)
			}
		case el.local == "presence" && el.attr("type") == "error" && !didJoin:
			didJoin = true
			m.refused.Add(1)
			close(joined)
		case el.local == "iq" && el.attr("id") == "instant-room" && el.attr("type") != "get" && el.attr("type") != "set":
			if el.attr("type") == "error" {
				m.refused.Add(1)
			}
			close(m.configured)
		case el.local == "iq" && el.attr("type") == "get" && el.child("urn:xmpp:ping", "ping") != nil:
			c.send("<iq type='result' id='" + xmlEscape(el.attr("id")) + "' to='" + xmlEscape(el.attr("from")) + "'/>")
		}
	}
}

func runMUC(ctx context.Context, cfg *Config) (*Result, error) {
	mc := cfg.MUC
	if mc.Occupants <= 0 {
		mc.Occupants = 500
	}
	if mc.Messages <= 0 {
		mc.Messages = 50
	}
	if mc.Room == "" {
		mc.Room = "loadroom@conference." + cfg.Domain
	}
	cfg.MUC = mc
	r := &Result{Scenario: cfg.Scenario, Server: cfg.Server, Config: cfg, MUC: &MUCResult{Occupants: mc.Occupants}}
	run := &mucRun{cfg: cfg, room: mc.Room, occupants: mc.Occupants, messages: make([]*fanout, mc.Messages),
		configured: make(chan struct{})}

	// Log in and join, Concurrency at a time; the first occupant first,
	// so that it creates the room and the others only join.
	t0 := time.Now()
	conns := make([]*conn, mc.Occupants)
	var e errs
	join := func(i int) {
		c, err := login(ctx, cfg, cfg.user(i))
		if err != nil {
			e.add(err)
			return
		}
		conns[i] = c
		joined := make(chan struct{})
		go run.read(c, joined)
		err = c.send("<presence to='" + xmlEscape(mc.Room) + "/o" + strconv.Itoa(i) + "'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>")
		if err != nil {
			e.add(err)
			return
		}
		select {
		case <-joined:
		case <-time.After(cfg.Timeout):
			e.add(fmt.Errorf("load: %s did not join %s within %v", cfg.user(i), mc.Room, cfg.Timeout))
		case <-ctx.Done():
		}
	}
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.close()
			}
		}
	}()
	join(0)
	if e.first == nil {
		// The creator accepts the default configuration (an instant
		// room), which unlocks the room for the others. A room that
		// existed already answers the same.
		if err := conns[0].send("<iq type='set' id='instant-room' to='" + xmlEscape(mc.Room) + "'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>"); err != nil {
			e.add(err)
		}
		select {
		case <-run.configured:
		case <-time.After(cfg.Timeout):
			e.add(fmt.Errorf("load: %s got no answer to the instant room request", cfg.user(0)))
		case <-ctx.Done():
		}
	}
	if e.first == nil {
		parallel(ctx, mc.Occupants-1, cfg.Concurrency, func(i int) { join(i + 1) })
	}
	r.MUC.JoinS = time.Since(t0).Seconds()
	if e.first != nil || run.refused.Load() > 0 {
		e.fill(r)
		return r, fmt.Errorf("load: joining the room: %d failed (%d refused): %s", r.Errors, run.refused.Load(), r.FirstError)
	}
	// Let the joins' presence broadcasts drain before measuring.
	time.Sleep(cfg.Settle)

	sender := conns[0]
	var first, last latencies
	m := startMeter(ctx, cfg, r)
	for seq := 0; seq < mc.Messages && ctx.Err() == nil; seq++ {
		f := &fanout{done: make(chan struct{})}
		run.mu.Lock()
		run.messages[seq] = f
		f.sent = time.Now()
		run.mu.Unlock()
		if err := sender.send("<message type='groupchat' to='" + xmlEscape(mc.Room) + "' id='g" + strconv.Itoa(seq) + "'><body>" + mucBody(seq) + "</body></message>"); err != nil {
			e.add(err)
			break
		}
		select {
		case <-f.done:
			r.Ops++
		case <-time.After(cfg.Timeout):
			run.mu.Lock()
			n := f.n
			run.mu.Unlock()
			e.add(fmt.Errorf("load: room message %d reached %d of %d occupants within %v", seq, n, mc.Occupants, cfg.Timeout))
		case <-ctx.Done():
		}
		run.mu.Lock()
		if f.n > 0 {
			first.add(f.first)
			last.add(f.last)
		}
		run.mu.Unlock()
	}
	m.stop(ctx, r)
	r.MUC.Deliveries = run.delivered.Load()
	r.Sent = int64(mc.Messages)
	r.Lost = int64(mc.Messages) - r.Ops
	if r.Ops > 0 {
		r.MUC.CPUPerMessageMS = r.CPUPerOpMS
	}
	if r.MUC.Deliveries > 0 {
		r.MUC.CPUPerDeliveryUS = (r.ServerCPUms + r.DBCPUms) * 1000 / float64(r.MUC.Deliveries)
	}
	var fr, lr Result
	first.fill(&fr)
	last.fill(&lr)
	r.MUC.FirstP50ms, r.MUC.FirstP99ms = fr.P50ms, fr.P99ms
	r.MUC.LastP50ms, r.MUC.LastP99ms = lr.P50ms, lr.P99ms
	r.P50ms, r.P99ms, r.P999ms = lr.P50ms, lr.P99ms, lr.P999ms
	if n := run.refused.Load(); n > 0 {
		e.add(fmt.Errorf("load: %d stanzas refused by the server", n))
	}
	e.fill(r)
	return r, nil
}

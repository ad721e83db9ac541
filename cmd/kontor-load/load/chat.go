package load

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// pair is a sender and a receiver session.
type pair struct {
	a, b     *conn
	sent     atomic.Int64
	received atomic.Int64
	refused  atomic.Int64
	window   chan struct{}
	done     chan struct{} // closed when b's reader ends
}

// loginPairs logs in 2*n users (user 2k sends to user 2k+1).
func loginPairs(ctx context.Context, cfg *Config, n int) ([]*pair, error) {
	pairs := make([]*pair, n)
	var e errs
	parallel(ctx, n, cfg.Concurrency, func(k int) {
		a, err := login(ctx, cfg, cfg.user(2*k))
		if err != nil {
			e.add(err)
			return
		}
		b, err := login(ctx, cfg, cfg.user(2*k+1))
		if err == nil {
			err = b.ready() // available before a's first message
		}
		if err != nil {
			a.close()
			if b != nil {
				b.close()
			}
			e.add(err)
			return
		}
		if cfg.SM {
			for _, c := range []*conn{a, b} {
				if err := c.enableSM(); err != nil {
					a.close()
					b.close()
					e.add(err)
					return
				}
			}
		}
		pairs[k] = &pair{a: a, b: b, window: make(chan struct{}, cfg.Window), done: make(chan struct{})}
	})
	if e.first != nil || ctx.Err() != nil {
		for _, p := range pairs {
			if p != nil {
				p.a.close()
				p.b.close()
			}
		}
		if e.first == nil {
			e.first = ctx.Err()
		}
		return nil, fmt.Errorf("load: logging in pairs: %w", e.first)
	}
	return pairs, nil
}

func closePairs(pairs []*pair) {
	for _, p := range pairs {
		p.a.close()
		p.b.close()
	}
}

// bareJID strips the resource.
func bareJID(j string) string {
	if i := strings.IndexByte(j, '/'); i >= 0 {
		return j[:i]
	}
	return j
}

// chatBody carries the send time, so that the receiver measures latency
// without shared state.
func chatBody(seq int64) string {
	return "load " + strconv.FormatInt(time.Now().UnixNano(), 10) + " " + strconv.FormatInt(seq, 10)
}

func sentAt(body string) (time.Time, bool) {
	f := strings.Fields(body)
	if len(f) != 3 || f[0] != "load" {
		return time.Time{}, false
	}
	ns, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, ns), true
}

// receive reads b's stream: every load message is counted, its latency
// recorded and a window slot given back.
func (p *pair) receive(lat *latencies) {
	defer close(p.done)
	for {
		el, err := p.b.next()
		if err != nil {
			return
		}
		if el.local != "message" || el.attr("type") == "error" {
			continue
		}
		body := el.child("", "body")
		if body == nil || el.child("urn:xmpp:delay", "delay") != nil {
			// Delayed: offline storage's, from an earlier run.
			continue
		}
		if t, ok := sentAt(body.text.String()); ok {
			if lat != nil {
				lat.add(time.Since(t))
			}
			p.received.Add(1)
			select {
			case <-p.window:
			default:
			}
		}
	}
}

// senderReader drains a's stream and counts refusals (error messages).
func (p *pair) senderReader() {
	for {
		el, err := p.a.next()
		if err != nil {
			return
		}
		if el.local == "message" && el.attr("type") == "error" {
			p.refused.Add(1)
			select {
			case <-p.window:
			default:
			}
		}
	}
}

// sendLoop sends from a to b until deadline or limit messages; interval 0
// means as fast as the window allows.
func (p *pair) sendLoop(ctx context.Context, deadline time.Time, interval time.Duration, limit int64) error {
	to := bareJID(p.b.jid)
	start := time.Now()
	for n := int64(0); n < limit; n++ {
		now := time.Now()
		if now.After(deadline) || ctx.Err() != nil {
			return nil
		}
		if interval > 0 {
			if wait := start.Add(time.Duration(n) * interval).Sub(now); wait > 0 {
				time.Sleep(wait)
			}
		}
		select {
		case p.window <- struct{}{}:
		case <-ctx.Done():
			return nil
		case <-time.After(time.Until(deadline)):
			return nil
		}
		err := p.a.sendCounted("<message type='chat' to='" + to + "' id='m" + strconv.FormatInt(n, 36) + "'><body>" + chatBody(n) + "</body></message>")
		if err != nil {
			return err
		}
		p.sent.Add(1)
	}
	return nil
}

// drain waits until every pair received what was sent (or was refused),
// at most timeout.
func drain(pairs []*pair, timeout time.Duration) {
	end := time.Now().Add(timeout)
	for time.Now().Before(end) {
		pending := false
		for _, p := range pairs {
			if p.received.Load()+p.refused.Load() < p.sent.Load() {
				pending = true
				break
			}
		}
		if !pending {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// drainAcks waits until the server acknowledged every message the senders
// sent with stream management on, at most timeout.
func drainAcks(pairs []*pair, timeout time.Duration) {
	end := time.Now().Add(timeout)
	for time.Now().Before(end) {
		pending := false
		for _, p := range pairs {
			if p.a.acked.Load() < p.a.smSent.Load() {
				pending = true
				break
			}
		}
		if !pending {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func runChat(ctx context.Context, cfg *Config) (*Result, error) {
	r := &Result{Scenario: cfg.Scenario, Server: cfg.Server, Config: cfg}
	pairs, err := loginPairs(ctx, cfg, cfg.Pairs)
	if err != nil {
		return nil, err
	}
	defer closePairs(pairs)
	var lat latencies
	for _, p := range pairs {
		go p.receive(&lat)
		go p.senderReader()
	}
	// Let the logins' own traffic (presence, archive writes) finish first.
	time.Sleep(cfg.Settle)
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(len(pairs)) / cfg.Rate)
	}
	const limit = 10_000_000 // per pair: a bound far above any rate times duration here
	var e errs
	m := startMeter(ctx, cfg, r)
	deadline := time.Now().Add(cfg.Duration)
	var wg sync.WaitGroup
	for _, p := range pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.sendLoop(ctx, deadline, interval, limit); err != nil {
				e.add(err)
			}
		}()
	}
	wg.Wait()
	drain(pairs, cfg.Timeout)
	if cfg.SM {
		drainAcks(pairs, cfg.Timeout)
	}
	for _, p := range pairs {
		if cfg.SM {
			r.Unacked += max(0, p.a.smSent.Load()-p.a.acked.Load())
		}
		r.Sent += p.sent.Load()
		r.Ops += p.received.Load()
		if n := p.refused.Load(); n > 0 {
			e.add(fmt.Errorf("load: %d messages refused by the server", n))
		}
	}
	r.Lost = r.Sent - r.Ops
	m.stop(ctx, r)
	r.CPUPer1000MS = r.CPUPerOpMS * 1000
	r.CPUPerOpMS = 0
	lat.fill(r)
	e.fill(r)
	return r, nil
}

func runMAM(ctx context.Context, cfg *Config) (*Result, error) {
	r := &Result{Scenario: cfg.Scenario, Server: cfg.Server, Config: cfg}
	pairs, err := loginPairs(ctx, cfg, 1)
	if err != nil {
		return nil, err
	}
	defer closePairs(pairs)
	p := pairs[0]
	go p.receive(nil)
	// Seed the archive (unmeasured), as fast as the window allows.
	if err := p.sendLoop(ctx, time.Now().Add(cfg.Timeout), 0, int64(cfg.Seed)); err != nil {
		return nil, err
	}
	drain(pairs, cfg.Timeout)
	if p.received.Load() < int64(cfg.Seed) {
		return nil, fmt.Errorf("load: mam seeding: %d of %d messages arrived", p.received.Load(), cfg.Seed)
	}
	time.Sleep(cfg.Settle) // batched archive writes land
	var e errs
	var lat latencies
	var messages int64
	m := startMeter(ctx, cfg, r)
	deadline := time.Now().Add(cfg.Duration)
	after := ""
	const maxPages = 1_000_000
	for n := 0; n < maxPages && time.Now().Before(deadline) && ctx.Err() == nil; n++ {
		t0 := time.Now()
		got, last, complete, err := mamPage(p.a, n, cfg.Page, after)
		if err != nil {
			e.add(err)
			if errors.Is(err, errStream) {
				break
			}
			after = ""
			continue
		}
		lat.add(time.Since(t0))
		r.Ops++
		messages += int64(got)
		after = last
		if complete || got < cfg.Page || last == "" {
			after = "" // from the start again
		}
	}
	m.stop(ctx, r)
	if r.Ops > 0 {
		r.MessagesPerPage = float64(messages) / float64(r.Ops)
	}
	lat.fill(r)
	e.fill(r)
	return r, nil
}

var errStream = errors.New("load: stream ended")

// mamPage fetches one page of a's archive (XEP-0313, RSM) on a connection
// whose stream nobody else reads.
func mamPage(c *conn, n, max int, after string) (got int, last string, complete bool, err error) {
	id := "q" + strconv.Itoa(n)
	set := "<set xmlns='http://jabber.org/protocol/rsm'><max>" + strconv.Itoa(max) + "</max>"
	if after != "" {
		set += "<after>" + xmlEscape(after) + "</after>"
	}
	set += "</set>"
	if err := c.send("<iq type='set' id='" + id + "'><query xmlns='urn:xmpp:mam:2' queryid='" + id + "'>" + set + "</query></iq>"); err != nil {
		return 0, "", false, errors.Join(errStream, err)
	}
	for {
		el, err := c.next()
		if err != nil {
			return 0, "", false, errors.Join(errStream, err)
		}
		switch el.local {
		case "message":
			if res := el.child("urn:xmpp:mam:2", "result"); res != nil && res.attr("queryid") == id {
				got++
			}
		case "iq":
			if el.attr("id") != id {
				continue
			}
			if el.attr("type") != "result" {
				return got, "", false, fmt.Errorf("load: mam query: %s", describeError(el))
			}
			fin := el.child("urn:xmpp:mam:2", "fin")
			if fin == nil {
				return got, "", false, errors.New("load: mam result without fin")
			}
			if l := fin.child("http://jabber.org/protocol/rsm", "set").child("", "last"); l != nil {
				last = l.text.String()
			}
			return got, last, fin.attr("complete") == "true", nil
		}
	}
}

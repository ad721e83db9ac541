package main

// The durability promise (SECURITY.md, "Durability and availability"),
// tested on the real binary: a message the server acknowledged is
// delivered, in the recipient's offline store, or in the archive, even if
// the server is killed with SIGKILL right after; and nothing is delivered
// twice.

import (
	"context"
	"encoding/xml"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/history"
	"mellium.im/xmpp/mux"
	"mellium.im/xmpp/ping"
	"mellium.im/xmpp/stanza"
)

// recipient is a mellium session that counts the chat messages it
// receives by body (duplicates included) and collects archive results.
type recipient struct {
	s *testClient

	mu      sync.Mutex
	bodies  map[string]int
	results []mamResult
}

func dialRecipient(t *testing.T, ts *testServer, user, password string) *recipient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	s, conn, err := ts.connect(ctx, user, password)
	if err != nil {
		t.Fatalf("login as %s: %v", bare(user), err)
	}
	c := &recipient{bodies: map[string]int{}}
	results := history.NewHandler(mux.MessageHandlerFunc(func(msg stanza.Message, r xmlstream.TokenReadEncoder) error {
		var res mamResult
		if err := xml.NewTokenDecoder(r).Decode(&res); err != nil {
			return err
		}
		c.mu.Lock()
		c.results = append(c.results, res)
		c.mu.Unlock()
		return nil
	}))
	m := mux.New(stanza.NSClient,
		ping.Handle(),
		history.Handle(results),
		mux.Message(stanza.ChatMessage, xml.Name{Local: "body"}, mux.MessageHandlerFunc(func(msg stanza.Message, r xmlstream.TokenReadEncoder) error {
			var m struct {
				Body string `xml:"jabber:client body"`
			}
			if err := xml.NewTokenDecoder(r).Decode(&m); err != nil {
				return err
			}
			c.mu.Lock()
			c.bodies[m.Body]++
			c.mu.Unlock()
			return nil
		})),
	)
	c.s = &testClient{Session: s, name: user, conn: conn, done: make(chan struct{})}
	go func() {
		defer close(c.s.done)
		c.s.err = s.Serve(m)
		conn.Close()
	}()
	t.Cleanup(c.s.close)
	// Available: chat messages to the bare JID reach it, and offline
	// messages are delivered.
	if err := c.s.Send(context.Background(), tokens(t, "<presence/>")); err != nil {
		t.Fatalf("%s: presence: %v", user, err)
	}
	return c
}

// received returns a copy of the body counts.
func (c *recipient) received() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.bodies))
	for k, v := range c.bodies {
		out[k] = v
	}
	return out
}

// archive pages through the account's whole archive with mellium's history
// package and returns how often each body is in it.
func (c *recipient) archive(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	after := ""
	for page := 0; ; page++ {
		if page > 1000 {
			t.Fatalf("%s: archive paging does not end", c.s.name)
		}
		c.mu.Lock()
		c.results = nil
		c.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		q := history.Query{ID: fmt.Sprintf("q%d", page), Limit: 250, PageID: after}
		res, err := history.Fetch(ctx, q, c.s.LocalAddr().Bare(), c.s.Session)
		cancel()
		if err != nil {
			t.Fatalf("%s: history.Fetch: %v", c.s.name, err)
		}
		c.mu.Lock()
		got := c.results
		c.mu.Unlock()
		for _, r := range got {
			out[r.Forwarded.Message.Body]++
		}
		if res.Complete || len(got) == 0 {
			return out
		}
		after = got[len(got)-1].ID
	}
}

// TestE2EKillDurability kills the server with SIGKILL several times while
// four clients with stream management send messages to a recipient that is
// online and one that is offline, restarts it, and counts: every message
// the server acknowledged (<a h/>) is in the sender's and the recipient's
// archive, every one to the offline recipient is delivered from offline
// storage at its next login, and no message is delivered or archived twice,
// also not after one sender per round lost its connection, resumed its
// session (XEP-0198) and sent again what the server had not handled.
func TestE2EKillDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills the server binary several times")
	}
	p := newProcServer(t, "  queue_size: 20000\n  max_connections_per_ip: 0\n", `modules:
  offline:
    max_per_user: 20000
`)
	p.start()
	const password = "durable-password"
	senders := []string{"s0", "s1", "s2", "s3"}
	online, away := "online", "away"
	p.addUsers(t, password, append(senders, online, away)...)

	const rounds = 3
	acked := map[string]string{} // id → recipient
	var sentTotal, unackedTotal, resent int
	live := map[string]int{} // body → times the online recipient got it live
	for round := range rounds {
		if round > 0 {
			p.start()
		}
		rcpt := dialRecipient(t, p.ts, online, password)
		var ss []*smSender
		for i, name := range senders {
			ss = append(ss, dialSMSender(t, p.ts, name, password, fmt.Sprintf("r%d-%d", round, i)))
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		next := make([]int, len(ss)) // each sender's next message number
		load := func(k int, stop chan struct{}, wg *sync.WaitGroup) {
			s := ss[k]
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ; ; next[k]++ {
					select {
					case <-stop:
						return
					default:
					}
					to := bare(online)
					if next[k]%2 == 1 {
						to = bare(away)
					}
					if err := s.send(to, fmt.Sprintf("%s-%d-%d", s.name, round, next[k]), 5); err != nil {
						return // the server is gone
					}
					time.Sleep(3 * time.Millisecond)
				}
			}()
		}
		stop0 := make(chan struct{})
		var wg0 sync.WaitGroup
		load(0, stop0, &wg0)
		for k := 1; k < len(ss); k++ {
			load(k, stop, &wg)
		}
		// s0 loses its connection under load and resumes: what it sends
		// again must not arrive twice.
		time.Sleep(300 * time.Millisecond)
		close(stop0)
		wg0.Wait()
		resent += ss[0].cutAndResume(t, p.ts, password, func() {
			for range 20 {
				to := bare(online)
				if next[0]%2 == 1 {
					to = bare(away)
				}
				_ = ss[0].send(to, fmt.Sprintf("%s-%d-%d", ss[0].name, round, next[0]), 1000)
				next[0]++
			}
		})
		load(0, stop, &wg)
		// Under load for a while, different each round, then SIGKILL.
		time.Sleep(time.Duration(400+250*round) * time.Millisecond)
		p.kill()
		close(stop)
		wg.Wait()
		for _, s := range ss {
			a, u, errs := s.result(t)
			if len(errs) > 0 {
				t.Errorf("%s got error stanzas: %v", s.name, errs[:min(3, len(errs))])
			}
			for _, id := range a {
				var n int
				fmt.Sscanf(id[strings.LastIndexByte(id, '-')+1:], "%d", &n)
				if n%2 == 1 {
					acked[id] = away
				} else {
					acked[id] = online
				}
			}
			sentTotal += len(a) + len(u)
			unackedTotal += len(u)
		}
		for b, n := range rcpt.received() {
			live[b] += n
		}
		t.Logf("round %d: %d sent, %d acknowledged so far", round, sentTotal, len(acked))
	}
	if len(acked) < 100 {
		t.Fatalf("only %d messages were acknowledged before the kills: the load did not get going", len(acked))
	}

	// The last start: the offline recipient comes online; every archive is
	// read back.
	p.start()
	rOnline := dialRecipient(t, p.ts, online, password)
	rAway := dialRecipient(t, p.ts, away, password)
	var wantAway int
	for _, to := range acked {
		if to == away {
			wantAway++
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := 0
		for id, n := range rAway.received() {
			if acked[id] == away && n > 0 {
				got++
			}
		}
		if got == wantAway || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Anything else in flight arrives within this.
	time.Sleep(300 * time.Millisecond)
	offline := rAway.received()
	archives := map[string]map[string]int{}
	for _, c := range []*recipient{rOnline, rAway} {
		archives[c.s.name] = c.archive(t)
	}
	for _, name := range senders {
		c := dialRecipient(t, p.ts, name, password)
		archives[name] = c.archive(t)
	}

	var problems []string
	report := func(format string, args ...any) {
		if len(problems) < 20 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	lostArchive, lostOffline := 0, 0
	ids := make([]string, 0, len(acked))
	for id := range acked {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		to := acked[id]
		sender := id[:2]
		if archives[to][id] != 1 {
			lostArchive++
			report("acknowledged %s is %d times in %s's archive, want once", id, archives[to][id], to)
		}
		if archives[sender][id] != 1 {
			lostArchive++
			report("acknowledged %s is %d times in %s's archive, want once", id, archives[sender][id], sender)
		}
		if to == away && offline[id] != 1 {
			lostOffline++
			report("acknowledged %s to the offline recipient was delivered %d times at login, want once", id, offline[id])
		}
	}
	// Unacknowledged messages may or may not have made it; none may be
	// there twice.
	for owner, a := range archives {
		for id, n := range a {
			if n > 1 {
				report("%s is %d times in %s's archive", id, n, owner)
			}
		}
	}
	for id, n := range offline {
		if n > 1 {
			report("%s was delivered %d times from offline storage", id, n)
		}
	}
	for id, n := range live {
		if n > 1 {
			report("%s was delivered %d times live", id, n)
		}
	}
	t.Logf("%d rounds with SIGKILL and a resumption each: %d messages sent, %d acknowledged (%d to the offline recipient), "+
		"%d not acknowledged, %d sent again after a resumption; %d delivered live before a kill; "+
		"acknowledged and missing: %d archive copies, %d offline deliveries",
		rounds, sentTotal, len(acked), wantAway, unackedTotal, resent, len(live), lostArchive, lostOffline)
	if len(problems) > 0 {
		t.Errorf("the durability promise is broken:\n  %s", joinLines(problems))
	}

	// A graceful stop ends it.
	if d, err := p.terminate(15 * time.Second); err != nil {
		t.Errorf("kontor exited with %v after SIGTERM (%v)", err, d)
	}
}

func joinLines(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += "\n  "
		}
		out += x
	}
	return out
}

package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"kontor.im/kontor/core/storage/pgtest"
)

// TestE2EDatabaseOutage stops PostgreSQL for 30 seconds while alice (with
// stream management) chats with bob: every message reaches bob during the
// outage, alice's acknowledgements wait for the database (they promise
// storage), and once it is back the server reconnects, acknowledges
// everything and has every message in bob's archive, once.
func TestE2EDatabaseOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("stops PostgreSQL for 30 seconds")
	}
	cluster := pgtest.NewCluster(t)
	p := newProcServerOn(t, cluster.DSN(t), "", "")
	p.start()
	const password = "outage-password"
	p.addUsers(t, password, "alice", "bob")
	bob := dialRecipient(t, p.ts, "bob", password)
	alice := dialSMSender(t, p.ts, "alice", password, "phone")
	// bob's presence is handled before alice sends: a message to himself
	// comes back after it (RFC 6120 §10.1).
	if err := bob.s.Send(t.Context(), tokens(t, fmt.Sprintf("<message to='%s' type='chat' id='ready'><body>ready</body></message>", bob.s.JID()))); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(e2eWait); bob.received()["ready"] == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("bob's message to himself did not come back")
		}
	}

	sendAndSee := func(id string) {
		t.Helper()
		if err := alice.send("bob@localhost", id, 1); err != nil {
			t.Fatalf("send %s: %v", id, err)
		}
		deadline := time.Now().Add(e2eWait)
		for bob.received()[id] == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s did not reach bob within %v", id, e2eWait)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	acked := func() uint32 {
		alice.mu.Lock()
		defer alice.mu.Unlock()
		return alice.acked
	}
	for i := range 5 {
		sendAndSee(fmt.Sprintf("before-%d", i))
	}
	waitAcked := func(n int, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for int(acked()) < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d messages acknowledged after %v", acked(), n, within)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitAcked(5, e2eWait)

	cluster.Stop(t)
	start := time.Now()
	sent := 5
	for i := 0; time.Since(start) < 30*time.Second; i++ {
		sendAndSee(fmt.Sprintf("during-%d", i))
		sent++
		time.Sleep(200 * time.Millisecond)
	}
	during := acked()
	cluster.Start(t)
	t.Logf("%d messages sent and delivered during a 30 s outage; %d acknowledged before it ended", sent-5, int(during)-5)
	if int(during) > 5 {
		t.Errorf("%d messages acknowledged while the database was down: their storage cannot be promised", int(during)-5)
	}
	waitAcked(sent, 45*time.Second)
	sendAndSee("after")
	sent++

	got := bob.archive(t)
	missing := 0
	for id := range bob.received() {
		if id != "ready" && got[id] != 1 {
			missing++
			if missing < 5 {
				t.Errorf("%s is %d times in bob's archive, want once", id, got[id])
			}
		}
	}
	if missing > 0 || len(got) != sent+1 {
		t.Errorf("bob's archive holds %d messages (%d wrong), %d were sent and one to himself", len(got), missing, sent)
	}
}

// TestE2EDatabaseOutageBudget: with the archive's memory budget small
// (queue_size 100) and when_full refuse, messages sent while PostgreSQL is
// down are delivered and queued until the budget is spent; after that the
// sender gets resource-constraint errors and the message is not delivered
// (refused, not dropped). Once the database is back, every delivered
// message is in the recipient's archive.
func TestE2EDatabaseOutageBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("stops PostgreSQL")
	}
	cluster := pgtest.NewCluster(t)
	p := newProcServerOn(t, cluster.DSN(t), "", "  queue_size: 100\n  when_full: refuse\n")
	p.start()
	const password = "budget-password"
	p.addUsers(t, password, "alice", "bob")
	bob := dialRecipient(t, p.ts, "bob", password)
	alice := dialSMSender(t, p.ts, "alice", password, "phone")
	if err := bob.s.Send(t.Context(), tokens(t, fmt.Sprintf("<message to='%s' type='chat' id='ready'><body>ready</body></message>", bob.s.JID()))); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(e2eWait); bob.received()["ready"] == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("bob's message to himself did not come back")
		}
	}
	// bob's own message must be stored before the outage.
	time.Sleep(500 * time.Millisecond)

	cluster.Stop(t)
	const n = 120
	for i := range n {
		if err := alice.send("bob@localhost", fmt.Sprintf("m%d", i), 10); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Everything is answered (delivered or refused) while the database
	// is still down.
	var refused map[string]bool
	deadline := time.Now().Add(10 * time.Second)
	for {
		refused = map[string]bool{}
		alice.mu.Lock()
		for _, e := range alice.errors {
			if strings.Contains(e, "resource-constraint") {
				if i := strings.Index(e, "id='"); i >= 0 {
					refused[e[i+4:i+4+strings.Index(e[i+4:], "'")]] = true
				}
			}
		}
		errs := len(alice.errors)
		alice.mu.Unlock()
		delivered := 0
		for id := range bob.received() {
			if strings.HasPrefix(id, "m") {
				delivered++
			}
		}
		if delivered+len(refused) == n {
			break
		}
		if time.Now().After(deadline) {
			alice.mu.Lock()
			first := alice.errors[0]
			alice.mu.Unlock()
			t.Fatalf("during the outage: %d delivered, %d refused, %d errors in all (first: %s), of %d", delivered, len(refused), errs, first, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	got := bob.received()
	for id := range refused {
		if got[id] > 0 {
			t.Errorf("%s was refused and delivered", id)
		}
	}
	if len(refused) == 0 || len(refused) == n {
		t.Fatalf("%d of %d messages refused: the budget of 100 archive entries (2 per message) should refuse some, not all", len(refused), n)
	}
	t.Logf("database down: %d messages delivered and queued, %d refused with resource-constraint", n-len(refused), len(refused))

	cluster.Start(t)
	deadline = time.Now().Add(30 * time.Second)
	for {
		alice.mu.Lock()
		a := alice.acked
		alice.mu.Unlock()
		if int(a) == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged 30 s after the database came back", a, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	archived := bob.archive(t)
	for id := range got {
		if archived[id] != 1 {
			t.Errorf("delivered %s is %d times in bob's archive, want once", id, archived[id])
		}
	}
	if len(archived) != len(got) {
		t.Errorf("bob's archive holds %d messages, he received %d", len(archived), len(got))
	}
}

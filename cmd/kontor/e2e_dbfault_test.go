package main

import (
	"fmt"
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

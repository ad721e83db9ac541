package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/history"
)

// TestE2ERestrictedAfterErasure: alice's archive is under a legal hold when
// she is erased (kontor gdpr erase, while the server runs); her JID is then
// given to a new account. Through XEP-0313 with mellium's client, the new
// alice sees only her own messages, and gets none of the old offline
// messages; bob's own archive is his and unchanged. The DPO's view of the
// restricted rows is tested in archive/gdpr (TestRestrictedAfterRecreate).
func TestE2ERestrictedAfterErasure(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		ts := startTestServer(t, backend, enableArchive(t))
		e := &auditEnv{backend: backend, dir: ts.dir, cfgFile: ts.cfgFile}
		allowGDPROperator(t, e)
		ts.addUser(t, "alice", "alice-password")
		ts.addUser(t, "bob", "bob-password")
		alice := ts.dialArchive(t, "alice", "alice-password")
		bob := ts.dialArchive(t, "bob", "bob-password")
		for i := 1; i <= 3; i++ {
			id := fmt.Sprintf("old%d", i)
			bob.s.send(t, fmt.Sprintf("<message type='chat' id='%s' to='alice@%s'><body>OLD-SECRET %d</body></message>", id, e2eDomain, i))
			alice.waitBody(t, id)
		}
		if rs, _ := alice.fetch(t, history.Query{}); len(rs) != 3 {
			t.Fatalf("alice's archive before: %d messages", len(rs))
		}
		alice.s.close()
		// An offline message to the old alice, then the erasure.
		bob.s.send(t, fmt.Sprintf("<message type='chat' id='off1' to='alice@%s'><body>OLD-OFFLINE</body></message>", e2eDomain))
		// Bob's stanzas are handled in order: once his note to himself
		// is back, the offline message is stored.
		bob.s.send(t, fmt.Sprintf("<message type='chat' id='note1' to='%s'><body>note</body></message>", bob.s.LocalAddr()))
		bob.waitBody(t, "note1")
		subject := "alice@" + e2eDomain
		e.must(t, "", "hold", "add", subject, "--case", "LIT-7", "--reason", "lawsuit")
		out := e.must(t, "", "gdpr", "erase", subject, "--reason", "Art. 17")
		if !strings.Contains(out, "held") {
			t.Errorf("erase output:\n%s", out)
		}

		// A new person gets the address.
		ts.addUser(t, "alice", "new-alice-password")
		alice2 := ts.dialArchive(t, "alice", "new-alice-password")
		bob.s.send(t, fmt.Sprintf("<message type='chat' id='new1' to='alice@%s'><body>welcome</body></message>", e2eDomain))
		alice2.waitBody(t, "new1")
		rs, res := alice2.fetch(t, history.Query{})
		if got := bodiesOf(rs); !slices.Equal(got, []string{"welcome"}) || !res.Complete {
			t.Errorf("the new alice's MAM: %q (complete %v), want only her own message", got, res.Complete)
		}
		rs, _ = alice2.fetch(t, history.Query{Start: time.Now().Add(-time.Hour), With: bob.s.LocalAddr().Bare()})
		if got := bodiesOf(rs); !slices.Equal(got, []string{"welcome"}) {
			t.Errorf("the new alice's MAM with bob: %q", got)
		}
		alice2.mu.Lock()
		_, gotOffline := alice2.bodies["off1"]
		alice2.mu.Unlock()
		if gotOffline {
			t.Error("the new alice received the old alice's offline message")
		}
		// Bob's archive is his own: his copies stay.
		rs, _ = bob.fetch(t, history.Query{With: alice2.s.LocalAddr().Bare()})
		if got := bodiesOf(rs); !slices.Equal(got, []string{"OLD-SECRET 1", "OLD-SECRET 2", "OLD-SECRET 3", "OLD-OFFLINE", "welcome"}) {
			t.Errorf("bob's archive with alice: %q", got)
		}
	})
}

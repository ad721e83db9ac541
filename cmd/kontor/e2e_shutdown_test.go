package main

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// TestE2EGracefulShutdown: SIGTERM to the real binary stops accepting
// connections, ends every client stream with system-shutdown, stores what
// the archive still held in memory (its flush interval is a minute here, so
// nothing was stored before), and exits with status 0 within
// shutdown_timeout.
func TestE2EGracefulShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server binary")
	}
	const deadline = 5 * time.Second
	p := newProcServer(t, "", fmt.Sprintf("  flush_interval: 1m\nshutdown_timeout: %s\n", deadline))
	p.start()
	const password = "shutdown-password"
	p.addUsers(t, password, "alice", "bob")
	bob := dialRecipient(t, p.ts, "bob", password)
	alice := p.ts.dial(t, "alice", password)
	t.Cleanup(func() { // before the clients close: where the server is stuck
		if t.Failed() {
			p.dumpGoroutines()
		}
	})
	const n = 50
	for i := range n {
		alice.send(t, fmt.Sprintf("<message to='bob@localhost' id='m%d' type='chat'><body>m%d</body></message>", i, i))
	}
	alice.barrier(t) // all 50 handled: queued for the archive, not stored
	raw := p.ts.rawDial(t, "starttls")
	raw.login("alice", password, "raw", "")

	took, err := p.terminate(deadline + 5*time.Second)
	if err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	if took > deadline+time.Second {
		t.Errorf("the stop took %v, shutdown_timeout is %v", took, deadline)
	}
	if cond, _ := raw.streamError(); cond != "system-shutdown" {
		t.Errorf("a connected client got stream error %q, want system-shutdown", cond)
	}
	if err := bob.s.ended(t, e2eWait); streamCondition(err) != "system-shutdown" {
		t.Errorf("mellium client: Serve returned %v, want a system-shutdown stream error", err)
	}
	if _, err := net.DialTimeout("tcp", p.addrs["starttls"], time.Second); err == nil {
		t.Error("the server still accepts connections after it exited")
	}
	if !strings.Contains(p.logs.String(), "shutting down") {
		t.Error("no shutdown in the log")
	}

	// Everything alice sent is in bob's archive after a restart.
	p.start()
	bob = dialRecipient(t, p.ts, "bob", password)
	got := bob.archive(t)
	for i := range n {
		if id := fmt.Sprintf("m%d", i); got[id] != 1 {
			t.Errorf("%s is %d times in bob's archive after the graceful stop, want once", id, got[id])
		}
	}
	if _, err := p.terminate(deadline + 5*time.Second); err != nil {
		t.Errorf("second stop: %v", err)
	}
}

package session_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"kontor.im/kontor/core/session"
)

// barrierStub is Config.Stored of a test: an archive whose queue the test
// flushes by hand.
type barrierStub struct {
	mu      sync.Mutex
	pending chan struct{} // nil: nothing pending
}

func (b *barrierStub) stored() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending == nil {
		return nil
	}
	return b.pending
}

func (b *barrierStub) queue() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending == nil {
		b.pending = make(chan struct{})
	}
}

func (b *barrierStub) flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending != nil {
		close(b.pending)
		b.pending = nil
	}
}

// TestSMAckWaitsForStorage: <a/> is answered only once what was queued for
// storage is stored, the reader meanwhile goes on handling stanzas, and
// answers keep their order; <resumed/> waits too.
func TestSMAckWaitsForStorage(t *testing.T) {
	var b barrierStub
	e := startSM(t, nil, func(c *session.Config) { c.Stored = b.stored })
	alice := dialX(t, e, "alice")
	alice.login("alice", "phone")
	id := alice.enable("resume='true'").attr("id")

	// Nothing pending: answered at once.
	alice.send("<r xmlns='urn:xmpp:sm:3'/>")
	if n := alice.must(); !n.is(nsSM, "a") || n.attr("h") != "0" {
		t.Fatalf("answer with nothing pending: %s", n)
	}

	b.queue()
	alice.send(message("alice@example.com/phone", "m1", "one") + "<r xmlns='urn:xmpp:sm:3'/>")
	// The reader goes on: the message comes back, but no <a/>.
	if n := alice.must(); !n.is("jabber:client", "message") || n.attr("id") != "m1" {
		t.Fatalf("want the message m1 back, got %s", n)
	}
	alice.send(message("alice@example.com/phone", "m2", "two") + "<r xmlns='urn:xmpp:sm:3'/>")
	if n := alice.must(); !n.is("jabber:client", "message") || n.attr("id") != "m2" {
		t.Fatalf("want the message m2 back, got %s", n)
	}
	for {
		n, err := alice.next(100 * time.Millisecond)
		if err != nil {
			break // nothing more: good
		}
		if n.is(nsSM, "a") {
			t.Fatalf("acknowledged %s before the storage barrier was reached", n)
		}
	}
	b.flush()
	var hs []string
	for len(hs) < 2 {
		n := alice.must()
		if n.is(nsSM, "a") {
			hs = append(hs, n.attr("h"))
		}
	}
	if hs[0] != "1" || hs[1] != "2" {
		t.Fatalf("answers after the barrier: h=%v, want [1 2]", hs)
	}

	// Resumption gives out h too: it waits for the barrier.
	alice.send(message("alice@example.com/phone", "m3", "three"))
	alice.must()
	b.queue()
	alice.cut()
	again := dialX(t, e, "alice")
	again.auth("alice")
	again.send(fmt.Sprintf("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='0'/>", id))
	if n, err := again.next(200 * time.Millisecond); err == nil {
		t.Fatalf("answered <resume/> before the storage barrier was reached: %s", n)
	}
	b.flush()
	if n := again.must(); !n.is(nsSM, "resumed") || n.attr("h") != "3" {
		t.Fatalf("resume: %s, want <resumed h='3'/>", n)
	}
}

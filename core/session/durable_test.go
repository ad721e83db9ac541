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
// storage is stored, the reader meanwhile goes on handling stanzas, the
// requests one barrier releases get one answer with the latest h;
// <resumed/> waits too.
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
	// The two requests that the barrier released are answered by one
	// <a h='2'/> (h is cumulative: it acknowledges what both asked about).
	if n := alice.must(); !n.is(nsSM, "a") || n.attr("h") != "2" {
		t.Fatalf("answer after the barrier: %s, want <a h='2'/>", n)
	}
	if n, err := alice.next(100 * time.Millisecond); err == nil {
		t.Fatalf("a second answer for requests already answered: %s", n)
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

// TestSMAckReleaseOverQueueSize: more requests than the outbound queue
// holds, all waiting for one barrier, are answered once it is reached
// (one <a/> with the latest h) without closing the session for a full
// queue; a later barrier's answer follows.
func TestSMAckReleaseOverQueueSize(t *testing.T) {
	var b barrierStub
	e := startSM(t, nil, func(c *session.Config) { c.Stored = b.stored; c.QueueSize = 8; c.AckEvery = 4 })
	alice := dialX(t, e, "alice")
	alice.login("alice", "phone")
	alice.enable("")
	b.queue()
	for range 50 {
		alice.send("<r xmlns='urn:xmpp:sm:3'/>")
	}
	alice.send("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
	if n := alice.must(); !n.is("jabber:client", "iq") || n.attr("id") != "p1" {
		t.Fatalf("want the ping's answer first, got %s", n)
	}
	b.flush()
	// h counts the stanzas handled when the last request came: none.
	if n := alice.must(); !n.is(nsSM, "a") || n.attr("h") != "0" {
		t.Fatalf("answer after the barrier: %s, want <a h='0'/>", n)
	}
	b.queue()
	alice.send("<iq type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq><r xmlns='urn:xmpp:sm:3'/>")
	if n := alice.must(); !n.is("jabber:client", "iq") || n.attr("id") != "p2" {
		t.Fatalf("want the second ping's answer, got %s", n)
	}
	b.flush()
	if n := alice.must(); !n.is(nsSM, "a") || n.attr("h") != "2" {
		t.Fatalf("answer for the second barrier: %s, want <a h='2'/>", n)
	}
}

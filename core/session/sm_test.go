package session_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"kontor.im/kontor/core/account"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/session"
)

// mods are the modules of tests where offline storage matters.
var mods = []string{"roster", "presence", "offline", "carbons"}

// sync makes a round trip to the server: whatever the client sent before
// has been handled once it returns (RFC 6120 §10.1).
func (c *xc) sync() {
	c.t.Helper()
	id := fmt.Sprintf("sync-%d", time.Now().UnixNano())
	c.send("<iq type='get' id='" + id + "' to='example.com'><nope xmlns='urn:example:sync'/></iq>")
	for {
		n := c.must()
		if n.is("jabber:client", "iq") && n.attr("id") == id {
			return
		}
		if n.is(nsSM, "r") {
			c.ack()
		}
	}
}

func TestSMFeatures(t *testing.T) {
	e := startSM(t, nil, nil)
	tests := []struct {
		name  string
		authd bool
		want  bool
	}{
		{"not before authentication", false, false},
		{"after authentication", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialX(t, e, "alice")
			var f node
			if tt.authd {
				f = c.auth("alice")
			} else {
				f = c.open()
			}
			_, sm := f.child(nsSM, "sm")
			_, csi := f.child(nsCSI, "csi")
			if sm != tt.want || csi != tt.want {
				t.Fatalf("features %s: sm %v csi %v, want %v", f, sm, csi, tt.want)
			}
		})
	}
}

func TestSMEnable(t *testing.T) {
	e := startSM(t, nil, nil)
	tests := []struct {
		name  string
		steps func(c *xc) node // returns the answer to check
		want  string           // element local name
		check func(t *testing.T, n node)
	}{
		{"before binding", func(c *xc) node {
			c.send("<enable xmlns='urn:xmpp:sm:3'/>")
			n := c.must()
			c.bind("r") // binding still works
			return n
		}, "failed", func(t *testing.T, n node) {
			if _, ok := n.child(nsStanzas, "unexpected-request"); !ok || n.attr("h") != "" {
				t.Errorf("want unexpected-request without h, got %s", n)
			}
		}},
		{"without resumption", func(c *xc) node {
			c.bind("r")
			return c.enable("")
		}, "enabled", func(t *testing.T, n node) {
			if n.attr("id") != "" || n.attr("resume") != "" {
				t.Errorf("a session that is not resumable got %s", n)
			}
		}},
		{"with resumption", func(c *xc) node {
			c.bind("r")
			return c.enable("resume='true'")
		}, "enabled", func(t *testing.T, n node) {
			if len(n.attr("id")) < 20 || n.attr("resume") != "true" || n.attr("max") != "300" {
				t.Errorf("want an id, resume='true' and max='300', got %s", n)
			}
		}},
		{"resume='1' asking for less time", func(c *xc) node {
			c.bind("r")
			return c.enable("resume='1' max='60'")
		}, "enabled", func(t *testing.T, n node) {
			if n.attr("resume") != "true" || n.attr("max") != "60" {
				t.Errorf("want max='60', got %s", n)
			}
		}},
		{"asking for more time than the server allows", func(c *xc) node {
			c.bind("r")
			return c.enable("resume='true' max='100000'")
		}, "enabled", func(t *testing.T, n node) {
			if n.attr("max") != "300" {
				t.Errorf("want max='300', got %s", n)
			}
		}},
		{"twice", func(c *xc) node {
			c.bind("r")
			c.enable("")
			c.send("<enable xmlns='urn:xmpp:sm:3'/>")
			return c.must()
		}, "failed", func(t *testing.T, n node) {
			if _, ok := n.child(nsStanzas, "unexpected-request"); !ok {
				t.Errorf("want unexpected-request, got %s", n)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialX(t, e, "alice")
			c.auth("alice")
			n := tt.steps(c)
			if !n.is(nsSM, tt.want) {
				t.Fatalf("want <%s/>, got %s", tt.want, n)
			}
			tt.check(t, n)
		})
	}
}

// TestSMCountsHandledStanzas: <r/> is answered with the number of stanzas
// handled since <enable/>; nonzas do not count.
func TestSMCountsHandledStanzas(t *testing.T) {
	e := startSM(t, nil, nil)
	ping := "<iq type='get' id='p' to='example.com'><ping xmlns='urn:xmpp:ping'/></iq>"
	tests := []struct {
		name  string
		sends []string
		want  string
	}{
		{"nothing yet", nil, "0"},
		{"three stanzas", []string{"<presence/>", ping, "<presence/>"}, "3"},
		{"nonzas are not counted", []string{"<presence/>", "<inactive xmlns='urn:xmpp:csi:0'/>", "<active xmlns='urn:xmpp:csi:0'/>", "<a xmlns='urn:xmpp:sm:3' h='0'/>", "<presence/>"}, "2"},
		{"a stanza with a bad address still counts", []string{"<message to='@@'/>"}, "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialX(t, e, "alice")
			c.login("alice", "r")
			c.enable("")
			c.send(strings.Join(tt.sends, "") + "<r xmlns='urn:xmpp:sm:3'/>")
			for {
				n := c.must()
				if n.is(nsSM, "a") {
					if got := n.attr("h"); got != tt.want {
						t.Fatalf("h = %s, want %s", got, tt.want)
					}
					return
				}
			}
		})
	}
}

// TestSMServerRequestsAcks: the server sends <r/> after AckEvery stanzas
// (one request at a time, at most one per AckInterval unless a quarter of
// QueueSize is unacknowledged), and when stanzas stay unacknowledged for
// AckIdle.
func TestSMServerRequestsAcks(t *testing.T) {
	tests := []struct {
		name     string
		every    int
		idle     time.Duration
		interval time.Duration
		queue    int
		run      func(t *testing.T, alice, bob *xc)
	}{
		{"after every N stanzas, one request at a time", 2, time.Hour, -1, 0, func(t *testing.T, alice, bob *xc) {
			// One message at a time, so that each is its own write.
			var got []string
			deliver := func(id string) {
				bob.send(message("alice@example.com/r", id, "hi"))
				got = append(got, alice.must().XMLName.Local)
			}
			deliver("m0")
			deliver("m1")
			got = append(got, alice.must().XMLName.Local)
			deliver("m2")
			deliver("m3")
			// No second <r/> while the first is unanswered.
			if want := []string{"message", "message", "r", "message", "message"}; !slices.Equal(got, want) {
				t.Fatalf("got %v, want %v", got, want)
			}
			alice.nothing(300 * time.Millisecond)
			alice.ackSync()
			got = got[:0]
			deliver("m4")
			deliver("m5")
			got = append(got, alice.must().XMLName.Local)
			if want := []string{"message", "message", "r"}; !slices.Equal(got, want) {
				t.Fatalf("after the answer: got %v, want %v", got, want)
			}
		}},
		{"at most one request per interval", 2, time.Hour, 600 * time.Millisecond, 0, func(t *testing.T, alice, bob *xc) {
			var got []string
			deliver := func(id string) {
				bob.send(message("alice@example.com/r", id, "hi"))
				got = append(got, alice.must().XMLName.Local)
			}
			deliver("m0")
			deliver("m1")
			got = append(got, alice.must().XMLName.Local)
			asked := time.Now()
			if want := []string{"message", "message", "r"}; !slices.Equal(got, want) {
				t.Fatalf("got %v, want %v", got, want)
			}
			alice.ackSync()
			// Answered, and AckEvery unacknowledged again within the
			// interval: no request yet.
			deliver("m2")
			deliver("m3")
			deliver("m4")
			if time.Since(asked) < 500*time.Millisecond {
				alice.nothing(100 * time.Millisecond)
			}
			// Once the interval has passed, the next write asks.
			time.Sleep(time.Until(asked.Add(650 * time.Millisecond)))
			got = got[:0]
			deliver("m5")
			got = append(got, alice.must().XMLName.Local)
			if want := []string{"message", "r"}; !slices.Equal(got, want) {
				t.Fatalf("after the interval: got %v, want %v", got, want)
			}
		}},
		{"within the interval once a quarter of the queue is unacknowledged", 2, time.Hour, time.Hour, 16, func(t *testing.T, alice, bob *xc) {
			var got []string
			deliver := func(id string) {
				bob.send(message("alice@example.com/r", id, "hi"))
				got = append(got, alice.must().XMLName.Local)
			}
			deliver("m0")
			deliver("m1")
			got = append(got, alice.must().XMLName.Local)
			alice.ackSync()
			deliver("m2")
			deliver("m3")
			deliver("m4")
			// 3 unacknowledged: under AckEvery's interval, no request.
			alice.nothing(200 * time.Millisecond)
			deliver("m5")
			// 4 of QueueSize 16: asked at once.
			got = append(got, alice.must().XMLName.Local)
			if want := []string{"message", "message", "r", "message", "message", "message", "message", "r"}; !slices.Equal(got, want) {
				t.Fatalf("got %v, want %v", got, want)
			}
		}},
		{"when idle", 100, 200 * time.Millisecond, 0, 0, func(t *testing.T, alice, bob *xc) {
			bob.send(message("alice@example.com/r", "m0", "hi"))
			start := time.Now()
			if n := alice.must(); !isMessage(n) {
				t.Fatalf("want the message, got %s", n)
			}
			if n := alice.must(); !n.is(nsSM, "r") {
				t.Fatalf("want <r/>, got %s", n)
			}
			if d := time.Since(start); d < 150*time.Millisecond {
				t.Fatalf("<r/> after %v, want about 200ms", d)
			}
			alice.ack()
			// Nothing unacknowledged: no further request.
			alice.nothing(500 * time.Millisecond)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startSM(t, nil, func(c *session.Config) {
				c.AckEvery, c.AckIdle, c.AckInterval, c.QueueSize = tt.every, tt.idle, tt.interval, tt.queue
			})
			alice := dialX(t, e, "alice")
			alice.login("alice", "r")
			alice.enable("")
			bob := dialX(t, e, "bob")
			bob.login("bob", "r")
			tt.run(t, alice, bob)
		})
	}
}

// TestSMBadAcknowledgement: an <a/> that acknowledges more than was sent
// ends the stream with undefined-condition and handled-count-too-high.
func TestSMBadAcknowledgement(t *testing.T) {
	e := startSM(t, nil, func(c *session.Config) { c.AckEvery = 100 })
	tests := []struct {
		name     string
		h        string
		wantErr  bool
		wantText string
	}{
		{"what was received", "2", false, ""},
		{"less than was received", "1", false, ""},
		{"more than was sent", "3", true, "You acknowledged 3 stanzas, but I only sent you 2 so far."},
		{"far too many (wraps)", "4294967295", true, "You acknowledged 4294967295 stanzas"},
		{"not a number", "two", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			alice := dialX(t, e, "alice")
			alice.login("alice", "r"+tt.name)
			alice.enable("resume='true'")
			bob := dialX(t, e, "bob")
			bob.login("bob", "r")
			bob.send(message(alice.jid, "m1", "one") + message(alice.jid, "m2", "two"))
			alice.collect(2, false, isMessage)
			alice.send("<a xmlns='urn:xmpp:sm:3' h='" + tt.h + "'/>")
			if !tt.wantErr {
				alice.send("<r xmlns='urn:xmpp:sm:3'/>")
				if n := alice.must(); !n.is(nsSM, "a") {
					t.Fatalf("the stream should go on; got %s", n)
				}
				return
			}
			se := alice.ended(wait)
			if _, ok := se.child(nsStreams, "undefined-condition"); !ok {
				t.Fatalf("want undefined-condition, got %s", se)
			}
			text, _ := se.child(nsStreams, "text")
			if !strings.Contains(text.Text, tt.wantText) {
				t.Errorf("text %q, want %q", text.Text, tt.wantText)
			}
			if tt.wantText != "" {
				hc, ok := se.child(nsSM, "handled-count-too-high")
				if !ok || hc.attr("h") != tt.h || hc.attr("send-count") != "2" {
					t.Errorf("want <handled-count-too-high h='%s' send-count='2'/>, got %s", tt.h, se)
				}
			}
			// The stream was ended on purpose: the session is gone, not
			// waiting for resumption.
			full := jid.MustParse(alice.jid)
			waitFor(t, "the session to end", func() bool {
				for _, r := range e.router.Resources(full.Bare()) {
					if r.JID() == full {
						return false
					}
				}
				return true
			})
		})
	}
}

// TestSMResumeExactlyOnce: messages the client had not acknowledged when
// its connection was cut, and messages sent while it was away, arrive
// exactly once after resumption, and nothing goes to offline storage.
func TestSMResumeExactlyOnce(t *testing.T) {
	e := startSM(t, mods, func(c *session.Config) { c.AckEvery = 100 })
	alice := dialX(t, e, "alice")
	alice.login("alice", "phone")
	id := alice.enable("resume='true'").attr("id")
	alice.send("<presence/>")
	alice.collect(1, false, func(n node) bool { return n.is("jabber:client", "presence") }) // her own broadcast
	bob := dialX(t, e, "bob")
	bob.login("bob", "desk")

	bob.send(message("alice@example.com/phone", "m1", "one") + message("alice@example.com/phone", "m2", "two"))
	alice.collect(2, false, isMessage)
	// She acknowledges everything but the last one, then loses her
	// connection.
	acked := alice.h - 1
	alice.send(fmt.Sprintf("<a xmlns='urn:xmpp:sm:3' h='%d'/>", acked))
	alice.sync()
	alice.cut()
	waitFor(t, "the session to detach", func() bool { return e.srv.DetachedCount() == 1 })
	if n := len(e.router.Resources(jid.MustParse("alice@example.com"))); n != 1 {
		t.Fatalf("a detached session must stay bound; %d resources", n)
	}
	bob.send(message("alice@example.com/phone", "m3", "three") + message("alice@example.com", "m4", "four") +
		message("alice@example.com/phone", "m5", "five"))
	bob.sync()

	again := dialX(t, e, "alice again")
	again.auth("alice")
	r := again.resume(id, acked)
	// She had sent her presence and the sync IQ.
	if !r.is(nsSM, "resumed") || r.attr("previd") != id || r.attr("h") != "2" {
		t.Fatalf("want <resumed h='2' previd='%s'/>, got %s", id, r)
	}
	got := again.collect(4, true, isMessage)
	if want := []string{"m2", "m3", "m4", "m5"}; !slices.Equal(ids(got), want) {
		t.Fatalf("after resumption: %v, want %v", ids(got), want)
	}
	bob.send(message("alice@example.com/phone", "m6", "six"))
	if got := again.collect(1, true, isMessage); ids(got)[0] != "m6" {
		t.Fatalf("after resumption the session goes on; got %v", ids(got))
	}
	// Nothing more: no duplicate.
	for {
		n, err := again.next(300 * time.Millisecond)
		if err == errTimeout {
			break
		}
		if err != nil || isMessage(n) {
			t.Fatalf("unexpected %s %v", n, err)
		}
		if n.is(nsSM, "r") {
			again.ack()
		}
	}
	if e.srv.DetachedCount() != 0 {
		t.Fatal("the session is still detached")
	}
	// A clean close with everything acknowledged stores nothing.
	again.ack()
	again.send("</stream:stream>")
	again.ended(wait)
	waitFor(t, "alice to be unbound", func() bool { return len(e.router.Resources(jid.MustParse("alice@example.com"))) == 0 })
	if got := offline(t, e.store, "alice@example.com"); len(got) != 0 {
		t.Fatalf("offline storage holds %v after a resumption", got)
	}
}

// TestSMResumeRefused: a resumption that cannot be granted gets <failed/>
// with item-not-found (with h only when the session was the client's own
// and is known to have ended), and the client may bind.
func TestSMResumeRefused(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		run     func(t *testing.T, e *smEnv, id string) node
		wantH   string
		after   func(t *testing.T, e *smEnv, id string)
	}{
		{"unknown id", 0, func(t *testing.T, e *smEnv, _ string) node {
			c := dialX(t, e, "alice again")
			c.auth("alice")
			n := c.resume("no-such-session", 0)
			c.bind("other")
			return n
		}, "", nil},
		{"another account's session", 0, func(t *testing.T, e *smEnv, id string) node {
			c := dialX(t, e, "bob")
			c.auth("bob")
			n := c.resume(id, 0)
			c.bind("r")
			return n
		}, "", func(t *testing.T, e *smEnv, id string) {
			// Alice's session is untouched, and hers to resume.
			if e.srv.DetachedCount() != 1 {
				t.Fatal("the refused resumption changed the session")
			}
			c := dialX(t, e, "alice again")
			c.auth("alice")
			if n := c.resume(id, 0); !n.is(nsSM, "resumed") {
				t.Fatalf("alice's own resumption: %s", n)
			}
		}},
		{"the address's former owner's session", 0, func(t *testing.T, e *smEnv, id string) node {
			// alice is deleted and the address given to someone else
			// (with the same password, to the microsecond another
			// account) before the server learns of it (account.Watch).
			ctx := context.Background()
			if err := e.store.DeleteAccount(ctx, "alice@example.com"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond)
			if err := account.Create(ctx, e.store, jid.MustParse("alice@example.com"), "secret-password"); err != nil {
				t.Fatal(err)
			}
			c := dialX(t, e, "the new alice")
			c.auth("alice")
			n := c.resume(id, 0)
			c.bind("r")
			return n
		}, "", nil},
		{"expired", 300 * time.Millisecond, func(t *testing.T, e *smEnv, id string) node {
			waitFor(t, "the session to expire", func() bool {
				return e.srv.DetachedCount() == 0 && len(e.router.Resources(jid.MustParse("alice@example.com"))) == 0
			})
			c := dialX(t, e, "alice again")
			c.auth("alice")
			n := c.resume(id, 0)
			c.bind("phone")
			return n
		}, "2", nil}, // her presence and the sync IQ
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startSM(t, nil, func(c *session.Config) { c.ResumeTimeout = tt.timeout })
			alice := dialX(t, e, "alice")
			alice.login("alice", "phone")
			id := alice.enable("resume='true'").attr("id")
			alice.send("<presence/>")
			alice.sync()
			alice.cut()
			waitFor(t, "the session to detach", func() bool { return e.srv.DetachedCount() == 1 || tt.timeout > 0 })
			n := tt.run(t, e, id)
			if !n.is(nsSM, "failed") {
				t.Fatalf("want <failed/>, got %s", n)
			}
			if _, ok := n.child(nsStanzas, "item-not-found"); !ok {
				t.Errorf("want item-not-found, got %s", n)
			}
			if got := n.attr("h"); got != tt.wantH {
				t.Errorf("h = %q, want %q", got, tt.wantH)
			}
			if tt.after != nil {
				tt.after(t, e, id)
			}
		})
	}
}

// TestSMResumeBadH: a resumption that acknowledges more than was sent ends
// the stream; the session stays resumable.
func TestSMResumeBadH(t *testing.T) {
	e := startSM(t, nil, nil)
	alice := dialX(t, e, "alice")
	alice.login("alice", "phone")
	id := alice.enable("resume='true'").attr("id")
	alice.cut()
	waitFor(t, "the session to detach", func() bool { return e.srv.DetachedCount() == 1 })
	c := dialX(t, e, "alice again")
	c.auth("alice")
	c.send("<resume xmlns='urn:xmpp:sm:3' previd='" + id + "' h='5'/>")
	se := c.ended(wait)
	hc, ok := se.child(nsSM, "handled-count-too-high")
	if _, uc := se.child(nsStreams, "undefined-condition"); !uc || !ok || hc.attr("h") != "5" || hc.attr("send-count") != "0" {
		t.Fatalf("want undefined-condition with handled-count-too-high, got %s", se)
	}
	if e.srv.DetachedCount() != 1 {
		t.Fatal("a refused resumption ended the session")
	}
}

// TestSMSecondResumeClosesOlder: resuming a session whose connection is
// still open moves it to the new connection and closes the old one.
func TestSMSecondResumeClosesOlder(t *testing.T) {
	e := startSM(t, nil, nil)
	first := dialX(t, e, "first")
	first.login("alice", "phone")
	id := first.enable("resume='true'").attr("id")
	second := dialX(t, e, "second")
	second.auth("alice")
	if n := second.resume(id, 0); !n.is(nsSM, "resumed") {
		t.Fatalf("second resumption: %s", n)
	}
	se := first.ended(wait)
	if _, ok := se.child(nsStreams, "conflict"); !ok {
		t.Fatalf("the older connection: want conflict, got %s", se)
	}
	bob := dialX(t, e, "bob")
	bob.login("bob", "r")
	bob.send(message("alice@example.com/phone", "m1", "one"))
	if got := second.collect(1, true, isMessage); ids(got)[0] != "m1" {
		t.Fatalf("the resumed session: %v", ids(got))
	}
	if n := len(e.router.Resources(jid.MustParse("alice@example.com"))); n != 1 {
		t.Fatalf("%d resources bound, want 1", n)
	}
}

// TestSMUnackedNotLost: when a session with stream management ends
// without being resumed, the messages its client had not acknowledged go
// to another resource or to offline storage, IQ requests are answered with
// an error, and nothing is lost or duplicated.
func TestSMUnackedNotLost(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*session.Config)
		run    func(t *testing.T, e *smEnv, alice, bob *xc)
	}{
		{"resume timeout", func(c *session.Config) { c.ResumeTimeout = 300 * time.Millisecond }, func(t *testing.T, e *smEnv, alice, bob *xc) {
			bob.send(message(alice.jid, "m1", "one") + message("alice@example.com", "m2", "two"))
			alice.collect(2, false, isMessage)
			alice.cut()
			waitFor(t, "alice to be unbound", func() bool { return len(e.router.Resources(jid.MustParse("alice@example.com"))) == 0 })
			waitFor(t, "the messages to be stored", func() bool { return len(offline(t, e.store, "alice@example.com")) == 2 })
			if got := offline(t, e.store, "alice@example.com"); !slices.Equal(got, []string{"one", "two"}) {
				t.Fatalf("stored %v", got)
			}
		}},
		{"clean close", nil, func(t *testing.T, e *smEnv, alice, bob *xc) {
			bob.send(message(alice.jid, "m1", "one") + message(alice.jid, "m2", "two"))
			alice.collect(2, false, isMessage)
			alice.send("</stream:stream>")
			alice.ended(wait)
			waitFor(t, "the messages to be stored", func() bool { return len(offline(t, e.store, "alice@example.com")) == 2 })
			if got := offline(t, e.store, "alice@example.com"); !slices.Equal(got, []string{"one", "two"}) {
				t.Fatalf("stored %v", got)
			}
		}},
		{"acknowledged messages are not stored", nil, func(t *testing.T, e *smEnv, alice, bob *xc) {
			bob.send(message(alice.jid, "m1", "one") + message(alice.jid, "m2", "two"))
			alice.collect(2, false, isMessage)
			alice.send(fmt.Sprintf("<a xmlns='urn:xmpp:sm:3' h='%d'/></stream:stream>", alice.h-1))
			alice.ended(wait)
			waitFor(t, "the message to be stored", func() bool { return len(offline(t, e.store, "alice@example.com")) == 1 })
			if got := offline(t, e.store, "alice@example.com"); !slices.Equal(got, []string{"two"}) {
				t.Fatalf("stored %v", got)
			}
		}},
		{"full queue while detached", func(c *session.Config) { c.QueueSize = 16 }, func(t *testing.T, e *smEnv, alice, bob *xc) {
			alice.cut()
			waitFor(t, "the session to detach", func() bool { return e.srv.DetachedCount() == 1 })
			var want []string
			for i := range 24 {
				body := fmt.Sprintf("m%02d", i)
				want = append(want, body)
				bob.send(message(alice.jid, body, body))
			}
			bob.sync()
			waitFor(t, "all messages to be stored", func() bool { return len(offline(t, e.store, "alice@example.com")) >= 24 })
			got := offline(t, e.store, "alice@example.com")
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("stored %v, want %v", got, want)
			}
		}},
		{"another resource gets them", nil, func(t *testing.T, e *smEnv, alice, bob *xc) {
			desk := dialX(t, e, "alice desk")
			desk.login("alice", "desk")
			desk.send("<presence/>")
			desk.sync()
			bob.send(message(alice.jid, "m1", "one") + message(alice.jid, "m2", "two"))
			alice.collect(2, false, isMessage)
			alice.send("</stream:stream>")
			alice.ended(wait)
			got := desk.collect(2, false, isMessage)
			if !slices.Equal(ids(got), []string{"m1", "m2"}) {
				t.Fatalf("desk got %v", ids(got))
			}
			for _, n := range got {
				if d, ok := n.child(nsDelay, "delay"); !ok || d.attr("from") != "example.com" || d.attr("stamp") == "" {
					t.Errorf("rerouted without a delay stamp: %s", n)
				}
				if n.attr("from") != bob.jid {
					t.Errorf("rerouted message from %q, want %q", n.attr("from"), bob.jid)
				}
			}
			if got := offline(t, e.store, "alice@example.com"); len(got) != 0 {
				t.Fatalf("stored %v", got)
			}
		}},
		{"carbon copies are not routed again", nil, func(t *testing.T, e *smEnv, alice, bob *xc) {
			carbons := "<iq type='set' id='cc'><enable xmlns='urn:xmpp:carbons:2'/></iq>"
			alice.send(carbons)
			alice.collect(1, false, func(n node) bool { return n.is("jabber:client", "iq") && n.attr("id") == "cc" })
			desk := dialX(t, e, "alice desk")
			desk.login("alice", "desk")
			desk.send("<presence/>" + carbons)
			desk.collect(1, false, func(n node) bool { return n.is("jabber:client", "iq") && n.attr("id") == "cc" })
			bob.send(message("alice@example.com/desk", "m1", "one"))
			copied := alice.collect(1, false, isMessage)
			if _, ok := copied[0].child("urn:xmpp:carbons:2", "received"); !ok {
				t.Fatalf("want a received carbon, got %s", copied[0])
			}
			if got := desk.collect(1, false, isMessage); ids(got)[0] != "m1" {
				t.Fatalf("desk got %v", ids(got))
			}
			alice.send("</stream:stream>")
			alice.ended(wait)
			waitFor(t, "the phone to be unbound", func() bool { return len(e.router.Resources(jid.MustParse("alice@example.com"))) == 1 })
			for {
				n, err := desk.next(500 * time.Millisecond)
				if err == errTimeout {
					break
				}
				if err != nil || isMessage(n) {
					t.Fatalf("desk got %s (%v): the carbon came back", n, err)
				}
			}
			if got := offline(t, e.store, "alice@example.com"); len(got) != 0 {
				t.Fatalf("stored %v", got)
			}
		}},
		{"IQ requests get an error, presence is dropped", nil, func(t *testing.T, e *smEnv, alice, bob *xc) {
			bob.send("<iq type='get' id='q1' to='" + alice.jid + "'><query xmlns='jabber:iq:version'/></iq>")
			bob.send("<presence to='" + alice.jid + "'/>")
			alice.collect(1, false, func(n node) bool { return n.is("jabber:client", "iq") })
			alice.send("</stream:stream>")
			alice.ended(wait)
			got := bob.collect(1, false, func(n node) bool { return n.is("jabber:client", "iq") })
			errEl, _ := got[0].child("jabber:client", "error")
			if got[0].attr("type") != "error" || got[0].attr("id") != "q1" || got[0].attr("from") != alice.jid {
				t.Fatalf("bob got %s", got[0])
			}
			if _, ok := errEl.child(nsStanzas, "recipient-unavailable"); !ok || errEl.attr("type") != "wait" {
				t.Fatalf("want a wait recipient-unavailable error, got %s", got[0])
			}
			bob.nothing(300 * time.Millisecond)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startSM(t, mods, func(c *session.Config) {
				c.AckEvery = 100
				if tt.mutate != nil {
					tt.mutate(c)
				}
			})
			alice := dialX(t, e, "alice")
			alice.login("alice", "phone")
			alice.enable("resume='true'")
			alice.send("<presence/>")
			alice.collect(1, false, func(n node) bool { return n.is("jabber:client", "presence") })
			bob := dialX(t, e, "bob")
			bob.login("bob", "r")
			tt.run(t, e, alice, bob)
		})
	}
}

// TestSMShutdownStoresUnacked: Server.Shutdown ends detached and attached
// sessions and stores what their clients had not acknowledged before it
// returns.
func TestSMShutdownStoresUnacked(t *testing.T) {
	e := startSM(t, mods, func(c *session.Config) { c.AckEvery = 100 })
	alice := dialX(t, e, "alice")
	alice.login("alice", "phone")
	alice.enable("resume='true'")
	alice.send("<presence/>")
	alice.sync()
	carol := dialX(t, e, "carol")
	carol.login("carol", "laptop")
	carol.enable("")
	carol.send("<presence/>")
	carol.sync()
	bob := dialX(t, e, "bob")
	bob.login("bob", "r")
	bob.send(message(alice.jid, "a1", "for alice 1") + message(alice.jid, "a2", "for alice 2") + message(carol.jid, "c1", "for carol"))
	alice.collect(2, false, isMessage)
	carol.collect(1, false, isMessage)
	alice.cut()
	waitFor(t, "alice's session to detach", func() bool { return e.srv.DetachedCount() == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// No waiting: Shutdown has returned.
	if got := offline(t, e.store, "alice@example.com"); !slices.Equal(got, []string{"for alice 1", "for alice 2"}) {
		t.Errorf("alice's stored messages: %v", got)
	}
	if got := offline(t, e.store, "carol@example.com"); !slices.Equal(got, []string{"for carol"}) {
		t.Errorf("carol's stored messages: %v", got)
	}
	se := carol.ended(wait)
	if _, ok := se.child(nsStreams, "system-shutdown"); !ok {
		t.Errorf("carol: want system-shutdown, got %s", se)
	}
}

// TestSMPingsWithR: with stream management the server pings a silent
// client with <r/>; a client that answers stays, one that does not is
// detached (and may resume).
func TestSMPingsWithR(t *testing.T) {
	tests := []struct {
		name   string
		answer bool
	}{
		{"answered", true},
		{"unanswered", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startSM(t, nil, func(c *session.Config) {
				c.PingInterval = 300 * time.Millisecond
				c.PingTimeout = 300 * time.Millisecond
			})
			alice := dialX(t, e, "alice")
			alice.login("alice", "phone")
			id := alice.enable("resume='true'").attr("id")
			for range 3 {
				n := alice.must()
				if !n.is(nsSM, "r") {
					if tt.answer || !n.is("http://etherx.jabber.org/streams", "error") {
						t.Fatalf("want <r/>, got %s", n)
					}
					break
				}
				if tt.answer {
					alice.ack()
				}
			}
			if tt.answer {
				if e.srv.DetachedCount() != 0 || len(e.router.Resources(jid.MustParse("alice@example.com"))) != 1 {
					t.Fatal("a client answering was disconnected")
				}
				return
			}
			waitFor(t, "the session to detach", func() bool { return e.srv.DetachedCount() == 1 })
			again := dialX(t, e, "alice again")
			again.auth("alice")
			if n := again.resume(id, 0); !n.is(nsSM, "resumed") {
				t.Fatalf("resumption after a ping timeout: %s", n)
			}
		})
	}
}

// TestCSI: while the client is inactive, availability presence is held
// (the latest per sender), and anything else is delivered at once after
// what was held.
func TestCSI(t *testing.T) {
	presence := func(to, status string) string {
		return "<presence to='" + to + "'><status>" + status + "</status></presence>"
	}
	type got struct{ kind, from, detail string }
	describe := func(n node) got {
		g := got{kind: n.XMLName.Local, from: n.attr("from")}
		switch s, ok := n.child("jabber:client", "status"); {
		case ok:
			g.detail = s.Text
		case g.kind == "presence":
			g.detail = n.attr("type")
		default:
			g.detail = n.attr("id")
		}
		return g
	}
	tests := []struct {
		name    string
		maxHeld int
		run     func(bobs []*xc, alice string)
		active  bool // send <active/> at the end
		want    []got
	}{
		{"latest presence per sender, on <active/>", 0, func(bobs []*xc, alice string) {
			bobs[0].send(presence(alice, "s1") + presence(alice, "s2") + presence(alice, "s3"))
			bobs[0].sync()
		}, true, []got{{"presence", "bob@example.com/1", "s3"}}},
		{"unavailable replaces available", 0, func(bobs []*xc, alice string) {
			bobs[0].send(presence(alice, "here") + "<presence type='unavailable' to='" + alice + "'/>")
			bobs[0].sync()
		}, true, []got{{"presence", "bob@example.com/1", "unavailable"}}},
		{"a message delivers held presences first", 0, func(bobs []*xc, alice string) {
			bobs[0].send(presence(alice, "one"))
			bobs[0].sync()
			bobs[1].send(presence(alice, "two"))
			bobs[1].sync()
			bobs[0].send(message(alice, "m1", "hello"))
			bobs[0].sync()
		}, false, []got{{"presence", "bob@example.com/1", "one"}, {"presence", "bob@example.com/2", "two"}, {"message", "bob@example.com/1", "m1"}}},
		{"an IQ is delivered at once", 0, func(bobs []*xc, alice string) {
			bobs[0].send(presence(alice, "one"))
			bobs[0].sync()
			bobs[1].send("<iq type='get' id='q1' to='" + alice + "'><query xmlns='jabber:iq:version'/></iq>")
			bobs[1].sync()
		}, false, []got{{"presence", "bob@example.com/1", "one"}, {"iq", "bob@example.com/2", "q1"}}},
		{"a subscription request is delivered at once", 0, func(bobs []*xc, alice string) {
			bobs[0].send(presence(alice, "one"))
			bobs[0].sync()
			bobs[1].send("<presence type='subscribe' to='" + alice + "'/>")
			bobs[1].sync()
		}, false, []got{{"presence", "bob@example.com/1", "one"}, {"presence", "bob@example.com/2", "subscribe"}}},
		{"too many senders deliver what is held", 2, func(bobs []*xc, alice string) {
			for i, b := range bobs {
				b.send(presence(alice, "p"+itoa(i+1)))
				b.sync()
			}
		}, false, []got{{"presence", "bob@example.com/1", "p1"}, {"presence", "bob@example.com/2", "p2"}, {"presence", "bob@example.com/3", "p3"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startSM(t, nil, func(c *session.Config) { c.MaxHeldPresences = tt.maxHeld })
			alice := dialX(t, e, "alice")
			alice.login("alice", "r")
			alice.send("<inactive xmlns='urn:xmpp:csi:0'/>")
			alice.sync()
			var bobs []*xc
			for i := range 3 {
				b := dialX(t, e, "bob"+itoa(i+1))
				b.login("bob", itoa(i+1))
				bobs = append(bobs, b)
			}
			tt.run(bobs, alice.jid)
			if tt.active {
				alice.nothing(200 * time.Millisecond)
				alice.send("<active xmlns='urn:xmpp:csi:0'/>")
			}
			var out []got
			for range tt.want {
				out = append(out, describe(alice.must()))
			}
			if !slices.Equal(out, tt.want) {
				t.Fatalf("alice got %v, want %v", out, tt.want)
			}
			alice.nothing(200 * time.Millisecond)
		})
	}
}

// TestCSIAcrossResumption: presences held for an inactive client are
// delivered after a resumption, which starts active.
func TestCSIAcrossResumption(t *testing.T) {
	e := startSM(t, nil, nil)
	alice := dialX(t, e, "alice")
	alice.login("alice", "phone")
	id := alice.enable("resume='true'").attr("id")
	alice.send("<inactive xmlns='urn:xmpp:csi:0'/>")
	alice.sync()
	alice.ack()
	bob := dialX(t, e, "bob")
	bob.login("bob", "r")
	bob.send("<presence to='" + alice.jid + "'><status>one</status></presence><presence to='" + alice.jid + "'><status>two</status></presence>")
	bob.sync()
	alice.nothing(200 * time.Millisecond)
	alice.cut()
	waitFor(t, "the session to detach", func() bool { return e.srv.DetachedCount() == 1 })
	again := dialX(t, e, "alice again")
	again.auth("alice")
	if n := again.resume(id, alice.h); !n.is(nsSM, "resumed") {
		t.Fatalf("resume: %s", n)
	}
	got := again.collect(1, true, func(n node) bool { return n.is("jabber:client", "presence") })
	if s, _ := got[0].child("jabber:client", "status"); s.Text != "two" {
		t.Fatalf("want the latest presence, got %s", got[0])
	}
	// Active now: a presence comes at once.
	bob.send("<presence to='" + alice.jid + "'><status>three</status></presence>")
	got = again.collect(1, true, func(n node) bool { return n.is("jabber:client", "presence") })
	if s, _ := got[0].child("jabber:client", "status"); s.Text != "three" {
		t.Fatalf("want the new presence, got %s", got[0])
	}
}

package main

// End-to-end test of multi-user chat (core/mod/muc) with mellium.im/xmpp
// (sessions, mux, the history package for room archives, the muc package's
// names) as the client, the archive on. Rooms are joined with plain
// presence rather than muc.Client.Join: in mellium v0.22.0, Join and the
// client's presence handler touch Channel.join without a lock (muc.go:203
// against room.go:251), which the race detector reports, and the handler
// blocks its session when the room ends a membership (a kick) while
// nobody waits in Leave.

import (
	"context"
	"encoding/xml"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/history"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/muc"
	"mellium.im/xmpp/mux"
	"mellium.im/xmpp/ping"
	"mellium.im/xmpp/stanza"
)

// mucUser is a mellium session; it files the groupchat
// bodies it receives (marking history, which has a delay) and archive
// results.
type mucUser struct {
	s *testClient

	mu      sync.Mutex
	live    []string // groupchat bodies as they were sent
	delayed []string // history on join
	results []mamResult
	gone    bool // received our own unavailable presence from the room
	signal  chan struct{}
}

// dialMUC logs in.
func (ts *testServer) dialMUC(t *testing.T, user, password string) *mucUser {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	s, conn, err := ts.connect(ctx, user, password)
	if err != nil {
		t.Fatalf("login as %s: %v", bare(user), err)
	}
	u := &mucUser{signal: make(chan struct{}, 1)}
	results := history.NewHandler(mux.MessageHandlerFunc(func(msg stanza.Message, r xmlstream.TokenReadEncoder) error {
		var res mamResult
		if err := xml.NewTokenDecoder(r).Decode(&res); err != nil {
			return err
		}
		u.mu.Lock()
		u.results = append(u.results, res)
		u.mu.Unlock()
		return nil
	}))
	groupchat := mux.MessageHandlerFunc(func(msg stanza.Message, r xmlstream.TokenReadEncoder) error {
		var m struct {
			Body  string    `xml:"jabber:client body"`
			Delay *struct{} `xml:"urn:xmpp:delay delay"`
		}
		if err := xml.NewTokenDecoder(r).Decode(&m); err != nil {
			return err
		}
		u.mu.Lock()
		if m.Delay != nil {
			u.delayed = append(u.delayed, m.Body)
		} else {
			u.live = append(u.live, m.Body)
		}
		u.mu.Unlock()
		u.notify()
		return nil
	})
	// The occupant's unavailable self-presence (kicked, or left).
	kicked := mux.PresenceHandlerFunc(func(p stanza.Presence, r xmlstream.TokenReadEncoder) error {
		u.mu.Lock()
		u.gone = true
		u.mu.Unlock()
		u.notify()
		return nil
	})
	m := mux.New(stanza.NSClient, ping.Handle(), history.Handle(results),
		mux.Message(stanza.GroupChatMessage, xml.Name{Local: "body"}, groupchat),
		mux.Presence(stanza.UnavailablePresence, xml.Name{Space: muc.NSUser, Local: "x"}, kicked))
	u.s = &testClient{Session: s, name: user, conn: conn, done: make(chan struct{})}
	go func() {
		defer close(u.s.done)
		u.s.err = s.Serve(m)
		conn.Close()
	}()
	t.Cleanup(u.s.close)
	return u
}

func (u *mucUser) notify() {
	select {
	case u.signal <- struct{}{}:
	default:
	}
}

// waitFor waits until cond holds on the user's state.
func (u *mucUser) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(e2eWait)
	for {
		u.mu.Lock()
		ok := cond()
		u.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-u.signal:
		case <-deadline:
			t.Fatalf("%s: %s did not happen", u.s.name, what)
		}
	}
}

// join enters the room with plain presence (history as XML, "" for the
// default) and confirms with a self-ping (XEP-0410): the server handles a
// client's stanzas in order, so the join's presences and history came
// before the answer.
func (u *mucUser) join(t *testing.T, room jid.JID, nick, history string) {
	t.Helper()
	u.s.send(t, fmt.Sprintf("<presence to='%s/%s'><x xmlns='%s'>%s</x></presence>", room, nick, muc.NS, history))
	if n := u.s.iq(t, fmt.Sprintf("<iq type='get' to='%s/%s'><ping xmlns='urn:xmpp:ping'/></iq>", room, nick)); n.attr("type") != "result" {
		t.Fatalf("%s: self-ping after joining %s as %s: %s", u.s.name, room, nick, n)
	}
}

// TestE2EMUC: three occupants in a room, a groupchat message reaches all,
// a kick removes one, history reaches a late joiner, and the room's
// archive pages back.
func TestE2EMUC(t *testing.T) {
	ts := startTestServer(t, "sqlite", enableArchive(t))
	users := map[string]*mucUser{}
	for i, name := range []string{"alice", "bob", "carol", "dave"} {
		ts.addUser(t, name, fmt.Sprintf("password-%d", i))
		users[name] = ts.dialMUC(t, name, fmt.Sprintf("password-%d", i))
	}
	alice, bob, carol, dave := users["alice"], users["bob"], users["carol"], users["dave"]
	room := jid.MustParse("team@conference.localhost")

	alice.join(t, room, "Alice", "")
	// The new room is locked until its owner accepts the default
	// configuration (an instant room, XEP-0045 §10.1.2).
	if n := alice.s.iq(t, fmt.Sprintf("<iq type='set' to='%s'><query xmlns='%s'><x xmlns='jabber:x:data' type='submit'/></query></iq>", room, muc.NSOwner)); n.attr("type") != "result" {
		t.Fatalf("instant room: %s", n)
	}
	bob.join(t, room, "Bob", "")
	carol.join(t, room, "Carol", "")

	say := func(u *mucUser, body string) {
		t.Helper()
		u.s.send(t, fmt.Sprintf("<message type='groupchat' to='%s'><body>%s</body></message>", room, body))
	}
	say(bob, "hello all")
	for _, u := range []*mucUser{alice, bob, carol} {
		u.waitFor(t, "hello all", func() bool { return slices.Contains(u.live, "hello all") })
	}

	// Alice, the room's creator and so its owner, kicks Carol.
	alice.s.iq(t, fmt.Sprintf("<iq type='set' to='%s' id='kick1'><query xmlns='%s'><item nick='Carol' role='none'><reason>test</reason></item></query></iq>",
		room, muc.NSAdmin))
	carol.waitFor(t, "the kick", func() bool { return carol.gone })
	say(alice, "after the kick")
	bob.waitFor(t, "after the kick", func() bool { return slices.Contains(bob.live, "after the kick") })
	alice.waitFor(t, "after the kick", func() bool { return slices.Contains(alice.live, "after the kick") })
	if n := carol.s.iq(t, fmt.Sprintf("<iq type='get' to='%s/Carol' id='sp2'><ping xmlns='urn:xmpp:ping'/></iq>", room)); n.attr("type") != "error" {
		t.Fatalf("self-ping after the kick: %+v", n)
	}
	carol.mu.Lock()
	if slices.Contains(carol.live, "after the kick") {
		t.Error("a kicked occupant still gets the room's messages")
	}
	carol.mu.Unlock()

	for i := range 3 {
		say(bob, fmt.Sprint("more ", i))
	}
	alice.waitFor(t, "more 2", func() bool { return slices.Contains(alice.live, "more 2") })

	// Dave joins late and gets the history.
	dave.join(t, room, "Dave", "<history maxstanzas='3'/>")
	dave.waitFor(t, "history", func() bool { return len(dave.delayed) == 3 })
	dave.mu.Lock()
	if want := []string{"more 0", "more 1", "more 2"}; !slices.Equal(dave.delayed, want) {
		t.Errorf("history %q, want %q", dave.delayed, want)
	}
	dave.mu.Unlock()

	// The room's archive, paged back from the end two at a time (the
	// archive flushes in the background: wait until all five are in).
	fetch := func(q history.Query) ([]string, history.Result) {
		t.Helper()
		alice.mu.Lock()
		alice.results = nil
		alice.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
		defer cancel()
		q.ID = fmt.Sprintf("q%d", time.Now().UnixNano())
		res, err := history.Fetch(ctx, q, room, alice.s.Session)
		if err != nil {
			t.Fatalf("history.Fetch(%+v) from the room: %v", q, err)
		}
		alice.mu.Lock()
		defer alice.mu.Unlock()
		var bodies []string
		for _, r := range alice.results {
			if r.QueryID == q.ID {
				bodies = append(bodies, r.Forwarded.Message.Body)
			}
		}
		return bodies, res
	}
	deadline := time.Now().Add(e2eWait)
	for {
		got, _ := fetch(history.Query{Limit: 10})
		if len(got) == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("room archive holds %q, want five messages", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var pages [][]string
	q := history.Query{Limit: 2, Last: true}
	for range 4 {
		got, res := fetch(q)
		pages = append(pages, got)
		if res.Complete || res.Set.First.ID == "" {
			break
		}
		q.PageID = res.Set.First.ID
	}
	want := [][]string{{"more 1", "more 2"}, {"after the kick", "more 0"}, {"hello all"}}
	if fmt.Sprint(pages) != fmt.Sprint(want) {
		t.Errorf("pages back %q, want %q", pages, want)
	}

	alice.s.send(t, fmt.Sprintf("<presence type='unavailable' to='%s/Alice'/>", room))
	alice.waitFor(t, "leaving", func() bool { return alice.gone })
}

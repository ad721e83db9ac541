package main

// End-to-end test of history on join across a restart (core/mod/muc loads
// a restored room's history from the room's archive), with mellium as the
// client, on both storage backends.

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"
)

// restart shuts ts down and starts a new server on the same configuration
// (data directory, database, keys); the new one is shut down when the test
// ends.
func (ts *testServer) restart(t *testing.T) *testServer {
	t.Helper()
	if err := ts.shutdown(); err != nil {
		t.Fatalf("Shutdown before the restart: %v\nserver log:\n%s", err, ts.logs)
	}
	ts2 := &testServer{cfg: ts.cfg, dir: ts.dir, cfgFile: ts.cfgFile, roots: ts.roots, logs: &syncBuffer{}}
	log := slog.New(slog.NewTextHandler(ts2.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := startServer(ctx, ts.cfg, log)
	if err != nil {
		t.Fatalf("startServer after the restart: %v\nserver log:\n%s", err, ts2.logs)
	}
	ts2.srv = srv
	t.Cleanup(func() {
		if err := ts2.shutdown(); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if t.Failed() {
			t.Logf("server log after the restart:\n%s", ts2.logs)
		}
	})
	return ts2
}

// mucHistory joins room as nick and returns the history messages (those
// with a delay) that came before the subject, which ends the join.
func mucHistory(t *testing.T, c *testClient, room, nick, req string) []xmlNode {
	t.Helper()
	c.send(t, fmt.Sprintf("<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'>%s</x></presence>", room, nick, req))
	var got []xmlNode
	for {
		m := c.Messages.expect(t, c.name+" joining "+room, func(n xmlNode) bool { return n.attr("type") == "groupchat" })
		if m.child("", "subject") != nil {
			return got
		}
		if m.child("urn:xmpp:delay", "delay") == nil {
			t.Fatalf("%s: a live message before the subject: %s", c.name, m)
		}
		got = append(got, m)
	}
}

// TestE2EMUCHistoryAfterRestart: a persistent room's messages reach a late
// joiner as history after the server restarted, with the same stanza-ids,
// occupant-ids and delay stamps as before it, and the history request's
// maxstanzas is honoured.
func TestE2EMUCHistoryAfterRestart(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		ts := startTestServer(t, backend, enableArchive(t))
		ts.addUser(t, "alice", "alice-password")
		ts.addUser(t, "bob", "bob-password")
		ts.addUser(t, "carol", "carol-password")
		const room = "plans@conference.localhost"
		alice := ts.dial(t, "alice", "alice-password")
		alice.send(t, fmt.Sprintf("<presence to='%s/Alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>", room))
		alice.Messages.expect(t, "alice's subject", func(n xmlNode) bool { return n.child("", "subject") != nil })
		res := alice.iq(t, fmt.Sprintf(`<iq type='set' to='%s' id='cfg1'><query xmlns='http://jabber.org/protocol/muc#owner'>
<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>
<field var='muc#roomconfig_persistentroom'><value>1</value></field></x></query></iq>`, room))
		if res.attr("type") != "result" {
			t.Fatalf("configuring the room: %s", res)
		}
		for i := range 4 {
			alice.send(t, fmt.Sprintf("<message type='groupchat' to='%s'><body>m%d</body></message>", room, i))
			alice.Messages.expect(t, fmt.Sprint("m", i), func(n xmlNode) bool { return n.body() == fmt.Sprint("m", i) })
		}
		bob := ts.dial(t, "bob", "bob-password")
		before := mucHistory(t, bob, room, "Bob", "")
		if len(before) != 4 {
			t.Fatalf("history before the restart: %d messages, want 4", len(before))
		}
		// The archive flushes in the background; shutting down stores
		// what is queued.
		alice.close()
		bob.close()

		ts2 := ts.restart(t)
		carol := ts2.dial(t, "carol", "carol-password")
		after := mucHistory(t, carol, room, "Carol", "<history maxstanzas='3'/>")
		if len(after) != 3 {
			t.Fatalf("history after the restart: %v, want m1 m2 m3", after)
		}
		for i, m := range after {
			pre := before[i+1]
			if m.body() != pre.body() || m.attr("from") != room+"/Alice" {
				t.Fatalf("history %d after the restart %s, before %s", i, m, pre)
			}
			for _, c := range [][2]string{{"urn:xmpp:sid:0", "stanza-id"}, {"urn:xmpp:occupant-id:0", "occupant-id"}, {"urn:xmpp:delay", "delay"}} {
				a, b := m.child(c[0], c[1]), pre.child(c[0], c[1])
				if a == nil || b == nil {
					t.Fatalf("%s missing: after %s, before %s", c[1], m, pre)
				}
				attr := "id"
				if c[1] == "delay" {
					attr = "stamp"
				}
				if a.attr(attr) != b.attr(attr) || a.attr(attr) == "" {
					t.Fatalf("%s %s after the restart, %s before", c[1], a.attr(attr), b.attr(attr))
				}
			}
		}
	})
}

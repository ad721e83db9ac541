package main

// End-to-end test of message archiving (core/mod/mam on the archive
// package) with mellium.im/xmpp's history package as the client.

import (
	"context"
	"encoding/xml"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/history"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/mux"
	"mellium.im/xmpp/ping"
	"mellium.im/xmpp/stanza"

	"kontor.im/kontor/archive/keyring"
)

// enableArchive returns a configuration change that turns the message
// archive on, with a new key-encryption key outside the data directory.
func enableArchive(t *testing.T) func(*Config) {
	t.Helper()
	kek := filepath.Join(t.TempDir(), "archive.kek")
	if _, err := keyring.CreateFile(kek, time.Now()); err != nil {
		t.Fatal(err)
	}
	return func(c *Config) {
		c.Archive.Enabled, c.Archive.KEKFile, c.Archive.FlushInterval = true, kek, 10*time.Millisecond
	}
}

// mamResult is one archive query result as mellium's history handler
// passes it on: the <result/> element.
type mamResult struct {
	from      string // of the carrying message
	QueryID   string `xml:"queryid,attr"`
	ID        string `xml:"id,attr"`
	Forwarded struct {
		Delay struct {
			Stamp string `xml:"stamp,attr"`
		} `xml:"urn:xmpp:delay delay"`
		Message struct {
			From      string `xml:"from,attr"`
			To        string `xml:"to,attr"`
			ID        string `xml:"id,attr"`
			Body      string `xml:"jabber:client body"`
			StanzaIDs []struct {
				By string `xml:"by,attr"`
				ID string `xml:"id,attr"`
			} `xml:"urn:xmpp:sid:0 stanza-id"`
		} `xml:"jabber:client message"`
	} `xml:"urn:xmpp:forward:0 forwarded"`
}

// archiveClient is a mellium session whose Serve files archive results
// (through history's handler), chat bodies and stanza-ids.
type archiveClient struct {
	s *testClient

	mu        sync.Mutex
	results   []mamResult
	bodies    map[string]string // message id → body
	stanzaIDs map[string]string // message id → stanza-id by the account
	signal    chan struct{}
}

func (ts *testServer) dialArchive(t *testing.T, user, password string) *archiveClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	s, conn, err := ts.connect(ctx, user, password)
	if err != nil {
		t.Fatalf("login as %s: %v", bare(user), err)
	}
	c := &archiveClient{bodies: map[string]string{}, stanzaIDs: map[string]string{}, signal: make(chan struct{}, 1)}
	own := bare(user)
	results := history.NewHandler(mux.MessageHandlerFunc(func(msg stanza.Message, r xmlstream.TokenReadEncoder) error {
		var res mamResult
		if err := xml.NewTokenDecoder(r).Decode(&res); err != nil {
			return err
		}
		res.from = msg.From.String()
		c.mu.Lock()
		c.results = append(c.results, res)
		c.mu.Unlock()
		return nil
	}))
	m := mux.New(stanza.NSClient,
		ping.Handle(),
		history.Handle(results),
		// A message handler reads the whole message, from its start.
		mux.Message(stanza.ChatMessage, xml.Name{Local: "body"}, mux.MessageHandlerFunc(func(msg stanza.Message, r xmlstream.TokenReadEncoder) error {
			var m struct {
				Body      string `xml:"jabber:client body"`
				StanzaIDs []struct {
					By string `xml:"by,attr"`
					ID string `xml:"id,attr"`
				} `xml:"urn:xmpp:sid:0 stanza-id"`
			}
			if err := xml.NewTokenDecoder(r).Decode(&m); err != nil {
				return err
			}
			c.mu.Lock()
			c.bodies[msg.ID] = m.Body
			for _, sid := range m.StanzaIDs {
				if sid.By == own {
					c.stanzaIDs[msg.ID] = sid.ID
				}
			}
			c.mu.Unlock()
			select {
			case c.signal <- struct{}{}:
			default:
			}
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
	c.s.send(t, "<presence/>") // available: chat messages to the bare JID reach it
	return c
}

// waitBody waits for the chat message with this id.
func (c *archiveClient) waitBody(t *testing.T, id string) string {
	t.Helper()
	deadline := time.After(e2eWait)
	for {
		c.mu.Lock()
		b, ok := c.bodies[id]
		c.mu.Unlock()
		if ok {
			return b
		}
		select {
		case <-c.signal:
		case <-deadline:
			t.Fatalf("%s: message %s did not arrive", c.s.name, id)
		}
	}
}

// stanzaID returns the stanza-id by the account that the chat message
// with this id arrived with.
func (c *archiveClient) stanzaID(id string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stanzaIDs[id]
}

// fetch runs one archive query with mellium's history package and returns
// the results it received before the answer, and the answer.
func (c *archiveClient) fetch(t *testing.T, q history.Query) ([]mamResult, history.Result) {
	t.Helper()
	c.mu.Lock()
	c.results = nil
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	q.ID = fmt.Sprintf("q%d", time.Now().UnixNano())
	res, err := history.Fetch(ctx, q, c.s.LocalAddr().Bare(), c.s.Session)
	if err != nil {
		t.Fatalf("%s: history.Fetch(%+v): %v", c.s.name, q, err)
	}
	// Results come before the IQ result, and Serve handles stanzas in
	// order: all of them were filed before Fetch returned.
	c.mu.Lock()
	got := c.results
	c.mu.Unlock()
	for _, r := range got {
		// mellium empties a 'from' that is the session's own bare JID,
		// which the results come from.
		if r.QueryID != q.ID || (r.from != "" && r.from != c.s.LocalAddr().Bare().String()) {
			t.Fatalf("result with queryid %q from %q, want %q from the account", r.QueryID, r.from, q.ID)
		}
	}
	return got, res
}

func bodiesOf(rs []mamResult) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.Forwarded.Message.Body)
	}
	return out
}

// TestE2EMAM: two users chat, then one of them pages through the archive
// with mellium's history package, forwards and backwards, and fetches one
// message by id; the stanza-ids the messages arrived with are their
// archive ids.
func TestE2EMAM(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		ts := startTestServer(t, backend, enableArchive(t))
		ts.addUser(t, "alice", "alice-password")
		ts.addUser(t, "bob", "bob-password")
		alice := ts.dialArchive(t, "alice", "alice-password")
		bob := ts.dialArchive(t, "bob", "bob-password")

		// m1..m7, alternating, each received before the next is sent, so
		// that the archive order is the order of the list.
		const n = 7
		for i := 1; i <= n; i++ {
			from, to := alice, bob
			if i%2 == 0 {
				from, to = bob, alice
			}
			id, body := fmt.Sprintf("m%d", i), fmt.Sprintf("message %d", i)
			from.s.send(t, fmt.Sprintf("<message type='chat' id='%s' to='%s'><body>%s</body></message>", id, to.s.LocalAddr().Bare(), body))
			if got := to.waitBody(t, id); got != body {
				t.Fatalf("%s received %q, want %q", id, got, body)
			}
		}
		want := []string{}
		for i := 1; i <= n; i++ {
			want = append(want, fmt.Sprintf("message %d", i))
		}

		// Forwards, two at a time.
		var all []mamResult
		q := history.Query{Limit: 2}
		for page := 1; ; page++ {
			rs, res := alice.fetch(t, q)
			if len(rs) == 0 || res.Set.First.ID != rs[0].ID || res.Set.Last != rs[len(rs)-1].ID {
				t.Fatalf("page %d: %d results, first %q last %q", page, len(rs), res.Set.First.ID, res.Set.Last)
			}
			all = append(all, rs...)
			if res.Complete != (page == 4) {
				t.Fatalf("page %d: complete=%v", page, res.Complete)
			}
			if res.Complete {
				break
			}
			q.PageID = res.Set.Last
		}
		if got := bodiesOf(all); !slices.Equal(got, want) {
			t.Fatalf("forwards: %q, want %q", got, want)
		}
		for i, r := range all {
			if _, err := time.Parse(time.RFC3339, r.Forwarded.Delay.Stamp); err != nil {
				t.Fatalf("result %d: delay stamp %q: %v", i+1, r.Forwarded.Delay.Stamp, err)
			}
			// What alice received carried its archive id; her own
			// messages, as archived, carry no stanza-id of either side.
			if i%2 == 1 {
				if sid := alice.stanzaID(fmt.Sprintf("m%d", i+1)); sid != r.ID {
					t.Fatalf("m%d arrived with stanza-id %q, archived as %q", i+1, sid, r.ID)
				}
			} else if len(r.Forwarded.Message.StanzaIDs) != 0 {
				t.Fatalf("m%d: alice's own message archived with stanza-ids %+v", i+1, r.Forwarded.Message.StanzaIDs)
			}
		}

		// Backwards from the last page, three at a time.
		var back []string
		q = history.Query{Limit: 3, Last: true}
		for page := 1; ; page++ {
			rs, res := alice.fetch(t, q)
			back = append(bodiesOf(rs), back...)
			if res.Complete != (page == 3) {
				t.Fatalf("backwards page %d: complete=%v", page, res.Complete)
			}
			if res.Complete {
				break
			}
			q.PageID = res.Set.First.ID
		}
		if !slices.Equal(back, want) {
			t.Fatalf("backwards: %q, want %q", back, want)
		}

		// One message by id, and a filter by contact.
		rs, res := alice.fetch(t, history.Query{IDs: []string{all[2].ID}})
		if got := bodiesOf(rs); !res.Complete || !slices.Equal(got, want[2:3]) {
			t.Fatalf("by id: %q complete=%v", got, res.Complete)
		}
		rs, _ = alice.fetch(t, history.Query{With: jid.MustParse(bare("bob")), Limit: 10})
		if got := bodiesOf(rs); !slices.Equal(got, want) {
			t.Fatalf("with bob: %q", got)
		}
		rs, _ = alice.fetch(t, history.Query{With: jid.MustParse(bare("carol")), Limit: 10})
		if len(rs) != 0 {
			t.Fatalf("with carol: %q", bodiesOf(rs))
		}

		// bob's archive is his own: the same conversation, his ids.
		rs, res = bob.fetch(t, history.Query{Limit: 10})
		if got := bodiesOf(rs); !res.Complete || !slices.Equal(got, want) {
			t.Fatalf("bob's archive: %q complete=%v", got, res.Complete)
		}
		if rs[0].ID == all[0].ID {
			t.Fatal("bob's archive shares an id with alice's")
		}
	})
}

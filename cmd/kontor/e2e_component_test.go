package main

import (
	"context"
	"encoding/xml"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/component"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"kontor.im/kontor/core/audit"
	kcomponent "kontor.im/kontor/core/mod/component"
	"kontor.im/kontor/core/module"
)

// noCarolAndBot keeps carol and the bot component apart, both ways.
const noCarolAndBot = `package kontor.contact

deny contains {"reason": "test_no_bots", "message": "Carol does not talk to bots."} if {
	input.from.jid == "carol@localhost"
	input.to.jid == "bot.localhost"
}

deny contains {"reason": "test_no_bots", "message": "Carol does not talk to bots."} if {
	input.from.jid == "bot.localhost"
	input.to.jid == "carol@localhost"
}
`

const (
	botSecret = "e2e bot secret, long enough"
	gwSecret  = "e2e gateway secret"
)

// componentModule returns the running component module of the test
// server's hosts.
func componentModule(t *testing.T, ts *testServer) *kcomponent.Module {
	t.Helper()
	for _, d := range ts.srv.router.Domains() {
		for _, m := range ts.srv.router.Host(d).Modules() {
			if c, ok := m.Module.(*kcomponent.Module); ok && c.Addr() != nil {
				return c
			}
		}
	}
	t.Fatal("the component module does not run")
	return nil
}

// testComponent is a component connected with mellium.im/xmpp/component.
type testComponent struct {
	*xmpp.Session
	Messages *inbox
	IQs      *inbox
	done     chan struct{}
	err      error
}

// connectComponent opens a component session for domain with secret.
func connectComponent(t *testing.T, ts *testServer, domain, secret string) (*testComponent, error) {
	t.Helper()
	conn, err := net.Dial("tcp", componentModule(t, ts).Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	s, err := component.NewSession(ctx, jid.MustParse(domain), []byte(secret), conn)
	if err != nil {
		return nil, err
	}
	c := &testComponent{Session: s, Messages: newInbox(), IQs: newInbox(), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		c.err = s.Serve(xmpp.HandlerFunc(func(tr xmlstream.TokenReadEncoder, start *xml.StartElement) error {
			n, err := decodeElement(tr, start)
			if err != nil {
				return err
			}
			switch start.Name.Local {
			case "message":
				c.Messages.put(n)
			case "iq":
				c.IQs.put(n)
				if n.attr("type") == "get" && n.child("http://jabber.org/protocol/disco#info", "query") != nil {
					// The component answers its own disco#info.
					var b strings.Builder
					b.WriteString("<iq type='result' id='")
					xml.EscapeText(&b, []byte(n.attr("id")))
					b.WriteString("' from='" + domain + "' to='")
					xml.EscapeText(&b, []byte(n.attr("from")))
					b.WriteString("'><query xmlns='http://jabber.org/protocol/disco#info'><identity category='gateway' type='sms' name='E2E Bot'/></query></iq>")
					_, err := xmlstream.Copy(tr, tokens(t, b.String()))
					return err
				}
			}
			return nil
		}))
	}()
	t.Cleanup(func() {
		_ = s.Close()
		select {
		case <-c.done:
		case <-time.After(e2eWait):
			conn.Close()
		}
	})
	return c, nil
}

func (c *testComponent) send(t *testing.T, rawXML string) {
	t.Helper()
	if err := c.Send(sendContext(), tokens(t, rawXML)); err != nil {
		t.Fatalf("component: send %s: %v", rawXML, err)
	}
}

// ended waits for the server to end the component's session.
func (c *testComponent) ended(t *testing.T) error {
	t.Helper()
	select {
	case <-c.done:
		return c.err
	case <-time.After(e2eWait):
		t.Fatal("the component's session did not end")
		return nil
	}
}

// TestE2EComponent attaches components with mellium.im/xmpp/component
// (XEP-0114) to a server with the archive on and a policy that keeps carol
// and the bot apart: the right secret connects (and shows in the metrics,
// disco#items and the audit trail), a wrong one is refused and then backed
// off; alice messages the bot and gets its reply, and both messages are in
// her archive; alice's disco#info to the bot is answered by the bot; the
// policy refuses carol's message to the bot and the bot's to carol with
// policy-violation; a forged 'from' ends the bot's stream with invalid-from;
// and while the bot is away, messages and IQs to it bounce with
// service-unavailable.
func TestE2EComponent(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "bot.secret")
	if err := os.WriteFile(secretFile, []byte(botSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KONTOR_TEST_GW_SECRET", gwSecret)
	policyDir := policyFiles(t, map[string]string{"bots.rego": noCarolAndBot})
	archive := enableArchive(t)
	ts := startTestServer(t, "sqlite", func(c *Config) {
		archive(c)
		c.Policy.Dir = policyDir
		c.Modules.Enabled = append(defaultModuleIDs(), kcomponent.ID)
		c.Modules.Options = map[string]any{kcomponent.ID: map[string]any{
			"listen": "127.0.0.1:0", "max_failures_per_component": 2, "backoff": "1h", "max_backoff": "1h",
			"components": []any{
				map[string]any{"domain": "bot.localhost", "name": "E2E Bot", "secret_file": secretFile, "allowed_addrs": []any{"127.0.0.0/8"}},
				map[string]any{"domain": "gw.localhost", "secret_env": "KONTOR_TEST_GW_SECRET"},
			},
		}}
	})
	ts.addUser(t, "alice", "password-a")
	ts.addUser(t, "carol", "password-c")
	ts.addUser(t, "dave", "password-d")
	if got := scrape(t, ts)["kontor_components_connected"]; got != 0 {
		t.Fatalf("kontor_components_connected %v before any connect", got)
	}

	bot, err := connectComponent(t, ts, "bot.localhost", botSecret)
	if err != nil {
		t.Fatalf("the bot with the right secret: %v", err)
	}
	if got := scrape(t, ts)["kontor_components_connected"]; got != 1 {
		t.Fatalf("kontor_components_connected %v", got)
	}

	t.Run("wrong secret, then back-off", func(t *testing.T) {
		for i := 0; i < 2; i++ {
			_, err := connectComponent(t, ts, "gw.localhost", "guess")
			if c := streamCondition(err); c != "not-authorized" {
				t.Fatalf("attempt %d with a wrong secret: %v (condition %q)", i, err, c)
			}
		}
		_, err := connectComponent(t, ts, "gw.localhost", gwSecret)
		if c := streamCondition(err); c != "policy-violation" {
			t.Fatalf("the right secret during the back-off: %v (condition %q)", err, c)
		}
		var se stream.Error
		if !errors.As(err, &se) || len(se.Text) == 0 || !strings.Contains(se.Text[0].Value, "try again in 1h") {
			t.Errorf("the refusal does not say when to try again: %+v", se)
		}
	})

	alice := ts.dial(t, "alice", "password-a", withResource("desk"))
	carol := ts.dial(t, "carol", "password-c", withResource("desk"))

	t.Run("disco#items lists the component", func(t *testing.T) {
		r := alice.iq(t, "<iq type='get' to='"+e2eDomain+"'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
		found := false
		for _, it := range r.child("http://jabber.org/protocol/disco#items", "query").Nodes {
			if it.attr("jid") == "bot.localhost" && it.attr("name") == "E2E Bot" {
				found = true
			}
		}
		if !found {
			t.Fatalf("disco#items: %s", r)
		}
	})

	t.Run("message and reply", func(t *testing.T) {
		alice.send(t, "<message type='chat' to='bot.localhost' id='ask1'><body>weather in Bonn?</body></message>")
		got := bot.Messages.expect(t, "the bot's message", func(n xmlNode) bool { return n.attr("id") == "ask1" })
		if got.attr("from") != "alice@localhost/desk" || got.body() != "weather in Bonn?" || got.XMLName.Space != kcomponent.NS {
			t.Fatalf("the bot got %s (namespace %s)", got, got.XMLName.Space)
		}
		bot.send(t, "<message type='chat' from='bot.localhost' to='alice@localhost/desk' id='ans1'><body>sunny</body></message>")
		r := alice.Messages.expect(t, "alice's answer", func(n xmlNode) bool { return n.attr("id") == "ans1" })
		if r.attr("type") == "error" || r.attr("from") != "bot.localhost" || r.body() != "sunny" {
			t.Fatalf("alice got %s", r)
		}
		// Both are in alice's archive, as any one-to-one chat.
		deadline := time.Now().Add(e2eWait)
		for {
			page, err := ts.srv.archive.Query(context.Background(), module.ArchiveQuery{Owner: "alice@localhost", With: "bot.localhost"})
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Messages) == 2 {
				if !page.Messages[0].Outgoing || page.Messages[1].Outgoing {
					t.Fatalf("archive order/direction: %+v", page.Messages)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("alice's archive with the bot has %d messages", len(page.Messages))
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	t.Run("the component answers its own disco#info", func(t *testing.T) {
		r := alice.iq(t, "<iq type='get' to='bot.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
		id := r.child("http://jabber.org/protocol/disco#info", "query").child("", "identity")
		if r.attr("type") != "result" || id == nil || id.attr("name") != "E2E Bot" {
			t.Fatalf("disco#info: %s", r)
		}
	})

	t.Run("the policy refuses carol and the bot", func(t *testing.T) {
		carol.send(t, "<message type='chat' to='bot.localhost' id='c1'><body>hello bot</body></message>")
		e := carol.Messages.expect(t, "carol's error", func(n xmlNode) bool { return n.attr("id") == "c1" })
		if typ, cond := e.stanzaError(); typ != "cancel" || cond != "policy-violation" {
			t.Fatalf("carol got %s", e)
		}
		if text := e.child("", "error").childText(nsStanzaErrors, "text"); !strings.Contains(text, "(test_no_bots)") {
			t.Errorf("error text %q", text)
		}
		bot.send(t, "<message type='chat' from='bot.localhost' to='carol@localhost/desk' id='c2'><body>hello carol</body></message>")
		e = bot.Messages.expect(t, "the bot's error", func(n xmlNode) bool { return n.attr("id") == "c2" })
		if typ, cond := e.stanzaError(); typ != "cancel" || cond != "policy-violation" {
			t.Fatalf("the bot got %s", e)
		}
		carol.barrier(t)
		carol.Messages.none(t, "carol", func(n xmlNode) bool { return n.attr("id") == "c2" })
		bot.Messages.none(t, "bot", func(n xmlNode) bool { return n.attr("id") == "c1" })
	})

	t.Run("offline user gets the message later", func(t *testing.T) {
		bot.send(t, "<message type='chat' from='bot.localhost' to='dave@localhost' id='off1'><body>your ticket is done</body></message>")
		deadline := time.Now().Add(e2eWait)
		for {
			// The message is stored once it is archived for dave.
			page, err := ts.srv.archive.Query(context.Background(), module.ArchiveQuery{Owner: "dave@localhost", With: "bot.localhost"})
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Messages) == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the message to offline dave was not archived")
			}
			time.Sleep(20 * time.Millisecond)
		}
		dave := ts.dial(t, "dave", "password-d", withResource("phone"))
		dave.send(t, "<presence/>")
		m := dave.Messages.expect(t, "dave's offline message", func(n xmlNode) bool { return n.attr("id") == "off1" })
		if m.attr("from") != "bot.localhost" || m.body() != "your ticket is done" {
			t.Fatalf("dave got %s", m)
		}
	})

	t.Run("forged from ends the stream", func(t *testing.T) {
		bot.send(t, "<message type='chat' from='alice@localhost' to='carol@localhost/desk' id='f1'><body>it is me, alice</body></message>")
		if c := streamCondition(bot.ended(t)); c != "invalid-from" {
			t.Fatalf("the bot's stream ended with %q", c)
		}
		carol.barrier(t)
		carol.Messages.none(t, "carol", func(n xmlNode) bool { return n.attr("id") == "f1" })
	})

	t.Run("a disconnected component bounces", func(t *testing.T) {
		deadline := time.Now().Add(e2eWait)
		for scrape(t, ts)["kontor_components_connected"] != 0 {
			if time.Now().After(deadline) {
				t.Fatal("the bot still counts as connected")
			}
			time.Sleep(20 * time.Millisecond)
		}
		alice.send(t, "<message type='chat' to='bot.localhost' id='gone1'><body>still there?</body></message>")
		e := alice.Messages.expect(t, "alice's bounce", func(n xmlNode) bool { return n.attr("id") == "gone1" })
		if typ, cond := e.stanzaError(); typ != "cancel" || cond != "service-unavailable" {
			t.Fatalf("alice got %s", e)
		}
		r := alice.iq(t, "<iq type='get' to='bot.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
		if _, cond := r.stanzaError(); r.attr("type") != "error" || cond != "service-unavailable" {
			t.Fatalf("IQ to the absent bot: %s", r)
		}
	})

	t.Run("audit trail", func(t *testing.T) {
		entries, err := ts.srv.audit.Query(context.Background(), audit.Query{Action: "component", Subject: "bot.localhost"})
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, e := range entries {
			actions = append(actions, e.Action)
			for k, v := range e.Details {
				if strings.Contains(v, botSecret) || strings.Contains(k, "secret") {
					t.Errorf("audit entry %s holds a secret", e.Action)
				}
			}
		}
		if strings.Join(actions, ",") != "component.connect,component.disconnect" {
			t.Fatalf("audit actions %v", actions)
		}
		if strings.Contains(ts.logs.String(), botSecret) || strings.Contains(ts.logs.String(), gwSecret) {
			t.Error("a component secret is in the server log")
		}
	})
}

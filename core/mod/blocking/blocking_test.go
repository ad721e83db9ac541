package blocking_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/mod/blocking"
	_ "kontor.im/kontor/core/mod/ping"
	_ "kontor.im/kontor/core/mod/presence"
	_ "kontor.im/kontor/core/mod/roster"
	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/storage/sqlite"
)

const (
	alice = "alice@example.com"
	bob   = "bob@example.com"
	carol = "carol@example.com"
	dave  = "dave@example.com"
)

// newServer provisions blocking (configured by configure, if not nil),
// roster, presence and ping, with accounts alice, bob, carol and dave.
func newServer(t *testing.T, opts modtest.Options, configure func(*blocking.Options)) *modtest.Server {
	t.Helper()
	e := modtest.Module(t, blocking.ID)
	if configure != nil {
		o := e.Module.(module.Configurable).Options().(*blocking.Options)
		configure(o)
		if err := o.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	srv := modtest.New(t, opts, e, modtest.Module(t, "roster"), modtest.Module(t, "presence"), modtest.Module(t, "ping"))
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		srv.Account(u)
	}
	return srv
}

// online sends initial presence (with the presence module) and forgets
// what it caused.
func online(t *testing.T, cs ...*modtest.Client) {
	t.Helper()
	for _, c := range cs {
		c.SendXML("<presence/>")
	}
	for _, c := range cs {
		c.Received()
	}
}

// subscribe makes a and b subscribed to each other's presence.
func subscribe(t *testing.T, srv *modtest.Server, a, b string) {
	t.Helper()
	ctx := context.Background()
	for _, p := range [][2]string{{a, b}, {b, a}} {
		if _, err := srv.Store.PutRosterItem(ctx, p[0], storage.RosterItem{Contact: p[1], Subscription: storage.SubBoth}); err != nil {
			t.Fatal(err)
		}
	}
}

// nextID numbers IQs across the tests.
var nextID atomic.Int64

// iq sends an IQ (its id is set here) and returns the answer. Everything
// else c received meanwhile stays for Received.
func iq(t *testing.T, c *modtest.Client, xml string) *stanza.Stanza {
	t.Helper()
	res, rest := iqAll(t, c, xml)
	for _, s := range rest {
		c.Send(s)
	}
	return res
}

// iqAll sends an IQ and returns the answer and everything else c received
// meanwhile (modtest routes synchronously: it has all arrived).
func iqAll(t *testing.T, c *modtest.Client, xml string) (*stanza.Stanza, []*stanza.Stanza) {
	t.Helper()
	id := fmt.Sprintf("iq%d", nextID.Add(1))
	c.SendXML(strings.Replace(xml, "<iq ", "<iq id='"+id+"' ", 1))
	var (
		res  *stanza.Stanza
		rest []*stanza.Stanza
	)
	for _, s := range c.Received() {
		if s.Kind == stanza.KindIQ && s.ID == id && (s.Type == "result" || s.Type == "error") {
			res = s
			continue
		}
		rest = append(rest, s)
	}
	if res == nil {
		t.Fatalf("%s: no answer to %s", c.JID, xml)
	}
	return res, rest
}

func items(xml string, jids ...string) string {
	var b strings.Builder
	for _, j := range jids {
		b.WriteString("<item jid='" + j + "'/>")
	}
	return fmt.Sprintf(xml, b.String())
}

// block blocks jids for c's account and checks the result.
func block(t *testing.T, c *modtest.Client, jids ...string) {
	t.Helper()
	res := iq(t, c, items("<iq type='set'><block xmlns='urn:xmpp:blocking'>%s</block></iq>", jids...))
	if res.Type != "result" || res.Payload() != nil {
		t.Fatalf("block %v: %s", jids, res.El)
	}
}

// unblock unblocks jids (all of them, with none) and checks the result.
func unblock(t *testing.T, c *modtest.Client, jids ...string) {
	t.Helper()
	res := iq(t, c, items("<iq type='set'><unblock xmlns='urn:xmpp:blocking'>%s</unblock></iq>", jids...))
	if res.Type != "result" || res.Payload() != nil {
		t.Fatalf("unblock %v: %s", jids, res.El)
	}
}

// blocklist returns c's account's list, from an IQ get.
func blocklist(t *testing.T, c *modtest.Client) []string {
	t.Helper()
	res := iq(t, c, "<iq type='get'><blocklist xmlns='urn:xmpp:blocking'/></iq>")
	q := res.Payload()
	if res.Type != "result" || q == nil || q.Name != (stanza.Name{Space: blocking.NS, Local: "blocklist"}) {
		t.Fatalf("blocklist get: %s", res.El)
	}
	var out []string
	q.Children(func(e *stanza.Element) bool {
		out = append(out, e.Get("jid"))
		return true
	})
	return out
}

// pushItems returns the items of a block or unblock push, and the push's
// element name; ok is false if s is not a push.
func pushItems(s *stanza.Stanza) (name string, jids []string, ok bool) {
	if s.Kind != stanza.KindIQ || s.Type != "set" || s.Payload() == nil || s.Payload().Name.Space != blocking.NS {
		return "", nil, false
	}
	s.Payload().Children(func(e *stanza.Element) bool {
		jids = append(jids, e.Get("jid"))
		return true
	})
	return s.Payload().Name.Local, jids, true
}

// errorOf returns the stanza error type, condition and whether the
// XEP-0191 <blocked/> application condition is present.
func errorOf(s *stanza.Stanza) (typ stanza.ErrorType, cond string, blocked bool) {
	e, ok := stanza.ErrorOf(s)
	if !ok {
		return "", "", false
	}
	el := s.El.Child(stanza.NSClient, "error")
	return e.Type, e.Condition, el.Child(blocking.NSErrors, "blocked") != nil
}

// take returns the first stanza c received that matches (everything a
// stanza causes has arrived when SendXML returns: modtest routes
// synchronously), failing t if there is none. Unlike Client.Next it
// reports on the t it is given, which may be a subtest's.
func take(t *testing.T, c *modtest.Client, match func(*stanza.Stanza) bool) *stanza.Stanza {
	t.Helper()
	got := c.Received()
	for i, s := range got {
		if match(s) {
			for _, r := range got[i+1:] {
				c.Send(r)
			}
			return s
		}
	}
	t.Fatalf("%s received nothing that matched; got %d stanzas", c.JID, len(got))
	return nil
}

// fromBare reports whether s comes from an address of the bare JID b.
func fromBare(b string) func(*stanza.Stanza) bool {
	return func(s *stanza.Stanza) bool { return s.From.Bare().String() == b }
}

// none fails if c received anything matching match (everything that a
// stanza causes has arrived when SendXML returns: modtest routes
// synchronously).
func none(t *testing.T, c *modtest.Client, what string, match func(*stanza.Stanza) bool) {
	t.Helper()
	for _, s := range c.Received() {
		if match == nil || match(s) {
			t.Errorf("%s got %s (%s)", c.JID, s.El, what)
		}
	}
}

func TestDisco(t *testing.T) {
	srv := newServer(t, modtest.Options{}, nil)
	if !slices.Contains(srv.Host.DiscoInfo(module.ToHost).Features, blocking.NS) {
		t.Errorf("the host's disco#info lacks %s", blocking.NS)
	}
}

func TestRequests(t *testing.T) {
	srv := newServer(t, modtest.Options{}, func(o *blocking.Options) { o.MaxItems = 3 })
	a := srv.Connect(alice + "/phone")
	b := srv.Connect(bob + "/desk")
	tests := []struct {
		name string
		bob  bool // sent by bob rather than alice
		xml  string
		want string // the error condition, "" for a result
	}{
		{"block without items", false, "<iq type='set'><block xmlns='urn:xmpp:blocking'/></iq>", stanza.BadRequest},
		{"block a malformed JID", false, "<iq type='set'><block xmlns='urn:xmpp:blocking'><item jid='a@b@c'/></block></iq>", stanza.JIDMalformed},
		{"block an item without jid", false, "<iq type='set'><block xmlns='urn:xmpp:blocking'><item/></block></iq>", stanza.JIDMalformed},
		{"block oneself", false, "<iq type='set'><block xmlns='urn:xmpp:blocking'><item jid='alice@example.com'/></block></iq>", stanza.NotAcceptable},
		{"block an own resource", false, "<iq type='set'><block xmlns='urn:xmpp:blocking'><item jid='Alice@Example.com/laptop'/></block></iq>", stanza.NotAcceptable},
		{"block more than max_items at once", false, items("<iq type='set'><block xmlns='urn:xmpp:blocking'>%s</block></iq>",
			"a.example", "b.example", "c.example", "d.example"), stanza.PolicyViolation},
		{"block up to max_items", false, items("<iq type='set'><block xmlns='urn:xmpp:blocking'>%s</block></iq>",
			"a.example", "b.example"), ""},
		{"block past max_items", false, items("<iq type='set'><block xmlns='urn:xmpp:blocking'>%s</block></iq>",
			"c.example", "d.example"), stanza.PolicyViolation},
		{"block what is blocked, at max_items", false, items("<iq type='set'><block xmlns='urn:xmpp:blocking'>%s</block></iq>",
			"a.example", "c.example"), ""},
		{"unblock a malformed JID", false, "<iq type='set'><unblock xmlns='urn:xmpp:blocking'><item jid='@'/></unblock></iq>", stanza.JIDMalformed},
		{"unblock what is not blocked", false, "<iq type='set'><unblock xmlns='urn:xmpp:blocking'><item jid='nobody@example.org'/></unblock></iq>", ""},
		{"to the own bare JID", false, "<iq type='get' to='alice@example.com'><blocklist xmlns='urn:xmpp:blocking'/></iq>", ""},
		{"another account's list", true, "<iq type='get' to='alice@example.com'><blocklist xmlns='urn:xmpp:blocking'/></iq>", stanza.Forbidden},
		{"block for another account", true, "<iq type='set' to='alice@example.com'><block xmlns='urn:xmpp:blocking'><item jid='carol@example.com'/></block></iq>", stanza.Forbidden},
		{"unblock for another account", true, "<iq type='set' to='alice@example.com'><unblock xmlns='urn:xmpp:blocking'/></iq>", stanza.Forbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := a
			if tt.bob {
				c = b
			}
			res := iq(t, c, tt.xml)
			if got := modtest.ErrorCondition(res); got != tt.want {
				t.Errorf("answer %s, want condition %q", res.El, tt.want)
			}
		})
	}
	if got, want := blocklist(t, a), []string{"a.example", "b.example", "c.example"}; !slices.Equal(got, want) {
		t.Errorf("blocklist = %q, want %q", got, want)
	}
}

// TestPushes: blocks and unblocks are pushed to the resources that asked
// for the list (XEP-0191 §3.3, §3.4, §3.5), and the list is what was
// blocked, canonical.
func TestPushes(t *testing.T) {
	srv := newServer(t, modtest.Options{}, nil)
	phone, laptop, tablet := srv.Connect(alice+"/phone"), srv.Connect(alice+"/laptop"), srv.Connect(alice+"/tablet")
	if got := blocklist(t, phone); len(got) != 0 {
		t.Fatalf("initial blocklist = %q", got)
	}
	blocklist(t, laptop)
	// The tablet never asks: it gets no pushes.
	steps := []struct {
		name  string
		block bool
		jids  []string
		push  []string // the items pushed (canonical)
		list  []string // the list afterwards
	}{
		{"block", true, []string{"Bob@Example.COM", "evil.example/bot", "ZOË@exämple.org"},
			[]string{bob, "evil.example/bot", "zoë@exämple.org"}, []string{bob, "evil.example/bot", "zoë@exämple.org"}},
		{"block twice", true, []string{bob}, []string{bob}, []string{bob, "evil.example/bot", "zoë@exämple.org"}},
		{"unblock", false, []string{bob, carol}, []string{bob, carol}, []string{"evil.example/bot", "zoë@exämple.org"}},
		{"unblock all", false, nil, nil, nil},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			want := "unblock"
			if st.block {
				want = "block"
			}
			res, rest := iqAll(t, phone, items("<iq type='set'><"+want+" xmlns='urn:xmpp:blocking'>%s</"+want+"></iq>", st.jids...))
			if res.Type != "result" {
				t.Fatalf("%s: %s", want, res.El)
			}
			for _, s := range rest {
				phone.Send(s)
			}
			for _, c := range []*modtest.Client{phone, laptop} {
				var pushes []*stanza.Stanza
				for _, s := range c.Received() {
					if _, _, ok := pushItems(s); ok {
						pushes = append(pushes, s)
					}
				}
				if len(pushes) != 1 {
					t.Fatalf("%s got %d pushes, want 1", c.JID, len(pushes))
				}
				name, jids, _ := pushItems(pushes[0])
				if name != want || !slices.Equal(jids, st.push) {
					t.Errorf("%s got push %s, want %s of %q", c.JID, pushes[0].El, want, st.push)
				}
				if s := pushes[0]; s.To != c.JID || (!s.From.IsZero() && s.From != c.JID.Bare()) {
					t.Errorf("push from %q to %q", s.From, s.To)
				}
			}
			none(t, tablet, "a push to a resource that never asked", func(s *stanza.Stanza) bool { _, _, ok := pushItems(s); return ok })
			if got := blocklist(t, laptop); !slices.Equal(got, st.list) {
				t.Errorf("blocklist = %q, want %q", got, st.list)
			}
		})
	}
}

// TestInbound: what a blocked JID sends to the user (XEP-0191 §3.3).
func TestInbound(t *testing.T) {
	srv := newServer(t, modtest.Options{}, nil)
	a, a2 := srv.Connect(alice+"/phone"), srv.Connect(alice+"/laptop")
	b := srv.Connect(bob + "/desk")
	online(t, a, a2, b)
	block(t, a, bob)
	a.Received()
	a2.Received()
	b.Received()
	tests := []struct {
		name string
		xml  string
		want string // the error bob gets, "" for none
	}{
		{"chat to the bare JID", "<message type='chat' to='alice@example.com'><body>hi</body></message>", stanza.ServiceUnavailable},
		{"chat to a full JID", "<message type='chat' to='alice@example.com/phone'><body>hi</body></message>", stanza.ServiceUnavailable},
		{"normal message", "<message to='alice@example.com'><body>hi</body></message>", stanza.ServiceUnavailable},
		{"headline", "<message type='headline' to='alice@example.com'><body>hi</body></message>", stanza.ServiceUnavailable},
		{"groupchat", "<message type='groupchat' to='alice@example.com/phone'><body>hi</body></message>", stanza.ServiceUnavailable},
		{"error message", "<message type='error' to='alice@example.com/phone'><error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>", ""},
		{"directed presence", "<presence to='alice@example.com'/>", ""},
		{"directed presence to a full JID", "<presence to='alice@example.com/phone'><show>chat</show></presence>", ""},
		{"unavailable presence", "<presence type='unavailable' to='alice@example.com'/>", ""},
		{"subscription request", "<presence type='subscribe' to='alice@example.com'/>", ""},
		{"subscription approval", "<presence type='subscribed' to='alice@example.com'/>", ""},
		{"probe", "<presence type='probe' to='alice@example.com'/>", ""},
		{"iq get to a full JID", "<iq type='get' id='q' to='alice@example.com/phone'><query xmlns='jabber:iq:version'/></iq>", stanza.ServiceUnavailable},
		{"iq set to a full JID", "<iq type='set' id='q' to='alice@example.com/phone'><query xmlns='urn:example'/></iq>", stanza.ServiceUnavailable},
		{"iq get to the account", "<iq type='get' id='q' to='alice@example.com'><ping xmlns='urn:xmpp:ping'/></iq>", stanza.ServiceUnavailable},
		{"iq result", "<iq type='result' id='q' to='alice@example.com/phone'/>", ""},
		{"iq error", "<iq type='error' id='q' to='alice@example.com/phone'><error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b.SendXML(tt.xml)
			got := b.Received()
			switch {
			case tt.want == "" && len(got) > 0:
				t.Errorf("bob got %s, want nothing", got[0].El)
			case tt.want != "" && len(got) != 1:
				t.Errorf("bob got %d stanzas, want one error", len(got))
			case tt.want != "":
				typ, cond, blocked := errorOf(got[0])
				if typ != stanza.Cancel || cond != tt.want || blocked {
					t.Errorf("bob got %s, want a %s error (without <blocked/>)", got[0].El, tt.want)
				}
				if e, _ := stanza.ErrorOf(got[0]); e.Text != "" {
					t.Errorf("the error says %q: it should not tell bob more than for an unknown user", e.Text)
				}
				if got[0].From.Bare().String() != alice {
					t.Errorf("the error comes from %s", got[0].From)
				}
			}
			none(t, a, "from a blocked JID", nil)
			none(t, a2, "from a blocked JID", nil)
		})
	}
	reqs, err := srv.Store.SubscriptionRequests(context.Background(), alice)
	if err != nil || len(reqs) != 0 {
		t.Errorf("alice's pending subscription requests: %v, %v; the blocked request was stored", reqs, err)
	}
}

// TestOutbound: what the user sends to a blocked JID (XEP-0191 §3.3).
func TestOutbound(t *testing.T) {
	srv := newServer(t, modtest.Options{}, nil)
	a := srv.Connect(alice + "/phone")
	b := srv.Connect(bob + "/desk")
	online(t, a, b)
	block(t, a, bob)
	a.Received()
	b.Received()
	tests := []struct {
		name   string
		xml    string
		refuse bool // alice gets not-acceptable with <blocked/>
	}{
		{"chat to the bare JID", "<message type='chat' to='bob@example.com'><body>hi</body></message>", true},
		{"chat to a full JID", "<message type='chat' to='bob@example.com/desk'><body>hi</body></message>", true},
		{"headline", "<message type='headline' to='bob@example.com'><body>hi</body></message>", true},
		{"directed presence", "<presence to='bob@example.com'/>", true},
		{"subscription request", "<presence type='subscribe' to='bob@example.com'/>", true},
		{"probe", "<presence type='probe' to='bob@example.com'/>", true},
		{"iq get", "<iq type='get' id='q' to='bob@example.com/desk'><query xmlns='jabber:iq:version'/></iq>", true},
		{"iq set", "<iq type='set' id='q' to='bob@example.com'><query xmlns='urn:example'/></iq>", true},
		{"iq result", "<iq type='result' id='q' to='bob@example.com/desk'/>", true},
		{"error message", "<message type='error' to='bob@example.com/desk'><error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.SendXML(tt.xml)
			sent := modtest.Parse(t, tt.xml)
			got := a.Received()
			switch {
			case !tt.refuse && len(got) > 0:
				t.Errorf("alice got %s, want nothing", got[0].El)
			case tt.refuse && len(got) != 1:
				t.Errorf("alice got %d stanzas, want one error", len(got))
			case tt.refuse:
				typ, cond, blocked := errorOf(got[0])
				if typ != stanza.Cancel || cond != stanza.NotAcceptable || !blocked {
					t.Errorf("alice got %s, want cancel/not-acceptable with <blocked xmlns='%s'/>", got[0].El, blocking.NSErrors)
				}
				if got[0].To != a.JID || got[0].From != sent.To || got[0].ID != sent.ID || got[0].Kind != sent.Kind {
					t.Errorf("the error %s does not answer %s", got[0].El, tt.xml)
				}
			}
			none(t, b, "to a blocked JID", nil)
		})
	}
}

// TestMatching checks the matching rules of XEP-0191 §6 on the stanza
// path: what alice blocks, and which of the others can still reach her
// (and she them).
func TestMatching(t *testing.T) {
	tests := []struct {
		name    string
		item    string
		blocked []string // senders refused; the others get through
	}{
		{"full JID", "bob@example.com/desk", []string{"bob/desk"}},
		{"bare JID", "bob@example.com", []string{"bob/desk", "bob/phone"}},
		{"domain/resource", "example.com/desk", []string{"bob/desk", "carol/desk"}},
		{"domain", "example.com", []string{"bob/desk", "bob/phone", "carol/desk", "carol/phone"}},
		{"another domain", "example.org", nil},
		{"a subdomain does not match its parent", "sub.example.com", nil},
	}
	senders := []string{"bob/desk", "bob/phone", "carol/desk", "carol/phone"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, modtest.Options{}, nil)
			a := srv.Connect(alice + "/phone")
			a2 := srv.Connect(alice + "/laptop")
			cs := map[string]*modtest.Client{}
			for _, s := range senders {
				cs[s] = srv.Connect(strings.Replace(s, "/", "@example.com/", 1))
			}
			block(t, a, tt.item)
			a.Received()
			for _, s := range senders {
				c := cs[s]
				c.SendXML("<message type='chat' to='alice@example.com/phone'><body>in</body></message>")
				inRefused := len(a.Received()) == 0
				c.Received()
				a.SendXML("<message type='chat' to='" + c.JID.String() + "'><body>out</body></message>")
				outRefused := len(c.Received()) == 0
				a.Received()
				want := slices.Contains(tt.blocked, s)
				if inRefused != want || outRefused != want {
					t.Errorf("%s: refused in %v, out %v; want %v", s, inRefused, outRefused, want)
				}
			}
			// Never blocked: the user's own resources and the server.
			a2.SendXML("<message type='chat' to='alice@example.com/phone'><body>own</body></message>")
			if len(a.Received()) != 1 {
				t.Error("a message between alice's own resources did not arrive")
			}
			res := iq(t, a, "<iq type='get' to='example.com'><ping xmlns='urn:xmpp:ping'/></iq>")
			if res.Type != "result" {
				t.Errorf("ping to the server: %s", res.El)
			}
		})
	}
}

// TestPresence: unavailable presence on block, presence again on unblock
// (XEP-0191 §3.3, §3.4), and no presence in between, either way.
func TestPresence(t *testing.T) {
	srv := newServer(t, modtest.Options{}, nil)
	subscribe(t, srv, alice, bob)
	subscribe(t, srv, alice, carol)
	a, a2 := srv.Connect(alice+"/phone"), srv.Connect(alice+"/laptop")
	b := srv.Connect(bob + "/desk")
	c := srv.Connect(carol + "/desk")
	d := srv.Connect(dave + "/desk")
	online(t, a, a2, b, c, d)
	// dave is no contact; alice's phone shows him its presence directly.
	a.SendXML("<presence to='dave@example.com'/>")
	d.Received()

	isPresence := func(from, typ string) func(*stanza.Stanza) bool {
		return func(s *stanza.Stanza) bool {
			return s.Kind == stanza.KindPresence && s.From.String() == from && s.Type == typ
		}
	}
	// exactly checks that c got exactly the presences listed ("from type").
	exactly := func(t *testing.T, c *modtest.Client, want ...string) {
		t.Helper()
		var got []string
		for _, s := range c.Received() {
			if s.Kind == stanza.KindPresence {
				got = append(got, strings.TrimSpace(s.From.String()+" "+s.Type))
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s got presence %q, want %q", c.JID, got, want)
		}
	}

	t.Run("block", func(t *testing.T) {
		block(t, a, bob, dave)
		exactly(t, b, alice+"/phone unavailable", alice+"/laptop unavailable")
		exactly(t, d, alice+"/phone unavailable") // the laptop never told dave
		for _, x := range []*modtest.Client{a, a2} {
			exactly(t, x, bob+"/desk unavailable")
		}
		exactly(t, c)
	})
	t.Run("no presence while blocked", func(t *testing.T) {
		a.SendXML("<presence><show>away</show></presence>")
		exactly(t, c, alice+"/phone")
		exactly(t, b)
		exactly(t, d)
		exactly(t, a, alice+"/phone") // own resources see it (RFC 6121 §4.2.2)
		exactly(t, a2, alice+"/phone")
		b.SendXML("<presence><show>dnd</show></presence>")
		exactly(t, b, bob+"/desk")
		exactly(t, a)
		exactly(t, a2)
		// A session that ends: its unavailable presence goes to carol only.
		a2.Disconnect()
		exactly(t, c, alice+"/laptop unavailable")
		exactly(t, b)
		a.Received()
	})
	t.Run("unblock", func(t *testing.T) {
		unblock(t, a, bob, dave)
		got := take(t, b, isPresence(alice+"/phone", ""))
		if got.El.ChildText(stanza.NSClient, "show") != "away" {
			t.Errorf("bob got %s, want alice's current presence", got.El)
		}
		take(t, d, isPresence(alice+"/phone", ""))
		// alice probed bob: his current presence comes back.
		got = take(t, a, isPresence(bob+"/desk", ""))
		if got.El.ChildText(stanza.NSClient, "show") != "dnd" {
			t.Errorf("alice got %s, want bob's current presence", got.El)
		}
	})
	t.Run("presence flows again", func(t *testing.T) {
		b.Received()
		a.SendXML("<presence/>")
		take(t, b, isPresence(alice+"/phone", ""))
	})
	t.Run("directed presence ends with unavailable presence", func(t *testing.T) {
		// The phone goes unavailable (dave is told, by the presence
		// module) and comes back without telling dave: blocking and
		// unblocking dave then tells him nothing.
		a.SendXML("<presence type='unavailable'/>")
		take(t, d, isPresence(alice+"/phone", "unavailable"))
		a.SendXML("<presence/>")
		block(t, a, dave)
		unblock(t, a, dave)
		exactly(t, d)
	})
}

// TestPersistence: the list outlives the server: a new router on the same
// database file enforces it and reports it.
func TestPersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kontor.db")
	open := func() storage.Store {
		st, err := sqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := open()
	srv := newServer(t, modtest.Options{Store: st}, nil)
	a := srv.Connect(alice + "/phone")
	block(t, a, bob, "example.org")
	a.Disconnect()
	if err := srv.Router.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st2 := open()
	t.Cleanup(func() { st2.Close() })
	srv2 := modtest.New(t, modtest.Options{Store: st2}, modtest.Module(t, blocking.ID))
	a = srv2.Connect(alice + "/phone")
	b := srv2.Connect(bob + "/desk")
	if got, want := blocklist(t, a), []string{bob, "example.org"}; !slices.Equal(got, want) {
		t.Errorf("after the restart, blocklist = %q, want %q", got, want)
	}
	b.SendXML("<message type='chat' to='alice@example.com'><body>still?</body></message>")
	if got := b.Next(nil); modtest.ErrorCondition(got) != stanza.ServiceUnavailable {
		t.Errorf("bob got %s, want service-unavailable", got.El)
	}
	none(t, a, "from bob", nil)
}

// TestUnblockDelivers: after an unblock (and an unblock all), stanzas flow
// at once: the cache does not keep the old list.
func TestUnblockDelivers(t *testing.T) {
	tests := []struct {
		name    string
		unblock []string
	}{
		{"unblock", []string{bob}},
		{"unblock all", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, modtest.Options{}, nil)
			a := srv.Connect(alice + "/phone")
			b := srv.Connect(bob + "/desk")
			online(t, a, b)
			block(t, a, bob, carol)
			b.SendXML("<message type='chat' to='alice@example.com'><body>1</body></message>")
			none(t, a, "while blocked", nil)
			unblock(t, a, tt.unblock...)
			a.Received()
			b.Received()
			b.SendXML("<message type='chat' to='alice@example.com'><body>2</body></message>")
			if got := a.Next(fromBare(bob)); got.El.ChildText(stanza.NSClient, "body") != "2" {
				t.Errorf("alice got %s", got.El)
			}
			a.SendXML("<message type='chat' to='bob@example.com'><body>3</body></message>")
			if got := b.Next(fromBare(alice)); got.El.ChildText(stanza.NSClient, "body") != "3" {
				t.Errorf("bob got %s", got.El)
			}
		})
	}
}

// TestListReadAtLogin: a list changed behind the module's back (another
// server on the same database) is read again when the owner's first
// session binds.
func TestListReadAtLogin(t *testing.T) {
	srv := newServer(t, modtest.Options{}, nil)
	a := srv.Connect(alice + "/phone")
	b := srv.Connect(bob + "/desk")
	online(t, a, b)
	b.SendXML("<message type='chat' to='alice@example.com'><body>1</body></message>")
	a.Next(fromBare(bob)) // alice's (empty) list is cached now
	if _, err := srv.Store.(storage.Blocklist).BlockJIDs(context.Background(), alice, []string{bob}, 0); err != nil {
		t.Fatal(err)
	}
	a2 := srv.Connect(alice + "/laptop")
	b.SendXML("<message type='chat' to='alice@example.com/phone'><body>2</body></message>")
	a.Next(fromBare(bob)) // not her first session: the cached list holds
	a.Disconnect()
	a2.Disconnect()
	a = srv.Connect(alice + "/phone")
	online(t, a)
	b.Received()
	b.SendXML("<message type='chat' to='alice@example.com/phone'><body>3</body></message>")
	if got := b.Next(nil); modtest.ErrorCondition(got) != stanza.ServiceUnavailable {
		t.Errorf("bob got %s, want service-unavailable", got.El)
	}
	none(t, a, "from bob", fromBare(bob))
}

// TestFailClosed: when the store fails, nothing passes unchecked: a
// blocklist that is not in the cache (an account that is not online) gives
// internal-server-error; the lists of online accounts were loaded when
// they logged in, so they keep chatting, checked.
func TestFailClosed(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "kontor.db"))
	if err != nil {
		t.Fatal(err)
	}
	srv := modtest.New(t, modtest.Options{Store: st}, modtest.Module(t, blocking.ID))
	srv.Account("alice")
	srv.Account("bob")
	srv.Account("carol")
	if _, err := st.BlockJIDs(context.Background(), alice, []string{carol}, 0); err != nil {
		t.Fatal(err)
	}
	a := srv.Connect(alice + "/phone")
	b := srv.Connect(bob + "/desk")
	online(t, a, b)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	b.SendXML("<message type='chat' to='carol@example.com'><body>hi</body></message>")
	if got := b.Next(nil); modtest.ErrorCondition(got) != stanza.InternalServerError {
		t.Errorf("to carol (not online): bob got %s, want internal-server-error", got.El)
	}
	b.SendXML("<message type='chat' to='alice@example.com/phone'><body>hi</body></message>")
	a.Next(fromBare(bob)) // alice's list was loaded at login: checked, and bob is not on it
	none(t, a, "unchecked", func(x *stanza.Stanza) bool { return x.From.Bare().String() == carol })
}

// TestMalformedStoredJID: a stored JID that does not parse (written by
// hand into the database) blocks nothing and breaks nothing.
func TestMalformedStoredJID(t *testing.T) {
	srv := newServer(t, modtest.Options{}, nil)
	if _, err := srv.Store.(storage.Blocklist).BlockJIDs(context.Background(), alice, []string{"@@", bob}, 0); err != nil {
		t.Fatal(err)
	}
	a := srv.Connect(alice + "/phone")
	b := srv.Connect(bob + "/desk")
	online(t, a, b)
	if got, want := blocklist(t, a), []string{"@@", bob}; !slices.Equal(got, want) {
		t.Errorf("blocklist = %q, want %q", got, want)
	}
	if _, err := jid.Parse("@@"); err == nil {
		t.Fatal("the test needs a JID that does not parse")
	}
	b.SendXML("<message type='chat' to='alice@example.com/phone'><body>hi</body></message>")
	if got := b.Next(nil); modtest.ErrorCondition(got) != stanza.ServiceUnavailable {
		t.Errorf("bob got %s, want service-unavailable", got.El)
	}
	c := srv.Connect(carol + "/desk")
	c.SendXML("<message type='chat' to='alice@example.com/phone'><body>hi</body></message>")
	a.Next(fromBare(carol))
	// It cannot be named in an unblock, but unblock all removes it.
	if res := iq(t, a, "<iq type='set'><unblock xmlns='urn:xmpp:blocking'><item jid='@@'/></unblock></iq>"); modtest.ErrorCondition(res) != stanza.JIDMalformed {
		t.Errorf("unblock of a malformed JID: %s", res.El)
	}
	unblock(t, a)
	if got := blocklist(t, a); len(got) != 0 {
		t.Errorf("after unblock all, blocklist = %q", got)
	}
}

package offline

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

const bob = "bob@example.com"

func newServer(t *testing.T, opts modtest.Options, configure func(*Options)) (*modtest.Server, *Module) {
	t.Helper()
	info, ok := module.Lookup("offline")
	if !ok {
		t.Fatal("offline is not registered")
	}
	m := info.New().(*Module)
	if configure != nil {
		configure(&m.opts)
	}
	if err := m.opts.Validate(); err != nil {
		t.Fatal(err)
	}
	srv := modtest.New(t, opts, router.Enabled{Info: info, Module: m})
	srv.Account("alice")
	srv.Account("bob")
	return srv, m
}

// available makes c available with a priority, as the presence module
// would on its initial presence.
func available(t *testing.T, srv *modtest.Server, c *modtest.Client, priority int) {
	t.Helper()
	p := modtest.Parse(t, fmt.Sprintf("<presence><priority>%d</priority></presence>", priority))
	p.SetFrom(c.JID)
	srv.Host.SetPresence(context.Background(), c.Res, p)
}

func stored(t *testing.T, srv *modtest.Server, owner string) []storage.OfflineMessage {
	t.Helper()
	msgs, err := srv.Store.OfflineMessages(context.Background(), owner, 0)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

func isMessage(s *stanza.Stanza) bool { return s.Kind == stanza.KindMessage }

func body(s *stanza.Stanza) string { return s.El.ChildText(stanza.NSClient, "body") }

func TestStoredSealedAndDelivered(t *testing.T) {
	srv, _ := newServer(t, modtest.Options{}, nil)
	a := srv.Connect("alice@example.com/home")
	before := time.Now().UTC().Truncate(time.Millisecond)
	a.SendXML(`<message to='bob@example.com' type='chat' id='m1'><body>O blessed, blessed night!</body></message>`)

	msgs := stored(t, srv, bob)
	if len(msgs) != 1 {
		t.Fatalf("%d stored, want 1", len(msgs))
	}
	m := msgs[0]
	// The test sealer marks what it sealed: the store got sealed bytes.
	if !strings.HasPrefix(string(m.Sealed), "sealed:"+bob+":") {
		t.Fatalf("stored bytes were not sealed for bob: %q", m.Sealed)
	}
	if m.From != "alice@example.com/home" || m.Stamp.Before(before.Add(-time.Millisecond)) {
		t.Fatalf("metadata from=%q stamp=%v", m.From, m.Stamp)
	}
	a.Nothing(50*time.Millisecond, nil) // no error for the sender

	b := srv.Connect("bob@example.com/balcony")
	b.Nothing(20*time.Millisecond, isMessage) // bound, not yet available
	available(t, srv, b, 1)
	got := b.Next(isMessage)
	if body(got) != "O blessed, blessed night!" || got.From.String() != "alice@example.com/home" || got.ID != "m1" {
		t.Fatalf("delivered %s", got.El)
	}
	d := got.El.Child(stanza.NSDelay, "delay")
	if d == nil || d.Get("from") != "example.com" || d.Text() != "Offline Storage" {
		t.Fatalf("delay: %s", got.El)
	}
	stamp, err := time.Parse(time.RFC3339, d.Get("stamp"))
	if err != nil || !strings.HasSuffix(d.Get("stamp"), "Z") || stamp.Sub(m.Stamp).Abs() > time.Millisecond {
		t.Fatalf("stamp %q (%v), stored %v", d.Get("stamp"), err, m.Stamp)
	}
	if left := stored(t, srv, bob); len(left) != 0 {
		t.Fatalf("%d left after delivery", len(left))
	}
	// A second available resource gets nothing more.
	b2 := srv.Connect("bob@example.com/orchard")
	available(t, srv, b2, 1)
	b2.Nothing(50*time.Millisecond, isMessage)
}

func TestDeliveredInOrder(t *testing.T) {
	srv, _ := newServer(t, modtest.Options{}, nil)
	a := srv.Connect("alice@example.com/home")
	const n = 5
	for i := range n {
		a.SendXML(fmt.Sprintf(`<message to='bob@example.com'><body>%d</body></message>`, i))
	}
	b := srv.Connect("bob@example.com/balcony")
	available(t, srv, b, 0)
	var last time.Time
	for i := range n {
		got := b.Next(isMessage)
		if body(got) != fmt.Sprint(i) {
			t.Fatalf("message %d has body %q", i, body(got))
		}
		stamp, err := time.Parse(time.RFC3339, got.El.Child(stanza.NSDelay, "delay").Get("stamp"))
		if err != nil || stamp.Before(last) {
			t.Fatalf("stamp %v after %v (%v)", stamp, last, err)
		}
		last = stamp
	}
}

func TestNegativePriority(t *testing.T) {
	srv, _ := newServer(t, modtest.Options{}, nil)
	a := srv.Connect("alice@example.com/home")
	b := srv.Connect("bob@example.com/bot")
	available(t, srv, b, -1)
	a.SendXML(`<message to='bob@example.com' type='chat'><body>for a human</body></message>`)
	if len(stored(t, srv, bob)) != 1 {
		t.Fatal("a message for a user with only a negative-priority resource was not stored")
	}
	b.Nothing(50*time.Millisecond, isMessage)

	// The resource raises its priority: the presence module records it,
	// then the broadcast passes the Outbound chain.
	available(t, srv, b, 5)
	b.SendXML(`<presence><priority>5</priority></presence>`)
	if got := b.Next(isMessage); body(got) != "for a human" {
		t.Fatalf("delivered %s", got.El)
	}
	if len(stored(t, srv, bob)) != 0 {
		t.Fatal("not deleted")
	}
}

func TestAvailableAgainAfterUnavailable(t *testing.T) {
	srv, _ := newServer(t, modtest.Options{}, nil)
	a := srv.Connect("alice@example.com/home")
	b := srv.Connect("bob@example.com/balcony")
	available(t, srv, b, 0)
	srv.Host.SetPresence(context.Background(), b.Res, nil) // unavailable, still connected
	a.SendXML(`<message to='bob@example.com'><body>later</body></message>`)
	if len(stored(t, srv, bob)) != 1 {
		t.Fatal("not stored while bob was unavailable")
	}
	available(t, srv, b, 0)
	if got := b.Next(isMessage); body(got) != "later" {
		t.Fatalf("delivered %s", got.El)
	}
}

func TestQuota(t *testing.T) {
	srv, _ := newServer(t, modtest.Options{}, func(o *Options) { o.MaxPerUser = 2 })
	a := srv.Connect("alice@example.com/home")
	for i := range 2 {
		a.SendXML(fmt.Sprintf(`<message to='bob@example.com' id='ok%d'><body>%d</body></message>`, i, i))
	}
	a.SendXML(`<message to='bob@example.com' id='full'><body>one too many</body></message>`)
	r := a.Next(func(s *stanza.Stanza) bool { return s.ID == "full" })
	e, ok := stanza.ErrorOf(r)
	if !ok || r.Type != "error" || e.Type != stanza.Cancel || e.Condition != stanza.ServiceUnavailable ||
		e.Text != "the recipient's offline storage is full" {
		t.Fatalf("got %s", r.El)
	}
	if r.From.String() != bob {
		t.Fatalf("error from %q", r.From)
	}
	a.Nothing(20*time.Millisecond, func(s *stanza.Stanza) bool { return s.ID != "full" })
	if n := len(stored(t, srv, bob)); n != 2 {
		t.Fatalf("%d stored, want 2", n)
	}
}

func TestWhatIsStored(t *testing.T) {
	tests := []struct {
		name    string
		message string
		stored  bool
		// bounce is the error the sender gets, "" for none.
		bounce string
	}{
		{name: "chat with body", message: `<message to='bob@example.com' type='chat'><body>hi</body></message>`, stored: true},
		{name: "normal with body", message: `<message to='bob@example.com' type='normal'><body>hi</body></message>`, stored: true},
		{name: "no type", message: `<message to='bob@example.com'><subject>hi</subject></message>`, stored: true},
		{name: "to a vanished full JID", message: `<message to='bob@example.com/gone' type='chat'><body>hi</body></message>`, stored: true},
		{name: "receipt", message: `<message to='bob@example.com'><received xmlns='urn:xmpp:receipts' id='x'/></message>`, stored: true},
		{name: "encrypted without body", message: `<message to='bob@example.com' type='chat'><encrypted xmlns='urn:xmpp:omemo:2'><payload>AAAA</payload></encrypted></message>`, stored: true},
		{name: "headline", message: `<message to='bob@example.com' type='headline'><body>news</body></message>`},
		{name: "groupchat", message: `<message to='bob@example.com' type='groupchat'><body>hi all</body></message>`, bounce: stanza.ServiceUnavailable},
		{name: "error", message: `<message to='bob@example.com' type='error'><body>hi</body><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`},
		{name: "chat state only", message: `<message to='bob@example.com' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/><origin-id xmlns='urn:xmpp:sid:0' id='o1'/></message>`, bounce: stanza.ServiceUnavailable},
		{name: "empty body", message: `<message to='bob@example.com' type='chat'><body/><thread>t1</thread></message>`, bounce: stanza.ServiceUnavailable},
		{name: "chat state with body", message: `<message to='bob@example.com' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/><body>hi</body></message>`, stored: true},
		{name: "no-store hint", message: `<message to='bob@example.com' type='chat'><body>off the record</body><no-store xmlns='urn:xmpp:hints'/></message>`, bounce: stanza.ServiceUnavailable},
		{name: "no-store wins over store", message: `<message to='bob@example.com' type='chat'><body>x</body><store xmlns='urn:xmpp:hints'/><no-store xmlns='urn:xmpp:hints'/></message>`, bounce: stanza.ServiceUnavailable},
		{name: "store hint forces", message: `<message to='bob@example.com' type='chat'><gone xmlns='http://jabber.org/protocol/chatstates'/><store xmlns='urn:xmpp:hints'/></message>`, stored: true},
		{name: "store hint does not store a headline", message: `<message to='bob@example.com' type='headline'><body>x</body><store xmlns='urn:xmpp:hints'/></message>`},
		{name: "no-permanent-store still stored", message: `<message to='bob@example.com' type='chat'><body>x</body><no-permanent-store xmlns='urn:xmpp:hints'/></message>`, stored: true},
		{name: "no such account", message: `<message to='nobody@example.com' type='chat'><body>hi</body></message>`, bounce: stanza.ServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := newServer(t, modtest.Options{}, nil)
			a := srv.Connect("alice@example.com/home")
			a.SendXML(tt.message)
			n := len(stored(t, srv, bob))
			if (n == 1) != tt.stored || n > 1 {
				t.Fatalf("%d stored, want stored=%v", n, tt.stored)
			}
			if tt.bounce == "" {
				a.Nothing(30*time.Millisecond, nil)
				return
			}
			r := a.Next(nil)
			if got := modtest.ErrorCondition(r); got != tt.bounce {
				t.Fatalf("sender got %s, want %s", r.El, tt.bounce)
			}
		})
	}
}

func TestOnlineRecipientNotStored(t *testing.T) {
	srv, _ := newServer(t, modtest.Options{}, nil)
	a := srv.Connect("alice@example.com/home")
	b := srv.Connect("bob@example.com/balcony")
	available(t, srv, b, 0)
	a.SendXML(`<message to='bob@example.com' type='chat'><body>hi</body></message>`)
	if got := b.Next(isMessage); got.El.Child(stanza.NSDelay, "delay") != nil {
		t.Fatalf("a live message has a delay: %s", got.El)
	}
	if len(stored(t, srv, bob)) != 0 {
		t.Fatal("stored although bob was online")
	}
}

func TestForgedServerDelayRemoved(t *testing.T) {
	srv, _ := newServer(t, modtest.Options{}, nil)
	a := srv.Connect("alice@example.com/home")
	a.SendXML(`<message to='bob@example.com'><body>hi</body>` +
		`<delay xmlns='urn:xmpp:delay' from='example.com' stamp='2001-01-01T00:00:00Z'/>` +
		`<delay xmlns='urn:xmpp:delay' from='alice@example.com/home' stamp='2002-02-02T00:00:00Z'/></message>`)
	b := srv.Connect("bob@example.com/balcony")
	available(t, srv, b, 0)
	got := b.Next(isMessage)
	var delays []string
	got.El.Children(func(c *stanza.Element) bool {
		if c.Name.Space == stanza.NSDelay {
			delays = append(delays, c.Get("from")+" "+c.Get("stamp"))
		}
		return true
	})
	if len(delays) != 2 || delays[0] != "alice@example.com/home 2002-02-02T00:00:00Z" ||
		!strings.HasPrefix(delays[1], "example.com 20") || strings.HasPrefix(delays[1], "example.com 2001") {
		t.Fatalf("delays %q", delays)
	}
}

func TestOriginalNotChanged(t *testing.T) {
	srv, m := newServer(t, modtest.Options{}, nil)
	s := modtest.Parse(t, `<message from='alice@example.com/home' to='bob@example.com'><body>hi</body></message>`)
	before := s.El.String()
	p := &module.Packet{Stanza: s, Target: module.ToAccount, AccountExists: true}
	v, err := m.take(context.Background(), p)
	if err != nil || v != module.Done {
		t.Fatalf("take = %v, %v", v, err)
	}
	if s.El.String() != before {
		t.Fatalf("the router's stanza changed:\n%s\n%s", before, s.El.String())
	}
	if len(stored(t, srv, bob)) != 1 {
		t.Fatal("not stored")
	}
}

func TestResourceAvailableMeanwhile(t *testing.T) {
	// The router chose no target, then bob became available before the hook
	// took the owner's lock: the message goes to him, not to storage.
	srv, m := newServer(t, modtest.Options{}, nil)
	b := srv.Connect("bob@example.com/balcony")
	low := srv.Connect("bob@example.com/tablet")
	available(t, srv, b, 3)
	available(t, srv, low, 1)
	s := modtest.Parse(t, `<message from='alice@example.com/home' to='bob@example.com'><body>hi</body></message>`)
	p := &module.Packet{Stanza: s, Target: module.ToAccount, AccountExists: true}
	v, err := m.take(context.Background(), p)
	if err != nil || v != module.Continue {
		t.Fatalf("take = %v, %v", v, err)
	}
	if len(p.Targets) != 1 || p.Targets[0].JID() != b.JID {
		t.Fatalf("targets %v, want the highest priority resource", p.Targets)
	}
	if len(stored(t, srv, bob)) != 0 {
		t.Fatal("stored although bob was available")
	}
}

func TestTwoResourcesAtOnce(t *testing.T) {
	for round := range 5 {
		srv, _ := newServer(t, modtest.Options{}, nil)
		a := srv.Connect("alice@example.com/home")
		const n = 20
		for i := range n {
			a.SendXML(fmt.Sprintf(`<message to='bob@example.com'><body>%d</body></message>`, i))
		}
		clients := []*modtest.Client{srv.Connect("bob@example.com/one"), srv.Connect("bob@example.com/two")}
		var wg sync.WaitGroup
		for _, c := range clients {
			wg.Go(func() { available(t, srv, c, 0) })
		}
		wg.Wait()
		var got []string
		for _, c := range clients {
			var mine []string
			for _, s := range c.Received() {
				if isMessage(s) {
					mine = append(mine, body(s))
				}
			}
			if len(mine) != 0 && len(mine) != n {
				t.Fatalf("round %d: %s got %d of %d: the messages were split", round, c.JID, len(mine), n)
			}
			got = append(got, mine...)
		}
		if len(got) != n {
			t.Fatalf("round %d: %d delivered in all, want %d exactly once", round, len(got), n)
		}
		for i, b := range got {
			if b != fmt.Sprint(i) {
				t.Fatalf("round %d: out of order: %q", round, got)
			}
		}
	}
}

func TestUnreadableMessages(t *testing.T) {
	srv, m := newServer(t, modtest.Options{}, nil)
	ctx := context.Background()
	a := srv.Connect("alice@example.com/home")
	a.SendXML(`<message to='bob@example.com'><body>first</body></message>`)
	now := time.Now().UTC().Truncate(time.Microsecond)
	// A row that does not open (sealed for someone else, as if moved).
	moved, _ := m.sealer.Seal("carol@example.com", associatedData("x@example.com", now), []byte("<message xmlns='jabber:client'><body>moved</body></message>"))
	movedID, err := srv.Store.StoreOffline(ctx, storage.OfflineMessage{Owner: bob, From: "x@example.com", Stamp: now, Sealed: moved}, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A row that opens but does not parse.
	junk, _ := m.sealer.Seal(bob, associatedData("y@example.com", now), []byte("<message xmlns='jabber:client'><body>unclosed"))
	if _, err := srv.Store.StoreOffline(ctx, storage.OfflineMessage{Owner: bob, From: "y@example.com", Stamp: now, Sealed: junk}, 0); err != nil {
		t.Fatal(err)
	}
	// A row that opens and parses but is not a message.
	iq, _ := m.sealer.Seal(bob, associatedData("z@example.com", now), []byte("<iq xmlns='jabber:client' type='get' id='1'/>"))
	if _, err := srv.Store.StoreOffline(ctx, storage.OfflineMessage{Owner: bob, From: "z@example.com", Stamp: now, Sealed: iq}, 0); err != nil {
		t.Fatal(err)
	}
	a.SendXML(`<message to='bob@example.com'><body>last</body></message>`)

	b := srv.Connect("bob@example.com/balcony")
	available(t, srv, b, 0)
	if got := body(b.Next(isMessage)); got != "first" {
		t.Fatalf("got %q", got)
	}
	if got := body(b.Next(isMessage)); got != "last" {
		t.Fatalf("got %q", got)
	}
	b.Nothing(30*time.Millisecond, isMessage)
	left := stored(t, srv, bob)
	if len(left) != 1 || left[0].ID != movedID {
		t.Fatalf("left %v, want only the row that does not open", left)
	}
}

func TestMoreThanOneBatch(t *testing.T) {
	srv, m := newServer(t, modtest.Options{}, nil)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	// A full batch of rows that do not open, then good ones: delivery must
	// page past the kept rows.
	for range batch {
		bad, _ := m.sealer.Seal("carol@example.com", associatedData("", now), []byte("x"))
		if _, err := srv.Store.StoreOffline(ctx, storage.OfflineMessage{Owner: bob, Stamp: now, Sealed: bad}, 0); err != nil {
			t.Fatal(err)
		}
	}
	a := srv.Connect("alice@example.com/home")
	for i := range batch + 5 {
		a.SendXML(fmt.Sprintf(`<message to='bob@example.com'><body>%d</body></message>`, i))
	}
	b := srv.Connect("bob@example.com/balcony")
	available(t, srv, b, 0)
	for i := range batch + 5 {
		if got := body(b.Next(isMessage)); got != fmt.Sprint(i) {
			t.Fatalf("message %d: %q", i, got)
		}
	}
	if n := len(stored(t, srv, bob)); n != batch {
		t.Fatalf("%d left, want the %d that do not open", n, batch)
	}
}

func TestDisabled(t *testing.T) {
	srv, m := newServer(t, modtest.Options{}, func(o *Options) { o.Enabled = false })
	for _, f := range srv.Host.DiscoInfo(module.ToHost).Features {
		if f == Feature {
			t.Fatal("msgoffline announced while disabled")
		}
	}
	// A message stored while the module was enabled is still delivered.
	old := modtest.Parse(t, `<message from='alice@example.com/home' to='bob@example.com'><body>old</body></message>`)
	if err := m.save(context.Background(), jid.MustParse(bob), old); err != nil {
		t.Fatal(err)
	}
	a := srv.Connect("alice@example.com/home")
	a.SendXML(`<message to='bob@example.com' id='new'><body>new</body></message>`)
	if got := modtest.ErrorCondition(a.Next(nil)); got != stanza.ServiceUnavailable {
		t.Fatalf("sender got %q, want service-unavailable", got)
	}
	b := srv.Connect("bob@example.com/balcony")
	available(t, srv, b, 0)
	if got := body(b.Next(isMessage)); got != "old" {
		t.Fatalf("got %q", got)
	}
	b.Nothing(30*time.Millisecond, isMessage)
}

func TestDisco(t *testing.T) {
	srv, _ := newServer(t, modtest.Options{}, nil)
	for _, f := range srv.Host.DiscoInfo(module.ToHost).Features {
		if f == Feature {
			return
		}
	}
	t.Fatal("msgoffline is not announced")
}

func TestNoSealer(t *testing.T) {
	info, _ := module.Lookup("offline")
	r := router.New(router.Config{})
	if _, err := r.AddHost(jid.MustParse("example.com"), []router.Enabled{{Info: info, Module: info.New()}}); err == nil {
		t.Fatal("provisioned without a sealer")
	}
}

func TestOwnerLocksForgotten(t *testing.T) {
	srv, m := newServer(t, modtest.Options{}, nil)
	a := srv.Connect("alice@example.com/home")
	a.SendXML(`<message to='bob@example.com'><body>x</body></message>`)
	b := srv.Connect("bob@example.com/balcony")
	available(t, srv, b, 0)
	b.Next(isMessage)
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.owners) != 0 {
		t.Fatalf("%d owner locks left", len(m.owners))
	}
}

func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts Options
		ok   bool
	}{
		{"defaults", DefaultOptions(), true},
		{"zero", Options{Enabled: true}, false},
		{"huge", Options{Enabled: true, MaxPerUser: 1 << 30}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.opts.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v", err)
			}
		})
	}
}

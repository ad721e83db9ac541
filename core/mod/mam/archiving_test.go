package mam

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"kontor.im/kontor/core/uuid7"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/mod/mam/mamtest"
	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name      string
		xml       string
		archive   bool
		encrypted bool
	}{
		{name: "chat with body", xml: `<message type='chat'><body>hi</body></message>`, archive: true},
		{name: "no type", xml: `<message><body>hi</body></message>`, archive: true},
		{name: "normal", xml: `<message type='normal'><body>hi</body></message>`, archive: true},
		{name: "headline", xml: `<message type='headline'><body>news</body></message>`},
		{name: "groupchat", xml: `<message type='groupchat'><body>all</body></message>`},
		{name: "error", xml: `<message type='error'><body>hi</body><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`},
		{name: "chat state only", xml: `<message type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`},
		{name: "empty body", xml: `<message type='chat'><body/></message>`},
		{name: "body in another namespace", xml: `<message type='chat'><body xmlns='urn:example'>x</body></message>`},
		{name: "OMEMO", xml: `<message type='chat'><encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='1'/></encrypted><body>I sent you an OMEMO encrypted message</body></message>`, archive: true, encrypted: true},
		{name: "OMEMO 2 without body", xml: `<message type='chat'><encrypted xmlns='urn:xmpp:omemo:2'><header sid='1'/></encrypted></message>`, archive: true, encrypted: true},
		{name: "OpenPGP", xml: `<message type='chat'><openpgp xmlns='urn:xmpp:openpgp:0'>BASE64</openpgp></message>`, archive: true, encrypted: true},
		{name: "legacy PGP", xml: `<message type='chat'><x xmlns='jabber:x:encrypted'>BASE64</x><body>encrypted</body></message>`, archive: true, encrypted: true},
		{name: "encrypted groupchat", xml: `<message type='groupchat'><encrypted xmlns='urn:xmpp:omemo:2'/></message>`},
		{name: "no-store", xml: `<message type='chat'><body>hi</body><no-store xmlns='urn:xmpp:hints'/></message>`},
		{name: "no-permanent-store", xml: `<message type='chat'><body>hi</body><no-permanent-store xmlns='urn:xmpp:hints'/></message>`},
		{name: "no-store on encrypted", xml: `<message type='chat'><encrypted xmlns='urn:xmpp:omemo:2'/><no-store xmlns='urn:xmpp:hints'/></message>`, encrypted: true},
		{name: "store hint without body", xml: `<message type='chat'><received xmlns='urn:xmpp:chat-markers:0' id='x'/><store xmlns='urn:xmpp:hints'/></message>`, archive: true},
		{name: "store and no-store", xml: `<message type='chat'><store xmlns='urn:xmpp:hints'/><no-store xmlns='urn:xmpp:hints'/><body>hi</body></message>`},
		{name: "store hint on headline", xml: `<message type='headline'><store xmlns='urn:xmpp:hints'/><body>hi</body></message>`},
		{name: "presence", xml: `<presence><status>hi</status></presence>`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			archive, encrypted := classify(modtest.Parse(t, tc.xml))
			if archive != tc.archive || encrypted != tc.encrypted {
				t.Fatalf("classify = (%v, %v), want (%v, %v)", archive, encrypted, tc.archive, tc.encrypted)
			}
		})
	}
}

// TestArchivesBothParties sends one message per case and checks what each
// party's archive holds and what the recipient got.
func TestArchivesBothParties(t *testing.T) {
	tests := []struct {
		name       string
		offline    bool
		bobOnline  bool
		from, to   string
		xml        string
		aliceWants int // messages in alice's archive
		bobWants   int
		delivered  bool // bob's session got it
		bounced    bool // alice got an error
	}{
		{name: "to the bare JID of an online user", bobOnline: true, to: bob, aliceWants: 1, bobWants: 1, delivered: true},
		{name: "to a full JID", bobOnline: true, to: bob + "/phone", aliceWants: 1, bobWants: 1, delivered: true},
		{name: "to a resource that is gone", bobOnline: true, to: bob + "/laptop", aliceWants: 1, bobWants: 1, delivered: true},
		{name: "stored offline", offline: true, to: bob, aliceWants: 1, bobWants: 1},
		{name: "nobody to take it: bounced, not in the recipient's archive", to: bob, aliceWants: 1, bobWants: 0, bounced: true},
		{name: "to an account that does not exist", to: "nobody@example.com", aliceWants: 1, bounced: true},
		{name: "to another domain", to: "juliet@capulet.example", aliceWants: 1, bounced: true},
		{name: "headline is not archived", bobOnline: true, to: bob, xml: `<message to='%s' type='headline'><body>news</body></message>`, delivered: true},
		{name: "no-store is not archived", bobOnline: true, to: bob, xml: `<message to='%s' type='chat'><body>off the record</body><no-store xmlns='urn:xmpp:hints'/></message>`, delivered: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newServer(t, serverOptions{offline: tc.offline})
			a := ts.connect(alice + "/home")
			var b *client
			if tc.bobOnline {
				b = ts.connect(bob + "/phone")
			}
			text := tc.xml
			if text == "" {
				text = `<message to='%s' type='chat' id='m1'><body>Wherefore art thou?</body></message>`
			}
			a.send(strings.Replace(text, "%s", tc.to, 1))

			if n := len(ts.arch.Messages(alice)); n != tc.aliceWants {
				t.Fatalf("alice's archive has %d messages, want %d", n, tc.aliceWants)
			}
			if n := len(ts.arch.Messages(bob)); n != tc.bobWants {
				t.Fatalf("bob's archive has %d messages, want %d", n, tc.bobWants)
			}
			got := a.received()
			if bounced := len(got) == 1 && got[0].IsError(); bounced != tc.bounced {
				t.Fatalf("alice received %s; bounced want %v", dump(got), tc.bounced)
			}
			if b != nil {
				if got := messages(b.received()); (len(got) == 1) != tc.delivered {
					t.Fatalf("bob received %s; delivered want %v", dump(got), tc.delivered)
				}
			}
			if tc.aliceWants == 1 {
				m := ts.arch.Messages(alice)[0]
				if _, ok := uuid7.Millis(m.ID); !ok || !m.Outgoing || m.With != tc.to || m.Owner != alice || !m.Time.Equal(t0) {
					t.Fatalf("alice's archived message: %+v", m)
				}
				el := parseStored(t, m.Stanza)
				if el.Get("from") != alice+"/home" || el.Get("to") != tc.to || el.ChildText(stanza.NSClient, "body") == "" {
					t.Fatalf("alice's archived stanza: %s", el)
				}
			}
			if tc.bobWants == 1 {
				m := ts.arch.Messages(bob)[0]
				if _, ok := uuid7.Millis(m.ID); !ok || m.Outgoing || m.With != alice+"/home" || m.Owner != bob || !m.Time.Equal(t0) {
					t.Fatalf("bob's archived message: %+v", m)
				}
			}
		})
	}
}

func TestStanzaID(t *testing.T) {
	tests := []struct {
		name string
		xml  string
		// stanza-ids by others that must survive
		keep []string
	}{
		{name: "plain", xml: `<message to='bob@example.com' type='chat'><body>hi</body></message>`},
		{name: "forged stanza-id removed", xml: `<message to='bob@example.com' type='chat'><body>hi</body>` +
			`<stanza-id xmlns='urn:xmpp:sid:0' by='bob@example.com' id='forged-1'/>` +
			`<stanza-id xmlns='urn:xmpp:sid:0' by='bob@example.com' id='forged-2'/></message>`},
		{name: "other stanza-ids and origin-id kept", xml: `<message to='bob@example.com/phone' type='chat'><body>hi</body>` +
			`<stanza-id xmlns='urn:xmpp:sid:0' by='room@conference.example.com' id='room-1'/>` +
			`<stanza-id xmlns='urn:xmpp:sid:0' by='alice@example.com' id='alices-own'/>` +
			`<origin-id xmlns='urn:xmpp:sid:0' id='origin-1'/></message>`,
			keep: []string{"room@conference.example.com"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newServer(t, serverOptions{})
			a := ts.connect(alice + "/home")
			b := ts.connect(bob + "/phone")
			orig := modtest.Parse(t, tc.xml)
			orig.SetFrom(a.jid)
			before := orig.El.String()
			ts.r.RouteFrom(context.Background(), a.res, orig)

			if after := orig.El.String(); after != before {
				t.Fatalf("the routed stanza was changed:\nbefore %s\nafter  %s", before, after)
			}
			got := messages(b.received())
			if len(got) != 1 {
				t.Fatalf("bob received %s", dump(got))
			}
			ids := stanzaIDs(got[0].El, bob)
			archived := ts.archivedIDs(bob)
			if len(ids) != 1 || len(archived) != 1 || ids[0] != archived[0] {
				t.Fatalf("delivered stanza-ids by bob %v, bob's archive %v: want one, the same", ids, archived)
			}
			stored := parseStored(t, ts.arch.Messages(bob)[0].Stanza)
			if sids := stanzaIDs(stored, bob); len(sids) != 1 || sids[0] != ids[0] {
				t.Fatalf("bob's archived copy has stanza-ids %v, want [%s]", sids, ids[0])
			}
			for _, by := range tc.keep {
				if len(stanzaIDs(got[0].El, by)) != 1 {
					t.Fatalf("the stanza-id by %s was not kept: %s", by, got[0].El)
				}
			}
			if strings.Contains(tc.xml, "origin-id") && got[0].El.Child(NSStanzaID, "origin-id") == nil {
				t.Fatalf("origin-id not kept: %s", got[0].El)
			}
			// The sender's copy: no stanza-id about either archive.
			sent := parseStored(t, ts.arch.Messages(alice)[0].Stanza)
			if n := len(stanzaIDs(sent, bob)) + len(stanzaIDs(sent, alice)); n != 0 {
				t.Fatalf("alice's archived copy has stanza-ids for bob or alice: %s", sent)
			}
			if sent.Child(NSStanzaID, "origin-id") == nil && strings.Contains(tc.xml, "origin-id") {
				t.Fatalf("origin-id not kept in alice's copy: %s", sent)
			}
			if ts.mod.stamps.len() != 0 {
				t.Fatalf("%d stamps left after delivery", ts.mod.stamps.len())
			}
		})
	}
}

// TestStanzaIDOffline: a message stored offline carries the id it has in
// the archive when it is delivered later.
func TestStanzaIDOffline(t *testing.T) {
	ts := newServer(t, serverOptions{offline: true})
	a := ts.connect(alice + "/home")
	a.send(`<message to='bob@example.com' type='chat'><body>later</body><stanza-id xmlns='urn:xmpp:sid:0' by='bob@example.com' id='forged'/></message>`)
	archived := ts.archivedIDs(bob)
	if len(archived) != 1 {
		t.Fatalf("bob's archive: %v", archived)
	}
	b := ts.connect(bob + "/phone") // available: offline delivery
	got := messages(b.received())
	if len(got) != 1 {
		t.Fatalf("bob received %s", dump(got))
	}
	if ids := stanzaIDs(got[0].El, bob); len(ids) != 1 || ids[0] != archived[0] {
		t.Fatalf("offline copy has stanza-ids %v, archive %v", ids, archived)
	}
}

// TestRedeliveryArchivedOnce: a message a session held unacknowledged
// when it ended is routed again (Router.Redeliver) to the account's other
// resources or to offline storage. It keeps the id it has in the archive
// and is not archived a second time; the same stanza routed by anyone else
// is a forgery and is re-stamped.
func TestRedeliveryArchivedOnce(t *testing.T) {
	ts := newServer(t, serverOptions{offline: true})
	a := ts.connect(alice + "/home")
	phone := ts.connect(bob + "/phone")
	a.send(`<message to='bob@example.com' type='chat'><body>do not lose me</body></message>`)
	got := messages(phone.received())
	if len(got) != 1 {
		t.Fatalf("bob's phone received %s", dump(got))
	}
	archived := ts.archivedIDs(bob)
	if len(archived) != 1 {
		t.Fatalf("bob's archive: %v", archived)
	}
	// The phone's session ends unacknowledged; the session redelivers the
	// message to bob's bare JID, as core/session does.
	ts.r.Unbind(context.Background(), phone.res)
	again := got[0].Readdress(got[0].From, jid.MustParse(bob))
	ts.r.Redeliver(context.Background(), again)
	if ids := ts.archivedIDs(bob); len(ids) != 1 || ids[0] != archived[0] {
		t.Fatalf("after redelivery bob's archive has %v, want [%s]", ids, archived[0])
	}
	laptop := ts.connect(bob + "/laptop") // gets it from offline storage
	later := messages(laptop.received())
	if len(later) != 1 {
		t.Fatalf("bob's laptop received %s", dump(later))
	}
	if ids := stanzaIDs(later[0].El, bob); len(ids) != 1 || ids[0] != archived[0] {
		t.Fatalf("the redelivered copy has stanza-ids %v, want [%s]", ids, archived[0])
	}

	// Routed as new (not a redelivery), the same stanza-id is a forgery.
	ts.r.Route(context.Background(), got[0].Readdress(got[0].From, jid.MustParse(bob+"/laptop")))
	ids := ts.archivedIDs(bob)
	if len(ids) != 2 || ids[0] != archived[0] {
		t.Fatalf("bob's archive has %v, want the first id and a new one", ids)
	}
}

func TestForgedIDRemovedWhenNotArchived(t *testing.T) {
	tests := []struct {
		name string
		xml  string
	}{
		{name: "preference never", xml: `<message to='bob@example.com' type='chat'><body>hi</body><stanza-id xmlns='urn:xmpp:sid:0' by='bob@example.com' id='forged'/></message>`},
		{name: "headline", xml: `<message to='bob@example.com' type='headline'><body>hi</body><stanza-id xmlns='urn:xmpp:sid:0' by='bob@example.com' id='forged'/></message>`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newServer(t, serverOptions{})
			if err := ts.arch.SetPrefs(context.Background(), bob, module.ArchivePrefs{Default: Never}); err != nil {
				t.Fatal(err)
			}
			a := ts.connect(alice + "/home")
			b := ts.connect(bob + "/phone")
			a.send(tc.xml)
			got := messages(b.received())
			if len(got) != 1 {
				t.Fatalf("bob received %s", dump(got))
			}
			if ids := stanzaIDs(got[0].El, bob); len(ids) != 0 {
				t.Fatalf("delivered with stanza-ids by bob %v: %s", ids, got[0].El)
			}
			if n := len(ts.arch.Messages(bob)); n != 0 {
				t.Fatalf("bob's archive has %d messages", n)
			}
		})
	}
}

func TestPreferences(t *testing.T) {
	tests := []struct {
		name    string
		prefs   module.ArchivePrefs // bob's
		roster  bool                // alice is in bob's roster
		option  string              // the module's default ("" for always)
		from    string              // alice's resource
		archive bool                // for bob
	}{
		{name: "no prefs: module default always", archive: true},
		{name: "no prefs: module default never", option: Never},
		{name: "no prefs: module default roster, in roster", option: Roster, roster: true, archive: true},
		{name: "no prefs: module default roster, not in roster", option: Roster},
		{name: "always", prefs: module.ArchivePrefs{Default: Always}, option: Never, archive: true},
		{name: "never", prefs: module.ArchivePrefs{Default: Never}},
		{name: "roster, in roster", prefs: module.ArchivePrefs{Default: Roster}, roster: true, archive: true},
		{name: "roster, not in roster", prefs: module.ArchivePrefs{Default: Roster}},
		{name: "never, but alice always", prefs: module.ArchivePrefs{Default: Never, Always: []string{alice}}, archive: true},
		{name: "always, but alice never", prefs: module.ArchivePrefs{Default: Always, Never: []string{alice}}},
		{name: "roster, in roster, but alice never", prefs: module.ArchivePrefs{Default: Roster, Never: []string{alice}}, roster: true},
		{name: "in both lists: never wins", prefs: module.ArchivePrefs{Default: Always, Always: []string{alice}, Never: []string{alice}}},
		{name: "full JID listed, matching resource", prefs: module.ArchivePrefs{Default: Never, Always: []string{alice + "/home"}}, archive: true},
		{name: "full JID listed, other resource", prefs: module.ArchivePrefs{Default: Never, Always: []string{alice + "/work"}}},
		{name: "other JID listed", prefs: module.ArchivePrefs{Default: Always, Never: []string{carol}}, archive: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newServer(t, serverOptions{configure: func(o *Options) {
				if tc.option != "" {
					o.Default = tc.option
				}
			}})
			ctx := context.Background()
			if tc.prefs.Default != "" {
				if err := ts.arch.SetPrefs(ctx, bob, tc.prefs); err != nil {
					t.Fatal(err)
				}
			}
			if tc.roster {
				if _, err := ts.store.PutRosterItem(ctx, bob, storage.RosterItem{Contact: alice, Subscription: storage.SubNone}); err != nil {
					t.Fatal(err)
				}
			}
			a := ts.connect(alice + "/home")
			b := ts.connect(bob + "/phone")
			a.send(`<message to='bob@example.com' type='chat'><body>in</body></message>`)
			b.send(`<message to='alice@example.com/home' type='chat'><body>out</body></message>`)
			// bob's archive gets the incoming and the outgoing message, or
			// neither: the preferences are his and the peer is alice.
			want := 0
			if tc.archive {
				want = 2
			}
			if n := len(ts.arch.Messages(bob)); n != want {
				t.Fatalf("bob's archive has %d messages, want %d", n, want)
			}
			// alice has no preferences: the module default for her.
			wantAlice := 0
			if tc.option == "" {
				wantAlice = 2
			}
			if n := len(ts.arch.Messages(alice)); n != wantAlice {
				t.Fatalf("alice's archive has %d messages, want %d", n, wantAlice)
			}
			if got := messages(b.received()); len(got) != 1 || (len(stanzaIDs(got[0].El, bob)) == 1) != tc.archive {
				t.Fatalf("bob received %s; stamped want %v", dump(got), tc.archive)
			}
		})
	}
}

func TestSelfMessageArchivedOnce(t *testing.T) {
	tests := []struct {
		name string
		to   string
	}{
		{name: "to the own bare JID", to: alice},
		{name: "to another own resource", to: alice + "/work"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newServer(t, serverOptions{})
			a := ts.connect(alice + "/home")
			w := ts.connect(alice + "/work")
			a.send(`<message to='` + tc.to + `' type='chat'><body>note to self</body></message>`)
			msgs := ts.arch.Messages(alice)
			if len(msgs) != 1 || msgs[0].With != alice+"/home" || msgs[0].Outgoing {
				t.Fatalf("alice's archive: %+v", msgs)
			}
			if got := messages(w.received()); len(got) != 1 || len(stanzaIDs(got[0].El, alice)) != 1 {
				t.Fatalf("alice/work received %s", dump(got))
			}
		})
	}
}

func TestArchiveUnavailable(t *testing.T) {
	tests := []struct {
		name     string
		failAt   string // "prefs" (before delivery) or "append" (after)
		stamped  bool
		archived int
	}{
		// A database outage must not lose messages: the module's
		// default (always) decides.
		{name: "preferences unreadable: the default decides, delivered, stamped, archived", failAt: "prefs", stamped: true, archived: 2},
		{name: "append fails: delivered, stamped", failAt: "append", stamped: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			arch := &failingArchive{Archive: mamtest.New(), failAt: tc.failAt}
			ts := newServer(t, serverOptions{archive: arch})
			a := ts.connect(alice + "/home")
			b := ts.connect(bob + "/phone")
			a.send(`<message to='bob@example.com' type='chat'><body>hi</body></message>`)
			got := messages(b.received())
			if len(got) != 1 || (len(stanzaIDs(got[0].El, bob)) == 1) != tc.stamped {
				t.Fatalf("bob received %s, stamped want %v", dump(got), tc.stamped)
			}
			if errs := a.received(); len(errs) != 0 {
				t.Fatalf("alice received %s", dump(errs))
			}
			if n := len(arch.Messages(bob)) + len(arch.Messages(alice)); n != tc.archived {
				t.Fatalf("%d messages archived, want %d", n, tc.archived)
			}
		})
	}
}

// failingArchive fails one kind of call.
type failingArchive struct {
	*mamtest.Archive
	failAt string
}

func (f *failingArchive) Prefs(ctx context.Context, owner string) (module.ArchivePrefs, error) {
	if f.failAt == "prefs" {
		return module.ArchivePrefs{}, errors.New("archive down")
	}
	return f.Archive.Prefs(ctx, owner)
}

func (f *failingArchive) Append(ctx context.Context, m module.ArchivedMessage) error {
	if f.failAt == "append" {
		return errors.New("archive down")
	}
	return f.Archive.Append(ctx, m)
}

// TestOrderOfReplies: a reply that is routed while the message it
// answers is still on its way (here: sent from within the delivery) comes
// after it in both archives.
func TestOrderOfReplies(t *testing.T) {
	ts := newServer(t, serverOptions{})
	a := ts.connect(alice + "/home")
	b := ts.connect(bob + "/phone")
	b.onSend = func(s *stanza.Stanza) {
		if s.Kind == stanza.KindMessage && s.El.ChildText(stanza.NSClient, "body") == "ping" {
			b.send(`<message to='alice@example.com' type='chat'><body>pong</body></message>`)
		}
	}
	a.send(`<message to='bob@example.com' type='chat'><body>ping</body></message>`)
	for _, owner := range []string{alice, bob} {
		var bodies []string
		for _, m := range ts.arch.Messages(owner) {
			bodies = append(bodies, parseStored(t, m.Stanza).ChildText(stanza.NSClient, "body"))
		}
		ids := ts.archivedIDs(owner)
		if len(bodies) != 2 || bodies[0] != "ping" || bodies[1] != "pong" || ids[0] >= ids[1] {
			t.Fatalf("%s's archive: %q with ids %v; want ping, pong in id order", owner, bodies, ids)
		}
	}
}

// dropper drops, in the Outbound Process phase, messages whose body is
// "drop me": a module after mam that ends a message mam reserved an id
// for.
type dropper struct{}

func (dropper) Provision(h module.Host) error {
	h.Hook(module.Outbound, module.Process, func(_ context.Context, p *module.Packet) (module.Verdict, error) {
		if p.Stanza.El.ChildText(stanza.NSClient, "body") == "drop me" {
			return module.Drop, nil
		}
		return module.Continue, nil
	})
	return nil
}

func TestDroppedAfterReserve(t *testing.T) {
	ts := newServer(t, serverOptions{after: []router.Enabled{{Info: module.Info{ID: "dropper"}, Module: dropper{}}}})
	a := ts.connect(alice + "/home")
	b := ts.connect(bob + "/phone")
	a.send(`<message to='bob@example.com' type='chat'><body>drop me</body></message>`)
	if got := messages(b.received()); len(got) != 0 {
		t.Fatalf("bob received %s", dump(got))
	}
	if n := len(ts.arch.Messages(alice)); n != 0 {
		t.Fatalf("alice's archive has %d messages", n)
	}
	// A message that is not archived passes Observe without taking the
	// dropped message's reservation.
	a.send(`<message to='bob@example.com' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	if n := len(ts.arch.Messages(alice)); n != 0 {
		t.Fatalf("alice's archive has %d messages", n)
	}
	ts.clock.set(t0.Add(time.Second))
	a.send(`<message to='bob@example.com' type='chat'><body>keep me</body></message>`)
	if msgs := ts.arch.Messages(alice); len(msgs) != 1 || !msgs[0].Time.Equal(t0.Add(time.Second)) {
		t.Fatalf("alice's archive: %+v", msgs)
	}
	if r := a.res.Value(reservationKey{}); r != nil {
		t.Fatalf("reservation left after Observe: %#v", r)
	}
}

// TestStampsSwept: the stamp of a message that never reaches Observe
// (here: bounced, nobody can receive it) is swept once stale, and a stale
// stamp archives nothing.
func TestStampsSwept(t *testing.T) {
	ts := newServer(t, serverOptions{})
	ts.mod.stamps.sweepEvery = 5
	a := ts.connect(alice + "/home")
	for range 4 {
		a.send(`<message to='bob@example.com' type='chat'><body>nobody home</body></message>`)
	}
	if got := a.received(); len(got) != 4 || !got[0].IsError() {
		t.Fatalf("alice received %s, want 4 errors", dump(got))
	}
	if n := ts.mod.stamps.len(); n != 4 {
		t.Fatalf("%d stamps waiting, want 4", n)
	}
	ts.clock.set(t0.Add(staleAfter + time.Second))
	b := ts.connect(bob + "/phone")
	a.send(`<message to='bob@example.com' type='chat'><body>now</body></message>`) // the fifth stamp sweeps
	if n := ts.mod.stamps.len(); n != 0 {
		t.Fatalf("%d stamps left after the sweep", n)
	}
	if got := messages(b.received()); len(got) != 1 {
		t.Fatalf("bob received %s", dump(got))
	}
	if n := len(ts.arch.Messages(bob)); n != 1 {
		t.Fatalf("bob's archive has %d messages, want 1", n)
	}
}

// TestForeignStampNotArchived: Observe archives only a stanza-id element
// this module created; an equal-looking one from elsewhere is ignored.
func TestForeignStampNotArchived(t *testing.T) {
	ts := newServer(t, serverOptions{})
	s := modtest.Parse(t, `<message from='alice@example.com/home' to='bob@example.com' type='chat'><body>hi</body>`+
		`<stanza-id xmlns='urn:xmpp:sid:0' by='bob@example.com' id='forged'/></message>`)
	p := &module.Packet{Stanza: s, Target: module.ToAccount, AccountExists: true}
	if _, err := ts.mod.archiveIncoming(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if n := len(ts.arch.Messages(bob)); n != 0 {
		t.Fatalf("a message with a foreign stanza-id was archived: %+v", ts.arch.Messages(bob))
	}
}

// targetsSeen records, in the Inbound Observe phase, whether each
// delivery target of a message still is the router's own resource
// (module.Hibernating, which the push module asks, is visible).
type targetsSeen struct {
	mu   sync.Mutex
	seen []bool
}

func (m *targetsSeen) Provision(h module.Host) error {
	h.Hook(module.Inbound, module.Observe, func(_ context.Context, p *module.Packet) (module.Verdict, error) {
		if p.Stanza.Kind != stanza.KindMessage {
			return module.Continue, nil
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, t := range p.Targets {
			_, ok := t.(module.Hibernating)
			m.seen = append(m.seen, ok)
		}
		return module.Continue, nil
	})
	return nil
}

// TestTargetsUnwrapped: an archived message reaches the recipient stamped,
// and the hooks after mam's see the router's targets, not wrappers.
func TestTargetsUnwrapped(t *testing.T) {
	seen := &targetsSeen{}
	ts := newServer(t, serverOptions{after: []router.Enabled{{Info: module.Info{ID: "seen"}, Module: seen}}})
	a := ts.connect(alice + "/home")
	b := ts.connect(bob + "/phone")
	a.send(`<message to='bob@example.com' type='chat'><body>hello</body></message>`)
	got := messages(b.received())
	if len(got) != 1 || !hasStanzaIDBy(got[0], bob) {
		t.Fatalf("bob received %s", dump(got))
	}
	seen.mu.Lock()
	defer seen.mu.Unlock()
	if len(seen.seen) != 1 || !seen.seen[0] {
		t.Fatalf("targets implementing module.Hibernating in Observe: %v, want [true]", seen.seen)
	}
}

func carolJID(t *testing.T) jid.JID {
	t.Helper()
	return jid.MustParse(carol)
}

// TestStampsWaitOwner: a query waits for a message stamped for its owner
// (delivered, not yet queued for the archive) until the Observe hook takes
// the stamp, and no longer than its context for one that never comes.
func TestStampsWaitOwner(t *testing.T) {
	var st stamps
	st.init(time.Now)
	el := stanza.New(NSStanzaID, "stanza-id")
	st.put(el, time.Now(), "alice@example.com")
	go func() {
		time.Sleep(50 * time.Millisecond)
		st.take(el)
	}()
	start := time.Now()
	st.waitOwner(t.Context(), "alice@example.com")
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Errorf("waitOwner returned after %v, before the stamp was taken", d)
	}
	st.waitOwner(t.Context(), "bob@example.com") // nothing pending: at once

	st.put(stanza.New(NSStanzaID, "stanza-id"), time.Now(), "alice@example.com") // a dropped message's stamp
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
	defer cancel()
	st.waitOwner(ctx, "alice@example.com")
	if ctx.Err() == nil {
		t.Error("waitOwner returned while a stamp was pending and its context alive")
	}
	if st.len() != 1 {
		t.Errorf("%d stamps, want 1", st.len())
	}
}

package roster_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	_ "kontor.im/kontor/core/mod/presence"
	"kontor.im/kontor/core/mod/roster"
	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/rosterstate"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

const quiet = 50 * time.Millisecond

func newServer(t *testing.T) *modtest.Server {
	t.Helper()
	srv := modtest.New(t, modtest.Options{}, modtest.Module(t, "roster"), modtest.Module(t, "presence"))
	srv.Account("alice")
	srv.Account("bob")
	return srv
}

// get sends a roster get (with the ver attribute unless ver is "-") and
// returns the result.
func get(t *testing.T, c *modtest.Client, id, ver string) *stanza.Stanza {
	t.Helper()
	attr := ""
	if ver != "-" {
		attr = " ver='" + ver + "'"
	}
	c.SendXML("<iq type='get' id='" + id + "'><query xmlns='jabber:iq:roster'" + attr + "/></iq>")
	res := c.NextIQ(id)
	if res.Type != "result" {
		t.Fatalf("roster get: %s", res.El)
	}
	return res
}

func items(q *stanza.Element) []*stanza.Element {
	var out []*stanza.Element
	q.Children(func(e *stanza.Element) bool {
		out = append(out, e)
		return true
	})
	return out
}

func groups(item *stanza.Element) []string {
	var out []string
	item.Children(func(e *stanza.Element) bool {
		out = append(out, e.Text())
		return true
	})
	return out
}

// isPush matches a roster push of contact.
func isPush(contact string) func(*stanza.Stanza) bool {
	return func(s *stanza.Stanza) bool {
		if s.Kind != stanza.KindIQ || s.Type != "set" || s.Payload() == nil {
			return false
		}
		it := s.Payload().Child(rosterstate.NS, "item")
		return it != nil && it.Get("jid") == contact
	}
}

func pushedItem(t *testing.T, s *stanza.Stanza) *stanza.Element {
	t.Helper()
	if !s.From.IsZero() && s.From != s.To.Bare() {
		t.Errorf("push from %s: only the account itself may push", s.From)
	}
	return s.Payload().Child(rosterstate.NS, "item")
}

func TestGetEmpty(t *testing.T) {
	srv := newServer(t)
	a := srv.Connect("alice@example.com/phone")
	res := get(t, a, "r1", "-")
	q := res.Payload()
	if q == nil || q.Name.Space != rosterstate.NS || len(items(q)) != 0 || q.Has("ver") {
		t.Fatalf("want an empty roster without ver, got %s", res.El)
	}
	if res.To != a.JID || !res.From.IsZero() {
		t.Errorf("result addressed from %q to %q", res.From, res.To)
	}
	// Addressed to the own bare JID, as some clients do.
	a.SendXML("<iq type='get' id='r2' to='alice@example.com'><query xmlns='jabber:iq:roster'/></iq>")
	if res := a.NextIQ("r2"); res.Type != "result" {
		t.Fatalf("get to own bare JID: %s", res.El)
	}
}

func TestSetPushesToInterestedResources(t *testing.T) {
	srv := newServer(t)
	phone, laptop, bot := srv.Connect("alice@example.com/phone"), srv.Connect("alice@example.com/laptop"), srv.Connect("alice@example.com/bot")
	get(t, phone, "r1", "-")
	get(t, laptop, "r1", "-")
	// bot never asks for the roster: it is not interested.

	phone.SendXML(`<iq type='set' id='s1'><query xmlns='jabber:iq:roster'>
		<item jid='bob@example.com' name='Bob'><group>Friends</group><group>Work</group></item>
	</query></iq>`)
	for _, c := range []*modtest.Client{phone, laptop} {
		it := pushedItem(t, c.Next(isPush("bob@example.com")))
		if it.Get("name") != "Bob" || it.Get("subscription") != "none" || it.Has("ask") ||
			!slices.Equal(groups(it), []string{"Friends", "Work"}) {
			t.Errorf("%s got push %s", c.JID, it)
		}
	}
	// The server pushes before it answers the set.
	if res := phone.NextIQ("s1"); res.Type != "result" || res.Payload() != nil {
		t.Fatalf("set: %s", res.El)
	}
	bot.Nothing(quiet, nil)

	res := get(t, laptop, "r2", "-")
	its := items(res.Payload())
	if len(its) != 1 || its[0].Get("jid") != "bob@example.com" || its[0].Get("name") != "Bob" {
		t.Fatalf("roster after set: %s", res.El)
	}
}

func TestSetKeepsSubscription(t *testing.T) {
	srv := newServer(t)
	ctx := context.Background()
	if _, err := srv.Store.PutRosterItem(ctx, "alice@example.com", storage.RosterItem{Contact: "bob@example.com", Subscription: storage.SubBoth}); err != nil {
		t.Fatal(err)
	}
	a := srv.Connect("alice@example.com/phone")
	get(t, a, "r1", "-")
	// A client may not set the subscription: the attribute is ignored.
	a.SendXML(`<iq type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='bob@example.com' name='B' subscription='none' ask='subscribe'/></query></iq>`)
	it := pushedItem(t, a.Next(isPush("bob@example.com")))
	if it.Get("subscription") != "both" || it.Has("ask") || it.Get("name") != "B" {
		t.Errorf("push %s, want subscription both and name B", it)
	}
	if res := a.NextIQ("s1"); res.Type != "result" {
		t.Fatalf("set: %s", res.El)
	}
}

func TestRemove(t *testing.T) {
	srv := newServer(t)
	ctx := context.Background()
	for _, own := range []string{"alice", "bob"} {
		other := map[string]string{"alice": "bob", "bob": "alice"}[own]
		if _, err := srv.Store.PutRosterItem(ctx, own+"@example.com", storage.RosterItem{Contact: other + "@example.com", Subscription: storage.SubBoth}); err != nil {
			t.Fatal(err)
		}
	}
	a, b := srv.Connect("alice@example.com/phone"), srv.Connect("bob@example.com/desk")
	for _, c := range []*modtest.Client{a, b} {
		get(t, c, "r1", "-")
		c.SendXML("<presence/>")
	}
	a.Next(presence("bob@example.com/desk", ""))
	b.Next(presence("alice@example.com/phone", ""))

	a.SendXML(`<iq type='set' id='rm'><query xmlns='jabber:iq:roster'><item jid='bob@example.com' subscription='remove'/></query></iq>`)
	// §3.3.3: bob's server withdraws bob's presence from alice.
	a.Next(presence("bob@example.com/desk", "unavailable"))
	if it := pushedItem(t, a.Next(isPush("bob@example.com"))); it.Get("subscription") != "remove" {
		t.Errorf("push %s, want subscription remove", it)
	}
	if res := a.NextIQ("rm"); res.Type != "result" {
		t.Fatalf("remove: %s", res.El)
	}
	// §2.5.2: both subscriptions end, and bob stops seeing alice.
	// Each change is pushed to bob before the stanza is delivered.
	b.Next(presence("alice@example.com", "unsubscribe"))
	it := pushedItem(t, b.Next(isPush("alice@example.com")))
	if it.Get("subscription") != "none" || it.Has("ask") {
		t.Errorf("bob's item for alice: %s", it)
	}
	b.Next(presence("alice@example.com", "unsubscribed"))
	b.Next(presence("alice@example.com/phone", "unavailable"))
	if _, err := srv.Store.RosterItem(ctx, "alice@example.com", "bob@example.com"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("alice's item for bob is still stored: %v", err)
	}

	// Removing it again: item-not-found (§2.5.3).
	a.SendXML(`<iq type='set' id='rm2'><query xmlns='jabber:iq:roster'><item jid='bob@example.com' subscription='remove'/></query></iq>`)
	if res := a.NextIQ("rm2"); modtest.ErrorCondition(res) != stanza.ItemNotFound {
		t.Errorf("second remove: %s", res.El)
	}
}

func TestVersioning(t *testing.T) {
	srv := newServer(t)
	a, old := srv.Connect("alice@example.com/phone"), srv.Connect("alice@example.com/old")
	get(t, old, "r0", "-") // interested, without versioning

	first := get(t, a, "r1", "")
	v1 := first.Payload().Get("ver")
	if v1 == "" {
		t.Fatalf("no ver in %s", first.El)
	}
	if res := get(t, a, "r2", v1); res.Payload() != nil {
		t.Fatalf("same version: want an empty result, got %s", res.El)
	}

	a.SendXML(`<iq type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='bob@example.com'/></query></iq>`)
	push := a.Next(isPush("bob@example.com"))
	a.NextIQ("s1")
	v2 := push.Payload().Get("ver")
	if v2 == "" || v2 == v1 {
		t.Fatalf("push has ver %q after %q", v2, v1)
	}
	if p := old.Next(isPush("bob@example.com")); p.Payload().Has("ver") {
		t.Errorf("push to a resource without versioning carries ver: %s", p.El)
	}

	res := get(t, a, "r3", v1)
	if q := res.Payload(); q == nil || q.Get("ver") != v2 || len(items(q)) != 1 {
		t.Fatalf("old version: want the whole roster at %s, got %s", v2, res.El)
	}
	if res := get(t, a, "r4", v2); res.Payload() != nil {
		t.Fatalf("current version: want an empty result, got %s", res.El)
	}
}

func TestStreamFeature(t *testing.T) {
	srv := newServer(t)
	found := false
	for _, f := range srv.Host.StreamFeatures() {
		found = found || f.Name == stanza.Name{Space: rosterstate.NSVersioning, Local: "ver"}
		if f.Name.Space == "urn:xmpp:features:pre-approval" {
			t.Error("pre-approval is advertised but not implemented")
		}
	}
	if !found {
		t.Error("no roster versioning stream feature")
	}
}

func TestErrors(t *testing.T) {
	long := strings.Repeat("x", roster.MaxNameBytes+1)
	for _, tc := range []struct {
		name, iq, cond string
	}{
		{"two items", `<iq type='set' id='e'><query xmlns='jabber:iq:roster'><item jid='bob@example.com'/><item jid='carol@example.com'/></query></iq>`, stanza.BadRequest},
		{"no item", `<iq type='set' id='e'><query xmlns='jabber:iq:roster'/></iq>`, stanza.BadRequest},
		{"missing jid", `<iq type='set' id='e'><query xmlns='jabber:iq:roster'><item name='x'/></query></iq>`, stanza.JIDMalformed},
		{"malformed jid", `<iq type='set' id='e'><query xmlns='jabber:iq:roster'><item jid='a@b@c@'/></query></iq>`, stanza.JIDMalformed},
		{"full jid", `<iq type='set' id='e'><query xmlns='jabber:iq:roster'><item jid='bob@example.com/desk'/></query></iq>`, stanza.JIDMalformed},
		{"empty group", `<iq type='set' id='e'><query xmlns='jabber:iq:roster'><item jid='bob@example.com'><group/></item></query></iq>`, stanza.NotAcceptable},
		{"long group", `<iq type='set' id='e'><query xmlns='jabber:iq:roster'><item jid='bob@example.com'><group>` + long + `</group></item></query></iq>`, stanza.NotAcceptable},
		{"long name", `<iq type='set' id='e'><query xmlns='jabber:iq:roster'><item jid='bob@example.com' name='` + long + `'/></query></iq>`, stanza.NotAcceptable},
		{"duplicate group", `<iq type='set' id='e'><query xmlns='jabber:iq:roster'><item jid='bob@example.com'><group>A</group><group>A</group></item></query></iq>`, stanza.BadRequest},
		{"self", `<iq type='set' id='e'><query xmlns='jabber:iq:roster'><item jid='alice@example.com'/></query></iq>`, stanza.NotAllowed},
		{"set on another roster", `<iq type='set' id='e' to='bob@example.com'><query xmlns='jabber:iq:roster'><item jid='carol@example.com'/></query></iq>`, stanza.Forbidden},
		{"get another roster", `<iq type='get' id='e' to='bob@example.com'><query xmlns='jabber:iq:roster'/></iq>`, stanza.Forbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t)
			a := srv.Connect("alice@example.com/phone")
			get(t, a, "r", "-")
			a.SendXML(tc.iq)
			res := a.NextIQ("e")
			if got := modtest.ErrorCondition(res); got != tc.cond {
				t.Fatalf("got %q, want %q: %s", got, tc.cond, res.El)
			}
			a.Nothing(quiet, isPush("bob@example.com"))
			if its, _, _ := srv.Store.RosterItems(context.Background(), "alice@example.com"); len(its) != 0 {
				t.Errorf("the roster changed: %v", its)
			}
		})
	}
}

func presence(from, typ string) func(*stanza.Stanza) bool {
	return func(s *stanza.Stanza) bool {
		return s.Kind == stanza.KindPresence && s.From.String() == from && s.Type == typ
	}
}

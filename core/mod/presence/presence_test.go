package presence_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"kontor.im/kontor/core/jid"
	_ "kontor.im/kontor/core/mod/presence"
	_ "kontor.im/kontor/core/mod/roster"
	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/rosterstate"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

const quiet = 50 * time.Millisecond

func newServer(t *testing.T) *modtest.Server {
	t.Helper()
	srv := modtest.New(t, modtest.Options{}, modtest.Module(t, "roster"), modtest.Module(t, "presence"))
	for _, u := range []string{"alice", "bob", "carol"} {
		srv.Account(u)
	}
	return srv
}

// item stores owner's roster item for contact (both local parts).
func item(t *testing.T, srv *modtest.Server, owner, contact string, sub storage.Subscription) {
	t.Helper()
	it := storage.RosterItem{Contact: contact + "@example.com", Subscription: sub}
	if _, err := srv.Store.PutRosterItem(context.Background(), owner+"@example.com", it); err != nil {
		t.Fatal(err)
	}
}

// connect binds full and requests the roster, without presence.
func connect(t *testing.T, srv *modtest.Server, full string) *modtest.Client {
	t.Helper()
	c := srv.Connect(full)
	c.SendXML("<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>")
	if res := c.NextIQ("roster"); res.Type != "result" {
		t.Fatalf("roster get: %s", res.El)
	}
	return c
}

// online connects full and sends initial presence, which the server
// reflects to the resource itself (§4.2.2).
func online(t *testing.T, srv *modtest.Server, full string, presence ...string) *modtest.Client {
	t.Helper()
	c := connect(t, srv, full)
	p := "<presence/>"
	if len(presence) > 0 {
		p = presence[0]
	}
	c.SendXML(p)
	c.Next(isPresence(full, ""))
	return c
}

func isPresence(from, typ string) func(*stanza.Stanza) bool {
	return func(s *stanza.Stanza) bool {
		return s.Kind == stanza.KindPresence && s.From.String() == from && s.Type == typ
	}
}

// anyPresenceFrom matches presence of any type from the account or its
// resources.
func anyPresenceFrom(bare string) func(*stanza.Stanza) bool {
	return func(s *stanza.Stanza) bool {
		return s.Kind == stanza.KindPresence && s.From.Bare().String() == bare
	}
}

// isPush matches a roster push of contact with this subscription and ask.
func isPush(contact, sub, ask string) func(*stanza.Stanza) bool {
	return func(s *stanza.Stanza) bool {
		if s.Kind != stanza.KindIQ || s.Type != "set" || s.Payload() == nil {
			return false
		}
		it := s.Payload().Child(rosterstate.NS, "item")
		return it != nil && it.Get("jid") == contact && it.Get("subscription") == sub && it.Get("ask") == ask
	}
}

func wantState(t *testing.T, srv *modtest.Server, owner, contact string, want rosterstate.State) {
	t.Helper()
	bare := func(s string) jid.JID {
		if !strings.Contains(s, "@") {
			s += "@" + srv.Domain.String()
		}
		return jid.MustParse(s)
	}
	e, err := rosterstate.Load(context.Background(), srv.Store, bare(owner), bare(contact))
	if err != nil {
		t.Fatal(err)
	}
	if e.State != want {
		t.Errorf("%s's state for %s is %q, want %q", owner, contact, e.State, want)
	}
}

func TestHandshake(t *testing.T) {
	srv := newServer(t)
	a := online(t, srv, "alice@example.com/phone")
	b := online(t, srv, "bob@example.com/desk")

	// alice asks bob: pending out, routed from and to bare JIDs.
	a.SendXML("<presence type='subscribe' to='bob@example.com/desk' id='sub1'><status>hi</status></presence>")
	a.Next(isPush("bob@example.com", "none", "subscribe"))
	req := b.Next(isPresence("alice@example.com", "subscribe"))
	if req.To.String() != "bob@example.com" || req.ID != "sub1" || req.El.ChildText(stanza.NSClient, "status") != "hi" {
		t.Errorf("bob got %s", req.El)
	}
	wantState(t, srv, "bob", "alice", rosterstate.NonePendingIn)

	// bob approves: alice gets 'to' and bob's presence, bob gets 'from'.
	b.SendXML("<presence type='subscribed' to='alice@example.com'/>")
	b.Next(isPush("alice@example.com", "from", ""))
	if reqs, _ := srv.Store.SubscriptionRequests(context.Background(), "bob@example.com"); len(reqs) != 0 {
		t.Errorf("answered request still stored: %v", reqs)
	}
	a.Next(isPush("bob@example.com", "to", ""))
	a.Next(isPresence("bob@example.com", "subscribed"))
	a.Next(isPresence("bob@example.com/desk", ""))

	// And the other way round.
	b.SendXML("<presence type='subscribe' to='alice@example.com'/>")
	b.Next(isPush("alice@example.com", "from", "subscribe"))
	a.Next(isPresence("bob@example.com", "subscribe"))
	a.SendXML("<presence type='subscribed' to='bob@example.com'/>")
	a.Next(isPush("bob@example.com", "both", ""))
	b.Next(isPush("alice@example.com", "both", ""))
	b.Next(isPresence("alice@example.com", "subscribed"))
	b.Next(isPresence("alice@example.com/phone", ""))

	wantState(t, srv, "alice", "bob", rosterstate.Both)
	wantState(t, srv, "bob", "alice", rosterstate.Both)

	// Both now see each other's presence changes.
	a.SendXML("<presence><show>away</show></presence>")
	if p := b.Next(isPresence("alice@example.com/phone", "")); p.El.ChildText(stanza.NSClient, "show") != "away" {
		t.Errorf("bob got %s", p.El)
	}
	b.SendXML("<presence><show>dnd</show></presence>")
	if p := a.Next(isPresence("bob@example.com/desk", "")); p.El.ChildText(stanza.NSClient, "show") != "dnd" {
		t.Errorf("alice got %s", p.El)
	}

	// A duplicate approval changes nothing and is not routed (A.2.3).
	a.SendXML("<presence type='subscribed' to='bob@example.com'/>")
	b.Nothing(quiet, isPresence("alice@example.com", "subscribed"))
}

func TestRequestToOfflineUser(t *testing.T) {
	srv := newServer(t)
	a := online(t, srv, "alice@example.com/phone")
	a.SendXML("<presence type='subscribe' to='bob@example.com'><status>it's alice</status></presence>")
	a.Next(isPush("bob@example.com", "none", "subscribe"))
	reqs, err := srv.Store.SubscriptionRequests(context.Background(), "bob@example.com")
	if err != nil || len(reqs) != 1 || reqs[0].From != "alice@example.com" {
		t.Fatalf("stored requests %v, %v", reqs, err)
	}

	// Connected but not available: no subscription requests yet (§2.2).
	b := connect(t, srv, "bob@example.com/desk")
	b.Nothing(quiet, isPresence("alice@example.com", "subscribe"))
	b.SendXML("<presence/>")
	req := b.Next(isPresence("alice@example.com", "subscribe"))
	if req.El.ChildText(stanza.NSClient, "status") != "it's alice" || req.To.String() != "bob@example.com" {
		t.Errorf("resent request %s", req.El)
	}

	// Until answered, it is resent at every login.
	b2 := connect(t, srv, "bob@example.com/laptop")
	b2.SendXML("<presence/>")
	b2.Next(isPresence("alice@example.com", "subscribe"))

	// Declining it removes it; alice's ask is withdrawn.
	b.SendXML("<presence type='unsubscribed' to='alice@example.com'/>")
	a.Next(isPush("bob@example.com", "none", ""))
	a.Next(isPresence("bob@example.com", "unsubscribed"))
	if reqs, _ := srv.Store.SubscriptionRequests(context.Background(), "bob@example.com"); len(reqs) != 0 {
		t.Errorf("request still stored: %v", reqs)
	}
	b3 := connect(t, srv, "bob@example.com/tablet")
	b3.SendXML("<presence/>")
	b3.Nothing(quiet, isPresence("alice@example.com", "subscribe"))
}

func TestUnsubscribe(t *testing.T) {
	srv := newServer(t)
	item(t, srv, "alice", "bob", storage.SubBoth)
	item(t, srv, "bob", "alice", storage.SubBoth)
	a := online(t, srv, "alice@example.com/phone")
	b := online(t, srv, "bob@example.com/desk")
	a.Next(isPresence("bob@example.com/desk", ""))

	// alice stops following bob (§3.3): bob's server withdraws his
	// presence; alice still shares hers.
	a.SendXML("<presence type='unsubscribe' to='bob@example.com'/>")
	a.Next(isPush("bob@example.com", "from", ""))
	b.Next(isPush("alice@example.com", "to", ""))
	b.Next(isPresence("alice@example.com", "unsubscribe"))
	a.Next(isPresence("bob@example.com/desk", "unavailable"))

	b.SendXML("<presence><show>xa</show></presence>")
	a.Nothing(quiet, anyPresenceFrom("bob@example.com"))
	a.SendXML("<presence><show>chat</show></presence>")
	b.Next(isPresence("alice@example.com/phone", ""))

	// alice cancels bob's subscription too (§3.2).
	a.SendXML("<presence type='unsubscribed' to='bob@example.com'/>")
	a.Next(isPush("bob@example.com", "none", ""))
	b.Next(isPush("alice@example.com", "none", ""))
	b.Next(isPresence("alice@example.com", "unsubscribed"))
	b.Next(isPresence("alice@example.com/phone", "unavailable"))
	a.SendXML("<presence/>")
	b.Nothing(quiet, anyPresenceFrom("alice@example.com"))

	// Nothing left to cancel: not routed (A.2.4), nothing changes.
	a.SendXML("<presence type='unsubscribed' to='bob@example.com'/>")
	b.Nothing(quiet, anyPresenceFrom("alice@example.com"))
	wantState(t, srv, "alice", "bob", rosterstate.None)
	wantState(t, srv, "bob", "alice", rosterstate.None)
}

func TestInboundSubscribeWhenSubscribedIsAutoApproved(t *testing.T) {
	srv := newServer(t)
	// alice's server lost her item for bob; bob's still says she is
	// subscribed.
	item(t, srv, "bob", "alice", storage.SubFrom)
	a := online(t, srv, "alice@example.com/phone")
	b := online(t, srv, "bob@example.com/desk")
	a.Next(isPresence("bob@example.com/desk", "")) // bob shares with alice

	// alice asks again: bob's server answers for him (A.3.1).
	a.SendXML("<presence type='subscribe' to='bob@example.com'/>")
	a.Next(isPush("bob@example.com", "none", "subscribe"))
	a.Next(isPush("bob@example.com", "to", ""))
	a.Next(isPresence("bob@example.com", "subscribed"))
	a.Next(isPresence("bob@example.com/desk", ""))
	b.Nothing(quiet, isPresence("alice@example.com", "subscribe"))
	wantState(t, srv, "alice", "bob", rosterstate.To)
	wantState(t, srv, "bob", "alice", rosterstate.From)
}

func TestProbes(t *testing.T) {
	srv := newServer(t)
	ctx := context.Background()
	item(t, srv, "alice", "bob", storage.SubTo)
	item(t, srv, "bob", "alice", storage.SubFrom)
	item(t, srv, "carol", "bob", storage.SubTo) // carol thinks so; bob never approved
	item(t, srv, "alice", "carol", storage.SubTo)
	item(t, srv, "carol", "alice", storage.SubFrom)

	b := online(t, srv, "bob@example.com/desk", "<presence><show>away</show></presence>")
	online(t, srv, "bob@example.com/laptop")
	b.Next(isPresence("bob@example.com/laptop", ""))

	a := online(t, srv, "alice@example.com/phone")
	if p := a.Next(isPresence("bob@example.com/desk", "")); p.El.ChildText(stanza.NSClient, "show") != "away" {
		t.Errorf("probe answer %s", p.El)
	}
	a.Next(isPresence("bob@example.com/laptop", ""))

	c := online(t, srv, "carol@example.com/pc")
	c.Nothing(quiet, anyPresenceFrom("bob@example.com"))

	// carol is offline and was last seen an hour ago: alice's probe gets
	// unavailable presence with the time (§4.3.2).
	at := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	c.Disconnect()
	if err := srv.Store.SetLastActivity(ctx, "carol@example.com", at, "gone fishing"); err != nil {
		t.Fatal(err)
	}
	a2 := online(t, srv, "alice@example.com/laptop")
	p := a2.Next(isPresence("carol@example.com", "unavailable"))
	delay := p.El.Child(stanza.NSDelay, "delay")
	if delay == nil || p.El.ChildText(stanza.NSClient, "status") != "gone fishing" {
		t.Fatalf("unavailable answer %s", p.El)
	}
	if stamp, err := time.Parse(time.RFC3339, delay.Get("stamp")); err != nil || !stamp.Equal(at) {
		t.Errorf("delay stamp %q, want %s", delay.Get("stamp"), at)
	}
}

func TestBroadcastOnlyToSubscribers(t *testing.T) {
	srv := newServer(t)
	item(t, srv, "alice", "bob", storage.SubFrom)
	item(t, srv, "bob", "alice", storage.SubTo)
	item(t, srv, "alice", "carol", storage.SubTo)
	item(t, srv, "carol", "alice", storage.SubFrom)
	b := online(t, srv, "bob@example.com/desk")
	c := online(t, srv, "carol@example.com/pc")
	a := online(t, srv, "alice@example.com/phone")
	a2 := online(t, srv, "alice@example.com/laptop")

	b.Next(isPresence("alice@example.com/phone", ""))
	c.Nothing(quiet, anyPresenceFrom("alice@example.com"))
	// Probe of carol, answered because carol shares with alice.
	a.Next(isPresence("carol@example.com/pc", ""))
	// alice's resources see each other, the new one at once (§4.2.2).
	a.Next(isPresence("alice@example.com/laptop", ""))
	a2.Next(isPresence("alice@example.com/phone", ""))

	a.SendXML("<presence type='unavailable'><status>bye</status></presence>")
	if p := b.Next(isPresence("alice@example.com/phone", "unavailable")); p.El.ChildText(stanza.NSClient, "status") != "bye" {
		t.Errorf("bob got %s", p.El)
	}
	a2.Next(isPresence("alice@example.com/phone", "unavailable"))
	c.Nothing(quiet, anyPresenceFrom("alice@example.com"))
}

func TestDirectedPresence(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(a *modtest.Client)
	}{
		{"unavailable", func(a *modtest.Client) { a.SendXML("<presence type='unavailable'/>") }},
		{"session drop", func(a *modtest.Client) { a.Disconnect() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t)
			c := online(t, srv, "carol@example.com/pc")
			a := online(t, srv, "alice@example.com/phone")
			c.Nothing(quiet, anyPresenceFrom("alice@example.com"))

			a.SendXML("<presence to='carol@example.com/pc'><show>chat</show></presence>")
			c.Next(isPresence("alice@example.com/phone", ""))
			tc.end(a)
			c.Next(isPresence("alice@example.com/phone", "unavailable"))
		})
	}

	// Directed unavailable presence takes the entity off the list.
	srv := newServer(t)
	c := online(t, srv, "carol@example.com/pc")
	a := online(t, srv, "alice@example.com/phone")
	a.SendXML("<presence to='carol@example.com'/>")
	c.Next(isPresence("alice@example.com/phone", ""))
	a.SendXML("<presence to='carol@example.com' type='unavailable'/>")
	c.Next(isPresence("alice@example.com/phone", "unavailable"))
	a.SendXML("<presence type='unavailable'/>")
	c.Nothing(quiet, anyPresenceFrom("alice@example.com"))
}

func TestSessionDrop(t *testing.T) {
	srv := newServer(t)
	ctx := context.Background()
	item(t, srv, "alice", "bob", storage.SubBoth)
	item(t, srv, "bob", "alice", storage.SubBoth)
	b := online(t, srv, "bob@example.com/desk")
	a := online(t, srv, "alice@example.com/phone")
	a2 := online(t, srv, "alice@example.com/laptop")
	b.Next(isPresence("alice@example.com/laptop", ""))

	a.Disconnect()
	b.Next(isPresence("alice@example.com/phone", "unavailable"))
	a2.Next(isPresence("alice@example.com/phone", "unavailable"))
	if _, _, err := srv.Store.LastActivity(ctx, "alice@example.com"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("last activity stored while alice is still online: %v", err)
	}

	a2.SendXML("<presence type='unavailable'><status>lunch</status></presence>")
	b.Next(isPresence("alice@example.com/laptop", "unavailable"))
	before := time.Now()
	a2.Disconnect()
	b.Nothing(quiet, anyPresenceFrom("alice@example.com")) // already said
	at, status, err := srv.Store.LastActivity(ctx, "alice@example.com")
	if err != nil || status != "lunch" || at.Before(before.Add(-time.Second)) {
		t.Errorf("last activity %v %q %v", at, status, err)
	}
}

func TestMessageNeedsAvailability(t *testing.T) {
	srv := newServer(t)
	a := online(t, srv, "alice@example.com/phone")
	b := connect(t, srv, "bob@example.com/desk")

	a.SendXML("<message to='bob@example.com' type='chat' id='m1'><body>hi</body></message>")
	if e := a.Next(func(s *stanza.Stanza) bool { return s.ID == "m1" }); modtest.ErrorCondition(e) != stanza.ServiceUnavailable {
		t.Errorf("message to a bare JID without available resource: %s", e.El)
	}
	b.Nothing(quiet, func(s *stanza.Stanza) bool { return s.Kind == stanza.KindMessage })

	b.SendXML("<presence/>")
	a.SendXML("<message to='bob@example.com' type='chat' id='m2'><body>hi</body></message>")
	b.Next(func(s *stanza.Stanza) bool { return s.Kind == stanza.KindMessage && s.ID == "m2" })
}

func TestPriority(t *testing.T) {
	srv := newServer(t)
	a := online(t, srv, "alice@example.com/phone")
	low := online(t, srv, "bob@example.com/low", "<presence><priority>1</priority></presence>")
	high := online(t, srv, "bob@example.com/high", "<presence><priority>5</priority></presence>")

	a.SendXML("<message to='bob@example.com' type='chat' id='m1'><body>hi</body></message>")
	high.Next(func(s *stanza.Stanza) bool { return s.Kind == stanza.KindMessage && s.ID == "m1" })
	low.Nothing(quiet, func(s *stanza.Stanza) bool { return s.Kind == stanza.KindMessage })
}

func TestSubscriptionToRemoteContact(t *testing.T) {
	srv := newServer(t)
	a := online(t, srv, "alice@example.com/phone")
	a.SendXML("<presence type='subscribe' to='romeo@example.net'/>")
	// The local side records the request even though it cannot leave.
	a.Next(isPush("romeo@example.net", "none", "subscribe"))
	if e := a.Next(isPresence("romeo@example.net", "error")); modtest.ErrorCondition(e) != stanza.RemoteServerNotFound {
		t.Errorf("got %s", e.El)
	}
	wantState(t, srv, "alice", "romeo@example.net", rosterstate.NonePendingOut)
}

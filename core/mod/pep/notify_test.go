package pep_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"kontor.im/kontor/core/mod/pep"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

// setNotify changes the client's +notify features (and so its caps).
func (c *client) setNotify(notify ...string) {
	c.info, c.ver = capsOf(features(notify))
	c.notify = notify
}

func anyEvent(s *stanza.Stanza) bool {
	return s.Kind == stanza.KindMessage && s.El.Child(pep.NSEvent, "event") != nil
}

func TestAccessModels(t *testing.T) {
	srv := newServer(t)
	srv.Account("erin")
	// bob: both, Family. carol: from (she sees alice's presence), Friends.
	// erin: to (alice sees hers, not the other way), Friends. dave: none.
	subscribe(t, srv, "alice", "bob", storage.SubBoth, "Family")
	subscribe(t, srv, "alice", "carol", storage.SubFrom, "Friends")
	subscribe(t, srv, "alice", "erin", storage.SubTo, "Friends")
	a := &client{Client: srv.Connect("alice@example.com/phone"), t: t}
	for _, n := range []struct{ node, access string }{
		{"n-presence", "presence"}, {"n-open", "open"}, {"n-whitelist", "whitelist"}, {"n-roster", "roster"},
	} {
		opts := []string{"pubsub#access_model=" + n.access}
		if n.access == "roster" {
			opts = append(opts, "pubsub#roster_groups_allowed=Friends")
		}
		if r := a.publish("", n.node, "1", payload("urn:example", n.node), opts...); r.Type != "result" {
			t.Fatalf("publish %s: %s", n.node, r.El)
		}
	}
	const (
		ok          = ""
		unavailable = stanza.ServiceUnavailable
	)
	tests := []struct {
		requester string
		node      string
		cond, app string
	}{
		{"alice@example.com/laptop", "n-presence", ok, ""},
		{"alice@example.com/laptop", "n-whitelist", ok, ""},
		{"alice@example.com/laptop", "n-roster", ok, ""},
		{"alice@example.com/laptop", "n-missing", stanza.ItemNotFound, ""},
		{"bob@example.com/desk", "n-presence", ok, ""},
		{"bob@example.com/desk", "n-open", ok, ""},
		{"bob@example.com/desk", "n-whitelist", stanza.NotAllowed, "closed-node"},
		{"bob@example.com/desk", "n-roster", stanza.NotAuthorized, "not-in-roster-group"},
		{"bob@example.com/desk", "n-missing", stanza.ItemNotFound, ""},
		{"carol@example.com/tab", "n-presence", ok, ""},
		{"carol@example.com/tab", "n-roster", ok, ""},
		{"carol@example.com/tab", "n-whitelist", stanza.NotAllowed, "closed-node"},
		{"erin@example.com/pc", "n-presence", unavailable, ""},
		{"erin@example.com/pc", "n-roster", ok, ""},
		{"erin@example.com/pc", "n-open", ok, ""},
		{"dave@example.com/pc", "n-open", ok, ""},
		{"dave@example.com/pc", "n-presence", unavailable, ""},
		{"dave@example.com/pc", "n-whitelist", unavailable, ""},
		{"dave@example.com/pc", "n-roster", unavailable, ""},
		{"dave@example.com/pc", "n-missing", unavailable, ""},
	}
	clients := map[string]*client{}
	for _, tt := range tests {
		t.Run(tt.requester+" "+tt.node, func(t *testing.T) {
			c := clients[tt.requester]
			if c == nil {
				c = &client{Client: srv.Connect(tt.requester), t: t}
				clients[tt.requester] = c
			}
			c.t = t
			r := c.fetch("alice@example.com", tt.node, "")
			cond, app := errorOf(r)
			if cond != tt.cond || app != tt.app {
				t.Fatalf("reply %s: want %q/%q", r.El, tt.cond, tt.app)
			}
			if cond == ok {
				if _, texts := itemsOf(r); !slices.Equal(texts, []string{tt.node}) {
					t.Errorf("items %q", texts)
				}
			}
		})
	}
}

func TestNotifications(t *testing.T) {
	srv := newServer(t)
	contacts(t, srv, "alice", "bob")
	contacts(t, srv, "alice", "carol")
	node, open := "http://jabber.org/protocol/tune", "urn:example:open"
	bob := online(t, srv, "bob@example.com/desk", node, open)
	carol := online(t, srv, "carol@example.com/tab") // no +notify
	// dave is no contact: he sends directed presence with +notify.
	dave := connect(t, srv, "dave@example.com/pc", node, open)
	dave.SendXML("<presence to='alice@example.com'>" + dave.caps() + "</presence>")
	dave.answerCaps()
	laptop := online(t, srv, "alice@example.com/laptop", node)
	phone := online(t, srv, "alice@example.com/phone")
	for _, c := range []*client{bob, carol, dave, laptop, phone} {
		c.Received()
	}

	if r := phone.publish("", node, "song", payload("http://jabber.org/protocol/tune", "Yesterday")); r.Type != "result" {
		t.Fatalf("publish: %s", r.El)
	}
	if r := phone.publish("", open, "o1", payload("urn:example", "open"), "pubsub#access_model=open"); r.Type != "result" {
		t.Fatalf("publish: %s", r.El)
	}
	tests := []struct {
		name string
		c    *client
		node string
		want bool
	}{
		{"a contact with +notify", bob, node, true},
		{"a contact with +notify, open node", bob, open, true},
		{"a contact without +notify", carol, node, false},
		{"a contact without +notify, open node", carol, open, false},
		{"no subscription, presence node", dave, node, false},
		{"no subscription, open node", dave, open, true},
		{"the owner's resource with +notify", laptop, node, true},
		{"the owner's resource without +notify", phone, node, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.c.t = t
			if !tt.want {
				tt.c.Nothing(quiet, isEvent(bare("alice"), tt.node))
				return
			}
			ev := tt.c.Next(isEvent(bare("alice"), tt.node))
			if ev.Type != "headline" || ev.To != tt.c.JID || ev.El.Child(stanza.NSDelay, "delay") != nil {
				t.Errorf("notification %s: want a headline to the full JID, without delay", ev.El)
			}
			ids, texts := itemsOf(ev)
			if len(ids) != 1 || (tt.node == node && texts[0] != "Yesterday") {
				t.Errorf("notification items %q %q", ids, texts)
			}
		})
	}

	t.Run("retraction", func(t *testing.T) {
		bob.t = t
		phone.ok("<iq type='set'><pubsub xmlns='http://jabber.org/protocol/pubsub'><retract node='" + node + "' notify='true'><item id='song'/></retract></pubsub></iq>")
		ev := bob.Next(isEvent(bare("alice"), node))
		r := ev.El.Child(pep.NSEvent, "event").Child(pep.NSEvent, "items").Child(pep.NSEvent, "retract")
		if r == nil || r.Get("id") != "song" {
			t.Errorf("retraction: %s", ev.El)
		}
	})

	t.Run("not after going unavailable", func(t *testing.T) {
		bob.t = t
		bob.SendXML("<presence type='unavailable'/>")
		bob.Received()
		phone.publish("", node, "song2", payload("http://jabber.org/protocol/tune", "Help"))
		bob.Nothing(quiet, anyEvent)
	})

	t.Run("not after the subscription ends", func(t *testing.T) {
		laptop.t, carol.t = t, t
		carol.setNotify(node)
		carol.available()
		carol.answerCaps()
		carol.Received()
		phone.publish("", node, "song3", payload("http://jabber.org/protocol/tune", "Let it be"))
		carol.Next(isEvent(bare("alice"), node))
		subscribe(t, srv, "alice", "carol", storage.SubTo)
		phone.publish("", node, "song4", payload("http://jabber.org/protocol/tune", "Something"))
		carol.Nothing(quiet, anyEvent)
		laptop.Next(isEvent(bare("alice"), node))
	})
}

func TestLastItemOnAvailability(t *testing.T) {
	srv := newServer(t)
	contacts(t, srv, "alice", "bob")
	a := &client{Client: srv.Connect("alice@example.com/phone"), t: t}
	nodes := map[string][]string{
		"urn:example:presence":  nil,
		"urn:example:open":      {"pubsub#access_model=open"},
		"urn:example:whitelist": {"pubsub#access_model=whitelist"},
		"urn:example:never":     {"pubsub#send_last_published_item=never"},
		"urn:example:on-sub":    {"pubsub#send_last_published_item=on_sub"},
		"urn:example:later":     nil,
	}
	for n, opts := range nodes {
		a.publish("", n, "old", payload("urn:example", n+" old"), opts...)
		if r := a.publish("", n, "new", payload("urn:example", n), opts...); r.Type != "result" {
			t.Fatalf("publish %s: %s", n, r.El)
		}
	}
	before := time.Now().Add(-time.Minute)
	bob := online(t, srv, "bob@example.com/desk",
		"urn:example:presence", "urn:example:open", "urn:example:whitelist", "urn:example:never", "urn:example:on-sub", "urn:example:unused")

	got := map[string]string{}
	for _, want := range []string{"urn:example:presence", "urn:example:open"} {
		ev := bob.Next(isEvent(bare("alice"), want))
		ids, texts := itemsOf(ev)
		got[want] = ids[0]
		d := ev.El.Child(stanza.NSDelay, "delay")
		if d == nil || d.Get("from") != bare("alice") {
			t.Errorf("last item %s without delay from the account", ev.El)
			continue
		}
		stamp, err := time.Parse(time.RFC3339Nano, d.Get("stamp"))
		if err != nil || stamp.Before(before) || stamp.After(time.Now()) {
			t.Errorf("delay stamp %q: %v", d.Get("stamp"), err)
		}
		if len(texts) != 1 || texts[0] != want {
			t.Errorf("last item of %s: %q", want, texts)
		}
	}
	if got["urn:example:presence"] != "new" || got["urn:example:open"] != "new" {
		t.Errorf("last items %v, want the newest", got)
	}
	bob.Nothing(quiet, anyEvent) // not whitelist, never, on_sub

	t.Run("a caps change brings only the new interests", func(t *testing.T) {
		bob.t = t
		bob.setNotify("urn:example:presence", "urn:example:open", "urn:example:later")
		bob.available()
		bob.answerCaps()
		ev := bob.Next(isEvent(bare("alice"), "urn:example:later"))
		if ids, _ := itemsOf(ev); !slices.Equal(ids, []string{"new"}) {
			t.Errorf("last item %s", ev.El)
		}
		bob.Nothing(quiet, anyEvent)
	})
	t.Run("a presence update with the same caps brings nothing", func(t *testing.T) {
		bob.t = t
		bob.SendXML("<presence><show>away</show>" + bob.caps() + "</presence>")
		bob.Nothing(quiet, anyEvent)
	})
	t.Run("another resource with known caps is not asked again", func(t *testing.T) {
		other := &client{Client: srv.Connect("bob@example.com/laptop"), t: t, node: bob.node, info: bob.info, ver: bob.ver}
		other.available()
		for _, n := range []string{"urn:example:presence", "urn:example:open", "urn:example:later"} {
			other.Next(isEvent(bare("alice"), n))
		}
		other.Nothing(quiet, other.isCapsQuery)
	})
}

func TestLastItemOnSubscription(t *testing.T) {
	srv := newServer(t)
	// alice sees bob's presence; bob is not subscribed to alice yet.
	subscribe(t, srv, "alice", "bob", storage.SubTo)
	subscribe(t, srv, "bob", "alice", storage.SubFrom)
	node := "urn:example:mood"
	a := online(t, srv, "alice@example.com/phone")
	a.publish("", node, "m", payload("urn:example", "happy"))
	bob := online(t, srv, "bob@example.com/desk", node)
	bob.Nothing(quiet, anyEvent) // not subscribed: nothing

	bob.SendXML("<presence type='subscribe' to='alice@example.com'/>")
	a.Next(func(s *stanza.Stanza) bool { return s.Kind == stanza.KindPresence && s.Type == "subscribe" })
	a.SendXML("<presence type='subscribed' to='bob@example.com'/>")
	ev := bob.Next(isEvent(bare("alice"), node))
	if _, texts := itemsOf(ev); !slices.Equal(texts, []string{"happy"}) {
		t.Errorf("last item on subscription: %s", ev.El)
	}
}

func TestCapsQueries(t *testing.T) {
	node := "urn:example:n"
	result := func(c *client, q *stanza.Stanza, extra string) {
		c.SendXML(fmt.Sprintf("<iq type='result' id='%s' to='%s'><query xmlns='%s'>%s%s</query></iq>", q.ID, q.From, nsDiscoInfo, c.info, extra))
	}
	tests := []struct {
		name   string
		answer func(c *client, q *stanza.Stanza)
		ok     bool
	}{
		{"a verified answer", func(c *client, q *stanza.Stanza) { result(c, q, "") }, true},
		{"an answer that does not match the ver", func(c *client, q *stanza.Stanza) {
			result(c, q, "<feature var='urn:example:extra'/>")
		}, false},
		{"an error", func(c *client, q *stanza.Stanza) {
			c.SendXML(fmt.Sprintf("<iq type='error' id='%s' to='%s'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>", q.ID, q.From))
		}, false},
		{"an ill-formed answer (a feature twice)", func(c *client, q *stanza.Stanza) {
			result(c, q, "<feature var='urn:xmpp:ping'/>")
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t)
			contacts(t, srv, "alice", "bob")
			a := &client{Client: srv.Connect("alice@example.com/phone"), t: t}
			a.publish("", node, "1", payload("urn:example", "x"))
			bob := connect(t, srv, "bob@example.com/desk", node)
			bob.available()
			q := bob.Next(bob.isCapsQuery)
			tt.answer(bob, q)
			if tt.ok {
				bob.Next(isEvent(bare("alice"), node)) // the last item
			} else {
				bob.Nothing(quiet, anyEvent)
			}
			a.publish("", node, "2", payload("urn:example", "y"))
			if tt.ok {
				bob.Next(isEvent(bare("alice"), node))
			} else {
				bob.Nothing(quiet, anyEvent)
			}
			// Only a verified answer is cached: the same caps again cause
			// a query only after a failure.
			bob.SendXML("<presence type='unavailable'/>")
			bob.available()
			if tt.ok {
				bob.Nothing(quiet, bob.isCapsQuery)
			} else {
				bob.Next(bob.isCapsQuery)
			}
		})
	}

	t.Run("legacy caps without a hash are not used", func(t *testing.T) {
		srv := newServer(t)
		contacts(t, srv, "alice", "bob")
		a := &client{Client: srv.Connect("alice@example.com/phone"), t: t}
		a.publish("", node, "1", payload("urn:example", "x"))
		bob := connect(t, srv, "bob@example.com/desk", node)
		bob.SendXML("<presence><c xmlns='http://jabber.org/protocol/caps' node='" + bob.node + "' ver='1.0'/></presence>")
		q := bob.Next(func(s *stanza.Stanza) bool { return s.Kind == stanza.KindIQ && s.Type == "get" })
		bob.SendXML(fmt.Sprintf("<iq type='result' id='%s' to='%s'><query xmlns='%s'>%s</query></iq>", q.ID, q.From, nsDiscoInfo, bob.info))
		bob.Nothing(quiet, anyEvent)
	})

	t.Run("an answer from someone else is ignored", func(t *testing.T) {
		srv := newServer(t)
		contacts(t, srv, "alice", "bob")
		a := &client{Client: srv.Connect("alice@example.com/phone"), t: t}
		a.publish("", node, "1", payload("urn:example", "x"))
		bob := connect(t, srv, "bob@example.com/desk", node)
		bob.available()
		q := bob.Next(bob.isCapsQuery)
		// carol forges bob's answer.
		carol := &client{Client: srv.Connect("carol@example.com/x"), t: t}
		carol.SendXML(fmt.Sprintf("<iq type='result' id='%s' to='%s'><query xmlns='%s'>%s</query></iq>", q.ID, q.From, nsDiscoInfo, bob.info))
		bob.Nothing(quiet, anyEvent)
		result(bob, q, "") // bob's own answer still counts
		bob.Next(isEvent(bare("alice"), node))
	})

	// dave copies bob's caps and answers falsely: bob, waiting on the
	// same caps, is asked next and still gets his notifications.
	t.Run("a false answer does not decide for others with the same caps", func(t *testing.T) {
		srv := newServer(t)
		contacts(t, srv, "alice", "bob")
		contacts(t, srv, "alice", "dave")
		a := &client{Client: srv.Connect("alice@example.com/phone"), t: t}
		a.publish("", node, "1", payload("urn:example", "x"))
		bob := connect(t, srv, "bob@example.com/desk", node)
		dave := &client{Client: srv.Connect("dave@example.com/pc"), t: t, node: bob.node, info: bob.info, ver: bob.ver}
		dave.available()
		q := dave.Next(dave.isCapsQuery)
		bob.available() // same caps: waits for dave's answer
		bob.Nothing(quiet, bob.isCapsQuery)
		dave.SendXML(fmt.Sprintf("<iq type='error' id='%s' to='%s'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>", q.ID, q.From))
		q = bob.Next(bob.isCapsQuery)
		result(bob, q, "")
		bob.Next(isEvent(bare("alice"), node))
		dave.Nothing(quiet, anyEvent)
	})
}

// TestOMEMO is the flow of Conversations and Dino: alice publishes her
// device list with access open and a bundle; bob, a contact whose client
// has +notify for device lists, is told; carol, no contact, fetches
// alice's bundle anyway.
func TestOMEMO(t *testing.T) {
	srv := newServer(t)
	contacts(t, srv, "alice", "bob")
	bob := online(t, srv, "bob@example.com/desk", legacyDevices, omemoDevices, avatarMetadata)
	alice := online(t, srv, "alice@example.com/phone", legacyDevices, omemoDevices)
	carol := &client{Client: srv.Connect("carol@example.com/tab"), t: t}
	bob.Received()
	alice.Received()
	open := []string{"pubsub#access_model=open"}

	// Legacy OMEMO (eu.siacs.conversations.axolotl), as Conversations
	// publishes it: the bundle, then the list, each item 'current'.
	bundle := legacyBundles + "31415"
	if r := alice.publish("", bundle, "current", "<bundle xmlns='eu.siacs.conversations.axolotl'><signedPreKeyPublic signedPreKeyId='1'>BQ==</signedPreKeyPublic></bundle>", open...); r.Type != "result" {
		t.Fatalf("publish bundle: %s", r.El)
	}
	if r := alice.publish("", legacyDevices, "current", devicelist("31415"), open...); r.Type != "result" {
		t.Fatalf("publish device list: %s", r.El)
	}
	ev := bob.Next(isEvent(bare("alice"), legacyDevices))
	list := ev.El.Child(pep.NSEvent, "event").Child(pep.NSEvent, "items").Child(pep.NSEvent, "item").Child("eu.siacs.conversations.axolotl", "list")
	if list == nil || list.Child("eu.siacs.conversations.axolotl", "device").Get("id") != "31415" {
		t.Errorf("bob's device list notification: %s", ev.El)
	}
	alice.Next(isEvent(bare("alice"), legacyDevices)) // her own client is interested too
	bob.Nothing(quiet, isEvent(bare("alice"), bundle))

	// OMEMO 2 (urn:xmpp:omemo:2): one bundles node with an item per
	// device, max_items 'max'.
	if r := alice.publish("", omemoBundles, "31415", "<bundle xmlns='urn:xmpp:omemo:2'><spk id='1'>AAAA</spk></bundle>",
		"pubsub#access_model=open", "pubsub#max_items=max"); r.Type != "result" {
		t.Fatalf("publish omemo:2 bundle: %s", r.El)
	}
	if r := alice.publish("", omemoBundles, "27182", "<bundle xmlns='urn:xmpp:omemo:2'><spk id='2'>BBBB</spk></bundle>",
		"pubsub#access_model=open", "pubsub#max_items=max"); r.Type != "result" {
		t.Fatalf("publish second omemo:2 bundle: %s", r.El)
	}
	if r := alice.publish("", omemoDevices, "current", "<devices xmlns='urn:xmpp:omemo:2'><device id='31415'/><device id='27182'/></devices>", open...); r.Type != "result" {
		t.Fatalf("publish omemo:2 devices: %s", r.El)
	}
	bob.Next(isEvent(bare("alice"), omemoDevices))

	tests := []struct {
		name, node, extra string
		ids               []string
	}{
		{"legacy bundle", bundle, "", []string{"current"}},
		{"legacy device list", legacyDevices, "", []string{"current"}},
		{"omemo:2 bundle by device id", omemoBundles, "><item id='27182'/></items>", []string{"27182"}},
		{"omemo:2 bundles, both kept", omemoBundles, "", []string{"31415", "27182"}},
		{"omemo:2 devices", omemoDevices, "", []string{"current"}},
	}
	for _, tt := range tests {
		t.Run("carol fetches "+tt.name, func(t *testing.T) {
			carol.t = t
			r := carol.fetch("alice@example.com", tt.node, tt.extra)
			if ids, _ := itemsOf(r); r.Type != "result" || !slices.Equal(ids, tt.ids) {
				t.Errorf("reply %s, want items %q", r.El, tt.ids)
			}
		})
	}

	t.Run("avatars", func(t *testing.T) {
		bob.t, carol.t = t, t
		const sha = "111f4b3c50d7b0df729d299bc6f8e9ef9066971f"
		alice.ok(publishXML("", avatarData, sha, "<data xmlns='urn:xmpp:avatar:data'>iVBORw0KGgo=</data>"))
		alice.ok(publishXML("", avatarMetadata, sha, "<metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='8' id='"+sha+"' type='image/png' height='1' width='1'/></metadata>"))
		ev := bob.Next(isEvent(bare("alice"), avatarMetadata))
		if ids, _ := itemsOf(ev); !slices.Equal(ids, []string{sha}) {
			t.Errorf("metadata notification %s", ev.El)
		}
		bob.Nothing(quiet, isEvent(bare("alice"), avatarData)) // no +notify for data
		if r := bob.fetch("alice@example.com", avatarData, "><item id='"+sha+"'/></items>"); r.Type != "result" {
			t.Errorf("bob fetching the avatar: %s", r.El)
		}
		if cond, _ := errorOf(carol.fetch("alice@example.com", avatarData, "")); cond != stanza.ServiceUnavailable {
			t.Errorf("carol fetching the avatar (presence access): %q, want service-unavailable", cond)
		}
	})
}

func TestPersistenceAcrossRestart(t *testing.T) {
	path := tempDB(t)
	st := openStore(t, path)
	srv := newServerOn(t, st)
	for _, u := range []string{"alice", "bob", "carol"} {
		srv.Account(u)
	}
	contacts(t, srv, "alice", "bob")
	a := &client{Client: srv.Connect("alice@example.com/phone"), t: t}
	a.ok(publishXML("", legacyDevices, "current", devicelist("1", "2"), "pubsub#access_model=open"))
	a.ok(publishXML("", bookmarks, "room@conference.example.com",
		"<conference xmlns='urn:xmpp:bookmarks:1' name='Room' autojoin='true'><nick>al</nick></conference>",
		"pubsub#persist_items=true", "pubsub#max_items=max", "pubsub#send_last_published_item=never", "pubsub#access_model=whitelist"))
	a.Disconnect()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// A new router on the same database, as after a restart.
	srv2 := newServerOn(t, openStore(t, path))
	bob := online(t, srv2, "bob@example.com/desk", legacyDevices)
	ev := bob.Next(isEvent(bare("alice"), legacyDevices))
	if ids, _ := itemsOf(ev); !slices.Equal(ids, []string{"current"}) || ev.El.Child(stanza.NSDelay, "delay") == nil {
		t.Errorf("last item after restart: %s", ev.El)
	}
	carol := &client{Client: srv2.Connect("carol@example.com/tab"), t: t}
	if r := carol.fetch("alice@example.com", legacyDevices, ""); r.Type != "result" {
		t.Errorf("carol after restart: %s", r.El)
	}
	a2 := &client{Client: srv2.Connect("alice@example.com/laptop"), t: t}
	if ids, _ := itemsOf(a2.fetch("alice@example.com", bookmarks, "")); !slices.Equal(ids, []string{"room@conference.example.com"}) {
		t.Errorf("bookmarks after restart: %q", ids)
	}
	// The configuration survived too: the device list is still open, the
	// bookmarks still private.
	if cond, app := errorOf(bob.fetch("alice@example.com", bookmarks, "")); cond != stanza.NotAllowed || app != "closed-node" {
		t.Errorf("bob fetching bookmarks after restart: %s/%s", cond, app)
	}
}

func TestDisco(t *testing.T) {
	srv := newServer(t)
	a := &client{Client: srv.Connect("alice@example.com/phone"), t: t}
	r := a.ok("<iq type='get' to='alice@example.com'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	q := r.Payload()
	hasIdentity := false
	var fs []string
	q.Children(func(c *stanza.Element) bool {
		switch c.Name.Local {
		case "identity":
			hasIdentity = hasIdentity || (c.Get("category") == "pubsub" && c.Get("type") == "pep")
		case "feature":
			fs = append(fs, c.Get("var"))
		}
		return true
	})
	if !hasIdentity {
		t.Errorf("account disco#info lacks the pubsub/pep identity: %s", r.El)
	}
	for _, want := range append(pep.Features, pep.FeatureBookmarksCompat) {
		if !slices.Contains(fs, want) {
			t.Errorf("account disco#info lacks %s", want)
		}
	}
	for _, f := range []string{"subscribe", "retrieve-subscriptions", "collections", "access-authorize"} {
		if slices.Contains(fs, pep.NS+"#"+f) {
			t.Errorf("account disco#info announces %s, which is not implemented", f)
		}
	}
}

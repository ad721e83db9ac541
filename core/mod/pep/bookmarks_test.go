package pep_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"kontor.im/kontor/core/mod/pep"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

// bookmarkOptions are the publish options XEP-0402 §3 prescribes.
var bookmarkOptions = []string{"pubsub#persist_items=true", "pubsub#max_items=max",
	"pubsub#send_last_published_item=never", "pubsub#access_model=whitelist"}

func conference(name, autojoin, nick string) string {
	return "<conference xmlns='urn:xmpp:bookmarks:1' name='" + name + "' autojoin='" + autojoin + "'><nick>" + nick + "</nick></conference>"
}

// privateRooms returns the rooms (jid=name) of alice's XEP-0048 bookmarks
// as a private XML get answers them, and the number of <url/> elements.
func privateRooms(t *testing.T, c *client) (rooms []string, urls int) {
	t.Helper()
	r := c.ok("<iq type='get'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query></iq>")
	st := r.Payload().Child("storage:bookmarks", "storage")
	st.Children(func(e *stanza.Element) bool {
		switch e.Name.Local {
		case "conference":
			rooms = append(rooms, e.Get("jid")+"="+e.Get("name")+"/"+e.Get("autojoin")+"/"+e.ChildText("storage:bookmarks", "nick"))
		case "url":
			urls++
		}
		return true
	})
	return rooms, urls
}

func TestBookmarks(t *testing.T) {
	srv := newServer(t)
	contacts(t, srv, "alice", "bob")
	bob := online(t, srv, "bob@example.com/desk", bookmarks)
	laptop := online(t, srv, "alice@example.com/laptop", bookmarks)
	phone := online(t, srv, "alice@example.com/phone")
	dave := &client{Client: srv.Connect("dave@example.com/pc"), t: t}
	for _, c := range []*client{bob, laptop, phone} {
		c.Received()
	}

	if r := phone.publish("", bookmarks, "room@conference.example.com", conference("The Room", "true", "al"), bookmarkOptions...); r.Type != "result" {
		t.Fatalf("publish bookmark: %s", r.El)
	}
	ev := laptop.Next(isEvent(bare("alice"), bookmarks))
	if ids, _ := itemsOf(ev); !slices.Equal(ids, []string{"room@conference.example.com"}) {
		t.Errorf("laptop's notification: %s", ev.El)
	}
	bob.Nothing(quiet, anyEvent)

	t.Run("private to the owner", func(t *testing.T) {
		bob.t, dave.t = t, t
		tests := []struct {
			c         *client
			cond, app string
		}{
			{bob, stanza.NotAllowed, "closed-node"},
			{dave, stanza.ServiceUnavailable, ""},
		}
		for _, tt := range tests {
			if cond, app := errorOf(tt.c.fetch("alice@example.com", bookmarks, "")); cond != tt.cond || app != tt.app {
				t.Errorf("%s fetching alice's bookmarks: %s/%s, want %s/%s", tt.c.JID, cond, app, tt.cond, tt.app)
			}
		}
	})

	t.Run("not sent on availability", func(t *testing.T) {
		tablet := online(t, srv, "alice@example.com/tablet", bookmarks)
		tablet.Nothing(quiet, anyEvent)
	})

	t.Run("XEP-0048 private XML follows", func(t *testing.T) {
		phone.t = t
		rooms, _ := privateRooms(t, phone)
		if want := []string{"room@conference.example.com=The Room/true/al"}; !slices.Equal(rooms, want) {
			t.Errorf("private bookmarks = %q, want %q", rooms, want)
		}
	})

	t.Run("an old client's private XML set reaches the node", func(t *testing.T) {
		phone.t, laptop.t = t, t
		laptop.Received()
		phone.ok("<iq type='set'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>" +
			"<conference jid='room@conference.example.com' name='Renamed' autojoin='false'><nick>al</nick></conference>" +
			"<conference jid='new@conference.example.com' name='New' autojoin='true'><nick>alice</nick><password>pw</password></conference>" +
			"<url name='Site' url='https://example.com/'/>" +
			"</storage></query></iq>")
		r := phone.fetch("alice@example.com", bookmarks, "")
		ids, _ := itemsOf(r)
		slices.Sort(ids)
		if !slices.Equal(ids, []string{"new@conference.example.com", "room@conference.example.com"}) {
			t.Fatalf("items after the private set: %s", r.El)
		}
		items := r.El.Child(pep.NS, "pubsub").Child(pep.NS, "items")
		items.Children(func(it *stanza.Element) bool {
			c := it.Child(bookmarks, "conference")
			switch it.Get("id") {
			case "room@conference.example.com":
				if c.Get("name") != "Renamed" || c.Get("autojoin") != "false" {
					t.Errorf("renamed room: %s", it)
				}
			case "new@conference.example.com":
				if c.ChildText(bookmarks, "password") != "pw" || c.ChildText(bookmarks, "nick") != "alice" {
					t.Errorf("new room: %s", it)
				}
			}
			return true
		})
		// The laptop hears of both changes.
		laptop.Next(isEvent(bare("alice"), bookmarks))
		laptop.Next(isEvent(bare("alice"), bookmarks))
	})

	t.Run("a retraction removes the room from private XML and keeps URLs", func(t *testing.T) {
		phone.t, laptop.t = t, t
		laptop.Received()
		phone.ok("<iq type='set'><pubsub xmlns='http://jabber.org/protocol/pubsub'><retract node='" + bookmarks + "' notify='true'><item id='room@conference.example.com'/></retract></pubsub></iq>")
		ev := laptop.Next(isEvent(bare("alice"), bookmarks))
		if r := ev.El.Child(pep.NSEvent, "event").Child(pep.NSEvent, "items").Child(pep.NSEvent, "retract"); r == nil {
			t.Errorf("retraction notification: %s", ev.El)
		}
		rooms, urls := privateRooms(t, phone)
		if want := []string{"new@conference.example.com=New/true/alice"}; !slices.Equal(rooms, want) || urls != 1 {
			t.Errorf("private bookmarks = %q with %d urls, want %q and the URL", rooms, urls, want)
		}
	})

	t.Run("an old client removing a room retracts it", func(t *testing.T) {
		phone.t, laptop.t = t, t
		laptop.Received()
		phone.ok("<iq type='set'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query></iq>")
		ev := laptop.Next(isEvent(bare("alice"), bookmarks))
		r := ev.El.Child(pep.NSEvent, "event").Child(pep.NSEvent, "items").Child(pep.NSEvent, "retract")
		if r == nil || r.Get("id") != "new@conference.example.com" {
			t.Errorf("retraction notification: %s", ev.El)
		}
		if ids, _ := itemsOf(phone.fetch("alice@example.com", bookmarks, "")); len(ids) != 0 {
			t.Errorf("items = %q, want none", ids)
		}
	})
}

func TestBookmarksSeededFromPrivateXML(t *testing.T) {
	srv := newServer(t)
	// Stored by an old client before the server offered XEP-0402.
	legacy := "<storage xmlns='storage:bookmarks'><conference jid='old@conference.example.com' name='Old' autojoin='true'><nick>c</nick></conference></storage>"
	if err := srv.Store.SetPrivate(context.Background(), bare("carol"), "{storage:bookmarks}storage", []byte(legacy)); err != nil {
		t.Fatal(err)
	}
	carol := &client{Client: srv.Connect("carol@example.com/new"), t: t}
	r := carol.fetch("carol@example.com", bookmarks, "")
	ids, texts := itemsOf(r)
	if !slices.Equal(ids, []string{"old@conference.example.com"}) || len(texts) != 1 {
		t.Fatalf("seeded bookmarks: %s", r.El)
	}
	n, err := srv.Store.(storage.PEPStore).PEPNode(context.Background(), bare("carol"), bookmarks)
	if err != nil || !strings.Contains(string(n.Config), `"access_model":"whitelist"`) {
		t.Errorf("seeded node %s: %v, want whitelist", n.Config, err)
	}
	// The XEP-0402 publish options match the seeded node.
	if r := carol.publish("", bookmarks, "other@conference.example.com", conference("Other", "false", "c"), bookmarkOptions...); r.Type != "result" {
		t.Errorf("publish with XEP-0402's options: %s", r.El)
	}
}

func TestPrivateNodesDefaults(t *testing.T) {
	srv := newServer(t)
	contacts(t, srv, "alice", "bob")
	a := &client{Client: srv.Connect("alice@example.com/phone"), t: t}
	b := &client{Client: srv.Connect("bob@example.com/desk"), t: t}
	tests := []struct{ node, payload string }{
		{bookmarks, conference("R", "true", "a")},
		{"storage:bookmarks", "<storage xmlns='storage:bookmarks'><conference jid='r@c.example.com' name='R'/></storage>"},
		{"urn:xmpp:mds:displayed:0", "<displayed xmlns='urn:xmpp:mds:displayed:0'><stanza-id xmlns='urn:xmpp:sid:0' id='1' by='alice@example.com'/></displayed>"},
	}
	for _, tt := range tests {
		t.Run(tt.node, func(t *testing.T) {
			a.t, b.t = t, t
			// A careless client publishes without options.
			a.ok(publishXML("", tt.node, "current", tt.payload))
			if cond, app := errorOf(b.fetch("alice@example.com", tt.node, "")); cond != stanza.NotAllowed || app != "closed-node" {
				t.Errorf("bob reading %s: %s/%s, want not-allowed/closed-node", tt.node, cond, app)
			}
		})
	}
	// XEP-0223: any node, with the private options.
	a.ok(publishXML("", "urn:example:private", "current", payload("urn:example", "secret"),
		"pubsub#persist_items=true", "pubsub#access_model=whitelist"))
	if cond, _ := errorOf(b.fetch("alice@example.com", "urn:example:private", "")); cond != stanza.NotAllowed {
		t.Errorf("bob reading XEP-0223 private data: %q", cond)
	}
	if _, texts := itemsOf(a.fetch("alice@example.com", "urn:example:private", "")); !slices.Equal(texts, []string{"secret"}) {
		t.Errorf("alice reading her private data: %q", texts)
	}
}

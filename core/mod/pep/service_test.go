package pep_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"kontor.im/kontor/core/dataform"
	"kontor.im/kontor/core/mod/pep"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

func TestPublishRetrieveRetract(t *testing.T) {
	srv := newServer(t)
	alice := srv.Connect("alice@example.com/phone")
	a := &client{Client: alice, t: t}
	node := "urn:example:notes"

	// A publish without an id gets one; the node is created (max_items 1
	// by default, then raised below).
	r := a.publish("", node, "", payload("urn:example", "first"))
	if r.Type != "result" {
		t.Fatalf("publish: %s", r.El)
	}
	pub := r.El.Child(pep.NS, "pubsub").Child(pep.NS, "publish")
	generated := pub.Child(pep.NS, "item").Get("id")
	if pub.Get("node") != node || len(generated) < 16 {
		t.Fatalf("publish result %s: want the node and a generated id", r.El)
	}
	a.ok("<iq type='set'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='" + node + "'>" +
		formXML(pep.NSNodeConfig, "", "pubsub#max_items=10") + "</configure></pubsub></iq>")
	for _, id := range []string{"a", "b", "c"} {
		if r := a.publish("alice@example.com", node, id, payload("urn:example", id)); r.Type != "result" {
			t.Fatalf("publish %s: %s", id, r.El)
		}
	}
	// Republishing "a" replaces it and makes it the newest.
	a.publish("", node, "a", payload("urn:example", "a2"))

	tests := []struct {
		name  string
		extra string
		ids   []string
		texts []string
	}{
		{"all, oldest first", "/>", []string{generated, "b", "c", "a"}, []string{"first", "b", "c", "a2"}},
		{"max_items 2", " max_items='2'/>", []string{"c", "a"}, []string{"c", "a2"}},
		{"by id", "><item id='b'/><item id='a'/></items>", []string{"b", "a"}, []string{"b", "a2"}},
		{"an unknown id among known ones", "><item id='zzz'/><item id='c'/></items>", []string{"c"}, []string{"c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.fetch("alice@example.com", node, tt.extra)
			if r.Type != "result" {
				t.Fatalf("items: %s", r.El)
			}
			ids, texts := itemsOf(r)
			if !slices.Equal(ids, tt.ids) || !slices.Equal(texts, tt.texts) {
				t.Errorf("items = %q %q, want %q %q", ids, texts, tt.ids, tt.texts)
			}
		})
	}

	t.Run("retract", func(t *testing.T) {
		a.ok("<iq type='set'><pubsub xmlns='http://jabber.org/protocol/pubsub'><retract node='" + node + "'><item id='b'/></retract></pubsub></iq>")
		ids, _ := itemsOf(a.fetch("alice@example.com", node, ""))
		if !slices.Equal(ids, []string{generated, "c", "a"}) {
			t.Errorf("after retract: %q", ids)
		}
		r := a.iq("<iq type='set'><pubsub xmlns='http://jabber.org/protocol/pubsub'><retract node='" + node + "'><item id='b'/></retract></pubsub></iq>")
		if cond, _ := errorOf(r); cond != stanza.ItemNotFound {
			t.Errorf("retracting it again: %s, want item-not-found", r.El)
		}
	})

	t.Run("errors", func(t *testing.T) {
		tests := []struct {
			name, xml, cond, app string
		}{
			{"items of a missing node", itemsXML("alice@example.com", "urn:example:none", "/>"), stanza.ItemNotFound, ""},
			{"an unknown item", itemsXML("alice@example.com", node, "><item id='nope'/></items>"), stanza.ItemNotFound, ""},
			{"retract from a missing node", "<iq type='set'><pubsub xmlns='http://jabber.org/protocol/pubsub'><retract node='x'><item id='a'/></retract></pubsub></iq>", stanza.ItemNotFound, ""},
			{"publish without an item", "<iq type='set'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='x'/></pubsub></iq>", stanza.BadRequest, "item-required"},
			{"publish without a payload", "<iq type='set'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='x'><item id='1'/></publish></pubsub></iq>", stanza.BadRequest, "payload-required"},
			{"publish without a node", "<iq type='set'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish><item><p xmlns='x'/></item></publish></pubsub></iq>", stanza.BadRequest, "nodeid-required"},
			{"explicit subscribe", "<iq type='set'><pubsub xmlns='http://jabber.org/protocol/pubsub'><subscribe node='x' jid='alice@example.com'/></pubsub></iq>", stanza.FeatureNotImplemented, "unsupported"},
			{"publish in a get", "<iq type='get'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='x'><item><p xmlns='x'/></item></publish></pubsub></iq>", stanza.BadRequest, ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := a.iq(tt.xml)
				if cond, app := errorOf(r); cond != tt.cond || app != tt.app {
					t.Errorf("reply %s: want %s/%s", r.El, tt.cond, tt.app)
				}
			})
		}
	})
}

func TestOnlyTheOwnerChangesNodes(t *testing.T) {
	srv := newServer(t)
	contacts(t, srv, "alice", "bob")
	b := &client{Client: srv.Connect("bob@example.com/desk"), t: t}
	tests := []struct{ name, xml string }{
		{"publish", publishXML("alice@example.com", "urn:example:x", "1", payload("urn:example", "x"))},
		{"retract", "<iq type='set' to='alice@example.com'><pubsub xmlns='http://jabber.org/protocol/pubsub'><retract node='x'><item id='1'/></retract></pubsub></iq>"},
		{"create", "<iq type='set' to='alice@example.com'><pubsub xmlns='http://jabber.org/protocol/pubsub'><create node='x'/></pubsub></iq>"},
		{"delete", "<iq type='set' to='alice@example.com'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><delete node='x'/></pubsub></iq>"},
		{"configure", "<iq type='get' to='alice@example.com'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='x'/></pubsub></iq>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if cond, _ := errorOf(b.iq(tt.xml)); cond != stanza.Forbidden {
				t.Errorf("bob's %s on alice's service: condition %q, want forbidden", tt.name, cond)
			}
		})
	}
	nodes, err := srv.Store.(storage.PEPStore).PEPNodes(context.Background(), bare("alice"))
	if err != nil || len(nodes) != 0 {
		t.Errorf("alice's nodes = %v, %v; want none", nodes, err)
	}
}

func TestConfigure(t *testing.T) {
	srv := newServer(t)
	a := &client{Client: srv.Connect("alice@example.com/phone"), t: t}
	node := "urn:example:conf"
	configure := func(fields ...string) *stanza.Stanza {
		return a.iq("<iq type='set'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='" + node + "'>" +
			formXML(pep.NSNodeConfig, "", fields...) + "</configure></pubsub></iq>")
	}
	form := func() dataform.Form {
		t.Helper()
		r := a.ok("<iq type='get'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='" + node + "'/></pubsub></iq>")
		x := r.El.Child(pep.NSOwner, "pubsub").Child(pep.NSOwner, "configure").Child(dataform.NS, "x")
		f, err := dataform.Parse(x)
		if err != nil {
			t.Fatalf("configure form: %v", err)
		}
		return f
	}
	if cond, _ := errorOf(configure("pubsub#max_items=3")); cond != stanza.ItemNotFound {
		t.Fatalf("configuring a missing node: want item-not-found")
	}
	a.ok("<iq type='set'><pubsub xmlns='http://jabber.org/protocol/pubsub'><create node='" + node + "'/></pubsub></iq>")
	if cond, _ := errorOf(a.iq("<iq type='set'><pubsub xmlns='http://jabber.org/protocol/pubsub'><create node='" + node + "'/></pubsub></iq>")); cond != stanza.Conflict {
		t.Errorf("creating it twice: want conflict")
	}
	f := form()
	if f.FormType() != pep.NSNodeConfig || f.Value("pubsub#access_model") != "presence" || f.Value("pubsub#max_items") != "1" ||
		f.Value("pubsub#send_last_published_item") != "on_sub_and_presence" || f.Value("pubsub#persist_items") != "1" {
		t.Errorf("default configuration: %+v", f.Fields)
	}

	tests := []struct {
		name   string
		fields []string
		cond   string
		check  map[string]string
	}{
		{"access and max", []string{"pubsub#access_model=open", "pubsub#max_items=5"}, "",
			map[string]string{"pubsub#access_model": "open", "pubsub#max_items": "5"}},
		{"max items 'max'", []string{"pubsub#max_items=max"}, "", map[string]string{"pubsub#max_items": "max"}},
		{"roster groups", []string{"pubsub#access_model=roster", "pubsub#roster_groups_allowed=Family|Friends"}, "",
			map[string]string{"pubsub#access_model": "roster"}},
		{"fixed field at its value", []string{"pubsub#deliver_payloads=true"}, "", nil},
		{"ignored descriptive field", []string{"pubsub#type=urn:example", "pubsub#title=Notes"}, "", map[string]string{"pubsub#title": "Notes"}},
		{"unsupported access model", []string{"pubsub#access_model=authorize"}, stanza.NotAcceptable, nil},
		{"max items beyond the limit", []string{"pubsub#max_items=100000"}, stanza.NotAcceptable, nil},
		{"max items not a number", []string{"pubsub#max_items=many"}, stanza.NotAcceptable, nil},
		{"fixed field changed", []string{"pubsub#deliver_payloads=0"}, stanza.NotAcceptable, nil},
		{"bad boolean", []string{"pubsub#persist_items=maybe"}, stanza.NotAcceptable, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := configure(tt.fields...)
			if cond, _ := errorOf(r); cond != tt.cond {
				t.Fatalf("configure %v: %s, want condition %q", tt.fields, r.El, tt.cond)
			}
			f := form()
			for k, v := range tt.check {
				if got := f.Value(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
	if fld, _ := form().Field("pubsub#roster_groups_allowed"); !slices.Equal(fld.Values, []string{"Family", "Friends"}) {
		t.Errorf("roster groups = %q", fld.Values)
	}

	t.Run("lowering max items drops the oldest", func(t *testing.T) {
		configure("pubsub#max_items=10", "pubsub#access_model=presence")
		for _, id := range []string{"1", "2", "3", "4"} {
			a.publish("", node, id, payload("urn:example", id))
		}
		configure("pubsub#max_items=2")
		if ids, _ := itemsOf(a.fetch("alice@example.com", node, "")); !slices.Equal(ids, []string{"3", "4"}) {
			t.Errorf("items = %q, want 3 and 4", ids)
		}
	})
	t.Run("not persisting any more purges", func(t *testing.T) {
		configure("pubsub#persist_items=0")
		if ids, _ := itemsOf(a.fetch("alice@example.com", node, "")); len(ids) != 0 {
			t.Errorf("items = %q, want none", ids)
		}
		if r := a.publish("", node, "5", payload("urn:example", "5")); r.Type != "result" {
			t.Fatalf("publish to a transient node: %s", r.El)
		}
		if ids, _ := itemsOf(a.fetch("alice@example.com", node, "")); len(ids) != 0 {
			t.Errorf("a transient node kept %q", ids)
		}
	})
	t.Run("cancel changes nothing", func(t *testing.T) {
		before := form()
		a.ok("<iq type='set'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='" + node +
			"'><x xmlns='jabber:x:data' type='cancel'/></configure></pubsub></iq>")
		if after := form(); after.Value("pubsub#max_items") != before.Value("pubsub#max_items") {
			t.Errorf("cancel changed the configuration")
		}
	})
	t.Run("default", func(t *testing.T) {
		r := a.ok("<iq type='get'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><default/></pubsub></iq>")
		x := r.El.Child(pep.NSOwner, "pubsub").Child(pep.NSOwner, "default").Child(dataform.NS, "x")
		f, err := dataform.Parse(x)
		if err != nil || f.Value("pubsub#access_model") != "presence" {
			t.Errorf("default form %v: %v", f.Fields, err)
		}
	})
}

func TestPublishOptions(t *testing.T) {
	srv := newServer(t, func(o *pep.Options) { o.MaxItems = 50 })
	a := &client{Client: srv.Connect("alice@example.com/phone"), t: t}
	node := omemoBundles
	// The first publish creates the node with its options.
	if r := a.publish("", node, "1001", payload("urn:xmpp:omemo:2", "bundle"), "pubsub#access_model=open", "pubsub#max_items=max"); r.Type != "result" {
		t.Fatalf("first publish: %s", r.El)
	}
	tests := []struct {
		name    string
		options []string
		ok      bool
	}{
		{"the same options", []string{"pubsub#access_model=open", "pubsub#max_items=max"}, true},
		{"max_items as the number 'max' means", []string{"pubsub#max_items=50"}, true},
		{"a subset", []string{"pubsub#access_model=open"}, true},
		{"persist_items as true", []string{"pubsub#persist_items=true"}, true},
		{"a fixed field at its value", []string{"pubsub#deliver_payloads=1"}, true},
		{"another access model", []string{"pubsub#access_model=presence"}, false},
		{"another max_items", []string{"pubsub#max_items=1"}, false},
		{"send_last_published_item differs", []string{"pubsub#send_last_published_item=never"}, false},
		{"an unknown field", []string{"pubsub#x-unknown=1"}, false},
		{"a descriptive field", []string{"pubsub#type=x"}, false},
		{"an invalid value", []string{"pubsub#access_model=authorize"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.publish("", node, "1002", payload("urn:xmpp:omemo:2", "bundle 2"), tt.options...)
			cond, app := errorOf(r)
			switch {
			case tt.ok && r.Type != "result":
				t.Errorf("publish: %s", r.El)
			case !tt.ok && (cond != stanza.Conflict || app != "precondition-not-met"):
				t.Errorf("publish: %s, want conflict and precondition-not-met", r.El)
			}
		})
	}

	// What Conversations does on precondition-not-met: reconfigure, then
	// publish again with the same options.
	t.Run("reconfigure and retry", func(t *testing.T) {
		opts := []string{"pubsub#access_model=presence"}
		if r := a.publish("", node, "1003", payload("urn:xmpp:omemo:2", "b"), opts...); r.Type != "error" {
			t.Fatalf("publish: %s, want an error", r.El)
		}
		a.ok("<iq type='set'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='" + node + "'>" +
			formXML(pep.NSNodeConfig, "", opts...) + "</configure></pubsub></iq>")
		if r := a.publish("", node, "1003", payload("urn:xmpp:omemo:2", "b"), opts...); r.Type != "result" {
			t.Errorf("publish after reconfiguring: %s", r.El)
		}
	})

	t.Run("options of a new node that cannot be honoured", func(t *testing.T) {
		r := a.publish("", "urn:example:new", "1", payload("urn:example", "x"), "pubsub#access_model=authorize")
		if cond, app := errorOf(r); cond != stanza.Conflict || app != "precondition-not-met" {
			t.Errorf("publish: %s", r.El)
		}
		if _, err := srv.Store.(storage.PEPStore).PEPNode(context.Background(), bare("alice"), "urn:example:new"); err == nil {
			t.Errorf("the node was created anyway")
		}
	})
	t.Run("a form of another type", func(t *testing.T) {
		x := publishXML("", "urn:example:other", "1", payload("urn:example", "x"), "pubsub#access_model=open")
		x = strings.Replace(x, pep.NSPublishOptions, pep.NSNodeConfig, 1)
		if cond, app := errorOf(a.iq(x)); cond != stanza.Conflict || app != "precondition-not-met" {
			t.Errorf("publish-options with FORM_TYPE node_config: %s/%s", cond, app)
		}
	})
}

func TestDeleteAndPurge(t *testing.T) {
	srv := newServer(t)
	contacts(t, srv, "alice", "bob")
	node := "urn:example:status"
	b := online(t, srv, "bob@example.com/desk", node)
	a := online(t, srv, "alice@example.com/phone")
	b.Received()
	purge := "<iq type='set'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><purge node='" + node + "'/></pubsub></iq>"
	if cond, _ := errorOf(a.iq(purge)); cond != stanza.ItemNotFound {
		t.Errorf("purging a node that does not exist: %q, want item-not-found", cond)
	}
	a.publish("", node, "1", payload("urn:example", "x"))
	b.Next(isEvent(bare("alice"), node))
	a.ok(purge)
	ev := b.Next(isEvent(bare("alice"), node))
	if ev.El.Child(pep.NSEvent, "event").Child(pep.NSEvent, "purge") == nil {
		t.Errorf("purge notification: %s", ev.El)
	}
	if ids, _ := itemsOf(a.fetch("alice@example.com", node, "")); len(ids) != 0 {
		t.Errorf("items after purge: %q", ids)
	}
	a.ok("<iq type='set'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><delete node='" + node + "'/></pubsub></iq>")
	ev = b.Next(isEvent(bare("alice"), node))
	if ev.El.Child(pep.NSEvent, "event").Child(pep.NSEvent, "delete") == nil {
		t.Errorf("delete notification: %s", ev.El)
	}
	if cond, _ := errorOf(a.fetch("alice@example.com", node, "")); cond != stanza.ItemNotFound {
		t.Errorf("items of a deleted node: %q, want item-not-found", cond)
	}
	if cond, _ := errorOf(a.iq("<iq type='set'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><delete node='" + node + "'/></pubsub></iq>")); cond != stanza.ItemNotFound {
		t.Errorf("deleting it again: %q, want item-not-found", cond)
	}
}

func TestLimits(t *testing.T) {
	srv := newServer(t, func(o *pep.Options) {
		o.MaxNodes, o.MaxPayloadBytes, o.QuotaBytes = 2, 1024, 2048
	})
	a := &client{Client: srv.Connect("alice@example.com/phone"), t: t}
	big := payload("urn:example", strings.Repeat("x", 1100))
	mid := payload("urn:example", strings.Repeat("y", 900))
	tests := []struct {
		name, node, id, payload string
		cond, app               string
	}{
		{"a payload too big", "n1", "1", big, stanza.NotAcceptable, "payload-too-big"},
		{"within limits", "n1", "1", mid, "", ""},
		{"a second node", "n2", "1", mid, "", ""},
		{"a third node", "n3", "1", mid, stanza.ResourceConstraint, "max-nodes-exceeded"},
		{"replacing within the quota", "n1", "1", mid, "", ""},
		{"beyond the quota", "n2", "2", mid, "", ""}, // max_items 1: replaces item 1 of n2
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.publish("", tt.node, tt.id, tt.payload)
			if cond, app := errorOf(r); cond != tt.cond || app != tt.app {
				t.Errorf("publish: %s, want %q/%q", r.El, tt.cond, tt.app)
			}
		})
	}
	t.Run("the account quota", func(t *testing.T) {
		a.ok("<iq type='set'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='n2'>" +
			formXML(pep.NSNodeConfig, "", "pubsub#max_items=10") + "</configure></pubsub></iq>")
		r := a.publish("", "n2", "3", mid)
		if cond, _ := errorOf(r); cond != stanza.ResourceConstraint {
			t.Errorf("publish beyond the quota: %s", r.El)
		}
		if ids, _ := itemsOf(a.fetch("alice@example.com", "n2", "")); !slices.Equal(ids, []string{"2"}) {
			t.Errorf("items after the refused publish: %q", ids)
		}
	})
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		set  func(*pep.Options)
		ok   bool
	}{
		{"defaults", func(*pep.Options) {}, true},
		{"max_items 0", func(o *pep.Options) { o.MaxItems = 0 }, false},
		{"max_nodes too many", func(o *pep.Options) { o.MaxNodes = 1 << 30 }, false},
		{"payload below 1 KiB", func(o *pep.Options) { o.MaxPayloadBytes = 100 }, false},
		{"quota below one payload", func(o *pep.Options) { o.QuotaBytes = int64(o.MaxPayloadBytes) - 1 }, false},
		{"caps cache too small", func(o *pep.Options) { o.CapsCacheSize = 1 }, false},
		{"max_tracked 0", func(o *pep.Options) { o.MaxTracked = 0 }, false},
		{"small but valid", func(o *pep.Options) {
			*o = pep.Options{MaxItems: 1, MaxNodes: 1, MaxPayloadBytes: 1024, QuotaBytes: 1024, CapsCacheSize: 16, MaxTracked: 1}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := pep.DefaultOptions()
			tt.set(&o)
			if err := o.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tt.ok)
			} else if err != nil && !strings.HasPrefix(err.Error(), "pep: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestMaxTracked(t *testing.T) {
	srv := newServer(t, func(o *pep.Options) { o.MaxTracked = 1 })
	contacts(t, srv, "alice", "bob")
	contacts(t, srv, "alice", "carol")
	node := "urn:example:n"
	bob := online(t, srv, "bob@example.com/desk", node)
	// alice's service tracks one resource (bob's); carol's client is
	// still asked (by carol's own service) but alice's ignores her.
	carol := online(t, srv, "carol@example.com/tab", node)
	a := &client{Client: srv.Connect("alice@example.com/phone"), t: t}
	a.publish("", node, "1", payload("urn:example", "x"))
	bob.Next(isEvent(bare("alice"), node))
	carol.Nothing(quiet, anyEvent)
}

func TestCreateWithConfiguration(t *testing.T) {
	srv := newServer(t)
	contacts(t, srv, "alice", "bob")
	subscribe(t, srv, "alice", "bob", storage.SubBoth, "Friends")
	a := &client{Client: srv.Connect("alice@example.com/phone"), t: t}
	b := &client{Client: srv.Connect("bob@example.com/desk"), t: t}
	tests := []struct {
		name, node, config, cond string
		bobReads                 bool
	}{
		{"roster access for Friends", "n1", formXML(pep.NSNodeConfig, "configure", "pubsub#access_model=roster", "pubsub#roster_groups_allowed=Friends"), "", true},
		{"whitelist", "n2", formXML(pep.NSNodeConfig, "configure", "pubsub#access_model=whitelist"), "", false},
		{"an invalid configuration", "n3", formXML(pep.NSNodeConfig, "configure", "pubsub#max_items=0"), stanza.NotAcceptable, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.t, b.t = t, t
			r := a.iq("<iq type='set'><pubsub xmlns='http://jabber.org/protocol/pubsub'><create node='" + tt.node + "'/>" + tt.config + "</pubsub></iq>")
			if cond, _ := errorOf(r); cond != tt.cond {
				t.Fatalf("create: %s, want %q", r.El, tt.cond)
			}
			if tt.cond != "" {
				return
			}
			a.ok(publishXML("", tt.node, "1", payload("urn:example", "x")))
			if got := b.fetch("alice@example.com", tt.node, "").Type == "result"; got != tt.bobReads {
				t.Errorf("bob reads: %v, want %v", got, tt.bobReads)
			}
		})
	}
	// The configuration form offers alice's roster groups.
	r := a.ok("<iq type='get'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='n1'/></pubsub></iq>")
	if !strings.Contains(r.El.String(), "<option><value>Friends</value></option>") {
		t.Errorf("configure form without the roster group: %s", r.El)
	}
}

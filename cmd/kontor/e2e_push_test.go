package main

// End-to-end tests of push notifications (XEP-0357) through the whole
// server: alice's phone (a raw client with stream management, as in
// e2e_sm_test.go: neither mellium nor Debian's slixmpp has XEP-0357)
// enables push and loses its connection; bob (mellium) writes; the app
// server is told, without the body. In TestE2EPushWhileDetached the app
// server sits behind an HTTP push gateway (a server in the test, standing
// in for the operator's gateway) and alice resumes and gets the message;
// in TestE2EPushToComponent it is a XEP-0114 component
// (mellium.im/xmpp/component) that gets the XEP-0357 publish IQ itself.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	kcomponent "kontor.im/kontor/core/mod/component"
	"kontor.im/kontor/core/storage"
)

func TestE2EPushWhileDetached(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		got := make(chan map[string]any, 10)
		gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			var req map[string]any
			if err := json.Unmarshal(b, &req); err != nil || r.Header.Get("Authorization") != "Bearer e2e-token" {
				t.Errorf("gateway: %s (%v), authorization %q", b, err, r.Header.Get("Authorization"))
			}
			got <- req
		}))
		defer gw.Close()
		ts := startTestServer(t, backend, func(c *Config) {
			c.Modules.Enabled = append(c.enabledModules(), "push")
			c.Modules.Options = map[string]any{"push": map[string]any{
				"gateway_url": gw.URL, "gateway_services": []any{"push.example.net"}, "gateway_token": "e2e-token"}}
		})
		ts.addUser(t, "alice", "alice-password")
		ts.addUser(t, "bob", "bob-password")

		alice, _ := ts.smDial(t, "alice", "alice-password")
		alice.mustWrite("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>phone</resource></bind></iq>")
		if n := alice.mustNext("bind"); n.attr("type") != "result" {
			t.Fatalf("bind: %s", n)
		}
		alice.mustWrite("<iq type='get' id='d1' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
		if n := alice.nextCounted("disco#info"); !strings.Contains(fmt.Sprint(n), "urn:xmpp:push:0") {
			t.Fatalf("the account does not announce push: %s", n)
		}
		alice.mustWrite(`<iq type='set' id='p1'><enable xmlns='urn:xmpp:push:0' jid='push.example.net' node='phone-node'>
			<x xmlns='jabber:x:data' type='submit'>
			<field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>
			<field var='secret'><value>s3cr3t</value></field></x></enable></iq>`)
		if n := alice.nextCounted("enable push"); n.attr("type") != "result" {
			t.Fatalf("enable push: %s", n)
		}
		alice.mustWrite("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
		enabled := alice.mustNext("enable")
		id := enabled.attr("id")
		alice.h = 0 // stanzas count from <enabled/> on
		alice.mustWrite("<presence/><message to='alice@localhost/phone' type='chat'><body>ready</body></message>")
		alice.messagesUntil("ready")
		acked := alice.h
		alice.mustWrite(fmt.Sprintf("<a xmlns='urn:xmpp:sm:3' h='%d'/><r xmlns='urn:xmpp:sm:3'/>", acked))
		if n := alice.mustNext("the answer to <r/>"); !n.is(nsSM, "a") {
			t.Fatalf("want <a/>, got %s", n)
		}

		bob := ts.dial(t, "bob", "bob-password")
		bob.chat(t, "alice@localhost", "seen at once")
		bob.barrier(t)
		select {
		case n := <-got:
			t.Fatalf("a push while alice is connected: %v", n)
		case <-time.After(300 * time.Millisecond):
		}

		alice.cut()
		waitUntil(t, "alice's session to be detached", func() bool { return ts.srv.c2s.DetachedCount() == 1 })
		bob.chat(t, "alice@localhost", "wake up, the meeting moved")
		var n map[string]any
		select {
		case n = <-got:
		case <-time.After(e2eWait):
			t.Fatal("no notification reached the gateway")
		}
		sum, _ := n["summary"].(map[string]any)
		opts, _ := n["publish_options"].(map[string]any)
		if n["service"] != "push.example.net" || n["node"] != "phone-node" || opts["secret"] != "s3cr3t" ||
			sum["message_count"] != float64(1) || sum["last_message_body"] != nil || sum["last_message_sender"] != nil {
			t.Fatalf("notification %v", n)
		}
		iq, _ := n["iq"].(string)
		if !strings.Contains(iq, "from='alice@localhost'") || !strings.Contains(iq, "node='phone-node'") || strings.Contains(iq, "meeting") {
			t.Fatalf("publish IQ %s", iq)
		}

		again, _ := ts.smDial(t, "alice", "alice-password")
		again.mustWrite(fmt.Sprintf("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='%d'/>", id, acked))
		if r := again.mustNext("resume"); !r.is(nsSM, "resumed") {
			t.Fatalf("resume: %s", r)
		}
		again.h = acked
		again.mustWrite("<message to='alice@localhost/phone' type='chat'><body>barrier</body></message>")
		// "seen at once" was delivered but not acknowledged: it comes again.
		if msgs := again.messagesUntil("barrier"); !slices.Equal(msgs, []string{"seen at once", "wake up, the meeting moved"}) {
			t.Fatalf("after resumption alice got %q", msgs)
		}
	})
}

// TestE2EPushToComponent: the app server is a component; alice's phone
// enables push with it and is cut off; bob's message makes the server
// publish to the component (the count, no body, no sender, the
// publish-options); the component answers result and the registration
// stays; the next publish it answers with item-not-found, and the
// registration is gone: a third message publishes nothing.
func TestE2EPushToComponent(t *testing.T) {
	const appSecret = "e2e app server secret"
	ts := startTestServer(t, "sqlite", func(c *Config) {
		c.Modules.Enabled = append(c.enabledModules(), "push", kcomponent.ID)
		c.Modules.Options = map[string]any{kcomponent.ID: map[string]any{
			"listen":     "127.0.0.1:0",
			"components": []any{map[string]any{"domain": "push.localhost", "secret": appSecret}},
		}}
	})
	ts.addUser(t, "alice", "alice-password")
	ts.addUser(t, "bob", "bob-password")
	app, err := connectComponent(t, ts, "push.localhost", appSecret)
	if err != nil {
		t.Fatal(err)
	}

	alice, _ := ts.smDial(t, "alice", "alice-password")
	alice.mustWrite("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>phone</resource></bind></iq>")
	if n := alice.mustNext("bind"); n.attr("type") != "result" {
		t.Fatalf("bind: %s", n)
	}
	alice.mustWrite(`<iq type='set' id='p1'><enable xmlns='urn:xmpp:push:0' jid='push.localhost' node='phone-node'>
		<x xmlns='jabber:x:data' type='submit'>
		<field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>
		<field var='secret'><value>s3cr3t</value></field></x></enable></iq>`)
	if n := alice.nextCounted("enable push"); n.attr("type") != "result" {
		t.Fatalf("enable push: %s", n)
	}
	alice.mustWrite("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	alice.mustNext("enable")
	alice.mustWrite("<presence/>")
	alice.cut()
	waitUntil(t, "alice's session to be detached", func() bool { return ts.srv.c2s.DetachedCount() == 1 })

	const nsPubSub = "http://jabber.org/protocol/pubsub"
	isPublish := func(n xmlNode) bool { return n.attr("type") == "set" && n.child(nsPubSub, "pubsub") != nil }
	field := func(form *xmlNode, name string) (string, bool) {
		for _, f := range form.Nodes {
			if f.attr("var") == name {
				return f.childText("", "value"), true
			}
		}
		return "", false
	}
	publish := func(want string) xmlNode {
		t.Helper()
		iq := app.IQs.expect(t, "a publish", isPublish)
		app.IQs.mu.Lock()
		app.IQs.items = nil // taken
		app.IQs.mu.Unlock()
		ps := iq.child(nsPubSub, "pubsub")
		pub := ps.child(nsPubSub, "publish")
		if iq.attr("from") != "alice@localhost" || iq.attr("to") != "push.localhost" || pub == nil || pub.attr("node") != "phone-node" {
			t.Fatalf("publish %s", iq)
		}
		form := pub.child(nsPubSub, "item").child("urn:xmpp:push:0", "notification").child("jabber:x:data", "x")
		if ft, _ := field(form, "FORM_TYPE"); ft != "urn:xmpp:push:summary" {
			t.Fatalf("summary form type %q: %s", ft, iq)
		}
		if c, _ := field(form, "message-count"); c != want {
			t.Fatalf("message-count %q, want %q: %s", c, want, iq)
		}
		_, sender := field(form, "last-message-sender")
		_, body := field(form, "last-message-body")
		if sender || body || strings.Contains(iq.String(), "meeting") || strings.Contains(iq.String(), "bob@") {
			t.Fatalf("the publish tells the sender or the body: %s", iq)
		}
		opts := ps.child(nsPubSub, "publish-options").child("jabber:x:data", "x")
		if s, _ := field(opts, "secret"); s != "s3cr3t" {
			t.Fatalf("publish-options: %s", iq)
		}
		return iq
	}
	regs := func() int {
		r, err := ts.srv.store.(storage.PushRegistrations).PushRegistrations(context.Background(), "alice@localhost")
		if err != nil {
			t.Fatal(err)
		}
		return len(r)
	}

	bob := ts.dial(t, "bob", "bob-password")
	bob.chat(t, "alice@localhost", "wake up, the meeting moved")
	iq := publish("1")
	app.send(t, "<iq type='result' from='push.localhost' to='alice@localhost' id='"+iq.attr("id")+"'/>")

	bob.chat(t, "alice@localhost", "the meeting is in room 2")
	iq = publish("2")
	if regs() != 1 {
		t.Fatal("the registration is gone after a result")
	}
	app.send(t, "<iq type='error' from='push.localhost' to='alice@localhost' id='"+iq.attr("id")+"'>"+
		"<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
	waitUntil(t, "the refused registration to be disabled", func() bool { return regs() == 0 })

	bob.chat(t, "alice@localhost", "anyone there?")
	bob.barrier(t)
	time.Sleep(300 * time.Millisecond)
	app.IQs.none(t, "a publish after the registration was disabled", isPublish)
}

// TestE2EPushOverFederation: the app server is a component of another
// server (push.b.test at b.test); alice at a.test enables push with it, is
// cut off, and bob's message makes a.test publish over server-to-server;
// the component's result comes back the same way, its item-not-found
// disables the registration.
func TestE2EPushOverFederation(t *testing.T) {
	const appSecret = "e2e federated app server secret"
	addrA, addrB := freePort(t), freePort(t)
	a := startTestServer(t, "sqlite", func(c *Config) {
		c.Domains = []string{"a.test"}
		c.S2S.Enabled, c.S2S.Addr, c.S2S.ConnectTimeout = true, addrA, 5*time.Second
		c.S2S.Routes = []string{"b.test=" + addrB, "push.b.test=" + addrB}
		c.Modules.Enabled = append(c.enabledModules(), "push")
	})
	b := startTestServer(t, "sqlite", func(c *Config) {
		c.Domains = []string{"b.test"}
		c.S2S.Enabled, c.S2S.Addr, c.S2S.ConnectTimeout = true, addrB, 5*time.Second
		c.S2S.Routes = []string{"a.test=" + addrA}
		c.Modules.Enabled = append(c.enabledModules(), kcomponent.ID)
		c.Modules.Options = map[string]any{kcomponent.ID: map[string]any{
			"listen":     "127.0.0.1:0",
			"components": []any{map[string]any{"domain": "push.b.test", "secret": appSecret}},
		}}
	})
	a.addUser(t, "alice@a.test", "alice-password")
	a.addUser(t, "bob@a.test", "bob-password")
	app, err := connectComponent(t, b, "push.b.test", appSecret)
	if err != nil {
		t.Fatal(err)
	}

	alice := a.dial(t, "alice@a.test", "alice-password", withResource("phone"))
	r := alice.iq(t, "<iq type='set' id='p1'><enable xmlns='urn:xmpp:push:0' jid='push.b.test' node='phone-node'/></iq>")
	if r.attr("type") != "result" {
		t.Fatalf("enable push: %s", r)
	}
	alice.Close()
	waitUntil(t, "alice to be gone", func() bool { return a.srv.router.SessionCount() == 0 })
	regs := func() int {
		r, err := a.srv.store.(storage.PushRegistrations).PushRegistrations(context.Background(), "alice@a.test")
		if err != nil {
			t.Fatal(err)
		}
		return len(r)
	}

	const nsPubSub = "http://jabber.org/protocol/pubsub"
	publish := func() xmlNode {
		t.Helper()
		iq := app.IQs.expect(t, "a publish over s2s", func(n xmlNode) bool { return n.child(nsPubSub, "pubsub") != nil })
		app.IQs.mu.Lock()
		app.IQs.items = nil
		app.IQs.mu.Unlock()
		if iq.attr("from") != "alice@a.test" || iq.attr("to") != "push.b.test" || strings.Contains(iq.String(), "bob@") {
			t.Fatalf("publish %s", iq)
		}
		return iq
	}
	bob := a.dial(t, "bob@a.test", "bob-password")
	bob.chat(t, "alice@a.test", "first")
	iq := publish()
	app.send(t, "<iq type='result' from='push.b.test' to='alice@a.test' id='"+iq.attr("id")+"'/>")
	bob.chat(t, "alice@a.test", "second")
	iq = publish()
	if regs() != 1 {
		t.Fatal("the registration is gone after a result")
	}
	app.send(t, "<iq type='error' from='push.b.test' to='alice@a.test' id='"+iq.attr("id")+"'>"+
		"<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
	waitUntil(t, "the refused registration to be disabled", func() bool { return regs() == 0 })
}

package main

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"kontor.im/kontor/core/module"
)

// iq sends an IQ (its id attribute must be id) and returns the answer with
// that id, skipping whatever else arrives.
func (r *rawClient) iq(id, x string) xmlNode {
	r.t.Helper()
	r.mustWrite(x)
	for {
		n := r.mustNext("answer to " + id)
		if n.is("jabber:client", "iq") && n.attr("id") == id {
			return n
		}
	}
}

// secretMarker is in every piece of alice's private data; no answer to bob
// may contain it.
const secretMarker = "secret"

// TestE2EIsolation: alice keeps private data of every kind (roster, private
// XML storage, a bookmark in a whitelist PEP node, a blocklist, archived
// messages with carol, an offline message); bob then sends every IQ the
// server's modules register (each type, each payload, to alice's bare JID,
// to the server, and to nobody), plus targeted queries naming alice (MAM
// with alice as 'with', the bookmarks node), and no answer contains alice's
// data; alice's data is unchanged afterwards; a forged 'from' closes bob's
// stream.
func TestE2EIsolation(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		ts := startTestServer(t, backend, enableArchive(t))
		for _, u := range []string{"alice", "bob", "carol"} {
			ts.addUser(t, u, u+"-password")
		}
		carol := ts.rawDial(t, "starttls")
		carol.login("carol", "carol-password", "c", "")
		carol.mustWrite("<presence/>")

		alice := ts.rawDial(t, "starttls")
		alice.login("alice", "alice-password", "a", "")
		seed := []struct{ name, x string }{
			{"roster", "<iq type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='carol@localhost' name='secret-roster'/></query></iq>"},
			{"private", "<iq type='set' id='s2'><query xmlns='jabber:iq:private'><notes xmlns='urn:example:notes'>secret-private</notes></query></iq>"},
			{"bookmark", "<iq type='set' id='s3'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:bookmarks:1'>" +
				"<item id='room@conference.localhost'><conference xmlns='urn:xmpp:bookmarks:1' name='secret-bookmark'/></item></publish>" +
				"<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>" +
				"<field var='pubsub#persist_items'><value>true</value></field><field var='pubsub#access_model'><value>whitelist</value></field></x></publish-options></pubsub></iq>"},
			{"blocklist", "<iq type='set' id='s4'><block xmlns='urn:xmpp:blocking'><item jid='secret-blocked@localhost'/></block></iq>"},
		}
		for i, s := range seed {
			if n := alice.iq(fmt.Sprintf("s%d", i+1), s.x); n.attr("type") != "result" {
				t.Fatalf("seeding alice's %s: %s", s.name, n)
			}
		}
		alice.mustWrite("<message to='carol@localhost' id='m1' type='chat'><body>secret-archived</body></message>")
		// A round trip: the message is handled (and archived) before alice goes.
		alice.iq("sync", "<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>")
		alice.mustWrite("</stream:stream>")
		alice.waitClosed()
		carol.mustWrite("<message to='alice@localhost' id='m2' type='chat'><body>secret-offline</body></message>")
		carol.iq("sync", "<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>")

		bob := ts.rawDial(t, "starttls")
		bob.login("bob", "bob-password", "b", "")
		type probe struct{ name, to, typ, payload string }
		var probes []probe
		routes := ts.srv.router.Host(e2eDomain).IQRoutes()
		sort.Slice(routes, func(i, j int) bool {
			a, b := routes[i], routes[j]
			return fmt.Sprint(a.Payload.Space, a.Payload.Local, a.Type, a.Target) < fmt.Sprint(b.Payload.Space, b.Payload.Local, b.Type, b.Target)
		})
		for _, r := range routes {
			payload := fmt.Sprintf("<%s xmlns='%s'/>", r.Payload.Local, r.Payload.Space)
			name := fmt.Sprintf("%s {%s}%s", r.Type, r.Payload.Space, r.Payload.Local)
			switch r.Target {
			case module.ToAccount:
				probes = append(probes, probe{name + " to alice", "alice@localhost", string(r.Type), payload},
					probe{name + " to bob's own account", "", string(r.Type), payload})
			case module.ToHost:
				probes = append(probes, probe{name + " to the server", e2eDomain, string(r.Type), payload})
			case module.ToResource:
				probes = append(probes, probe{name + " to alice's last resource", "alice@localhost/a", string(r.Type), payload})
			}
		}
		if len(probes) < 20 {
			t.Fatalf("only %d IQ handlers registered: %v", len(probes), routes)
		}
		mamWithAlice := "<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>" +
			"<field var='with'><value>alice@localhost</value></field></x></query>"
		probes = append(probes,
			probe{"MAM query of alice's archive", "alice@localhost", "set", "<query xmlns='urn:xmpp:mam:2'/>"},
			probe{"MAM query of alice's archive with alice as 'with'", "alice@localhost", "set", mamWithAlice},
			probe{"MAM query of bob's archive with alice as 'with'", "", "set", mamWithAlice},
			probe{"MAM query of carol's archive", "carol@localhost", "set", "<query xmlns='urn:xmpp:mam:2'/>"},
			probe{"alice's bookmarks node", "alice@localhost", "get", "<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:bookmarks:1'/></pubsub>"},
			probe{"alice's bookmarks node from the server", e2eDomain, "get", "<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:bookmarks:1'/></pubsub>"},
			probe{"alice's private storage", "alice@localhost", "get", "<query xmlns='jabber:iq:private'><notes xmlns='urn:example:notes'/></query>"},
			probe{"alice's roster", "alice@localhost", "get", "<query xmlns='jabber:iq:roster'/>"},
			probe{"alice's blocklist", "alice@localhost", "get", "<blocklist xmlns='urn:xmpp:blocking'/>"},
			probe{"disco items of alice", "alice@localhost", "get", "<query xmlns='http://jabber.org/protocol/disco#items' node='urn:xmpp:bookmarks:1'/>"},
		)
		for i, p := range probes {
			id := fmt.Sprintf("p%d", i)
			to := ""
			if p.to != "" {
				to = " to='" + p.to + "'"
			}
			n := bob.iq(id, fmt.Sprintf("<iq type='%s' id='%s'%s>%s</iq>", p.typ, id, to, p.payload))
			// Results to a MAM query come as messages before the answer:
			// read any that came, too.
			if s := n.String(); strings.Contains(strings.ToLower(s), secretMarker) {
				t.Errorf("%s: bob got alice's data: %s", p.name, s)
			}
			t.Logf("%-70s %s", p.name, answerSummary(n))
		}
		// Nothing else (archive results, pushes) leaked either.
		bob.mustWrite("<iq type='get' id='end'><ping xmlns='urn:xmpp:ping'/></iq>")
		for {
			n := bob.mustNext("the end")
			if strings.Contains(strings.ToLower(n.String()), secretMarker) {
				t.Errorf("bob got alice's data: %s", n)
			}
			if n.attr("id") == "end" {
				break
			}
		}

		// alice's data is all there.
		alice = ts.rawDial(t, "starttls")
		alice.login("alice", "alice-password", "a", "")
		for _, c := range []struct{ name, x, want string }{
			{"roster", "<iq type='get' id='c1'><query xmlns='jabber:iq:roster'/></iq>", "secret-roster"},
			{"private", "<iq type='get' id='c2'><query xmlns='jabber:iq:private'><notes xmlns='urn:example:notes'/></query></iq>", "secret-private"},
			{"bookmark", "<iq type='get' id='c3'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:bookmarks:1'/></pubsub></iq>", "secret-bookmark"},
			{"blocklist", "<iq type='get' id='c4'><blocklist xmlns='urn:xmpp:blocking'/></iq>", "secret-blocked"},
		} {
			if n := alice.iq(c.x[strings.Index(c.x, "id='")+4:strings.Index(c.x, "id='")+6], c.x); !strings.Contains(n.String(), c.want) {
				t.Errorf("alice's %s changed after bob's attempts: %s", c.name, n)
			}
		}
		alice.mustWrite("<presence/>")
		for {
			n := alice.mustNext("the offline message")
			if n.is("jabber:client", "message") && n.body() == "secret-offline" {
				break
			}
		}

		// A forged 'from' ends bob's stream.
		bob.mustWrite("<iq type='get' id='forged' from='alice@localhost/a'><query xmlns='jabber:iq:roster'/></iq>")
		if cond, skipped := bob.streamError(); cond != "invalid-from" {
			t.Errorf("forged from: stream error %q (skipped %v), want invalid-from", cond, skipped)
		}
	})
}

// answerSummary is an IQ answer's type and error condition.
func answerSummary(n xmlNode) string {
	if n.attr("type") == "error" {
		typ, cond := n.stanzaError()
		return "error " + typ + " " + cond
	}
	return n.attr("type")
}

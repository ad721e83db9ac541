package policy_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kontor.im/kontor/core/directory"
	"kontor.im/kontor/core/gate"
	policygate "kontor.im/kontor/core/mod/gate"
	_ "kontor.im/kontor/core/mod/presence"
	_ "kontor.im/kontor/core/mod/roster"
	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/policy"
)

const quiet = 50 * time.Millisecond

const barrier = `package kontor.contact

walled := {"Trading", "Research"}

deny contains {
	"reason": "information_barrier",
	"message": "Trading and Research may not communicate (information barrier).",
} if {
	input.from.department in walled
	input.to.department in walled
	input.from.department != input.to.department
}
`

func staff() directory.Snapshot {
	p := func(local string, kind directory.Kind, dept string, sponsors ...string) directory.Person {
		return directory.Person{JID: local + "@example.com", Kind: kind, Department: dept, Sponsors: sponsors}
	}
	people := map[string]directory.Person{}
	for _, x := range []directory.Person{
		p("anna", directory.Employee, "Sales"),
		p("ben", directory.Employee, "Research"),
		p("tom", directory.Employee, "Trading"),
		p("gus", directory.Guest, "", "anna@example.com"),
		p("kunde", directory.External, ""),
	} {
		people[x.JID] = x
	}
	return directory.Snapshot{People: people, Revision: "staff-1"}
}

// server runs roster, presence and the policy gate with engine e, and
// creates the accounts.
func server(t testing.TB, e gate.Decider, accounts ...string) *modtest.Server {
	t.Helper()
	info, ok := module.Lookup(policygate.ID)
	if !ok {
		t.Fatal("policy_gate is not registered")
	}
	g := info.New()
	g.(interface{ SetDecider(gate.Decider) }).SetDecider(e)
	srv := modtest.New(t, modtest.Options{}, router.Enabled{Info: info, Module: g},
		modtest.Module(t, "roster"), modtest.Module(t, "presence"))
	for _, a := range accounts {
		srv.Account(a)
	}
	return srv
}

func engine(t testing.TB, dir string, snap *directory.Snapshot) *policy.Engine {
	t.Helper()
	e, err := policy.New(context.Background(), policy.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	if snap != nil {
		if err := e.UpdateDirectory(context.Background(), *snap); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func policyDir(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestXMPPMessages(t *testing.T) {
	snap := staff()
	e := engine(t, policyDir(t, map[string]string{"barrier.rego": barrier}), &snap)
	tests := []struct {
		name, from, to, payload string
		reason, text            string // "" when delivered
	}{
		{"employees chat", "anna", "ben", "<body>hi</body>", "", ""},
		{"information barrier", "tom", "ben", "<body>hi</body>", "information_barrier", "information barrier"},
		{"the barrier works both ways", "ben", "tom", "<body>hi</body>", "information_barrier", "information barrier"},
		{"guest to sponsor", "gus", "anna", "<body>hi</body>", "", ""},
		{"guest to someone else", "gus", "ben", "<body>hi</body>", "guest_not_sponsored", "Guests can only chat with the employees who sponsor them."},
		{"encrypted internal chat", "anna", "ben", "<encrypted xmlns='eu.siacs.conversations.axolotl'/>", "", ""},
		{"encrypted business letter", "anna", "kunde", "<encrypted xmlns='urn:xmpp:omemo:2'/>", "retention_requires_readable", "business letter"},
		{"plain business letter", "anna", "kunde", "<body>Angebot</body>", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := server(t, e, tt.from, tt.to)
			from := srv.Connect(tt.from + "@example.com/a")
			to := srv.Connect(tt.to + "@example.com/b")
			from.SendXML("<message to='" + tt.to + "@example.com/b' type='chat' id='m1'>" + tt.payload + "</message>")
			if tt.reason == "" {
				to.Next(func(s *stanza.Stanza) bool { return s.ID == "m1" && !s.IsError() })
				from.Nothing(quiet, func(s *stanza.Stanza) bool { return s.IsError() })
				return
			}
			got := from.Next(func(s *stanza.Stanza) bool { return s.ID == "m1" && s.IsError() })
			se, _ := stanza.ErrorOf(got)
			if se.Condition != stanza.PolicyViolation || !strings.Contains(se.Text, tt.text) || !strings.Contains(se.Text, "("+tt.reason+")") {
				t.Errorf("error %+v, want policy-violation with %q and (%s)", se, tt.text, tt.reason)
			}
			if d := got.El.Child(stanza.NSClient, "error").Child(gate.NS, "decision"); d == nil || d.Get("reason") != tt.reason || d.Get("id") == "" {
				t.Errorf("decision element missing or wrong in %s", got.El)
			}
			to.Nothing(quiet, func(s *stanza.Stanza) bool { return s.ID == "m1" })
		})
	}
}

func TestXMPPSubscriptionAndRoster(t *testing.T) {
	snap := staff()
	e := engine(t, "", &snap)
	srv := server(t, e, "gus", "ben", "anna")
	gus := srv.Connect("gus@example.com/a")
	ben := srv.Connect("ben@example.com/b")
	ben.SendXML("<presence/>")

	gus.SendXML("<iq type='set' id='r1'><query xmlns='jabber:iq:roster'><item jid='ben@example.com'/></query></iq>")
	if res := gus.NextIQ("r1"); modtest.ErrorCondition(res) != stanza.PolicyViolation {
		t.Errorf("roster add answered %s", res.El)
	}
	gus.SendXML("<presence type='subscribe' to='ben@example.com' id='s1'/>")
	res := gus.Next(func(s *stanza.Stanza) bool { return s.ID == "s1" && s.IsError() })
	if modtest.ErrorCondition(res) != stanza.PolicyViolation {
		t.Errorf("subscription answered %s", res.El)
	}
	ben.Nothing(quiet, func(s *stanza.Stanza) bool { return s.Type == "subscribe" })

	// The sponsor is fine.
	gus.SendXML("<iq type='set' id='r2'><query xmlns='jabber:iq:roster'><item jid='anna@example.com'/></query></iq>")
	if res := gus.NextIQ("r2"); res.Type != "result" {
		t.Errorf("roster add of the sponsor answered %s", res.El)
	}
}

func TestXMPPZeroConfigUsersChat(t *testing.T) {
	e := engine(t, "", nil)
	srv := server(t, e, "alice", "bob")
	a := srv.Connect("alice@example.com/a")
	b := srv.Connect("bob@example.com/b")
	a.SendXML("<message to='bob@example.com/b' type='chat' id='m1'><body>hi</body></message>")
	b.Next(func(s *stanza.Stanza) bool { return s.ID == "m1" && !s.IsError() })
	a.SendXML("<presence type='subscribe' to='bob@example.com' id='s1'/>")
	a.Nothing(quiet, func(s *stanza.Stanza) bool { return s.IsError() })
}

func TestXMPPBrokenPolicyLeavesOldActive(t *testing.T) {
	snap := staff()
	dir := policyDir(t, map[string]string{"barrier.rego": barrier})
	e := engine(t, dir, &snap)
	srv := server(t, e, "tom", "ben", "anna")
	tom := srv.Connect("tom@example.com/a")
	anna := srv.Connect("anna@example.com/a")
	ben := srv.Connect("ben@example.com/b")

	if err := os.WriteFile(filepath.Join(dir, "barrier.rego"), []byte(barrier+"\ndeny contains {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var le *policy.LoadError
	if err := e.Reload(context.Background(), "test"); !errors.As(err, &le) {
		t.Fatalf("reload of a broken file: %v", err)
	}
	if !strings.Contains(le.Error(), filepath.Join(dir, "barrier.rego")+":") {
		t.Errorf("error %q lacks file and line", le)
	}
	tom.SendXML("<message to='ben@example.com/b' type='chat' id='m1'><body>hi</body></message>")
	got := tom.Next(func(s *stanza.Stanza) bool { return s.ID == "m1" })
	if se, _ := stanza.ErrorOf(got); se.Condition != stanza.PolicyViolation || !strings.Contains(se.Text, "information_barrier") {
		t.Errorf("the old policy is not active: %s", got.El)
	}
	anna.SendXML("<message to='ben@example.com/b' type='chat' id='m2'><body>hi</body></message>")
	ben.Next(func(s *stanza.Stanza) bool { return s.ID == "m2" && !s.IsError() })
}

func TestRegistrationGate(t *testing.T) {
	snap := staff()
	e := engine(t, "", &snap)
	g := gate.RegistrationGate{Decider: e}
	tests := []struct {
		name, username string
		allow          bool
	}{
		{"free name", "gast17", true},
		{"directory name", "anna", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, why := g.AllowRegistration(context.Background(), "example.com", tt.username, netip.MustParseAddr("192.0.2.7"))
			if ok != tt.allow || (!ok && !strings.Contains(why, "reserved_by_directory")) {
				t.Errorf("got %v %q", ok, why)
			}
		})
	}
	if ok, why := (gate.RegistrationGate{}).AllowRegistration(context.Background(), "example.com", "x", netip.Addr{}); ok || !strings.Contains(why, gate.ReasonUnavailable) {
		t.Errorf("without a decider: %v %q", ok, why)
	}
}

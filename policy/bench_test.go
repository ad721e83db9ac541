package policy_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"kontor.im/kontor/core/directory"
	"kontor.im/kontor/core/gate"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/policy"
)

// bigCompany is a directory of n employees in 20 departments.
func bigCompany(n int) directory.Snapshot {
	s := directory.Snapshot{People: map[string]directory.Person{}, Groups: map[string]directory.Group{}, Revision: fmt.Sprint("big-", n)}
	for i := range n {
		j := fmt.Sprintf("user%d@example.com", i)
		g := fmt.Sprintf("g%d", i%20)
		s.People[j] = directory.Person{JID: j, Kind: directory.Employee, Department: fmt.Sprint("Dept ", i%20), Company: "ACME", Groups: []string{g}}
		grp := s.Groups[g]
		grp.ID, grp.Name = g, fmt.Sprint("Group ", i%20)
		grp.Members = append(grp.Members, j)
		s.Groups[g] = grp
	}
	return s
}

func benchEngine(b *testing.B, cacheSize int, snap *directory.Snapshot) *policy.Engine {
	b.Helper()
	// A generous deadline: a benchmark measures evaluation, and a busy
	// machine must not turn it into a timeout.
	e, err := policy.New(context.Background(), policy.Options{CacheSize: cacheSize, Timeout: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	if snap != nil {
		if err := e.UpdateDirectory(context.Background(), *snap); err != nil {
			b.Fatal(err)
		}
	}
	return e
}

// BenchmarkContact measures one contact decision: from the cache, and
// evaluated (cache off), for people from a directory of 1000 and for
// local accounts the directory does not know.
func BenchmarkContact(b *testing.B) {
	snap := bigCompany(1000)
	known := make([]gate.ContactInput, 64)
	unknown := make([]gate.ContactInput, 64)
	for i := range known {
		known[i] = gate.ContactInput{Action: gate.ActionMessage, StanzaType: "chat",
			From: gate.Party{JID: fmt.Sprintf("user%d@example.com", i), Local: true},
			To:   gate.Party{JID: fmt.Sprintf("user%d@example.com", i+500), Local: true}}
		unknown[i] = gate.ContactInput{Action: gate.ActionMessage, StanzaType: "chat",
			From: gate.Party{JID: fmt.Sprintf("x%d@example.com", i), Local: true},
			To:   gate.Party{JID: fmt.Sprintf("y%d@example.com", i), Local: true}}
	}
	for _, bc := range []struct {
		name  string
		cache int
		ins   []gate.ContactInput
	}{
		{"cached", 0, known},
		{"uncached", -1, known},
		{"uncached-unknown-parties", -1, unknown},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := benchEngine(b, bc.cache, &snap)
			ctx := context.Background()
			for _, in := range bc.ins { // warm the cache (when on)
				e.Contact(ctx, in)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if d := e.Contact(ctx, bc.ins[i%len(bc.ins)]); !d.Allow {
					b.Fatalf("refused: %+v", d)
				}
				i++
			}
		})
	}
}

// BenchmarkRetention measures the retention decision of a message to a
// customer, including the calendar arithmetic.
func BenchmarkRetention(b *testing.B) {
	for _, bc := range []struct {
		name  string
		cache int
	}{{"cached", 0}, {"uncached", -1}} {
		b.Run(bc.name, func(b *testing.B) {
			e := benchEngine(b, bc.cache, nil)
			in := gate.RetentionInput{From: gate.Party{JID: "anna@example.com", Local: true}, To: gate.Party{JID: "cora@customer.example"},
				StanzaType: "chat", At: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
			ctx := context.Background()
			e.Retention(ctx, in)
			b.ReportAllocs()
			for b.Loop() {
				if d := e.Retention(ctx, in); d.Class != "business_letter" {
					b.Fatalf("got %+v", d)
				}
			}
		})
	}
}

// sink is a router.Conn that counts what it gets, so that a long
// benchmark does not keep every stanza.
type sink struct{ n int }

func (s *sink) Send(*stanza.Stanza)       { s.n++ }
func (s *sink) Close(*stanza.StreamError) {}
func (s *sink) bind(b *testing.B, r *router.Router, full string) {
	b.Helper()
	if _, err := r.Bind(context.Background(), jid.MustParse(full), s); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkMessagePath routes a chat message from alice to bob's resource
// through the router with roster and presence, with the policy gate (and
// the default policy, decisions cached after the first) and without it.
func BenchmarkMessagePath(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "policy-off"
		if on {
			name = "policy-on"
		}
		b.Run(name, func(b *testing.B) {
			mods := []router.Enabled{modtest.Module(b, "roster"), modtest.Module(b, "presence")}
			var srv *modtest.Server
			if on {
				e := benchEngine(b, 0, nil)
				srv = server(b, e)
			} else {
				srv = modtest.New(b, modtest.Options{}, mods...)
			}
			srv.Account("alice")
			srv.Account("bob")
			alice := srv.Connect("alice@example.com/a")
			bob := &sink{}
			bob.bind(b, srv.Router, "bob@example.com/b")
			s := modtest.Parse(b, "<message to='bob@example.com/b' type='chat' id='m1'><body>hello</body></message>")
			s.SetFrom(alice.JID)
			ctx := context.Background()
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				srv.Router.RouteFrom(ctx, alice.Res, s)
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
			if bob.n == 0 || len(alice.Received()) != 0 {
				b.Fatalf("bob got %d messages; alice got errors", bob.n)
			}
		})
	}
}

// cpuTime is the CPU time (user and system) the process has used: on a
// shared machine it leaves out the time spent waiting to be scheduled,
// which wall-clock ns/op includes.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

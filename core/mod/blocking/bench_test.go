package blocking_test

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"

	"kontor.im/kontor/core/jid"
	_ "kontor.im/kontor/core/mod/carbons"
	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/stanza"
)

// sink is a session that counts what it is sent and keeps nothing, so that
// a benchmark measures routing, not the test client's inbox.
type sink struct{ n atomic.Int64 }

func (s *sink) Send(*stanza.Stanza)       { s.n.Add(1) }
func (s *sink) Close(*stanza.StreamError) {}
func (s *sink) count() int64              { return s.n.Load() }
func (s *sink) reset()                    { s.n.Store(0) }
func sinks(ss ...*sink) (n int64) {
	for _, s := range ss {
		n += s.count()
	}
	return n
}
func resetAll(ss ...*sink) {
	for _, s := range ss {
		s.reset()
	}
}

// BenchmarkMessage routes one chat message from alice's phone to bob's
// bare JID, with carbons and blocking enabled or not, in two scenarios:
//
//   - one device each: alice's phone and bob's desk, both available with
//     carbons enabled (what every mobile client does): nothing to copy;
//   - two devices each: alice also has a laptop, bob also a phone with a
//     lower priority, all available with carbons enabled: the laptop gets
//     a sent carbon and bob's phone a received one.
//
// Both blocklists are loaded (alice's blocks two other JIDs) before the
// timer starts. Besides ns/op (wall time), it reports cpu-ns/op: the
// process's CPU time per message (GC included), which stays meaningful on
// a machine shared with other work.
func BenchmarkMessage(b *testing.B) {
	for _, devices := range []int{1, 2} {
		for _, bc := range []struct {
			name    string
			modules []string
		}{
			{"none", nil},
			{"carbons", []string{"carbons"}},
			{"blocking", []string{"blocking"}},
			{"carbons+blocking", []string{"blocking", "carbons"}},
		} {
			b.Run(fmt.Sprintf("devices=%d/%s", devices, bc.name), func(b *testing.B) {
				benchMessage(b, devices, bc.modules)
			})
		}
	}
}

func benchMessage(b *testing.B, devices int, modules []string) {
	var mods []router.Enabled
	for _, id := range modules {
		mods = append(mods, modtest.Module(b, id))
	}
	srv := modtest.New(b, modtest.Options{}, mods...)
	srv.Account("alice")
	srv.Account("bob")
	ctx := context.Background()
	bind := func(full string, priority int) (module.Resource, *sink) {
		s := &sink{}
		r, err := srv.Router.Bind(ctx, jid.MustParse(full), s)
		if err != nil {
			b.Fatal(err)
		}
		p := modtest.Parse(b, fmt.Sprintf("<presence><priority>%d</priority></presence>", priority))
		p.SetFrom(r.JID())
		srv.Host.SetPresence(ctx, r, p)
		for _, x := range []string{
			"<iq type='set' id='c'><enable xmlns='urn:xmpp:carbons:2'/></iq>",
			"<iq type='get' id='b'><blocklist xmlns='urn:xmpp:blocking'/></iq>",
		} {
			st := modtest.Parse(b, x)
			st.SetFrom(r.JID())
			srv.Router.RouteFrom(ctx, r, st)
		}
		return r, s
	}
	phone, sPhone := bind("alice@example.com/phone", 0)
	_, sDesk := bind("bob@example.com/desk", 1)
	all := []*sink{sPhone, sDesk}
	want := int64(1)
	if devices == 2 {
		_, sLaptop := bind("alice@example.com/laptop", 0)
		_, sBobPhone := bind("bob@example.com/phone", 0)
		all = append(all, sLaptop, sBobPhone)
		if slices.Contains(modules, "carbons") {
			want = 3
		}
	}
	if slices.Contains(modules, "blocking") {
		st := modtest.Parse(b, "<iq type='set' id='x'><block xmlns='urn:xmpp:blocking'><item jid='spam.example'/><item jid='carol@example.org'/></block></iq>")
		st.SetFrom(phone.JID())
		srv.Router.RouteFrom(ctx, phone, st)
	}
	msg := modtest.Parse(b, "<message type='chat' to='bob@example.com' id='m1'><body>Hello, Bob. Lunch at noon?</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>")
	msg.SetFrom(phone.JID())
	// Warm up (and check the scenario) once.
	resetAll(all...)
	srv.Router.RouteFrom(ctx, phone, msg)
	if got := sinks(all...); got != want || sDesk.count() != 1 {
		b.Fatalf("one message delivered %d stanzas (desk %d), want %d", got, sDesk.count(), want)
	}
	b.ReportAllocs()
	cpu0, cpuOK := cpuTime()
	for b.Loop() {
		srv.Router.RouteFrom(ctx, phone, msg)
	}
	if cpu1, ok := cpuTime(); ok && cpuOK {
		b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
	}
	if d := sDesk.count(); d < int64(b.N) {
		b.Fatalf("bob's desk got %d of %d messages", d, b.N)
	}
}

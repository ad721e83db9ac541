package muc

import (
	"context"
	"fmt"
	"testing"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/stanza"
)

// discard is a session that drops what it is sent: the benchmark measures
// the room and the router, not a test session's bookkeeping.
type discard struct{}

func (discard) Send(*stanza.Stanza)       {}
func (discard) Close(*stanza.StreamError) {}

// BenchmarkFanout500 sends one groupchat message into a room of 500
// occupants: the room builds it once and routes one copy to each
// occupant's session through their Inbound chain.
func BenchmarkFanout500(b *testing.B) {
	const n = 500
	info, _ := module.Lookup(ID)
	m := info.New().(*Module)
	m.opts.MaxOccupants = n
	m.SetDecider(&decider{deny: map[string]bool{}})
	srv := modtest.New(b, modtest.Options{}, router.Enabled{Info: info, Module: m})
	ctx := context.Background()
	var first module.Resource
	var firstJID jid.JID
	for i := range n {
		full := jid.MustParse(fmt.Sprintf("u%d@example.com/r", i))
		res, err := srv.Router.Bind(ctx, full, discard{})
		if err != nil {
			b.Fatal(err)
		}
		p := modtest.Parse(b, fmt.Sprintf("<presence to='%s/u%d'><x xmlns='%s'><history maxchars='0'/></x></presence>", roomJID, i, NS))
		p.SetFrom(full)
		srv.Router.RouteFrom(ctx, res, p)
		if i == 0 {
			first, firstJID = res, full
		}
	}
	r := m.lookup(jid.MustParse(roomJID))
	if r == nil || len(r.occupants) != n {
		b.Fatalf("room has %v occupants", r)
	}
	msg := modtest.Parse(b, fmt.Sprintf("<message to='%s' type='groupchat'><body>Lunch at noon?</body></message>", roomJID))
	msg.SetFrom(firstJID)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		srv.Router.RouteFrom(ctx, first, msg)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/recipient")
}

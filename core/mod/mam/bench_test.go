package mam

import (
	"context"
	"testing"

	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
)

// BenchmarkRouteArchived is the hot path: a chat message from one local
// user to another through the router, archived for both (two Prefs reads,
// an id each, the recipient's stamped copy, two serialised copies handed
// to Append) and delivered. The archive discards what it gets, so that
// the figure is the module's cost, not an archive's.
func BenchmarkRouteArchived(b *testing.B) {
	benchRoute(b, serverOptions{archive: discard{}})
}

// BenchmarkRouteNoArchive is the same message on a host without an
// archive: the module's hooks are not even registered.
func BenchmarkRouteNoArchive(b *testing.B) {
	benchRoute(b, serverOptions{noArchive: true})
}

// discard is an archive that keeps nothing and has no preferences.
type discard struct{}

func (discard) Append(context.Context, module.ArchivedMessage) error { return nil }
func (discard) Query(context.Context, module.ArchiveQuery) (module.ArchivePage, error) {
	return module.ArchivePage{}, nil
}
func (discard) Prefs(context.Context, string) (module.ArchivePrefs, error) {
	return module.ArchivePrefs{}, nil
}
func (discard) SetPrefs(context.Context, string, module.ArchivePrefs) error { return nil }

func benchRoute(b *testing.B, o serverOptions) {
	ts := newServer(b, o)
	a := ts.connect(alice + "/home")
	bc := ts.connect(bob + "/phone")
	msg := modtest.Parse(b, `<message to='bob@example.com' type='chat' id='m1'><body>Wherefore art thou Romeo?</body><origin-id xmlns='urn:xmpp:sid:0' id='o1'/></message>`)
	msg.SetFrom(a.jid)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		ts.r.RouteFrom(ctx, a.res, msg)
		if got := bc.received(); len(got) != 1 {
			b.Fatalf("bob received %d stanzas", len(got))
		}
	}
}

// BenchmarkQueryPage answers a query for a page of 50 messages.
func BenchmarkQueryPage(b *testing.B) {
	ts := newServer(b, serverOptions{})
	a := ts.connect(alice + "/home")
	bc := ts.connect(bob + "/phone")
	for range 60 {
		bc.send(`<message to='alice@example.com' type='chat'><body>Call me but love, and I'll be new baptized</body></message>`)
	}
	a.received()
	q := modtest.Parse(b, `<iq type='set' id='q'><query xmlns='urn:xmpp:mam:2' queryid='f'><set xmlns='http://jabber.org/protocol/rsm'><max>50</max><before/></set></query></iq>`)
	q.SetFrom(a.jid)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		ts.r.RouteFrom(ctx, a.res, q)
		if got := a.received(); len(got) != 51 || got[50].Kind != stanza.KindIQ {
			b.Fatalf("received %d stanzas", len(got))
		}
	}
}

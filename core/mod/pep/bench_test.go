package pep_test

import (
	"fmt"
	"testing"

	"kontor.im/kontor/core/mod/pep"
)

func BenchmarkParseRequest(b *testing.B) {
	el := parseEl(b, ps+"<publish node='urn:xmpp:omemo:2:bundles'><item id='31415'><bundle xmlns='urn:xmpp:omemo:2'><spk id='1'>AAAA</spk></bundle></item></publish>"+
		formXML(pep.NSPublishOptions, "publish-options", "pubsub#access_model=open", "pubsub#max_items=max")+end)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := pep.ParseRequest("set", el); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPublish measures a publish by alice (parse, store in SQLite,
// notify), with n contacts' resources online that are interested in the
// node.
func BenchmarkPublish(b *testing.B) {
	for _, n := range []int{0, 10, 50} {
		b.Run(fmt.Sprintf("watchers=%d", n), func(b *testing.B) {
			srv := newServer(b)
			var watchers []*client
			for i := range n {
				u := fmt.Sprintf("u%d", i)
				srv.Account(u)
				contacts(b, srv, "alice", u)
				watchers = append(watchers, online(b, srv, u+"@example.com/r", legacyDevices))
			}
			a := &client{Client: srv.Connect("alice@example.com/phone"), t: b}
			x := publishXML("", legacyDevices, "current", devicelist("1", "2", "3"), "pubsub#access_model=open")
			b.ReportAllocs()
			for b.Loop() {
				a.ok(x)
				for _, w := range watchers {
					w.Received()
				}
			}
		})
	}
}

// BenchmarkItems measures a stranger fetching an open bundle.
func BenchmarkItems(b *testing.B) {
	srv := newServer(b)
	a := &client{Client: srv.Connect("alice@example.com/phone"), t: b}
	a.ok(publishXML("", omemoBundles, "31415", "<bundle xmlns='urn:xmpp:omemo:2'><spk id='1'>AAAA</spk><ik>BBBB</ik></bundle>", "pubsub#access_model=open"))
	carol := &client{Client: srv.Connect("carol@example.com/tab"), t: b}
	x := itemsXML("alice@example.com", omemoBundles, "><item id='31415'/></items>")
	b.ReportAllocs()
	for b.Loop() {
		carol.ok(x)
	}
}

// BenchmarkPresenceUpdate measures a contact's presence update with known
// caps: the path every presence to an account takes through the module
// (and the presence module's broadcast).
func BenchmarkPresenceUpdate(b *testing.B) {
	srv := newServer(b)
	contacts(b, srv, "alice", "bob")
	bob := online(b, srv, "bob@example.com/desk", legacyDevices)
	shows := []string{"<show>away</show>", "<show>chat</show>"}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		bob.SendXML("<presence>" + shows[i%2] + bob.caps() + "</presence>")
		bob.Received()
		i++
	}
}

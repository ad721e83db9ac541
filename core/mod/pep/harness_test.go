package pep_test

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "kontor.im/kontor/core/mod/disco"
	"kontor.im/kontor/core/mod/pep"
	_ "kontor.im/kontor/core/mod/presence"
	_ "kontor.im/kontor/core/mod/private"
	_ "kontor.im/kontor/core/mod/roster"
	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/storage/sqlite"
)

// quiet is how long a test waits to be sure that nothing arrives.
const quiet = 50 * time.Millisecond

// Node names clients really use.
const (
	legacyDevices  = "eu.siacs.conversations.axolotl.devicelist"
	legacyBundles  = "eu.siacs.conversations.axolotl.bundles:" // + device id
	omemoDevices   = "urn:xmpp:omemo:2:devices"
	omemoBundles   = "urn:xmpp:omemo:2:bundles"
	avatarMetadata = "urn:xmpp:avatar:metadata"
	avatarData     = "urn:xmpp:avatar:data"
	bookmarks      = "urn:xmpp:bookmarks:1"
	nsDiscoInfo    = "http://jabber.org/protocol/disco#info"
)

// newServer runs roster, presence, pep (with opts, if given), disco and
// private on
// a fresh store, with accounts alice, bob, carol and dave.
func newServer(t testing.TB, opts ...func(*pep.Options)) *modtest.Server {
	t.Helper()
	return newServerOn(t, nil, opts...)
}

func newServerOn(t testing.TB, st storage.Store, opts ...func(*pep.Options)) *modtest.Server {
	t.Helper()
	p := modtest.Module(t, "pep")
	o := p.Module.(interface{ Options() any }).Options().(*pep.Options)
	for _, f := range opts {
		f(o)
	}
	if err := o.Validate(); err != nil {
		t.Fatalf("options: %v", err)
	}
	srv := modtest.New(t, modtest.Options{Store: st}, modtest.Module(t, "roster"), modtest.Module(t, "presence"), p,
		modtest.Module(t, "disco"), modtest.Module(t, "private"))
	if st == nil {
		for _, u := range []string{"alice", "bob", "carol", "dave"} {
			srv.Account(u)
		}
	}
	return srv
}

// openStore opens (or reopens) a SQLite store at path.
func openStore(t testing.TB, path string) storage.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func tempDB(t testing.TB) string { return filepath.Join(t.TempDir(), "kontor.db") }

func bare(local string) string { return local + "@example.com" }

// subscribe stores owner's roster item for contact.
func subscribe(t testing.TB, srv *modtest.Server, owner, contact string, sub storage.Subscription, groups ...string) {
	t.Helper()
	it := storage.RosterItem{Contact: bare(contact), Subscription: sub, Groups: groups}
	if _, err := srv.Store.PutRosterItem(context.Background(), bare(owner), it); err != nil {
		t.Fatal(err)
	}
}

// contacts makes a and b mutual contacts (subscription both).
func contacts(t testing.TB, srv *modtest.Server, a, b string) {
	t.Helper()
	subscribe(t, srv, a, b, storage.SubBoth)
	subscribe(t, srv, b, a, storage.SubBoth)
}

// client is a modtest client that plays an XMPP client with entity
// capabilities: its disco#info lists the +notify features it was given.
type client struct {
	*modtest.Client
	t      testing.TB
	buf    []*stanza.Stanza // received, not yet taken
	node   string           // caps node, unique per client so that each is asked
	info   string           // the disco#info <query/> children
	ver    string
	notify []string
}

// features returns a client's disco#info features.
func features(notify []string) []string {
	fs := []string{nsDiscoInfo, "http://jabber.org/protocol/caps", "urn:xmpp:ping"}
	for _, n := range notify {
		fs = append(fs, n+"+notify")
	}
	sort.Strings(fs)
	return fs
}

// capsOf computes the XEP-0115 ver of one identity client/phone/Test and
// features, independently of the module.
func capsOf(fs []string) (info, ver string) {
	var b, s strings.Builder
	b.WriteString("<identity category='client' type='phone' name='Test'/>")
	s.WriteString("client/phone//Test<")
	for _, f := range fs {
		fmt.Fprintf(&b, "<feature var='%s'/>", f)
		s.WriteString(f + "<")
	}
	sum := sha1.Sum([]byte(s.String()))
	return b.String(), base64.StdEncoding.EncodeToString(sum[:])
}

// connect binds full; the client is not available yet.
func connect(t testing.TB, srv *modtest.Server, full string, notify ...string) *client {
	t.Helper()
	info, ver := capsOf(features(notify))
	return &client{Client: srv.Connect(full), t: t, node: "https://kontor.im/test/" + full, info: info, ver: ver, notify: notify}
}

// online connects full, sends available presence with caps for notify,
// and answers the server's disco#info query.
func online(t testing.TB, srv *modtest.Server, full string, notify ...string) *client {
	t.Helper()
	c := connect(t, srv, full, notify...)
	c.available()
	c.answerCaps()
	return c
}

// The methods below shadow modtest.Client's: they take only the stanza
// that matches and keep the others, so that a test may wait for things in
// any order (a publisher gets its own notification before the result of
// its publish).

// Received returns and forgets everything received so far.
func (c *client) Received() []*stanza.Stanza {
	out := append(c.buf, c.Client.Received()...)
	c.buf = nil
	return out
}

// Next waits up to two seconds for a stanza that matches and takes it.
func (c *client) Next(match func(*stanza.Stanza) bool) *stanza.Stanza {
	c.t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		c.buf = append(c.buf, c.Client.Received()...)
		for i, s := range c.buf {
			if match == nil || match(s) {
				c.buf = slices.Delete(c.buf, i, i+1)
				return s
			}
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, s := range c.buf {
				b.WriteString("\n  " + s.El.String())
			}
			c.t.Fatalf("%s received nothing that matched in 2s; got:%s", c.JID, b.String())
		}
		time.Sleep(time.Millisecond)
	}
}

// NextIQ waits for the reply to the IQ with this id.
func (c *client) NextIQ(id string) *stanza.Stanza {
	c.t.Helper()
	return c.Next(func(s *stanza.Stanza) bool {
		return s.Kind == stanza.KindIQ && s.ID == id && (s.Type == "result" || s.Type == "error")
	})
}

// Nothing fails if something that matches arrives within d.
func (c *client) Nothing(d time.Duration, match func(*stanza.Stanza) bool) {
	c.t.Helper()
	time.Sleep(d)
	c.buf = append(c.buf, c.Client.Received()...)
	for _, s := range c.buf {
		if match == nil || match(s) {
			c.t.Fatalf("%s received unexpected %s", c.JID, s.El)
		}
	}
}

// caps is the client's <c/> element.
func (c *client) caps() string {
	return fmt.Sprintf("<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='%s' ver='%s'/>", c.node, c.ver)
}

// available sends broadcast presence with caps.
func (c *client) available() {
	c.t.Helper()
	c.SendXML("<presence>" + c.caps() + "</presence>")
}

// isCapsQuery matches the server's disco#info query for this client's
// caps.
func (c *client) isCapsQuery(s *stanza.Stanza) bool {
	q := s.Payload()
	return s.Kind == stanza.KindIQ && s.Type == "get" && q != nil && q.Name.Space == nsDiscoInfo &&
		q.Get("node") == c.node+"#"+c.ver
}

// answerCaps waits for the server's disco#info query and answers it.
func (c *client) answerCaps() *stanza.Stanza {
	c.t.Helper()
	q := c.Next(c.isCapsQuery)
	if q.From.IsZero() || !q.From.IsBare() || q.To != c.JID {
		c.t.Fatalf("caps query from %q to %q, want from a bare JID to %s", q.From, q.To, c.JID)
	}
	c.SendXML(fmt.Sprintf("<iq type='result' id='%s' to='%s'><query xmlns='%s' node='%s#%s'>%s</query></iq>",
		q.ID, q.From, nsDiscoInfo, c.node, c.ver, c.info))
	return q
}

// iqSeq numbers the IQs tests send.
var iqSeq atomic.Int64

// iq sends an IQ and returns the reply.
func (c *client) iq(xml string) *stanza.Stanza {
	c.t.Helper()
	id := fmt.Sprintf("iq%d", iqSeq.Add(1))
	c.SendXML(strings.Replace(xml, "<iq ", "<iq id='"+id+"' ", 1))
	return c.NextIQ(id)
}

// ok sends an IQ and fails unless the reply is a result.
func (c *client) ok(xml string) *stanza.Stanza {
	c.t.Helper()
	r := c.iq(xml)
	if r.Type != "result" {
		c.t.Fatalf("%s: %s\nrequest: %s", c.JID, r.El, xml)
	}
	return r
}

// publish publishes payload as item id ("" lets the server choose) with
// optional publish-options fields (var=value) and returns the item id.
func (c *client) publish(to, node, id, payload string, options ...string) *stanza.Stanza {
	c.t.Helper()
	return c.iq(publishXML(to, node, id, payload, options...))
}

func publishXML(to, node, id, payload string, options ...string) string {
	var b strings.Builder
	b.WriteString("<iq type='set'")
	if to != "" {
		fmt.Fprintf(&b, " to='%s'", to)
	}
	fmt.Fprintf(&b, "><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='%s'><item", node)
	if id != "" {
		fmt.Fprintf(&b, " id='%s'", id)
	}
	fmt.Fprintf(&b, ">%s</item></publish>", payload)
	if len(options) > 0 {
		b.WriteString(formXML("http://jabber.org/protocol/pubsub#publish-options", "publish-options", options...))
	}
	b.WriteString("</pubsub></iq>")
	return b.String()
}

// formXML wraps a submit form (fields as var=value, values split on '|')
// in an element named wrap (no wrapper if "").
func formXML(formType, wrap string, fields ...string) string {
	var b strings.Builder
	if wrap != "" {
		fmt.Fprintf(&b, "<%s>", wrap)
	}
	fmt.Fprintf(&b, "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>%s</value></field>", formType)
	for _, f := range fields {
		k, v, _ := strings.Cut(f, "=")
		fmt.Fprintf(&b, "<field var='%s'>", k)
		for _, x := range strings.Split(v, "|") {
			fmt.Fprintf(&b, "<value>%s</value>", x)
		}
		b.WriteString("</field>")
	}
	b.WriteString("</x>")
	if wrap != "" {
		fmt.Fprintf(&b, "</%s>", wrap)
	}
	return b.String()
}

// itemsXML is a retrieval request.
func itemsXML(to, node, extra string) string {
	return fmt.Sprintf("<iq type='get' to='%s'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='%s'%s</pubsub></iq>",
		to, node, extra)
}

// fetch asks for the items of node at to (extra: "/>" or " max_items='2'/>"
// or "><item id='x'/></items>").
func (c *client) fetch(to, node, extra string) *stanza.Stanza {
	c.t.Helper()
	if extra == "" {
		extra = "/>"
	}
	return c.iq(itemsXML(to, node, extra))
}

// itemsOf returns the item ids and payload texts of an items result or
// notification.
func itemsOf(s *stanza.Stanza) (ids, texts []string) {
	var items *stanza.Element
	if ps := s.El.Child(pep.NS, "pubsub"); ps != nil {
		items = ps.Child(pep.NS, "items")
	} else if ev := s.El.Child(pep.NSEvent, "event"); ev != nil {
		items = ev.Child(pep.NSEvent, "items")
	}
	if items == nil {
		return nil, nil
	}
	items.Children(func(it *stanza.Element) bool {
		if it.Name.Local == "item" {
			ids = append(ids, it.Get("id"))
			text := ""
			if p := it.FirstChild(); p != nil {
				text = p.Text()
			}
			texts = append(texts, text)
		}
		return true
	})
	return ids, texts
}

// isEvent matches a PEP notification from owner about node.
func isEvent(owner, node string) func(*stanza.Stanza) bool {
	return func(s *stanza.Stanza) bool {
		if s.Kind != stanza.KindMessage || s.From.String() != owner {
			return false
		}
		ev := s.El.Child(pep.NSEvent, "event")
		if ev == nil {
			return false
		}
		for _, name := range []string{"items", "delete", "purge"} {
			if c := ev.Child(pep.NSEvent, name); c != nil && c.Get("node") == node {
				return true
			}
		}
		return false
	}
}

// errorOf returns the defined condition and the pubsub#errors condition of
// an error reply.
func errorOf(s *stanza.Stanza) (cond, app string) {
	if s.Type != "error" {
		return "", ""
	}
	e := s.El.Child(stanza.NSClient, "error")
	if e == nil {
		return "", ""
	}
	e.Children(func(c *stanza.Element) bool {
		switch c.Name.Space {
		case stanza.NSStanzas:
			if c.Name.Local != "text" && cond == "" {
				cond = c.Name.Local
			}
		case pep.NSErrors:
			app = c.Name.Local
		}
		return true
	})
	return cond, app
}

// payload is a distinguishable payload element.
func payload(ns, text string) string {
	return fmt.Sprintf("<p xmlns='%s'>%s</p>", ns, text)
}

// devicelist is a legacy OMEMO device list.
func devicelist(ids ...string) string {
	var b strings.Builder
	b.WriteString("<list xmlns='eu.siacs.conversations.axolotl'>")
	for _, id := range ids {
		fmt.Fprintf(&b, "<device id='%s'/>", id)
	}
	b.WriteString("</list>")
	return b.String()
}

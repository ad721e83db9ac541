package mam

// A test server: a real router and SQLite store, the mam module with an
// in-memory archive, and in-memory client sessions. core/modtest cannot
// be used as is because its Options have no archive; its Parse is used.

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/mod/mam/mamtest"
	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/storage/sqlite"
	"kontor.im/kontor/core/xmlstream"

	_ "kontor.im/kontor/core/mod/offline" // for the tests of messages stored offline
)

const (
	alice = "alice@example.com"
	bob   = "bob@example.com"
	carol = "carol@example.com"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

type serverOptions struct {
	noArchive bool           // Host.Archive() is nil
	archive   module.Archive // default: a new mamtest.Archive
	configure func(*Options)
	offline   bool             // enable the offline module after mam
	after     []router.Enabled // more modules, enabled after mam
}

type testServer struct {
	t     testing.TB
	r     *router.Router
	host  *router.Host
	store storage.Store
	arch  *mamtest.Archive // nil when noArchive or another archive was given
	mod   *Module
	clock *clock
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func newServer(t testing.TB, o serverOptions) *testServer {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "kontor.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ts := &testServer{t: t, store: st, clock: &clock{t: t0}}
	var arch module.Archive
	switch {
	case o.noArchive:
	case o.archive != nil:
		arch = o.archive
	default:
		ts.arch = mamtest.New()
		arch = ts.arch
	}
	ts.r = router.New(router.Config{Store: st, Sealer: testSealer{}, Archive: arch})
	info, ok := module.Lookup("mam")
	if !ok {
		t.Fatal("mam is not registered")
	}
	ts.mod = info.New().(*Module)
	ts.mod.now = ts.clock.now
	if o.configure != nil {
		o.configure(&ts.mod.opts)
	}
	if err := ts.mod.opts.Validate(); err != nil {
		t.Fatal(err)
	}
	mods := []router.Enabled{{Info: info, Module: ts.mod}}
	if o.offline {
		mods = append(mods, modtest.Module(t, "offline"))
	}
	mods = append(mods, o.after...)
	if ts.host, err = ts.r.AddHost(jid.MustParse("example.com"), mods); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ts.r.Stop(ctx)
	})
	for _, a := range []string{alice, bob, carol} {
		if err := st.CreateAccount(ctx, storage.Account{JID: a, Domain: "example.com", Created: t0}); err != nil {
			t.Fatal(err)
		}
	}
	return ts
}

// testSealer marks what it seals; it is not encryption.
type testSealer struct{}

func (testSealer) Seal(owner string, _, p []byte) ([]byte, error) {
	return append([]byte("sealed:"+owner+":"), p...), nil
}

func (testSealer) Open(owner string, _, s []byte) ([]byte, error) {
	prefix := "sealed:" + owner + ":"
	if !strings.HasPrefix(string(s), prefix) {
		return nil, fmt.Errorf("not sealed for %s", owner)
	}
	return s[len(prefix):], nil
}

// client is an in-memory session; the router delivers synchronously, so
// everything a stanza causes has arrived when send returns.
type client struct {
	t   testing.TB
	ts  *testServer
	jid jid.JID
	res module.Resource

	// onSend, when set, sees every stanza delivered, in the router's
	// goroutine (as a real session's reader would react later).
	onSend func(*stanza.Stanza)

	mu  sync.Mutex
	got []*stanza.Stanza
}

func (c *client) Send(s *stanza.Stanza) {
	c.mu.Lock()
	c.got = append(c.got, s)
	c.mu.Unlock()
	if c.onSend != nil {
		c.onSend(s)
	}
}

func (c *client) Close(*stanza.StreamError) {}

// connect binds a resource and makes it available with priority 0.
func (ts *testServer) connect(full string) *client {
	ts.t.Helper()
	c := &client{t: ts.t, ts: ts, jid: jid.MustParse(full)}
	res, err := ts.r.Bind(context.Background(), c.jid, c)
	if err != nil {
		ts.t.Fatal(err)
	}
	c.res = res
	p := modtest.Parse(ts.t, "<presence/>")
	p.SetFrom(c.jid)
	ts.host.SetPresence(context.Background(), res, p)
	return c
}

// send routes a stanza written as a client would write it.
func (c *client) send(text string) {
	c.t.Helper()
	s := modtest.Parse(c.t, text)
	s.SetFrom(c.jid)
	c.ts.r.RouteFrom(context.Background(), c.res, s)
}

// received returns and forgets what the client received.
func (c *client) received() []*stanza.Stanza {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.got
	c.got = nil
	return out
}

// iq sends an IQ and returns the results received before its answer, and
// the answer.
func (c *client) iq(text string) (before []*stanza.Stanza, answer *stanza.Stanza) {
	c.t.Helper()
	c.received()
	c.send(text)
	got := c.received()
	if len(got) == 0 || got[len(got)-1].Kind != stanza.KindIQ {
		c.t.Fatalf("no IQ answer to %s; received %s", text, dump(got))
	}
	return got[:len(got)-1], got[len(got)-1]
}

func dump(list []*stanza.Stanza) string {
	var b strings.Builder
	for _, s := range list {
		b.WriteString("\n  ")
		b.WriteString(s.El.String())
	}
	if b.Len() == 0 {
		return "nothing"
	}
	return b.String()
}

// messages returns what of list is a message.
func messages(list []*stanza.Stanza) []*stanza.Stanza {
	var out []*stanza.Stanza
	for _, s := range list {
		if s.Kind == stanza.KindMessage {
			out = append(out, s)
		}
	}
	return out
}

// errorCondition returns the stanza error condition of s, or "".
func errorCondition(s *stanza.Stanza) string {
	if e, ok := stanza.ErrorOf(s); ok {
		return e.Condition
	}
	return ""
}

// stanzaIDs returns the ids of the stanza-ids by by in el.
func stanzaIDs(el *stanza.Element, by string) []string {
	var out []string
	el.Children(func(c *stanza.Element) bool {
		if isStanzaIDBy(c, by) {
			out = append(out, c.Get("id"))
		}
		return true
	})
	return out
}

// parseStored parses an archived stanza.
func parseStored(t testing.TB, b []byte) *stanza.Element {
	t.Helper()
	el, err := xmlstream.ParseElement(b, xmlstream.Limits{MaxStanzaBytes: len(b) + 1024})
	if err != nil {
		t.Fatalf("archived stanza does not parse: %v\n%s", err, b)
	}
	return el
}

// archivedIDs lists the archive ids of an owner's archive.
func (ts *testServer) archivedIDs(owner string) []string {
	out := []string{}
	for _, m := range ts.arch.Messages(owner) {
		out = append(out, m.ID)
	}
	return out
}

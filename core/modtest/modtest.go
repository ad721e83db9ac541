// Package modtest runs modules on a real router with a real embedded store,
// without network connections, so that a module's tests can say "alice
// sends this, bob receives that" in a few lines. Connections are in-memory
// router.Conn values that record what the router sends them. End-to-end
// tests over TCP with real client libraries live in cmd/kontor.
package modtest

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/storage/sqlite"
	"kontor.im/kontor/core/xmlstream"
)

// Server is a router with one virtual host and a fresh SQLite store.
type Server struct {
	t      testing.TB
	Router *router.Router
	Store  storage.Store
	Host   *router.Host
	Domain jid.JID
}

// Options configures New.
type Options struct {
	Domain string        // default "example.com"
	Store  storage.Store // default: a new SQLite file in t.TempDir()
	Sealer module.Sealer // default: a test sealer (not for production)
	// Archive is the message archive modules see (default none).
	Archive module.Archive
	// HTTPBaseURL is what module.Host's HTTPBaseURL returns (default ""):
	// tests of HTTP handlers serve Server.Host.HTTPHandler() with
	// net/http/httptest and pass its URL here.
	HTTPBaseURL string
}

// New provisions the given modules (by ID, in order, with default options
// unless an Enabled with a configured instance is passed through Mods) on a
// router.
func New(t testing.TB, opts Options, mods ...router.Enabled) *Server {
	t.Helper()
	if opts.Domain == "" {
		opts.Domain = "example.com"
	}
	if opts.Store == nil {
		st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "kontor.db"))
		if err != nil {
			t.Fatalf("modtest: open store: %v", err)
		}
		t.Cleanup(func() { st.Close() })
		opts.Store = st
	}
	if opts.Sealer == nil {
		opts.Sealer = xorSealer{}
	}
	cfg := router.Config{Store: opts.Store, Sealer: opts.Sealer, Archive: opts.Archive}
	if opts.HTTPBaseURL != "" {
		cfg.HTTPBaseURL = func(string) string { return opts.HTTPBaseURL }
	}
	r := router.New(cfg)
	d := jid.MustParse(opts.Domain)
	h, err := r.AddHost(d, mods)
	if err != nil {
		t.Fatalf("modtest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = r.Stop(ctx)
	})
	return &Server{t: t, Router: r, Store: opts.Store, Host: h, Domain: d}
}

// Module returns an Enabled for a registered module with default options.
func Module(t testing.TB, id string) router.Enabled {
	t.Helper()
	info, ok := module.Lookup(id)
	if !ok {
		t.Fatalf("modtest: module %q is not registered (import it)", id)
	}
	return router.Enabled{Info: info, Module: info.New()}
}

// xorSealer marks sealed data so tests can tell it was sealed; it is not
// encryption.
type xorSealer struct{}

func (xorSealer) Seal(owner string, id, p []byte) ([]byte, error) {
	out := append([]byte("sealed:"+owner+":"), p...)
	return out, nil
}

func (xorSealer) Open(owner string, id, s []byte) ([]byte, error) {
	prefix := "sealed:" + owner + ":"
	if !strings.HasPrefix(string(s), prefix) {
		return nil, fmt.Errorf("modtest: not sealed for %s", owner)
	}
	return s[len(prefix):], nil
}

// Account creates an account (with no credentials: modules do not log in).
func (s *Server) Account(local string) jid.JID {
	s.t.Helper()
	j := jid.MustParse(local + "@" + s.Domain.String())
	err := s.Store.CreateAccount(context.Background(), storage.Account{JID: j.String(), Domain: s.Domain.String(), Created: time.Now()})
	if err != nil {
		s.t.Fatalf("modtest: create account: %v", err)
	}
	return j
}

// Client is an in-memory bound session.
type Client struct {
	t   testing.TB
	srv *Server
	JID jid.JID
	Res module.Resource

	mu     sync.Mutex
	got    []*stanza.Stanza
	signal chan struct{}
	closed *stanza.StreamError
	isDone bool
	asleep bool
}

// Connect binds a resource for full (e.g. "alice@example.com/phone"); the
// account must exist if the modules check.
func (s *Server) Connect(full string) *Client {
	s.t.Helper()
	c := &Client{t: s.t, srv: s, JID: jid.MustParse(full), signal: make(chan struct{}, 1)}
	res, err := s.Router.Bind(context.Background(), c.JID, c)
	if err != nil {
		s.t.Fatalf("modtest: bind: %v", err)
	}
	c.Res = res
	return c
}

// Send implements router.Conn.
func (c *Client) Send(st *stanza.Stanza) {
	c.mu.Lock()
	c.got = append(c.got, st)
	c.mu.Unlock()
	select {
	case c.signal <- struct{}{}:
	default:
	}
}

// Close implements router.Conn.
func (c *Client) Close(err *stanza.StreamError) {
	c.mu.Lock()
	c.isDone = true
	if err != nil {
		c.closed = err
	}
	c.mu.Unlock()
	select {
	case c.signal <- struct{}{}:
	default:
	}
}

// Closed reports whether the server closed the session, and with what.
func (c *Client) Closed() (bool, *stanza.StreamError) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.isDone, c.closed
}

// Hibernate makes the session look as if it had lost its connection and
// waited to be resumed (module.Hibernating), or, with false, resumed: it
// still takes stanzas either way.
func (c *Client) Hibernate(on bool) {
	c.mu.Lock()
	c.asleep = on
	c.mu.Unlock()
}

// Hibernating implements module.Hibernating.
func (c *Client) Hibernating() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.asleep
}

// Disconnect ends the session as a dropped connection would.
func (c *Client) Disconnect() {
	c.srv.Router.Unbind(context.Background(), c.Res)
}

// Parse parses one stanza from XML text written as a client would (default
// namespace jabber:client).
func Parse(t testing.TB, text string) *stanza.Stanza {
	t.Helper()
	rd := xmlstream.NewReader(strings.NewReader("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"+text), xmlstream.Limits{})
	if _, err := rd.Header(); err != nil {
		t.Fatalf("modtest: %v", err)
	}
	el, err := rd.Next()
	if err != nil {
		t.Fatalf("modtest: parse %q: %v", text, err)
	}
	s, err := stanza.Parse(el)
	if err != nil {
		t.Fatalf("modtest: parse %q: %v", text, err)
	}
	return s
}

// SendXML sends a stanza as this client, the way core/session does: 'from'
// is stamped with the full JID, then the router routes it.
func (c *Client) SendXML(text string) {
	c.t.Helper()
	s := Parse(c.t, text)
	s.SetFrom(c.JID)
	c.srv.Router.RouteFrom(context.Background(), c.Res, s)
}

// Received returns and forgets everything received so far.
func (c *Client) Received() []*stanza.Stanza {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.got
	c.got = nil
	return out
}

// Next waits up to two seconds for the next stanza matching match (nil:
// any), removing it and everything before it. It fails the test on time-out.
func (c *Client) Next(match func(*stanza.Stanza) bool) *stanza.Stanza {
	c.t.Helper()
	deadline := time.After(2 * time.Second)
	for {
		c.mu.Lock()
		for i, s := range c.got {
			if match == nil || match(s) {
				c.got = append(c.got[:0:0], c.got[i+1:]...)
				c.mu.Unlock()
				return s
			}
		}
		c.mu.Unlock()
		select {
		case <-c.signal:
		case <-deadline:
			c.t.Fatalf("modtest: %s received nothing that matched in 2s; got %s", c.JID, c.dump())
			return nil
		}
	}
}

// NextIQ waits for the IQ answering id.
func (c *Client) NextIQ(id string) *stanza.Stanza {
	c.t.Helper()
	return c.Next(func(s *stanza.Stanza) bool {
		return s.Kind == stanza.KindIQ && s.ID == id && (s.Type == "result" || s.Type == "error")
	})
}

// Nothing asserts that nothing (matching match, nil: anything) arrives within
// d.
func (c *Client) Nothing(d time.Duration, match func(*stanza.Stanza) bool) {
	c.t.Helper()
	time.Sleep(d)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.got {
		if match == nil || match(s) {
			c.t.Fatalf("modtest: %s received unexpected %s", c.JID, s.El.String())
		}
	}
}

func (c *Client) dump() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for _, s := range c.got {
		b.WriteString("\n  ")
		b.WriteString(s.El.String())
	}
	if b.Len() == 0 {
		return "nothing"
	}
	return b.String()
}

// ErrorCondition returns the error condition of an error stanza, or "".
func ErrorCondition(s *stanza.Stanza) string {
	if e, ok := stanza.ErrorOf(s); ok {
		return e.Condition
	}
	return ""
}

package s2s

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/stanza"
)

// recorder is the router of a test service: it serves one domain and
// records what is routed to it.
type recorder struct {
	domain string
	mu     sync.Mutex
	got    []*stanza.Stanza
	signal chan struct{}
}

func newRecorder(domain string) *recorder {
	return &recorder{domain: domain, signal: make(chan struct{}, 100)}
}

func (r *recorder) Route(_ context.Context, s *stanza.Stanza) {
	r.mu.Lock()
	r.got = append(r.got, s)
	r.mu.Unlock()
	r.signal <- struct{}{}
}
func (r *recorder) IsLocal(d string) bool  { return d == r.domain }
func (r *recorder) ServedBy(string) string { return "" }

// wait returns the first routed stanza that matches, or fails.
func (r *recorder) wait(t *testing.T, what string, match func(*stanza.Stanza) bool) *stanza.Stanza {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		for _, s := range r.got {
			if match(s) {
				r.mu.Unlock()
				return s
			}
		}
		r.mu.Unlock()
		select {
		case <-r.signal:
		case <-deadline:
			t.Fatalf("%s: not routed", what)
		}
	}
}

func selfSigned(t testing.TB, domain string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: domain}, DNSNames: []string{domain},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

type testService struct {
	*Service
	r    *recorder
	addr string
}

// startService runs a service for domain with its listener on loopback;
// routes are filled in by the caller before traffic.
func startService(t testing.TB, domain string, mutate func(*Config)) *testService {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	cfg := Config{TLS: &tls.Config{Certificates: []tls.Certificate{selfSigned(t, domain)}}, Secret: secret,
		Routes: map[string]string{}, ConnectTimeout: 5 * time.Second}
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := newRecorder(domain)
	s.SetRouter(r)
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(ln, false) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		<-done
	})
	return &testService{Service: s, r: r, addr: ln.Addr().String()}
}

func message(from, to, id string) *stanza.Stanza {
	s := stanza.NewMessage(jid.MustParse(from), jid.MustParse(to), "chat", id)
	s.El.Append(stanza.New(stanza.NSClient, "body").SetText("hi"))
	return s
}

func TestServicesDialbackAndIdle(t *testing.T) {
	a := startService(t, "a.example", func(c *Config) { c.IdleTimeout = 300 * time.Millisecond })
	b := startService(t, "b.example", nil)
	a.cfg.Routes["b.example"] = b.addr
	b.cfg.Routes["a.example"] = a.addr

	if err := a.RouteRemote(context.Background(), message("alice@a.example/x", "bob@b.example", "m1")); err != nil {
		t.Fatal(err)
	}
	got := b.r.wait(t, "m1 at b", func(s *stanza.Stanza) bool { return s.ID == "m1" })
	if got.From.String() != "alice@a.example/x" || got.El.Name.Space != stanza.NSClient || got.El.ChildText(stanza.NSClient, "body") != "hi" {
		t.Errorf("b got %s", got.El)
	}
	// Idle: the outbound connection closes and the next stanza opens a
	// new one.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, out := a.Connections(); out == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the idle outbound connection is still open")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := a.RouteRemote(context.Background(), message("alice@a.example/x", "bob@b.example", "m2")); err != nil {
		t.Fatal(err)
	}
	b.r.wait(t, "m2 at b", func(s *stanza.Stanza) bool { return s.ID == "m2" })
}

// TestQueueAndTimeout: a peer that accepts TCP and never answers makes the
// queued stanzas bounce with remote-server-timeout after connect_timeout;
// beyond queue_size, stanzas are refused at once.
func TestQueueAndTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	}()
	a := startService(t, "a.example", func(c *Config) {
		c.QueueSize = 2
		c.ConnectTimeout = 300 * time.Millisecond
		c.Routes = map[string]string{"silent.example": ln.Addr().String(), "closed.example": "127.0.0.1:1"}
	})
	ctx := context.Background()
	for _, id := range []string{"q1", "q2"} {
		if err := a.RouteRemote(ctx, message("alice@a.example/x", "bob@silent.example", id)); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	err = a.RouteRemote(ctx, message("alice@a.example/x", "bob@silent.example", "q3"))
	if e, ok := err.(stanza.Error); !ok || e.Condition != stanza.ResourceConstraint {
		t.Errorf("beyond the queue: %v, want resource-constraint", err)
	}
	for _, id := range []string{"q1", "q2"} {
		b := a.r.wait(t, "bounce of "+id, func(s *stanza.Stanza) bool { return s.ID == id })
		if e, _ := stanza.ErrorOf(b); e.Condition != stanza.RemoteServerTimeout || b.To.String() != "alice@a.example/x" {
			t.Errorf("bounce of %s: %s", id, b.El)
		}
	}
	if err := a.RouteRemote(ctx, message("alice@a.example/x", "bob@closed.example", "c1")); err != nil {
		t.Fatal(err)
	}
	b := a.r.wait(t, "bounce of c1", func(s *stanza.Stanza) bool { return s.ID == "c1" })
	if e, _ := stanza.ErrorOf(b); e.Condition != stanza.RemoteServerNotFound {
		t.Errorf("bounce of c1: %s", b.El)
	}
	// Errors are never answered.
	e := message("alice@a.example/x", "bob@closed.example", "e1")
	e.El.Set("type", "error")
	e.Type = "error"
	if err := a.RouteRemote(ctx, e); err != nil {
		t.Fatal(err)
	}
	if err := a.RouteRemote(ctx, message("alice@a.example/x", "bob@closed.example", "c2")); err != nil {
		t.Fatal(err)
	}
	a.r.wait(t, "bounce of c2", func(s *stanza.Stanza) bool { return s.ID == "c2" })
	a.r.mu.Lock()
	defer a.r.mu.Unlock()
	for _, s := range a.r.got {
		if s.ID == "e1" {
			t.Errorf("an error was answered: %s", s.El)
		}
	}
}

// TestRelayRefused: stanzas from domains this server does not serve are
// not sent anywhere.
func TestRelayRefused(t *testing.T) {
	a := startService(t, "a.example", nil)
	err := a.RouteRemote(context.Background(), message("eve@elsewhere.example/x", "bob@b.example", "r1"))
	if e, ok := err.(stanza.Error); !ok || e.Condition != stanza.NotAllowed {
		t.Errorf("relay: %v", err)
	}
}

// BenchmarkFederatedMessage: messages from one service to another over an
// established dialback stream (loopback TLS, both in this process), sent
// in windows of 256 and counted once the receiving service has parsed,
// checked and routed them: ns/op is the delivery cost per message.
func BenchmarkFederatedMessage(b *testing.B) {
	a := startService(b, "a.example", nil)
	peer := startService(b, "b.example", nil)
	a.cfg.Routes["b.example"] = peer.addr
	peer.cfg.Routes["a.example"] = a.addr
	got := make(chan struct{}, 1024)
	peer.SetRouter(countingRouter{domain: "b.example", got: got})
	ctx := context.Background()
	if err := a.RouteRemote(ctx, message("alice@a.example/x", "bob@b.example", "w")); err != nil {
		b.Fatal(err)
	}
	<-got // the connection is established
	b.ReportAllocs()
	b.ResetTimer()
	for sent := 0; sent < b.N; {
		n := min(256, b.N-sent)
		for range n {
			if err := a.RouteRemote(ctx, message("alice@a.example/x", "bob@b.example", "m")); err != nil {
				b.Fatal(err)
			}
		}
		for range n {
			<-got
		}
		sent += n
	}
}

// countingRouter signals every routed stanza.
type countingRouter struct {
	domain string
	got    chan struct{}
}

func (c countingRouter) Route(context.Context, *stanza.Stanza) { c.got <- struct{}{} }
func (c countingRouter) IsLocal(d string) bool                 { return d == c.domain }
func (c countingRouter) ServedBy(string) string                { return "" }

// TestInboundIdle: the receiving side closes a stream idle for its
// IdleTimeout; the sender notices, and its next stanza opens a new one.
func TestInboundIdle(t *testing.T) {
	a := startService(t, "a.example", nil)
	b := startService(t, "b.example", func(c *Config) { c.IdleTimeout = 300 * time.Millisecond })
	a.cfg.Routes["b.example"] = b.addr
	b.cfg.Routes["a.example"] = a.addr
	if err := a.RouteRemote(context.Background(), message("alice@a.example/x", "bob@b.example", "i1")); err != nil {
		t.Fatal(err)
	}
	b.r.wait(t, "i1 at b", func(s *stanza.Stanza) bool { return s.ID == "i1" })
	deadline := time.Now().Add(5 * time.Second)
	for {
		in, _ := b.Connections()
		_, out := a.Connections()
		if in == 0 && out == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after b's idle timeout: b has %d inbound, a %d outbound connections", in, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := a.RouteRemote(context.Background(), message("alice@a.example/x", "bob@b.example", "i2")); err != nil {
		t.Fatal(err)
	}
	b.r.wait(t, "i2 at b", func(s *stanza.Stanza) bool { return s.ID == "i2" })
	a.r.mu.Lock()
	defer a.r.mu.Unlock()
	for _, s := range a.r.got {
		t.Errorf("a routed %s (nothing was undeliverable)", s.El)
	}
}

// Package s2s implements server-to-server federation (RFC 6120 §§4–9 for
// server streams) with Server Dialback (XEP-0220) and direct TLS for
// servers (XEP-0368): Kontor's users reach users on other XMPP servers,
// and theirs reach ours.
//
// # Outbound
//
// Service implements router.Remote. The first stanza from a local domain
// to a remote domain creates one outbound connection for that pair; the
// stanzas routed while it connects wait in its bounded queue (QueueSize; a
// full queue answers resource-constraint). The address comes from a static
// route (Config.Routes, domain → host:port, or tls://host:port for direct
// TLS) or from DNS: the SRV records
// _xmpps-server._tcp (direct TLS, XEP-0368) and _xmpp-server._tcp
// (STARTTLS), tried in priority order, and the domain's port 5269 when
// there are none. TLS 1.2 or later is required on every stream: a peer
// that offers no STARTTLS is not used. The connection authenticates with
// SASL EXTERNAL when the peer offers it (it does when our certificate
// verifies for our domain), otherwise with dialback. A connection that
// stays idle for IdleTimeout is closed; the next stanza opens a new one.
//
// # Inbound
//
// Serve accepts server streams. They get the same kind of limits as client
// streams (stanza size and depth through core/xmlstream, connections per
// address, a handshake timeout, an idle timeout, a write timeout) and must
// use STARTTLS (or direct TLS) before anything else. After TLS the stream
// offers SASL EXTERNAL when the peer's certificate verifies for the domain
// in its stream header, and dialback always (unless RequireValidCert).
// A stanza is routed only when its 'from' domain is one the stream
// authenticated (else the stream ends with invalid-from) and its 'to' is a
// domain this server serves (else host-unknown); stanzas without from or
// to end it with improper-addressing. Accepted stanzas go to
// Router.Route, so they walk the recipient host's Inbound chain (the
// policy gate asks the contact question there for remote senders).
//
// # Dialback (XEP-0220)
//
// Keys are HMAC-SHA256(SHA256(secret), receiving + " " + originating +
// " " + stream id) in hex, with a random per-server secret (Config.Secret;
// cmd/kontor keeps it in the data directory). A receiving server checks a
// key by opening a separate, TLS-protected verification stream to the
// originating domain's authoritative server (found as above) and sending
// <db:verify/>; the answer is compared and keys are compared in constant
// time. Whether a peer whose certificate does not verify is accepted at
// all is RequireValidCert: off (the default), such a peer is accepted when
// dialback succeeds, which proves that it controls the DNS (or static
// route) of its domain, and the stream is still encrypted; on, only
// peers with certificates that verify for their domain (and SASL
// EXTERNAL) are used, which resists DNS spoofing but excludes every
// server with a self-signed certificate.
//
// # Failures
//
// A stanza that cannot be delivered (no address, refused connection,
// failed TLS or authentication, a connection lost before the stanza was
// written) is answered with remote-server-not-found, or
// remote-server-timeout when the peer did not answer in time (RFC 6120
// §10.4.3), through the router; errors are never answered.
//
// # What it shares with client streams
//
// Server streams are read with core/xmlstream (the same restricted XML,
// limits and stream errors as client streams) and limited per address
// with core/limit. core/session is not reused: its negotiation is the
// client's (SCRAM, binding, stream management, CSI, per-resource
// queues), while a server stream needs dialback, SASL EXTERNAL, the
// jabber:server namespace and per-domain addressing checks; sharing it
// would put server cases into every client code path.
//
// # Cost
//
// BenchmarkFederatedMessage measures a message from one service to
// another over an established stream, both sides included (write, TLS,
// parse, address checks, routing): about 8 µs and 2 KB on this project's
// machine.
//
// # Locks
//
// Service.mu (the connection tables) may be held while taking
// outbound.mu, never the reverse. Neither is held while calling the
// router or writing to a connection.
package s2s

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/limit"
	"kontor.im/kontor/core/listen"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/xmlstream"
)

// Namespaces of server streams.
const (
	NSDialback        = "jabber:server:dialback"
	NSDialbackFeature = "urn:xmpp:features:dialback"
	NSTLS             = "urn:ietf:params:xml:ns:xmpp-tls"
	NSSASL            = "urn:ietf:params:xml:ns:xmpp-sasl"
)

// Router is what the service needs of the router: delivering a stanza a
// remote server sent, and knowing which domains are ours.
type Router interface {
	Route(ctx context.Context, s *stanza.Stanza)
	IsLocal(domain string) bool
	// ServedBy names the module serving a component domain, or "".
	ServedBy(domain string) string
}

// Config configures federation.
type Config struct {
	Logger *slog.Logger
	// TLS holds the server's certificate (the same as for clients); it is
	// presented on inbound streams and as client certificate on outbound
	// ones.
	TLS *tls.Config
	// RootCAs verify peers' certificates; nil means the system roots.
	RootCAs *x509.CertPool
	// Secret is the dialback secret (at least 16 random bytes).
	Secret []byte
	// Routes are static addresses per remote domain: host:port
	// (STARTTLS) or tls://host:port (direct TLS, XEP-0368); they take
	// precedence over DNS.
	Routes map[string]string
	// RequireValidCert refuses peers whose certificate does not verify
	// for their domain instead of falling back to dialback.
	RequireValidCert bool
	Limits           xmlstream.Limits
	// QueueSize bounds the stanzas waiting for one outbound connection.
	QueueSize int
	// ConnectTimeout bounds connecting, TLS and authentication of an
	// outbound connection (and a dialback verification).
	ConnectTimeout time.Duration
	// HandshakeTimeout bounds an inbound stream from connect until it has
	// authenticated a domain.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection without traffic for this long.
	IdleTimeout time.Duration
	// WriteTimeout bounds one write.
	WriteTimeout time.Duration
	// Conns limits inbound connections per address.
	Conns *limit.Conns
	// Resolver looks up SRV records; nil means net.DefaultResolver.
	Resolver *net.Resolver
}

func (c *Config) defaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 1024
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 30 * time.Second
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 60 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 10 * time.Minute
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.Conns == nil {
		c.Conns = limit.NewConns(0)
	}
	if c.Resolver == nil {
		c.Resolver = net.DefaultResolver
	}
}

// pair is the two domains of an outbound connection.
type pair struct{ local, remote string }

// Service is federation: the outbound connections and the inbound
// listeners.
type Service struct {
	cfg    Config
	log    *slog.Logger
	router atomic.Pointer[routerBox]
	dbKey  [32]byte // SHA256(secret), the dialback HMAC key

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	nIn, nOut atomic.Int64

	mu        sync.Mutex
	out       map[pair]*outbound
	listeners map[net.Listener]struct{}
	inbound   map[net.Conn]struct{}
	closing   bool
}

type routerBox struct{ r Router }

// New returns a service; SetRouter must be called before traffic.
func New(cfg Config) (*Service, error) {
	cfg.defaults()
	if len(cfg.Secret) < 16 {
		return nil, errors.New("s2s: the dialback secret must have at least 16 bytes")
	}
	if cfg.TLS == nil || len(cfg.TLS.Certificates) == 0 {
		return nil, errors.New("s2s: a TLS certificate is required")
	}
	for d, addr := range cfg.Routes {
		if _, _, err := net.SplitHostPort(strings.TrimPrefix(addr, "tls://")); err != nil {
			return nil, fmt.Errorf("s2s: route for %s: %w", d, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{cfg: cfg, log: cfg.Logger, ctx: ctx, cancel: cancel,
		out: map[pair]*outbound{}, listeners: map[net.Listener]struct{}{}, inbound: map[net.Conn]struct{}{}}
	s.dbKey = secretKey(cfg.Secret)
	return s, nil
}

// SetRouter gives the service the router it delivers to.
func (s *Service) SetRouter(r Router) { s.router.Store(&routerBox{r}) }

func (s *Service) r() Router {
	if b := s.router.Load(); b != nil {
		return b.r
	}
	return nil
}

// serves reports whether domain is one of ours (a host or a component).
func (s *Service) serves(domain string) bool {
	r := s.r()
	return r != nil && (r.IsLocal(domain) || r.ServedBy(domain) != "")
}

// Connections returns the open inbound and outbound connections (streams
// that are authenticated or negotiating).
func (s *Service) Connections() (in, out int) {
	return int(s.nIn.Load()), int(s.nOut.Load())
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("s2s: server closed")

// RouteRemote queues a stanza for its remote domain (router.Remote).
func (s *Service) RouteRemote(ctx context.Context, st *stanza.Stanza) error {
	if st.To.IsZero() || st.From.IsZero() {
		return stanza.ErrBadRequest("a stanza to another server needs from and to")
	}
	p := pair{local: st.From.Domain(), remote: st.To.Domain()}
	if !s.serves(p.local) {
		return stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAllowed, Text: "this server does not relay stanzas between other domains"}
	}
	if _, err := jid.Parse(p.remote); err != nil || p.remote == "" {
		return stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return stanza.Error{Type: stanza.Wait, Condition: stanza.RemoteServerTimeout, Text: "the server is shutting down"}
	}
	o := s.out[p]
	if o == nil {
		o = &outbound{svc: s, pair: p, wake: make(chan struct{}, 1)}
		s.out[p] = o
		s.nOut.Add(1)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			o.run(s.ctx)
		}()
	}
	o.mu.Lock()
	if len(o.queue) >= s.cfg.QueueSize {
		o.mu.Unlock()
		return stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint, Text: "too many stanzas are waiting for " + p.remote}
	}
	o.queue = append(o.queue, st)
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
	return nil
}

// bounce answers stanzas that could not be delivered.
func (s *Service) bounce(list []*stanza.Stanza, e stanza.Error) {
	r := s.r()
	if r == nil {
		return
	}
	for _, st := range list {
		if reply := stanza.ErrorReply(st, e); reply != nil && !reply.To.IsZero() {
			r.Route(s.ctx, reply)
		}
	}
}

// Serve accepts server streams on ln until Shutdown. With directTLS the
// TLS handshake comes first (XEP-0368).
func (s *Service) Serve(ln net.Listener, directTLS bool) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	for {
		nc, err := listen.Accept(ln, s.log)
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			return err
		}
		ip := remoteIP(nc)
		if !s.cfg.Conns.Acquire(ip) {
			s.log.Info("s2s connection refused: too many from this address", "remote", ip.String())
			nc.Close()
			continue
		}
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			s.cfg.Conns.Release(ip)
			nc.Close()
			return ErrServerClosed
		}
		s.inbound[nc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		s.nIn.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.cfg.Conns.Release(ip)
			defer s.nIn.Add(-1)
			in := &inbound{svc: s, nc: nc, direct: directTLS, remote: nc.RemoteAddr().String(), auth: map[string]bool{}}
			in.serve(s.ctx)
			s.mu.Lock()
			delete(s.inbound, nc)
			s.mu.Unlock()
		}()
	}
}

func remoteIP(nc net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(nc.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// Shutdown stops accepting, closes every stream (system-shutdown), answers
// what is still queued with remote-server-timeout, and waits for the
// connections' goroutines or ctx.
func (s *Service) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for ln := range s.listeners {
		ln.Close()
	}
	s.mu.Unlock()
	s.cancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for nc := range s.inbound {
			nc.Close()
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}

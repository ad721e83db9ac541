// Package session serves client-to-server connections (RFC 6120): stream
// negotiation and restarts, STARTTLS (or direct TLS, XEP-0368), SASL,
// resource binding, and then the stanzas of one bound session.
//
// Each connection has two goroutines. The reader negotiates the stream and
// then handles stanzas in the order they arrive (RFC 6120 §10.1), routing
// each before reading the next. The writer drains a bounded queue and
// flushes when the queue is empty, so a burst costs one write; it also sends
// the server's pings when the client has been silent. Delivering to a session
// only enqueues: a session whose queue is full (a client that stopped
// reading) is closed with resource-constraint instead of growing memory.
package session

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"kontor.im/kontor/core/limit"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/sasl"
	"kontor.im/kontor/core/xmlstream"
)

// Config configures client connections.
type Config struct {
	Router *router.Router
	// Auth returns the authenticator for a domain.
	Auth   func(domain string) sasl.Authenticator
	TLS    *tls.Config
	Logger *slog.Logger
	Limits xmlstream.Limits
	// QueueSize bounds a session's outbound queue (stanzas).
	QueueSize int
	// HandshakeTimeout bounds the time from connect to a bound resource.
	HandshakeTimeout time.Duration
	// PingInterval: after this much silence from the client the server
	// pings it (XEP-0199); PingTimeout later without an answer the
	// connection is closed with connection-timeout.
	PingInterval, PingTimeout time.Duration
	// WriteTimeout bounds one write to a client.
	WriteTimeout time.Duration
	// MaxAuthAttempts is how many SASL failures one connection may have
	// before it is closed.
	MaxAuthAttempts int
	// Conns limits connections per address; AuthGuard slows down password
	// guessing.
	Conns     *limit.Conns
	AuthGuard *limit.Auth
	// SASL options for every exchange: the secret for simulated
	// credentials of unknown users and the iteration count they announce.
	SASL []sasl.Option
	// Registration, when set, answers in-band registration (XEP-0077)
	// before authentication.
	Registration Registrar
}

// Registrar creates accounts in band before authentication (XEP-0077).
type Registrar interface {
	// Open reports whether registration is open on this domain.
	Open(domain string) bool
	Register(ctx context.Context, domain, username, password string, remote netip.Addr) error
}

func (c *Config) defaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 1024
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 60 * time.Second
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 5 * time.Minute
	}
	if c.PingTimeout <= 0 {
		c.PingTimeout = 60 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.MaxAuthAttempts <= 0 {
		c.MaxAuthAttempts = 5
	}
	if c.Conns == nil {
		c.Conns = limit.NewConns(0)
	}
	if c.AuthGuard == nil {
		c.AuthGuard = limit.NewAuth(limit.AuthConfig{})
	}
}

// Server accepts client connections on any number of listeners.
type Server struct {
	cfg Config
	log *slog.Logger

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	closing   bool
	wg        sync.WaitGroup
}

// NewServer returns a server; nothing is started until Serve.
func NewServer(cfg Config) *Server {
	cfg.defaults()
	return &Server{cfg: cfg, log: cfg.Logger, listeners: map[net.Listener]struct{}{}, conns: map[*conn]struct{}{}}
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("session: server closed")

// Serve accepts connections on ln until Shutdown. With directTLS the TLS
// handshake comes first (XEP-0368); otherwise clients must use STARTTLS
// before they may authenticate.
func (s *Server) Serve(ln net.Listener, directTLS bool) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like: back off and go on, as
			// net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		c := s.newConn(nc, directTLS)
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// Shutdown stops accepting, closes every connection with a system-shutdown
// stream error, and waits for them to end or for ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for ln := range s.listeners {
		ln.Close()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Close(shutdownErr)
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}

// ConnCount is the number of open client connections.
func (s *Server) ConnCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func newStreamID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func newResource() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("kontor-%x", b[:])
}

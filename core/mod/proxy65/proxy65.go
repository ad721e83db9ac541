// Package proxy65 implements a XEP-0065 SOCKS5 Bytestreams proxy
// (streamhost): two clients that cannot reach each other directly (NAT)
// both connect to the proxy's SOCKS5 listener, and the proxy relays the
// bytes between them once the requester activates the stream.
//
// The proxy answers on the host's own JID (disco#info identity
// proxy/bytestreams, the streamhost query and the activation IQ): the
// router has no component subdomains yet, so there is no proxy.DOMAIN.
//
// Pairing follows XEP-0065 §5.3: each side sends, as the SOCKS5 CONNECT
// destination (address type domain name, port 0), the hex SHA-1 of
// SID + requester JID + target JID; the activation IQ from the requester
// names the SID and the target, the proxy computes the same hash and, if
// exactly two connections wait under it, relays between them. The
// activation asks the contact policy (core/gate, action "iq": the requester
// sending to the target) and fails closed without a policy engine.
//
// Limits (all options): max_bytes and max_duration per transfer,
// max_transfers relayed at once, and pending_timeout for a connection that
// waits to be activated (at most 4*max_transfers wait at once). The SOCKS5
// handshake itself (RFC 1928, no authentication) must finish within
// handshake_timeout.
package proxy65

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	contract "kontor.im/kontor/core/gate"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/listen"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
)

// NS is the XEP-0065 namespace.
const NS = "http://jabber.org/protocol/bytestreams"

// ID is the module's ID and config key.
const ID = "proxy65"

func init() {
	module.Register(module.Info{
		ID:          ID,
		Description: "SOCKS5 bytestreams proxy for peer-to-peer file transfer behind NAT, under the contact policy, with per-transfer limits",
		Specs: []module.Spec{{ID: "XEP-0065", Name: "SOCKS5 Bytestreams", Version: "1.8.2", Status: module.Partial,
			Note: "proxy (streamhost) only, TCP, served on the host's JID rather than a proxy subdomain"}},
		New: func() module.Module { return newModule() },
	})
}

// Options are the module's options.
type Options struct {
	// Listen is the SOCKS5 listener's address.
	Listen string `mapstructure:"listen"`
	// PublicHost and PublicPort are what clients are told to connect to;
	// defaults: the host's domain and the listener's port.
	PublicHost string `mapstructure:"public_host"`
	PublicPort int    `mapstructure:"public_port"`
	// MaxBytes one transfer may relay (both directions); 0: no limit.
	MaxBytes int64 `mapstructure:"max_bytes"`
	// MaxDuration of one transfer after activation; 0: no limit.
	MaxDuration time.Duration `mapstructure:"max_duration"`
	// MaxTransfers relayed at once.
	MaxTransfers int `mapstructure:"max_transfers"`
	// PendingTimeout is how long a connection waits for activation.
	PendingTimeout time.Duration `mapstructure:"pending_timeout"`
	// HandshakeTimeout bounds the SOCKS5 handshake.
	HandshakeTimeout time.Duration `mapstructure:"handshake_timeout"`
}

// Validate checks the options.
func (o *Options) Validate() error {
	var errs []string
	if o.Listen == "" {
		errs = append(errs, "listen is required")
	} else if _, _, err := net.SplitHostPort(o.Listen); err != nil {
		errs = append(errs, "listen: "+err.Error())
	}
	if o.PublicPort < 0 || o.PublicPort > 65535 {
		errs = append(errs, "public_port must be a port number")
	}
	if o.MaxBytes < 0 || o.MaxDuration < 0 {
		errs = append(errs, "max_bytes and max_duration must not be negative")
	}
	if o.MaxTransfers < 1 {
		errs = append(errs, "max_transfers must be at least 1")
	}
	if o.PendingTimeout < time.Second || o.HandshakeTimeout < time.Second {
		errs = append(errs, "pending_timeout and handshake_timeout must be at least 1s")
	}
	if len(errs) > 0 {
		return errors.New("proxy65: " + strings.Join(errs, "; "))
	}
	return nil
}

// Module is the proxy of one virtual host.
type Module struct {
	opts    Options
	decider contract.Decider
	h       module.Host
	log     *slog.Logger
	ln      net.Listener
	host    string
	port    int

	mu       sync.Mutex            // guards pending, active, conns
	pending  map[string][]*conn    // by hash, at most two
	npend    int                   // connections in pending
	active   int                   // transfers relaying
	conns    map[net.Conn]struct{} // every open connection, to close on stop
	stopping bool                  // set once serve stops accepting
	wg       sync.WaitGroup        // connection goroutines
}

// conn is a connection that finished the SOCKS5 handshake.
type conn struct {
	c     net.Conn
	start chan struct{} // closed when activated
}

func newModule() *Module {
	return &Module{opts: Options{
		Listen:           ":7777",
		MaxBytes:         1 << 30,
		MaxDuration:      time.Hour,
		MaxTransfers:     100,
		PendingTimeout:   time.Minute,
		HandshakeTimeout: 10 * time.Second,
	}, pending: map[string][]*conn{}, conns: map[net.Conn]struct{}{}}
}

var (
	_ module.Configurable = (*Module)(nil)
	_ module.Validator    = (*Options)(nil)
)

// Options returns the module's options, filled with defaults.
func (m *Module) Options() any { return &m.opts }

// SetDecider gives the module its policy engine. cmd/kontor calls it
// before Provision.
func (m *Module) SetDecider(d contract.Decider) { m.decider = d }

// Addr is the listener's address (after Provision).
func (m *Module) Addr() net.Addr { return m.ln.Addr() }

// Provision opens the SOCKS5 listener and declares the IQ handlers.
func (m *Module) Provision(h module.Host) error {
	m.h, m.log = h, h.Logger()
	ln, err := net.Listen("tcp", m.opts.Listen)
	if err != nil {
		return fmt.Errorf("proxy65: %w", err)
	}
	m.ln = ln
	m.host, m.port = m.opts.PublicHost, m.opts.PublicPort
	if m.host == "" {
		m.host = h.Domain().String()
	}
	if m.port == 0 {
		m.port = ln.Addr().(*net.TCPAddr).Port
	}
	if m.decider == nil {
		m.log.Warn("no policy engine: every bytestream activation is refused")
	}
	q := stanza.Name{Space: NS, Local: "query"}
	h.HandleIQ(module.ToHost, module.Get, q, m.streamhost)
	h.HandleIQ(module.ToHost, module.Set, q, m.activate)
	h.AddDisco(module.ToHost, module.Disco{
		Identities: []module.Identity{{Category: "proxy", Type: "bytestreams", Name: "SOCKS5 Bytestreams"}},
		Features:   []string{NS},
	})
	h.Go("proxy65-accept", m.serve)
	return nil
}

func (m *Module) streamhost(ctx context.Context, iq *module.IQ) (*stanza.Element, error) {
	if iq.Origin == nil {
		return nil, stanza.ErrForbidden("only local users may use the proxy")
	}
	return stanza.New(NS, "query").Append(stanza.New(NS, "streamhost").
		Set("jid", m.h.Domain().String()).Set("host", m.host).Set("port", strconv.Itoa(m.port))), nil
}

// Hash is the destination address both sides send (XEP-0065 §5.3.2).
func Hash(sid string, requester, target jid.JID) string {
	sum := sha1.Sum([]byte(sid + requester.String() + target.String()))
	return hex.EncodeToString(sum[:])
}

func (m *Module) activate(ctx context.Context, iq *module.IQ) (*stanza.Element, error) {
	if iq.Origin == nil {
		return nil, stanza.ErrForbidden("only local users may use the proxy")
	}
	q := iq.Payload()
	sid := q.Get("sid")
	act := q.Child(NS, "activate")
	if sid == "" || len(sid) > 128 || act == nil {
		return nil, stanza.ErrBadRequest("an activation needs a sid and an activate element")
	}
	target, err := jid.Parse(strings.TrimSpace(act.Text()))
	if err != nil || target.Local() == "" {
		return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed, Text: "the target is not a JID"}
	}
	in := contract.ContactInput{Action: contract.ActionIQ, StanzaType: "set",
		From: contract.Party{JID: iq.From.Bare().String(), Local: true},
		To:   contract.Party{JID: target.Bare().String(), Local: m.h.IsLocal(target.Domain())}}
	d := contract.Failed(contract.ReasonUnavailable,
		"The server has no policy engine, so it refuses rather than skip the policy check. Tell your administrator.", nil)
	if m.decider != nil {
		d = m.decider.Contact(ctx, in)
	}
	if !d.Allow {
		m.log.DebugContext(ctx, "policy refused", "decision", "contact", "decision_id", d.ID, "reason", d.Reason,
			"action", "bytestreams", "from", in.From.JID, "to", in.To.JID)
		return nil, d.StanzaError()
	}
	hash := Hash(sid, iq.From, target)
	m.mu.Lock()
	pair := m.pending[hash]
	switch {
	case len(pair) != 2:
		m.mu.Unlock()
		return nil, stanza.ErrItemNotFound("both parties must be connected to the proxy before activation")
	case m.active >= m.opts.MaxTransfers:
		m.mu.Unlock()
		return nil, stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint, Text: "too many transfers at once"}
	case m.stopping:
		m.mu.Unlock()
		return nil, stanza.ErrServiceUnavailable("the proxy is stopping")
	}
	delete(m.pending, hash)
	m.npend -= 2
	m.active++
	m.wg.Add(1) // under mu: serve waits only after it set stopping
	m.mu.Unlock()
	go m.relay(pair[0], pair[1])
	return nil, nil
}

// relay copies between a and b until either side closes, the byte limit
// is reached or the time limit passes.
func (m *Module) relay(a, b *conn) {
	defer m.wg.Done()
	defer func() {
		m.mu.Lock()
		m.active--
		m.mu.Unlock()
	}()
	close(a.start)
	close(b.start)
	if m.opts.MaxDuration > 0 {
		deadline := time.Now().Add(m.opts.MaxDuration)
		a.c.SetDeadline(deadline)
		b.c.SetDeadline(deadline)
	} else {
		a.c.SetDeadline(time.Time{})
		b.c.SetDeadline(time.Time{})
	}
	budget := &budget{left: m.opts.MaxBytes, unlimited: m.opts.MaxBytes == 0}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if !budget.take(int64(n)) {
					break
				}
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		done <- struct{}{}
	}
	go pipe(a.c, b.c)
	go pipe(b.c, a.c)
	<-done
	m.closeConn(a.c)
	m.closeConn(b.c)
	<-done
}

type budget struct {
	mu        sync.Mutex
	left      int64
	unlimited bool
}

func (b *budget) take(n int64) bool {
	if b.unlimited {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.left {
		b.left = 0
		return false
	}
	b.left -= n
	return true
}

func (m *Module) closeConn(c net.Conn) {
	c.Close()
	m.mu.Lock()
	delete(m.conns, c)
	m.mu.Unlock()
}

// serve accepts connections until ctx ends, then closes every connection
// and waits for their goroutines.
func (m *Module) serve(ctx context.Context) {
	go func() {
		<-ctx.Done()
		m.ln.Close()
	}()
	for {
		c, err := listen.Accept(m.ln, m.log)
		if err != nil {
			break // closed: ctx ended
		}
		m.mu.Lock()
		m.conns[c] = struct{}{}
		m.mu.Unlock()
		m.wg.Add(1)
		go m.handshake(ctx, c)
	}
	m.mu.Lock()
	m.stopping = true
	for c := range m.conns {
		c.Close()
	}
	m.mu.Unlock()
	m.wg.Wait()
}

// handshake runs the SOCKS5 handshake, then waits for activation.
func (m *Module) handshake(ctx context.Context, c net.Conn) {
	defer m.wg.Done()
	c.SetDeadline(time.Now().Add(m.opts.HandshakeTimeout))
	hash, err := socks5(c)
	if err != nil {
		m.log.Debug("proxy65: handshake failed", "remote", c.RemoteAddr().String(), "err", err)
		// Let the refusal reach the client: a close with unread input
		// would reset the connection and lose it.
		if tc, ok := c.(*net.TCPConn); ok {
			tc.CloseWrite()
			c.SetReadDeadline(time.Now().Add(time.Second))
			io.Copy(io.Discard, io.LimitReader(c, 4096))
		}
		m.closeConn(c)
		return
	}
	cn := &conn{c: c, start: make(chan struct{})}
	m.mu.Lock()
	if len(m.pending[hash]) >= 2 || m.npend >= 4*m.opts.MaxTransfers {
		m.mu.Unlock()
		m.closeConn(c)
		return
	}
	m.pending[hash] = append(m.pending[hash], cn)
	m.npend++
	m.mu.Unlock()
	// Answer only once registered, so that a client that was told the
	// connection succeeded can be activated at once.
	if err := writeReply(c, 0, hash); err != nil {
		m.unpend(hash, cn)
		m.closeConn(c)
		return
	}
	c.SetDeadline(time.Time{})
	t := time.NewTimer(m.opts.PendingTimeout)
	defer t.Stop()
	select {
	case <-cn.start:
	case <-t.C:
		if m.unpend(hash, cn) {
			m.closeConn(c)
		}
	case <-ctx.Done():
	}
}

// unpend removes cn from the pending list; false if it was activated.
func (m *Module) unpend(hash string, cn *conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	list := m.pending[hash]
	for i, x := range list {
		if x == cn {
			list = append(list[:i:i], list[i+1:]...)
			if len(list) == 0 {
				delete(m.pending, hash)
			} else {
				m.pending[hash] = list
			}
			m.npend--
			return true
		}
	}
	return false
}

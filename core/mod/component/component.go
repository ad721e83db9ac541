// Package component implements XEP-0114 (Jabber Component Protocol): it
// lets existing gateways and bots (an IRC or SMS gateway, a helpdesk bot)
// attach to the server over TCP as a component, each under its own domain
// (bot.example.com), and puts every stanza between a component and a local
// user under the contact policy.
//
// # Protocol
//
// The module listens on its own address (listen, loopback by default).
// A component opens a stream in the jabber:component:accept namespace with
// 'to' naming its domain; the server answers with its header and a fresh
// random stream id; the component proves it knows the shared secret with
// <handshake>hex(SHA-1(stream id + secret))</handshake>, which the server
// compares in constant time, and the server answers <handshake/>. An
// unknown domain ends the stream with host-unknown, an address outside the
// component's allowed_addrs or a wrong handshake with not-authorized.
// Failed handshakes are counted per address and per component (core/limit)
// and back off exponentially: while a component or an address waits, even
// the right secret is refused (policy-violation), so that guessing does not
// pay. A second connection for a component that is connected already is
// refused with conflict; the first one stays. A connection whose peer
// vanished without closing it is found by TCP keep-alive (on by default for
// accepted connections in Go: probes after 15 s of silence, given up after
// about two and a half minutes) and then detached.
//
// After the handshake, stanzas flow both ways in jabber:component:accept,
// which the module maps to jabber:client inside the server (and back on the
// wire), so the rest of the server sees ordinary stanzas. Every stanza from
// the component must carry 'to' and 'from' (else improper-addressing), and
// 'from' must be at the component's domain (else invalid-from); both end the
// stream. Stanza size, nesting depth, connections per address and the
// handshake timeout are limits of their own (options below), as on the
// client listener. What the server sends a component waits in a bounded
// queue; a component that stops reading is cut off with resource-constraint.
//
// # Routing
//
// Each configured component is a domain of the router (module.Host
// ServeDomain): stanzas to its domain or any JID at it (a gateway's
// user@irc.example.com) go to its connection; while it is not connected,
// messages and IQ requests bounce with service-unavailable (RFC 6120
// §10.5), other stanzas are dropped, and so are those still queued when a
// connection ends (requests and messages among them bounce). What a
// component sends is routed like any stanza the server routes (module.Host
// Route): to local users through their Inbound chain (so it is archived,
// delivered to the right resources, or stored offline like any other
// one-to-one message), to other components, or to the server. The host's
// disco#items lists every configured component; disco#info addressed to a
// component is answered by the component itself.
//
// # Policy
//
// Between a component and a local user the contact policy decides, as
// between two users (core/gate), with the component's bare JID (its domain,
// or user@domain for a gateway's JIDs) as the other party; it is not a
// local account (Party.Local false), so the default policy treats it as an
// external business contact, and a policy file can name it. The
// policy_gate module leaves domains that a module serves to that module,
// so both directions are asked here: what a user sends to the component
// (its domain or any JID at it) and what the component sends to a local
// user, with the same actions as between users (core/gate StanzaAction)
// and the same policy-violation error on a refusal: to the user for what
// the user sent, to the component for what it sent. Without a policy
// engine every such stanza is refused (fail closed). An end-to-end
// encrypted message a user sends to a component is still asked the e2ee
// decision by policy_gate; what a component sends is not (it is a service
// that reads what it is sent, and encrypts nothing on its own behalf).
//
// # Secrets and trust
//
// A component's secret comes from exactly one of secret, secret_file (the
// file's content, surrounding white space trimmed) or secret_env (an
// environment variable); it is never logged. A connected component may
// send as any JID at its domain and reach any local user the policy lets
// it, so its secret is as sensitive as an administrator's password (see
// SECURITY.md). The handshake is not encrypted: keep the listener on
// loopback or a private network, and limit each component to the
// addresses it connects from (allowed_addrs). Connects and disconnects are
// written to the audit trail (when cmd/kontor gives the module one).
//
// # Several virtual hosts
//
// The module's options are the same on every host. The components attach
// to one host, named by the host option, which opens the listener and lists
// them in its disco#items; the module does nothing on the other hosts. With
// a single domain host may stay empty.
package component

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/gate"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/limit"
	"kontor.im/kontor/core/listen"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/xmlstream"
)

// ID is the module's configuration key.
const ID = "component"

// NS is the namespace of a component stream (XEP-0114).
const NS = "jabber:component:accept"

func init() {
	module.Register(module.Info{
		ID:          ID,
		Description: "External components (gateways, bots) over the Jabber Component Protocol, each on its own domain and under the contact policy",
		Specs: []module.Spec{{ID: "XEP-0114", Name: "Jabber Component Protocol", Version: "1.6", Status: module.Complete,
			Note: "accept (server side); a listener of its own, loopback by default"}},
		New: func() module.Module { return newModule() },
	})
}

// Options are the module's options.
type Options struct {
	// Listen is the component listener's address.
	Listen string `mapstructure:"listen"`
	// Host is the virtual host the components attach to ("": the only
	// one).
	Host string `mapstructure:"host"`
	// MaxStanzaBytes and MaxDepth bound one stanza from a component.
	MaxStanzaBytes int `mapstructure:"max_stanza_bytes"`
	MaxDepth       int `mapstructure:"max_depth"`
	// MaxConnectionsPerIP bounds open connections from one address
	// (0: unlimited).
	MaxConnectionsPerIP int `mapstructure:"max_connections_per_ip"`
	// QueueSize is how many stanzas wait for a slow component before it
	// is cut off.
	QueueSize int `mapstructure:"queue_size"`
	// HandshakeTimeout bounds the time from connect to <handshake/>.
	HandshakeTimeout time.Duration `mapstructure:"handshake_timeout"`
	WriteTimeout     time.Duration `mapstructure:"write_timeout"`
	// Failed handshakes: from one address or for one component this many
	// within FailureWindow start a back-off of Backoff, doubling with
	// each further failure up to MaxBackoff.
	MaxFailuresPerIP        int           `mapstructure:"max_failures_per_ip"`
	MaxFailuresPerComponent int           `mapstructure:"max_failures_per_component"`
	FailureWindow           time.Duration `mapstructure:"failure_window"`
	Backoff                 time.Duration `mapstructure:"backoff"`
	MaxBackoff              time.Duration `mapstructure:"max_backoff"`
	// Components are the components that may attach.
	Components []ComponentOptions `mapstructure:"components"`
}

// ComponentOptions configure one component.
type ComponentOptions struct {
	// Domain is the component's JID, a domain that is no virtual host.
	Domain string `mapstructure:"domain"`
	// Name is what disco#items calls it.
	Name string `mapstructure:"name"`
	// The shared secret: exactly one of these.
	Secret     string `mapstructure:"secret"`
	SecretFile string `mapstructure:"secret_file"`
	SecretEnv  string `mapstructure:"secret_env"`
	// AllowedAddrs are addresses or prefixes (127.0.0.1, 10.0.0.0/8) the
	// component may connect from; empty: any.
	AllowedAddrs []string `mapstructure:"allowed_addrs"`
}

func newModule() *Module {
	return &Module{opts: Options{
		Listen:                  "127.0.0.1:5347",
		MaxStanzaBytes:          262144,
		MaxDepth:                32,
		MaxConnectionsPerIP:     10,
		QueueSize:               1024,
		HandshakeTimeout:        10 * time.Second,
		WriteTimeout:            30 * time.Second,
		MaxFailuresPerIP:        20,
		MaxFailuresPerComponent: 5,
		FailureWindow:           15 * time.Minute,
		Backoff:                 2 * time.Second,
		MaxBackoff:              5 * time.Minute,
	}}
}

var (
	_ module.Configurable = (*Module)(nil)
	_ module.Validator    = (*Options)(nil)
)

// Validate checks the options (not yet the secrets' sources, which
// Provision reads).
func (o *Options) Validate() error {
	var errs []string
	if _, _, err := net.SplitHostPort(o.Listen); err != nil {
		errs = append(errs, "listen: "+err.Error())
	}
	if o.MaxStanzaBytes < 1024 || o.MaxDepth < 2 {
		errs = append(errs, "max_stanza_bytes must be at least 1024 and max_depth at least 2")
	}
	if o.MaxConnectionsPerIP < 0 || o.QueueSize < 1 {
		errs = append(errs, "max_connections_per_ip must not be negative and queue_size must be at least 1")
	}
	if o.HandshakeTimeout < time.Second || o.WriteTimeout < time.Second {
		errs = append(errs, "handshake_timeout and write_timeout must be at least 1s")
	}
	if o.MaxFailuresPerIP < 1 || o.MaxFailuresPerComponent < 1 || o.FailureWindow <= 0 || o.Backoff <= 0 || o.MaxBackoff < o.Backoff {
		errs = append(errs, "max_failures_per_ip and max_failures_per_component must be at least 1, failure_window and backoff positive, max_backoff at least backoff")
	}
	seen := map[string]bool{}
	for i, c := range o.Components {
		d, err := jid.Parse(c.Domain)
		switch {
		case err != nil || c.Domain == "" || d.Local() != "" || !d.IsBare():
			errs = append(errs, fmt.Sprintf("components[%d]: domain %q is not a domain", i, c.Domain))
		case seen[d.String()]:
			errs = append(errs, fmt.Sprintf("components[%d]: %s is listed twice", i, d))
		default:
			seen[d.String()] = true
		}
		n := 0
		for _, s := range []string{c.Secret, c.SecretFile, c.SecretEnv} {
			if s != "" {
				n++
			}
		}
		if n != 1 {
			errs = append(errs, fmt.Sprintf("components[%d]: set exactly one of secret, secret_file and secret_env", i))
		}
		if _, err := parsePrefixes(c.AllowedAddrs); err != nil {
			errs = append(errs, fmt.Sprintf("components[%d]: allowed_addrs: %v", i, err))
		}
	}
	if len(errs) > 0 {
		return errors.New("component: " + strings.Join(errs, "; "))
	}
	return nil
}

// parsePrefixes reads addresses and prefixes; an address is a prefix of
// its full length.
func parsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a prefix", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// Module is the component service of one virtual host.
type Module struct {
	opts    Options
	host    module.Host
	log     *slog.Logger
	decider gate.Decider
	trail   audit.Log
	ln      net.Listener
	conns   *limit.Conns
	guard   *limit.Auth
	limits  xmlstream.Limits

	// comps is set in Provision and read-only afterwards.
	comps map[string]*component

	connected atomic.Int64
	failures  atomic.Int64

	// mu guards component.conn, open and stopping. It is never held
	// while calling the router or writing to a connection.
	mu       sync.Mutex
	open     map[*conn]struct{}
	stopping bool
	wg       sync.WaitGroup // connection goroutines
}

// component is one configured component.
type component struct {
	domain  jid.JID
	name    string
	secret  []byte
	allowed []netip.Prefix // empty: any address
	conn    *conn          // the authenticated connection; guarded by Module.mu
}

// Options returns the module's options, filled with defaults.
func (m *Module) Options() any { return &m.opts }

// SetDecider gives the module its policy engine (cmd/kontor calls it
// before the host provisions the module). Without one every stanza
// between a component and a user is refused (fail closed).
func (m *Module) SetDecider(d gate.Decider) { m.decider = d }

// SetAuditLog gives the module the audit trail for connects and
// disconnects (cmd/kontor calls it before the host provisions the module).
func (m *Module) SetAuditLog(l audit.Log) { m.trail = l }

// Addr is the listener's address, nil when the module does not listen on
// this host.
func (m *Module) Addr() net.Addr {
	if m.ln == nil {
		return nil
	}
	return m.ln.Addr()
}

// ConnectedComponents is the number of components connected now.
func (m *Module) ConnectedComponents() int { return int(m.connected.Load()) }

// HandshakeFailures is the number of failed handshakes so far.
func (m *Module) HandshakeFailures() int64 { return m.failures.Load() }

// Provision reads the secrets, serves each component's domain, lists the
// components in disco#items and opens the listener.
func (m *Module) Provision(h module.Host) error {
	m.host, m.log = h, h.Logger()
	if m.opts.Host != "" && m.opts.Host != h.Domain().String() {
		return nil
	}
	if len(m.opts.Components) == 0 {
		m.log.Info("no components configured: the component listener stays closed")
		return nil
	}
	m.comps = map[string]*component{}
	var items []module.DiscoItem
	for i, o := range m.opts.Components {
		d, err := jid.Parse(o.Domain)
		if err != nil {
			return fmt.Errorf("component: components[%d]: %w", i, err)
		}
		secret, err := loadSecret(o)
		if err != nil {
			return fmt.Errorf("component: %s: %w", d, err)
		}
		allowed, _ := parsePrefixes(o.AllowedAddrs)
		c := &component{domain: d, name: o.Name, secret: secret, allowed: allowed}
		if err := h.ServeDomain(d.String(), m.handler(c)); err != nil {
			return fmt.Errorf("component: %w (with several virtual hosts, set the host option to the one the components attach to)", err)
		}
		m.comps[d.String()] = c
		items = append(items, module.DiscoItem{JID: d, Name: o.Name})
	}
	h.AddDisco(module.ToHost, module.Disco{Items: items})
	if m.decider == nil {
		m.log.Warn("no policy engine: every stanza between a component and a user is refused")
	}
	m.conns = limit.NewConns(m.opts.MaxConnectionsPerIP)
	m.guard = limit.NewAuth(limit.AuthConfig{MaxPerIP: m.opts.MaxFailuresPerIP, MaxPerAccount: m.opts.MaxFailuresPerComponent,
		Window: m.opts.FailureWindow, Backoff: m.opts.Backoff, MaxBackoff: m.opts.MaxBackoff})
	m.limits = xmlstream.Limits{MaxStanzaBytes: m.opts.MaxStanzaBytes, MaxDepth: m.opts.MaxDepth}
	m.open = map[*conn]struct{}{}
	ln, err := net.Listen("tcp", m.opts.Listen)
	if err != nil {
		return fmt.Errorf("component: %w", err)
	}
	m.ln = ln
	h.Go("component-accept", m.serve)
	return nil
}

// loadSecret reads a component's secret from where its options say.
func loadSecret(o ComponentOptions) ([]byte, error) {
	var s string
	switch {
	case o.Secret != "":
		s = o.Secret
	case o.SecretFile != "":
		b, err := os.ReadFile(o.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("secret_file: %w", err)
		}
		s = strings.TrimSpace(string(b))
	case o.SecretEnv != "":
		s = os.Getenv(o.SecretEnv)
		if s == "" {
			return nil, fmt.Errorf("secret_env: the environment variable %s is empty or not set", o.SecretEnv)
		}
	}
	if s == "" {
		return nil, errors.New("the secret is empty")
	}
	return []byte(s), nil
}

// serve accepts connections until ctx ends, then closes every connection
// with system-shutdown and waits for their goroutines.
func (m *Module) serve(ctx context.Context) {
	go func() {
		<-ctx.Done()
		m.ln.Close()
	}()
	for {
		nc, err := listen.Accept(m.ln, m.log)
		if err != nil {
			break // closed: ctx ended
		}
		c := m.newConn(nc)
		m.mu.Lock()
		m.open[c] = struct{}{}
		m.mu.Unlock()
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			c.serve(ctx)
		}()
	}
	m.mu.Lock()
	m.stopping = true
	all := make([]*conn, 0, len(m.open))
	for c := range m.open {
		all = append(all, c)
	}
	m.mu.Unlock()
	for _, c := range all {
		c.Close(&stanza.StreamError{Condition: stanza.StreamSystemShutdown, Text: "the server is shutting down"})
	}
	m.wg.Wait()
}

// current returns a component's connection, nil when it is not connected.
func (m *Module) current(c *component) *conn {
	m.mu.Lock()
	defer m.mu.Unlock()
	return c.conn
}

// attach makes cn the connection of c, unless another one is.
func (m *Module) attach(c *component, cn *conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c.conn != nil || m.stopping {
		return false
	}
	c.conn = cn
	m.connected.Add(1)
	return true
}

// detach forgets cn as its component's connection.
func (m *Module) detach(cn *conn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.open, cn)
	if cn.comp != nil && cn.comp.conn == cn {
		cn.comp.conn = nil
		m.connected.Add(-1)
	}
}

// handler is the DomainHandler of one component: what local users, the
// server and other components send to it.
func (m *Module) handler(c *component) module.DomainHandler {
	return func(ctx context.Context, p *module.Packet) error {
		s := p.Stanza
		if p.Origin != nil {
			// policy_gate leaves served domains to their module: every
			// stanza a user sends to the component is asked here.
			if in, ok := question(s, party(s.From, true), party(s.To, false)); ok {
				if d := m.decide(ctx, in); !d.Allow {
					return d.StanzaError()
				}
			}
		}
		if cn := m.current(c); cn != nil && cn.Send(s) {
			return nil
		}
		return notConnected(s)
	}
}

// notConnected is what a stanza to a component that is not connected
// gets: messages and requests bounce, the rest is dropped.
func notConnected(s *stanza.Stanza) error {
	switch {
	case s.Kind == stanza.KindMessage && s.Type != "error",
		s.Kind == stanza.KindIQ && (s.Type == "get" || s.Type == "set"):
		return stanza.ErrServiceUnavailable("the component is not connected")
	}
	return nil
}

// party is one side of a contact question: a bare JID, local for a local
// account.
func party(j jid.JID, local bool) gate.Party {
	return gate.Party{JID: j.Bare().String(), Local: local}
}

// question returns the contact question a stanza from one party to another
// asks, as policy_gate asks it between users: messages (also groupchat
// messages a component sends to a user) ask "message", directed available
// presence and probes "presence", subscription requests and approvals
// "subscribe" and "subscribed", IQ requests "iq". Errors, IQ results,
// unavailable presence and withdrawals always pass.
func question(s *stanza.Stanza, from, to gate.Party) (gate.ContactInput, bool) {
	a, ok := gate.StanzaAction(s)
	return gate.ContactInput{Action: a, StanzaType: s.Type, From: from, To: to}, ok
}

// unavailable is the refusal when no decider is wired in.
var unavailable = gate.Failed(gate.ReasonUnavailable,
	"The server has no policy engine, so it refuses rather than skip the policy check. Tell your administrator.", nil)

// decide asks the contact decision.
func (m *Module) decide(ctx context.Context, in gate.ContactInput) gate.Decision {
	d := unavailable
	if m.decider != nil {
		d = m.decider.Contact(ctx, in)
	}
	if !d.Allow {
		m.log.DebugContext(ctx, "policy refused", "decision_id", d.ID, "reason", d.Reason,
			"action", string(in.Action), "from", in.From.JID, "to", in.To.JID)
	}
	return d
}

// audit writes an entry about a component to the audit trail, if any.
func (m *Module) audit(action string, c *component, details map[string]string) {
	if m.trail == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e := audit.Entry{Actor: "system", Action: action, Subject: c.domain.String(), Details: details}
	if _, err := m.trail.Append(ctx, e); err != nil {
		m.log.Error("audit entry not written", "action", action, "component", c.domain.String(), "err", err)
	}
}

// streamID returns a fresh random stream id.
func streamID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

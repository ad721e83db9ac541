// Package router routes stanzas between local sessions, the virtual hosts'
// modules and (through the Remote seam) other servers.
//
// A module may serve a component domain (module.Host.ServeDomain): a stanza
// to it walks the sender's Outbound chain as one to a remote domain would,
// then goes to the module's handler instead of Remote.
//
// The path of a stanza a client sends: the session stamps 'from' and calls
// RouteFrom; the sender's host runs its Outbound chain (Filter, Policy,
// Process); unless a hook took care of it, the stanza is dispatched: to a
// local domain, through that host's Inbound chain (Filter, Policy, Process),
// IQ handlers for the host and accounts, the delivery rules of RFC 6121 §8
// (which choose Packet.Targets), the Deliver phase, delivery, and Observe; to
// any other domain, through Remote. Each stanza walks this path once, in the
// sender's reader goroutine; delivering to another session only enqueues.
//
// Lock order: Router.mu (the session table) may be held while taking
// resource.mu, never the reverse. Neither is held while calling hooks,
// handlers or a session's Send or Close.
package router

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

// Remote carries stanzas for domains this server does not serve: later a
// cluster transport or server-to-server federation plugs in here.
type Remote interface {
	RouteRemote(ctx context.Context, s *stanza.Stanza) error
}

// noRemote is the Remote of a server without federation: every remote
// domain is unreachable.
type noRemote struct{}

func (noRemote) RouteRemote(context.Context, *stanza.Stanza) error {
	return stanza.Error{Type: stanza.Cancel, Condition: stanza.RemoteServerNotFound,
		Text: "this server does not federate with other domains"}
}

// Conn is what the router needs of a client connection.
type Conn interface {
	// Send queues a stanza for the client without blocking.
	Send(s *stanza.Stanza)
	// Close ends the connection with a stream error, asynchronously.
	Close(err *stanza.StreamError)
}

// AuthInfo is implemented by a Conn that knows how its session was
// authenticated. CloseAccount and Bind use it to tell a session of an
// account that was since disabled or deleted from one of the account as
// it is now: enabled again, or created anew for someone else under the
// same address. A Conn without it counts as authenticated before any
// change, against an unknown incarnation.
type AuthInfo interface {
	// AuthStarted is when the client began the authentication, before
	// the account was read.
	AuthStarted() time.Time
	// Incarnation is the incarnation of the account that the
	// authentication checked (sasl.Incarnation); zero when unknown.
	Incarnation() time.Time
}

// Revocation says which of an account's sessions CloseAccount ends. The
// zero Revocation ends all of them.
type Revocation struct {
	// Before, if not zero, ends the sessions whose client began to
	// authenticate before it (on this node's clock).
	Before time.Time
	// Incarnation, if not zero, ends the sessions authenticated against
	// any other incarnation of the account (or an unknown one).
	Incarnation time.Time
}

// ends reports whether v ends c's session.
func (v Revocation) ends(c Conn) bool {
	a, ok := c.(AuthInfo)
	if !ok {
		return true
	}
	if !v.Before.IsZero() && a.AuthStarted().Before(v.Before) {
		return true
	}
	return !v.Incarnation.IsZero() && !a.Incarnation().Equal(v.Incarnation)
}

// minRevokeKeep is how long Bind remembers at least that an account's
// sessions were closed (Config.BindWithin may make it longer), so that a
// session that authenticated before but binds after CloseAccount ran is
// refused too.
const minRevokeKeep = 5 * time.Minute

// revokePruneEvery: CloseAccount forgets expired revocations at most this
// often (a directory sync may disable thousands of accounts in a row).
const revokePruneEvery = time.Minute

// revokedError is the stream error of a Bind refused by a revocation
// (CloseAccount).
func revokedError() error {
	return &stanza.StreamError{Condition: stanza.StreamNotAuthorized, Text: "this account has been disabled or deleted"}
}

// Config configures a Router.
type Config struct {
	Logger *slog.Logger
	Store  storage.Store
	Sealer module.Sealer
	// Archive is the message archive, nil when archiving is off.
	Archive module.Archive
	Remote  Remote
	// HTTPBaseURL gives a host's public HTTPS base URL (module.Host's
	// HTTPBaseURL); nil when the HTTPS listener is off.
	HTTPBaseURL func(domain string) string
	// BindWithin is the longest a client may take from the start of its
	// authentication to binding a resource (the c2s handshake timeout):
	// CloseAccount's refusals last at least that long.
	BindWithin time.Duration
}

// Router is the session table and the routing rules of a server.
type Router struct {
	log     *slog.Logger
	store   storage.Store
	sealer  module.Sealer
	archive module.Archive
	remote  Remote
	httpURL func(string) string

	hosts map[string]*Host // set before Start, read-only after
	// served are the component domains modules serve (ServeDomain): set
	// while hosts provision, read-only after.
	served map[string]served

	mu       sync.RWMutex
	accounts map[string][]*resource // bare JID → resources (copy on write)
	// revoked: bare JID → what the sessions that bind must not be
	// (CloseAccount), each kept for revokeKeep; revokePruned is when
	// expired ones were last removed. Guarded by mu.
	revoked      map[string][]revocation
	revokeKeep   time.Duration
	revokePruned time.Time
	now          func() time.Time // the clock (tests)
}

type revocation struct {
	Revocation
	at time.Time // when CloseAccount made it
}

// New returns a router with no hosts.
func New(cfg Config) *Router {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Remote == nil {
		cfg.Remote = noRemote{}
	}
	return &Router{
		log:        cfg.Logger,
		store:      cfg.Store,
		sealer:     cfg.Sealer,
		archive:    cfg.Archive,
		remote:     cfg.Remote,
		httpURL:    cfg.HTTPBaseURL,
		hosts:      map[string]*Host{},
		served:     map[string]served{},
		accounts:   map[string][]*resource{},
		revoked:    map[string][]revocation{},
		revokeKeep: max(minRevokeKeep, cfg.BindWithin),
		now:        time.Now,
	}
}

// IsLocal reports whether domain is one of this server's virtual hosts.
func (r *Router) IsLocal(domain string) bool {
	_, ok := r.hosts[domain]
	return ok
}

// ServedBy returns the ID of the module that serves domain as a component
// (module.Host.ServeDomain), or "".
func (r *Router) ServedBy(domain string) string {
	return r.served[domain].module
}

// Host returns the virtual host for domain, or nil.
func (r *Router) Host(domain string) *Host { return r.hosts[domain] }

// Domains lists the served domains.
func (r *Router) Domains() []string {
	out := make([]string, 0, len(r.hosts))
	for d := range r.hosts {
		out = append(out, d)
	}
	return out
}

// Bind adds a session for a full JID. A session already bound to the same
// full JID is replaced and closed with a conflict stream error (RFC 6120
// §7.7.2.2: the newer session wins).
func (r *Router) Bind(ctx context.Context, full jid.JID, c Conn) (module.Resource, error) {
	h := r.hosts[full.Domain()]
	if h == nil || full.IsBare() || full.Local() == "" {
		return nil, fmt.Errorf("router: cannot bind %q", full)
	}
	res := &resource{jid: full, conn: c, host: h}
	key := full.Bare().String()
	var old *resource
	r.mu.Lock()
	for _, rv := range r.revoked[key] {
		if rv.ends(c) && r.now().Sub(rv.at) <= r.revokeKeep {
			r.mu.Unlock()
			return nil, revokedError()
		}
	}
	list := r.accounts[key]
	next := make([]*resource, 0, len(list)+1)
	for _, x := range list {
		if x.jid == full {
			old = x
			continue
		}
		next = append(next, x)
	}
	r.accounts[key] = append(next, res)
	r.mu.Unlock()
	if old != nil {
		old.conn.Close(&stanza.StreamError{Condition: stanza.StreamConflict, Text: "replaced by a new session with the same resource"})
		r.closed(ctx, old)
	}
	h.emit(ctx, module.Event{Kind: module.SessionBound, Resource: res})
	return res, nil
}

// Unbind removes a session; the session calls it when it ends. Removing a
// session that was already replaced is a no-op.
func (r *Router) Unbind(ctx context.Context, m module.Resource) {
	res, ok := m.(*resource)
	if !ok {
		return
	}
	key := res.jid.Bare().String()
	found := false
	r.mu.Lock()
	list := r.accounts[key]
	for i, x := range list {
		if x == res {
			found = true
			next := make([]*resource, 0, len(list)-1)
			next = append(next, list[:i]...)
			next = append(next, list[i+1:]...)
			if len(next) == 0 {
				delete(r.accounts, key)
			} else {
				r.accounts[key] = next
			}
			break
		}
	}
	r.mu.Unlock()
	if found {
		r.closed(ctx, res)
	}
}

func (r *Router) closed(ctx context.Context, res *resource) {
	res.mu.Lock()
	if res.gone {
		res.mu.Unlock()
		return
	}
	res.gone = true
	p := res.presence
	res.mu.Unlock()
	res.host.emit(ctx, module.Event{Kind: module.SessionClosed, Resource: res, Presence: p})
}

// resources returns the live slice of an account's resources; callers must
// not modify it.
func (r *Router) resources(bare string) []*resource {
	r.mu.RLock()
	list := r.accounts[bare]
	r.mu.RUnlock()
	return list
}

// Resources returns a snapshot of an account's bound resources.
func (r *Router) Resources(bare jid.JID) []module.Resource {
	list := r.resources(bare.String())
	out := make([]module.Resource, len(list))
	for i, x := range list {
		out[i] = x
	}
	return out
}

// CloseAccount closes the sessions of an account (disabled or deleted)
// that v ends and returns how many it closed. For a while (at least
// minRevokeKeep, and Config.BindWithin) Bind also refuses the sessions v
// ends: those that were between authentication and binding.
func (r *Router) CloseAccount(bare jid.JID, v Revocation, err *stanza.StreamError) int {
	now := r.now()
	if v.Before.IsZero() && v.Incarnation.IsZero() {
		v.Before = now
	}
	key := bare.String()
	r.mu.Lock()
	if now.Sub(r.revokePruned) >= revokePruneEvery {
		r.revokePruned = now
		for k, list := range r.revoked {
			list = slices.DeleteFunc(list, func(rv revocation) bool { return now.Sub(rv.at) > r.revokeKeep })
			if len(list) == 0 {
				delete(r.revoked, k)
			} else {
				r.revoked[k] = list
			}
		}
	}
	r.revoked[key] = append(r.revoked[key], revocation{Revocation: v, at: now})
	list := r.accounts[key]
	r.mu.Unlock()
	n := 0
	for _, x := range list {
		if v.ends(x.conn) {
			x.conn.Close(err)
			n++
		}
	}
	return n
}

// CloseAll closes every session (server shutdown).
func (r *Router) CloseAll(err *stanza.StreamError) {
	r.mu.RLock()
	var all []*resource
	for _, list := range r.accounts {
		all = append(all, list...)
	}
	r.mu.RUnlock()
	for _, x := range all {
		x.conn.Close(err)
	}
}

// SessionCount is the number of bound sessions.
func (r *Router) SessionCount() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n := 0
	for _, l := range r.accounts {
		n += len(l)
	}
	return n
}

// internal logs an unexpected error once, with an opaque id that the client
// also gets, so that a report can be matched to the log.
func (r *Router) internal(ctx context.Context, err error, s *stanza.Stanza) stanza.Error {
	var b [6]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	r.log.ErrorContext(ctx, "internal error", "error_id", id, "err", err, "stanza", s.El.Tag())
	return stanza.ErrInternal("internal error " + id)
}

// bounce answers s with an error, unless s may not be answered.
func (r *Router) bounce(ctx context.Context, s *stanza.Stanza, err error) {
	var se stanza.Error
	if !errors.As(err, &se) {
		se = r.internal(ctx, err, s)
	}
	reply := stanza.ErrorReply(s, se)
	if reply == nil {
		return
	}
	if reply.To.IsZero() {
		return
	}
	r.Route(ctx, reply)
}

// RouteFrom routes a stanza a local client sent. The session has already
// stamped From with the client's full JID.
func (r *Router) RouteFrom(ctx context.Context, origin module.Resource, s *stanza.Stanza) {
	h := r.hosts[s.From.Domain()]
	if h == nil {
		return
	}
	p := &module.Packet{Stanza: s, Origin: origin, Target: r.target(s, origin)}
	v, err := h.run(ctx, module.Outbound, module.Filter, module.Process, p)
	if err != nil {
		r.bounce(ctx, p.Stanza, err)
		return
	}
	switch v {
	case module.Drop:
		return
	case module.Continue:
		r.dispatch(ctx, p)
	}
	h.observe(ctx, module.Outbound, p)
}

// Route routes a stanza from the server or a module (no Outbound chain).
func (r *Router) Route(ctx context.Context, s *stanza.Stanza) {
	p := &module.Packet{Stanza: s, Target: r.target(s, nil)}
	r.dispatch(ctx, p)
}

// Redeliver routes again a message the server had already routed to a
// local account (module.Packet.Redelivery): one a session held when it
// ended, unacknowledged by its client.
func (r *Router) Redeliver(ctx context.Context, s *stanza.Stanza) {
	p := &module.Packet{Stanza: s, Target: r.target(s, nil), Redelivery: true}
	r.dispatch(ctx, p)
}

// target classifies the recipient. A stanza without 'to' from a client is
// addressed to the client's own account (RFC 6120 §10.3).
func (r *Router) target(s *stanza.Stanza, origin module.Resource) module.Target {
	to := s.To
	if to.IsZero() {
		if origin != nil {
			return module.ToAccount
		}
		return module.ToHost
	}
	switch {
	case !r.IsLocal(to.Domain()):
		return module.ToRemote
	case to.Local() == "":
		return module.ToHost
	case to.IsBare():
		return module.ToAccount
	}
	return module.ToResource
}

func (r *Router) dispatch(ctx context.Context, p *module.Packet) {
	s := p.Stanza
	if p.Target == module.ToRemote {
		if c, ok := r.served[s.To.Domain()]; ok {
			if err := c.handler(ctx, p); err != nil {
				r.bounce(ctx, s, err)
			}
			return
		}
		if err := r.remote.RouteRemote(ctx, s); err != nil {
			r.bounce(ctx, s, err)
		}
		return
	}
	to := s.To
	if to.IsZero() {
		if p.Origin == nil {
			return
		}
		to = p.Origin.JID().Bare()
	}
	h := r.hosts[to.Domain()]
	if h == nil {
		return
	}
	r.inbound(ctx, h, p, to)
}

// inbound runs the Inbound chain and the delivery rules for a stanza to a
// local host, account or resource.
func (r *Router) inbound(ctx context.Context, h *Host, p *module.Packet, to jid.JID) {
	// orig is what the sender sent: errors answer it. Hooks may replace
	// p.Stanza (a copy with a stanza-id, say); what is delivered is theirs.
	orig := p.Stanza
	var list []*resource
	if p.Target != module.ToHost {
		list = r.resources(to.Bare().String())
		p.AccountExists = len(list) > 0
		if !p.AccountExists && r.store != nil {
			_, err := r.store.Account(ctx, to.Bare().String())
			switch {
			case err == nil:
				p.AccountExists = true
			case !errors.Is(err, storage.ErrNotFound):
				r.bounce(ctx, orig, err)
				return
			}
		}
	}
	v, err := h.run(ctx, module.Inbound, module.Filter, module.Process, p)
	if err != nil {
		r.bounce(ctx, orig, err)
		return
	}
	switch v {
	case module.Drop:
		return
	case module.Done:
		h.observe(ctx, module.Inbound, p)
		return
	}

	s := p.Stanza
	if p.Target != module.ToHost && !p.AccountExists {
		// RFC 6121 §8.5.1: no such user.
		if s.Kind == stanza.KindMessage || (s.Kind == stanza.KindIQ && (s.Type == "get" || s.Type == "set")) {
			r.bounce(ctx, orig, stanza.ErrServiceUnavailable(""))
		}
		return
	}
	if s.Kind == stanza.KindIQ && p.Target != module.ToResource {
		// Handlers for accounts see only accounts that exist.
		r.handleIQ(ctx, h, p)
		return
	}
	p.Targets = r.choose(p, to, list)

	v, err = h.run(ctx, module.Inbound, module.Deliver, module.Deliver, p)
	if err != nil {
		r.bounce(ctx, orig, err)
		return
	}
	switch v {
	case module.Drop:
		return
	case module.Done:
		h.observe(ctx, module.Inbound, p)
		return
	}
	if len(p.Targets) == 0 {
		r.undeliverable(ctx, p)
		return
	}
	for _, t := range p.Targets {
		t.Send(p.Stanza)
	}
	h.observe(ctx, module.Inbound, p)
}

// choose applies RFC 6121 §8.5 to pick the resources that get the stanza.
func (r *Router) choose(p *module.Packet, to jid.JID, list []*resource) []module.Resource {
	s := p.Stanza
	if p.Target == module.ToHost || len(list) == 0 {
		return nil
	}
	if p.Target == module.ToResource {
		for _, x := range list {
			if x.jid == to {
				return []module.Resource{x}
			}
		}
		// §8.5.3.2: the resource is gone. Chat and normal messages go on
		// as if sent to the bare JID; everything else is undeliverable.
		if s.Kind != stanza.KindMessage || (s.Type != "" && s.Type != "normal" && s.Type != "chat") {
			return nil
		}
	}
	switch s.Kind {
	case stanza.KindMessage:
		switch s.Type {
		case "", "normal", "chat":
			// The available resources with the highest non-negative
			// priority (§8.5.2.1.1).
			best := -1
			var out []module.Resource
			for _, x := range list {
				pr, ok := x.availability()
				if !ok || pr < 0 || pr < best {
					continue
				}
				if pr > best {
					best, out = pr, out[:0]
				}
				out = append(out, x)
			}
			return out
		case "headline":
			var out []module.Resource
			for _, x := range list {
				if pr, ok := x.availability(); ok && pr >= 0 {
					out = append(out, x)
				}
			}
			return out
		}
		return nil
	case stanza.KindPresence:
		// Directed and broadcast presence go to every available resource.
		var out []module.Resource
		for _, x := range list {
			if _, ok := x.availability(); ok {
				out = append(out, x)
			}
		}
		return out
	}
	return nil
}

// undeliverable handles a stanza for an existing account that no resource
// can receive and no Deliver hook took.
func (r *Router) undeliverable(ctx context.Context, p *module.Packet) {
	s := p.Stanza
	switch s.Kind {
	case stanza.KindMessage:
		switch s.Type {
		case "", "normal", "chat", "groupchat":
			r.bounce(ctx, s, stanza.ErrServiceUnavailable("the recipient is not available"))
		}
	case stanza.KindIQ:
		if s.Type == "get" || s.Type == "set" {
			r.bounce(ctx, s, stanza.ErrServiceUnavailable("the recipient is not available"))
		}
	}
}

// handleIQ answers an IQ addressed to the host or an account.
func (r *Router) handleIQ(ctx context.Context, h *Host, p *module.Packet) {
	s := p.Stanza
	if s.Type != "get" && s.Type != "set" {
		if s.Type != "result" && s.Type != "error" {
			r.bounce(ctx, s, stanza.ErrBadRequest("an IQ must have type get, set, result or error"))
		}
		return
	}
	payload := s.Payload()
	if payload == nil {
		r.bounce(ctx, s, stanza.ErrBadRequest("an IQ get or set needs exactly one payload"))
		return
	}
	target := p.Target
	handler := h.iq(target, module.IQType(s.Type), payload.Name)
	if handler == nil {
		r.bounce(ctx, s, stanza.ErrServiceUnavailable(""))
		return
	}
	res, err := handler(ctx, &module.IQ{Stanza: s, Origin: p.Origin, Target: target})
	if err != nil {
		r.bounce(ctx, s, err)
		return
	}
	// A reply to a request without 'to' (handled on behalf of the sender's
	// own account) carries no 'from' either (RFC 6120 §8.1.2.1).
	reply := stanza.NewIQ(s.To, s.From, "result", s.ID, res)
	if s.From.IsZero() {
		return
	}
	r.Route(ctx, reply)
	h.observe(ctx, module.Inbound, p)
}

package router

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

// Host is one virtual host: its modules and what they declared. Everything
// here is written while modules provision, before traffic, and only read
// afterwards, so the tables need no lock.
type Host struct {
	r      *Router
	domain jid.JID
	log    *slog.Logger

	hooks    [module.NumChains][module.NumPhases][]module.HookFunc
	iqs      map[iqKey]module.IQHandler
	events   [module.NumEvents][]func(context.Context, module.Event)
	disco    [2]module.Disco // ToHost, ToAccount
	features []func() *stanza.Element
	http     *http.ServeMux // nil until a module calls HandleHTTP
	httpPats map[string]bool

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	modules []Enabled
	served  []string // component domains the host's modules serve
}

type iqKey struct {
	target  module.Target
	typ     module.IQType
	payload stanza.Name
}

// Enabled is a module instance ready to provision, with its Info.
type Enabled struct {
	Info   module.Info
	Module module.Module
}

// AddHost adds a virtual host and provisions its modules in order. It must
// be called before the server accepts connections.
func (r *Router) AddHost(domain jid.JID, mods []Enabled) (*Host, error) {
	if !domain.IsBare() || domain.Local() != "" {
		return nil, fmt.Errorf("router: %q is not a domain", domain)
	}
	if _, dup := r.hosts[domain.String()]; dup {
		return nil, fmt.Errorf("router: host %q added twice", domain)
	}
	if _, dup := r.served[domain.String()]; dup {
		return nil, fmt.Errorf("router: %q is served by a module already", domain)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &Host{r: r, domain: domain, log: r.log.With("domain", domain.String()),
		iqs: map[iqKey]module.IQHandler{}, ctx: ctx, cancel: cancel}
	h.disco[module.ToHost].Identities = []module.Identity{{Category: "server", Type: "im", Name: "Kontor"}}
	h.disco[module.ToAccount].Identities = []module.Identity{{Category: "account", Type: "registered"}}
	r.hosts[domain.String()] = h
	for _, m := range mods {
		if err := m.Module.Provision(&hostView{Host: h, id: m.Info.ID}); err != nil {
			cancel()
			delete(r.hosts, domain.String())
			for _, d := range h.served {
				delete(r.served, d)
			}
			return nil, fmt.Errorf("router: module %s on %s: %w", m.Info.ID, domain, err)
		}
		h.modules = append(h.modules, m)
	}
	return h, nil
}

// Stop stops every host's modules and waits for their goroutines.
func (r *Router) Stop(ctx context.Context) error {
	var first error
	for _, h := range r.hosts {
		h.cancel()
		done := make(chan struct{})
		go func() { h.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
		for _, m := range h.modules {
			if s, ok := m.Module.(module.Stopper); ok {
				if err := s.Stop(ctx); err != nil && first == nil {
					first = err
				}
			}
		}
	}
	return first
}

// Domain is the host's domain.
func (h *Host) Domain() jid.JID { return h.domain }

// Modules lists the host's enabled modules.
func (h *Host) Modules() []Enabled { return h.modules }

// StreamFeatures returns the post-authentication stream features modules
// offer.
func (h *Host) StreamFeatures() []*stanza.Element {
	var out []*stanza.Element
	for _, fn := range h.features {
		if el := fn(); el != nil {
			out = append(out, el)
		}
	}
	return out
}

// HTTPHandler returns the handler for what the host's modules serve on
// the HTTPS listener, or nil when none serves anything.
func (h *Host) HTTPHandler() http.Handler {
	if h.http == nil {
		return nil
	}
	return h.http
}

// DiscoInfo merges what modules declared for the host or an account.
func (h *Host) DiscoInfo(t module.Target) module.Disco {
	if t != module.ToHost && t != module.ToAccount {
		return module.Disco{}
	}
	return h.disco[t]
}

func (h *Host) iq(t module.Target, typ module.IQType, n stanza.Name) module.IQHandler {
	return h.iqs[iqKey{t, typ, n}]
}

// run runs the hooks of a chain for phases from..to, stopping at the first
// verdict other than Continue.
func (h *Host) run(ctx context.Context, c module.Chain, from, to module.Phase, p *module.Packet) (module.Verdict, error) {
	for ph := from; ph <= to; ph++ {
		for _, fn := range h.hooks[c][ph] {
			v, err := fn(ctx, p)
			if err != nil {
				return module.Drop, err
			}
			if v != module.Continue {
				return v, nil
			}
		}
	}
	return module.Continue, nil
}

func (h *Host) observe(ctx context.Context, c module.Chain, p *module.Packet) {
	for _, fn := range h.hooks[c][module.Observe] {
		if _, err := fn(ctx, p); err != nil {
			h.log.WarnContext(ctx, "observe hook failed", "chain", c.String(), "err", err, "stanza", p.Stanza.El.Tag())
		}
	}
}

func (h *Host) emit(ctx context.Context, ev module.Event) {
	for _, fn := range h.events[ev.Kind] {
		fn(ctx, ev)
	}
}

// SetPresence records a resource's presence and fires the transition
// events.
func (h *Host) SetPresence(ctx context.Context, m module.Resource, p *stanza.Stanza) {
	x, ok := m.(*resource)
	if !ok {
		return
	}
	was, is := x.setPresence(p)
	switch {
	case !was && is:
		h.emit(ctx, module.Event{Kind: module.SessionAvailable, Resource: x, Presence: p})
	case was && !is:
		h.emit(ctx, module.Event{Kind: module.SessionUnavailable, Resource: x})
	}
}

// hostView is the module.Host a single module gets: the host plus the
// module's identity for logs.
type hostView struct {
	*Host
	id string
}

var _ module.Host = (*hostView)(nil)

func (v *hostView) Logger() *slog.Logger                        { return v.log.With("module", v.id) }
func (v *hostView) Store() storage.Store                        { return v.r.store }
func (v *hostView) Sealer() module.Sealer                       { return v.r.sealer }
func (v *hostView) Archive() module.Archive                     { return v.r.archive }
func (v *hostView) IsLocal(domain string) bool                  { return v.r.IsLocal(domain) }
func (v *hostView) ServedBy(domain string) string               { return v.r.ServedBy(domain) }
func (v *hostView) Route(ctx context.Context, s *stanza.Stanza) { v.r.Route(ctx, s) }
func (v *hostView) Resources(bare jid.JID) []module.Resource {
	return v.r.Resources(bare)
}

func (v *hostView) HandleIQ(t module.Target, typ module.IQType, payload stanza.Name, fn module.IQHandler) {
	k := iqKey{t, typ, payload}
	if _, dup := v.iqs[k]; dup {
		panic(fmt.Sprintf("module %s: IQ handler for %s %s {%s}%s registered twice", v.id, t, typ, payload.Space, payload.Local))
	}
	v.iqs[k] = fn
}

func (v *hostView) Hook(c module.Chain, p module.Phase, fn module.HookFunc) {
	v.hooks[c][p] = append(v.hooks[c][p], fn)
}

func (v *hostView) On(k module.EventKind, fn func(context.Context, module.Event)) {
	v.events[k] = append(v.events[k], fn)
}

func (v *hostView) AddDisco(t module.Target, d module.Disco) {
	if t != module.ToHost && t != module.ToAccount {
		panic("module " + v.id + ": AddDisco takes ToHost or ToAccount")
	}
	cur := &v.disco[t]
	cur.Identities = append(cur.Identities, d.Identities...)
	cur.Features = append(cur.Features, d.Features...)
	cur.Forms = append(cur.Forms, d.Forms...)
	cur.Items = append(cur.Items, d.Items...)
}

// served is a component domain and who serves it.
type served struct {
	host    *Host
	module  string
	handler module.DomainHandler
}

func (v *hostView) ServeDomain(domain string, fn module.DomainHandler) error {
	d, err := jid.Parse(domain)
	if err != nil || d.Local() != "" || !d.IsBare() {
		return fmt.Errorf("router: %q is not a domain", domain)
	}
	if fn == nil {
		return fmt.Errorf("router: no handler for %s", domain)
	}
	name := d.String()
	if _, ok := v.r.hosts[name]; ok {
		return fmt.Errorf("router: %s is a virtual host", name)
	}
	if c, ok := v.r.served[name]; ok {
		return fmt.Errorf("router: %s is served by module %s of %s already", name, c.module, c.host.domain)
	}
	v.r.served[name] = served{host: v.Host, module: v.id, handler: fn}
	v.served = append(v.served, name)
	return nil
}

func (v *hostView) AddStreamFeature(fn func() *stanza.Element) {
	v.features = append(v.features, fn)
}

func (v *hostView) Go(name string, fn func(ctx context.Context)) {
	v.wg.Add(1)
	go func() {
		defer v.wg.Done()
		defer func() {
			if p := recover(); p != nil {
				v.log.Error("module goroutine panicked", "module", v.id, "goroutine", name, "panic", fmt.Sprint(p))
			}
		}()
		fn(v.ctx)
	}()
}

func (v *hostView) HandleHTTP(pattern string, fn http.Handler) {
	if !strings.HasPrefix(pattern, "/") || !strings.HasSuffix(pattern, "/") {
		panic(fmt.Sprintf("module %s: HTTP pattern %q must start and end with /", v.id, pattern))
	}
	if v.httpPats[pattern] {
		panic(fmt.Sprintf("module %s: HTTP handler for %s registered twice", v.id, pattern))
	}
	if v.http == nil {
		v.http, v.httpPats = http.NewServeMux(), map[string]bool{}
	}
	v.httpPats[pattern] = true
	v.http.Handle(pattern, fn)
}

func (v *hostView) HTTPBaseURL() string {
	if v.r.httpURL == nil {
		return ""
	}
	return strings.TrimSuffix(v.r.httpURL(v.domain.String()), "/")
}

// IQRoute is one IQ handler a module registered: for which target, IQ
// type and payload element.
type IQRoute struct {
	Target  module.Target
	Type    module.IQType
	Payload stanza.Name
}

// IQRoutes lists the IQ handlers of the host's modules (in no particular
// order), so that tests can go through every one of them (see
// cmd/kontor's isolation test).
func (h *Host) IQRoutes() []IQRoute {
	out := make([]IQRoute, 0, len(h.iqs))
	for k := range h.iqs {
		out = append(out, IQRoute{Target: k.target, Type: k.typ, Payload: k.payload})
	}
	return out
}

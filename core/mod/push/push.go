// Package push implements XEP-0357 Push Notifications for phones that
// sleep: a client enables an app server (its push service's JID and a node
// for the device), and when a message reaches the account while none of
// its sessions can show it (every session is hibernating, waiting for the
// client to resume it, or the message went to offline storage), the server
// tells the app server, which wakes the app through the platform's push
// service (Firebase, APNs).
//
// # Delivery
//
// The notification is the XEP-0357 §7 publish: an IQ set from the
// account's bare JID to the app server, with the summary form in the item
// and the client's publish-options. It is routed like any stanza the
// server sends (module.Host Route): over server-to-server to an app server
// at another domain, to a component (XEP-0114) when the app server is one,
// or to a module serving its domain. Its reply comes back to the account's
// bare JID and is taken off the Inbound chain by the module (matched by id
// and sender, so nobody else can answer for the app server): a result ends
// the matter; an error disables the registration (XEP-0357 §7.1: the
// server SHOULD consider the JID and node disabled), except an error of
// type wait and the conditions that say the route failed rather than the
// app server refused (remote-server-not-found, remote-server-timeout,
// service-unavailable, internal-server-error: an app server that is
// restarting or a federation hiccup should not unsubscribe every phone),
// which are logged and keep the registration. A reply that does not come
// within timeout is logged and forgotten; waiting never holds up a worker
// or routing, and the number of publishes waiting for their reply is
// bounded by queue_size.
//
// Operators whose app servers are not reachable over XMPP can name them in
// gateway_services ("*": all of them): those notifications go to a push
// gateway the operator runs, over HTTPS (gateway_url), instead: a POST of
// JSON
//
//	{"service": "push.example.net", "node": "yxs32u…",
//	 "publish_options": {"secret": "…"},
//	 "summary": {"message_count": 2, "last_message_sender": "…", "last_message_body": "…"},
//	 "iq": "<iq type='set' from='alice@example.com' to='push.example.net' …>…</iq>"}
//
// with the gateway token as a bearer token. The gateway forwards the IQ
// (as an XMPP component or client) or calls the platform itself. A 404 or
// 410 answer means the registration is gone: it is disabled, as XEP-0357
// §8 asks of errors from the app server. Notifications are sent by a few
// workers from a bounded queue and never hold up routing; when the queue
// is full a notification is dropped and logged (the message itself is
// safe in the session's queue or offline storage). The same holds for the
// XMPP path.
//
// # What the summary says
//
// By default only the count of messages since the user was last online:
// no sender, no body, because the notification leaves the company through
// the app server and the platform's push service. include_sender and
// include_body add them where the policy's push.notify decision allows it
// too (gate.PushDecider; the body of an end-to-end encrypted message is
// never included: the server cannot read it). The same decision is asked
// when a client enables an app server (a refusal is the client's error)
// and for every notification (a refusal skips it; the message waits in the
// session or offline storage as before).
//
// # Stored data
//
// Registrations are kept per account (storage.PushRegistrations, deleted
// with the account). The client's publish-options carry the app server's
// secret, so they are stored sealed (module.Sealer), like message content.
package push

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"kontor.im/kontor/core/dataform"
	"kontor.im/kontor/core/gate"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/xmlstream"
)

// Namespaces.
const (
	NS             = "urn:xmpp:push:0"
	NSSummary      = "urn:xmpp:push:summary"
	NSPubSub       = "http://jabber.org/protocol/pubsub"
	PublishOptions = "http://jabber.org/protocol/pubsub#publish-options"
)

// Limits on what a client may register.
const (
	maxNodeBytes    = 1024
	maxOptionFields = 16
	maxOptionBytes  = 1024 // per value
	maxBodyRunes    = 256  // of a body put in a summary
)

func init() {
	module.Register(module.Info{
		ID:          "push",
		Description: "Wakes sleeping phones through their push service when messages arrive (app servers over XMPP, or an HTTP push gateway)",
		Specs: []module.Spec{
			{ID: "XEP-0357", Name: "Push Notifications", Version: "0.4.1", Status: module.Complete,
				Note: "publishes to app servers over s2s or to components; an HTTP push gateway for configured app servers; the policy (push.notify) decides which app servers and what the summary says"},
		},
		New: func() module.Module { return &Module{opts: defaultOptions()} },
	})
}

// Options configures the module.
type Options struct {
	// GatewayURL is the push gateway's endpoint (https, or http on a
	// loopback address), for the app servers in GatewayServices; "" when
	// every notification goes over XMPP.
	GatewayURL string `mapstructure:"gateway_url"`
	// GatewayServices are the app servers (JIDs as clients name them in
	// enable, or "*" for all) whose notifications go to the gateway.
	GatewayServices []string `mapstructure:"gateway_services"`
	// GatewayToken (or the content of GatewayTokenFile) is sent as the
	// bearer token.
	GatewayToken     string `mapstructure:"gateway_token"`
	GatewayTokenFile string `mapstructure:"gateway_token_file"`
	// MaxRegistrations per account (devices × app servers).
	MaxRegistrations int `mapstructure:"max_registrations"`
	// Timeout of one request to the gateway, or of the wait for an app
	// server's reply to a publish over XMPP.
	Timeout time.Duration `mapstructure:"timeout"`
	// QueueSize bounds the notifications waiting for a worker, and also
	// the publishes over XMPP waiting for their reply.
	QueueSize int `mapstructure:"queue_size"`
	// Workers send notifications concurrently.
	Workers int `mapstructure:"workers"`
	// IncludeSender and IncludeBody put the last message's sender and body
	// into the summary, where the policy allows it too. Off by default:
	// see the package documentation.
	IncludeSender bool `mapstructure:"include_sender"`
	IncludeBody   bool `mapstructure:"include_body"`
}

func defaultOptions() Options {
	return Options{MaxRegistrations: 10, Timeout: 10 * time.Second, QueueSize: 1000, Workers: 4}
}

// Validate checks the options.
func (o *Options) Validate() error {
	var errs []error
	u, err := url.Parse(o.GatewayURL)
	switch {
	case o.GatewayURL == "":
		if len(o.GatewayServices) > 0 {
			errs = append(errs, errors.New("push: gateway_services needs a gateway_url"))
		}
	case len(o.GatewayServices) == 0:
		errs = append(errs, errors.New("push: gateway_url needs gateway_services: the app servers it serves, or \"*\" for all"))
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		errs = append(errs, fmt.Errorf("push: gateway_url %q is not an http(s) URL", o.GatewayURL))
	case u.Scheme == "http" && !loopback(u.Hostname()):
		errs = append(errs, fmt.Errorf("push: gateway_url %q: plain http only to a loopback address; use https", o.GatewayURL))
	}
	for _, s := range o.GatewayServices {
		if _, err := jid.Parse(s); s != "*" && (err != nil || s == "") {
			errs = append(errs, fmt.Errorf("push: gateway_services: %q is not a JID", s))
		}
	}
	if o.GatewayToken != "" && o.GatewayTokenFile != "" {
		errs = append(errs, errors.New("push: set gateway_token or gateway_token_file, not both"))
	}
	if o.MaxRegistrations < 1 || o.MaxRegistrations > 100 {
		errs = append(errs, fmt.Errorf("push: max_registrations %d is not between 1 and 100", o.MaxRegistrations))
	}
	if o.Timeout < 100*time.Millisecond || o.Timeout > time.Minute {
		errs = append(errs, fmt.Errorf("push: timeout %v is not between 100ms and 1m", o.Timeout))
	}
	if o.QueueSize < 1 || o.QueueSize > 1_000_000 {
		errs = append(errs, fmt.Errorf("push: queue_size %d is not between 1 and 1000000", o.QueueSize))
	}
	if o.Workers < 1 || o.Workers > 64 {
		errs = append(errs, fmt.Errorf("push: workers %d is not between 1 and 64", o.Workers))
	}
	return errors.Join(errs...)
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Module is the push module of one host.
type Module struct {
	opts    Options
	decider gate.PushDecider // nil: no policy (the options alone decide)
	host    module.Host
	store   storage.PushRegistrations
	sealer  module.Sealer
	log     *slog.Logger
	token   string
	client  *http.Client
	queue   chan job

	mu     sync.Mutex
	counts map[string]int // account → messages since it was last available

	// pmu guards pending; it is never held while routing or calling the
	// store, and no other lock is taken while holding it.
	pmu     sync.Mutex
	pending map[string]publish // IQ id → publish waiting for its reply
}

// publish is a notification sent over XMPP and waiting for the app
// server's reply.
type publish struct {
	owner, service, node string
	deadline             time.Time
}

// job is one notification to send.
type job struct {
	owner   string
	reg     storage.PushRegistration // Options opened
	summary summary
}

type summary struct {
	MessageCount int    `json:"message_count"`
	Sender       string `json:"last_message_sender,omitempty"`
	Body         string `json:"last_message_body,omitempty"`
}

var (
	_ module.Configurable = (*Module)(nil)
	_ module.Validator    = (*Options)(nil)
)

// Options returns the module's options.
func (m *Module) Options() any { return &m.opts }

// SetDecider gives the module its policy engine (cmd/kontor calls it
// before Provision): the push.notify decision (gate.PushDecider) says
// whether an account may use an app server and whether a summary may name
// the sender and carry the body. Without one (a Decider that does not
// answer push.notify, or none), the options alone decide.
func (m *Module) SetDecider(d gate.Decider) {
	m.decider, _ = d.(gate.PushDecider)
}

// decide asks push.notify; without a decider, everything is allowed and
// the options decide the summary.
func (m *Module) decide(ctx context.Context, own jid.JID, service string, sender jid.JID, encrypted bool) gate.PushDecision {
	if m.decider == nil {
		return gate.PushDecision{Decision: gate.Decision{Allow: true}, IncludeSender: true, IncludeBody: !encrypted}
	}
	sj, _ := jid.Parse(service)
	in := gate.PushInput{User: gate.Party{JID: own.String(), Local: m.host.IsLocal(own.Domain())}, Service: service,
		ServiceLocal: m.host.IsLocal(sj.Domain()) || m.host.ServedBy(sj.Domain()) != "", Encrypted: encrypted}
	if !sender.IsZero() {
		in.Sender = gate.Party{JID: sender.Bare().String(), Local: m.host.IsLocal(sender.Domain())}
	}
	return m.decider.Push(ctx, in)
}

// Provision declares the module's handlers.
func (m *Module) Provision(h module.Host) error {
	st, ok := h.Store().(storage.PushRegistrations)
	if !ok {
		return fmt.Errorf("push: the %s store keeps no push registrations", h.Store().Backend())
	}
	if h.Sealer() == nil {
		return errors.New("push: the host has no sealer, and the app servers' secrets are never stored in the clear")
	}
	m.host, m.store, m.sealer, m.log = h, st, h.Sealer(), h.Logger()
	m.token = m.opts.GatewayToken
	if m.opts.GatewayTokenFile != "" {
		b, err := os.ReadFile(m.opts.GatewayTokenFile)
		if err != nil {
			return fmt.Errorf("push: gateway_token_file: %w", err)
		}
		m.token = strings.TrimSpace(string(b))
	}
	m.client = &http.Client{Timeout: m.opts.Timeout}
	m.queue = make(chan job, m.opts.QueueSize)
	m.counts = map[string]int{}
	m.pending = map[string]publish{}

	h.HandleIQ(module.ToAccount, module.Set, stanza.Name{Space: NS, Local: "enable"}, m.enable)
	h.HandleIQ(module.ToAccount, module.Set, stanza.Name{Space: NS, Local: "disable"}, m.disable)
	h.AddDisco(module.ToAccount, module.Disco{Features: []string{NS}})
	h.Hook(module.Inbound, module.Filter, m.reply)
	h.Hook(module.Inbound, module.Observe, m.observe)
	h.On(module.SessionAvailable, func(_ context.Context, ev module.Event) {
		m.mu.Lock()
		delete(m.counts, ev.Resource.JID().Bare().String())
		m.mu.Unlock()
	})
	for i := range m.opts.Workers {
		h.Go(fmt.Sprint("push-worker-", i), m.work)
	}
	h.Go("push-expiry", m.expire)
	return nil
}

// owner returns the account an IQ is about, refusing anyone but its own
// sessions.
func owner(iq *module.IQ) (jid.JID, error) {
	own := iq.From.Bare()
	if iq.Origin == nil || own.IsZero() || (!iq.To.IsZero() && iq.To != own) {
		return jid.JID{}, stanza.ErrForbidden("only the account itself may manage its push notifications")
	}
	return own, nil
}

// request reads an enable or disable: the account, the element and the
// app server's address.
func request(iq *module.IQ) (own jid.JID, el *stanza.Element, service jid.JID, err error) {
	if own, err = owner(iq); err != nil {
		return own, nil, service, err
	}
	el = iq.Payload()
	if service, err = jid.Parse(el.Get("jid")); err != nil || el.Get("jid") == "" {
		return own, el, service, stanza.ErrBadRequest(el.Name.Local + " needs the app server's address in 'jid'")
	}
	return own, el, service, nil
}

// sealID binds sealed options to the registration they belong to.
func sealID(service, node string) []byte {
	return []byte("push\x00" + service + "\x00" + node)
}

// enable handles XEP-0357 §5 enable.
func (m *Module) enable(ctx context.Context, iq *module.IQ) (*stanza.Element, error) {
	own, el, service, err := request(iq)
	if err != nil {
		return nil, err
	}
	node := el.Get("node")
	if node == "" || len(node) > maxNodeBytes || !utf8.ValidString(node) {
		return nil, stanza.ErrBadRequest(fmt.Sprintf("enable needs a 'node' of 1 to %d bytes", maxNodeBytes))
	}
	if d := m.decide(ctx, own, service.String(), jid.JID{}, false); !d.Allow {
		return nil, d.StanzaError()
	}
	var sealed []byte
	if x := el.Child(dataform.NS, "x"); x != nil {
		form, err := dataform.Parse(x)
		if err != nil {
			return nil, stanza.ErrBadRequest(err.Error())
		}
		if form.FormType() != PublishOptions {
			return nil, stanza.ErrBadRequest("the form must be of type " + PublishOptions)
		}
		if len(form.Fields) > maxOptionFields+1 {
			return nil, stanza.ErrBadRequest(fmt.Sprintf("at most %d publish options", maxOptionFields))
		}
		for _, f := range form.Fields {
			for _, v := range f.Values {
				if len(v) > maxOptionBytes {
					return nil, stanza.ErrBadRequest(fmt.Sprintf("publish option %q is longer than %d bytes", f.Var, maxOptionBytes))
				}
			}
		}
		if sealed, err = m.sealer.Seal(own.String(), sealID(service.String(), node), []byte(form.Element().String())); err != nil {
			return nil, fmt.Errorf("push: seal options: %w", err)
		}
	}
	err = m.store.EnablePush(ctx, own.String(), storage.PushRegistration{
		Service: service.String(), Node: node, Options: sealed, Created: time.Now()}, m.opts.MaxRegistrations)
	if errors.Is(err, storage.ErrQuotaExceeded) {
		return nil, stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint,
			Text: fmt.Sprintf("at most %d push registrations per account: disable one first", m.opts.MaxRegistrations)}
	}
	if err != nil {
		return nil, err
	}
	return nil, nil
}

// disable handles XEP-0357 §6 disable.
func (m *Module) disable(ctx context.Context, iq *module.IQ) (*stanza.Element, error) {
	own, el, service, err := request(iq)
	if err != nil {
		return nil, err
	}
	_, err = m.store.DisablePush(ctx, own.String(), service.String(), el.Get("node"))
	return nil, err
}

// observe notifies when a message reached the account but no session can
// show it now.
func (m *Module) observe(ctx context.Context, p *module.Packet) (module.Verdict, error) {
	s := p.Stanza
	if s.Kind != stanza.KindMessage || (p.Target != module.ToAccount && p.Target != module.ToResource) {
		return module.Continue, nil
	}
	if s.Type != "" && s.Type != "chat" && s.Type != "normal" {
		return module.Continue, nil
	}
	own := s.To.Bare()
	if s.From.Bare() == own {
		return module.Continue, nil
	}
	for _, r := range p.Targets {
		if h, ok := r.(module.Hibernating); !ok || !h.Hibernating() {
			return module.Continue, nil // someone sees it now
		}
	}
	body, encrypted, worth := content(s)
	if !worth {
		return module.Continue, nil
	}
	regs, err := m.store.PushRegistrations(ctx, own.String())
	if err != nil || len(regs) == 0 {
		return module.Continue, err
	}
	m.mu.Lock()
	m.counts[own.String()]++
	count := m.counts[own.String()]
	m.mu.Unlock()
	for _, r := range regs {
		d := m.decide(ctx, own, r.Service, s.From, encrypted)
		if !d.Allow {
			m.log.InfoContext(ctx, "push notification refused by the policy", "service", r.Service, "reason", d.Reason, "decision_id", d.ID)
			continue
		}
		sum := summary{MessageCount: count}
		if m.opts.IncludeSender && d.IncludeSender {
			sum.Sender = s.From.Bare().String()
		}
		if m.opts.IncludeBody && d.IncludeBody && !encrypted {
			sum.Body = truncate(body, maxBodyRunes)
		}
		if r.Options != nil {
			if r.Options, err = m.sealer.Open(own.String(), sealID(r.Service, r.Node), r.Options); err != nil {
				m.log.WarnContext(ctx, "push registration's options do not open; skipped", "service", r.Service, "err", err)
				continue
			}
		}
		select {
		case m.queue <- job{owner: own.String(), reg: r, summary: sum}:
		default:
			m.log.WarnContext(ctx, "push queue full; notification dropped", "service", r.Service, "queue_size", m.opts.QueueSize)
		}
	}
	return module.Continue, nil
}

// content tells whether a message is worth waking a phone for: a body, an
// end-to-end encrypted payload, or a call being placed (XEP-0353).
func content(s *stanza.Stanza) (body string, encrypted, worth bool) {
	s.El.Children(func(c *stanza.Element) bool {
		switch {
		case c.Name.Space == stanza.NSClient && c.Name.Local == "body":
			body = c.Text()
			worth = worth || body != ""
		case c.Name.Local == "encrypted" && (c.Name.Space == "eu.siacs.conversations.axolotl" ||
			c.Name.Space == "urn:xmpp:omemo:2" || c.Name.Space == "urn:xmpp:openpgp:0"):
			encrypted, worth = true, true
		case c.Name.Space == "urn:xmpp:jingle-message:0" && c.Name.Local == "propose":
			worth = true
		}
		return true
	})
	return body, encrypted, worth
}

func truncate(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i] + "…"
		}
		n--
	}
	return s
}

// work sends queued notifications until ctx ends.
func (m *Module) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-m.queue:
			m.send(ctx, j)
		}
	}
}

// gatewayRequest is the JSON the gateway receives.
type gatewayRequest struct {
	Service        string            `json:"service"`
	Node           string            `json:"node"`
	PublishOptions map[string]string `json:"publish_options,omitempty"`
	Summary        summary           `json:"summary"`
	IQ             string            `json:"iq"`
}

// notification builds the XEP-0357 §7 publish IQ and the gateway's request
// for one registration. options is the sealed-then-opened publish-options
// form (nil for none).
func notification(owner string, service, node string, options []byte, sum summary, id string) (gatewayRequest, *stanza.Stanza, error) {
	req := gatewayRequest{Service: service, Node: node, Summary: sum}
	fields := []dataform.Field{{Var: "message-count", Values: []string{fmt.Sprint(sum.MessageCount)}}}
	if sum.Sender != "" {
		fields = append(fields, dataform.Field{Var: "last-message-sender", Values: []string{sum.Sender}})
	}
	if sum.Body != "" {
		fields = append(fields, dataform.Field{Var: "last-message-body", Values: []string{sum.Body}})
	}
	pub := stanza.New(NSPubSub, "pubsub").Append(
		stanza.New(NSPubSub, "publish").Set("node", node).Append(
			stanza.New(NSPubSub, "item").Append(
				stanza.New(NS, "notification").Append(dataform.New(dataform.TypeSubmit, NSSummary, fields...).Element()))))
	if options != nil {
		el, err := parseForm(options)
		if err != nil {
			return req, nil, err
		}
		form, err := dataform.Parse(el)
		if err != nil {
			return req, nil, err
		}
		req.PublishOptions = map[string]string{}
		for _, f := range form.Fields {
			if f.Var != dataform.FormTypeVar && len(f.Values) > 0 {
				req.PublishOptions[f.Var] = f.Values[0]
			}
		}
		pub.Append(stanza.New(NSPubSub, "publish-options").Append(el))
	}
	from, err := jid.Parse(owner)
	if err != nil {
		return req, nil, err
	}
	to, err := jid.Parse(service)
	if err != nil {
		return req, nil, err
	}
	iq := stanza.NewIQ(from, to, "set", id, pub)
	req.IQ = iq.El.String()
	return req, iq, nil
}

// viaGateway tells whether service's notifications go to the gateway.
func (m *Module) viaGateway(service string) bool {
	if m.opts.GatewayURL == "" {
		return false
	}
	for _, s := range m.opts.GatewayServices {
		if s == "*" || s == service {
			return true
		}
		if j, err := jid.Parse(s); err == nil && j.String() == service {
			return true // the registration holds the JID in its normal form
		}
	}
	return false
}

func (m *Module) send(ctx context.Context, j job) {
	req, iq, err := notification(j.owner, j.reg.Service, j.reg.Node, j.reg.Options, j.summary, newID())
	if err != nil {
		m.log.WarnContext(ctx, "push notification not built", "service", j.reg.Service, "err", err)
		return
	}
	if !m.viaGateway(j.reg.Service) {
		m.publish(ctx, j, iq)
		return
	}
	body, err := json.Marshal(req)
	if err != nil {
		m.log.WarnContext(ctx, "push notification not encoded", "err", err)
		return
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, m.opts.GatewayURL, bytes.NewReader(body))
	if err != nil {
		m.log.WarnContext(ctx, "push gateway request", "err", err)
		return
	}
	hr.Header.Set("Content-Type", "application/json")
	if m.token != "" {
		hr.Header.Set("Authorization", "Bearer "+m.token)
	}
	resp, err := m.client.Do(hr)
	if err != nil {
		m.log.WarnContext(ctx, "push gateway unreachable; notification lost", "service", j.reg.Service, "err", err)
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		// XEP-0357 §8: the app server no longer knows the node.
		if _, err := m.store.DisablePush(ctx, j.owner, j.reg.Service, j.reg.Node); err != nil {
			m.log.WarnContext(ctx, "push registration the gateway rejected not disabled", "service", j.reg.Service, "err", err)
			return
		}
		m.log.InfoContext(ctx, "push registration disabled: the app server no longer knows it", "service", j.reg.Service, "status", resp.StatusCode)
	default:
		m.log.WarnContext(ctx, "push gateway refused the notification", "service", j.reg.Service, "status", resp.StatusCode)
	}
}

// publish sends the publish IQ over XMPP and remembers it until its reply
// or its deadline.
func (m *Module) publish(ctx context.Context, j job, iq *stanza.Stanza) {
	m.pmu.Lock()
	if len(m.pending) >= m.opts.QueueSize {
		m.pmu.Unlock()
		m.log.WarnContext(ctx, "too many push notifications wait for their app server; notification dropped",
			"service", j.reg.Service, "queue_size", m.opts.QueueSize)
		return
	}
	m.pending[iq.ID] = publish{owner: j.owner, service: j.reg.Service, node: j.reg.Node, deadline: time.Now().Add(m.opts.Timeout)}
	m.pmu.Unlock()
	// A route that fails at once (no such domain, a component that is not
	// connected) comes back as an error reply, through reply.
	m.host.Route(ctx, iq)
}

// transient are error conditions that say the way to the app server
// failed, not that the app server refused the registration.
var transient = map[string]bool{
	stanza.RemoteServerNotFound: true,
	stanza.RemoteServerTimeout:  true,
	stanza.ServiceUnavailable:   true,
	stanza.InternalServerError:  true,
}

// reply takes an app server's answer to a publish off the Inbound chain.
func (m *Module) reply(ctx context.Context, p *module.Packet) (module.Verdict, error) {
	s := p.Stanza
	if s.Kind != stanza.KindIQ || (s.Type != "result" && s.Type != "error") || p.Target != module.ToAccount ||
		!strings.HasPrefix(s.ID, idPrefix) {
		return module.Continue, nil
	}
	m.pmu.Lock()
	pub, ok := m.pending[s.ID]
	ok = ok && pub.owner == s.To.String() && pub.service == s.From.String()
	if ok {
		delete(m.pending, s.ID)
	}
	m.pmu.Unlock()
	if !ok {
		return module.Continue, nil
	}
	if s.Type == "result" {
		return module.Drop, nil
	}
	e, _ := stanza.ErrorOf(s)
	if e.Type == stanza.Wait || transient[e.Condition] {
		m.log.WarnContext(ctx, "push notification not delivered; registration kept", "service", pub.service,
			"error_type", string(e.Type), "condition", e.Condition)
		return module.Drop, nil
	}
	// XEP-0357 §7.1: an error disables the JID and node.
	if _, err := m.store.DisablePush(ctx, pub.owner, pub.service, pub.node); err != nil {
		m.log.WarnContext(ctx, "push registration the app server refused not disabled", "service", pub.service, "err", err)
		return module.Drop, nil
	}
	m.log.InfoContext(ctx, "push registration disabled: the app server refused the notification", "service", pub.service,
		"error_type", string(e.Type), "condition", e.Condition)
	return module.Drop, nil
}

// expire forgets publishes whose reply did not come in time.
func (m *Module) expire(ctx context.Context) {
	tick := time.NewTicker(min(max(m.opts.Timeout/4, 25*time.Millisecond), time.Second))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			var late []publish
			m.pmu.Lock()
			for id, p := range m.pending {
				if now.After(p.deadline) {
					late = append(late, p)
					delete(m.pending, id)
				}
			}
			m.pmu.Unlock()
			for _, p := range late {
				m.log.WarnContext(ctx, "app server did not answer a push notification in time", "service", p.service, "timeout", m.opts.Timeout)
			}
		}
	}
}

// waiting is the number of publishes waiting for their reply.
func (m *Module) waiting() int {
	m.pmu.Lock()
	defer m.pmu.Unlock()
	return len(m.pending)
}

// parseForm reads back a stored publish-options form.
func parseForm(b []byte) (*stanza.Element, error) {
	return xmlstream.ParseElement(b, xmlstream.Limits{MaxStanzaBytes: len(b) + 1024})
}

const idPrefix = "push-"

// newID is a random IQ id.
func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return idPrefix + hex.EncodeToString(b[:])
}

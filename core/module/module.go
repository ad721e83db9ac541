// Package module is the contract between Kontor's core and its protocol
// features. A feature lives in its own package under core/mod/, registers
// an Info from init (without side effects), and, when a virtual host enables
// it, gets a Host through which it declares everything it does: IQ handlers,
// hooks on the stanza path, event subscriptions, disco features, stream
// features and goroutines. The host undoes all of it when the module stops.
//
// Hooks are ordered by named Phase (Filter, Policy, Process, Deliver,
// Observe), never by numbers; inside a phase, by the order modules were
// enabled. Modules never import each other: they meet through these hooks,
// events and the router.
//
// A module may also serve a domain of its own, a component such as
// conference.example.com (Host.ServeDomain): the router hands it every
// stanza addressed to that domain, after the sender's Outbound chain, in
// place of the Remote seam; what the component sends to local users it
// sends with Host.Route, so that it walks their Inbound chain like any
// other stanza. A component answers its own IQs and disco. The host lists
// it in its disco#items through AddDisco (Disco.Items).
//
// The protocol support a module declares (Specs) is data: it feeds service
// discovery, `kontor modules` and the README's protocol table, so that the
// documentation cannot drift from the code.
package module

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

// Status says how completely a module implements a specification.
type Status string

const (
	Complete Status = "complete"
	Partial  Status = "partial"
)

// Spec is one specification a module implements.
type Spec struct {
	ID      string // "RFC 6121" or "XEP-0030"
	Name    string // "Service Discovery"
	Version string // the XEP version implemented, "" for RFCs
	Status  Status
	Note    string // what is missing, for Partial
}

// Info describes a module. It must be cheap to build and free of side
// effects: it is read to list modules and to generate documentation.
type Info struct {
	ID          string // the config key, e.g. "roster"
	Description string
	Specs       []Spec
	Requires    []string // IDs of modules that must be enabled too
	// Default modules are enabled when the configuration does not list
	// modules explicitly.
	Default bool
	New     func() Module
}

// Module is one feature, instantiated once per virtual host.
type Module interface {
	// Provision declares the module's handlers. It runs once, before the host
	// accepts traffic; an error keeps the server from starting.
	Provision(h Host) error
}

// Configurable modules expose a pointer to their typed options, filled with
// defaults; the host decodes the module's configuration section into it
// (unknown keys are errors) before Provision, then calls Validate if the
// options implement it.
type Configurable interface {
	Options() any
}

// Validator is implemented by options that check their own values.
type Validator interface {
	Validate() error
}

// Stopper is implemented by modules that have something to release beyond
// what the host tracks.
type Stopper interface {
	Stop(ctx context.Context) error
}

var (
	regMu    sync.RWMutex
	registry = map[string]Info{}
)

// Register adds a module type. It panics on a duplicate or incomplete Info:
// that is a programming error found at start.
func Register(info Info) {
	if info.ID == "" || info.New == nil {
		panic("module: Register needs an ID and a constructor")
	}
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := registry[info.ID]; dup {
		panic(fmt.Sprintf("module: %q registered twice", info.ID))
	}
	registry[info.ID] = info
}

// Lookup returns a registered module type.
func Lookup(id string) (Info, bool) {
	regMu.RLock()
	defer regMu.RUnlock()
	i, ok := registry[id]
	return i, ok
}

// All returns every registered module type, ordered by ID.
func All() []Info {
	regMu.RLock()
	defer regMu.RUnlock()
	out := make([]Info, 0, len(registry))
	for _, i := range registry {
		out = append(out, i)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out
}

// Chain names a point of the stanza path where hooks run.
type Chain uint8

const (
	// Outbound runs for every stanza a local client sends, after the server
	// stamped its 'from', before it is routed anywhere.
	Outbound Chain = iota
	// Inbound runs for every stanza addressed to a local account, one of its
	// resources, or the host itself, wherever it came from.
	Inbound
	numChains
)

// NumChains is the number of chains, for tables indexed by Chain.
const NumChains = int(numChains)

func (c Chain) String() string {
	switch c {
	case Outbound:
		return "outbound"
	case Inbound:
		return "inbound"
	}
	return "chain?"
}

// Phase orders hooks within a chain.
type Phase uint8

const (
	// Filter drops or rewrites what must not go further (blocking, limits).
	Filter Phase = iota
	// Policy decides whether the sender may reach the recipient.
	Policy
	// Process is where features act on stanzas addressed to them.
	Process
	// Deliver runs (Inbound only) after the router chose the recipient
	// resources (Packet.Targets), which hooks may change: carbons add
	// copies, offline storage takes messages nobody can receive.
	Deliver
	// Observe sees what was delivered or taken care of (archive, metrics).
	// Its verdicts are ignored.
	Observe
	numPhases
)

// NumPhases is the number of phases, for tables indexed by Phase.
const NumPhases = int(numPhases)

func (p Phase) String() string {
	return [...]string{"filter", "policy", "process", "deliver", "observe", "phase?"}[min(int(p), int(numPhases))]
}

// Verdict is what a hook decided.
type Verdict uint8

const (
	// Continue lets the stanza go on.
	Continue Verdict = iota
	// Done means the hook took care of the stanza: nothing more is done
	// with it except the Observe phase.
	Done
	// Drop discards the stanza silently; not even Observe sees it.
	Drop
)

// Target says what a stanza is addressed to.
type Target uint8

const (
	// ToHost: the server itself (to is the domain).
	ToHost Target = iota
	// ToAccount: a local account's bare JID (or no 'to' from a client,
	// which means its own account).
	ToAccount
	// ToResource: a full JID of a local account.
	ToResource
	// ToRemote: another domain.
	ToRemote
)

// Packet is a stanza on its way through a chain. Hooks before the Deliver
// phase may replace Stanza (use Stanza.Readdress or Clone; never change a
// stanza in place once another hook or session may hold it) and change
// Target, for example to treat a subscription stanza sent to a full JID as
// sent to the bare JID: the router reads both after the Process phase.
type Packet struct {
	Stanza *stanza.Stanza
	// Origin is the local session that sent the stanza, or nil (from the
	// server itself, a module, or another server).
	Origin Resource
	Target Target
	// AccountExists is set on the Inbound chain for ToAccount and
	// ToResource: whether the local account exists.
	AccountExists bool
	// Targets are the resources the router chose for delivery (Inbound,
	// from the Deliver phase on).
	Targets []Resource
	// Redelivery is set when the server routes again a message it had
	// already routed to this account: a session ended before its client
	// acknowledged it (XEP-0198), and the message goes to the account's
	// other resources or to offline storage. What the first pass added
	// (the archive's stanza-id, a delay stamp) is the server's own, and
	// the message is already archived: hooks must not treat it as new.
	Redelivery bool
}

// HookFunc is a hook. A stanza.Error result is returned to the sender as an
// error stanza (for stanzas that may be answered) and ends the chain; any
// other error becomes internal-server-error, logged once with an opaque id.
type HookFunc func(ctx context.Context, p *Packet) (Verdict, error)

// IQType is get or set.
type IQType string

const (
	Get IQType = "get"
	Set IQType = "set"
)

// IQHandler answers an IQ get or set. It returns the payload of the result
// (nil for an empty result), or an error as for HookFunc. The host sends the
// reply.
type IQHandler func(ctx context.Context, iq *IQ) (*stanza.Element, error)

// IQ is an IQ request with its context.
type IQ struct {
	*stanza.Stanza
	// Origin is the local session that sent it, or nil.
	Origin Resource
	// Target is ToHost or ToAccount.
	Target Target
}

// Resource is a bound client session as modules see it.
type Resource interface {
	JID() jid.JID
	// Presence is the last available presence the client sent, nil when the
	// resource is not available (no initial presence yet, or it went
	// unavailable).
	Presence() *stanza.Stanza
	// Priority is the priority of Presence (0 when none).
	Priority() int
	// Send queues a stanza for the client. It never blocks; a session whose
	// queue is full is closed with resource-constraint.
	Send(s *stanza.Stanza)
	// Value and SetValue hold per-session state of modules, keyed by a
	// value of a type private to the module.
	Value(key any) any
	SetValue(key, value any)
	// Close ends the session with a stream error.
	Close(err *stanza.StreamError)
}

// Hibernating is implemented by every Resource: Hibernating reports
// whether the session has lost its connection and waits to be resumed
// (XEP-0198). Such a resource still takes stanzas (they wait in its queue
// and reach the client when it resumes), but its user does not see them
// now: push notifications (XEP-0357) go out for it.
type Hibernating interface {
	Hibernating() bool
}

// EventKind names what happened to a session or account.
type EventKind uint8

const (
	// SessionBound: a resource was bound (not yet available).
	SessionBound EventKind = iota
	// SessionAvailable: the resource sent its first available presence.
	SessionAvailable
	// SessionUnavailable: the resource sent unavailable presence and stays
	// connected.
	SessionUnavailable
	// SessionClosed: the session ended. Presence holds what it was.
	SessionClosed
	numEvents
)

// NumEvents is the number of event kinds.
const NumEvents = int(numEvents)

// Event is a session event.
type Event struct {
	Kind     EventKind
	Resource Resource
	// Presence is the presence involved (the new one for Available, the
	// last one for Closed and Unavailable), or nil.
	Presence *stanza.Stanza
	// Status is the status text of the unavailable presence, if any.
	Status string
}

// Identity is a disco#info identity.
type Identity struct {
	Category, Type, Name string
}

// Disco is what a host or account says about itself in disco#info.
type Disco struct {
	Identities []Identity
	Features   []string
	// Forms are XEP-0128 extended info forms (e.g. XEP-0157 contacts).
	Forms []*stanza.Element
	// Items are what disco#items lists (the host's components).
	Items []DiscoItem
}

// DiscoItem is one disco#items entry.
type DiscoItem struct {
	JID  jid.JID
	Name string
}

// DomainHandler receives a stanza addressed to a domain a module serves
// (Host.ServeDomain). p.Target is ToRemote, as for any domain that is not a
// virtual host; p.Origin is the local session that sent it, or nil. It runs
// in the sender's goroutine, so it must not block for long. A stanza.Error
// result is returned to the sender as an error stanza (when the stanza may
// be answered); any other error becomes internal-server-error.
type DomainHandler func(ctx context.Context, p *Packet) error

// Sealer seals message content before it is stored, with the owner and an
// id bound as associated data, and opens it again. The archive's envelope
// encryption implements it; the host provides one to modules.
type Sealer interface {
	Seal(owner string, id []byte, plaintext []byte) ([]byte, error)
	Open(owner string, id []byte, sealed []byte) ([]byte, error)
}

// Archive is the message archive as modules see it: the archive package
// implements it (envelope encryption, retention, storage) and the MAM module
// uses it. Content crosses this interface in the clear; the archive seals it
// before it is stored.
type Archive interface {
	// Append queues a message for the archive of its owner. It is
	// batched and must not block routing for longer than a queue insert;
	// when the queue is full it blocks or fails as configured, and never
	// drops silently.
	Append(ctx context.Context, m ArchivedMessage) error
	// Query returns one page of an owner's archive.
	Query(ctx context.Context, q ArchiveQuery) (ArchivePage, error)
	// Prefs and SetPrefs hold an owner's archiving preferences (XEP-0313
	// §6).
	Prefs(ctx context.Context, owner string) (ArchivePrefs, error)
	SetPrefs(ctx context.Context, owner string, p ArchivePrefs) error
}

// ArchivedMessage is one message in one owner's archive (a one-to-one
// message is archived twice: once for each party). The caller sets ID to a
// canonical lowercase UUIDv7 (RFC 9562); archive order is ID order; Time is
// within a minute of the ID's time (zero: the ID's time); appending an ID
// the owner already has is ignored, so retries are safe. Errors from the
// archive wrap a stanza.Error the caller may return as it is.
type ArchivedMessage struct {
	// ID is the archive id, also the XEP-0359 stanza-id the owner sees:
	// unique per owner, opaque to clients.
	ID        string
	Owner     string // bare JID whose archive this is
	With      string // the other party's JID, with the resource when known
	Outgoing  bool   // sent by Owner
	Time      time.Time
	Stanza    []byte // the serialised message as delivered, in the clear here
	Encrypted bool   // end-to-end encrypted (the archive cannot read the body)
	// Restricted marks a message an erasure had to keep (GDPR Art. 18);
	// Archiver.Query never returns one, only the DPO's tools see them.
	Restricted bool
}

// ArchiveQuery selects messages of one owner, in archive order.
type ArchiveQuery struct {
	Owner string
	// With filters by the other party: a bare JID matches every resource,
	// a full JID only that one. "" for all.
	With       string
	Start, End time.Time // inclusive bounds; zero for none
	// AfterID and BeforeID are exclusive bounds (XEP-0313 after-id and
	// before-id, and XEP-0059 after/before ids). Only Last sets the
	// direction: the page nearest the end of the range (RSM <before/>,
	// empty or with an id); otherwise the page nearest its start. An
	// unknown id is an error wrapping storage.ErrNotFound.
	AfterID, BeforeID string
	Last              bool
	IDs               []string // only these ids (urn:xmpp:mam:2#extended)
	Max               int      // page size, capped by the archive
}

// ArchivePage is one page of results, oldest first.
type ArchivePage struct {
	Messages []ArchivedMessage
	// Complete is true when this page reaches the end of the result set in
	// the direction of paging.
	Complete bool
	// Count is the total number of matching messages, or -1 if unknown.
	Count int
}

// ArchivePrefs are XEP-0313 preferences.
type ArchivePrefs struct {
	Default string   // "always", "never" or "roster"; "" when never set
	Always  []string // bare JIDs always archived
	Never   []string // bare JIDs never archived
}

// Host is what a module sees of its virtual host.
type Host interface {
	// Domain is the host's domain JID.
	Domain() jid.JID
	// Logger is the module's logger (module and domain attributes set).
	Logger() *slog.Logger
	Store() storage.Store
	Sealer() Sealer
	// Archive is the message archive, or nil when archiving is off.
	Archive() Archive

	// HandleIQ registers the handler for IQs of type typ whose payload is
	// named payload, addressed to target (ToHost or ToAccount). It panics
	// if another handler has the same key: a programming error.
	HandleIQ(target Target, typ IQType, payload stanza.Name, h IQHandler)
	// Hook adds a hook to a chain at a phase.
	Hook(c Chain, p Phase, h HookFunc)
	// On subscribes to session events of this host's accounts.
	On(kind EventKind, fn func(ctx context.Context, ev Event))
	// AddDisco adds to what disco#info reports for target (ToHost or
	// ToAccount).
	AddDisco(target Target, d Disco)
	// AddStreamFeature adds a stream feature offered to clients after
	// authentication; fn is called per stream and may return nil.
	AddStreamFeature(fn func() *stanza.Element)
	// Go runs fn in a goroutine tracked by the host; ctx ends when the
	// module stops, and the host waits for fn to return.
	Go(name string, fn func(ctx context.Context))
	// HandleHTTP registers h on the server's HTTPS listener (the "http"
	// section of the configuration) under a path prefix ending in "/",
	// e.g. "/upload/"; h sees the full path. With several hosts, a request
	// goes to the host its Host header names (or the only host). It panics
	// if the host already has a handler for pattern: a programming error.
	// Handlers are registered even when the listener is off; they are then
	// never called.
	HandleHTTP(pattern string, h http.Handler)
	// HTTPBaseURL is the public base URL of the HTTPS listener for this
	// host, without a trailing slash ("https://chat.example.com:5443"), or
	// "" when the listener is off.
	HTTPBaseURL() string

	// Route sends a stanza from the server or on a user's behalf through the
	// normal path (Inbound hooks for local recipients).
	Route(ctx context.Context, s *stanza.Stanza)
	// Resources returns the bound resources of a local account (a snapshot).
	Resources(bare jid.JID) []Resource
	// SetPresence records a resource's presence (nil for unavailable) and
	// fires SessionAvailable or SessionUnavailable on transitions.
	SetPresence(ctx context.Context, r Resource, p *stanza.Stanza)
	// DiscoInfo returns the merged disco#info of the host or an account.
	DiscoInfo(target Target) Disco
	// IsLocal reports whether domain is served by this server.
	IsLocal(domain string) bool
	// ServeDomain makes the module the component for domain (a bare domain
	// other than every virtual host, usually a subdomain such as
	// conference.example.com): stanzas addressed to it or to any JID at it
	// go to h instead of the Remote seam. It is an error if domain is
	// invalid, a virtual host, or served already. IsLocal stays false for
	// it: its JIDs are not accounts.
	ServeDomain(domain string, h DomainHandler) error
	// ServedBy returns the ID of the module serving domain
	// (ServeDomain), or "" when no module serves it.
	ServedBy(domain string) string
}

func (t Target) String() string {
	return [...]string{"host", "account", "resource", "remote", "target?"}[min(int(t), 4)]
}

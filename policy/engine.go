package policy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	_ "time/tzdata" // Europe/Berlin must resolve in a container without /usr/share/zoneinfo

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"

	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/directory"
	"kontor.im/kontor/core/gate"
)

// DefaultTimeout bounds one uncached decision. Decisions take tens of
// microseconds; one that takes this long is a policy bug, and the stanza
// path must not wait for it.
const DefaultTimeout = 250 * time.Millisecond

// DefaultTimezone is the calendar of "end of the year" retention periods.
const DefaultTimezone = "Europe/Berlin"

// kind is a decision.
type kind uint8

const (
	kindContact kind = iota
	kindRetention
	kindAccess
	kindE2EE
	kindRegistration
	kindUpload
	kindPush
	numKinds
)

type kindInfo struct {
	kind  kind
	name  string // as `kontor policy eval --decision` spells it
	query string
	ref   ast.Ref
	// cacheable decisions depend only on their input, the policy and the
	// directory.
	cacheable bool
}

var kinds = func() []kindInfo {
	out := []kindInfo{
		{kind: kindContact, name: "contact", query: "data.kontor.contact.decision", cacheable: true},
		{kind: kindRetention, name: "retention", query: "data.kontor.retention.decision", cacheable: true},
		{kind: kindAccess, name: "access", query: "data.kontor.access.decision"},
		{kind: kindE2EE, name: "e2ee", query: "data.kontor.e2ee.decision", cacheable: true},
		{kind: kindRegistration, name: "registration", query: "data.kontor.registration.decision"},
		{kind: kindUpload, name: "upload", query: "data.kontor.upload.decision"},
		{kind: kindPush, name: "push", query: "data.kontor.push.decision", cacheable: true},
	}
	for i := range out {
		out[i].ref = ast.MustParseRef(out[i].query)
	}
	return out
}()

func (k kind) String() string { return kinds[k].name }

// Decisions lists the decisions by name.
func Decisions() []string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = k.name
	}
	return out
}

// Options configure an Engine.
type Options struct {
	// Dir holds .rego files that add to or replace the embedded bundle
	// ("" for the bundle alone).
	Dir string
	// Watch reloads the policy when a file in Dir changes.
	Watch    bool
	Settings Settings
	// Location is the calendar of retention periods (default
	// Europe/Berlin).
	Location *time.Location
	// Timeout bounds one decision (default DefaultTimeout).
	Timeout time.Duration
	// CacheSize is the number of decision cache slots, rounded up to a
	// power of two (0: DefaultCacheSize; negative: no cache).
	CacheSize int
	// Logger gets the engine's log (nil: none).
	Logger *slog.Logger
	// Audit gets every refusal and every access decision (nil: none, for
	// the CLI).
	Audit audit.Log
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Engine makes decisions with an embedded OPA. It is safe for concurrent
// use. Its whole prepared state (compiled policy, directory data, prepared
// queries, cache) sits behind one atomic pointer: a reload or a directory
// update builds a new state and swaps it in, and a decision that loaded
// the old state finishes on it.
//
// Lock order: Engine.mu (held while a new state is built) is never held
// during a decision and never taken by one. A decision takes no lock on a
// cache hit (atomic loads only); state.standInMu is a leaf.
type Engine struct {
	opts     Options
	log      *slog.Logger
	audit    audit.Log
	loc      *time.Location
	settings []byte // canonical JSON, part of the revision
	now      func() time.Time
	idPrefix string
	seq      atomic.Uint64
	state    atomic.Pointer[state]

	mu       sync.Mutex // serialises rebuilds; guards dir, lastErr, loadedAt
	dir      *dirData
	lastErr  error
	loadedAt time.Time

	watch *watcher
}

// state is one prepared, immutable generation of the engine.
type state struct {
	pol     *compiled
	dir     *dirData
	queries [numKinds]rego.PreparedEvalQuery
	cache   *decisionCache // nil: not cacheable
	// unknownLocal is the kind of local accounts the directory does not
	// know, as a term for stand-in parties.
	unknownLocal *ast.Term
	// standIns are the party objects of people the directory does not
	// know, built once each, up to maxStandIns (then built per decision).
	// standInMu is a leaf lock.
	standInMu sync.RWMutex
	standIns  map[gate.Party]*ast.Term
}

const maxStandIns = 8192

// New loads the policy (the embedded bundle plus opts.Dir) and prepares
// every decision. An invalid policy is a *LoadError listing each problem
// with file and line.
func New(ctx context.Context, opts Options) (*Engine, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Location == nil {
		loc, err := time.LoadLocation(DefaultTimezone)
		if err != nil {
			return nil, fmt.Errorf("policy: time zone: %w", err)
		}
		opts.Location = loc
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	switch opts.Settings.UnknownLocalKind {
	case "", directory.Employee, directory.Guest, directory.External:
	default:
		return nil, fmt.Errorf("policy: unknown_local_kind %q is not employee, guest or external", opts.Settings.UnknownLocalKind)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	e := &Engine{
		opts: opts, log: opts.Logger, audit: opts.Audit, loc: opts.Location,
		settings: opts.Settings.canonical(), now: opts.Now,
		idPrefix: "d" + hex.EncodeToString(b[:]) + "-",
		dir:      emptyDirectory(),
	}
	files, err := readSources(opts.Dir)
	if err != nil {
		return nil, err
	}
	pol, err := compilePolicy(files, false, e.settings)
	if err != nil {
		return nil, err
	}
	st, err := e.build(ctx, pol, e.dir)
	if err != nil {
		return nil, err
	}
	e.state.Store(st)
	e.loadedAt = e.now()
	if len(pol.nondeterministic) > 0 {
		e.log.Warn("policy uses nondeterministic builtins; decisions are not cached", "builtins", pol.nondeterministic)
	}
	if opts.Watch && opts.Dir != "" {
		if e.watch, err = startWatcher(e, opts.Dir); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// Close stops watching the policy directory.
func (e *Engine) Close() error {
	if e.watch != nil {
		e.watch.stop()
	}
	return nil
}

// build prepares every decision of pol against dir.
func (e *Engine) build(ctx context.Context, pol *compiled, dir *dirData) (*state, error) {
	store := inmem.NewFromASTObject(dataDocument(dir, e.opts.Settings))
	st := &state{pol: pol, dir: dir, standIns: map[gate.Party]*ast.Term{},
		unknownLocal: ast.StringTerm(string(e.opts.Settings.normalized().UnknownLocalKind))}
	for _, k := range kinds {
		pq, err := rego.New(
			rego.Query(k.query),
			rego.Compiler(pol.compiler),
			rego.Store(store),
		).PrepareForEval(ctx)
		if err != nil {
			return nil, fmt.Errorf("policy: prepare %s: %w", k.name, err)
		}
		st.queries[k.kind] = pq
	}
	if e.opts.CacheSize > 0 && len(pol.nondeterministic) == 0 {
		st.cache = newDecisionCache(e.opts.CacheSize)
	}
	return st, nil
}

// Reload reads the policy files again and, if they compile, swaps them in;
// otherwise the last good policy stays active and the error (a *LoadError
// with file and line for an invalid policy) is returned and remembered for
// Status. The admin API calls it; the directory watcher too. actor is who
// asked, for the audit trail.
func (e *Engine) Reload(ctx context.Context, actor string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.state.Load()
	files, err := readSources(e.opts.Dir)
	var pol *compiled
	if err == nil {
		pol, err = compilePolicy(files, false, e.settings)
	}
	var st *state
	if err == nil && pol.revision != old.pol.revision {
		st, err = e.build(ctx, pol, e.dir)
	}
	if err != nil {
		e.lastErr = err
		e.log.ErrorContext(ctx, "policy reload failed; the last good policy stays active", "err", err, "revision", old.pol.revision)
		return err
	}
	e.lastErr = nil
	if st == nil {
		return nil // unchanged
	}
	e.state.Store(st)
	e.loadedAt = e.now()
	e.log.InfoContext(ctx, "policy loaded", "revision", pol.revision, "previous", old.pol.revision, "files", len(pol.files))
	if len(pol.nondeterministic) > 0 {
		e.log.WarnContext(ctx, "policy uses nondeterministic builtins; decisions are not cached", "builtins", pol.nondeterministic)
	}
	if e.audit != nil {
		if actor == "" {
			actor = "system"
		}
		_, aerr := e.audit.Append(ctx, audit.Entry{Actor: actor, Action: "policy.load", Subject: e.opts.Dir,
			PolicyRevision: pol.revision, Details: map[string]string{"previous_revision": old.pol.revision, "files": strconv.Itoa(len(pol.files))}})
		if aerr != nil {
			e.log.ErrorContext(ctx, "policy: audit append failed", "action", "policy.load", "err", aerr)
		}
	}
	return nil
}

// UpdateDirectory implements directory.Sink: the people, their flattened
// groups and sponsors become the policies' data.kontor.directory, and the
// decision cache starts empty.
func (e *Engine) UpdateDirectory(ctx context.Context, s directory.Snapshot) error {
	d := newDirData(s)
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.state.Load()
	if s.Revision != "" && s.Revision == e.dir.revision {
		return nil
	}
	st, err := e.build(ctx, old.pol, d)
	if err != nil {
		return err
	}
	e.dir = d
	e.state.Store(st)
	e.log.InfoContext(ctx, "policy directory data updated", "directory_revision", s.Revision, "people", d.people, "skipped", d.skipped)
	return nil
}

var _ directory.Sink = (*Engine)(nil)

// Status is what `kontor policy show` and the admin API report.
type Status struct {
	Revision          string    `json:"revision"`
	Files             []File    `json:"files"`
	LoadedAt          time.Time `json:"loaded_at"`
	DirectoryRevision string    `json:"directory_revision"`
	People            int       `json:"people"`
	// Cached is whether decisions are cached; NondeterministicBuiltins say
	// why not.
	Cached                   bool     `json:"cached"`
	NondeterministicBuiltins []string `json:"nondeterministic_builtins,omitempty"`
	// LastError is why the last reload failed ("" when it did not).
	LastError string `json:"last_error,omitempty"`
}

// Status reports the policy in force.
func (e *Engine) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.state.Load()
	s := Status{Revision: st.pol.revision, LoadedAt: e.loadedAt, DirectoryRevision: st.dir.revision,
		People: st.dir.people, Cached: st.cache != nil, NondeterministicBuiltins: st.pol.nondeterministic}
	for _, f := range st.pol.files {
		if !f.Test {
			s.Files = append(s.Files, f)
		}
	}
	if e.lastErr != nil {
		s.LastError = e.lastErr.Error()
	}
	return s
}

// Revision is the hash of the policy in force.
func (e *Engine) Revision() string { return e.state.Load().pol.revision }

func (e *Engine) newID() string {
	return e.idPrefix + strconv.FormatUint(e.seq.Add(1), 36)
}

var (
	errUndefined = errors.New("policy: the decision is undefined for this input")
	noMetrics    = metrics.NoOp()
)

// rawValue hands results over as AST values, skipping OPA's conversion to
// Go maps: the decoder reads the few fields it needs straight from them.
func rawValue(t *ast.Term, _ *rego.EvalContext) (any, error) { return t.Value, nil }

// eval runs one prepared decision on input within the engine's deadline.
func (e *Engine) eval(ctx context.Context, st *state, k kind, input ast.Value) (ast.Value, error) {
	ctx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
	defer cancel()
	// OPA would start a goroutine per evaluation to watch ctx; a callback
	// registered on ctx does the same for less.
	c := topdown.NewCancel()
	stop := context.AfterFunc(ctx, c.Cancel)
	defer stop()
	rs, err := st.queries[k].Eval(ctx,
		rego.EvalParsedInput(input),
		rego.EvalExternalCancel(c),
		rego.EvalMetrics(noMetrics),
		rego.EvalGenerateJSON(rawValue),
	)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("policy: %s: %w", k, ctx.Err())
		}
		return nil, fmt.Errorf("policy: %s: %w", k, err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, errUndefined
	}
	v, ok := rs[0].Expressions[0].Value.(ast.Value)
	if !ok {
		return nil, fmt.Errorf("policy: %s: unexpected result type %T", k, rs[0].Expressions[0].Value)
	}
	return v, nil
}

package ldapsync

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/directory"
	"kontor.im/kontor/core/storage"
)

// Store is what directory sync reads and writes: accounts (created without
// credentials, disabled, deleted), rosters (shared groups), vCards (the
// directory's attributes and photo) and its own state.
type Store interface {
	storage.Accounts
	storage.Roster
	storage.VCards
	storage.LDAPState
	storage.FASTTokens // revoked when the directory changes a password
}

// Erasures knows who was erased (GDPR Art. 17): a sync does not create an
// account again for an entry of an erased person, and reports it as
// "erased, skipped" until a data protection officer allows re-creation.
// cmd/kontor wires archive/gdpr's erasure tombstones in.
type Erasures interface {
	// ErasedMatcher returns what tells whether the entry with this JID
	// and stable id belongs to an erased person; a sync calls it once. An
	// error stops the sync: creating accounts blind could bring an erased
	// person back.
	ErasedMatcher(ctx context.Context) (func(jid, stableID string) bool, error)
}

// RosterPusher tells a running server that the sync changed a roster item,
// so that it pushes it to the owner's online resources (RFC 6121 §2.1.6).
// A sync run from the CLI has none: clients see the change at their next
// roster request, through roster versioning.
type RosterPusher interface {
	PushRosterItem(owner string, item storage.RosterItem, ver int64)
	PushRosterRemoval(owner, contact string, ver int64)
}

// Options build a Syncer.
type Options struct {
	Config Config // as configured; flavor defaults are filled in
	// Domain is the XMPP domain of directory accounts.
	Domain string
	Store  Store
	Client *Client
	Log    *slog.Logger
	// Sink receives the directory after every sync that changed it (and
	// after the first sync of a process); optional.
	Sink directory.Sink
	// Audit receives a summary of every sync that is not a dry run;
	// optional.
	Audit  audit.Log
	Pusher RosterPusher
	// Erasures says who was erased (GDPR Art. 17): their entries are
	// skipped, not recreated. Optional (nil: nobody).
	Erasures Erasures
	// Now is the clock (tests); time.Now when nil.
	Now func() time.Time
}

// Syncer reads the directory and brings accounts, rosters and vCards in
// line with it. It is safe for concurrent use; syncs run one at a time,
// also across processes and cluster nodes (a lease in the store).
type Syncer struct {
	cfg    Config // resolved
	domain string
	store  Store
	client *Client
	log    *slog.Logger
	sink   directory.Sink
	audit  audit.Log
	pusher RosterPusher
	erased Erasures
	now    func() time.Time
	mapper *mapper
	holder string

	mu       sync.Mutex // held for the whole of a sync
	lastSent string     // revision of the last snapshot this process handed to the sink
	trigger  chan bool  // on-demand syncs for Run (true: full)
}

// ErrBusy is returned when another sync holds the lease.
var ErrBusy = errors.New("ldapsync: another sync is running")

// leaseTTL is how long a sync's lease lasts without renewal; it is renewed
// every leaseTTL/4 while the sync runs.
const leaseTTL = 2 * time.Minute

// NewSyncer checks the options and builds a Syncer.
func NewSyncer(o Options) (*Syncer, error) {
	if o.Store == nil || o.Client == nil || o.Log == nil {
		return nil, errors.New("ldapsync: a store, a client and a logger are required")
	}
	if o.Domain == "" {
		return nil, errors.New("ldapsync: no XMPP domain for directory accounts")
	}
	cfg := o.Config.Resolved()
	if cfg.PageSize <= 0 {
		cfg.PageSize = 500
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	host, _ := os.Hostname()
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	return &Syncer{
		cfg: cfg, domain: o.Domain, store: o.Store, client: o.Client, log: o.Log,
		sink: o.Sink, audit: o.Audit, pusher: o.Pusher, erased: o.Erasures, now: now,
		mapper:  newMapper(cfg, o.Domain),
		holder:  fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(rnd[:])),
		trigger: make(chan bool, 1),
	}, nil
}

// Mode is how a sync reads the directory.
type Mode string

const (
	// Full reads every user and group, and retires accounts whose entries
	// are gone.
	Full Mode = "full"
	// Incremental reads what changed since the last sync (uSNChanged on
	// Active Directory, entryCSN or modifyTimestamp on OpenLDAP).
	Incremental Mode = "incremental"
)

// SyncOptions say how to run one sync.
type SyncOptions struct {
	Full   bool // force a full sync
	DryRun bool // plan only: change nothing, write no marks, no audit entry
	// Reason is recorded in the audit trail ("scheduled", "kontor ldap
	// sync", ...).
	Reason   string
	Progress func(Progress)
}

// Progress reports how far a sync is, for a terminal.
type Progress struct {
	Phase string // "users", "groups", "plan", "apply"
	Done  int
	// Total is an estimate (-1: unknown): for reading, the entries of the
	// last sync.
	Total int
}

// Names of the marks kept in the store.
const (
	markFlavor    = "flavor"
	markConfig    = "config"
	markServer    = "server"
	markUSN       = "usn"
	markCSN       = "csn"
	markTimestamp = "timestamp"
	markLastFull  = "last_full"
	markRevision  = "snapshot_revision"
)

// syncState is what the store knows, and, in a plan, what it will know.
type syncState struct {
	links  map[string]*storage.LDAPLink // by stable id
	attrs  map[string]attrs             // by stable id, decoded from links
	byJID  map[string]string            // JID → stable id
	groups map[string]*group            // by stable id
	marks  map[string]string
}

func (s *syncState) clone() *syncState {
	c := &syncState{
		links: make(map[string]*storage.LDAPLink, len(s.links)), attrs: make(map[string]attrs, len(s.attrs)),
		byJID: make(map[string]string, len(s.byJID)), groups: make(map[string]*group, len(s.groups)),
		marks: make(map[string]string, len(s.marks)),
	}
	for k, v := range s.links {
		l := *v
		c.links[k] = &l
	}
	for k, v := range s.attrs {
		c.attrs[k] = v
	}
	for k, v := range s.byJID {
		c.byJID[k] = v
	}
	for k, v := range s.groups {
		g := *v
		g.Members = append([]string(nil), v.Members...)
		c.groups[k] = &g
	}
	for k, v := range s.marks {
		c.marks[k] = v
	}
	return c
}

func (s *Syncer) loadState(ctx context.Context) (*syncState, error) {
	st := &syncState{links: map[string]*storage.LDAPLink{}, attrs: map[string]attrs{},
		byJID: map[string]string{}, groups: map[string]*group{}}
	links, err := s.store.LDAPLinks(ctx, Source)
	if err != nil {
		return nil, err
	}
	for i := range links {
		l := &links[i]
		st.links[l.StableID] = l
		st.attrs[l.StableID] = decodeAttrs(l.Attrs)
		st.byJID[l.JID] = l.StableID
	}
	groups, err := s.store.LDAPGroups(ctx, Source)
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		k, err := dnKey(g.DN)
		if err != nil {
			k = g.DN // a stored DN always parsed once; keep it distinct
		}
		var ga groupAttrs
		_ = jsonUnmarshal(g.Attrs, &ga)
		st.groups[g.StableID] = &group{StableID: g.StableID, DN: g.DN, DNKey: k, Name: g.Name, Members: g.Members, RID: ga.RID}
	}
	if st.marks, err = s.store.LDAPMarks(ctx, Source); err != nil {
		return nil, err
	}
	return st, nil
}

// configHash identifies what decides the result of a sync; when it
// changes, the next sync is a full one.
func (s *Syncer) configHash() string {
	u, g := s.cfg.Users, s.cfg.Groups
	parts := []string{s.cfg.Flavor, s.domain, u.BaseDN, u.Filter, u.DisabledFilter, u.IDAttribute, u.UsernameAttribute,
		u.DisplayNameAttribute, u.EmailAttribute, u.DepartmentAttribute, u.CompanyAttribute, u.PhoneAttribute,
		u.PhotoAttribute, u.SponsorAttribute, u.KindAttribute, strings.Join(u.GuestValues, ","), strings.Join(u.ExternalValues, ","),
		g.BaseDN, g.Filter, g.NameAttribute, g.MemberAttribute, strconv.FormatBool(g.Roster), strconv.Itoa(g.MaxRosterSize)}
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:12])
}

// Sync runs one sync. It returns ErrBusy if another sync holds the lease.
// Errors of single entries are in the report and do not stop the sync;
// the returned error is for what stops it (the directory or the store
// unreachable).
func (s *Syncer) Sync(ctx context.Context, o SyncOptions) (*Report, error) {
	if !s.mu.TryLock() {
		return nil, ErrBusy
	}
	defer s.mu.Unlock()
	start := s.now()
	progress := o.Progress
	if progress == nil {
		progress = func(Progress) {}
	}
	if !o.DryRun {
		ok, err := s.store.AcquireLDAPLease(ctx, Source, s.holder, leaseTTL)
		if err != nil {
			return nil, fmt.Errorf("ldapsync: %w", err)
		}
		if !ok {
			return nil, ErrBusy
		}
		renewCtx, stopRenew := context.WithCancel(ctx)
		renewed := make(chan struct{})
		go s.renewLease(renewCtx, renewed)
		defer func() {
			stopRenew()
			<-renewed
			if err := s.store.ReleaseLDAPLease(context.WithoutCancel(ctx), Source, s.holder); err != nil {
				s.log.Warn("releasing the sync lease failed", "err", err)
			}
		}()
	}

	st, err := s.loadState(ctx)
	if err != nil {
		return nil, fmt.Errorf("ldapsync: loading the sync state: %w", err)
	}
	info, err := s.serverInfo(ctx)
	if err != nil {
		return nil, err
	}
	mode, why := s.chooseMode(st, info, o.Full, start)
	s.log.Info("directory sync starting", "mode", string(mode), "why", why, "dry_run", o.DryRun)
	rd, err := s.read(ctx, st, info, mode, progress)
	if err != nil {
		return nil, err
	}
	readDone := s.now()
	progress(Progress{Phase: "plan", Done: 0, Total: -1})
	p, err := s.plan(ctx, st, rd, mode, start)
	if err != nil {
		return nil, err
	}
	planDone := s.now()
	rep := &Report{Mode: mode, ModeReason: why, DryRun: o.DryRun, Started: start, Read: rd.read, GroupsRead: len(rd.groups),
		Errors: append(rd.errors, p.errors...), Cycles: p.res.cycles, Warnings: p.warnings}
	for _, st := range p.steps {
		if !st.hidden {
			rep.Changes = append(rep.Changes, st.Change)
		}
	}
	rep.count()
	if o.DryRun {
		rep.Duration = s.now().Sub(start)
		return rep, nil
	}

	applyErrs := s.apply(ctx, p, progress)
	applyDone := s.now()
	rep.Errors = append(rep.Errors, applyErrs...)
	if ctx.Err() != nil {
		return rep, ctx.Err()
	}
	// Advance the marks only when everything was applied: an entry whose
	// change failed is read again by the next incremental sync. (Entries
	// that could not be mapped are left to the next full sync.)
	marks := rd.marks
	marks[markFlavor] = s.cfg.Flavor
	marks[markConfig] = s.configHash()
	if mode == Full {
		marks[markLastFull] = start.UTC().Format(time.RFC3339Nano)
	}
	revision, err := s.sendSnapshot(ctx, p, start)
	if err != nil {
		rep.Errors = append(rep.Errors, EntryError{Err: err})
	} else {
		marks[markRevision] = revision
	}
	if len(applyErrs) == 0 {
		if err := s.store.SetLDAPMarks(ctx, Source, marks); err != nil {
			rep.Errors = append(rep.Errors, EntryError{Err: fmt.Errorf("ldapsync: saving the sync marks: %w", err)})
		}
	} else if revision != "" {
		_ = s.store.SetLDAPMarks(ctx, Source, map[string]string{markRevision: revision})
	}
	rep.Duration = s.now().Sub(start)
	s.writeAudit(ctx, rep, o.Reason)
	s.log.Info("directory sync done", "mode", string(mode), "created", rep.Created, "updated", rep.Updated,
		"disabled", rep.Disabled, "enabled", rep.Enabled, "retired", rep.Retired, "deleted", rep.Deleted,
		"roster_changes", rep.Roster, "errors", len(rep.Errors), "duration", rep.Duration.Round(time.Millisecond),
		"read", readDone.Sub(start).Round(time.Millisecond), "plan", planDone.Sub(readDone).Round(time.Millisecond),
		"apply", applyDone.Sub(planDone).Round(time.Millisecond))
	return rep, nil
}

func (s *Syncer) renewLease(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(leaseTTL / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if ok, err := s.store.AcquireLDAPLease(ctx, Source, s.holder, leaseTTL); err != nil || !ok {
				s.log.Warn("renewing the sync lease failed", "err", err, "held", ok)
			}
		}
	}
}

// chooseMode decides between a full and an incremental sync, and says why.
func (s *Syncer) chooseMode(st *syncState, info serverInfo, forceFull bool, now time.Time) (Mode, string) {
	m := st.marks
	last, err := time.Parse(time.RFC3339Nano, m[markLastFull])
	switch {
	case forceFull:
		return Full, "requested"
	case m[markLastFull] == "" || err != nil:
		return Full, "first sync"
	case m[markFlavor] != s.cfg.Flavor || m[markConfig] != s.configHash():
		return Full, "configuration changed"
	case now.Sub(last) >= s.cfg.Sync.FullInterval:
		return Full, "full_interval passed"
	case s.mapper.ad && (m[markServer] != info.identity || m[markUSN] == ""):
		// uSNChanged numbers are per domain controller.
		return Full, "another domain controller answers"
	case !s.mapper.ad && m[markCSN] == "" && m[markTimestamp] == "":
		return Full, "no change mark"
	case !s.mapper.ad && m[markCSN] != "" && info.csn == "":
		return Full, "the server no longer reports contextCSN"
	}
	return Incremental, "changes since the last sync"
}

func jsonUnmarshal(b []byte, v any) error {
	if len(b) == 0 {
		return nil
	}
	return json.Unmarshal(b, v)
}

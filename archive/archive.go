// Package archive is Kontor's encrypted message archive: it implements
// module.Archive (what the MAM module uses) and module.Sealer (what offline
// storage uses), on any storage.ArchiveStore (embedded SQLite or
// PostgreSQL).
//
// # Envelope encryption
//
// Every message is sealed with AES-256-GCM under a data key (DEK) of its
// owner, its UTC month and its retention class, with the owner, the message
// id and the data key's id as associated data, so a sealed row moved to
// another owner or id does not open. Data keys are random, wrapped by a
// key-encryption key (KEK) from a keyring.Provider and stored wrapped; the
// KEK never enters the database. Unwrapped data keys are cached in memory
// (an LRU, bounded in count and age) and never logged. A data key seals at
// most one owner's messages of one month, far below the 2^32 messages after
// which random 96-bit GCM nonces would become a concern.
//
// Rotating the KEK (Rotate) rewraps the data keys only: no message is
// rewritten. Destroying a data key (crypto-shredding) makes everything it
// sealed unreadable, in backups too.
//
// # IDs and order
//
// The caller sets ArchivedMessage.ID: a UUIDv7 in canonical form, generated
// when the message is archived (NewID). The archive's order is ID order,
// which is time order; paging is keyset paging on IDs, so pages stay correct
// while messages arrive. A message's Time must lie within a minute of its
// ID's time (zero Time means the ID's time), which lets start/end filters
// use the same index as paging. Appending an ID the owner already has is
// ignored, so retries are safe.
//
// # Ingest
//
// Append only puts the message in a bounded in-memory queue (bounded in
// messages and bytes); one flusher goroutine takes batches (up to
// BatchSize, or whatever arrived within FlushInterval), decides retention,
// seals and stores each batch in one transaction (COPY on PostgreSQL), and
// retries with back-off while the database fails. A slow database therefore
// costs queue space, not routing time. When the queue is full, Append
// blocks (WhenFull Block: loses nothing) or fails with ErrQueueFull
// (Refuse). Close stores what is queued. Query waits (briefly) until the
// messages its owner appended before it are stored, so a client reads its
// own writes. Stored is a barrier: it tells when everything appended so far
// is stored, and the server's stream management acknowledges a client's
// messages only then (group commit: the barrier also makes the flusher
// store a partial batch at once, after AckLinger). The barriers asked
// before one batch is taken share one channel, closed once the last of
// them is reached, so that thousands of ack requests a second cost one
// channel per transaction, not one each.
//
// # Retention
//
// A RetentionDecider (the policy engine) gives each message a class; its
// expiry is stored with it, and the class selects the data key. Purge
// deletes expired messages in batches, skipping owners a HoldChecker says
// are on legal hold, and then destroys each data key whose messages have
// all expired and are gone.
//
// # What is not encrypted
//
// Owner, peer (bare JID and resource), time, direction, the end-to-end
// flag, expiry, the data key's id and owner/month/class, and archiving
// preferences: what queries and retention need.
package archive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"kontor.im/kontor/archive/keyring"
	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

// Errors, matched with errors.Is. Those a client should hear about also
// wrap a stanza.Error (errors.As), which the MAM module can return as is:
// the core cannot import this package, so it matches those instead.
var (
	// ErrQueueFull: the ingest queue is full and WhenFull is Refuse. The
	// message was not archived; tell the sender (resource-constraint,
	// wait).
	ErrQueueFull error = &apiError{"archive: the archive is overloaded (ingest queue full)",
		stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint, Text: "the message archive is overloaded; try again later"}, nil}
	// ErrClosed: the archive is shutting down.
	ErrClosed error = &apiError{"archive: closed", stanza.ErrServiceUnavailable("the message archive is shutting down"), nil}
	// ErrInvalid: the message or query is malformed (bad-request).
	ErrInvalid error = &apiError{"archive: invalid", stanza.ErrBadRequest("invalid archive request"), nil}
	// ErrItemNotFound: AfterID or BeforeID is not in the owner's archive
	// (XEP-0059 item-not-found). It matches storage.ErrNotFound too.
	ErrItemNotFound error = &apiError{"archive: no message with that id",
		stanza.ErrItemNotFound("no message with that id in the archive"), storage.ErrNotFound}
)

// apiError is an error of the archive together with the protocol error a
// client should get for it.
type apiError struct {
	msg   string
	proto stanza.Error
	also  error
}

func (e *apiError) Error() string { return e.msg }

func (e *apiError) Unwrap() []error {
	if e.also != nil {
		return []error{e.proto, e.also}
	}
	return []error{e.proto}
}

// FullPolicy says what Append does when the queue is full.
type FullPolicy uint8

const (
	// Block waits for space (or for the caller's context to end).
	Block FullPolicy = iota
	// Refuse returns ErrQueueFull at once.
	Refuse
)

// Config configures an Archive. Zero values take the defaults below.
type Config struct {
	Store  storage.ArchiveStore
	Keys   keyring.Provider
	Logger *slog.Logger
	// Retention decides each message's class; nil: DefaultRetention for
	// every message.
	Retention RetentionDecider
	// DefaultRetention is used without a decider, and when it fails.
	// Default: "standard", 90 days.
	DefaultRetention RetentionClass
	// Holds tells which owners purge must skip; nil: none.
	Holds HoldChecker
	// Audit receives an "archive.purge" entry for every periodic purge
	// that deleted, destroyed or skipped something (the DPO's retention
	// report lists them); nil: none.
	Audit audit.Log

	QueueSize  int // messages; default 100000
	QueueBytes int // bytes of stanzas; default 64 MiB
	BatchSize  int // messages per transaction; default 500
	// FlushInterval is the longest wait to fill a batch; default 1s. An
	// archive query of the owner's (read your writes) hurries the flusher
	// (QueryLinger), so only messages nobody looks for wait this long: at
	// 100 messages/s, one transaction a second instead of five cost about
	// a quarter less server and database CPU per message (kontor-load
	// chat).
	FlushInterval time.Duration
	// AckLinger is how long the flusher still gathers messages after a
	// barrier (Stored: a stream management ack waiting for storage) asked
	// it to hurry, so that the ack requests of many messages share one
	// transaction; at most FlushInterval, which is the default: acks ride
	// on the regular batches, and a message is acknowledged within about
	// a second, once stored. Every transaction an ack forces besides them
	// costs CPU per message: with an ack request after each message at
	// 100 messages/s (kontor-load chat -sm, 10 pairs), stream management
	// cost 30-40 % more server CPU per message than without it at a 200ms
	// linger and 0-4 % at 1s. Negative: none (each barrier stores at once).
	AckLinger time.Duration
	// QueryLinger is how long the flusher may still gather after an
	// archive query of an owner waits for the owner's queued messages
	// (waitOwner); default 50ms, at most FlushInterval.
	QueryLinger time.Duration
	WhenFull    FullPolicy
	// PurgeInterval runs Purge periodically once started; 0 never does.
	PurgeInterval time.Duration
	PurgeBatch    int // messages or keys per purge transaction; default 1000
	KeyCacheSize  int // unwrapped data keys held; default 10000
	KeyCacheTTL   time.Duration
	// PrefsCacheSize bounds the owners whose archiving preferences are
	// held in memory (default 10000); a change made outside this Archive
	// is seen after at most PrefsCacheTTL (default 1 minute).
	PrefsCacheSize int
	PrefsCacheTTL  time.Duration
	// DefaultPage and MaxPage bound ArchiveQuery.Max; defaults 50 and 250.
	DefaultPage, MaxPage int
	// CountLimit bounds the counting behind ArchivePage.Count (beyond it,
	// Count is -1); default 1000. Counting is the costly part of a query
	// (an index range scan of up to CountLimit entries, where the page
	// itself reads 51).
	CountLimit int
	// MaxStanzaBytes bounds one archived stanza; default 1 MiB.
	MaxStanzaBytes int
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Defaults.
const (
	DefaultQueueSize     = 100_000
	DefaultQueueBytes    = 64 << 20
	DefaultBatchSize     = 500
	DefaultFlushInterval = time.Second
	DefaultAckLinger     = DefaultFlushInterval
	DefaultQueryLinger   = 50 * time.Millisecond
	DefaultKeep          = 90 * 24 * time.Hour
)

// maxIDSkew is how far a message's Time may be from its ID's time.
const maxIDSkew = time.Minute

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.QueueSize, DefaultQueueSize)
	def(&c.QueueBytes, DefaultQueueBytes)
	def(&c.BatchSize, DefaultBatchSize)
	def(&c.PurgeBatch, 1000)
	def(&c.KeyCacheSize, 10_000)
	def(&c.PrefsCacheSize, 10_000)
	def(&c.DefaultPage, 50)
	def(&c.MaxPage, 250)
	def(&c.CountLimit, 1000)
	def(&c.MaxStanzaBytes, 1<<20)
	if c.FlushInterval <= 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	switch {
	case c.AckLinger == 0:
		c.AckLinger = min(DefaultAckLinger, c.FlushInterval)
	case c.AckLinger < 0:
		c.AckLinger = 0
	case c.AckLinger > c.FlushInterval:
		c.AckLinger = min(DefaultAckLinger, c.FlushInterval)
	}
	if c.QueryLinger <= 0 || c.QueryLinger > c.FlushInterval {
		c.QueryLinger = min(DefaultQueryLinger, c.FlushInterval)
	}
	if c.KeyCacheTTL <= 0 {
		c.KeyCacheTTL = time.Hour
	}
	if c.PrefsCacheTTL <= 0 {
		c.PrefsCacheTTL = time.Minute
	}
	if c.DefaultRetention == (RetentionClass{}) {
		c.DefaultRetention = RetentionClass{Name: DefaultClassName, Keep: DefaultKeep}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.DefaultPage = min(c.DefaultPage, c.MaxPage)
}

// Archive is the message archive. Build it with New, start its goroutines
// with Start, stop them with Close.
type Archive struct {
	cfg   Config
	log   *slog.Logger
	store storage.ArchiveStore
	keys  *keyManager
	prefs *prefsCache
	q     *queue
	now   func() time.Time

	startOnce sync.Once
	closeOnce sync.Once
	stopPurge context.CancelFunc // ends the purge loop
	abandon   context.CancelFunc // ends the flusher's retries
	wg        sync.WaitGroup

	stats counters
}

var _ module.Archive = (*Archive)(nil)

type counters struct {
	appended, stored, refused, expired, lost, failures, unreadable, purged, destroyed atomic.Uint64
}

// New checks cfg and builds an archive. It starts nothing and touches
// neither the store nor the keys.
func New(cfg Config) (*Archive, error) {
	if cfg.Store == nil || cfg.Keys == nil {
		return nil, errors.New("archive: a store and a key provider are required")
	}
	cfg.setDefaults()
	if err := cfg.DefaultRetention.Validate(); err != nil {
		return nil, err
	}
	if cfg.WhenFull != Block && cfg.WhenFull != Refuse {
		return nil, fmt.Errorf("archive: unknown full-queue policy %d", cfg.WhenFull)
	}
	q := newQueue(cfg.QueueSize, cfg.QueueBytes)
	q.ownerLinger = cfg.QueryLinger
	return &Archive{
		cfg:   cfg,
		log:   cfg.Logger,
		store: cfg.Store,
		keys:  newKeyManager(cfg.Store, cfg.Keys, cfg.Now, cfg.KeyCacheSize, cfg.KeyCacheTTL),
		prefs: newPrefsCache(cfg.PrefsCacheSize, cfg.PrefsCacheTTL, cfg.Now),
		q:     q,
		now:   cfg.Now,
	}, nil
}

// Start checks the key-encryption keys against the stored data keys and
// starts the flusher and, if PurgeInterval is set, the purge loop.
func (a *Archive) Start(ctx context.Context) error {
	if err := a.checkKeys(ctx); err != nil {
		return err
	}
	a.startOnce.Do(func() {
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		a.abandon = cancel
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			a.flushLoop(fctx)
		}()
		pctx, stopPurge := context.WithCancel(fctx)
		a.stopPurge = stopPurge
		if a.cfg.PurgeInterval > 0 {
			a.wg.Add(1)
			go func() {
				defer a.wg.Done()
				a.purgeLoop(pctx)
			}()
		}
	})
	return nil
}

// checkKeys fails unless the provider has a primary KEK and opens the
// oldest data key and the oldest one not wrapped by the primary: a wrong
// key file, or an old KEK removed before a rotation finished, stops the
// server at start rather than at the first query.
func (a *Archive) checkKeys(ctx context.Context) error {
	primary, err := a.cfg.Keys.Current(ctx)
	if err != nil {
		return fmt.Errorf("archive: key-encryption key: %w", err)
	}
	for _, notUnder := range []string{"", primary} {
		keys, err := a.store.ArchiveKeysNotUnder(ctx, notUnder, 0, 1)
		if err != nil {
			return fmt.Errorf("archive: %w", err)
		}
		for _, k := range keys {
			if _, err := a.keys.unwrap(ctx, k); err != nil {
				return fmt.Errorf("archive: the key-encryption keys configured do not open the stored data keys "+
					"(a wrong key file, or an old key removed before `kontor keys rotate` finished): %w", err)
			}
		}
	}
	return nil
}

// Close stops accepting messages, stores what is queued, and stops the
// goroutines. If ctx ends first, the messages still queued are lost (and
// counted in the error).
func (a *Archive) Close(ctx context.Context) error {
	var err error
	a.closeOnce.Do(func() {
		a.q.close()
		if a.stopPurge != nil {
			a.stopPurge()
		}
		if a.abandon == nil { // never started: nothing will store the queue
			if n, _ := a.q.size(); n > 0 {
				err = fmt.Errorf("archive: closed before start with %d messages queued", n)
			}
			return
		}
		done := make(chan struct{})
		go func() {
			a.wg.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			a.abandon()
			<-done
		}
		a.abandon()
		if n := a.stats.lost.Load(); n > 0 {
			err = fmt.Errorf("archive: %d messages could not be stored before shutdown", n)
		}
	})
	return err
}

// Stored returns a channel that is closed once every message appended
// before the call is stored, or nil when all of them are stored already. It
// makes the flusher store what is queued at once instead of waiting for a
// batch to fill. Stream management acknowledges a client's stanzas only
// after this (see core/session), so that a message the server has
// acknowledged is in the archive even if the process is killed right after.
// Messages given up at a shutdown that ran out of time count as reached
// too (they are counted as lost and logged).
func (a *Archive) Stored() <-chan struct{} { return a.q.barrier() }

// Accepting returns ErrQueueFull when the queue is full and WhenFull is
// Refuse, nil otherwise. The MAM module asks before a message is
// delivered, so that a message the archive would have to drop is refused
// to its sender (resource-constraint) instead; while the database is
// unreachable, the queue is the memory budget for what must be stored.
func (a *Archive) Accepting() error {
	if a.cfg.WhenFull == Refuse && a.q.full() {
		a.stats.refused.Add(1)
		return ErrQueueFull
	}
	return nil
}

// NewID returns a new archive ID (see the package documentation).
func (a *Archive) NewID() string { return NewID() }

// Append validates m and queues it for storage. It does not touch the
// database.
func (a *Archive) Append(ctx context.Context, m module.ArchivedMessage) error {
	id, err := a.validate(&m)
	if err != nil {
		return err
	}
	it := item{m: m, id: id, size: len(m.Stanza) + len(m.Owner) + len(m.With) + 128}
	if err := a.q.push(ctx, it, a.cfg.WhenFull == Block); err != nil {
		if errors.Is(err, ErrQueueFull) {
			a.stats.refused.Add(1)
		}
		return err
	}
	a.stats.appended.Add(1)
	return nil
}

// validate checks a message and fills its Time from the ID when zero.
func (a *Archive) validate(m *module.ArchivedMessage) ([16]byte, error) {
	id, err := ParseID(m.ID)
	if err != nil {
		return id, fmt.Errorf("%w message: %w", ErrInvalid, err)
	}
	if err := checkJID("owner", m.Owner, false); err != nil {
		return id, err
	}
	if err := checkJID("with", m.With, true); err != nil {
		return id, err
	}
	if len(m.Stanza) == 0 || len(m.Stanza) > a.cfg.MaxStanzaBytes {
		return id, fmt.Errorf("%w message: stanza of %d bytes (1 to %d)", ErrInvalid, len(m.Stanza), a.cfg.MaxStanzaBytes)
	}
	at := idTime(id)
	if m.Time.IsZero() {
		m.Time = at
	} else if d := m.Time.Sub(at); d > maxIDSkew || d < -maxIDSkew {
		return id, fmt.Errorf("%w message: time %s is more than %s from its id's time %s", ErrInvalid,
			m.Time.UTC().Format(time.RFC3339Nano), maxIDSkew, at.Format(time.RFC3339Nano))
	}
	m.Time = m.Time.UTC().Truncate(time.Microsecond)
	return id, nil
}

// checkJID rejects what no store can hold: empty, too long, invalid UTF-8,
// NUL, and (unless full is allowed) a resource.
func checkJID(what, s string, full bool) error {
	switch {
	case s == "" || len(s) > 3071:
		return fmt.Errorf("%w %s: empty or longer than a JID can be", ErrInvalid, what)
	case !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("%w %s: not valid UTF-8 text", ErrInvalid, what)
	case !full && strings.IndexByte(s, '/') >= 0:
		return fmt.Errorf("%w %s: must be a bare JID", ErrInvalid, what)
	}
	return nil
}

// splitJID splits a JID at its first '/' into bare JID and resource.
func splitJID(s string) (bare, resource string) {
	bare, resource, _ = strings.Cut(s, "/")
	return bare, resource
}

// Flush waits until every message appended before the call is stored (or
// given up), or ctx ends.
func (a *Archive) Flush(ctx context.Context) error {
	a.q.mu.Lock()
	target := a.q.seq
	for a.q.flushed < target {
		ch := a.q.progress
		a.q.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		a.q.mu.Lock()
	}
	a.q.mu.Unlock()
	return nil
}

// Stats are the archive's counters, for metrics.
type Stats struct {
	Queued, QueuedBytes int
	Appended            uint64 // accepted by Append
	Stored              uint64 // written to the store
	Refused             uint64 // ErrQueueFull
	ExpiredOnArrival    uint64 // already past their retention when stored: dropped
	Lost                uint64 // given up at shutdown
	FlushFailures       uint64 // failed attempts to store a batch (retried)
	Unreadable          uint64 // rows a query could not open (skipped)
	Purged              uint64 // messages deleted by purge
	DestroyedKeys       uint64 // data keys destroyed by purge
	CachedKeys          int
}

// Stats returns the counters.
func (a *Archive) Stats() Stats {
	n, b := a.q.size()
	return Stats{
		Queued: n, QueuedBytes: b,
		Appended: a.stats.appended.Load(), Stored: a.stats.stored.Load(), Refused: a.stats.refused.Load(),
		ExpiredOnArrival: a.stats.expired.Load(), Lost: a.stats.lost.Load(), FlushFailures: a.stats.failures.Load(),
		Unreadable: a.stats.unreadable.Load(), Purged: a.stats.purged.Load(), DestroyedKeys: a.stats.destroyed.Load(),
		CachedKeys: a.keys.len(),
	}
}

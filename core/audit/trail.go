package audit

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"time"

	"kontor.im/kontor/core/storage"
)

// Trail is the audit trail on a store: Append (it implements Log), Query,
// Verify and the saved head. It is safe for concurrent use; appends from
// several Trails, goroutines and processes on one database are serialised by
// the store.
type Trail struct {
	store  storage.AuditStore
	log    *slog.Logger
	now    func() time.Time
	anchor *anchor // nil without WithAnchor
}

var _ Log = (*Trail)(nil)

// Option configures a Trail.
type Option func(*Trail)

// WithLogger sets where the Trail reports what it cannot return to a caller
// (a failed background save of the head). The default discards.
func WithLogger(l *slog.Logger) Option { return func(t *Trail) { t.log = l } }

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) Option { return func(t *Trail) { t.now = now } }

// WithAnchor keeps a saved head in the file at path (see SaveAnchor): at
// most every interval after appends, and on Close. The file should live
// apart from the database (Kontor puts it beside its key files).
func WithAnchor(path string, every time.Duration) Option {
	return func(t *Trail) { t.anchor = &anchor{path: path, every: every, last: time.Now()} }
}

// New returns a Trail on store. It does nothing until used.
func New(store storage.AuditStore, opts ...Option) *Trail {
	t := &Trail{store: store, now: time.Now}
	for _, o := range opts {
		o(t)
	}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	return t
}

// Append adds e to the trail, filling Seq, At, PrevHash and Hash (whatever
// the caller put there is ignored), and returns it. At is the clock's time
// in UTC at microsecond precision, and never earlier than the previous
// entry's (if the clock was set back, the previous entry's time is used), so
// that time and sequence order agree. It returns an error wrapping
// ErrInvalidEntry for an entry it refuses (see validate's rules in the
// package documentation).
func (t *Trail) Append(ctx context.Context, e Entry) (Entry, error) {
	if err := validate(&e); err != nil {
		return Entry{}, err
	}
	if len(e.Details) == 0 {
		e.Details = nil
	} else {
		e.Details = maps.Clone(e.Details)
	}
	rec, err := t.store.AppendAudit(ctx, func(head storage.AuditHead) (storage.AuditRecord, error) {
		e.Seq = head.Seq + 1
		e.At = t.now().UTC().Truncate(time.Microsecond)
		if e.At.Before(head.At) {
			e.At = head.At
		}
		e.PrevHash = head.Hash
		if head.Seq == 0 {
			e.PrevHash = zeroHash
		}
		e.Hash = ComputeHash(&e)
		return toRecord(&e), nil
	})
	if err != nil {
		return Entry{}, fmt.Errorf("audit: append %s: %w", e.Action, err)
	}
	if t.anchor != nil {
		t.anchor.touch(t)
	}
	return fromRecord(&rec), nil
}

// Head is a point of the chain: an entry's sequence number and hash. The
// zero Head (Seq 0) is the empty trail.
type Head struct {
	Seq  int64
	Hash []byte
}

// String formats h as "SEQ:HEX", which ParseHead reads.
func (h Head) String() string { return fmt.Sprintf("%d:%s", h.Seq, hex.EncodeToString(h.Hash)) }

// Equal reports whether h and o are the same point.
func (h Head) Equal(o Head) bool { return h.Seq == o.Seq && bytes.Equal(h.hash(), o.hash()) }

// hash is the hash a walk continues from: 32 zero bytes for the empty trail.
func (h Head) hash() []byte {
	if h.Seq == 0 && len(h.Hash) == 0 {
		return zeroHash
	}
	return h.Hash
}

// Head returns the newest entry's Head (the zero Head for an empty trail).
func (t *Trail) Head(ctx context.Context) (Head, error) {
	h, err := t.store.AuditHead(ctx)
	if err != nil {
		return Head{}, fmt.Errorf("audit: head: %w", err)
	}
	return Head{Seq: h.Seq, Hash: h.Hash}, nil
}

// Query selects entries; every condition set must hold.
type Query struct {
	Actor   string // exact
	Subject string // exact
	// Action matches itself and every action below it: "account" (or
	// "account.") matches "account.create" and "account.delete".
	Action string
	Since  time.Time // At >= Since
	Until  time.Time // At < Until
	After  int64     // Seq > After: the next page after the last Seq seen
	Before int64     // Seq < Before: the page before
	// Newest returns the newest Limit matches rather than the oldest
	// (still oldest first).
	Newest bool
	Limit  int // 0 means DefaultLimit; at most storage.MaxAuditLimit
}

// DefaultLimit is Query's Limit when none is given.
const DefaultLimit = 100

// Query returns the entries q selects, oldest first.
func (t *Trail) Query(ctx context.Context, q Query) ([]Entry, error) {
	if q.Limit == 0 {
		q.Limit = DefaultLimit
	}
	sq := storage.AuditQuery{
		Actor: q.Actor, Subject: q.Subject, Action: strings.TrimSuffix(q.Action, "."),
		Since: q.Since, Until: q.Until, After: q.After, Before: q.Before,
		Newest: q.Newest, Limit: q.Limit,
	}
	recs, err := t.store.AuditRecords(ctx, sq)
	if err != nil {
		return nil, fmt.Errorf("audit: query: %w", err)
	}
	out := make([]Entry, len(recs))
	for i := range recs {
		out[i] = fromRecord(&recs[i])
	}
	return out, nil
}

func toRecord(e *Entry) storage.AuditRecord {
	return storage.AuditRecord{
		Seq: e.Seq, At: e.At, Actor: e.Actor, Action: e.Action, Subject: e.Subject, Reason: e.Reason,
		PolicyRevision: e.PolicyRevision, Details: e.Details, PrevHash: e.PrevHash, Hash: e.Hash,
	}
}

func fromRecord(r *storage.AuditRecord) Entry {
	return Entry{
		Seq: r.Seq, At: r.At, Actor: r.Actor, Action: r.Action, Subject: r.Subject, Reason: r.Reason,
		PolicyRevision: r.PolicyRevision, Details: r.Details, PrevHash: r.PrevHash, Hash: r.Hash,
	}
}

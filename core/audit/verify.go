package audit

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"kontor.im/kontor/core/storage"
)

// ErrTampered matches (errors.Is) every *Problem: the trail is not what
// Kontor appended.
var ErrTampered = errors.New("audit: the trail was tampered with")

// ProblemKind says what Verify found wrong.
type ProblemKind int

const (
	// Changed: an entry's content no longer matches its hash, or (Rehashed)
	// an entry was changed and its hash recomputed, which the next entry's
	// PrevHash gives away.
	Changed ProblemKind = iota + 1
	// Removed: entries are missing from the middle of the trail (a gap in
	// the sequence numbers, or the later entries renumbered over it).
	Removed
	// Reordered: an intact entry is stored at another position than the
	// one it was appended at.
	Reordered
	// Truncated: the trail ends before a saved head: its newest entries
	// were removed.
	Truncated
	// Replaced: the entry at a saved head's position is not the one saved:
	// entries up to it were rewritten with recomputed hashes, or removed and
	// new ones appended.
	Replaced
	// Unreadable: an entry's row cannot be decoded any more.
	Unreadable
)

func (k ProblemKind) String() string {
	switch k {
	case Changed:
		return "changed"
	case Removed:
		return "removed"
	case Reordered:
		return "reordered"
	case Truncated:
		return "truncated"
	case Replaced:
		return "replaced"
	case Unreadable:
		return "unreadable"
	}
	return fmt.Sprintf("ProblemKind(%d)", int(k))
}

// Problem is the first bad entry Verify found. It is an error that matches
// ErrTampered.
type Problem struct {
	Kind ProblemKind
	// Seq is the first position affected: the changed, first removed or
	// misplaced entry; for Truncated, the first missing one.
	Seq int64
	// Last is the last removed entry (Removed, Truncated).
	Last int64
	// StoredAt is where the entry that belongs at Seq is stored now
	// (Reordered; 0 if it is nowhere).
	StoredAt int64
	// AppendedAs is the sequence number the entry now stored at Seq was
	// appended as, when Verify could work it out (Removed with renumbering,
	// Reordered); 0 otherwise.
	AppendedAs int64
	// Rehashed (Changed): the entry at Seq was changed and its hash
	// recomputed; the entry after it shows it.
	Rehashed bool
	// Anchor is the saved head involved (Truncated, Replaced).
	Anchor Head
	// Verified is how many entries this walk verified before the problem
	// (SaveAnchor's walks start after the saved head).
	Verified int64
	// Err is the decoding error (Unreadable).
	Err error
}

func (p *Problem) Error() string {
	var msg string
	switch p.Kind {
	case Changed:
		if p.Rehashed {
			msg = fmt.Sprintf("entry %d was changed and its hash recomputed: entry %d was appended after a different entry", p.Seq, p.Seq+1)
			if p.Seq == 0 {
				msg = "the first entry does not start the chain: entries before it were removed, or it was rewritten"
			}
		} else {
			msg = fmt.Sprintf("entry %d was changed: its content does not match its hash", p.Seq)
		}
	case Removed:
		what := fmt.Sprintf("entry %d was removed", p.Seq)
		if p.Last > p.Seq {
			what = fmt.Sprintf("entries %d to %d were removed", p.Seq, p.Last)
		}
		if p.AppendedAs > 0 {
			msg = fmt.Sprintf("%s and the later entries renumbered: the entry stored as %d was appended as %d", what, p.Seq, p.AppendedAs)
		} else {
			msg = fmt.Sprintf("%s: entry %d follows entry %d", what, p.Last+1, p.Seq-1)
		}
	case Reordered:
		if p.StoredAt > 0 {
			msg = fmt.Sprintf("entries were reordered: entry %d is stored at position %d", p.Seq, p.StoredAt)
		} else {
			msg = fmt.Sprintf("entries were reordered: position %d holds another entry", p.Seq)
		}
		if p.AppendedAs > 0 {
			msg += fmt.Sprintf(", and position %d holds the entry appended as %d", p.Seq, p.AppendedAs)
		}
	case Truncated:
		if p.Seq <= 1 {
			msg = fmt.Sprintf("the trail is empty, but the saved head is entry %d: all entries were removed", p.Anchor.Seq)
		} else {
			msg = fmt.Sprintf("the newest entries were removed: the trail ends at entry %d, but the saved head is entry %d", p.Seq-1, p.Anchor.Seq)
		}
	case Replaced:
		msg = fmt.Sprintf("entry %d is not the one saved as the head (%s): entries up to it were rewritten, or removed and replaced", p.Seq, p.Anchor)
	case Unreadable:
		msg = fmt.Sprintf("entry %d was changed: it cannot be read (%v)", p.Seq, p.Err)
	default:
		msg = fmt.Sprintf("%s at entry %d", p.Kind, p.Seq)
	}
	switch p.Verified {
	case 0:
		return "audit: " + msg
	case 1:
		return fmt.Sprintf("audit: %s (1 entry verified before it)", msg)
	}
	return fmt.Sprintf("audit: %s (%d entries verified before it)", msg, p.Verified)
}

// Is makes errors.Is(p, ErrTampered) true.
func (p *Problem) Is(target error) bool { return target == ErrTampered }

// Unwrap returns the decoding error of an Unreadable entry.
func (p *Problem) Unwrap() error { return p.Err }

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// Anchors are saved heads (from the head file, or recorded elsewhere):
	// the trail must hold each of them. Without one, removing the newest
	// entries goes unnoticed.
	Anchors []Head
	// BatchSize is how many entries are read at a time (memory use is
	// proportional to it, not to the trail); 0 means 1000.
	BatchSize int
}

// Report is what a successful Verify checked.
type Report struct {
	Verified int64     // entries verified
	Head     Head      // the newest entry verified (zero for an empty trail)
	HeadAt   time.Time // its time
	Anchors  int       // saved heads that matched
}

// Verify walks the whole trail from the first entry in batches and returns
// the first problem as a *Problem (errors.Is(err, ErrTampered)); any other
// error means the trail could not be read. Entries appended while it runs
// may or may not be included.
//
// What it detects, and what it cannot, is in the package documentation.
func (t *Trail) Verify(ctx context.Context, opts VerifyOptions) (Report, error) {
	return t.verifyFrom(ctx, Head{}, opts)
}

// walker holds the state of one walk along the chain.
type walker struct {
	t        *Trail
	expect   int64  // the next sequence number
	prev     []byte // the hash the next entry must point to
	rep      Report
	anchors  map[int64]Head
	maxSeq   int64 // the highest sequence number known to exist (for diagnosis)
	hashBuf  []byte
	anchored int
}

// verifyFrom verifies the entries after start, a point of the chain already
// trusted (the zero Head: from the first entry). With start.Seq > 0 the entry
// at start.Seq must still carry start.Hash.
func (t *Trail) verifyFrom(ctx context.Context, start Head, opts VerifyOptions) (Report, error) {
	batch := opts.BatchSize
	if batch <= 0 {
		batch = 1000
	}
	batch = min(batch, storage.MaxAuditLimit)
	w := &walker{t: t, expect: start.Seq + 1, prev: start.hash(), anchors: map[int64]Head{}}
	w.rep.Head = Head{Seq: start.Seq, Hash: start.Hash}
	for _, a := range opts.Anchors {
		w.anchors[a.Seq] = a
		w.maxSeq = max(w.maxSeq, a.Seq)
	}
	if start.Seq > 0 {
		if err := w.checkStart(ctx, start); err != nil {
			return Report{}, err
		}
	}
	after := start.Seq
	for {
		recs, err := t.store.AuditRecords(ctx, storage.AuditQuery{After: after, Limit: batch})
		var corrupt *storage.AuditCorruptError
		if errors.As(err, &corrupt) {
			// Check what precedes the unreadable row first: an earlier
			// problem is the one to report.
			recs, err = t.store.AuditRecords(ctx, storage.AuditQuery{After: after, Before: corrupt.Seq, Limit: batch})
			if err == nil && len(recs) < batch {
				if err := w.steps(ctx, recs); err != nil {
					return Report{}, err
				}
				if corrupt.Seq != w.expect {
					return Report{}, w.diagnoseGap(ctx, corrupt.Seq)
				}
				return Report{}, &Problem{Kind: Unreadable, Seq: corrupt.Seq, Verified: w.rep.Verified, Err: corrupt.Err}
			}
		}
		if err != nil {
			return Report{}, fmt.Errorf("audit: verify: %w", err)
		}
		if err := w.steps(ctx, recs); err != nil {
			return Report{}, err
		}
		if len(recs) < batch {
			break
		}
		after = recs[len(recs)-1].Seq
	}
	last := w.expect - 1
	for _, a := range sortedAnchors(w.anchors) {
		if a.Seq > last {
			return Report{}, &Problem{Kind: Truncated, Seq: last + 1, Last: a.Seq, Anchor: a, Verified: w.rep.Verified}
		}
	}
	w.rep.Anchors = w.anchored
	return w.rep, nil
}

func sortedAnchors(m map[int64]Head) []Head {
	out := make([]Head, 0, len(m))
	for _, a := range m {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b Head) int { return cmp.Compare(a.Seq, b.Seq) })
	return out
}

// checkStart checks that the trusted starting point is still in the trail.
func (w *walker) checkStart(ctx context.Context, start Head) error {
	recs, err := w.t.store.AuditRecords(ctx, storage.AuditQuery{After: start.Seq - 1, Limit: 1})
	var corrupt *storage.AuditCorruptError
	switch {
	case errors.As(err, &corrupt):
		return &Problem{Kind: Unreadable, Seq: corrupt.Seq, Err: corrupt.Err}
	case err != nil:
		return fmt.Errorf("audit: verify: %w", err)
	case len(recs) == 0 || recs[0].Seq != start.Seq:
		head, err := w.t.store.AuditHead(ctx)
		if err != nil {
			return fmt.Errorf("audit: verify: %w", err)
		}
		if head.Seq < start.Seq {
			return &Problem{Kind: Truncated, Seq: head.Seq + 1, Last: start.Seq, Anchor: start}
		}
		return &Problem{Kind: Replaced, Seq: start.Seq, Anchor: start}
	}
	e := fromRecord(&recs[0])
	if !bytes.Equal(e.Hash, start.Hash) || !bytes.Equal(ComputeHash(&e), e.Hash) {
		return &Problem{Kind: Replaced, Seq: start.Seq, Anchor: start}
	}
	return nil
}

func (w *walker) steps(ctx context.Context, recs []storage.AuditRecord) error {
	for i := range recs {
		if err := w.step(ctx, &recs[i]); err != nil {
			return err
		}
	}
	return nil
}

// step checks one entry against its own hash, its predecessor and its
// position.
func (w *walker) step(ctx context.Context, r *storage.AuditRecord) error {
	e := fromRecord(r)
	w.hashBuf = AppendCanonical(w.hashBuf[:0], &e)
	sum := sha256.New()
	sum.Write(e.PrevHash)
	sum.Write(w.hashBuf)
	selfOK := bytes.Equal(sum.Sum(nil), e.Hash)
	linkOK := bytes.Equal(e.PrevHash, w.prev)
	seqOK := e.Seq == w.expect
	if !(selfOK && linkOK && seqOK) {
		return w.diagnose(ctx, &e, selfOK, linkOK, seqOK)
	}
	if a, ok := w.anchors[e.Seq]; ok {
		if !bytes.Equal(a.Hash, e.Hash) {
			return &Problem{Kind: Replaced, Seq: e.Seq, Anchor: a, Verified: w.rep.Verified}
		}
		w.anchored++
	}
	w.prev = e.Hash
	w.expect++
	w.rep.Verified++
	w.rep.Head = Head{Seq: e.Seq, Hash: e.Hash}
	w.rep.HeadAt = e.At
	return nil
}

// diagnose explains why entry e, read where entry w.expect belongs, does not
// continue the chain.
func (w *walker) diagnose(ctx context.Context, e *Entry, selfOK, linkOK, seqOK bool) error {
	pos := w.expect
	p := &Problem{Seq: pos, Verified: w.rep.Verified}
	if seqOK && linkOK { // only the content is wrong
		p.Kind = Changed
		return p
	}
	// Where is the entry that was appended after the last good one?
	succ, err := w.t.store.AuditSuccessor(ctx, w.prev)
	found := err == nil
	var corrupt *storage.AuditCorruptError
	switch {
	case errors.As(err, &corrupt):
		return &Problem{Kind: Unreadable, Seq: corrupt.Seq, Verified: w.rep.Verified, Err: corrupt.Err}
	case err != nil && !errors.Is(err, storage.ErrNotFound):
		return fmt.Errorf("audit: verify: %w", err)
	}
	err = nil
	switch {
	case found && succ.Seq != e.Seq:
		p.Kind, p.StoredAt = Reordered, succ.Seq
		if seqOK {
			p.AppendedAs, err = w.appendedAs(ctx, e)
		}
	case !seqOK && linkOK:
		// The right entry, at a later position: renumbered.
		p.Kind, p.StoredAt = Reordered, e.Seq
	case !seqOK:
		p.Kind, p.Last = Removed, e.Seq-1
	case selfOK:
		// Appended at this position, after another entry than the one
		// stored before it: that one was rewritten with a new hash.
		p.Kind, p.Rehashed, p.Seq = Changed, true, pos-1
	default:
		var orig int64
		orig, err = w.appendedAs(ctx, e)
		switch {
		case orig > pos:
			p.Kind, p.Last, p.AppendedAs = Removed, orig-1, orig
		case orig > 0:
			p.Kind, p.AppendedAs = Reordered, orig
		default:
			p.Kind = Changed
		}
	}
	if err != nil {
		return fmt.Errorf("audit: verify: %w", err)
	}
	return p
}

// diagnoseGap reports that the next readable position is seq, after a gap.
func (w *walker) diagnoseGap(ctx context.Context, seq int64) error {
	succ, err := w.t.store.AuditSuccessor(ctx, w.prev)
	if err == nil && succ.Seq != seq {
		return &Problem{Kind: Reordered, Seq: w.expect, StoredAt: succ.Seq, Verified: w.rep.Verified}
	}
	return &Problem{Kind: Removed, Seq: w.expect, Last: seq - 1, Verified: w.rep.Verified}
}

// maxSearch bounds how many sequence numbers appendedAs tries.
const maxSearch = 1 << 22

// appendedAs finds the sequence number an intact entry e was appended as,
// by trying the numbers nearest its position first; 0 if none fits (its
// content was changed). Only used to explain a problem already found.
func (w *walker) appendedAs(ctx context.Context, e *Entry) (int64, error) {
	head, err := w.t.store.AuditHead(ctx)
	if err != nil {
		return 0, err
	}
	limit := max(head.Seq, w.maxSeq, e.Seq) + 1024
	c := *e
	c.Seq = 0
	enc := AppendCanonical(nil, &c)
	const seqAt = 1 // after the version byte
	try := func(s int64) bool {
		binary.BigEndian.PutUint64(enc[seqAt:], uint64(s))
		h := sha256.New()
		h.Write(e.PrevHash)
		h.Write(enc)
		return bytes.Equal(h.Sum(nil), e.Hash)
	}
	for d := int64(1); d <= maxSearch/2; d++ {
		if d%65536 == 0 && ctx.Err() != nil {
			return 0, ctx.Err()
		}
		up, down := e.Seq+d, e.Seq-d
		if up > limit && down < 1 {
			break
		}
		if up <= limit && try(up) {
			return up, nil
		}
		if down >= 1 && try(down) {
			return down, nil
		}
	}
	return 0, nil
}

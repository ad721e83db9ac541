package storagetest

// The audit trail's conformance suite: the storage.AuditStore contract, and
// core/audit's Trail on top of it (append, verify, the tampering Verify must
// report precisely, the saved head, queries, concurrency), run against every
// backend.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/storage"
)

// Tamper runs one SQL statement ($1, $2, ... placeholders) on t's database
// the way someone with the database owner's rights would, bypassing Kontor:
// the append-only triggers are out of the way. Statements use only SQL that
// both backends understand.
type Tamper func(t *testing.T, stmt string, args ...any)

// RunAudit runs the audit suite. open is as for Run: a new store on t's
// database, the same database on later calls with the same t. Subtests run in
// parallel, each on its own database.
func RunAudit(t *testing.T, open func(t *testing.T) storage.Store, tamper Tamper) {
	h := &auditHarness{open: open, tamper: tamper}
	groups := []struct {
		name string
		run  func(*testing.T, *auditHarness)
	}{
		{"AppendHead", testAuditAppendHead},
		{"SealErrors", testAuditSealErrors},
		{"Successor", testAuditSuccessor},
		{"Corrupt", testAuditCorrupt},
		{"Query", testAuditQuery},
		{"QueryLimits", testAuditQueryLimits},
		{"RoundTrip", testAuditRoundTrip},
		{"ClockBackwards", testAuditClockBackwards},
		{"Tamper", testAuditTamper},
		{"Rewritten", testAuditRewritten},
		{"Truncated", testAuditTruncated},
		{"Concurrent", testAuditConcurrent},
		{"Anchor", testAuditAnchor},
		{"AnchorRefusesTampered", testAuditAnchorRefuses},
		{"AnchorTimer", testAuditAnchorTimer},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			g.run(t, h)
		})
	}
}

type auditHarness struct {
	open   func(*testing.T) storage.Store
	tamper Tamper
}

// store opens a store for t that implements storage.AuditStore, closed when
// t ends.
func (h *auditHarness) store(t *testing.T) auditStore {
	t.Helper()
	s := h.open(t)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	as, ok := s.(auditStore)
	if !ok {
		t.Fatalf("%s store does not implement storage.AuditStore", s.Backend())
	}
	return as
}

type auditStore interface {
	storage.Store
	storage.AuditStore
}

// auditBase is the clock's start in the tests: entry n is at auditBase +
// (n-1) hours.
var auditBase = time.Date(2024, 3, 1, 10, 0, 0, 123456789, time.UTC)

// auditClock returns auditBase, then one step later at every call.
type auditClock struct {
	mu   sync.Mutex
	next time.Time
	step time.Duration
}

func (c *auditClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.next
	c.next = c.next.Add(c.step)
	return t
}

func newAuditTrail(s storage.AuditStore, opts ...audit.Option) *audit.Trail {
	c := &auditClock{next: auditBase, step: time.Hour}
	return audit.New(s, append([]audit.Option{audit.WithClock(c.now)}, opts...)...)
}

// appendAudit appends n entries with varied fields and returns them.
func appendAudit(t *testing.T, tr *audit.Trail, n int) []audit.Entry {
	t.Helper()
	var out []audit.Entry
	for i := range n {
		e := audit.Entry{
			Actor:   []string{"alice", "system", "ldapsync"}[i%3],
			Action:  []string{"account.create", "policy.deny", "gdpr.export"}[i%3],
			Subject: fmt.Sprintf("user%d@example.com", i),
			Reason:  fmt.Sprintf("ticket %d", i),
		}
		if i%2 == 0 {
			e.Details = map[string]string{"count": fmt.Sprint(i), "decision_id": fmt.Sprintf("d-%d", i)}
			e.PolicyRevision = "rev-abc"
		}
		got, err := tr.Append(t.Context(), e)
		if err != nil {
			t.Fatalf("Append %d: %v", i+1, err)
		}
		out = append(out, got)
	}
	return out
}

func testAuditAppendHead(t *testing.T, h *auditHarness) {
	s := h.store(t)
	head, err := s.AuditHead(t.Context())
	ok(t, err)
	if head.Seq != 0 || head.Hash != nil {
		t.Fatalf("empty trail: head = %+v, want zero", head)
	}
	tr := newAuditTrail(s)
	e1, err := tr.Append(t.Context(), audit.Entry{Actor: "alice", Action: "account.create", Subject: zoe,
		Reason: "TICKET-1 «ünïcode»", PolicyRevision: "r1", Details: map[string]string{"b": "2", "a": "1", "ü": "\"quoted\" \\ <&>"}})
	ok(t, err)
	if e1.Seq != 1 || !bytes.Equal(e1.PrevHash, make([]byte, 32)) || len(e1.Hash) != 32 {
		t.Fatalf("first entry: seq %d prev %x hash %x; want seq 1, zero prev, 32-byte hash", e1.Seq, e1.PrevHash, e1.Hash)
	}
	sameTime(t, "At", e1.At, auditBase)
	e2, err := tr.Append(t.Context(), audit.Entry{Actor: "system", Action: "policy.deny"})
	ok(t, err)
	if e2.Seq != 2 || !bytes.Equal(e2.PrevHash, e1.Hash) {
		t.Fatalf("second entry: seq %d prev %x; want seq 2 after %x", e2.Seq, e2.PrevHash, e1.Hash)
	}
	head, err = s.AuditHead(t.Context())
	ok(t, err)
	if head.Seq != 2 || !bytes.Equal(head.Hash, e2.Hash) {
		t.Errorf("head = %d %x, want 2 %x", head.Seq, head.Hash, e2.Hash)
	}
	sameTime(t, "head At", head.At, auditBase.Add(time.Hour))

	// A new store on the same database (a restarted server) reads them
	// back exactly, and hashes match.
	s2 := h.store(t)
	recs, err := s2.AuditRecords(t.Context(), storage.AuditQuery{Limit: 10})
	ok(t, err)
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	for i, want := range []audit.Entry{e1, e2} {
		got := recs[i]
		if got.Seq != want.Seq || got.Actor != want.Actor || got.Action != want.Action || got.Subject != want.Subject ||
			got.Reason != want.Reason || got.PolicyRevision != want.PolicyRevision ||
			!bytes.Equal(got.PrevHash, want.PrevHash) || !bytes.Equal(got.Hash, want.Hash) {
			t.Errorf("record %d = %+v, want %+v", i+1, got, want)
		}
		if len(got.Details) != len(want.Details) {
			t.Errorf("record %d details = %v, want %v", i+1, got.Details, want.Details)
		}
		for k, v := range want.Details {
			if got.Details[k] != v {
				t.Errorf("record %d detail %q = %q, want %q", i+1, k, got.Details[k], v)
			}
		}
		sameTime(t, "At", got.At, want.At)
		e := audit.Entry{Seq: got.Seq, At: got.At, Actor: got.Actor, Action: got.Action, Subject: got.Subject,
			Reason: got.Reason, PolicyRevision: got.PolicyRevision, Details: got.Details, PrevHash: got.PrevHash}
		if !bytes.Equal(audit.ComputeHash(&e), got.Hash) {
			t.Errorf("record %d: hash does not match its content read back", i+1)
		}
	}
	if recs[1].Details != nil {
		t.Errorf("entry without details reads back %#v, want nil", recs[1].Details)
	}
}

func testAuditSealErrors(t *testing.T, h *auditHarness) {
	s := h.store(t)
	boom := errors.New("seal failed")
	tests := []struct {
		name string
		seal func(storage.AuditHead) (storage.AuditRecord, error)
		is   error
	}{
		{"seal error", func(storage.AuditHead) (storage.AuditRecord, error) { return storage.AuditRecord{}, boom }, boom},
		{"wrong seq", func(h storage.AuditHead) (storage.AuditRecord, error) {
			return storage.AuditRecord{Seq: h.Seq + 2, Actor: "a", Action: "b", PrevHash: make([]byte, 32), Hash: make([]byte, 32)}, nil
		}, nil},
		{"short hash", func(h storage.AuditHead) (storage.AuditRecord, error) {
			return storage.AuditRecord{Seq: h.Seq + 1, Actor: "a", Action: "b", PrevHash: make([]byte, 32), Hash: []byte{1}}, nil
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.AppendAudit(t.Context(), tt.seal)
			if err == nil {
				t.Fatal("AppendAudit succeeded")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error = %v, want one matching %v", err, tt.is)
			}
			head, err := s.AuditHead(t.Context())
			ok(t, err)
			if head.Seq != 0 {
				t.Errorf("head = %d after a failed append, want 0", head.Seq)
			}
		})
	}
	// A fork: a second entry after the same one is refused by the schema,
	// even if a seal (wrongly) reused a previous hash.
	tr := newAuditTrail(s)
	first := appendAudit(t, tr, 2)
	_, err := s.AppendAudit(t.Context(), func(h storage.AuditHead) (storage.AuditRecord, error) {
		return storage.AuditRecord{Seq: h.Seq + 1, At: time.Now(), Actor: "a", Action: "b",
			PrevHash: first[0].Hash, Hash: bytes.Repeat([]byte{7}, 32)}, nil
	})
	if err == nil {
		t.Error("a second entry after entry 1 was stored: the chain forked")
	}
}

func testAuditSuccessor(t *testing.T, h *auditHarness) {
	s := h.store(t)
	entries := appendAudit(t, newAuditTrail(s), 3)
	tests := []struct {
		name string
		prev []byte
		want int64 // 0: not found
	}{
		{"first after zero", make([]byte, 32), 1},
		{"after 1", entries[0].Hash, 2},
		{"after 2", entries[1].Hash, 3},
		{"after the head", entries[2].Hash, 0},
		{"unknown", bytes.Repeat([]byte{9}, 32), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := s.AuditSuccessor(t.Context(), tt.prev)
			if tt.want == 0 {
				is(t, err, storage.ErrNotFound)
				return
			}
			ok(t, err)
			if r.Seq != tt.want {
				t.Errorf("successor seq = %d, want %d", r.Seq, tt.want)
			}
		})
	}
}

func testAuditCorrupt(t *testing.T, h *auditHarness) {
	s := h.store(t)
	appendAudit(t, newAuditTrail(s), 4)
	h.tamper(t, `UPDATE audit_log SET details = 'not json' WHERE seq = 3`)
	_, err := s.AuditRecords(t.Context(), storage.AuditQuery{Limit: 10})
	var ce *storage.AuditCorruptError
	if !errors.As(err, &ce) || ce.Seq != 3 {
		t.Fatalf("AuditRecords over a corrupt row: err = %v, want *AuditCorruptError for entry 3", err)
	}
	recs, err := s.AuditRecords(t.Context(), storage.AuditQuery{Before: 3, Limit: 10})
	ok(t, err)
	if len(recs) != 2 {
		t.Errorf("records before the corrupt one: %d, want 2", len(recs))
	}
}

// auditQueryEntries are the entries of the query tests; entry n is at auditBase
// + (n-1) hours.
var auditQueryEntries = []audit.Entry{
	{Actor: "alice", Action: "account.create", Subject: "bob@example.com"},         // 1
	{Actor: "alice", Action: "account.disable", Subject: "bob@example.com"},        // 2
	{Actor: "system", Action: "policy.deny", Subject: "carol@example.org"},         // 3
	{Actor: "ldapsync", Action: "ldap.sync"},                                       // 4
	{Actor: "bob@example.com", Action: "policy.reload", Subject: "default.rego"},   // 5
	{Actor: "alice", Action: "policyx.test", Subject: "bob@example.com"},           // 6
	{Actor: "system", Action: "policy.deny", Subject: "bob@example.com"},           // 7
	{Actor: "alice", Action: "account.delete", Subject: "bob@example.com"},         // 8
	{Actor: "Alice", Action: "account.create", Subject: zoe},                       // 9
	{Actor: "alice", Action: "policy", Subject: "Bob@example.com", Reason: "root"}, // 10
}

func testAuditQuery(t *testing.T, h *auditHarness) {
	s := h.store(t)
	tr := newAuditTrail(s)
	for _, e := range auditQueryEntries {
		if _, err := tr.Append(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	hour := func(n int) time.Time { return auditBase.Add(time.Duration(n) * time.Hour) }
	tests := []struct {
		name string
		q    audit.Query
		want []int64
	}{
		{"everything", audit.Query{}, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"actor", audit.Query{Actor: "alice"}, []int64{1, 2, 6, 8, 10}},
		{"actor is exact, case and all", audit.Query{Actor: "Alice"}, []int64{9}},
		{"subject", audit.Query{Subject: "bob@example.com"}, []int64{1, 2, 6, 7, 8}},
		{"subject not ASCII", audit.Query{Subject: zoe}, []int64{9}},
		{"action prefix", audit.Query{Action: "policy"}, []int64{3, 5, 7, 10}},
		{"action prefix with dot", audit.Query{Action: "policy."}, []int64{3, 5, 7, 10}},
		{"action exact leaf", audit.Query{Action: "policy.deny"}, []int64{3, 7}},
		{"action prefix of a word is no match", audit.Query{Action: "polic"}, nil},
		{"action and actor", audit.Query{Action: "account", Actor: "alice"}, []int64{1, 2, 8}},
		{"since", audit.Query{Since: hour(7)}, []int64{8, 9, 10}},
		{"until is exclusive", audit.Query{Until: hour(2)}, []int64{1, 2}},
		{"time range", audit.Query{Since: hour(2), Until: hour(5)}, []int64{3, 4, 5}},
		{"since, off the hour", audit.Query{Since: hour(2).Add(time.Microsecond)}, []int64{4, 5, 6, 7, 8, 9, 10}},
		{"after", audit.Query{After: 7}, []int64{8, 9, 10}},
		{"before", audit.Query{Before: 4}, []int64{1, 2, 3}},
		{"limit", audit.Query{Limit: 3}, []int64{1, 2, 3}},
		{"next page", audit.Query{After: 3, Limit: 3}, []int64{4, 5, 6}},
		{"newest", audit.Query{Newest: true, Limit: 3}, []int64{8, 9, 10}},
		{"newest of an actor", audit.Query{Newest: true, Actor: "alice", Limit: 2}, []int64{8, 10}},
		{"page backwards", audit.Query{Newest: true, Before: 8, Limit: 2}, []int64{6, 7}},
		{"everything at once", audit.Query{Action: "policy", Subject: "bob@example.com", After: 2, Before: 8,
			Since: hour(1), Until: hour(9)}, []int64{7}},
		{"no match", audit.Query{Actor: "nobody"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tr.Query(t.Context(), tt.q)
			ok(t, err)
			var seqs []int64
			for _, e := range got {
				seqs = append(seqs, e.Seq)
			}
			if !slices.Equal(seqs, tt.want) {
				t.Errorf("seqs = %v, want %v", seqs, tt.want)
			}
		})
	}
}

func testAuditQueryLimits(t *testing.T, h *auditHarness) {
	s := h.store(t)
	tests := []struct {
		name string
		q    storage.AuditQuery
	}{
		{"no limit", storage.AuditQuery{}},
		{"limit too large", storage.AuditQuery{Limit: storage.MaxAuditLimit + 1}},
		{"negative after", storage.AuditQuery{Limit: 1, After: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.AuditRecords(t.Context(), tt.q); err == nil {
				t.Errorf("AuditRecords(%+v) succeeded", tt.q)
			}
		})
	}
}

func testAuditRoundTrip(t *testing.T, h *auditHarness) {
	s := h.store(t)
	tr := newAuditTrail(s)
	rep, err := tr.Verify(t.Context(), audit.VerifyOptions{})
	ok(t, err)
	if rep.Verified != 0 || rep.Head.Seq != 0 {
		t.Errorf("empty trail: report %+v, want nothing verified", rep)
	}
	entries := appendAudit(t, tr, 25)
	for _, batch := range []int{0, 1, 7, 25, 26} {
		t.Run(fmt.Sprintf("batch %d", batch), func(t *testing.T) {
			last := entries[len(entries)-1]
			rep, err := tr.Verify(t.Context(), audit.VerifyOptions{BatchSize: batch,
				Anchors: []audit.Head{{Seq: 10, Hash: entries[9].Hash}, {Seq: last.Seq, Hash: last.Hash}}})
			ok(t, err)
			if rep.Verified != 25 || rep.Head.Seq != 25 || !bytes.Equal(rep.Head.Hash, last.Hash) || rep.Anchors != 2 {
				t.Errorf("report %+v, want 25 verified up to %x with 2 anchors", rep, last.Hash)
			}
			sameTime(t, "HeadAt", rep.HeadAt, last.At)
		})
	}
}

func testAuditClockBackwards(t *testing.T, h *auditHarness) {
	s := h.store(t)
	c := &auditClock{next: auditBase, step: -time.Minute}
	tr := audit.New(s, audit.WithClock(c.now))
	a, err := tr.Append(t.Context(), audit.Entry{Actor: "a", Action: "x.y"})
	ok(t, err)
	b, err := tr.Append(t.Context(), audit.Entry{Actor: "a", Action: "x.y"})
	ok(t, err)
	if b.At.Before(a.At) {
		t.Errorf("second entry at %v, before the first at %v", b.At, a.At)
	}
	_, err = tr.Verify(t.Context(), audit.VerifyOptions{})
	ok(t, err)
}

// wantAuditProblem fails unless err is a *audit.Problem like want (Verified is
// not compared).
func wantAuditProblem(t *testing.T, err error, want audit.Problem) {
	t.Helper()
	var p *audit.Problem
	if !errors.As(err, &p) {
		t.Fatalf("error = %v, want a %s problem", err, want.Kind)
	}
	if !errors.Is(err, audit.ErrTampered) {
		t.Errorf("error %v does not match ErrTampered", err)
	}
	if p.Kind != want.Kind || p.Seq != want.Seq || p.Last != want.Last || p.StoredAt != want.StoredAt ||
		p.AppendedAs != want.AppendedAs || p.Rehashed != want.Rehashed {
		t.Errorf("problem = %+v\n(%v)\nwant kind %s seq %d last %d stored at %d appended as %d rehashed %v",
			*p, p, want.Kind, want.Seq, want.Last, want.StoredAt, want.AppendedAs, want.Rehashed)
	}
}

func testAuditTamper(t *testing.T, h *auditHarness) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, s auditStore, entries []audit.Entry)
		want   audit.Problem
	}{
		{"changed reason", func(t *testing.T, _ auditStore, _ []audit.Entry) {
			h.tamper(t, `UPDATE audit_log SET reason = 'nothing to see' WHERE seq = 3`)
		}, audit.Problem{Kind: audit.Changed, Seq: 3}},
		{"changed actor of the first", func(t *testing.T, _ auditStore, _ []audit.Entry) {
			h.tamper(t, `UPDATE audit_log SET actor = 'mallory' WHERE seq = 1`)
		}, audit.Problem{Kind: audit.Changed, Seq: 1}},
		{"changed time", func(t *testing.T, _ auditStore, _ []audit.Entry) {
			h.tamper(t, `UPDATE audit_log SET at = at + 1 WHERE seq = 6`)
		}, audit.Problem{Kind: audit.Changed, Seq: 6}},
		{"changed details", func(t *testing.T, _ auditStore, _ []audit.Entry) {
			h.tamper(t, `UPDATE audit_log SET details = '{"count":"99"}' WHERE seq = 5`)
		}, audit.Problem{Kind: audit.Changed, Seq: 5}},
		{"details reformatted, same content", func(t *testing.T, _ auditStore, _ []audit.Entry) {
			h.tamper(t, `UPDATE audit_log SET details = '{ "decision_id" : "d-4", "count":"4" }' WHERE seq = 5`)
		}, audit.Problem{}},
		{"changed newest", func(t *testing.T, _ auditStore, _ []audit.Entry) {
			h.tamper(t, `UPDATE audit_log SET subject = '' WHERE seq = 8`)
		}, audit.Problem{Kind: audit.Changed, Seq: 8}},
		{"changed prev hash", func(t *testing.T, _ auditStore, _ []audit.Entry) {
			h.tamper(t, `UPDATE audit_log SET prev_hash = $1 WHERE seq = 4`, bytes.Repeat([]byte{1}, 32))
		}, audit.Problem{Kind: audit.Changed, Seq: 4}},
		{"unreadable details", func(t *testing.T, _ auditStore, _ []audit.Entry) {
			h.tamper(t, `UPDATE audit_log SET details = '[1,2' WHERE seq = 6`)
		}, audit.Problem{Kind: audit.Unreadable, Seq: 6}},
		{"changed, then unreadable later", func(t *testing.T, _ auditStore, _ []audit.Entry) {
			h.tamper(t, `UPDATE audit_log SET reason = 'x' WHERE seq = 2`)
			h.tamper(t, `UPDATE audit_log SET details = 'null' WHERE seq = 6`)
		}, audit.Problem{Kind: audit.Changed, Seq: 2}},
		{"removed middle", func(t *testing.T, _ auditStore, _ []audit.Entry) {
			h.tamper(t, `DELETE FROM audit_log WHERE seq = 4`)
		}, audit.Problem{Kind: audit.Removed, Seq: 4, Last: 4}},
		{"removed first", func(t *testing.T, _ auditStore, _ []audit.Entry) {
			h.tamper(t, `DELETE FROM audit_log WHERE seq = 1`)
		}, audit.Problem{Kind: audit.Removed, Seq: 1, Last: 1}},
		{"removed several across a batch", func(t *testing.T, _ auditStore, _ []audit.Entry) {
			h.tamper(t, `DELETE FROM audit_log WHERE seq BETWEEN 3 AND 6`)
		}, audit.Problem{Kind: audit.Removed, Seq: 3, Last: 6}},
		{"removed before an unreadable one", func(t *testing.T, _ auditStore, _ []audit.Entry) {
			h.tamper(t, `DELETE FROM audit_log WHERE seq = 5`)
			h.tamper(t, `UPDATE audit_log SET details = '"x"' WHERE seq = 6`)
		}, audit.Problem{Kind: audit.Removed, Seq: 5, Last: 5}},
		{"removed and renumbered", func(t *testing.T, _ auditStore, _ []audit.Entry) {
			h.tamper(t, `DELETE FROM audit_log WHERE seq = 3`)
			for seq := 4; seq <= 8; seq++ {
				h.tamper(t, `UPDATE audit_log SET seq = $1 WHERE seq = $2`, seq-1, seq)
			}
		}, audit.Problem{Kind: audit.Removed, Seq: 3, Last: 3, AppendedAs: 4}},
		{"swapped", func(t *testing.T, _ auditStore, _ []audit.Entry) {
			swapAuditEntries(t, h, 3, 6)
		}, audit.Problem{Kind: audit.Reordered, Seq: 3, StoredAt: 6, AppendedAs: 6}},
		{"swapped neighbours", func(t *testing.T, _ auditStore, _ []audit.Entry) {
			swapAuditEntries(t, h, 4, 5)
		}, audit.Problem{Kind: audit.Reordered, Seq: 4, StoredAt: 5, AppendedAs: 5}},
		{"moved to the end", func(t *testing.T, _ auditStore, _ []audit.Entry) {
			h.tamper(t, `UPDATE audit_log SET seq = 9 WHERE seq = 2`)
		}, audit.Problem{Kind: audit.Reordered, Seq: 2, StoredAt: 9}},
		{"changed and rehashed", func(t *testing.T, s auditStore, entries []audit.Entry) {
			e := entries[2]
			e.Reason = "rewritten"
			hash := audit.ComputeHash(&e)
			h.tamper(t, `UPDATE audit_log SET reason = $1, hash = $2 WHERE seq = 3`, e.Reason, hash)
		}, audit.Problem{Kind: audit.Changed, Seq: 3, Rehashed: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := h.store(t)
			tr := newAuditTrail(s)
			entries := appendAudit(t, tr, 8)
			tt.tamper(t, s, entries)
			_, err := tr.Verify(t.Context(), audit.VerifyOptions{BatchSize: 4})
			if tt.want.Kind == 0 {
				ok(t, err)
				return
			}
			wantAuditProblem(t, err, tt.want)
		})
	}
}

// swapAuditEntries exchanges the positions of entries a and b.
func swapAuditEntries(t *testing.T, h *auditHarness, a, b int64) {
	t.Helper()
	h.tamper(t, `UPDATE audit_log SET seq = 1000000 WHERE seq = $1`, a)
	h.tamper(t, `UPDATE audit_log SET seq = $1 WHERE seq = $2`, a, b)
	h.tamper(t, `UPDATE audit_log SET seq = $1 WHERE seq = 1000000`, b)
}

// testAuditRewritten changes an entry and recomputes every hash after it:
// the chain alone cannot tell, a saved head can.
func testAuditRewritten(t *testing.T, h *auditHarness) {
	s := h.store(t)
	tr := newAuditTrail(s)
	entries := appendAudit(t, tr, 6)
	anchor := audit.Head{Seq: 6, Hash: entries[5].Hash}

	prev := entries[1].Hash
	for i := 2; i < 6; i++ {
		e := entries[i]
		if i == 2 {
			e.Reason = "rewritten"
		}
		e.PrevHash = prev
		e.Hash = audit.ComputeHash(&e)
		h.tamper(t, `UPDATE audit_log SET reason = $1, prev_hash = $2, hash = $3 WHERE seq = $4`, e.Reason, e.PrevHash, e.Hash, e.Seq)
		prev = e.Hash
	}
	tests := []struct {
		name    string
		anchors []audit.Head
		want    audit.Problem
	}{
		{"without a saved head: not detected", nil, audit.Problem{}},
		{"saved head before the change: not detected", []audit.Head{{Seq: 2, Hash: entries[1].Hash}}, audit.Problem{}},
		{"saved head after it", []audit.Head{anchor}, audit.Problem{Kind: audit.Replaced, Seq: 6}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := tr.Verify(t.Context(), audit.VerifyOptions{Anchors: tt.anchors})
			if tt.want.Kind == 0 {
				ok(t, err)
				if rep.Verified != 6 {
					t.Errorf("verified %d, want 6", rep.Verified)
				}
				return
			}
			wantAuditProblem(t, err, tt.want)
		})
	}
}

func testAuditTruncated(t *testing.T, h *auditHarness) {
	tests := []struct {
		name       string
		tamper     func(t *testing.T, tr *audit.Trail)
		withAnchor audit.Problem
		verified   int64 // without the anchor
	}{
		{"newest two removed", func(t *testing.T, _ *audit.Trail) {
			h.tamper(t, `DELETE FROM audit_log WHERE seq >= 5`)
		}, audit.Problem{Kind: audit.Truncated, Seq: 5, Last: 6}, 4},
		{"newest removed, others appended", func(t *testing.T, tr *audit.Trail) {
			h.tamper(t, `DELETE FROM audit_log WHERE seq >= 4`)
			appendAudit(t, tr, 4)
		}, audit.Problem{Kind: audit.Replaced, Seq: 6}, 7},
		{"newest removed, fewer appended", func(t *testing.T, tr *audit.Trail) {
			h.tamper(t, `DELETE FROM audit_log WHERE seq >= 4`)
			appendAudit(t, tr, 1)
		}, audit.Problem{Kind: audit.Truncated, Seq: 5, Last: 6}, 4},
		{"all removed", func(t *testing.T, _ *audit.Trail) {
			h.tamper(t, `DELETE FROM audit_log`)
		}, audit.Problem{Kind: audit.Truncated, Seq: 1, Last: 6}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := h.store(t)
			tr := newAuditTrail(s)
			entries := appendAudit(t, tr, 6)
			anchor := audit.Head{Seq: 6, Hash: entries[5].Hash}
			tt.tamper(t, tr)
			rep, err := tr.Verify(t.Context(), audit.VerifyOptions{BatchSize: 3})
			ok(t, err) // the chain itself is intact: truncation needs the anchor
			if rep.Verified != tt.verified {
				t.Errorf("without the saved head: verified %d, want %d", rep.Verified, tt.verified)
			}
			_, err = tr.Verify(t.Context(), audit.VerifyOptions{BatchSize: 3, Anchors: []audit.Head{anchor}})
			wantAuditProblem(t, err, tt.withAnchor)
		})
	}
}

// testAuditConcurrent appends from several goroutines through two stores
// on one database (two servers, or the server and the CLI): every append
// gets its own seq and the chain verifies.
func testAuditConcurrent(t *testing.T, h *auditHarness) {
	stores := []auditStore{h.store(t), h.store(t)}
	const perStore, each = 4, 15
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seqs []int64
	)
	errs := make(chan error, 2*perStore)
	for i, s := range stores {
		tr := audit.New(s)
		for j := range perStore {
			wg.Go(func() {
				for k := range each {
					e, err := tr.Append(t.Context(), audit.Entry{Actor: fmt.Sprintf("w%d-%d", i, j), Action: "test.concurrent",
						Details: map[string]string{"k": fmt.Sprint(k)}})
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					seqs = append(seqs, e.Seq)
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent append: %v", err)
	}
	slices.Sort(seqs)
	const total = 2 * perStore * each
	if len(seqs) != total || seqs[0] != 1 || seqs[total-1] != total {
		t.Fatalf("seqs = %v, want 1..%d", seqs, total)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] == seqs[i-1] {
			t.Fatalf("seq %d assigned twice", seqs[i])
		}
	}
	rep, err := audit.New(stores[1]).Verify(t.Context(), audit.VerifyOptions{BatchSize: 16})
	ok(t, err)
	if rep.Verified != total {
		t.Errorf("verified %d, want %d", rep.Verified, total)
	}
}

func readAuditHeadFile(t *testing.T, path string) audit.Head {
	t.Helper()
	head, err := audit.ReadHeadFile(path)
	ok(t, err)
	return head
}

// testAuditAnchor: the saved head follows appends, over verified entries
// only, also with two trails (two processes) sharing the file.
func testAuditAnchor(t *testing.T, h *auditHarness) {
	s := h.store(t)
	path := filepath.Join(t.TempDir(), "keys", "audit.head")
	tr := newAuditTrail(s, audit.WithAnchor(path, time.Hour))

	head, err := tr.SaveAnchor(t.Context())
	ok(t, err)
	if head.Seq != 0 {
		t.Errorf("empty trail: saved head %v", head)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an empty trail wrote a head file (%v)", err)
	}

	entries := appendAudit(t, tr, 5)
	head, err = tr.SaveAnchor(t.Context())
	ok(t, err)
	if want := (audit.Head{Seq: 5, Hash: entries[4].Hash}); !head.Equal(want) || !readAuditHeadFile(t, path).Equal(want) {
		t.Fatalf("saved head %v, file %v; want %v", head, readAuditHeadFile(t, path), want)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("head file mode: %v (%v), want 0600", fi.Mode(), err)
	}

	// Another trail (another process) on the same database and file.
	other := newAuditTrail(h.store(t), audit.WithAnchor(path, time.Hour))
	more := appendAudit(t, other, 3)
	ok(t, other.Close(t.Context())) // saves: it appended
	if want := (audit.Head{Seq: 8, Hash: more[2].Hash}); !readAuditHeadFile(t, path).Equal(want) {
		t.Errorf("after the other trail's Close: file %v, want %v", readAuditHeadFile(t, path), want)
	}
	ok(t, tr.Close(t.Context())) // appended before its last save: nothing to do
	ok(t, tr.Close(t.Context())) // twice is fine

	// Concurrent saves from both never move the file backwards.
	t1 := newAuditTrail(h.store(t), audit.WithAnchor(path, time.Hour))
	t2 := newAuditTrail(h.store(t), audit.WithAnchor(path, time.Hour))
	var wg sync.WaitGroup
	for _, tr := range []*audit.Trail{t1, t2} {
		wg.Go(func() {
			for range 5 {
				if _, err := tr.Append(t.Context(), audit.Entry{Actor: "a", Action: "x.y"}); err != nil {
					t.Error(err)
					return
				}
				if _, err := tr.SaveAnchor(t.Context()); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	final, err := t1.SaveAnchor(t.Context())
	ok(t, err)
	if final.Seq != 18 || !readAuditHeadFile(t, path).Equal(final) {
		t.Errorf("after concurrent saves: %v (file %v), want seq 18", final, readAuditHeadFile(t, path))
	}
	rep, err := t1.Verify(t.Context(), audit.VerifyOptions{Anchors: []audit.Head{readAuditHeadFile(t, path)}})
	ok(t, err)
	if rep.Anchors != 1 {
		t.Errorf("Verify matched %d saved heads, want 1", rep.Anchors)
	}
}

// testAuditAnchorRefuses: a saved head is not moved over a tampered trail.
func testAuditAnchorRefuses(t *testing.T, h *auditHarness) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, tr *audit.Trail)
		want   audit.Problem
	}{
		{"truncated", func(t *testing.T, _ *audit.Trail) {
			h.tamper(t, `DELETE FROM audit_log WHERE seq >= 4`)
		}, audit.Problem{Kind: audit.Truncated, Seq: 4, Last: 5}},
		{"truncated and appended", func(t *testing.T, tr *audit.Trail) {
			h.tamper(t, `DELETE FROM audit_log WHERE seq >= 4`)
			appendAudit(t, tr, 3)
		}, audit.Problem{Kind: audit.Replaced, Seq: 5}},
		{"changed after the saved head", func(t *testing.T, tr *audit.Trail) {
			appendAudit(t, tr, 3)
			h.tamper(t, `UPDATE audit_log SET reason = 'x' WHERE seq = 7`)
		}, audit.Problem{Kind: audit.Changed, Seq: 7}},
		{"saved entry changed", func(t *testing.T, tr *audit.Trail) {
			appendAudit(t, tr, 1)
			h.tamper(t, `UPDATE audit_log SET reason = 'x' WHERE seq = 5`)
		}, audit.Problem{Kind: audit.Replaced, Seq: 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := h.store(t)
			path := filepath.Join(t.TempDir(), "audit.head")
			tr := newAuditTrail(s, audit.WithAnchor(path, time.Hour))
			appendAudit(t, tr, 5)
			saved, err := tr.SaveAnchor(t.Context())
			ok(t, err)
			tt.tamper(t, tr)
			kept, err := tr.SaveAnchor(t.Context())
			wantAuditProblem(t, err, tt.want)
			if !kept.Equal(saved) || !readAuditHeadFile(t, path).Equal(saved) {
				t.Errorf("saved head moved from %v to %v (file %v)", saved, kept, readAuditHeadFile(t, path))
			}
		})
	}
}

// testAuditAnchorTimer: appends move the saved head within the interval,
// without any call to SaveAnchor.
func testAuditAnchorTimer(t *testing.T, h *auditHarness) {
	s := h.store(t)
	path := filepath.Join(t.TempDir(), "audit.head")
	tr := newAuditTrail(s, audit.WithAnchor(path, 50*time.Millisecond))
	defer tr.Close(context.Background())
	var last audit.Entry
	for range 3 {
		e := appendAudit(t, tr, 2)
		last = e[1]
		deadline := time.Now().Add(10 * time.Second)
		for {
			head, err := audit.ReadHeadFile(path)
			if err == nil && head.Seq == last.Seq {
				if !bytes.Equal(head.Hash, last.Hash) {
					t.Fatalf("saved head %v, want hash %x", head, last.Hash)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("saved head not at %d within 10 s: %v %v", last.Seq, head, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// After Close, appends no longer move it.
	ok(t, tr.Close(t.Context()))
	appendAudit(t, tr, 1)
	time.Sleep(150 * time.Millisecond)
	if got := readAuditHeadFile(t, path); got.Seq != last.Seq {
		t.Errorf("saved head moved to %d after Close", got.Seq)
	}
}

// BenchAuditAppend measures Trail.Append on s.
func BenchAuditAppend(b *testing.B, s storage.AuditStore) {
	tr := audit.New(s)
	ctx := context.Background()
	e := audit.Entry{Actor: "alice", Action: "policy.deny", Subject: "bob@example.com", Reason: "contact.not_allowed",
		PolicyRevision: "3f2a9c", Details: map[string]string{"decision_id": "d-1234", "to": "carol@example.org"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tr.Append(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchAuditVerify measures Verify over n entries, reporting entries per
// second.
func BenchAuditVerify(b *testing.B, s storage.AuditStore, n int) {
	tr := audit.New(s)
	ctx := context.Background()
	for i := range n {
		if _, err := tr.Append(ctx, audit.Entry{Actor: "system", Action: "policy.deny", Subject: fmt.Sprintf("u%d@example.com", i),
			Details: map[string]string{"decision_id": fmt.Sprint(i)}}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rep, err := tr.Verify(ctx, audit.VerifyOptions{})
		if err != nil || rep.Verified != int64(n) {
			b.Fatalf("Verify: %+v %v", rep, err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

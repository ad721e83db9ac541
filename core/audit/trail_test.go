package audit_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/storage/pgtest"
	"kontor.im/kontor/core/storage/postgres"
	"kontor.im/kontor/core/storage/sqlite"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type auditStore interface {
	storage.Store
	storage.AuditStore
}

// forBackends runs fn on a fresh store of each backend.
func forBackends(t *testing.T, fn func(t *testing.T, s auditStore)) {
	t.Helper()
	backends := []struct {
		name string
		open func(t *testing.T) (auditStore, error)
	}{
		{"sqlite", func(t *testing.T) (auditStore, error) {
			return sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "kontor.db"))
		}},
		{"postgres", func(t *testing.T) (auditStore, error) { return postgres.Open(t.Context(), pgtest.DSN(t)) }},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			s, err := b.open(t)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			fn(t, s)
		})
	}
}

func TestAppendRejectsInvalid(t *testing.T) {
	forBackends(t, func(t *testing.T, s auditStore) {
		tr := audit.New(s)
		for _, e := range []audit.Entry{{Action: "a.b"}, {Actor: "a", Action: "A"}, {Actor: "a\x00", Action: "a.b"}} {
			if _, err := tr.Append(t.Context(), e); !errors.Is(err, audit.ErrInvalidEntry) {
				t.Errorf("Append(%+v) = %v, want ErrInvalidEntry", e, err)
			}
		}
		head, err := tr.Head(t.Context())
		if err != nil || head.Seq != 0 {
			t.Errorf("head after refused appends: %v %v, want empty", head, err)
		}
		// The caller's details are copied, and what it put in the
		// assigned fields is ignored.
		details := map[string]string{"k": "v"}
		e, err := tr.Append(t.Context(), audit.Entry{Seq: 99, Actor: "a", Action: "a.b", Details: details, Hash: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		details["k"] = "changed"
		if e.Seq != 1 || e.Details["k"] != "v" || len(e.Hash) != audit.HashSize {
			t.Errorf("appended %+v", e)
		}
	})
}

// countingStore passes everything to a real store and records the largest
// batch Verify asks for.
type countingStore struct {
	storage.AuditStore
	calls, maxLimit int
}

func (c *countingStore) AuditRecords(ctx context.Context, q storage.AuditQuery) ([]storage.AuditRecord, error) {
	c.calls++
	c.maxLimit = max(c.maxLimit, q.Limit)
	return c.AuditStore.AuditRecords(ctx, q)
}

func TestVerifyReadsInBatches(t *testing.T) {
	forBackends(t, func(t *testing.T, s auditStore) {
		tr := audit.New(s)
		for range 50 {
			if _, err := tr.Append(t.Context(), audit.Entry{Actor: "a", Action: "x.y"}); err != nil {
				t.Fatal(err)
			}
		}
		tests := []struct {
			name               string
			batch, calls, want int
		}{
			{"batches of 7", 7, 8, 7},
			{"exact multiple", 10, 6, 10},
			{"default", 0, 1, 1000},
			{"capped", 1 << 20, 1, storage.MaxAuditLimit},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := &countingStore{AuditStore: s}
				rep, err := audit.New(c).Verify(t.Context(), audit.VerifyOptions{BatchSize: tt.batch})
				if err != nil || rep.Verified != 50 {
					t.Fatalf("Verify: %+v, %v", rep, err)
				}
				if c.calls != tt.calls || c.maxLimit != tt.want {
					t.Errorf("%d reads of up to %d, want %d of up to %d", c.calls, c.maxLimit, tt.calls, tt.want)
				}
			})
		}
	})
}

func TestVerifyCancelled(t *testing.T) {
	forBackends(t, func(t *testing.T, s auditStore) {
		tr := audit.New(s)
		if _, err := tr.Append(t.Context(), audit.Entry{Actor: "a", Action: "x.y"}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := tr.Verify(ctx, audit.VerifyOptions{})
		if err == nil || errors.Is(err, audit.ErrTampered) {
			t.Errorf("Verify with a cancelled context = %v, want an error that is not ErrTampered", err)
		}
	})
}

func TestSaveAnchorErrors(t *testing.T) {
	forBackends(t, func(t *testing.T, s auditStore) {
		if _, err := audit.New(s).SaveAnchor(t.Context()); !errors.Is(err, audit.ErrNoAnchor) {
			t.Errorf("SaveAnchor without an anchor: %v, want ErrNoAnchor", err)
		}
		if err := audit.New(s).Close(t.Context()); err != nil {
			t.Errorf("Close without an anchor: %v", err)
		}
		path := filepath.Join(t.TempDir(), "audit.head")
		garbage := []byte("not a head\n")
		if err := os.WriteFile(path, garbage, 0o600); err != nil {
			t.Fatal(err)
		}
		tr := audit.New(s, audit.WithAnchor(path, 0))
		if _, err := tr.Append(t.Context(), audit.Entry{Actor: "a", Action: "x.y"}); err != nil {
			t.Fatal(err)
		}
		if _, err := tr.SaveAnchor(t.Context()); err == nil {
			t.Error("SaveAnchor over an unreadable head file succeeded")
		}
		if err := tr.Close(t.Context()); err == nil {
			t.Error("Close over an unreadable head file succeeded")
		}
		if b, _ := os.ReadFile(path); string(b) != string(garbage) {
			t.Errorf("unreadable head file overwritten with %q", b)
		}
	})
}

func TestProblemMessages(t *testing.T) {
	anchor := audit.Head{Seq: 9, Hash: make([]byte, 32)}
	tests := []struct {
		name string
		p    audit.Problem
		want string
	}{
		{"changed", audit.Problem{Kind: audit.Changed, Seq: 3, Verified: 2},
			"audit: entry 3 was changed: its content does not match its hash (2 entries verified before it)"},
		{"rehashed", audit.Problem{Kind: audit.Changed, Seq: 3, Rehashed: true, Verified: 3},
			"audit: entry 3 was changed and its hash recomputed: entry 4 was appended after a different entry (3 entries verified before it)"},
		{"removed one", audit.Problem{Kind: audit.Removed, Seq: 4, Last: 4, Verified: 3},
			"audit: entry 4 was removed: entry 5 follows entry 3 (3 entries verified before it)"},
		{"removed several", audit.Problem{Kind: audit.Removed, Seq: 3, Last: 6, Verified: 2},
			"audit: entries 3 to 6 were removed: entry 7 follows entry 2 (2 entries verified before it)"},
		{"removed and renumbered", audit.Problem{Kind: audit.Removed, Seq: 3, Last: 3, AppendedAs: 4, Verified: 2},
			"audit: entry 3 was removed and the later entries renumbered: the entry stored as 3 was appended as 4 (2 entries verified before it)"},
		{"reordered", audit.Problem{Kind: audit.Reordered, Seq: 3, StoredAt: 6, AppendedAs: 6, Verified: 2},
			"audit: entries were reordered: entry 3 is stored at position 6, and position 3 holds the entry appended as 6 (2 entries verified before it)"},
		{"truncated", audit.Problem{Kind: audit.Truncated, Seq: 5, Last: 9, Anchor: anchor, Verified: 4},
			"audit: the newest entries were removed: the trail ends at entry 4, but the saved head is entry 9 (4 entries verified before it)"},
		{"emptied", audit.Problem{Kind: audit.Truncated, Seq: 1, Last: 9, Anchor: anchor},
			"audit: the trail is empty, but the saved head is entry 9: all entries were removed"},
		{"one verified", audit.Problem{Kind: audit.Changed, Seq: 2, Verified: 1},
			"audit: entry 2 was changed: its content does not match its hash (1 entry verified before it)"},
		{"replaced", audit.Problem{Kind: audit.Replaced, Seq: 9, Anchor: anchor, Verified: 8},
			"audit: entry 9 is not the one saved as the head (9:" + "0000000000000000000000000000000000000000000000000000000000000000" +
				"): entries up to it were rewritten, or removed and replaced (8 entries verified before it)"},
		{"unreadable", audit.Problem{Kind: audit.Unreadable, Seq: 6, Err: errors.New("details: bad"), Verified: 5},
			"audit: entry 6 was changed: it cannot be read (details: bad) (5 entries verified before it)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Error(); got != tt.want {
				t.Errorf("Error() =\n  %s\nwant\n  %s", got, tt.want)
			}
			if !errors.Is(&tt.p, audit.ErrTampered) {
				t.Error("does not match ErrTampered")
			}
		})
	}
}

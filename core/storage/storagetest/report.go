package storagetest

// The reporting conformance suite: storage.ReportStore's aggregates over
// archive metadata and the audit trail, with known data, on every backend.

import (
	"slices"
	"testing"
	"time"

	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/storage"
)

// RunReport runs the storage.ReportStore suite. open returns a new, empty
// store that implements ArchiveStore, AuditStore and ReportStore.
func RunReport(t *testing.T, open func(t *testing.T) storage.Store) {
	t.Run("ArchiveSliceStats", func(t *testing.T) {
		s := open(t)
		t.Cleanup(func() { s.Close() })
		as, rs := s.(storage.ArchiveStore), s.(storage.ReportStore)
		ctx := t.Context()
		empty, err := rs.ArchiveSliceStats(ctx, time.Now())
		ok(t, err)
		if len(empty) != 0 {
			t.Fatalf("empty archive: %v", empty)
		}
		t0 := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
		kA := mustKey(t, as, "alice@example.com", 202601, "internal", storage.ArchiveForever)
		kB := mustKey(t, as, "bob@example.com", 202601, "internal", storage.ArchiveForever)
		kC := mustKey(t, as, "alice@example.com", 202602, "internal", storage.ArchiveForever)
		kD := mustKey(t, as, "alice@example.com", 202601, "business_letter", storage.ArchiveForever)
		var rows []storage.ArchiveRow
		add := func(owner string, n uint64, key int64, at time.Time, expires time.Time, size int) {
			rows = append(rows, storage.ArchiveRow{Owner: owner, ID: aid(n), Peer: "x@example.com", Time: at,
				Expires: expires, KeyID: key, Sealed: make([]byte, size)})
		}
		now := t0.AddDate(0, 3, 0)
		add("alice@example.com", 1, kA.ID, t0, now.Add(-time.Hour), 100)                      // past due
		add("alice@example.com", 2, kA.ID, t0.Add(time.Hour), now, 50)                        // past due (Expires == now)
		add("bob@example.com", 3, kB.ID, t0.Add(-time.Hour), now.Add(time.Second), 10)        // oldest internal of 202601
		add("alice@example.com", 4, kC.ID, t0.AddDate(0, 1, 0), now.AddDate(0, 1, 0), 7)      // 202602
		add("alice@example.com", 5, kD.ID, t0.Add(2*time.Hour), storage.ArchiveForever, 1000) // kept for ever
		add("alice@example.com", 6, kD.ID, t0.Add(3*time.Hour), storage.ArchiveForever, 1)
		ok(t, as.AppendArchive(ctx, rows, nil))
		got, err := rs.ArchiveSliceStats(ctx, now)
		ok(t, err)
		want := []storage.ArchiveSliceStat{
			{Class: "business_letter", Slice: 202601, Messages: 2, Bytes: 1001, Oldest: t0.Add(2 * time.Hour)},
			{Class: "internal", Slice: 202601, Messages: 3, Bytes: 160, Oldest: t0.Add(-time.Hour), PastDue: 2},
			{Class: "internal", Slice: 202602, Messages: 1, Bytes: 7, Oldest: t0.AddDate(0, 1, 0)},
		}
		if !slices.EqualFunc(got, want, func(a, b storage.ArchiveSliceStat) bool {
			return a.Class == b.Class && a.Slice == b.Slice && a.Messages == b.Messages && a.Bytes == b.Bytes &&
				a.Oldest.Equal(b.Oldest) && a.PastDue == b.PastDue
		}) {
			t.Fatalf("ArchiveSliceStats:\n got %+v\nwant %+v", got, want)
		}
	})

	t.Run("AuditCounts", func(t *testing.T) {
		s := open(t)
		t.Cleanup(func() { s.Close() })
		rs := s.(storage.ReportStore)
		ctx := t.Context()
		t0 := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
		at := t0
		tr := audit.New(s.(storage.AuditStore), audit.WithClock(func() time.Time { return at }))
		for i, e := range []audit.Entry{
			{Actor: "a@x", Action: "policy.deny", Reason: "contact.ethical_wall", Details: map[string]string{"decision": "contact"}},
			{Actor: "a@x", Action: "policy.deny", Reason: "contact.ethical_wall", Details: map[string]string{"decision": "contact"}},
			{Actor: "b@x", Action: "policy.deny", Reason: "contact.ethical_wall", Details: map[string]string{"decision": "contact"}},
			{Actor: "b@x", Action: "policy.deny", Reason: "e2ee.required"},
			{Actor: "ldapsync", Action: "ldap.sync"},
			{Actor: "a@x", Action: "policyx.deny", Reason: "contact.ethical_wall"},
			{Actor: "a@x", Action: "policy.deny", Reason: "contact.ethical_wall", Details: map[string]string{"decision": "contact"}}, // outside
		} {
			at = t0.Add(time.Duration(i) * time.Hour)
			_, err := tr.Append(ctx, e)
			ok(t, err)
		}
		until := t0.Add(6 * time.Hour)
		got, err := rs.AuditCounts(ctx, "policy", "decision", t0, until)
		ok(t, err)
		want := []storage.AuditCount{
			{Action: "policy.deny", Actor: "a@x", Reason: "contact.ethical_wall", Detail: "contact", Count: 2, First: t0, Last: t0.Add(time.Hour)},
			{Action: "policy.deny", Actor: "b@x", Reason: "contact.ethical_wall", Detail: "contact", Count: 1, First: t0.Add(2 * time.Hour), Last: t0.Add(2 * time.Hour)},
			{Action: "policy.deny", Actor: "b@x", Reason: "e2ee.required", Detail: "", Count: 1, First: t0.Add(3 * time.Hour), Last: t0.Add(3 * time.Hour)},
		}
		eq := func(a, b storage.AuditCount) bool {
			return a.Action == b.Action && a.Actor == b.Actor && a.Reason == b.Reason && a.Detail == b.Detail &&
				a.Count == b.Count && a.First.Equal(b.First) && a.Last.Equal(b.Last)
		}
		if !slices.EqualFunc(got, want, eq) {
			t.Fatalf("AuditCounts:\n got %+v\nwant %+v", got, want)
		}
		all, err := rs.AuditCounts(ctx, "", "", time.Time{}, time.Time{})
		ok(t, err)
		var n int64
		for _, c := range all {
			n += c.Count
			if c.Detail != "" {
				t.Errorf("no detail asked, got %q", c.Detail)
			}
		}
		if n != 7 || len(all) != 5 {
			t.Fatalf("AuditCounts without bounds: %d records in %d groups, want 7 in 5: %+v", n, len(all), all)
		}
	})
}

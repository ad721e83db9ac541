package storagetest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"syscall"
	"testing"
	"time"

	"kontor.im/kontor/core/storage"
)

// RunArchive runs the conformance suite of storage.ArchiveStore. open
// follows the same rules as for Run: a new, empty database on the first
// call for a given t, the same database on later calls. The suite closes
// what it opens (through the store's Close, when it has one).
func RunArchive(t *testing.T, open func(t *testing.T) storage.ArchiveStore) {
	h := &archiveHarness{open: open}
	groups := []struct {
		name string
		run  func(*testing.T, *archiveHarness)
	}{
		{"Keys", testArchiveKeys},
		{"AppendAndQuery", testArchiveAppendQuery},
		{"QueryFilters", testArchiveQueryFilters},
		{"AppendIdempotent", testArchiveAppendIdempotent},
		{"KeepUntil", testArchiveKeepUntil},
		{"Prefs", testArchivePrefs},
		{"Expiry", testArchiveExpiry},
		{"DestroyKeys", testArchiveDestroyKeys},
		{"Rotation", testArchiveRotation},
		{"Reopen", testArchiveReopen},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			g.run(t, h)
		})
	}
}

type archiveHarness struct {
	open func(*testing.T) storage.ArchiveStore
}

func (h *archiveHarness) store(t *testing.T) storage.ArchiveStore {
	t.Helper()
	s := h.open(t)
	t.Cleanup(func() {
		if c, ok := s.(interface{ Close() error }); ok {
			if err := c.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}
	})
	return s
}

// aid makes a 16-byte ID that sorts by n.
func aid(n uint64) [16]byte {
	var id [16]byte
	binary.BigEndian.PutUint64(id[:8], n)
	id[15] = 0x5A
	return id
}

var (
	idMin = [16]byte{}
	idMax = [16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
)

var archiveT0 = time.Date(2025, 3, 30, 1, 59, 59, 999999000, berlin)

// mustKey creates a key for a slot and returns it as stored.
func mustKey(t *testing.T, s storage.ArchiveStore, owner string, slice int, class string, keep time.Time) storage.ArchiveKey {
	t.Helper()
	ctx := t.Context()
	ok(t, s.CreateArchiveKeys(ctx, []storage.ArchiveKey{{
		ArchiveKeySlot: storage.ArchiveKeySlot{Owner: owner, Slice: slice, Class: class},
		KEKID:          "kek-1", Wrapped: []byte("wrapped " + owner + class), KeepUntil: keep,
	}}))
	keys, err := s.ArchiveKeys(ctx, []storage.ArchiveKeySlot{{Owner: owner, Slice: slice, Class: class}})
	ok(t, err)
	if len(keys) != 1 {
		t.Fatalf("ArchiveKeys after create: %d keys, want 1", len(keys))
	}
	return keys[0]
}

func row(owner string, n uint64, peer, res string, key int64) storage.ArchiveRow {
	return storage.ArchiveRow{
		Owner: owner, ID: aid(n), Peer: peer, PeerResource: res,
		Outgoing: n%2 == 0, Encrypted: n%3 == 0,
		Time:    archiveT0.Add(time.Duration(n) * time.Minute),
		Expires: archiveT0.Add(time.Duration(n)*time.Minute + 90*24*time.Hour),
		KeyID:   key, Sealed: []byte(fmt.Sprintf("sealed %s %d \x00\xff", owner, n)),
	}
}

func checkRows(t *testing.T, got, want []storage.ArchiveRow) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d rows %v, want %d %v", len(got), rowIDs(got), len(want), rowIDs(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Owner != w.Owner || g.ID != w.ID || g.Peer != w.Peer || g.PeerResource != w.PeerResource ||
			g.Outgoing != w.Outgoing || g.Encrypted != w.Encrypted || g.KeyID != w.KeyID || !bytes.Equal(g.Sealed, w.Sealed) {
			t.Errorf("row %d = %+v, want %+v", i, g, w)
		}
		sameTime(t, "Time", g.Time, w.Time)
		if !w.Expires.Equal(storage.ArchiveForever) {
			sameTime(t, "Expires", g.Expires, w.Expires)
		} else if !g.Expires.Equal(storage.ArchiveForever) {
			t.Errorf("Expires = %v, want ArchiveForever", g.Expires)
		}
	}
}

func rowIDs(rows []storage.ArchiveRow) []uint64 {
	out := make([]uint64, len(rows))
	for i, r := range rows {
		out[i] = binary.BigEndian.Uint64(r.ID[:8])
	}
	return out
}

func testArchiveKeys(t *testing.T, h *archiveHarness) {
	s := h.store(t)
	ctx := t.Context()
	keep := archiveT0.Add(1000 * time.Hour)
	in := []storage.ArchiveKey{
		{ArchiveKeySlot: storage.ArchiveKeySlot{Owner: alice, Slice: 202503, Class: "standard"}, KEKID: "k1", Wrapped: []byte{1, 2, 3}, Created: archiveT0, KeepUntil: keep},
		{ArchiveKeySlot: storage.ArchiveKeySlot{Owner: alice, Slice: 202504, Class: "standard"}, KEKID: "k1", Wrapped: []byte{4}, Created: archiveT0, KeepUntil: keep},
		{ArchiveKeySlot: storage.ArchiveKeySlot{Owner: alice, Slice: 202503, Class: "legal"}, KEKID: "k2", Wrapped: []byte{5}, Created: archiveT0, KeepUntil: storage.ArchiveForever},
		{ArchiveKeySlot: storage.ArchiveKeySlot{Owner: wei, Slice: 202503, Class: "standard"}, KEKID: "k1", Wrapped: []byte{6}, Created: archiveT0, KeepUntil: keep},
	}
	ok(t, s.CreateArchiveKeys(ctx, in))
	// A slot that has a key keeps it.
	ok(t, s.CreateArchiveKeys(ctx, []storage.ArchiveKey{{ArchiveKeySlot: in[0].ArchiveKeySlot, KEKID: "other", Wrapped: []byte{9}, KeepUntil: keep}}))

	slots := []storage.ArchiveKeySlot{in[0].ArchiveKeySlot, in[1].ArchiveKeySlot, in[2].ArchiveKeySlot, in[3].ArchiveKeySlot,
		{Owner: bob, Slice: 202503, Class: "standard"}}
	got, err := s.ArchiveKeys(ctx, slots)
	ok(t, err)
	if len(got) != 4 {
		t.Fatalf("ArchiveKeys: %d keys, want 4", len(got))
	}
	bySlot := map[storage.ArchiveKeySlot]storage.ArchiveKey{}
	ids := map[int64]bool{}
	for _, k := range got {
		bySlot[k.ArchiveKeySlot] = k
		if k.ID == 0 || ids[k.ID] {
			t.Errorf("key ID %d is zero or repeated", k.ID)
		}
		ids[k.ID] = true
	}
	for _, w := range in {
		g, found := bySlot[w.ArchiveKeySlot]
		if !found {
			t.Fatalf("slot %+v missing", w.ArchiveKeySlot)
		}
		if g.KEKID != w.KEKID || !bytes.Equal(g.Wrapped, w.Wrapped) {
			t.Errorf("key %+v = %s %x, want %s %x", w.ArchiveKeySlot, g.KEKID, g.Wrapped, w.KEKID, w.Wrapped)
		}
		sameTime(t, "Created", g.Created, w.Created)
		if !g.KeepUntil.Equal(w.KeepUntil.Truncate(time.Microsecond)) {
			t.Errorf("KeepUntil = %v, want %v", g.KeepUntil, w.KeepUntil)
		}
	}

	tests := []struct {
		name string
		ids  []int64
		want int
	}{
		{"none", nil, 0},
		{"one", []int64{bySlot[in[0].ArchiveKeySlot].ID}, 1},
		{"all and unknown", []int64{bySlot[in[0].ArchiveKeySlot].ID, bySlot[in[1].ArchiveKeySlot].ID,
			bySlot[in[2].ArchiveKeySlot].ID, bySlot[in[3].ArchiveKeySlot].ID, 999999}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ArchiveKeysByID(ctx, tt.ids)
			ok(t, err)
			if len(got) != tt.want {
				t.Fatalf("ArchiveKeysByID(%v): %d keys, want %d", tt.ids, len(got), tt.want)
			}
			for _, k := range got {
				if bySlot[k.ArchiveKeySlot].ID != k.ID {
					t.Errorf("key %d has slot %+v of key %d", k.ID, k.ArchiveKeySlot, bySlot[k.ArchiveKeySlot].ID)
				}
			}
		})
	}

	t.Run("many slots", func(t *testing.T) {
		var many []storage.ArchiveKey
		var manySlots []storage.ArchiveKeySlot
		for i := range 450 {
			sl := storage.ArchiveKeySlot{Owner: fmt.Sprintf("u%03d@example.com", i), Slice: 202501, Class: "c"}
			many = append(many, storage.ArchiveKey{ArchiveKeySlot: sl, KEKID: "k1", Wrapped: []byte{byte(i)}, KeepUntil: keep})
			manySlots = append(manySlots, sl)
		}
		ok(t, s.CreateArchiveKeys(ctx, many))
		got, err := s.ArchiveKeys(ctx, manySlots)
		ok(t, err)
		if len(got) != len(many) {
			t.Fatalf("%d keys, want %d", len(got), len(many))
		}
		var gids []int64
		for _, k := range got {
			gids = append(gids, k.ID)
		}
		byID, err := s.ArchiveKeysByID(ctx, gids)
		ok(t, err)
		if len(byID) != len(many) {
			t.Fatalf("by ID: %d keys, want %d", len(byID), len(many))
		}
	})
}

func testArchiveAppendQuery(t *testing.T, h *archiveHarness) {
	s := h.store(t)
	ctx := t.Context()
	k := mustKey(t, s, zoe, 202503, "standard", storage.ArchiveForever)
	kw := mustKey(t, s, wei, 202503, "standard", storage.ArchiveForever)
	var zrows []storage.ArchiveRow
	var all []storage.ArchiveRow
	for n := uint64(1); n <= 30; n++ {
		r := row(zoe, n*10, bob, "", k.ID)
		zrows = append(zrows, r)
		all = append(all, r, row(wei, n*10, zoe, "", kw.ID)) // interleaved owners
	}
	all[0].Expires = storage.ArchiveForever
	zrows[0].Expires = storage.ArchiveForever
	// A big batch crosses the backends' chunk sizes.
	for n := uint64(1000); n < 1500; n++ {
		all = append(all, row(wei, n, alice, "phone", kw.ID))
	}
	ok(t, s.AppendArchive(ctx, all, nil))

	q := storage.ArchiveRowQuery{Owner: zoe, MinID: idMin, MaxID: idMax, Limit: 100}
	got, err := s.QueryArchive(ctx, q)
	ok(t, err)
	checkRows(t, got, zrows)

	tests := []struct {
		name string
		q    func(q storage.ArchiveRowQuery) storage.ArchiveRowQuery
		want []storage.ArchiveRow
	}{
		{"limit", func(q storage.ArchiveRowQuery) storage.ArchiveRowQuery { q.Limit = 5; return q }, zrows[:5]},
		{"backward", func(q storage.ArchiveRowQuery) storage.ArchiveRowQuery { q.Backward, q.Limit = true, 3; return q },
			[]storage.ArchiveRow{zrows[29], zrows[28], zrows[27]}},
		{"id range inclusive", func(q storage.ArchiveRowQuery) storage.ArchiveRowQuery { q.MinID, q.MaxID = aid(50), aid(80); return q }, zrows[4:8]},
		{"id range backward", func(q storage.ArchiveRowQuery) storage.ArchiveRowQuery {
			q.MinID, q.MaxID, q.Backward, q.Limit = aid(51), aid(80), true, 2
			return q
		}, []storage.ArchiveRow{zrows[7], zrows[6]}},
		{"empty range", func(q storage.ArchiveRowQuery) storage.ArchiveRowQuery { q.MinID, q.MaxID = aid(51), aid(59); return q }, nil},
		{"unknown owner", func(q storage.ArchiveRowQuery) storage.ArchiveRowQuery { q.Owner = carol; return q }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.QueryArchive(ctx, tt.q(q))
			ok(t, err)
			checkRows(t, got, tt.want)
		})
	}

	t.Run("count", func(t *testing.T) {
		counts := []struct {
			name  string
			q     storage.ArchiveRowQuery
			limit int
			want  int
		}{
			{"all", q, 1000, 30},
			{"capped", q, 7, 7},
			{"other owner", storage.ArchiveRowQuery{Owner: wei, MinID: idMin, MaxID: idMax}, 10000, 530},
			{"range", storage.ArchiveRowQuery{Owner: zoe, MinID: aid(50), MaxID: aid(80)}, 100, 4},
		}
		for _, c := range counts {
			n, err := s.CountArchive(ctx, c.q, c.limit)
			ok(t, err)
			if n != c.want {
				t.Errorf("%s: CountArchive = %d, want %d", c.name, n, c.want)
			}
		}
	})

	// QueryArchiveCounted is QueryArchive and CountArchive in one: every
	// page above with every count above.
	t.Run("counted", func(t *testing.T) {
		pages := []storage.ArchiveRowQuery{q, {Owner: zoe, MinID: idMin, MaxID: idMax, Limit: 0}, {Owner: carol, MinID: idMin, MaxID: idMax, Limit: 5}}
		for _, tt := range tests {
			pages = append(pages, tt.q(q))
		}
		counts := []struct {
			q     storage.ArchiveRowQuery
			limit int
		}{{q, 1000}, {q, 7}, {storage.ArchiveRowQuery{Owner: wei, MinID: idMin, MaxID: idMax}, 10000}, {storage.ArchiveRowQuery{Owner: carol, MinID: idMin, MaxID: idMax}, 10}}
		for i, p := range pages {
			want, err := s.QueryArchive(ctx, p)
			ok(t, err)
			for j, c := range counts {
				wantN, err := s.CountArchive(ctx, c.q, c.limit)
				ok(t, err)
				got, n, err := s.QueryArchiveCounted(ctx, p, c.q, c.limit)
				ok(t, err)
				if n != wantN {
					t.Errorf("page %d, count %d: count = %d, want %d", i, j, n, wantN)
				}
				checkRows(t, got, want)
			}
		}
	})
}

func testArchiveQueryFilters(t *testing.T, h *archiveHarness) {
	s := h.store(t)
	ctx := t.Context()
	k := mustKey(t, s, alice, 202503, "standard", storage.ArchiveForever)
	rows := []storage.ArchiveRow{
		row(alice, 1, bob, "phone", k.ID),
		row(alice, 2, bob, "laptop", k.ID),
		row(alice, 3, carol, "", k.ID),
		row(alice, 4, bob, "", k.ID),
		row(alice, 5, zoe, "phone", k.ID),
		row(alice, 6, bob, "phone", k.ID),
	}
	ok(t, s.AppendArchive(ctx, rows, nil))
	base := storage.ArchiveRowQuery{Owner: alice, MinID: idMin, MaxID: idMax, Limit: 50}
	pick := func(i ...int) []storage.ArchiveRow {
		var out []storage.ArchiveRow
		for _, n := range i {
			out = append(out, rows[n-1])
		}
		return out
	}
	tests := []struct {
		name string
		mod  func(*storage.ArchiveRowQuery)
		want []storage.ArchiveRow
		// count is what CountArchive returns when the page is limited
		// (0: len(want)).
		count int
	}{
		{"peer", func(q *storage.ArchiveRowQuery) { q.Peer = bob }, pick(1, 2, 4, 6), 0},
		{"peer and resource", func(q *storage.ArchiveRowQuery) { q.Peer, q.PeerResource = bob, "phone" }, pick(1, 6), 0},
		{"resource of another peer", func(q *storage.ArchiveRowQuery) { q.Peer, q.PeerResource = carol, "phone" }, nil, 0},
		{"start", func(q *storage.ArchiveRowQuery) { q.Start = rows[3].Time }, pick(4, 5, 6), 0},
		{"end", func(q *storage.ArchiveRowQuery) { q.End = rows[1].Time }, pick(1, 2), 0},
		{"start and end", func(q *storage.ArchiveRowQuery) { q.Start, q.End = rows[1].Time, rows[2].Time.Add(time.Second) }, pick(2, 3), 0},
		{"ids", func(q *storage.ArchiveRowQuery) { q.IDs = [][16]byte{aid(5), aid(2), aid(99)} }, pick(2, 5), 0},
		{"empty ids", func(q *storage.ArchiveRowQuery) { q.IDs = [][16]byte{} }, nil, 0},
		{"ids and peer", func(q *storage.ArchiveRowQuery) { q.IDs, q.Peer = [][16]byte{aid(5), aid(2)}, bob }, pick(2), 0},
		{"peer backward limited", func(q *storage.ArchiveRowQuery) { q.Peer, q.Backward, q.Limit = bob, true, 2 }, pick(6, 4), 4},
		{"peer and id range", func(q *storage.ArchiveRowQuery) { q.Peer, q.MinID, q.MaxID = bob, aid(2), aid(5) }, pick(2, 4), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := base
			tt.mod(&q)
			got, err := s.QueryArchive(ctx, q)
			ok(t, err)
			checkRows(t, got, tt.want)
			want := tt.count
			if want == 0 {
				want = len(tt.want)
			}
			n, err := s.CountArchive(ctx, q, 1000)
			ok(t, err)
			if n != want {
				t.Errorf("CountArchive = %d, want %d", n, want)
			}
			// The same filter for the count, and a page narrowed after
			// the first row (as a MAM page after an id).
			got, n, err = s.QueryArchiveCounted(ctx, q, q, 1000)
			ok(t, err)
			checkRows(t, got, tt.want)
			if n != want {
				t.Errorf("QueryArchiveCounted: count = %d, want %d", n, want)
			}
			if len(tt.want) > 0 && !q.Backward {
				narrowed := q
				narrowed.MinID = tt.want[0].ID
				narrowed.MinID[15]++
				got, n, err = s.QueryArchiveCounted(ctx, narrowed, q, 1000)
				ok(t, err)
				checkRows(t, got, tt.want[1:])
				if n != want {
					t.Errorf("QueryArchiveCounted, narrowed: count = %d, want %d", n, want)
				}
			}
		})
	}
}

func testArchiveAppendIdempotent(t *testing.T, h *archiveHarness) {
	s := h.store(t)
	ctx := t.Context()
	k := mustKey(t, s, alice, 202503, "standard", storage.ArchiveForever)
	first := []storage.ArchiveRow{row(alice, 1, bob, "", k.ID), row(alice, 2, bob, "", k.ID)}
	ok(t, s.AppendArchive(ctx, first, nil))
	// A retried batch that overlaps: stored rows stay as they were, new
	// ones are added.
	again := []storage.ArchiveRow{row(alice, 2, carol, "", k.ID), row(alice, 3, bob, "", k.ID)}
	again[0].Sealed = []byte("different")
	ok(t, s.AppendArchive(ctx, again, nil))
	got, err := s.QueryArchive(ctx, storage.ArchiveRowQuery{Owner: alice, MinID: idMin, MaxID: idMax, Limit: 10})
	ok(t, err)
	checkRows(t, got, []storage.ArchiveRow{first[0], first[1], again[1]})
	// The same ID for another owner is another message.
	kb := mustKey(t, s, bob, 202503, "standard", storage.ArchiveForever)
	ok(t, s.AppendArchive(ctx, []storage.ArchiveRow{row(bob, 1, alice, "", kb.ID)}, nil))
	got, err = s.QueryArchive(ctx, storage.ArchiveRowQuery{Owner: bob, MinID: idMin, MaxID: idMax, Limit: 10})
	ok(t, err)
	checkRows(t, got, []storage.ArchiveRow{row(bob, 1, alice, "", kb.ID)})
}

func testArchiveKeepUntil(t *testing.T, h *archiveHarness) {
	s := h.store(t)
	ctx := t.Context()
	keep := archiveT0.Add(100 * time.Hour)
	k := mustKey(t, s, alice, 202503, "standard", keep)
	keepOf := func() time.Time {
		t.Helper()
		keys, err := s.ArchiveKeysByID(ctx, []int64{k.ID})
		ok(t, err)
		if len(keys) != 1 {
			t.Fatalf("key %d gone", k.ID)
		}
		return keys[0].KeepUntil
	}
	tests := []struct {
		name  string
		raise time.Time
		want  time.Time
	}{
		{"raised", keep.Add(time.Hour), keep.Add(time.Hour)},
		{"never lowered", keep, keep.Add(time.Hour)},
		{"forever", storage.ArchiveForever, storage.ArchiveForever},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok(t, s.AppendArchive(ctx, []storage.ArchiveRow{row(alice, uint64(i+1), bob, "", k.ID)},
				[]storage.ArchiveKeepUntil{{KeyID: k.ID, KeepUntil: tt.raise}}))
			if got := keepOf(); !got.Equal(tt.want.Truncate(time.Microsecond)) {
				t.Errorf("KeepUntil = %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("missing key fails the batch", func(t *testing.T) {
		err := s.AppendArchive(ctx, []storage.ArchiveRow{row(alice, 50, bob, "", k.ID)},
			[]storage.ArchiveKeepUntil{{KeyID: k.ID, KeepUntil: keep}, {KeyID: k.ID + 1000, KeepUntil: keep}})
		is(t, err, storage.ErrNotFound)
		got, err := s.QueryArchive(ctx, storage.ArchiveRowQuery{Owner: alice, MinID: aid(50), MaxID: aid(50), Limit: 1})
		ok(t, err)
		if len(got) != 0 {
			t.Errorf("the failed batch stored %d rows", len(got))
		}
	})
}

func testArchivePrefs(t *testing.T, h *archiveHarness) {
	s := h.store(t)
	ctx := t.Context()
	_, err := s.ArchivePrefs(ctx, alice)
	is(t, err, storage.ErrNotFound)
	tests := []struct {
		name string
		set  storage.ArchivePrefs
	}{
		{"lists", storage.ArchivePrefs{Default: "roster", Always: []string{bob, wei}, Never: []string{carol}}},
		{"replaced, empty lists", storage.ArchivePrefs{Default: "never"}},
		{"unicode", storage.ArchivePrefs{Default: "always", Never: []string{zoe}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok(t, s.SetArchivePrefs(ctx, alice, tt.set))
			got, err := s.ArchivePrefs(ctx, alice)
			ok(t, err)
			if !reflect.DeepEqual(got, tt.set) {
				t.Errorf("ArchivePrefs = %+v, want %+v", got, tt.set)
			}
		})
	}
	_, err = s.ArchivePrefs(ctx, bob)
	is(t, err, storage.ErrNotFound)
}

func testArchiveExpiry(t *testing.T, h *archiveHarness) {
	s := h.store(t)
	ctx := t.Context()
	ka := mustKey(t, s, alice, 202503, "standard", storage.ArchiveForever)
	kb := mustKey(t, s, bob, 202503, "standard", storage.ArchiveForever)
	now := archiveT0.Add(1000 * time.Hour)
	mk := func(owner string, n uint64, key int64, expires time.Time) storage.ArchiveRow {
		r := row(owner, n, carol, "", key)
		r.Expires = expires
		return r
	}
	rows := []storage.ArchiveRow{
		mk(alice, 1, ka.ID, now.Add(-time.Hour)),
		mk(alice, 2, ka.ID, now.Add(-3*time.Hour)),
		mk(alice, 3, ka.ID, now.Add(time.Hour)),
		mk(bob, 1, kb.ID, now.Add(-2*time.Hour)),
		mk(bob, 2, kb.ID, now),
		mk(bob, 3, kb.ID, storage.ArchiveForever),
	}
	ok(t, s.AppendArchive(ctx, rows, nil))
	ref := func(r storage.ArchiveRow) storage.ArchiveRef {
		return storage.ArchiveRef{Owner: r.Owner, ID: r.ID, KeyID: r.KeyID}
	}
	tests := []struct {
		name  string
		skip  []string
		limit int
		want  []storage.ArchiveRef
	}{
		{"oldest expiry first", nil, 10, []storage.ArchiveRef{ref(rows[1]), ref(rows[3]), ref(rows[0]), ref(rows[4])}},
		{"limited", nil, 2, []storage.ArchiveRef{ref(rows[1]), ref(rows[3])}},
		{"skip held owner", []string{bob}, 10, []storage.ArchiveRef{ref(rows[1]), ref(rows[0])}},
		{"skip everyone", []string{alice, bob}, 10, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ExpiredArchive(ctx, now, tt.skip, tt.limit)
			ok(t, err)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ExpiredArchive = %+v, want %+v", got, tt.want)
			}
		})
	}
	expired, err := s.ExpiredArchive(ctx, now, nil, 10)
	ok(t, err)
	n, err := s.DeleteArchive(ctx, append(expired, storage.ArchiveRef{Owner: carol, ID: aid(1)}))
	ok(t, err)
	if n != 4 {
		t.Errorf("DeleteArchive = %d, want 4", n)
	}
	n, err = s.DeleteArchive(ctx, expired)
	ok(t, err)
	if n != 0 {
		t.Errorf("DeleteArchive again = %d, want 0", n)
	}
	for _, owner := range []string{alice, bob} {
		got, err := s.QueryArchive(ctx, storage.ArchiveRowQuery{Owner: owner, MinID: idMin, MaxID: idMax, Limit: 10})
		ok(t, err)
		if len(got) != 1 || got[0].ID != aid(3) {
			t.Errorf("%s keeps %v, want only message 3", owner, rowIDs(got))
		}
	}
}

func testArchiveDestroyKeys(t *testing.T, h *archiveHarness) {
	s := h.store(t)
	ctx := t.Context()
	now := archiveT0.Add(1000 * time.Hour)
	k1 := mustKey(t, s, alice, 202501, "standard", now.Add(-time.Hour))
	k2 := mustKey(t, s, alice, 202502, "standard", now.Add(-time.Minute))
	k3 := mustKey(t, s, alice, 202503, "standard", now.Add(time.Hour))
	k4 := mustKey(t, s, bob, 202501, "standard", now)
	mustKey(t, s, bob, 202501, "legal", storage.ArchiveForever)
	ok(t, s.AppendArchive(ctx, []storage.ArchiveRow{row(alice, 10, bob, "", k2.ID), row(alice, 20, bob, "", k2.ID)}, nil))

	t.Run("expired keys", func(t *testing.T) {
		tests := []struct {
			name  string
			after int64
			limit int
			want  []int64
		}{
			{"all", 0, 10, []int64{k1.ID, k2.ID, k4.ID}},
			{"after", k1.ID, 10, []int64{k2.ID, k4.ID}},
			{"limit", 0, 1, []int64{k1.ID}},
		}
		for _, tt := range tests {
			keys, err := s.ExpiredArchiveKeys(ctx, now, tt.after, tt.limit)
			ok(t, err)
			var got []int64
			for _, k := range keys {
				got = append(got, k.ID)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%s: ExpiredArchiveKeys = %v, want %v", tt.name, got, tt.want)
			}
		}
	})

	rng := func(k storage.ArchiveKey, lo, hi uint64) storage.ArchiveKeyRange {
		return storage.ArchiveKeyRange{KeyID: k.ID, Owner: k.Owner, MinID: aid(lo), MaxID: aid(hi)}
	}
	// k2 still seals messages 10 and 20: it stays while they are in its
	// range; k1 and k4 seal nothing; the owner must match.
	gone, err := s.DestroyArchiveKeys(ctx, []storage.ArchiveKeyRange{
		rng(k1, 0, 100), rng(k2, 0, 100), {KeyID: k4.ID, Owner: alice, MaxID: idMax}, rng(k3, 15, 15)})
	ok(t, err)
	sort.Slice(gone, func(i, j int) bool { return gone[i] < gone[j] })
	if want := []int64{k1.ID, k3.ID}; !reflect.DeepEqual(gone, want) {
		t.Errorf("destroyed %v, want %v", gone, want)
	}
	_, err = s.DeleteArchive(ctx, []storage.ArchiveRef{{Owner: alice, ID: aid(10)}, {Owner: alice, ID: aid(20)}})
	ok(t, err)
	gone, err = s.DestroyArchiveKeys(ctx, []storage.ArchiveKeyRange{rng(k2, 0, 100), rng(k4, 0, 100), rng(k1, 0, 100)})
	ok(t, err)
	sort.Slice(gone, func(i, j int) bool { return gone[i] < gone[j] })
	if want := []int64{k2.ID, k4.ID}; !reflect.DeepEqual(gone, want) {
		t.Errorf("destroyed %v, want %v", gone, want)
	}
	left, err := s.ArchiveKeysByID(ctx, []int64{k1.ID, k2.ID, k3.ID, k4.ID})
	ok(t, err)
	if len(left) != 0 {
		t.Errorf("%d destroyed keys are still readable", len(left))
	}
	// A destroyed slot's ID is never reused.
	k5 := mustKey(t, s, alice, 202501, "standard", now)
	for _, old := range []int64{k1.ID, k2.ID, k3.ID, k4.ID} {
		if k5.ID == old {
			t.Errorf("new key reuses destroyed ID %d", old)
		}
	}
}

func testArchiveRotation(t *testing.T, h *archiveHarness) {
	s := h.store(t)
	ctx := t.Context()
	_, err := s.LatestArchiveRotation(ctx)
	is(t, err, storage.ErrNotFound)
	var keys []storage.ArchiveKey
	for i := range 5 {
		keys = append(keys, mustKey(t, s, fmt.Sprintf("u%d@example.com", i), 202503, "standard", storage.ArchiveForever))
	}
	counts, err := s.ArchiveKeyCounts(ctx)
	ok(t, err)
	if !reflect.DeepEqual(counts, map[string]int64{"kek-1": 5}) {
		t.Errorf("ArchiveKeyCounts = %v", counts)
	}

	r, err := s.StartArchiveRotation(ctx, "kek-2", archiveT0)
	ok(t, err)
	if r.Target != "kek-2" || !r.Finished.IsZero() || r.Rewrapped != 0 {
		t.Errorf("started %+v", r)
	}
	sameTime(t, "Started", r.Started, archiveT0)

	page, err := s.ArchiveKeysNotUnder(ctx, "kek-2", 0, 3)
	ok(t, err)
	if len(page) != 3 || page[0].ID != keys[0].ID || page[2].ID != keys[2].ID {
		t.Fatalf("ArchiveKeysNotUnder: %d keys", len(page))
	}
	var rw []storage.ArchiveKeyRewrap
	for _, k := range page {
		rw = append(rw, storage.ArchiveKeyRewrap{ID: k.ID, OldKEKID: k.KEKID, NewKEKID: "kek-2", Wrapped: []byte("new " + k.Owner)})
	}
	// One whose KEK changed meanwhile is not replaced.
	rw = append(rw, storage.ArchiveKeyRewrap{ID: keys[3].ID, OldKEKID: "kek-0", NewKEKID: "kek-2", Wrapped: []byte("lost")})
	n, err := s.RewrapArchiveKeys(ctx, rw)
	ok(t, err)
	if n != 3 {
		t.Errorf("RewrapArchiveKeys = %d, want 3", n)
	}
	// An interrupted rotation is found again, with its progress.
	r, err = s.StartArchiveRotation(ctx, "kek-2", archiveT0.Add(time.Hour))
	ok(t, err)
	if r.Rewrapped != 3 || !r.Finished.IsZero() {
		t.Errorf("resumed rotation = %+v, want 3 rewrapped", r)
	}
	sameTime(t, "Started", r.Started, archiveT0)
	rest, err := s.ArchiveKeysNotUnder(ctx, "kek-2", 0, 10)
	ok(t, err)
	if len(rest) != 2 || rest[0].ID != keys[3].ID {
		t.Fatalf("left to rewrap: %d", len(rest))
	}
	got, err := s.ArchiveKeysByID(ctx, []int64{keys[3].ID, keys[0].ID})
	ok(t, err)
	for _, k := range got {
		switch k.ID {
		case keys[0].ID:
			if k.KEKID != "kek-2" || string(k.Wrapped) != "new "+k.Owner {
				t.Errorf("rewrapped key = %s %q", k.KEKID, k.Wrapped)
			}
		case keys[3].ID:
			if k.KEKID != "kek-1" || string(k.Wrapped) == "lost" {
				t.Errorf("key with a stale KEK was replaced: %s %q", k.KEKID, k.Wrapped)
			}
		}
	}
	ok(t, s.FinishArchiveRotation(ctx, archiveT0.Add(2*time.Hour)))
	r, err = s.LatestArchiveRotation(ctx)
	ok(t, err)
	sameTime(t, "Finished", r.Finished, archiveT0.Add(2*time.Hour))
	// After a finished one, the same target starts a new record.
	r, err = s.StartArchiveRotation(ctx, "kek-2", archiveT0.Add(3*time.Hour))
	ok(t, err)
	if r.Rewrapped != 0 || !r.Finished.IsZero() {
		t.Errorf("new rotation = %+v", r)
	}
	counts, err = s.ArchiveKeyCounts(ctx)
	ok(t, err)
	if !reflect.DeepEqual(counts, map[string]int64{"kek-1": 2, "kek-2": 3}) {
		t.Errorf("ArchiveKeyCounts = %v", counts)
	}
}

func testArchiveReopen(t *testing.T, h *archiveHarness) {
	s := h.store(t)
	ctx := t.Context()
	k := mustKey(t, s, wei, 202503, "standard", storage.ArchiveForever)
	want := []storage.ArchiveRow{row(wei, 7, zoe, "手机", k.ID)}
	ok(t, s.AppendArchive(ctx, want, nil))
	ok(t, s.SetArchivePrefs(ctx, wei, storage.ArchivePrefs{Default: "always"}))
	s2 := h.store(t)
	got, err := s2.QueryArchive(ctx, storage.ArchiveRowQuery{Owner: wei, MinID: idMin, MaxID: idMax, Limit: 10})
	ok(t, err)
	checkRows(t, got, want)
	if _, err := s2.ArchivePrefs(ctx, wei); errors.Is(err, storage.ErrNotFound) {
		t.Error("prefs lost on reopen")
	}
}

// BenchArchiveAppend measures storing one batch of n archived messages
// (the archive's flusher: at low message rates most batches are small).
// dbCPU, if not nil, is the database server's CPU time so far: its share
// per batch is reported too (for PostgreSQL, most of a flush's cost).
func BenchArchiveAppend(b *testing.B, s storage.ArchiveStore, n int, dbCPU func() time.Duration) {
	ctx := b.Context()
	slot := storage.ArchiveKeySlot{Owner: alice, Slice: 202503, Class: "standard"}
	if err := s.CreateArchiveKeys(ctx, []storage.ArchiveKey{{ArchiveKeySlot: slot, KEKID: "kek-1",
		Wrapped: []byte("wrapped"), KeepUntil: storage.ArchiveForever}}); err != nil {
		b.Fatal(err)
	}
	keys, err := s.ArchiveKeys(ctx, []storage.ArchiveKeySlot{slot})
	if err != nil || len(keys) != 1 {
		b.Fatal(err, len(keys))
	}
	sealed := bytes.Repeat([]byte{0xAB}, 400)
	rows := make([]storage.ArchiveRow, n)
	next := uint64(0)
	b.ReportAllocs()
	var db0 time.Duration
	if dbCPU != nil {
		db0 = dbCPU()
	}
	cpu0 := processCPU()
	for b.Loop() {
		for i := range rows {
			next++
			rows[i] = row(alice, next, bob, "phone", keys[0].ID)
			rows[i].Sealed = sealed
		}
		if err := s.AppendArchive(ctx, rows, nil); err != nil {
			b.Fatal(err)
		}
	}
	// The caller's CPU (the server's side; the database's is its own),
	// steadier than wall time on a shared machine.
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "client-cpu-ns/op")
	if dbCPU != nil {
		b.ReportMetric(float64(dbCPU()-db0)/float64(b.N), "db-cpu-ns/op")
	}
}

// processCPU is this process's user and system CPU time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

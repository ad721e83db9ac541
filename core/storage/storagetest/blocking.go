package storagetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"kontor.im/kontor/core/storage"
)

// RunBlocklist runs the conformance suite of storage.Blocklist (XEP-0191
// blocklists, the "blocking" migration track). open follows the rules of
// Run: a new, empty database on the first call for a given t, the same
// database on later calls.
func RunBlocklist(t *testing.T, open func(t *testing.T) storage.Store) {
	h := &harness{open: open}
	groups := []struct {
		name string
		run  func(*testing.T, *harness)
	}{
		{"BlockUnblock", testBlockUnblock},
		{"Quota", testBlockQuota},
		{"QuotaConcurrent", testBlockQuotaConcurrent},
		{"UnblockAll", testUnblockAll},
		{"Owners", testBlockOwners},
		{"DeleteAccount", testBlockDeleteAccount},
		{"Reopen", testBlockReopen},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			g.run(t, h)
		})
	}
}

// blocklist opens a store for t and returns it as Blocklist.
func (h *harness) blocklist(t *testing.T) storage.Blocklist {
	t.Helper()
	s := h.store(t)
	st, ok := s.(storage.Blocklist)
	if !ok {
		t.Fatalf("%s store does not implement storage.Blocklist", s.Backend())
	}
	return st
}

// blocked fails the test unless owner's list is want.
func blocked(t *testing.T, st storage.Blocklist, owner string, want []string) {
	t.Helper()
	got, err := st.BlockedJIDs(t.Context(), owner)
	ok(t, err)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("BlockedJIDs(%s) = %q, want %q", owner, got, want)
	}
}

func testBlockUnblock(t *testing.T, h *harness) {
	st := h.blocklist(t)
	ctx := t.Context()
	blocked(t, st, alice, nil)

	// The four forms XEP-0191 matches, non-ASCII ones included; the
	// store keeps them as given and orders them as bytes.
	steps := []struct {
		name    string
		block   bool
		jids    []string
		changed []string // what the call reports as added or removed
		want    []string // the list afterwards
	}{
		{"block one", true, []string{bob}, []string{bob}, []string{bob}},
		{"block four forms", true,
			[]string{zoe + "/Tablet", "evil.example", "evil.example/bot", bob},
			[]string{zoe + "/Tablet", "evil.example", "evil.example/bot"},
			[]string{bob, "evil.example", "evil.example/bot", zoe + "/Tablet"}},
		{"block duplicates in one call", true, []string{wei, wei, bob}, []string{wei}, []string{bob, "evil.example", "evil.example/bot", zoe + "/Tablet", wei}},
		{"block nothing", true, nil, nil, []string{bob, "evil.example", "evil.example/bot", zoe + "/Tablet", wei}},
		{"unblock some, one absent", false, []string{"evil.example", carol, bob, bob}, []string{"evil.example", bob},
			[]string{"evil.example/bot", zoe + "/Tablet", wei}},
		{"unblock a bare JID keeps its full JID", false, []string{zoe}, nil, []string{"evil.example/bot", zoe + "/Tablet", wei}},
		{"unblock nothing", false, nil, nil, []string{"evil.example/bot", zoe + "/Tablet", wei}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			var (
				got []string
				err error
			)
			if s.block {
				got, err = st.BlockJIDs(ctx, alice, s.jids, 100)
			} else {
				got, err = st.UnblockJIDs(ctx, alice, s.jids)
			}
			ok(t, err)
			if !reflect.DeepEqual(got, s.changed) {
				t.Errorf("changed = %q, want %q", got, s.changed)
			}
			blocked(t, st, alice, s.want)
		})
	}
}

func testBlockQuota(t *testing.T, h *harness) {
	st := h.blocklist(t)
	ctx := t.Context()
	_, err := st.BlockJIDs(ctx, alice, []string{"a.example", "b.example"}, 3)
	ok(t, err)
	tests := []struct {
		name  string
		jids  []string
		limit int
		err   error
		want  []string
	}{
		{"over the limit adds none", []string{"c.example", "d.example"}, 3, storage.ErrQuotaExceeded,
			[]string{"a.example", "b.example"}},
		{"blocked ones do not count twice", []string{"a.example", "c.example"}, 3, nil,
			[]string{"a.example", "b.example", "c.example"}},
		{"at the limit, nothing new is fine", []string{"b.example"}, 3, nil,
			[]string{"a.example", "b.example", "c.example"}},
		{"a lower limit refuses additions only", []string{"d.example"}, 1, storage.ErrQuotaExceeded,
			[]string{"a.example", "b.example", "c.example"}},
		{"no limit", []string{"d.example", "e.example"}, 0, nil,
			[]string{"a.example", "b.example", "c.example", "d.example", "e.example"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := st.BlockJIDs(ctx, alice, tt.jids, tt.limit)
			if tt.err == nil {
				ok(t, err)
			} else {
				is(t, err, tt.err)
			}
			blocked(t, st, alice, tt.want)
		})
	}
}

// testBlockQuotaConcurrent adds to one list from several goroutines (and
// connections): the limit holds.
func testBlockQuotaConcurrent(t *testing.T, h *harness) {
	st := h.blocklist(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	const limit, writers = 5, 8
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		accepted int
	)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := st.BlockJIDs(ctx, alice, []string{fmt.Sprintf("w%d.example", i)}, limit)
			switch {
			case err == nil:
				mu.Lock()
				accepted++
				mu.Unlock()
			case !errors.Is(err, storage.ErrQuotaExceeded):
				t.Errorf("BlockJIDs: %v", err)
			}
		}()
	}
	wg.Wait()
	got, err := st.BlockedJIDs(ctx, alice)
	ok(t, err)
	if accepted != limit || len(got) != limit {
		t.Errorf("%d of %d writers accepted, list holds %d; want exactly %d", accepted, writers, len(got), limit)
	}
}

func testUnblockAll(t *testing.T, h *harness) {
	st := h.blocklist(t)
	ctx := t.Context()
	removed, err := st.UnblockAllJIDs(ctx, alice)
	ok(t, err)
	if removed != nil {
		t.Errorf("UnblockAllJIDs on an empty list = %q, want nil", removed)
	}
	_, err = st.BlockJIDs(ctx, alice, []string{carol, bob, "evil.example"}, 0)
	ok(t, err)
	removed, err = st.UnblockAllJIDs(ctx, alice)
	ok(t, err)
	if want := []string{bob, carol, "evil.example"}; !reflect.DeepEqual(removed, want) {
		t.Errorf("UnblockAllJIDs = %q, want %q (ordered)", removed, want)
	}
	blocked(t, st, alice, nil)
}

func testBlockOwners(t *testing.T, h *harness) {
	st := h.blocklist(t)
	ctx := t.Context()
	_, err := st.BlockJIDs(ctx, alice, []string{carol}, 1)
	ok(t, err)
	// Each owner's limit counts that owner's list only.
	_, err = st.BlockJIDs(ctx, zoe, []string{carol}, 1)
	ok(t, err)
	_, err = st.UnblockAllJIDs(ctx, bob)
	ok(t, err)
	removed, err := st.UnblockJIDs(ctx, wei, []string{carol})
	ok(t, err)
	if removed != nil {
		t.Errorf("UnblockJIDs of another owner's entry = %q, want nil", removed)
	}
	blocked(t, st, alice, []string{carol})
	blocked(t, st, zoe, []string{carol})
	blocked(t, st, bob, nil)
}

func testBlockDeleteAccount(t *testing.T, h *harness) {
	s := h.store(t)
	st := s.(storage.Blocklist)
	ctx := t.Context()
	for _, j := range []string{alice, bob} {
		ok(t, s.CreateAccount(ctx, storage.Account{JID: j}))
		_, err := st.BlockJIDs(ctx, j, []string{carol}, 0)
		ok(t, err)
	}
	ok(t, s.DeleteAccount(ctx, alice))
	blocked(t, st, alice, nil)
	blocked(t, st, bob, []string{carol})
}

func testBlockReopen(t *testing.T, h *harness) {
	st := h.blocklist(t)
	ctx := t.Context()
	_, err := st.BlockJIDs(ctx, alice, []string{bob, zoe + "/Tablet"}, 0)
	ok(t, err)
	blocked(t, h.blocklist(t), alice, []string{bob, zoe + "/Tablet"})
}

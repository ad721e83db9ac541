package storagetest

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"kontor.im/kontor/core/storage"
)

// RunFAST runs the conformance suite of storage.FASTTokens (XEP-0484
// tokens, the "fast" migration track). open follows the rules of Run.
func RunFAST(t *testing.T, open func(t *testing.T) storage.Store) {
	h := &harness{open: open}
	groups := []struct {
		name string
		run  func(*testing.T, *harness)
	}{
		{"Rotation", testFASTRotation},
		{"Count", testFASTCount},
		{"ConcurrentUse", testFASTConcurrentUse},
		{"Delete", testFASTDelete},
		{"PasswordChange", testFASTPasswordChange},
		{"DeleteAccount", testFASTDeleteAccount},
		{"Expired", testFASTExpired},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			g.run(t, h)
		})
	}
}

// fast opens a store with the accounts alice and bob (tokens need an
// account).
func (h *harness) fast(t *testing.T) (storage.Store, storage.FASTTokens) {
	t.Helper()
	s := h.store(t)
	st, isFAST := s.(storage.FASTTokens)
	if !isFAST {
		t.Fatalf("%s store does not implement storage.FASTTokens", s.Backend())
	}
	for _, j := range []string{alice, bob} {
		ok(t, s.CreateAccount(t.Context(), storage.Account{JID: j, Credentials: credentials()}))
	}
	return s, st
}

func fastToken(client, secret string, expires time.Time) storage.FASTToken {
	return storage.FASTToken{Client: client, Mechanism: "HT-SHA-256-NONE", Secret: []byte(secret), Expires: expires}
}

// slots fails the test unless owner's client has exactly these tokens
// (slot: secret).
func slots(t *testing.T, st storage.FASTTokens, owner, client string, want map[string]string) []storage.FASTToken {
	t.Helper()
	got, err := st.FASTTokens(t.Context(), owner, client)
	ok(t, err)
	have := map[string]string{}
	for i, tk := range got {
		if tk.Client != client {
			t.Errorf("token %d has client %q, want %q", i, tk.Client, client)
		}
		if tk.Expires.Location() != time.UTC {
			t.Errorf("token %d expires in %v, want UTC", i, tk.Expires.Location())
		}
		have[tk.Slot] = string(tk.Secret)
	}
	if len(got) == 2 && got[0].Slot != storage.FASTCurrent {
		t.Errorf("slots in order %s, %s: want current first", got[0].Slot, got[1].Slot)
	}
	if len(have) != len(want) {
		t.Fatalf("tokens of %s/%s = %v, want %v", owner, client, have, want)
	}
	for k, v := range want {
		if have[k] != v {
			t.Fatalf("tokens of %s/%s = %v, want %v", owner, client, have, want)
		}
	}
	return got
}

func testFASTRotation(t *testing.T, h *harness) {
	_, st := h.fast(t)
	ctx := t.Context()
	exp := time.Now().Add(time.Hour).Truncate(time.Microsecond)
	slots(t, st, alice, "c1", nil)

	// Issued: in the new slot, with its mechanism, secret and expiry.
	ok(t, st.PutFASTToken(ctx, alice, storage.FASTToken{Client: "c1", Slot: storage.FASTCurrent,
		Mechanism: "HT-SHA-256-EXPR", Secret: []byte{0, 1, 0xff}, Expires: exp}))
	got := slots(t, st, alice, "c1", map[string]string{storage.FASTNew: "\x00\x01\xff"})
	if got[0].Mechanism != "HT-SHA-256-EXPR" || got[0].Count != 0 {
		t.Errorf("stored %+v", got[0])
	}
	sameTime(t, "Expires", got[0].Expires, exp)

	// First use: it becomes current.
	ok(t, st.UseFASTToken(ctx, alice, "c1", storage.FASTNew, []byte{0, 1, 0xff}, 0))
	slots(t, st, alice, "c1", map[string]string{storage.FASTCurrent: "\x00\x01\xff"})

	// A rotation: the new token waits beside the current one until used.
	ok(t, st.PutFASTToken(ctx, alice, fastToken("c1", "second", exp)))
	slots(t, st, alice, "c1", map[string]string{storage.FASTCurrent: "\x00\x01\xff", storage.FASTNew: "second"})
	ok(t, st.UseFASTToken(ctx, alice, "c1", storage.FASTCurrent, []byte{0, 1, 0xff}, 0))
	slots(t, st, alice, "c1", map[string]string{storage.FASTCurrent: "\x00\x01\xff", storage.FASTNew: "second"})
	// Issuing again replaces the unused new token.
	ok(t, st.PutFASTToken(ctx, alice, fastToken("c1", "third", exp)))
	slots(t, st, alice, "c1", map[string]string{storage.FASTCurrent: "\x00\x01\xff", storage.FASTNew: "third"})
	is(t, st.UseFASTToken(ctx, alice, "c1", storage.FASTNew, []byte("second"), 0), storage.ErrNotFound)
	// Using the new one retires the old.
	ok(t, st.UseFASTToken(ctx, alice, "c1", storage.FASTNew, []byte("third"), 0))
	slots(t, st, alice, "c1", map[string]string{storage.FASTCurrent: "third"})
	is(t, st.UseFASTToken(ctx, alice, "c1", storage.FASTCurrent, []byte{0, 1, 0xff}, 0), storage.ErrNotFound)

	// Clients and owners are separate.
	slots(t, st, alice, "c2", nil)
	slots(t, st, bob, "c1", nil)
	is(t, st.UseFASTToken(ctx, bob, "c1", storage.FASTCurrent, []byte("third"), 0), storage.ErrNotFound)
}

func testFASTCount(t *testing.T, h *harness) {
	_, st := h.fast(t)
	ctx := t.Context()
	ok(t, st.PutFASTToken(ctx, alice, fastToken("c", "s", time.Now().Add(time.Hour))))
	ok(t, st.UseFASTToken(ctx, alice, "c", storage.FASTNew, []byte("s"), 5))
	got := slots(t, st, alice, "c", map[string]string{storage.FASTCurrent: "s"})
	if got[0].Count != 5 {
		t.Errorf("count = %d, want 5", got[0].Count)
	}
	for _, c := range []int64{5, 4, 1} {
		if err := st.UseFASTToken(ctx, alice, "c", storage.FASTCurrent, []byte("s"), c); !errors.Is(err, storage.ErrFASTReplay) {
			t.Errorf("count %d after 5: %v, want ErrFASTReplay", c, err)
		}
	}
	// No count keeps the one recorded.
	ok(t, st.UseFASTToken(ctx, alice, "c", storage.FASTCurrent, []byte("s"), 0))
	ok(t, st.UseFASTToken(ctx, alice, "c", storage.FASTCurrent, []byte("s"), 6))
	got = slots(t, st, alice, "c", map[string]string{storage.FASTCurrent: "s"})
	if got[0].Count != 6 {
		t.Errorf("count = %d, want 6", got[0].Count)
	}
	// A new token starts from zero.
	ok(t, st.PutFASTToken(ctx, alice, fastToken("c", "t", time.Now().Add(time.Hour))))
	ok(t, st.UseFASTToken(ctx, alice, "c", storage.FASTNew, []byte("t"), 1))
}

// testFASTConcurrentUse: of many logins with the same count, one wins.
func testFASTConcurrentUse(t *testing.T, h *harness) {
	_, st := h.fast(t)
	ok(t, st.PutFASTToken(t.Context(), alice, fastToken("c", "s", time.Now().Add(time.Hour))))
	ok(t, st.UseFASTToken(t.Context(), alice, "c", storage.FASTNew, []byte("s"), 1))
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = st.UseFASTToken(t.Context(), alice, "c", storage.FASTCurrent, []byte("s"), 2) })
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, storage.ErrFASTReplay):
			t.Errorf("unexpected error: %v", err)
		}
	}
	if wins != 1 {
		t.Errorf("%d logins with the same count succeeded, want 1", wins)
	}
}

func testFASTDelete(t *testing.T, h *harness) {
	_, st := h.fast(t)
	ctx := t.Context()
	exp := time.Now().Add(time.Hour)
	for _, c := range []string{"c1", "c2"} {
		ok(t, st.PutFASTToken(ctx, alice, fastToken(c, "s-"+c, exp)))
	}
	ok(t, st.PutFASTToken(ctx, bob, fastToken("c1", "b", exp)))
	n, err := st.DeleteFASTTokens(ctx, alice, "c1")
	ok(t, err)
	if n != 1 {
		t.Errorf("deleted %d, want 1", n)
	}
	slots(t, st, alice, "c1", nil)
	slots(t, st, alice, "c2", map[string]string{storage.FASTNew: "s-c2"})
	n, err = st.DeleteFASTTokens(ctx, alice, "")
	ok(t, err)
	if n != 1 {
		t.Errorf("deleted %d, want 1", n)
	}
	slots(t, st, alice, "c2", nil)
	slots(t, st, bob, "c1", map[string]string{storage.FASTNew: "b"})
}

// testFASTPasswordChange: a new password logs every client out.
func testFASTPasswordChange(t *testing.T, h *harness) {
	s, st := h.fast(t)
	ctx := t.Context()
	for _, j := range []string{alice, bob} {
		ok(t, st.PutFASTToken(ctx, j, fastToken("c", "s", time.Now().Add(time.Hour))))
	}
	ok(t, s.SetCredentials(ctx, alice, credentials()))
	slots(t, st, alice, "c", nil)
	slots(t, st, bob, "c", map[string]string{storage.FASTNew: "s"})
}

func testFASTDeleteAccount(t *testing.T, h *harness) {
	s, st := h.fast(t)
	ctx := t.Context()
	for _, j := range []string{alice, bob} {
		ok(t, st.PutFASTToken(ctx, j, fastToken("c", "s", time.Now().Add(time.Hour))))
	}
	ok(t, s.DeleteAccount(ctx, alice))
	slots(t, st, alice, "c", nil)
	slots(t, st, bob, "c", map[string]string{storage.FASTNew: "s"})
	// No account, no token.
	is(t, st.PutFASTToken(ctx, alice, fastToken("c", "s", time.Now().Add(time.Hour))), storage.ErrNotFound)
	is(t, st.PutFASTToken(ctx, carol, fastToken("c", "s", time.Now().Add(time.Hour))), storage.ErrNotFound)
	slots(t, st, alice, "c", nil)
	// A token for the account as a login found it: not for one created
	// anew under the address since (an erased person's address given to
	// someone else).
	created := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Hour)
	ok(t, s.CreateAccount(ctx, storage.Account{JID: alice, Domain: "example.com", Created: created}))
	old := fastToken("c", "old", time.Now().Add(time.Hour))
	old.AccountCreated = created.Add(-time.Minute)
	is(t, st.PutFASTToken(ctx, alice, old), storage.ErrNotFound)
	slots(t, st, alice, "c", nil)
	cur := fastToken("c", "cur", time.Now().Add(time.Hour))
	cur.AccountCreated = created
	ok(t, st.PutFASTToken(ctx, alice, cur))
	slots(t, st, alice, "c", map[string]string{storage.FASTNew: "cur"})
	// A GDPR erasure removes them too.
	if g, isGDPR := s.(storage.GDPRStore); isGDPR {
		ok(t, g.EraseAccount(ctx, bob))
		slots(t, st, bob, "c", nil)
	}
}

func testFASTExpired(t *testing.T, h *harness) {
	_, st := h.fast(t)
	ctx := t.Context()
	now := time.Now()
	ok(t, st.PutFASTToken(ctx, alice, fastToken("old", "o", now.Add(-time.Minute))))
	ok(t, st.PutFASTToken(ctx, alice, fastToken("fresh", "f", now.Add(time.Hour))))
	n, err := st.DeleteExpiredFASTTokens(ctx, now)
	ok(t, err)
	if n != 1 {
		t.Errorf("deleted %d expired tokens, want 1", n)
	}
	slots(t, st, alice, "old", nil)
	got := slots(t, st, alice, "fresh", map[string]string{storage.FASTNew: "f"})
	if !bytes.Equal(got[0].Secret, []byte("f")) {
		t.Errorf("secret %q", got[0].Secret)
	}
}

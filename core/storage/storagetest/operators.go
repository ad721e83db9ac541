package storagetest

import (
	"bytes"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"kontor.im/kontor/core/storage"
)

// RunOperators runs the conformance suite of storage.Operators (operators
// and access requests, the "operators" migration track). open follows the
// rules of Run.
func RunOperators(t *testing.T, open func(t *testing.T) storage.Store) {
	h := &harness{open: open}
	groups := []struct {
		name string
		run  func(*testing.T, *harness)
	}{
		{"Operators", testOperators},
		{"Requests", testAccessRequests},
		{"UseOnce", testAccessRequestUseOnce},
		{"Reopen", testOperatorsReopen},
		{"FirstOperator", testFirstOperator},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			g.run(t, h)
		})
	}
}

func (h *harness) operators(t *testing.T) storage.Operators {
	t.Helper()
	s := h.store(t)
	st, ok := s.(storage.Operators)
	if !ok {
		t.Fatalf("%s store does not implement storage.Operators", s.Backend())
	}
	return st
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: err = %v, want %v", what, err, want)
	}
}

func testOperators(t *testing.T, h *harness) {
	st := h.operators(t)
	ctx := t.Context()
	created := time.Date(2026, 3, 1, 9, 30, 0, 123456789, time.Local)
	hash := bytes.Repeat([]byte{7}, 32)
	erika := storage.Operator{ID: "erika", DisplayName: "Erika Müller", Roles: []string{"dpo", "admin"}, TokenHash: hash, Created: created}
	ok(t, st.CreateOperator(ctx, erika))
	wantErr(t, "CreateOperator twice", st.CreateOperator(ctx, erika), storage.ErrExists)
	wantErr(t, "CreateOperator with a taken token hash", st.CreateOperator(ctx, storage.Operator{ID: "other", TokenHash: hash}), storage.ErrExists)
	ok(t, st.CreateOperator(ctx, storage.Operator{ID: "Max", DisplayName: "Max", Roles: []string{"works_council"}}))
	ok(t, st.CreateOperator(ctx, storage.Operator{ID: "ärger"}))

	got, err := st.Operator(ctx, "erika")
	ok(t, err)
	want := erika
	want.Created = created.UTC().Truncate(time.Microsecond)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Operator = %+v, want %+v", got, want)
	}
	_, err = st.Operator(ctx, "ERIKA")
	wantErr(t, "Operator(ERIKA)", err, storage.ErrNotFound)
	got, err = st.OperatorByTokenHash(ctx, hash)
	ok(t, err)
	if got.ID != "erika" {
		t.Errorf("OperatorByTokenHash = %q, want erika", got.ID)
	}
	_, err = st.OperatorByTokenHash(ctx, nil)
	wantErr(t, "OperatorByTokenHash(nil)", err, storage.ErrNotFound)
	_, err = st.OperatorByTokenHash(ctx, bytes.Repeat([]byte{8}, 32))
	wantErr(t, "OperatorByTokenHash(other)", err, storage.ErrNotFound)

	all, err := st.ListOperators(ctx)
	ok(t, err)
	var ids []string
	for _, o := range all {
		ids = append(ids, o.ID)
	}
	if !reflect.DeepEqual(ids, []string{"Max", "erika", "ärger"}) {
		t.Errorf("ListOperators = %q, want byte order", ids)
	}
	if all[2].Roles != nil || all[2].TokenHash != nil {
		t.Errorf("operator without roles and token: %+v", all[2])
	}

	ok(t, st.SetOperatorDisabled(ctx, "erika", true))
	got, _ = st.Operator(ctx, "erika")
	if !got.Disabled {
		t.Error("SetOperatorDisabled(true) did not disable")
	}
	ok(t, st.SetOperatorDisabled(ctx, "erika", false))
	got, _ = st.Operator(ctx, "erika")
	if got.Disabled {
		t.Error("SetOperatorDisabled(false) did not enable")
	}
	wantErr(t, "SetOperatorDisabled(unknown)", st.SetOperatorDisabled(ctx, "nobody", true), storage.ErrNotFound)

	newHash := bytes.Repeat([]byte{9}, 32)
	ok(t, st.SetOperatorToken(ctx, "erika", newHash))
	_, err = st.OperatorByTokenHash(ctx, hash)
	wantErr(t, "old token after SetOperatorToken", err, storage.ErrNotFound)
	got, err = st.OperatorByTokenHash(ctx, newHash)
	ok(t, err)
	if got.ID != "erika" {
		t.Errorf("new token finds %q", got.ID)
	}
	wantErr(t, "SetOperatorToken to a taken hash", st.SetOperatorToken(ctx, "Max", newHash), storage.ErrExists)
	wantErr(t, "SetOperatorToken(unknown)", st.SetOperatorToken(ctx, "nobody", hash), storage.ErrNotFound)
	ok(t, st.SetOperatorToken(ctx, "erika", nil))
	got, _ = st.Operator(ctx, "erika")
	if got.TokenHash != nil {
		t.Errorf("token hash after removal = %x", got.TokenHash)
	}
}

func testAccessRequests(t *testing.T, h *harness) {
	st := h.operators(t)
	ctx := t.Context()
	base := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	r1 := storage.AccessRequest{ID: "r1", Action: "archive.export", Subject: "bob@example.com", CaseNumber: "C-1",
		Purpose: "Art. 15 request", Requester: "erika", Created: base, Expires: base.Add(72 * time.Hour)}
	ok(t, st.CreateAccessRequest(ctx, r1))
	wantErr(t, "CreateAccessRequest twice", st.CreateAccessRequest(ctx, r1), storage.ErrExists)
	r2 := r1
	r2.ID, r2.Created = "r2", base.Add(time.Hour)
	ok(t, st.CreateAccessRequest(ctx, r2))

	got, err := st.AccessRequest(ctx, "r1")
	ok(t, err)
	if !reflect.DeepEqual(got, r1) {
		t.Errorf("AccessRequest = %+v, want %+v", got, r1)
	}
	_, err = st.AccessRequest(ctx, "r9")
	wantErr(t, "AccessRequest(unknown)", err, storage.ErrNotFound)

	v1 := storage.RequestVote{By: "max", Roles: []string{"works_council"}, Approve: true, Comment: "ok", At: base.Add(2 * time.Hour)}
	v2 := storage.RequestVote{By: "dora", Roles: []string{"dpo"}, Approve: false, At: base.Add(3 * time.Hour)}
	ok(t, st.VoteAccessRequest(ctx, "r1", v1))
	ok(t, st.VoteAccessRequest(ctx, "r1", v2))
	wantErr(t, "second vote by max", st.VoteAccessRequest(ctx, "r1", v1), storage.ErrExists)
	wantErr(t, "vote on unknown", st.VoteAccessRequest(ctx, "r9", v1), storage.ErrNotFound)
	got, err = st.AccessRequest(ctx, "r1")
	ok(t, err)
	if !reflect.DeepEqual(got.Votes, []storage.RequestVote{v1, v2}) {
		t.Errorf("Votes = %+v", got.Votes)
	}

	list, err := st.AccessRequests(ctx, time.Time{}, 10)
	ok(t, err)
	if len(list) != 2 || list[0].ID != "r2" || list[1].ID != "r1" || len(list[1].Votes) != 2 {
		t.Errorf("AccessRequests = %+v, want r2, r1 with votes", list)
	}
	list, err = st.AccessRequests(ctx, base.Add(time.Minute), 10)
	ok(t, err)
	if len(list) != 1 || list[0].ID != "r2" {
		t.Errorf("AccessRequests(since) = %+v, want r2", list)
	}
	list, err = st.AccessRequests(ctx, time.Time{}, 1)
	ok(t, err)
	if len(list) != 1 {
		t.Errorf("AccessRequests(limit 1) returned %d", len(list))
	}

	used := base.Add(4 * time.Hour)
	ok(t, st.UseAccessRequest(ctx, "r1", used))
	wantErr(t, "second use", st.UseAccessRequest(ctx, "r1", used), storage.ErrUsed)
	wantErr(t, "use of unknown", st.UseAccessRequest(ctx, "r9", used), storage.ErrNotFound)
	wantErr(t, "vote after use", st.VoteAccessRequest(ctx, "r1", storage.RequestVote{By: "zoe", Approve: true}), storage.ErrUsed)
	got, _ = st.AccessRequest(ctx, "r1")
	if !got.Used.Equal(used) {
		t.Errorf("Used = %v, want %v", got.Used, used)
	}
}

// testAccessRequestUseOnce: of many concurrent uses, exactly one succeeds.
func testAccessRequestUseOnce(t *testing.T, h *harness) {
	st := h.operators(t)
	ctx := t.Context()
	ok(t, st.CreateAccessRequest(ctx, storage.AccessRequest{ID: "r", Action: "archive.view", Requester: "erika", Expires: time.Now().Add(time.Hour)}))
	const n = 8
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		successes int
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := st.UseAccessRequest(ctx, "r", time.Now())
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				successes++
			case !errors.Is(err, storage.ErrUsed):
				t.Errorf("UseAccessRequest: %v", err)
			}
		}()
	}
	wg.Wait()
	if successes != 1 {
		t.Errorf("%d of %d concurrent uses succeeded, want 1", successes, n)
	}
}

func testOperatorsReopen(t *testing.T, h *harness) {
	st := h.operators(t)
	ctx := t.Context()
	ok(t, st.CreateOperator(ctx, storage.Operator{ID: "erika", Roles: []string{"dpo"}}))
	ok(t, st.CreateAccessRequest(ctx, storage.AccessRequest{ID: "r", Requester: "erika"}))
	st2 := h.operators(t)
	if o, err := st2.Operator(ctx, "erika"); err != nil || !reflect.DeepEqual(o.Roles, []string{"dpo"}) {
		t.Errorf("after reopen: %+v, %v", o, err)
	}
	if _, err := st2.AccessRequest(ctx, "r"); err != nil {
		t.Errorf("request after reopen: %v", err)
	}
}

// testFirstOperator: of concurrent bootstraps on an empty store exactly one
// creates its operator; afterwards every bootstrap is refused.
func testFirstOperator(t *testing.T, h *harness) {
	st := h.operators(t)
	ctx := t.Context()
	const n = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners []string
		start   = make(chan struct{})
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start // all at once
			id := "admin" + string(rune('a'+i))
			err := st.CreateFirstOperator(ctx, storage.Operator{ID: id, Roles: []string{"admin"}, TokenHash: []byte{byte(i)}})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				winners = append(winners, id)
			case !errors.Is(err, storage.ErrExists):
				t.Errorf("CreateFirstOperator(%s): %v", id, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	all, err := st.ListOperators(ctx)
	ok(t, err)
	if len(winners) != 1 || len(all) != 1 || all[0].ID != winners[0] {
		t.Fatalf("%d of %d concurrent bootstraps succeeded (%v), %d operators stored; want exactly 1", len(winners), n, winners, len(all))
	}
	if err := st.CreateFirstOperator(ctx, storage.Operator{ID: "late", Roles: []string{"admin"}}); !errors.Is(err, storage.ErrExists) {
		t.Errorf("a bootstrap after the first: %v, want ErrExists", err)
	}
}

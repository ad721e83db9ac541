package storagetest

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"kontor.im/kontor/core/storage"
)

// RunPush runs the conformance suite of storage.PushRegistrations (XEP-0357
// registrations, the "push" migration track). open follows the rules of
// Run.
func RunPush(t *testing.T, open func(t *testing.T) storage.Store) {
	h := &harness{open: open}
	groups := []struct {
		name string
		run  func(*testing.T, *harness)
	}{
		{"EnableDisable", testPushEnableDisable},
		{"Quota", testPushQuota},
		{"QuotaConcurrent", testPushQuotaConcurrent},
		{"DeleteAccount", testPushDeleteAccount},
		{"Reopen", testPushReopen},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			g.run(t, h)
		})
	}
}

func (h *harness) push(t *testing.T) storage.PushRegistrations {
	t.Helper()
	s := h.store(t)
	st, ok := s.(storage.PushRegistrations)
	if !ok {
		t.Fatalf("%s store does not implement storage.PushRegistrations", s.Backend())
	}
	return st
}

// registrations fails the test unless owner's registrations are want
// (compared without Created, which is checked to be set).
func registrations(t *testing.T, st storage.PushRegistrations, owner string, want []storage.PushRegistration) {
	t.Helper()
	got, err := st.PushRegistrations(t.Context(), owner)
	ok(t, err)
	for i := range got {
		if got[i].Created.IsZero() || got[i].Created.Location() != time.UTC {
			t.Errorf("registration %d: created %v, want a UTC time", i, got[i].Created)
		}
		got[i].Created = time.Time{}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("PushRegistrations(%s) = %+v, want %+v", owner, got, want)
	}
}

func reg(service, node string, options []byte) storage.PushRegistration {
	return storage.PushRegistration{Service: service, Node: node, Options: options}
}

func testPushEnableDisable(t *testing.T, h *harness) {
	st := h.push(t)
	ctx := t.Context()
	now := time.Now().Truncate(time.Microsecond)
	registrations(t, st, alice, nil)
	enable := func(r storage.PushRegistration) {
		t.Helper()
		r.Created = now
		ok(t, st.EnablePush(ctx, alice, r, 0))
	}
	enable(reg("push.example", "n2", []byte{0, 1, 0xff}))
	enable(reg("push.example", "n1", nil))
	enable(reg("app.example", "ä", []byte("x")))
	registrations(t, st, alice, []storage.PushRegistration{
		reg("app.example", "ä", []byte("x")), reg("push.example", "n1", nil), reg("push.example", "n2", []byte{0, 1, 0xff})})

	// Enabling the same service and node again replaces its options.
	enable(reg("push.example", "n1", []byte("new")))
	got, err := st.PushRegistrations(ctx, alice)
	ok(t, err)
	if len(got) != 3 || string(got[1].Options) != "new" || !got[1].Created.Equal(now) {
		t.Errorf("after re-enabling: %+v", got)
	}

	n, err := st.DisablePush(ctx, alice, "push.example", "n2")
	ok(t, err)
	if n != 1 {
		t.Errorf("disabled %d, want 1", n)
	}
	n, err = st.DisablePush(ctx, alice, "push.example", "absent")
	ok(t, err)
	if n != 0 {
		t.Errorf("disabled %d of an absent node", n)
	}
	enable(reg("push.example", "n3", nil))
	n, err = st.DisablePush(ctx, alice, "push.example", "")
	ok(t, err)
	if n != 2 {
		t.Errorf("disabling the whole service removed %d, want 2", n)
	}
	registrations(t, st, alice, []storage.PushRegistration{reg("app.example", "ä", []byte("x"))})
	registrations(t, st, bob, nil)
}

func testPushQuota(t *testing.T, h *harness) {
	st := h.push(t)
	ctx := t.Context()
	for _, n := range []string{"a", "b"} {
		ok(t, st.EnablePush(ctx, alice, storage.PushRegistration{Service: "push.example", Node: n, Created: time.Now()}, 2))
	}
	err := st.EnablePush(ctx, alice, storage.PushRegistration{Service: "push.example", Node: "c", Created: time.Now()}, 2)
	is(t, err, storage.ErrQuotaExceeded)
	// Replacing one within the limit is fine.
	ok(t, st.EnablePush(ctx, alice, storage.PushRegistration{Service: "push.example", Node: "a", Options: []byte("o"), Created: time.Now()}, 2))
	registrations(t, st, alice, []storage.PushRegistration{reg("push.example", "a", []byte("o")), reg("push.example", "b", nil)})
}

func testPushQuotaConcurrent(t *testing.T, h *harness) {
	st := h.push(t)
	const writers, limit = 8, 3
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Go(func() {
			errs[i] = st.EnablePush(t.Context(), alice, storage.PushRegistration{
				Service: "push.example", Node: fmt.Sprint("node-", i), Created: time.Now()}, limit)
		})
	}
	wg.Wait()
	okCount := 0
	for _, err := range errs {
		switch {
		case err == nil:
			okCount++
		case !errors.Is(err, storage.ErrQuotaExceeded):
			t.Errorf("unexpected error: %v", err)
		}
	}
	got, err := st.PushRegistrations(t.Context(), alice)
	ok(t, err)
	if okCount != limit || len(got) != limit {
		t.Errorf("%d writers succeeded and %d registrations are stored, want %d", okCount, len(got), limit)
	}
}

func testPushDeleteAccount(t *testing.T, h *harness) {
	s := h.store(t)
	st := s.(storage.PushRegistrations)
	ctx := t.Context()
	for _, j := range []string{alice, bob} {
		ok(t, s.CreateAccount(ctx, storage.Account{JID: j}))
		ok(t, st.EnablePush(ctx, j, storage.PushRegistration{Service: "push.example", Node: "n", Created: time.Now()}, 0))
	}
	ok(t, s.DeleteAccount(ctx, alice))
	registrations(t, st, alice, nil)
	registrations(t, st, bob, []storage.PushRegistration{reg("push.example", "n", nil)})
}

func testPushReopen(t *testing.T, h *harness) {
	st := h.push(t)
	ok(t, st.EnablePush(t.Context(), alice, storage.PushRegistration{Service: "push.example", Node: "n", Options: []byte("s"), Created: time.Now()}, 0))
	registrations(t, h.push(t), alice, []storage.PushRegistration{reg("push.example", "n", []byte("s"))})
}

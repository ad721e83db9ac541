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

// RunUploads runs the conformance suite of storage.Uploads (XEP-0363
// upload records, the "upload" migration track). open follows the rules
// of Run.
func RunUploads(t *testing.T, open func(t *testing.T) storage.Store) {
	h := &harness{open: open}
	groups := []struct {
		name string
		run  func(*testing.T, *harness)
	}{
		{"CreateGetComplete", testUploadLifecycle},
		{"Quota", testUploadQuota},
		{"QuotaConcurrent", testUploadQuotaConcurrent},
		{"Expired", testUploadExpired},
		{"Owners", testUploadOwners},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			g.run(t, h)
		})
	}
}

func (h *harness) uploads(t *testing.T) storage.Uploads {
	t.Helper()
	s := h.store(t)
	st, ok := s.(storage.Uploads)
	if !ok {
		t.Fatalf("%s store does not implement storage.Uploads", s.Backend())
	}
	return st
}

var uploadT0 = time.Date(2026, 11, 26, 12, 0, 0, 123456000, time.UTC)

func upload(id, owner string, size int64, created time.Time) storage.Upload {
	return storage.Upload{ID: id, Owner: owner, Name: []byte("sealed\x00name " + id), Size: size,
		ContentType: "image/png", Created: created, SlotExpires: created.Add(5 * time.Minute)}
}

func testUploadLifecycle(t *testing.T, h *harness) {
	st := h.uploads(t)
	ctx := t.Context()
	_, err := st.Upload(ctx, "nope")
	is(t, err, storage.ErrNotFound)

	u := upload("f1", zoe, 1234, uploadT0)
	u.Until, u.Class = uploadT0.Add(90*24*time.Hour), "business_letter"
	ok(t, st.CreateUpload(ctx, u, 0))
	is(t, st.CreateUpload(ctx, u, 0), storage.ErrExists)
	got, err := st.Upload(ctx, "f1")
	ok(t, err)
	if !reflect.DeepEqual(got, u) {
		t.Errorf("Upload = %+v, want %+v", got, u)
	}

	stored := uploadT0.Add(time.Minute)
	ok(t, st.CompleteUpload(ctx, "f1", stored))
	is(t, st.CompleteUpload(ctx, "f1", stored), storage.ErrNotFound)
	is(t, st.CompleteUpload(ctx, "other", stored), storage.ErrNotFound)
	got, err = st.Upload(ctx, "f1")
	ok(t, err)
	if !got.Stored.Equal(stored) {
		t.Errorf("Stored = %v, want %v", got.Stored, stored)
	}

	ok(t, st.DeleteUpload(ctx, "f1"))
	ok(t, st.DeleteUpload(ctx, "f1"))
	_, err = st.Upload(ctx, "f1")
	is(t, err, storage.ErrNotFound)
}

func testUploadQuota(t *testing.T, h *harness) {
	st := h.uploads(t)
	ctx := t.Context()
	ok(t, st.CreateUpload(ctx, upload("a", alice, 600, uploadT0), 1000))
	ok(t, st.CreateUpload(ctx, upload("b", alice, 400, uploadT0), 1000)) // exactly the quota
	is(t, st.CreateUpload(ctx, upload("c", alice, 1, uploadT0), 1000), storage.ErrQuotaExceeded)
	ok(t, st.CreateUpload(ctx, upload("d", bob, 1000, uploadT0), 1000)) // per owner
	ok(t, st.CreateUpload(ctx, upload("e", alice, 1, uploadT0), 0))     // 0: no quota
	_, err := st.Upload(ctx, "c")
	is(t, err, storage.ErrNotFound)
	ok(t, st.DeleteUpload(ctx, "a"))
	ok(t, st.CreateUpload(ctx, upload("c", alice, 500, uploadT0), 1002))
}

func testUploadQuotaConcurrent(t *testing.T, h *harness) {
	st := h.uploads(t)
	ctx := t.Context()
	const n = 10
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = st.CreateUpload(ctx, upload(fmt.Sprintf("c%d", i), carol, 100, uploadT0), 350)
		}()
	}
	wg.Wait()
	okN := 0
	for _, err := range errs {
		switch {
		case err == nil:
			okN++
		case !errors.Is(err, storage.ErrQuotaExceeded):
			t.Errorf("CreateUpload: %v", err)
		}
	}
	if okN != 3 {
		t.Errorf("%d of %d concurrent slots granted under a quota for 3", okN, n)
	}
}

func testUploadExpired(t *testing.T, h *harness) {
	st := h.uploads(t)
	ctx := t.Context()
	kept := upload("kept", alice, 1, uploadT0)
	due := upload("due", alice, 1, uploadT0.Add(time.Second))
	due.Until = uploadT0.Add(time.Hour)
	later := upload("later", alice, 1, uploadT0.Add(2*time.Second))
	later.Until = uploadT0.Add(3 * time.Hour)
	pending := upload("pending", bob, 1, uploadT0.Add(3*time.Second)) // never completed
	for _, u := range []storage.Upload{kept, due, later, pending} {
		ok(t, st.CreateUpload(ctx, u, 0))
	}
	for _, id := range []string{"kept", "due", "later"} {
		ok(t, st.CompleteUpload(ctx, id, uploadT0.Add(time.Minute)))
	}
	ids := func(now time.Time, limit int) []string {
		t.Helper()
		us, err := st.ExpiredUploads(ctx, now, limit)
		ok(t, err)
		var out []string
		for _, u := range us {
			out = append(out, u.ID)
		}
		return out
	}
	if got := ids(uploadT0.Add(time.Minute), 10); got != nil {
		t.Errorf("expired at +1m = %q, want none", got)
	}
	if got, want := ids(uploadT0.Add(2*time.Hour), 10), []string{"due", "pending"}; !reflect.DeepEqual(got, want) {
		t.Errorf("expired at +2h = %q, want %q", got, want)
	}
	if got, want := ids(uploadT0.Add(2*time.Hour), 1), []string{"due"}; !reflect.DeepEqual(got, want) {
		t.Errorf("expired at +2h, limit 1 = %q, want %q", got, want)
	}
	if got, want := ids(uploadT0.Add(100*time.Hour), 10), []string{"due", "later", "pending"}; !reflect.DeepEqual(got, want) {
		t.Errorf("expired at +100h = %q, want %q", got, want)
	}
}

func testUploadOwners(t *testing.T, h *harness) {
	st := h.uploads(t)
	ctx := t.Context()
	ok(t, st.CreateUpload(ctx, upload("w2", wei, 1, uploadT0.Add(time.Second)), 0))
	ok(t, st.CreateUpload(ctx, upload("w1", wei, 1, uploadT0), 0))
	ok(t, st.CreateUpload(ctx, upload("z1", zoe, 1, uploadT0), 0))
	got, err := st.UploadsOf(ctx, wei)
	ok(t, err)
	if len(got) != 2 || got[0].ID != "w1" || got[1].ID != "w2" {
		t.Errorf("UploadsOf(wei) = %+v, want w1, w2", got)
	}
	got, err = st.UploadsOf(ctx, alice)
	ok(t, err)
	if len(got) != 0 {
		t.Errorf("UploadsOf(alice) = %+v, want none", got)
	}
}

package sqlite_test

import (
	"path/filepath"
	"testing"
	"time"

	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/storage/sqlite"
	"kontor.im/kontor/core/storage/storagetest"
)

func TestSnapshotAndInspect(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kontor.db")
	c, err := sqlite.Inspect(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	storagetest.CheckContents(t, "no file", c, false, false, "")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	storagetest.RunSchemaVersions(t, st)
	known, err := sqlite.KnownSchemaVersions()
	if err != nil {
		t.Fatal(err)
	}
	storagetest.CheckKnown(t, st, known)
	c, err = sqlite.Inspect(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	storagetest.CheckContents(t, "migrated", c, true, false, "")
	if err := st.CreateAccount(ctx, storage.Account{JID: "alice@example.com", Domain: "example.com", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	c, err = sqlite.Inspect(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	storagetest.CheckContents(t, "an account", c, true, true, "accounts")

	// The snapshot holds what was committed, and opens as a store.
	snap := filepath.Join(t.TempDir(), "copy.db")
	if err := st.Snapshot(ctx, snap); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAccount(ctx, storage.Account{JID: "bob@example.com", Domain: "example.com", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := st.Snapshot(ctx, snap); err == nil {
		t.Error("Snapshot overwrote an existing file")
	}
	cp, err := sqlite.Open(ctx, snap)
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	if _, err := cp.Account(ctx, "alice@example.com"); err != nil {
		t.Errorf("alice in the snapshot: %v", err)
	}
	if _, err := cp.Account(ctx, "bob@example.com"); err == nil {
		t.Error("bob, created after the snapshot, is in it")
	}
}

package postgres_test

import (
	"testing"
	"time"

	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/storage/pgtest"
	"kontor.im/kontor/core/storage/postgres"
	"kontor.im/kontor/core/storage/storagetest"
)

func TestInspectAndSchemaVersions(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.DSN(t)
	c, err := postgres.Inspect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	storagetest.CheckContents(t, "new database", c, false, false, "")
	st, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	storagetest.RunSchemaVersions(t, st)
	known, err := postgres.KnownSchemaVersions()
	if err != nil {
		t.Fatal(err)
	}
	storagetest.CheckKnown(t, st, known)
	c, err = postgres.Inspect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	storagetest.CheckContents(t, "migrated", c, true, false, "")
	if err := st.CreateAccount(ctx, storage.Account{JID: "alice@example.com", Domain: "example.com", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	c, err = postgres.Inspect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	storagetest.CheckContents(t, "an account", c, true, true, "accounts")
}

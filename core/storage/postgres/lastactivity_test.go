package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/storage/pgtest"
	"kontor.im/kontor/core/storage/postgres"
)

// Last activity is written in batches: a pending value is served at
// once, reaches the table within about a second (or at Close), survives a
// failed write, and never lands for an account that is gone.
func TestLastActivityDeferred(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.DSN(t)
	st, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, j := range []string{"alice@example.com", "bob@example.com"} {
		if err := st.CreateAccount(ctx, storage.Account{JID: j, Domain: "example.com", Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	stored := func() map[string]string {
		t.Helper()
		rows, err := conn.Query(ctx, `SELECT owner, status FROM last_activity`)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for rows.Next() {
			var o, s string
			if err := rows.Scan(&o, &s); err != nil {
				t.Fatal(err)
			}
			m[o] = s
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return m
	}
	at := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	set := func(owner, status string) {
		t.Helper()
		if err := st.SetLastActivity(ctx, owner, at, status); err != nil {
			t.Fatal(err)
		}
	}
	set("alice@example.com", "first")
	set("alice@example.com", "lunch")
	set("ghost@example.com", "no account")
	set("bob@example.com", "bye")
	if m := stored(); len(m) != 0 {
		t.Errorf("written at once: %v", m)
	}
	if got, status, err := st.LastActivity(ctx, "alice@example.com"); err != nil || status != "lunch" || !got.Equal(at) {
		t.Errorf("pending value: %v %q %v", got, status, err)
	}

	// bob's account goes before the write: his value goes with it.
	if err := st.DeleteAccount(ctx, "bob@example.com"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.LastActivity(ctx, "bob@example.com"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("deleted account's last activity: %v", err)
	}

	// A write that fails keeps the values for the next one.
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := st.FlushLastActivity(canceled); err == nil {
		t.Fatal("flush with a canceled context succeeded")
	}
	if _, status, err := st.LastActivity(ctx, "alice@example.com"); err != nil || status != "lunch" {
		t.Errorf("after a failed write: %q %v", status, err)
	}

	// The timer writes within about a second; the ghost has no account.
	deadline := time.Now().Add(10 * time.Second)
	for len(stored()) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if m := stored(); len(m) != 1 || m["alice@example.com"] != "lunch" {
		t.Errorf("written: %v, want alice's lunch only", m)
	}

	// An older value (a retried write, another server) does not replace a
	// newer one.
	if err := st.SetLastActivity(ctx, "alice@example.com", at.Add(-time.Hour), "older"); err != nil {
		t.Fatal(err)
	}
	if err := st.FlushLastActivity(ctx); err != nil {
		t.Fatal(err)
	}
	if m := stored(); m["alice@example.com"] != "lunch" {
		t.Errorf("an older value replaced a newer one: %v", m)
	}

	// Close writes what is pending; a store reopened reads it.
	set("alice@example.com", "home") // at, as lunch: an equal time replaces
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if m := stored(); m["alice@example.com"] != "home" {
		t.Errorf("after Close: %v", m)
	}
	// After Close a write is made at once (and fails: the pool is closed).
	if err := st.SetLastActivity(ctx, "alice@example.com", at, "late"); err == nil {
		t.Error("SetLastActivity after Close succeeded")
	}
}

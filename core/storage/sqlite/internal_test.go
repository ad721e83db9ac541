package sqlite

import (
	"errors"
	"path/filepath"
	"testing"

	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/storage/migrate"
)

func TestPragmas(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "kontor.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tests := []struct {
		name, pragma, wantW, wantR string
	}{
		{"WAL", "journal_mode", "wal", "wal"},
		{"synchronous NORMAL", "synchronous", "1", ""},
		{"foreign keys", "foreign_keys", "1", "1"},
		{"busy timeout", "busy_timeout", "10000", "10000"},
		{"readers are read-only", "query_only", "0", "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			if err := s.w.QueryRowContext(t.Context(), "PRAGMA "+tt.pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tt.wantW {
				t.Errorf("writer: %s = %s, want %s", tt.pragma, got, tt.wantW)
			}
			if tt.wantR == "" {
				return
			}
			if err := s.r.QueryRowContext(t.Context(), "PRAGMA "+tt.pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tt.wantR {
				t.Errorf("reader: %s = %s, want %s", tt.pragma, got, tt.wantR)
			}
		})
	}
}

// TestForwardMigration applies a further migration to an existing file, the
// way a newer release does, and checks that this release then refuses it.
func TestForwardMigration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kontor.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.SetVCard(t.Context(), "alice@example.com", []byte("<vCard/>")); err != nil {
		t.Fatal(err)
	}
	migs, err := migrate.Load(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	next := migrate.Migration{Version: len(migs) + 1, Name: "next.sql",
		SQL: "CREATE TABLE next_feature (x INTEGER) STRICT; INSERT INTO next_feature VALUES (1), (2);"}
	v, err := migrate.Run(t.Context(), executor{s.w}, append(migs, next))
	if err != nil {
		t.Fatal(err)
	}
	if v != next.Version {
		t.Errorf("version after migrating = %d, want %d", v, next.Version)
	}
	var n int
	if err := s.r.QueryRowContext(t.Context(), "SELECT count(*) FROM next_feature").Scan(&n); err != nil || n != 2 {
		t.Errorf("next_feature has %d rows (%v), want 2", n, err)
	}
	if _, err := s.VCard(t.Context(), "alice@example.com"); err != nil {
		t.Errorf("data lost in migration: %v", err)
	}
	// Running again changes nothing.
	if v, err := migrate.Run(t.Context(), executor{s.w}, append(migs, next)); err != nil || v != next.Version {
		t.Errorf("second run: version %d, %v", v, err)
	}
	// This release does not know version 2.
	if _, err := Open(t.Context(), path); !errors.Is(err, storage.ErrSchemaTooNew) {
		t.Errorf("Open after a newer migration: %v, want ErrSchemaTooNew", err)
	}
}

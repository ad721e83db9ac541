package sqlite

import (
	"database/sql"
	"path/filepath"
	"testing"

	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/storage/migrate"
)

// TestRetiredKeysMigration upgrades a database of archive schema 1 (keys
// unique per slot) to 2 (retired keys, rebuilt table): the keys stay with
// their IDs, and the ID of a key destroyed before the upgrade is still
// never given to a new one (the AUTOINCREMENT counter moved over).
func TestRetiredKeysMigration(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kontor.db")
	db, err := sql.Open("sqlite", fileURI(path)+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	migs, err := migrate.Load(archiveMigrations, "migrations_archive")
	if err != nil {
		t.Fatal(err)
	}
	if len(migs) < 2 || migs[1].Name != "0002_retired_keys.sql" {
		t.Fatalf("archive migrations: %v", migs)
	}
	if _, err := migrate.RunTrack(ctx, executor{db}, "archive", migs[:1]); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO archive_keys (owner, slice, class, kek_id, wrapped, created, keep_until) VALUES
			('alice@example.com', 202611, 'standard', 'k', x'01', 1, 9223372036854775807),
			('bob@example.com', 202611, 'standard', 'k', x'02', 1, 9223372036854775807),
			('carol@example.com', 202611, 'standard', 'k', x'03', 1, 9223372036854775807)`,
		`DELETE FROM archive_keys WHERE owner = 'carol@example.com'`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	keys, err := s.ArchiveKeysByID(ctx, []int64{1, 2, 3})
	if err != nil || len(keys) != 2 || keys[0].Owner != "alice@example.com" || keys[1].Owner != "bob@example.com" {
		t.Fatalf("keys after the upgrade: %+v, %v", keys, err)
	}
	slot := storage.ArchiveKeySlot{Owner: "dave@example.com", Slice: 202611, Class: "standard"}
	if err := s.CreateArchiveKeys(ctx, []storage.ArchiveKey{{ArchiveKeySlot: slot, KEKID: "k", Wrapped: []byte{4}, KeepUntil: storage.ArchiveForever}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.ArchiveKeys(ctx, []storage.ArchiveKeySlot{slot})
	if err != nil || len(got) != 1 {
		t.Fatalf("the new key: %+v, %v", got, err)
	}
	if got[0].ID <= 3 {
		t.Errorf("the new key has ID %d: the ID of the destroyed key 3 (or an older one) was given again", got[0].ID)
	}
	// The slot is still unique among live keys.
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN ('archive_keys_slot', 'archive_keys_keep_until')`).Scan(&n); err != nil || n != 2 {
		t.Errorf("indexes after the upgrade: %d, %v", n, err)
	}
}

package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"testing/fstest"
)

// TestMigrationTracks: a feature's track is numbered on its own and
// recorded in its own table, beside the core's.
func TestMigrationTracks(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tracks.db")
	feature := fstest.MapFS{
		"m/0001_one.sql": {Data: []byte("CREATE TABLE feature_one (id INTEGER PRIMARY KEY) STRICT;")},
		"m/0002_two.sql": {Data: []byte("CREATE TABLE feature_two (id INTEGER PRIMARY KEY) STRICT;")},
	}
	saved := schemas
	t.Cleanup(func() { schemas = saved })
	schemas = append(schemas, schema{track: "feature", files: feature, dir: "m"})
	st, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	core, err := st.SchemaVersion(ctx)
	if err != nil || core < 1 {
		t.Fatalf("core version = %d, %v", core, err)
	}
	var v int
	if err := st.r.QueryRowContext(ctx, "SELECT MAX(version) FROM schema_migrations_feature").Scan(&v); err != nil || v != 2 {
		t.Fatalf("feature track version = %d, %v", v, err)
	}
	if _, err := st.r.ExecContext(ctx, "SELECT id FROM feature_two"); err != nil {
		t.Fatalf("feature table missing: %v", err)
	}
	if again, _ := st.SchemaVersion(ctx); again != core {
		t.Fatalf("the feature track changed the core version: %d → %d", core, again)
	}
}

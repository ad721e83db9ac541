package storagetest

import (
	"testing"

	"kontor.im/kontor/core/storage"
)

// RunSchemaVersions checks storage.SchemaReporter: every track the
// backend migrates is reported, the core's equal to SchemaVersion.
func RunSchemaVersions(t *testing.T, st storage.Store) {
	t.Helper()
	sr, ok := st.(storage.SchemaReporter)
	if !ok {
		t.Fatalf("the %s store does not report its schema versions", st.Backend())
	}
	got, err := sr.SchemaVersions(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	core, err := st.SchemaVersion(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got["core"] != core || core == 0 {
		t.Errorf("core track: %d, SchemaVersion %d", got["core"], core)
	}
	for _, track := range []string{"archive", "audit", "gdpr", "operators"} {
		if got[track] < 1 {
			t.Errorf("track %s: version %d (all: %v)", track, got[track], got)
		}
	}
}

// CheckContents checks what Inspect said of a store: tables or not, rows
// or not, and that a table with rows is named.
func CheckContents(t *testing.T, what string, c storage.Contents, tables, data bool, nonEmpty string) {
	t.Helper()
	if c.Tables != tables || c.Data != data {
		t.Errorf("%s: Inspect = %+v, want tables %v, data %v", what, c, tables, data)
	}
	if nonEmpty != "" {
		found := false
		for _, n := range c.NonEmpty {
			found = found || n == nonEmpty
		}
		if !found {
			t.Errorf("%s: Inspect names %v as holding rows, not %s", what, c.NonEmpty, nonEmpty)
		}
	}
}

// CheckKnown checks that a freshly migrated store is at the versions the
// backend says it knows (KnownSchemaVersions), track by track.
func CheckKnown(t *testing.T, st storage.Store, known map[string]int) {
	t.Helper()
	got, err := st.(storage.SchemaReporter).SchemaVersions(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(known) {
		t.Errorf("tracks: migrated %v, known %v", got, known)
	}
	for track, v := range known {
		if got[track] != v {
			t.Errorf("track %s: migrated to %d, known %d", track, got[track], v)
		}
	}
}

package storage

import "context"

// Snapshotter is a store that writes a consistent copy of itself while it
// is in use: the embedded SQLite store (VACUUM INTO, one read transaction,
// so writers are not blocked and the copy is one point in time). `kontor
// backup` uses it; PostgreSQL is backed up with pg_dump instead.
type Snapshotter interface {
	// Snapshot writes the copy to path, which must not exist yet.
	Snapshot(ctx context.Context, path string) error
}

// SchemaReporter reports the version of every migration track: "core"
// for the core's (SchemaVersion), and each feature's track by its name
// ("archive", "audit", ...). Backups record them in their manifest.
type SchemaReporter interface {
	SchemaVersions(ctx context.Context) (map[string]int, error)
}

// Contents says what a database holds, as `kontor restore` must know it
// before it overwrites one: Kontor's tables at all, and any row in them
// (the schema bookkeeping tables do not count).
type Contents struct {
	Tables bool
	Data   bool
	// NonEmpty names up to a few tables that hold rows, for messages.
	NonEmpty []string
}

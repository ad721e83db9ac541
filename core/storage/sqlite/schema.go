package sqlite

import (
	"context"
	"io/fs"
	"sort"
	"strings"
	"time"

	"kontor.im/kontor/core/storage/migrate"
)

// schema is one migration track of this backend: the core's, or one that a
// feature (the archive, the audit trail) keeps beside its own tables in a
// file of its own, registering it from init.
type schema struct {
	track string // "" for the core
	files fs.FS
	dir   string
}

var schemas = []schema{{track: "", files: migrationFiles, dir: "migrations"}}

// migrateRetrying runs migrateAll, retrying while the file is busy. Two
// processes opening a fresh file at once (the server and a `kontor user`
// command) race to switch it to WAL; SQLite answers the loser SQLITE_BUSY at
// once instead of waiting on busy_timeout, since waiting could deadlock.
func migrateRetrying(ctx context.Context, ex migrate.Executor) error {
	delay := 5 * time.Millisecond
	for attempt := 0; ; attempt++ {
		err := migrateAll(ctx, ex)
		if err == nil || attempt == 30 || !isBusy(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}

func isBusy(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "SQLITE_BUSY") || strings.Contains(msg, "database is locked")
}

// migrateAll applies every track, the core's first.
func migrateAll(ctx context.Context, ex migrate.Executor) error {
	all := append([]schema(nil), schemas...)
	sort.SliceStable(all, func(i, j int) bool { return all[i].track < all[j].track })
	for _, sc := range all {
		migs, err := migrate.Load(sc.files, sc.dir)
		if err != nil {
			return err
		}
		if _, err := migrate.RunTrack(ctx, ex, sc.track, migs); err != nil {
			return err
		}
	}
	return nil
}

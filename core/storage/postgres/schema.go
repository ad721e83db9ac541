package postgres

import (
	"context"
	"io/fs"
	"sort"

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

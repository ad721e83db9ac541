// Package migrate applies a backend's embedded, versioned schema migrations,
// forward only, and refuses a database that a newer Kontor has migrated.
//
// Each backend embeds its own SQL files (migrations/0001_init.sql, ...) and
// lends the runner an Executor: a migration lock and transactions. The runner
// is the same for both backends:
//
//  1. take the migration lock (PostgreSQL: a session advisory lock, so two
//     servers starting at once against a fresh database do not both migrate;
//     SQLite: nothing, its write transactions already exclude each other);
//  2. create schema_migrations(version, applied_at) if it is missing;
//  3. fail with an error wrapping storage.ErrSchemaTooNew if the database has a
//     version this binary does not know;
//  4. apply each missing migration in its own transaction, which re-reads the
//     current version first and records the migration in schema_migrations
//     before committing, so a migration is applied exactly once even if the
//     lock were missing.
//
// applied_at is UTC unix microseconds, like every time Kontor stores.
//
// There are no down migrations: a release that needs to undo something ships a
// new forward migration.
//
// A backend may keep several tracks: the core's (recorded in
// schema_migrations) and one per feature that owns tables of its own, such as
// the archive or the audit trail (recorded in schema_migrations_<track>).
// Each track is numbered from 1 on its own, so features are developed and
// shipped without renumbering each other's migrations.
package migrate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"kontor.im/kontor/core/storage"
)

// Migration is one forward step of a schema.
type Migration struct {
	Version int    // 1, 2, 3, ... without gaps
	Name    string // the file name, for error messages
	SQL     string // one or more statements, run as a script
}

// Executor is what a backend lends the runner.
type Executor interface {
	// Lock takes a lock that serialises migration runs between processes and
	// returns the function that releases it.
	Lock(ctx context.Context) (unlock func(context.Context) error, err error)
	// InTx runs fn in one transaction and commits if fn returns nil; it rolls
	// back otherwise.
	InTx(ctx context.Context, fn func(Tx) error) error
}

// Tx is one transaction of an Executor. Queries use $1, $2, ... placeholders,
// which both PostgreSQL and SQLite understand.
type Tx interface {
	// Exec runs a statement; without args it may be a script of several
	// statements.
	Exec(ctx context.Context, query string, args ...any) error
	// QueryInt returns the single integer the query selects.
	QueryInt(ctx context.Context, query string, args ...any) (int64, error)
}

// VersionQuery selects the highest applied migration of the core track (0
// when none); backends use it for Store.SchemaVersion.
const VersionQuery = `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`

var trackName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,30}$`)

// table returns the bookkeeping table of a track ("" is the core's).
func table(track string) (string, error) {
	if track == "" {
		return "schema_migrations", nil
	}
	if !trackName.MatchString(track) {
		return "", fmt.Errorf("migrate: bad track name %q", track)
	}
	return "schema_migrations_" + track, nil
}

// Load reads the migrations in dir of fsys: files named NNNN_description.sql,
// numbered from 1 without gaps. Other files are ignored.
func Load(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	var migs []Migration
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, _, ok := strings.Cut(name, "_")
		if !ok {
			return nil, fmt.Errorf("migrate: %s: name must be NNNN_description.sql", name)
		}
		v, err := strconv.Atoi(num)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("migrate: %s: name must start with a positive version number", name)
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("migrate: %w", err)
		}
		migs = append(migs, Migration{Version: v, Name: name, SQL: string(b)})
	}
	sort.Slice(migs, func(i, j int) bool { return migs[i].Version < migs[j].Version })
	for i, m := range migs {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migrate: %s: expected version %d (versions start at 1 and have no gaps or duplicates)", m.Name, i+1)
		}
	}
	if len(migs) == 0 {
		return nil, errors.New("migrate: no migrations found")
	}
	return migs, nil
}

// Run brings the database up to the last of migs (as returned by Load) and
// returns the resulting version. It returns an error wrapping
// storage.ErrSchemaTooNew, and changes nothing, if the database is already
// past the last of migs.
func Run(ctx context.Context, ex Executor, migs []Migration) (version int, err error) {
	return RunTrack(ctx, ex, "", migs)
}

// RunTrack is Run for a named track, recorded in its own table.
func RunTrack(ctx context.Context, ex Executor, track string, migs []Migration) (version int, err error) {
	tbl, err := table(track)
	if err != nil {
		return 0, err
	}
	createTable := `CREATE TABLE IF NOT EXISTS ` + tbl + ` (
	version    INTEGER PRIMARY KEY,
	applied_at BIGINT  NOT NULL
)`
	versionQuery := `SELECT COALESCE(MAX(version), 0) FROM ` + tbl
	latest := 0
	if n := len(migs); n > 0 {
		latest = migs[n-1].Version
	}
	unlock, err := ex.Lock(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrate: lock: %w", err)
	}
	defer func() {
		// The lock must be released even if ctx was cancelled meanwhile.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if uerr := unlock(uctx); uerr != nil && err == nil {
			err = fmt.Errorf("migrate: unlock: %w", uerr)
		}
	}()

	var current int64
	err = ex.InTx(ctx, func(tx Tx) error {
		if err := tx.Exec(ctx, createTable); err != nil {
			return err
		}
		var err error
		current, err = tx.QueryInt(ctx, versionQuery)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("migrate: read version: %w", err)
	}
	if current > int64(latest) {
		return int(current), tooNew(current, latest)
	}

	for _, m := range migs {
		if int64(m.Version) <= current {
			continue
		}
		err := ex.InTx(ctx, func(tx Tx) error {
			cur, err := tx.QueryInt(ctx, versionQuery)
			if err != nil {
				return err
			}
			switch {
			case cur > int64(latest):
				return tooNew(cur, latest)
			case cur >= int64(m.Version):
				current = cur // someone else applied it meanwhile
				return nil
			case cur != int64(m.Version-1):
				return fmt.Errorf("database is at version %d, cannot apply %d", cur, m.Version)
			}
			if err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			if err := tx.Exec(ctx, `INSERT INTO `+tbl+` (version, applied_at) VALUES ($1, $2)`,
				m.Version, time.Now().UnixMicro()); err != nil {
				return err
			}
			current = int64(m.Version)
			return nil
		})
		if err != nil {
			if errors.Is(err, storage.ErrSchemaTooNew) {
				return 0, err
			}
			return 0, fmt.Errorf("migrate: %s: %w", m.Name, err)
		}
	}
	return int(current), nil
}

func tooNew(have int64, known int) error {
	return fmt.Errorf("migrate: database is at schema version %d, this binary knows up to %d: %w",
		have, known, storage.ErrSchemaTooNew)
}

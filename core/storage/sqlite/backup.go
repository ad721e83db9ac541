package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"

	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/storage/migrate"
)

var (
	_ storage.Snapshotter    = (*Store)(nil)
	_ storage.SchemaReporter = (*Store)(nil)
)

// Snapshot writes a consistent copy of the database to path with VACUUM
// INTO. It runs on a connection of its own, in one read transaction: with
// WAL the server's writers go on meanwhile, and the copy is the database
// as of the transaction's start. The copy is compacted (no free pages) and
// fsynced by SQLite before VACUUM INTO returns.
func (s *Store) Snapshot(ctx context.Context, path string) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("sqlite: snapshot: %s exists", path)
	}
	db, err := sql.Open("sqlite", fileURI(s.path)+"?"+fmt.Sprintf("_busy_timeout=%d", busyTimeout.Milliseconds()))
	if err != nil {
		return fmt.Errorf("sqlite: snapshot: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `VACUUM INTO $1`, path); err != nil {
		os.Remove(path)
		return fmt.Errorf("sqlite: snapshot: %w", err)
	}
	return nil
}

// fileURI is the file: URI of path with its path escaped, so that '?', '#'
// and '%' in it are not taken for URI syntax.
func fileURI(path string) string { return "file:" + (&url.URL{Path: path}).EscapedPath() }

// SchemaVersions returns the version of every migration track.
func (s *Store) SchemaVersions(ctx context.Context) (map[string]int, error) {
	return schemaVersions(ctx, s.r)
}

func schemaVersions(ctx context.Context, db *sql.DB) (map[string]int, error) {
	names, err := tableNames(ctx, db)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, n := range names {
		track, ok := trackOf(n)
		if !ok {
			continue
		}
		var v int
		if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM "`+n+`"`).Scan(&v); err != nil {
			return nil, fmt.Errorf("sqlite: schema versions: %w", err)
		}
		out[track] = v
	}
	return out, nil
}

// trackOf returns the migration track whose bookkeeping table name is.
func trackOf(name string) (string, bool) {
	switch {
	case name == "schema_migrations":
		return "core", true
	case strings.HasPrefix(name, "schema_migrations_"):
		return strings.TrimPrefix(name, "schema_migrations_"), true
	}
	return "", false
}

// tableNames lists the ordinary tables of the database, sorted.
func tableNames(ctx context.Context, db *sql.DB) ([]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\'`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: tables: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("sqlite: tables: %w", err)
		}
		if strings.ContainsRune(n, '"') {
			return nil, fmt.Errorf("sqlite: tables: unexpected table name %q", n)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: tables: %w", err)
	}
	sort.Strings(names)
	return names, nil
}

// Inspect says what the database file at path holds, without creating or
// migrating it (read only). A missing file holds nothing.
func Inspect(ctx context.Context, path string) (storage.Contents, error) {
	var c storage.Contents
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return c, nil
	} else if err != nil {
		return c, fmt.Errorf("sqlite: inspect: %w", err)
	}
	db, err := sql.Open("sqlite", fileURI(path)+"?"+fmt.Sprintf("_busy_timeout=%d&mode=ro", busyTimeout.Milliseconds()))
	if err != nil {
		return c, fmt.Errorf("sqlite: inspect: %w", err)
	}
	defer db.Close()
	names, err := tableNames(ctx, db)
	if err != nil {
		return c, err
	}
	for _, n := range names {
		c.Tables = true
		if _, ok := trackOf(n); ok {
			continue
		}
		var any bool
		if err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM "`+n+`")`).Scan(&any); err != nil {
			return c, fmt.Errorf("sqlite: inspect %s: %w", n, err)
		}
		if any {
			c.Data = true
			if len(c.NonEmpty) < 5 {
				c.NonEmpty = append(c.NonEmpty, n)
			}
		}
	}
	return c, nil
}

// KnownSchemaVersions returns, for every migration track this binary
// knows, its newest version: a database (or backup) with a higher one was
// migrated by a newer Kontor.
func KnownSchemaVersions() (map[string]int, error) {
	out := map[string]int{}
	for _, sc := range schemas {
		migs, err := migrate.Load(sc.files, sc.dir)
		if err != nil {
			return nil, err
		}
		track := sc.track
		if track == "" {
			track = "core"
		}
		out[track] = len(migs)
	}
	return out, nil
}

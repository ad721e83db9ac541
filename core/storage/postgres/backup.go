package postgres

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/storage/migrate"
)

var _ storage.SchemaReporter = (*Store)(nil)

// querier is what both a pool and a single connection offer.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// SchemaVersions returns the version of every migration track: "core",
// and each feature's track by its name.
func (s *Store) SchemaVersions(ctx context.Context) (map[string]int, error) {
	names, err := tableNames(ctx, s.pool)
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
		if err := s.pool.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM `+pgx.Identifier{n}.Sanitize()).Scan(&v); err != nil {
			return nil, fmt.Errorf("postgres: schema versions: %w", err)
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

// tableNames lists the base tables of the current schema, sorted.
func tableNames(ctx context.Context, q querier) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`)
	if err != nil {
		return nil, fmt.Errorf("postgres: tables: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: tables: %w", err)
	}
	sort.Strings(names)
	return names, nil
}

// Inspect says what the database at dsn holds, without migrating it.
func Inspect(ctx context.Context, dsn string) (storage.Contents, error) {
	var c storage.Contents
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return c, fmt.Errorf("postgres: inspect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	names, err := tableNames(ctx, conn)
	if err != nil {
		return c, err
	}
	for _, n := range names {
		c.Tables = true
		if _, ok := trackOf(n); ok {
			continue
		}
		var any bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+pgx.Identifier{n}.Sanitize()+`)`).Scan(&any); err != nil {
			return c, fmt.Errorf("postgres: inspect %s: %w", n, err)
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

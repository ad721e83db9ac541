// Package sqlite implements Kontor's storage interfaces on an embedded SQLite file.
//
// It uses modernc.org/sqlite, a translation of SQLite's C source to pure Go:
// no cgo, so `kontor` stays a single static binary that cross-compiles, at the
// price of being somewhat slower than the C library (irrelevant at the scale of
// a single-file deployment). The database/sql driver name is "sqlite".
//
// # Connections and locking
//
// A Store holds two database/sql pools on the same file:
//
//   - a writer with exactly one connection. Every write (and every
//     read-check-write, such as the offline quota) goes through it, so writers
//     of one process queue in Go instead of spinning in SQLite's busy
//     handler. Its transactions begin with BEGIN IMMEDIATE (the driver's
//     _txlock=immediate), which takes SQLite's write lock up front, so a
//     transaction never has to upgrade a read lock and never fails with
//     SQLITE_BUSY_SNAPSHOT.
//   - readers (query_only, several connections), which WAL lets run alongside
//     the writer. Each read method is a single statement, hence one snapshot.
//
// Another process (the `kontor user` CLI) may write the same file while the
// server runs: busy_timeout (10 s) makes either side wait for the other's
// write lock rather than fail.
//
// # Pragmas
//
// journal_mode=WAL (persistent in the file), synchronous=NORMAL, which with
// WAL never corrupts the database but may lose the last transactions on power
// loss or an OS crash (not on a crash of Kontor itself), foreign_keys=ON,
// busy_timeout=10000, and the driver's defensive mode and no double-quoted
// string literals, so SQL mistakes fail instead of being guessed.
//
// # Schema
//
// Migrations are embedded (migrations/NNNN_*.sql) and applied by
// core/storage/migrate when the Store opens. Times are stored as UTC unix
// microseconds, as on PostgreSQL. Credentials are rows of
// account_credentials; roster groups are a JSON array in roster_items.groups.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/storage/migrate"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Store is a storage.Store on one SQLite file. It is safe for concurrent use.
type Store struct {
	w    *sql.DB // one connection: all writes, in order
	r    *sql.DB // query_only readers
	path string  // the database file (Snapshot opens its own connection)

	closeOnce sync.Once
	closeErr  error
}

var _ storage.Store = (*Store)(nil)

// busyTimeout is how long a connection waits for another connection's (or
// process's) write lock before giving up with SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// Open opens (creating if needed) the database file at path and brings its
// schema up to date. It returns an error wrapping storage.ErrSchemaTooNew if a
// newer Kontor has migrated the file.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("sqlite: open %q: want the path of a database file", path)
	}
	// A file: URI with an escaped path: '?', '#' and '%' in the path cannot
	// be mistaken for URI syntax.
	uri := "file:" + (&url.URL{Path: path}).EscapedPath()
	common := fmt.Sprintf("_busy_timeout=%d&_foreign_keys=1&_defensive=1&_dqs=0", busyTimeout.Milliseconds())

	w, err := sql.Open("sqlite", uri+"?"+common+"&_journal_mode=WAL&_synchronous=NORMAL&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)

	// Migrating also makes the first connection, which switches the file to
	// WAL before any reader opens it.
	if err := migrateRetrying(ctx, executor{w}); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}

	r, err := sql.Open("sqlite", uri+"?"+common+"&_query_only=1")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	if err := r.PingContext(ctx); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return &Store{w: w, r: r, path: path}, nil
}

// Backend returns "sqlite".
func (s *Store) Backend() string { return "sqlite" }

// SchemaVersion returns the highest migration applied to the file.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := s.r.QueryRowContext(ctx, migrate.VersionQuery).Scan(&v); err != nil {
		return 0, fmt.Errorf("sqlite: schema version: %w", err)
	}
	return v, nil
}

// Close closes the database. It may be called more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = errors.Join(s.r.Close(), s.w.Close())
		if s.closeErr != nil {
			s.closeErr = fmt.Errorf("sqlite: close: %w", s.closeErr)
		}
	})
	return s.closeErr
}

// write runs fn in one write transaction (BEGIN IMMEDIATE) on the writer.
// fn must not use the writer outside tx: it has a single connection.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// executor lends the writer to the migration runner. No migration lock is
// needed: every migration transaction is BEGIN IMMEDIATE, which excludes
// other writers (in this process and others), and the runner re-reads the
// version inside it.
type executor struct{ db *sql.DB }

func (e executor) Lock(context.Context) (func(context.Context) error, error) {
	return func(context.Context) error { return nil }, nil
}

func (e executor) InTx(ctx context.Context, fn func(migrate.Tx) error) error {
	tx, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(migTx{tx}); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

type migTx struct{ tx *sql.Tx }

func (t migTx) Exec(ctx context.Context, query string, args ...any) error {
	_, err := t.tx.ExecContext(ctx, query, args...)
	return err
}

func (t migTx) QueryInt(ctx context.Context, query string, args ...any) (int64, error) {
	var n int64
	err := t.tx.QueryRowContext(ctx, query, args...).Scan(&n)
	return n, err
}

// micros converts a time to what the database stores.
func micros(t time.Time) int64 { return t.UnixMicro() }

// fromMicros converts a stored time back, in UTC.
func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// nonNil returns b, or an empty slice for nil: blob columns are NOT NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

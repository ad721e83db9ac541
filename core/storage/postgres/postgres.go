// Package postgres implements Kontor's storage interfaces on PostgreSQL.
//
// It uses github.com/jackc/pgx/v5: the maintained native PostgreSQL driver,
// with its own connection pool (pgxpool) and per-connection statement cache,
// the binary protocol, arrays, and CopyFrom for the bulk paths (archive
// ingest, export), none of which database/sql drivers expose as directly.
// pgx types stay inside this package: callers see only Open, a DSN string and
// the storage interfaces.
//
// # Schema
//
// Migrations are embedded (migrations/NNNN_*.sql) and applied by
// core/storage/migrate when the Store opens, under a session advisory lock,
// so two servers starting at once against a fresh database migrate it once.
// Times are stored as UTC unix microseconds (BIGINT), as on SQLite; JID
// columns are COLLATE "C" so that they compare and sort as bytes whatever the
// database's default collation. Credentials are rows of account_credentials;
// roster groups are a text[] in roster_items.groups.
//
// # Locking
//
// Transaction-scoped advisory locks, each in its own class (the first key of
// the two-key form), serialise what must not interleave:
//
//   - lockAccountLog: every account mutation takes it first, so account
//     changes commit in the order of their sequence numbers and a watcher that
//     reads "changes after seq N" never skips one that commits late;
//   - lockOffline(owner): StoreOffline's quota check and insert, and
//     DeleteAccount, so the limit holds under concurrency.
//
// Lock order: lockAccountLog before lockOffline; roster writes lock the
// owner's roster_versions row before touching roster_items.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/storage/migrate"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Advisory lock classes (first key of pg_advisory_*lock(int4, int4)). The
// values spell "Kn" and a number, to stay clear of other applications.
const (
	lockMigrate    int32 = 0x4B6E0001
	lockAccountLog int32 = 0x4B6E0002
	lockOffline    int32 = 0x4B6E0003
)

// Store is a storage.Store on a PostgreSQL database. It is safe for
// concurrent use.
type Store struct {
	pool      *pgxpool.Pool
	closeOnce sync.Once
	lastAct   lastActivityQueue
}

var _ storage.Store = (*Store)(nil)

// Open connects to the database named by dsn (a libpq keyword/value string or
// a postgres:// URL; pgxpool's pool_* parameters are honoured) and brings its
// schema up to date. It returns an error wrapping storage.ErrSchemaTooNew if a
// newer Kontor has migrated the database.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's error does not repeat the password.
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "kontor" // for pg_stat_activity
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	if err := migrateAll(ctx, &executor{pool: pool}); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return &Store{pool: pool}, nil
}

// Backend returns "postgres".
func (s *Store) Backend() string { return "postgres" }

// SchemaVersion returns the highest migration applied to the database.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := s.pool.QueryRow(ctx, migrate.VersionQuery).Scan(&v); err != nil {
		return 0, fmt.Errorf("postgres: schema version: %w", err)
	}
	return v, nil
}

// Close writes the pending last activity times (see lastActivityFlush)
// and closes the pool, waiting for connections in use to be returned. It
// may be called more than once.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		err = s.closeLastActivity()
		s.pool.Close()
	})
	return err
}

// inTx runs fn in one transaction, committing if it returns nil.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

// executor lends the migration runner one connection, which holds the
// migration advisory lock while it migrates.
type executor struct {
	pool *pgxpool.Pool
	conn *pgxpool.Conn
}

func (e *executor) Lock(ctx context.Context) (func(context.Context) error, error) {
	c, err := e.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := c.Exec(ctx, `SELECT pg_advisory_lock($1, 0)`, lockMigrate); err != nil {
		c.Release()
		return nil, err
	}
	e.conn = c
	return func(ctx context.Context) error {
		e.conn = nil
		if _, err := c.Exec(ctx, `SELECT pg_advisory_unlock($1, 0)`, lockMigrate); err != nil {
			// Closing the session is the other way to release the lock;
			// the connection must not go back to the pool holding it.
			_ = c.Hijack().Close(ctx)
			return err
		}
		c.Release()
		return nil
	}, nil
}

func (e *executor) InTx(ctx context.Context, fn func(migrate.Tx) error) error {
	if e.conn == nil {
		return errors.New("postgres: migration transaction without the migration lock")
	}
	return pgx.BeginFunc(ctx, e.conn, func(tx pgx.Tx) error { return fn(migTx{tx}) })
}

type migTx struct{ tx pgx.Tx }

func (t migTx) Exec(ctx context.Context, query string, args ...any) error {
	// Without args pgx uses the simple protocol, which runs a whole script.
	_, err := t.tx.Exec(ctx, query, args...)
	return err
}

func (t migTx) QueryInt(ctx context.Context, query string, args ...any) (int64, error) {
	var n int64
	err := t.tx.QueryRow(ctx, query, args...).Scan(&n)
	return n, err
}

// micros converts a time to what the database stores.
func micros(t time.Time) int64 { return t.UnixMicro() }

// fromMicros converts a stored time back, in UTC.
func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// nonNil returns b, or an empty slice for nil: pgx sends a nil slice as NULL
// and the bytea columns are NOT NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

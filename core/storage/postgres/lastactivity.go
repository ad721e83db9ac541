package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"kontor.im/kontor/core/storage"
)

// Last activity (XEP-0012) is written whenever an account's last session
// ends: on its own, a statement and a commit per logout, a fifth of what a
// login costs the database. SetLastActivity therefore keeps the newest
// value per owner in memory and writes all of them in one statement
// lastActivityFlush after the first one; LastActivity answers from what is
// pending, and Close writes what is left. A crash loses at most the logout
// times of the last lastActivityFlush, the same promise as the archive's
// batches. The write skips owners whose account is gone, under a key-share
// lock of the account row, so a logout at the moment of an erasure cannot
// bring the erased person's row back.
const lastActivityFlush = time.Second

// lastActivityQueue holds the writes SetLastActivity has not made yet.
type lastActivityQueue struct {
	mu      sync.Mutex
	pending map[string]lastActivity
	timer   *time.Timer // runs flushLastActivity; nil when nothing is pending
	closed  bool
	flushMu sync.Mutex // one flush at a time
}

type lastActivity struct {
	at     int64 // microseconds
	status string
}

// SetLastActivity records when the owner last logged out and with which
// status. The write is deferred (see lastActivityFlush); after Close it is
// made at once.
func (s *Store) SetLastActivity(ctx context.Context, owner string, at time.Time, status string) error {
	q := &s.lastAct
	q.mu.Lock()
	if !q.closed {
		if q.pending == nil {
			q.pending = map[string]lastActivity{}
		}
		q.pending[owner] = lastActivity{at: micros(at), status: status}
		s.armLastActivityLocked()
		q.mu.Unlock()
		return nil
	}
	q.mu.Unlock()
	if err := s.writeLastActivity(ctx, map[string]lastActivity{owner: {at: micros(at), status: status}}); err != nil {
		return fmt.Errorf("postgres: set last activity: %w", err)
	}
	return nil
}

// LastActivity returns what SetLastActivity recorded, ErrNotFound if never.
func (s *Store) LastActivity(ctx context.Context, owner string) (time.Time, string, error) {
	q := &s.lastAct
	q.mu.Lock()
	la, ok := q.pending[owner]
	q.mu.Unlock()
	if ok {
		return fromMicros(la.at), la.status, nil
	}
	var (
		at     int64
		status string
	)
	err := s.pool.QueryRow(ctx, `SELECT at, status FROM last_activity WHERE owner = $1`, owner).Scan(&at, &status)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, "", fmt.Errorf("postgres: last activity: %w", storage.ErrNotFound)
	}
	if err != nil {
		return time.Time{}, "", fmt.Errorf("postgres: last activity: %w", err)
	}
	return fromMicros(at), status, nil
}

// armLastActivityLocked starts the timer of the next flush unless it
// runs. The caller holds lastAct.mu.
func (s *Store) armLastActivityLocked() {
	if s.lastAct.timer == nil {
		s.lastAct.timer = time.AfterFunc(lastActivityFlush, func() { _ = s.flushLastActivity(context.Background()) })
	}
}

// forgetLastActivity drops jid's pending write (its account is being
// deleted).
func (s *Store) forgetLastActivity(jid string) {
	q := &s.lastAct
	q.mu.Lock()
	delete(q.pending, jid)
	q.mu.Unlock()
}

// flushLastActivity writes what is pending. What a failed write took is
// put back unless a newer value came meanwhile, and tried again later.
func (s *Store) flushLastActivity(ctx context.Context) error {
	q := &s.lastAct
	q.flushMu.Lock()
	defer q.flushMu.Unlock()
	q.mu.Lock()
	batch := q.pending
	q.pending = nil
	if q.timer != nil {
		q.timer.Stop()
		q.timer = nil
	}
	q.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := s.writeLastActivity(ctx, batch)
	if err == nil {
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pending == nil {
		q.pending = map[string]lastActivity{}
	}
	for owner, la := range batch {
		if _, newer := q.pending[owner]; !newer {
			q.pending[owner] = la
		}
	}
	if !q.closed {
		s.armLastActivityLocked()
	}
	return fmt.Errorf("postgres: set last activity: %w", err)
}

// writeLastActivity upserts the values of existing accounts in one
// statement; a stored value that is newer stays (a retried write, or
// another server on the same database).
func (s *Store) writeLastActivity(ctx context.Context, batch map[string]lastActivity) error {
	owners := make([]string, 0, len(batch))
	ats := make([]int64, 0, len(batch))
	statuses := make([]string, 0, len(batch))
	for owner, la := range batch {
		owners = append(owners, owner)
		ats = append(ats, la.at)
		statuses = append(statuses, la.status)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO last_activity (owner, at, status)
		SELECT u.owner, u.at, u.status
		FROM unnest($1::text[], $2::bigint[], $3::text[]) AS u(owner, at, status)
		JOIN accounts AS a ON a.jid = u.owner
		FOR KEY SHARE OF a
		ON CONFLICT (owner) DO UPDATE SET at = excluded.at, status = excluded.status
		WHERE last_activity.at <= excluded.at`,
		owners, ats, statuses)
	return err
}

// closeLastActivity writes what is pending; later writes are made at once.
func (s *Store) closeLastActivity() error {
	q := &s.lastAct
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	// A shutdown with the database gone waits a little, not the 30 s a
	// flush may take.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.flushLastActivity(ctx)
}

package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"kontor.im/kontor/core/storage"
)

// StoreOffline appends a message and returns its ID; a zero Stamp means now.
// The owner's offline lock makes the quota check and the insert atomic with
// respect to every other StoreOffline for that owner (in any process), and
// makes IDs commit in increasing order per owner.
func (s *Store) StoreOffline(ctx context.Context, msg storage.OfflineMessage, limit int) (int64, error) {
	if msg.Stamp.IsZero() {
		msg.Stamp = time.Now()
	}
	var id int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockOwnerOffline(ctx, tx, msg.Owner); err != nil {
			return err
		}
		if limit > 0 {
			var n int64
			if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM offline_messages WHERE owner = $1`,
				msg.Owner).Scan(&n); err != nil {
				return err
			}
			if n >= int64(limit) {
				return storage.ErrQuotaExceeded
			}
		}
		return tx.QueryRow(ctx, `INSERT INTO offline_messages (owner, from_jid, stamp, sealed)
			VALUES ($1, $2, $3, $4) RETURNING id`,
			msg.Owner, msg.From, micros(msg.Stamp), nonNil(msg.Sealed)).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: store offline: %w", err)
	}
	return id, nil
}

// OfflineMessages returns up to limit of the owner's messages, oldest first
// (limit <= 0: all).
func (s *Store) OfflineMessages(ctx context.Context, owner string, limit int) ([]storage.OfflineMessage, error) {
	var lim any // NULL: no limit
	if limit > 0 {
		lim = int64(limit)
	}
	rows, err := s.pool.Query(ctx, `SELECT id, from_jid, stamp, sealed FROM offline_messages
		WHERE owner = $1 ORDER BY id LIMIT $2`, owner, lim)
	if err != nil {
		return nil, fmt.Errorf("postgres: offline messages: %w", err)
	}
	defer rows.Close()
	var msgs []storage.OfflineMessage
	for rows.Next() {
		m := storage.OfflineMessage{Owner: owner}
		var stamp int64
		if err := rows.Scan(&m.ID, &m.From, &stamp, &m.Sealed); err != nil {
			return nil, fmt.Errorf("postgres: offline messages: %w", err)
		}
		m.Stamp = fromMicros(stamp)
		msgs = append(msgs, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: offline messages: %w", err)
	}
	return msgs, nil
}

// DeleteOffline removes the owner's messages with these IDs, in one
// statement; IDs of other owners' messages are ignored.
func (s *Store) DeleteOffline(ctx context.Context, owner string, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM offline_messages WHERE owner = $1 AND id = ANY($2)`,
		owner, ids); err != nil {
		return fmt.Errorf("postgres: delete offline: %w", err)
	}
	return nil
}

// OfflineCount returns how many messages the owner has waiting.
func (s *Store) OfflineCount(ctx context.Context, owner string) (int, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM offline_messages WHERE owner = $1`, owner).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: offline count: %w", err)
	}
	return int(n), nil
}

// lockOwnerOffline takes the owner's offline lock until the transaction
// ends. Owners whose names hash alike share a lock, which only costs a
// little concurrency.
func lockOwnerOffline(ctx context.Context, tx pgx.Tx, owner string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, lockOffline, owner)
	return err
}

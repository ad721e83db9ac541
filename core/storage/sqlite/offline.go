package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"time"

	"kontor.im/kontor/core/storage"
)

// StoreOffline appends a message and returns its ID; a zero Stamp means now.
// The quota check and the insert run in one BEGIN IMMEDIATE transaction, so
// no other writer (of this or another process) can slip in between.
func (s *Store) StoreOffline(ctx context.Context, msg storage.OfflineMessage, limit int) (int64, error) {
	if msg.Stamp.IsZero() {
		msg.Stamp = time.Now()
	}
	var id int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		if limit > 0 {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM offline_messages WHERE owner = $1`,
				msg.Owner).Scan(&n); err != nil {
				return err
			}
			if n >= limit {
				return storage.ErrQuotaExceeded
			}
		}
		return tx.QueryRowContext(ctx, `INSERT INTO offline_messages (owner, from_jid, stamp, sealed)
			VALUES ($1, $2, $3, $4) RETURNING id`,
			msg.Owner, msg.From, micros(msg.Stamp), nonNil(msg.Sealed)).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: store offline: %w", err)
	}
	return id, nil
}

// OfflineMessages returns up to limit of the owner's messages, oldest first
// (limit <= 0: all).
func (s *Store) OfflineMessages(ctx context.Context, owner string, limit int) ([]storage.OfflineMessage, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := s.r.QueryContext(ctx, `SELECT id, from_jid, stamp, sealed FROM offline_messages
		WHERE owner = $1 ORDER BY id LIMIT $2`, owner, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: offline messages: %w", err)
	}
	defer rows.Close()
	var msgs []storage.OfflineMessage
	for rows.Next() {
		m := storage.OfflineMessage{Owner: owner}
		var stamp int64
		if err := rows.Scan(&m.ID, &m.From, &stamp, &m.Sealed); err != nil {
			return nil, fmt.Errorf("sqlite: offline messages: %w", err)
		}
		m.Stamp = fromMicros(stamp)
		msgs = append(msgs, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: offline messages: %w", err)
	}
	return msgs, nil
}

// DeleteOffline removes the owner's messages with these IDs, in one
// statement; IDs of other owners' messages are ignored.
func (s *Store) DeleteOffline(ctx context.Context, owner string, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	// The IDs travel as one JSON array parameter, however many there are.
	list := make([]byte, 0, 2+len(ids)*8)
	list = append(list, '[')
	for i, id := range ids {
		if i > 0 {
			list = append(list, ',')
		}
		list = strconv.AppendInt(list, id, 10)
	}
	list = append(list, ']')
	_, err := s.w.ExecContext(ctx, `DELETE FROM offline_messages
		WHERE owner = $1 AND id IN (SELECT value FROM json_each($2))`, owner, string(list))
	if err != nil {
		return fmt.Errorf("sqlite: delete offline: %w", err)
	}
	return nil
}

// OfflineCount returns how many messages the owner has waiting.
func (s *Store) OfflineCount(ctx context.Context, owner string) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM offline_messages WHERE owner = $1`, owner).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: offline count: %w", err)
	}
	return n, nil
}

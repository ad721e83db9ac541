package sqlite

// Persistent multi-user chat rooms (storage.MUCRooms), in a migration
// track of their own ("muc", migrations_muc/).

import (
	"context"
	"database/sql"
	"embed"
	"fmt"

	"kontor.im/kontor/core/storage"
)

//go:embed migrations_muc/*.sql
var mucFiles embed.FS

func init() {
	schemas = append(schemas, schema{track: "muc", files: mucFiles, dir: "migrations_muc"})
}

var _ storage.MUCRooms = (*Store)(nil)

// PutMUCRoom inserts or replaces a room.
func (s *Store) PutMUCRoom(ctx context.Context, r storage.MUCRoom) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO muc_rooms (jid, service, state) VALUES ($1, $2, $3)
			ON CONFLICT (jid) DO UPDATE SET service = excluded.service, state = excluded.state`, r.JID, r.Service, r.State)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: put muc room: %w", err)
	}
	return nil
}

// DeleteMUCRoom removes a room.
func (s *Store) DeleteMUCRoom(ctx context.Context, jid string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM muc_rooms WHERE jid = $1`, jid)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete muc room: %w", err)
	}
	return nil
}

// MUCRooms returns a service's rooms ordered by JID.
func (s *Store) MUCRooms(ctx context.Context, service string) ([]storage.MUCRoom, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT jid, service, state FROM muc_rooms WHERE service = $1 ORDER BY jid`, service)
	if err != nil {
		return nil, fmt.Errorf("sqlite: muc rooms: %w", err)
	}
	defer rows.Close()
	var out []storage.MUCRoom
	for rows.Next() {
		var r storage.MUCRoom
		if err := rows.Scan(&r.JID, &r.Service, &r.State); err != nil {
			return nil, fmt.Errorf("sqlite: muc rooms: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: muc rooms: %w", err)
	}
	return out, nil
}

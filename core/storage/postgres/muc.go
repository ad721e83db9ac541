package postgres

// Persistent multi-user chat rooms (storage.MUCRooms), in a migration
// track of their own ("muc", migrations_muc/).

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5"

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
	_, err := s.pool.Exec(ctx, `INSERT INTO muc_rooms (jid, service, state) VALUES ($1, $2, $3)
		ON CONFLICT (jid) DO UPDATE SET service = excluded.service, state = excluded.state`, r.JID, r.Service, r.State)
	if err != nil {
		return fmt.Errorf("postgres: put muc room: %w", err)
	}
	return nil
}

// DeleteMUCRoom removes a room.
func (s *Store) DeleteMUCRoom(ctx context.Context, jid string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM muc_rooms WHERE jid = $1`, jid); err != nil {
		return fmt.Errorf("postgres: delete muc room: %w", err)
	}
	return nil
}

// MUCRooms returns a service's rooms ordered by JID.
func (s *Store) MUCRooms(ctx context.Context, service string) ([]storage.MUCRoom, error) {
	rows, err := s.pool.Query(ctx, `SELECT jid, service, state FROM muc_rooms WHERE service = $1 ORDER BY jid`, service)
	if err != nil {
		return nil, fmt.Errorf("postgres: muc rooms: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.MUCRoom, error) {
		var r storage.MUCRoom
		err := row.Scan(&r.JID, &r.Service, &r.State)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: muc rooms: %w", err)
	}
	return out, nil
}

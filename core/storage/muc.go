package storage

import "context"

// MUCRoom is a persistent multi-user chat room as the muc module stores
// it: its bare JID, the service (domain) it belongs to, and its state
// (configuration, affiliations, subject), which the module encodes and
// seals before it gets here, since it may hold a room password.
type MUCRoom struct {
	JID     string
	Service string
	State   []byte
}

// MUCRooms stores persistent rooms (the "muc" migration track). Rooms do
// not belong to an account: DeleteAccount leaves them.
type MUCRooms interface {
	// PutMUCRoom inserts the room or replaces the stored one.
	PutMUCRoom(ctx context.Context, r MUCRoom) error
	// DeleteMUCRoom removes a room; a room that is not stored is no error.
	DeleteMUCRoom(ctx context.Context, jid string) error
	// MUCRooms returns the rooms of a service ordered by JID as bytes.
	MUCRooms(ctx context.Context, service string) ([]MUCRoom, error)
}

package sqlite_test

import (
	"testing"

	"kontor.im/kontor/core/storage/storagetest"
)

// TestMUCRoomsConformance runs the persistent room suite (the "muc"
// migration track).
func TestMUCRoomsConformance(t *testing.T) {
	storagetest.RunMUCRooms(t, opener())
}

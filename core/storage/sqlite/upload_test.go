package sqlite_test

import (
	"testing"

	"kontor.im/kontor/core/storage/storagetest"
)

// TestUploadsConformance runs the XEP-0363 upload record suite (its own
// migration track, "upload") on SQLite.
func TestUploadsConformance(t *testing.T) {
	storagetest.RunUploads(t, opener())
}

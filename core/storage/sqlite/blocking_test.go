package sqlite_test

import (
	"testing"

	"kontor.im/kontor/core/storage/storagetest"
)

// TestBlocklistConformance runs the XEP-0191 blocklist suite (its own
// migration track, "blocking") on SQLite.
func TestBlocklistConformance(t *testing.T) {
	storagetest.RunBlocklist(t, opener())
}

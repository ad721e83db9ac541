package sqlite_test

import (
	"testing"

	"kontor.im/kontor/core/storage/storagetest"
)

// TestPEPConformance runs the PEP suite (its own migration track, "pep")
// on SQLite.
func TestPEPConformance(t *testing.T) {
	storagetest.RunPEP(t, opener())
}

package sqlite_test

import (
	"testing"

	"kontor.im/kontor/core/storage/storagetest"
)

// TestFASTConformance runs the XEP-0484 token suite (its own migration
// track, "fast") on the sqlite backend.
func TestFASTConformance(t *testing.T) {
	storagetest.RunFAST(t, opener())
}

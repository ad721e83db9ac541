package sqlite_test

import (
	"testing"

	"kontor.im/kontor/core/storage/storagetest"
)

// TestOperatorsConformance runs the operators and access requests suite
// (its own migration track, "operators") on SQLite.
func TestOperatorsConformance(t *testing.T) {
	storagetest.RunOperators(t, opener())
}

package postgres_test

import (
	"testing"

	"kontor.im/kontor/core/storage/storagetest"
)

// TestOperatorsConformance runs the operators and access requests suite
// (its own migration track, "operators") on PostgreSQL.
func TestOperatorsConformance(t *testing.T) {
	storagetest.RunOperators(t, opener())
}

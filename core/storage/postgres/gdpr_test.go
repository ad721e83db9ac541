package postgres_test

import (
	"testing"

	"kontor.im/kontor/core/storage/storagetest"
)

// TestGDPRConformance runs the legal hold and erasure suite (its own
// migration track, "gdpr") on postgres.
func TestGDPRConformance(t *testing.T) {
	storagetest.RunGDPR(t, opener())
}

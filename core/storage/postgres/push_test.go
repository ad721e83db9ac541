package postgres_test

import (
	"testing"

	"kontor.im/kontor/core/storage/storagetest"
)

// TestPushConformance runs the XEP-0357 registration suite (its own
// migration track, "push") on the postgres backend.
func TestPushConformance(t *testing.T) {
	storagetest.RunPush(t, opener())
}

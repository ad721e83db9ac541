package postgres_test

import (
	"testing"

	"kontor.im/kontor/core/storage/storagetest"
)

// TestReportConformance runs the reporting aggregates suite on postgres.
func TestReportConformance(t *testing.T) {
	storagetest.RunReport(t, opener())
}

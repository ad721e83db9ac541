package sqlite_test

import (
	"testing"

	"kontor.im/kontor/core/storage/storagetest"
)

// TestReportConformance runs the reporting aggregates suite on sqlite.
func TestReportConformance(t *testing.T) {
	storagetest.RunReport(t, opener())
}

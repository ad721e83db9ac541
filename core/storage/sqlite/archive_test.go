package sqlite_test

import (
	"testing"

	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/storage/storagetest"
)

func TestArchiveConformance(t *testing.T) {
	open := opener()
	storagetest.RunArchive(t, func(t *testing.T) storage.ArchiveStore {
		return open(t).(storage.ArchiveStore)
	})
}

package sqlite_test

import (
	"testing"

	"kontor.im/kontor/core/storage/storagetest"
)

// TestLDAPConformance runs the directory sync state suite (its own
// migration track, "ldap") on SQLite.
func TestLDAPConformance(t *testing.T) {
	storagetest.RunLDAP(t, opener())
}

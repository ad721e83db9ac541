package postgres_test

import (
	"testing"

	"kontor.im/kontor/core/storage/storagetest"
)

// TestLDAPConformance runs the directory sync state suite (its own
// migration track, "ldap") on PostgreSQL.
func TestLDAPConformance(t *testing.T) {
	storagetest.RunLDAP(t, opener())
}

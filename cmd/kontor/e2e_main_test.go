package main

import (
	"testing"

	"kontor.im/kontor/core/storage/pgtest"
)

// TestMain stops the throwaway PostgreSQL cluster that pgtest.DSN starts on
// first use (see core/storage/pgtest).
func TestMain(m *testing.M) { pgtest.Main(m) }

package main

import (
	"kontor.im/kontor/core/session"
	"kontor.im/kontor/core/storage"
)

// registrar returns the in-band registration handler, or nil when it is
// closed (the default).
func registrar(cfg *Config, st storage.Store) session.Registrar {
	return nil
}

package main

import (
	"log/slog"

	"kontor.im/kontor/core/mod/register"
	"kontor.im/kontor/core/session"
	"kontor.im/kontor/core/storage"
)

// registrar returns the in-band registration handler when registration is
// open, or nil (the default: no registration before authentication).
// The policy engine will implement register.Gate; until then an open
// registration admits whoever passes the username, password and rate
// checks.
func registrar(cfg *Config, st storage.Store, log *slog.Logger) (session.Registrar, error) {
	if !cfg.Registration.Open {
		return nil, nil
	}
	return register.NewRegistrar(st, cfg.Registration, nil, log.With("component", "registration"))
}

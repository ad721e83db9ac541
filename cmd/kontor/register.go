package main

import (
	"log/slog"

	"kontor.im/kontor/core/mod/register"
	"kontor.im/kontor/core/session"
	"kontor.im/kontor/core/storage"
)

// registrar returns the in-band registration handler when registration is
// open, or nil (the default: no registration before authentication). The
// policy's registration decision (gate) decides after the username,
// password and rate checks passed.
func registrar(cfg *Config, st storage.Store, gate register.Gate, log *slog.Logger) (session.Registrar, error) {
	if !cfg.Registration.Open {
		return nil, nil
	}
	return register.NewRegistrar(st, cfg.Registration, gate, log.With("component", "registration"))
}

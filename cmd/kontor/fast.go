package main

import (
	"kontor.im/kontor/core/account"
	"kontor.im/kontor/core/session"
	"kontor.im/kontor/core/storage"
)

// fastTokens wires FAST (XEP-0484) for the c2s server: nil (not offered)
// when auth.fast is off or the store has no token table. Tokens are
// derived from their stored secrets with a key derived from the seal key,
// which is kept apart from the data (core/account).
func fastTokens(cfg *Config, st storage.Store, sealKey []byte) session.FASTTokens {
	fs, ok := st.(account.FASTStore)
	if !cfg.Auth.FAST || !cfg.Auth.SASL2 || !ok {
		return nil
	}
	return &account.FAST{Store: fs, Key: deriveKey(sealKey, "kontor fast tokens"), Lifetime: cfg.Auth.FASTTokenLifetime}
}

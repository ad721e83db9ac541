package storage

import "context"

// Blocklist stores each owner's XEP-0191 blocklist: the JIDs whose
// communication with the owner the server refuses, in both directions.
//
// A blocked JID is kept as the caller gives it, a canonical JID string in
// one of the four forms XEP-0191 matches (user@domain/resource,
// user@domain, domain/resource, domain); the store does not interpret it.
// Owners are canonical bare JIDs. The lists go with the account:
// DeleteAccount removes the owner's list. A list is small (the caller
// bounds it with limit), so every method reads or writes it whole or in
// the caller's batches, each in one transaction.
type Blocklist interface {
	// BlockedJIDs returns owner's blocked JIDs ordered as bytes; none (nil)
	// when the list is empty or the owner never had one.
	BlockedJIDs(ctx context.Context, owner string) ([]string, error)
	// BlockJIDs adds jids to owner's list and returns those that were not
	// in it yet, in the order given and each once. If the list would then
	// hold more than limit JIDs (limit > 0), nothing is added and an error
	// wrapping ErrQuotaExceeded is returned; the check and the insert are
	// atomic with respect to every other writer of the list.
	BlockJIDs(ctx context.Context, owner string, jids []string, limit int) ([]string, error)
	// UnblockJIDs removes jids from owner's list and returns those that
	// were in it, in the order given and each once. JIDs not in the list
	// are ignored.
	UnblockJIDs(ctx context.Context, owner string, jids []string) ([]string, error)
	// UnblockAllJIDs empties owner's list and returns what it held, ordered
	// as bytes.
	UnblockAllJIDs(ctx context.Context, owner string) ([]string, error)
}

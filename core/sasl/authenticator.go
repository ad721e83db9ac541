package sasl

import (
	"context"
	"errors"
)

// Authenticator is what verifies identities; local accounts and LDAP both
// implement it. Implementations must be safe for concurrent use.
type Authenticator interface {
	// Credential returns the stored SCRAM credential for a username (the
	// username is the localpart as sent, the implementation normalises it).
	// It returns ErrUnknownUser if there is no such account, and ErrNoSCRAM
	// if the account cannot do SCRAM (a directory account, which only
	// supports PLAIN) or has no credential for h.
	//
	// For a disabled account it may return ErrDisabled together with the
	// credential: the exchange then runs to the end and account-disabled is
	// reported only to a client that proved it knows the password. With a
	// zero Credential, ErrDisabled fails like an unknown user.
	Credential(ctx context.Context, username string, h Hash) (Credential, error)

	// VerifyPlain checks a password (for PLAIN). The password is as the
	// client sent it; the implementation prepares it. Local accounts do it
	// with VerifyPlainWithCredential; LDAP does a bind. It returns
	// ErrUnknownUser or ErrBadPassword on failure (the Server treats both
	// alike, and spends the same work on the first); ErrDisabled only once the
	// password was found correct.
	VerifyPlain(ctx context.Context, username, password string) error
}

// Errors an Authenticator returns, matched with errors.Is. Any other error
// is treated as a backend failure (temporary-auth-failure).
var (
	ErrUnknownUser = errors.New("sasl: unknown user")
	ErrNoSCRAM     = errors.New("sasl: account cannot use SCRAM")
	ErrBadPassword = errors.New("sasl: wrong password")
	ErrDisabled    = errors.New("sasl: account disabled")
)

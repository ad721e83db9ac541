package storage

import (
	"context"
	"errors"
	"time"
)

// FAST token slots (XEP-0484 §6.1): a client has at most one token in
// each. A newly issued token goes to FASTNew; its first use moves it to
// FASTCurrent, replacing the older one there.
const (
	FASTCurrent = "current"
	FASTNew     = "new"
)

// ErrFASTReplay is returned by UseFASTToken for a count that is not above
// the highest count already used with the token (XEP-0484 replay
// protection).
var ErrFASTReplay = errors.New("storage: FAST token count was already used")

// FASTToken is one XEP-0484 token of one of an owner's clients. The token
// itself is never stored: Secret is a random value from which the server
// derives the token with a key it keeps elsewhere (see core/account), so
// that the rows alone do not let anyone log in.
type FASTToken struct {
	// Client identifies the client installation: a hash of its SASL2
	// <user-agent id/>, never the id itself.
	Client    string
	Slot      string // FASTCurrent or FASTNew
	Mechanism string // the HT mechanism the token is bound to
	Secret    []byte
	Expires   time.Time
	// Count is the highest 'count' the client sent with this token, 0
	// when it sent none.
	Count int64
	// AccountCreated, when not zero, is the creation time of the account
	// the token is for (its incarnation, sasl.Incarnation): PutFASTToken
	// stores the token only if the account under the address is still
	// that one. Not stored.
	AccountCreated time.Time
}

// FASTTokens stores XEP-0484 tokens, keyed by (owner, client, slot). An
// owner is a canonical bare JID. The tokens go with the account:
// DeleteAccount (and so a GDPR erasure) removes them, and so does
// SetCredentials (a password change logs every client out).
type FASTTokens interface {
	// FASTTokens returns the tokens of owner's client, FASTCurrent first;
	// none (nil) when there are none. Expired tokens are returned too:
	// the caller checks Expires.
	FASTTokens(ctx context.Context, owner, client string) ([]FASTToken, error)
	// PutFASTToken stores t in the FASTNew slot of owner's t.Client
	// (t.Slot is ignored), replacing the token that was there. It returns
	// ErrNotFound, storing nothing, when owner has no account (or, with
	// t.AccountCreated, another one): a token must not outlive a
	// deletion that raced with its issue.
	PutFASTToken(ctx context.Context, owner string, t FASTToken) error
	// UseFASTToken records a login with the token in slot whose secret
	// is secret: a token in FASTNew moves to FASTCurrent (replacing the
	// older one), and count, when positive, becomes its Count. It
	// returns ErrNotFound when that token is no longer there (used or
	// removed meanwhile) and ErrFASTReplay, changing nothing, when count
	// is positive and not above the token's Count. The check and the
	// change are atomic.
	UseFASTToken(ctx context.Context, owner, client, slot string, secret []byte, count int64) error
	// DeleteFASTTokens removes the tokens of owner's client, or, with
	// client "", all of owner's, and returns how many it removed.
	DeleteFASTTokens(ctx context.Context, owner, client string) (int, error)
	// DeleteExpiredFASTTokens removes tokens that expired before before
	// and returns how many.
	DeleteExpiredFASTTokens(ctx context.Context, before time.Time) (int64, error)
}

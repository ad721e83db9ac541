package sasl

import (
	"context"
	"time"
)

// An account's incarnation tells one life of an address from another: an
// account deleted and created anew for someone else under the same
// address is another incarnation. Kontor uses the account's creation time
// (storage.Account.Created, to the microsecond).
//
// The session layer asks for it with WithIncarnation before an exchange,
// and the Authenticator (or FAST) that reads the account notes it with
// NoteIncarnation; the session keeps it, so that a session of the former
// owner can be told from one of the new owner's when the server learns of
// the deletion late (account.Watch). It travels in the context so that
// the Authenticator interface stays as it is; an implementation that does
// not note it leaves the incarnation unknown, and such a session is ended
// with any deletion of its address.

type incarnationKey struct{}

// Incarnation collects the incarnation of the account an authentication
// checked, or carries a known one (FAST token issue).
type Incarnation struct {
	created time.Time
	known   bool
}

// WithIncarnation returns a context that collects the incarnation of the
// account whose credentials are checked in it.
func WithIncarnation(ctx context.Context) (context.Context, *Incarnation) {
	inc := &Incarnation{}
	return context.WithValue(ctx, incarnationKey{}, inc), inc
}

// NoteIncarnation records the incarnation (creation time) of the account
// whose credentials an Authenticator checks, if ctx collects it.
func NoteIncarnation(ctx context.Context, created time.Time) {
	if inc, ok := ctx.Value(incarnationKey{}).(*Incarnation); ok {
		inc.Set(created)
	}
}

// IncarnationFrom returns the incarnation ctx carries, if it is known.
func IncarnationFrom(ctx context.Context) (time.Time, bool) {
	if inc, ok := ctx.Value(incarnationKey{}).(*Incarnation); ok {
		return inc.Get()
	}
	return time.Time{}, false
}

// Set records created as the incarnation.
func (i *Incarnation) Set(created time.Time) { i.created, i.known = created, true }

// Get returns the incarnation, and whether it is known.
func (i *Incarnation) Get() (time.Time, bool) { return i.created, i.known }

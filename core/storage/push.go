package storage

import (
	"context"
	"time"
)

// PushRegistration is one XEP-0357 registration: an app server (Service, a
// JID) and its node for one of the owner's devices, with the
// publish-options the client gave, sealed by the caller (they carry the
// app server's secret).
type PushRegistration struct {
	Service string
	Node    string
	// Options are the sealed publish-options; nil when the client gave
	// none.
	Options []byte
	Created time.Time
}

// PushRegistrations stores each owner's XEP-0357 push registrations. An
// owner is a canonical bare JID; a registration is keyed by (Service,
// Node). The registrations go with the account: DeleteAccount removes them.
type PushRegistrations interface {
	// PushRegistrations returns owner's registrations ordered by service,
	// then node, as bytes; none (nil) when there are none.
	PushRegistrations(ctx context.Context, owner string) ([]PushRegistration, error)
	// EnablePush adds r, or replaces the registration with the same
	// service and node. If owner would then have more than limit
	// registrations (limit > 0), nothing changes and an error wrapping
	// ErrQuotaExceeded is returned, atomically with respect to every other
	// writer of the owner's registrations.
	EnablePush(ctx context.Context, owner string, r PushRegistration, limit int) error
	// DisablePush removes owner's registration of service and node, or,
	// with node "", every registration of service, and returns how many it
	// removed.
	DisablePush(ctx context.Context, owner, service, node string) (int, error)
}

package router

import "time"

// SetClock replaces the router's clock.
func SetClock(r *Router, now func() time.Time) { r.now = now }

// Revocations counts the revocations the router remembers.
func Revocations(r *Router) int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n := 0
	for _, l := range r.revoked {
		n += len(l)
	}
	return n
}

package session

import "kontor.im/kontor/core/module"

var _ module.Hibernating = (*session)(nil)

// Hibernating reports whether the session lost its transport and waits to
// be resumed (module.Hibernating; the router passes it on to modules).
func (s *session) Hibernating() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state == detached
}

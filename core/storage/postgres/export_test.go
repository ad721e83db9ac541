package postgres

import "context"

// FlushLastActivity writes the pending last activity times now.
func (s *Store) FlushLastActivity(ctx context.Context) error { return s.flushLastActivity(ctx) }

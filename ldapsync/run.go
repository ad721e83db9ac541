package ldapsync

import (
	"context"
	"errors"
	"time"
)

// Run syncs on schedule until ctx ends: once at once, then every
// sync.interval (a full sync when sync.full_interval has passed since the
// last one, an incremental one otherwise), and whenever Trigger asks. A
// sync that fails is retried after reconnect_backoff, doubling up to the
// interval. Before the first sync, the directory as the last sync left it
// goes to the sink, so the policy engine has it from the start.
func (s *Syncer) Run(ctx context.Context) {
	if s.sink != nil {
		if snap, err := s.Snapshot(ctx); err != nil {
			s.log.Warn("reading the stored directory failed", "err", err)
		} else if len(snap.People) > 0 {
			if err := s.sink.UpdateDirectory(ctx, snap); err != nil {
				s.log.Warn("handing the stored directory to the policy engine failed", "err", err)
			} else {
				s.mu.Lock()
				s.lastSent = snap.Revision
				s.mu.Unlock()
			}
		}
	}
	interval := s.cfg.Sync.Interval
	if interval <= 0 {
		interval = 5 * time.Minute
	}
	retry := s.client.backoff
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		full, reason := false, "scheduled"
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case full = <-s.trigger:
			reason = "on demand"
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
		_, err := s.Sync(ctx, SyncOptions{Full: full, Reason: reason})
		wait := interval
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, ErrBusy):
			s.log.Debug("directory sync skipped: another sync is running")
		case err != nil:
			s.log.Error("directory sync failed", "err", err, "retry_in", retry)
			wait, retry = retry, min(2*retry, interval)
		default:
			retry = s.client.backoff
		}
		timer.Reset(wait)
	}
}

// Trigger asks Run for a sync now (full or incremental); a request made
// while one is waiting is merged into it.
func (s *Syncer) Trigger(full bool) {
	select {
	case s.trigger <- full:
	default:
	}
}

package archive

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/storage"
)

// keyGrace is how long after its KeepUntil a data key is destroyed: a
// margin for clocks that disagree between nodes, so that no node seals a
// message with a key another node is destroying.
const keyGrace = 24 * time.Hour

// keyRangeMargin widens the ID range in which a data key's messages are
// looked for before it is destroyed: they lie in its month, give or take
// maxIDSkew.
const keyRangeMargin = time.Hour

// PurgeResult says what one purge did.
type PurgeResult struct {
	Messages    int // expired messages deleted
	Keys        int // data keys destroyed
	HeldOwners  int // owners skipped because of a legal hold
	HoldErrored int // owners skipped because the hold check failed
}

// Purge deletes the messages whose retention has expired, in batches,
// skipping owners on hold, then destroys the data keys whose messages have
// all expired and are gone (crypto-shredding). It is safe to run on several
// nodes at once, and to interrupt.
func (a *Archive) Purge(ctx context.Context) (PurgeResult, error) {
	var res PurgeResult
	now := a.now()
	held := map[string]bool{}
	var skip []string
	isHeld := func(owner string) bool {
		h, known := held[owner]
		if known {
			return h
		}
		if a.cfg.Holds != nil {
			var err error
			if h, err = a.cfg.Holds.Held(ctx, owner); err != nil {
				a.log.ErrorContext(ctx, "archive: legal hold check failed; owner skipped by purge", "owner", owner, "err", err)
				res.HoldErrored++
				h = true
			} else if h {
				res.HeldOwners++
			}
		}
		held[owner] = h
		if h {
			skip = append(skip, owner)
		}
		return h
	}

	for {
		refs, err := a.store.ExpiredArchive(ctx, now, skip, a.cfg.PurgeBatch)
		if err != nil {
			return res, fmt.Errorf("archive: purge: %w", err)
		}
		if len(refs) == 0 {
			break
		}
		del := refs[:0:0]
		for _, r := range refs {
			if !isHeld(r.Owner) {
				del = append(del, r)
			}
		}
		if len(del) > 0 {
			n, err := a.store.DeleteArchive(ctx, del)
			if err != nil {
				return res, fmt.Errorf("archive: purge: %w", err)
			}
			res.Messages += n
			a.stats.purged.Add(uint64(n))
		}
		// A batch of held owners only is skipped next time; otherwise
		// rows were deleted: either way the loop advances.
	}

	var after int64
	for {
		keys, err := a.store.ExpiredArchiveKeys(ctx, now.Add(-keyGrace), after, a.cfg.PurgeBatch)
		if err != nil {
			return res, fmt.Errorf("archive: purge keys: %w", err)
		}
		if len(keys) == 0 {
			break
		}
		after = keys[len(keys)-1].ID
		var ranges []storage.ArchiveKeyRange
		for _, k := range keys {
			if k.Class == offlineClass || isHeld(k.Owner) {
				continue
			}
			start, end := sliceBounds(k.Slice)
			ranges = append(ranges, storage.ArchiveKeyRange{KeyID: k.ID, Owner: k.Owner,
				MinID: idFloor(start.Add(-keyRangeMargin)), MaxID: idCeil(end.Add(keyRangeMargin))})
		}
		gone, err := a.store.DestroyArchiveKeys(ctx, ranges)
		if err != nil {
			return res, fmt.Errorf("archive: purge keys: %w", err)
		}
		a.keys.evict(gone...)
		res.Keys += len(gone)
		a.stats.destroyed.Add(uint64(len(gone)))
	}
	return res, nil
}

// purgeLoop runs Purge every PurgeInterval until Close.
func (a *Archive) purgeLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.PurgeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		res, err := a.Purge(ctx)
		if err != nil {
			if ctx.Err() == nil {
				a.log.ErrorContext(ctx, "archive: purge failed", "err", err)
			}
			continue
		}
		if res.Messages > 0 || res.Keys > 0 || res.HoldErrored > 0 {
			a.log.InfoContext(ctx, "archive: purged", "messages", res.Messages, "keys", res.Keys,
				"held_owners", res.HeldOwners, "hold_errors", res.HoldErrored, "took", time.Since(start))
			if a.cfg.Audit != nil {
				if _, err := a.cfg.Audit.Append(context.WithoutCancel(ctx), PurgeAuditEntry(res, time.Since(start))); err != nil {
					a.log.ErrorContext(ctx, "archive: writing the purge to the audit trail failed", "err", err)
				}
			}
		}
	}
}

// PurgeAuditEntry is the audit entry of a purge run by the server (actor
// "system"; a command sets its operator).
func PurgeAuditEntry(res PurgeResult, took time.Duration) audit.Entry {
	return audit.Entry{Actor: "system", Action: "archive.purge", Details: map[string]string{
		"messages": strconv.Itoa(res.Messages), "keys": strconv.Itoa(res.Keys),
		"held_owners": strconv.Itoa(res.HeldOwners), "hold_errors": strconv.Itoa(res.HoldErrored),
		"duration_ms": strconv.FormatInt(took.Milliseconds(), 10)}}
}

package archive

import (
	"context"
	"fmt"
	"time"

	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/storage"
)

// Walk reads owner's archive in ID (time) order, from start to end
// (inclusive; zero for no bound), batch messages at a time, opens each batch
// and hands it to fn. Memory is bounded by one batch whatever the size of
// the archive: this is the export's and eDiscovery's reader. Rows that do
// not open (their data key is gone) are skipped, as in Query. fn may keep
// nothing of the slice it is given after it returns. Messages an erasure
// restricted (GDPR Art. 18) are left out, as in Query: see WalkRestricted.
func (a *Archive) Walk(ctx context.Context, owner string, start, end time.Time, batch int, fn func([]module.ArchivedMessage) error) error {
	return a.walk(ctx, owner, start, end, batch, false, fn)
}

// WalkRestricted is Walk including the messages an erasure restricted
// (Art. 18), each marked Restricted. Only the DPO's tools call it: the
// eDiscovery export, and a person's export when the DPO asks for it.
func (a *Archive) WalkRestricted(ctx context.Context, owner string, start, end time.Time, batch int, fn func([]module.ArchivedMessage) error) error {
	return a.walk(ctx, owner, start, end, batch, true, fn)
}

func (a *Archive) walk(ctx context.Context, owner string, start, end time.Time, batch int, restricted bool, fn func([]module.ArchivedMessage) error) error {
	if err := checkJID("owner", owner, false); err != nil {
		return err
	}
	if batch <= 0 {
		batch = 1000
	}
	q := storage.ArchiveRowQuery{Owner: owner, MinID: idLowest, MaxID: idHighest, Start: start, End: end, Limit: batch,
		IncludeRestricted: restricted}
	if !start.IsZero() {
		q.MinID = idFloor(start.Add(-skewMargin))
	}
	if !end.IsZero() {
		q.MaxID = idCeil(end.Add(skewMargin))
	}
	for {
		rows, err := a.store.QueryArchive(ctx, q)
		if err != nil {
			return fmt.Errorf("archive: walk: %w", err)
		}
		if len(rows) == 0 {
			return nil
		}
		msgs, err := a.open(ctx, rows)
		if err != nil {
			return err
		}
		if len(msgs) > 0 {
			if err := fn(msgs); err != nil {
				return err
			}
		}
		if len(rows) < batch {
			return nil
		}
		last := rows[len(rows)-1].ID
		if last == idHighest {
			return nil
		}
		q.MinID = next(last)
	}
}

// OfflineOpener returns what opens offline messages sealed by Sealer
// without a fallback: the export reads offline messages with it.
func (a *Archive) OfflineOpener() module.Sealer { return a.Sealer(nil) }

// ForgetKeys drops data keys from the cache of unwrapped keys: an erasure
// that destroyed them calls it, so this process cannot open what they
// sealed either.
func (a *Archive) ForgetKeys(ids ...int64) { a.keys.evict(ids...) }

// NewIDAt returns a random archive ID of the millisecond of t, for
// messages archived with a time of their own (an import, a load
// generator).
func NewIDAt(t time.Time) string { return FormatID(idAt(t)) }

package archive

import (
	"context"
	"errors"
	"time"

	"kontor.im/kontor/core/storage"
)

// flushLoop is the flusher: it stores the queue batch by batch, in order,
// until the queue is closed and empty.
func (a *Archive) flushLoop(ctx context.Context) {
	for {
		batch := a.q.take(a.cfg.BatchSize, a.cfg.FlushInterval, a.cfg.AckLinger)
		if batch == nil {
			return
		}
		a.storeBatch(ctx, batch)
		a.q.done(batch)
	}
}

// prepared is a queued message with its retention decided.
type prepared struct {
	it        *item
	slot      storage.ArchiveKeySlot
	expires   time.Time
	keepUntil time.Time // of its data key: the end of its month plus its class's keep
}

// maxRetryBackoff bounds the wait between two attempts to store a batch:
// once the database is back, the queue drains within this.
const maxRetryBackoff = 3 * time.Second

// storeBatch stores a batch, retrying with back-off until it is stored or
// ctx ends (then the batch is counted lost and logged, without content).
func (a *Archive) storeBatch(ctx context.Context, batch []item) {
	ps := a.decide(ctx, batch)
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		var err error
		ps, err = a.write(ctx, ps)
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			a.stats.lost.Add(uint64(len(ps)))
			a.log.Error("archive: messages not stored before shutdown", "messages", len(ps), "err", err)
			return
		}
		a.stats.failures.Add(1)
		a.log.Warn("archive: storing a batch failed; retrying", "messages", len(ps), "attempt", attempt, "retry_in", backoff, "err", err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
		backoff = min(2*backoff, maxRetryBackoff)
	}
}

// decide asks the retention decider about each message of a batch.
func (a *Archive) decide(ctx context.Context, batch []item) []prepared {
	ps := make([]prepared, len(batch))
	for i := range batch {
		it := &batch[i]
		class := a.cfg.DefaultRetention
		if a.cfg.Retention != nil {
			c, err := a.cfg.Retention.Retention(ctx, RetentionInput{Owner: it.m.Owner, With: it.m.With,
				Outgoing: it.m.Outgoing, Encrypted: it.m.Encrypted, Time: it.m.Time})
			if err == nil {
				err = c.Validate()
			}
			if err != nil {
				a.log.Error("archive: retention decision failed; using the default class", "owner", it.m.Owner,
					"class", class.Name, "err", err)
			} else {
				class = c
			}
		}
		slice := sliceOf(it.m.Time)
		_, sliceEnd := sliceBounds(slice)
		p := prepared{it: it, slot: storage.ArchiveKeySlot{Owner: it.m.Owner, Slice: slice, Class: class.Name},
			expires: storage.ArchiveForever, keepUntil: storage.ArchiveForever}
		if class.Keep > 0 {
			p.expires = it.m.Time.Add(class.Keep).Truncate(time.Microsecond)
			p.keepUntil = sliceEnd.Add(class.Keep).Truncate(time.Microsecond)
		}
		ps[i] = p
	}
	return ps
}

// write seals and stores one batch in one transaction. It drops (and
// counts) the messages that have expired already, and returns the others
// for a retry.
func (a *Archive) write(ctx context.Context, ps []prepared) ([]prepared, error) {
	now := a.now()
	need := map[storage.ArchiveKeySlot]time.Time{}
	live := ps[:0:0]
	for _, p := range ps {
		// Already expired: storing it could race with the destruction of
		// its data key, and purge would delete it anyway.
		if !p.expires.After(now) {
			continue
		}
		live = append(live, p)
		if k, ok := need[p.slot]; !ok || p.keepUntil.After(k) {
			need[p.slot] = p.keepUntil
		}
	}
	a.stats.expired.Add(uint64(len(ps) - len(live)))
	if len(live) == 0 {
		return live, nil
	}
	keys, err := a.keys.forSlots(ctx, need)
	if err != nil {
		return live, err
	}
	var keep []storage.ArchiveKeepUntil
	for s, until := range need {
		if until.After(keys[s].keepUntil) {
			keep = append(keep, storage.ArchiveKeepUntil{KeyID: keys[s].id, KeepUntil: until})
		}
	}
	rows := make([]storage.ArchiveRow, len(live))
	// The batch's sealed messages share one buffer, and the associated
	// data one scratch buffer (Seal does not keep it): two allocations
	// per batch instead of two per message.
	size := 0
	for _, p := range live {
		size += nonceSize + len(p.it.m.Stanza) + tagSize
	}
	buf := make([]byte, 0, size)
	var ad []byte
	for i, p := range live {
		m := &p.it.m
		k := keys[p.slot]
		ad = appendAssociatedData(ad[:0], messageTag, m.Owner, p.it.id[:], k.id)
		n := len(buf)
		buf, err = k.seal(buf, m.Stanza, ad)
		if err != nil {
			return live, err
		}
		sealed := buf[n:len(buf):len(buf)]
		peer, res := splitJID(m.With)
		rows[i] = storage.ArchiveRow{Owner: m.Owner, ID: p.it.id, Peer: peer, PeerResource: res,
			Outgoing: m.Outgoing, Encrypted: m.Encrypted, Time: m.Time, Expires: p.expires, KeyID: k.id, Sealed: sealed}
	}
	if err := a.store.AppendArchive(ctx, rows, keep); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			// A data key was destroyed since it was cached: forget the
			// batch's keys and let the retry find or make them again.
			for _, k := range keys {
				a.keys.evict(k.id)
			}
		}
		return live, err
	}
	a.keys.raised(keep)
	a.stats.stored.Add(uint64(len(rows)))
	return live, nil
}

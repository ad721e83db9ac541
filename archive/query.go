package archive

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/storage"
)

// readYourWritesWait bounds how long a query waits for its owner's queued
// messages to be stored; after it, the query answers from what is stored.
const readYourWritesWait = 2 * time.Second

// maxQueryIDs bounds ArchiveQuery.IDs.
const maxQueryIDs = 1000

// skewMargin widens the ID bounds derived from start/end: a message's Time
// is within maxIDSkew of its ID's time.
const skewMargin = maxIDSkew + time.Second

var (
	idLowest  = [16]byte{}
	idHighest = [16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
)

// Query returns one page of an owner's archive, oldest first.
//
// Paging runs forwards from AfterID (or the start), or backwards from
// BeforeID (or, with Last, the end). Max <= 0 means the default page; it is
// capped at the maximum page. An AfterID or BeforeID that is not in the
// owner's archive is ErrItemNotFound. Count is exact up to the configured
// count limit, -1 beyond it. Rows that do not open (their data key is
// gone) are skipped and logged.
func (a *Archive) Query(ctx context.Context, q module.ArchiveQuery) (module.ArchivePage, error) {
	if err := checkJID("owner", q.Owner, false); err != nil {
		return module.ArchivePage{}, err
	}
	filter := storage.ArchiveRowQuery{Owner: q.Owner, MinID: idLowest, MaxID: idHighest, Start: q.Start, End: q.End}
	if q.With != "" {
		if err := checkJID("with", q.With, true); err != nil {
			return module.ArchivePage{}, err
		}
		filter.Peer, filter.PeerResource = splitJID(q.With)
	}
	if !q.Start.IsZero() {
		filter.MinID = idFloor(q.Start.Add(-skewMargin))
	}
	if !q.End.IsZero() {
		filter.MaxID = idCeil(q.End.Add(skewMargin))
	}
	if q.IDs != nil {
		if len(q.IDs) > maxQueryIDs {
			return module.ArchivePage{}, fmt.Errorf("%w query: more than %d ids", ErrInvalid, maxQueryIDs)
		}
		filter.IDs = make([][16]byte, 0, len(q.IDs))
		for _, s := range q.IDs {
			if id, err := ParseID(s); err == nil { // others match nothing
				filter.IDs = append(filter.IDs, id)
			}
		}
	}
	max := q.Max
	if max <= 0 {
		max = a.cfg.DefaultPage
	}
	max = min(max, a.cfg.MaxPage)

	wctx, cancel := context.WithTimeout(ctx, readYourWritesWait)
	err := a.q.waitOwner(wctx, q.Owner)
	cancel()
	if err != nil && ctx.Err() != nil {
		return module.ArchivePage{}, ctx.Err()
	}

	page := filter
	page.Limit = max + 1
	page.Backward = q.Last
	// The usual paging request (after an id forwards, or before one
	// backwards, nothing else to match) reads its anchor with the page:
	// the page starts at the anchor inclusive, one row more, and the
	// anchor, which must be there, is dropped. Any other request checks
	// its anchors on their own (position), as they need not match the
	// filter.
	var anchor [16]byte
	anchored := false
	if plain := q.With == "" && q.IDs == nil && q.Start.IsZero() && q.End.IsZero(); plain {
		switch {
		case q.AfterID != "" && q.BeforeID == "" && !q.Last:
			id, err := ParseID(q.AfterID)
			if err != nil {
				return module.ArchivePage{}, ErrItemNotFound
			}
			anchor, anchored, page.MinID = id, true, id
		case q.BeforeID != "" && q.AfterID == "" && q.Last:
			id, err := ParseID(q.BeforeID)
			if err != nil {
				return module.ArchivePage{}, ErrItemNotFound
			}
			anchor, anchored, page.MaxID = id, true, id
		}
	}
	if anchored {
		page.Limit++
	}
	for _, c := range []struct {
		s     string
		after bool
	}{{q.AfterID, true}, {q.BeforeID, false}} {
		if c.s == "" || anchored {
			continue
		}
		id, err := a.position(ctx, q.Owner, c.s)
		if err != nil {
			return module.ArchivePage{}, err
		}
		if c.after {
			if n := next(id); bytesLess(page.MinID, n) {
				page.MinID = n
			}
		} else if p := prev(id); bytesLess(p, page.MaxID) {
			page.MaxID = p
		}
	}
	if bytesLess(page.MaxID, page.MinID) {
		page.Limit = 0
	}

	// A page after or before an id always needs the count (the page is
	// not the whole result set): it comes with the page, in one
	// statement. Other pages need it only when incomplete.
	var rows []storage.ArchiveRow
	counted, n := q.AfterID != "" || q.BeforeID != "", 0
	switch {
	case counted:
		if rows, n, err = a.store.QueryArchiveCounted(ctx, page, filter, a.cfg.CountLimit+1); err != nil {
			return module.ArchivePage{}, fmt.Errorf("archive: query: %w", err)
		}
	case page.Limit > 0:
		if rows, err = a.store.QueryArchive(ctx, page); err != nil {
			return module.ArchivePage{}, fmt.Errorf("archive: query: %w", err)
		}
	}
	if anchored {
		if len(rows) == 0 || rows[0].ID != anchor {
			return module.ArchivePage{}, ErrItemNotFound
		}
		rows = rows[1:]
	}
	complete := len(rows) <= max
	rows = rows[:min(len(rows), max)]
	if page.Backward {
		slices.Reverse(rows)
	}

	count := -1
	switch {
	case complete && !counted:
		count = len(rows) // the page is the whole result set
	case !counted:
		if n, err = a.store.CountArchive(ctx, filter, a.cfg.CountLimit+1); err != nil {
			return module.ArchivePage{}, fmt.Errorf("archive: count: %w", err)
		}
	}
	if count < 0 && n <= a.cfg.CountLimit {
		count = n
	}

	msgs, err := a.open(ctx, rows)
	if err != nil {
		return module.ArchivePage{}, err
	}
	return module.ArchivePage{Messages: msgs, Complete: complete, Count: count}, nil
}

func bytesLess(a, b [16]byte) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// position checks that a paging id is in the owner's archive.
func (a *Archive) position(ctx context.Context, owner, s string) ([16]byte, error) {
	id, err := ParseID(s)
	if err != nil {
		return id, ErrItemNotFound
	}
	rows, err := a.store.QueryArchive(ctx, storage.ArchiveRowQuery{Owner: owner, MinID: id, MaxID: id, Limit: 1})
	if err != nil {
		return id, fmt.Errorf("archive: query: %w", err)
	}
	if len(rows) == 0 {
		return id, ErrItemNotFound
	}
	return id, nil
}

// open unseals rows.
func (a *Archive) open(ctx context.Context, rows []storage.ArchiveRow) ([]module.ArchivedMessage, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	ids := make([]int64, 0, 4)
	for _, r := range rows {
		if !slices.Contains(ids, r.KeyID) {
			ids = append(ids, r.KeyID)
		}
	}
	keys, err := a.keys.forIDs(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("archive: query: %w", err)
	}
	out := make([]module.ArchivedMessage, 0, len(rows))
	for _, r := range rows {
		k := keys[r.KeyID]
		err := errKeyGone
		var plain []byte
		if k != nil && k.slot.Owner == r.Owner {
			plain, err = k.open(r.Sealed, associatedData(messageTag, r.Owner, r.ID[:], r.KeyID))
		}
		if err != nil {
			a.stats.unreadable.Add(1)
			a.log.WarnContext(ctx, "archive: a stored message does not open; skipped", "owner", r.Owner,
				"id", FormatID(r.ID), "key_id", r.KeyID, "err", err)
			continue
		}
		with := r.Peer
		if r.PeerResource != "" {
			with += "/" + r.PeerResource
		}
		out = append(out, module.ArchivedMessage{ID: FormatID(r.ID), Owner: r.Owner, With: with,
			Outgoing: r.Outgoing, Time: r.Time, Stanza: plain, Encrypted: r.Encrypted, Restricted: r.Restricted})
	}
	return out, nil
}

// Prefs returns an owner's archiving preferences; an owner who never set
// any gets empty ones (Default ""), and the caller applies its own default.
// The archive stores preferences and does not apply them: the caller
// decides what to Append (the "roster" default needs the roster).
func (a *Archive) Prefs(ctx context.Context, owner string) (module.ArchivePrefs, error) {
	if err := checkJID("owner", owner, false); err != nil {
		return module.ArchivePrefs{}, err
	}
	if p, _, ok := a.prefs.get(owner); ok {
		return p, nil
	}
	_, gen, _ := a.prefs.get(owner)
	p, err := a.store.ArchivePrefs(ctx, owner)
	if errors.Is(err, storage.ErrNotFound) {
		a.prefs.put(owner, module.ArchivePrefs{}, gen)
		return module.ArchivePrefs{}, nil
	}
	if err != nil {
		// The database is unreachable: what was read last still holds,
		// so that messages keep being archived (into the queue) as their
		// owner wants during an outage.
		if c, ok := a.prefs.stale(owner); ok {
			return c, nil
		}
		return module.ArchivePrefs{}, fmt.Errorf("archive: prefs: %w", err)
	}
	// The lists are shared by every caller of a cached value: callers
	// only read them (the mam module's decide).
	out := module.ArchivePrefs{Default: p.Default, Always: p.Always, Never: p.Never}
	a.prefs.put(owner, out, gen)
	return out, nil
}

// maxPrefsJIDs bounds each list of preferences.
const maxPrefsJIDs = 1000

// SetPrefs replaces an owner's archiving preferences.
func (a *Archive) SetPrefs(ctx context.Context, owner string, p module.ArchivePrefs) error {
	if err := checkJID("owner", owner, false); err != nil {
		return err
	}
	switch p.Default {
	case "always", "never", "roster":
	default:
		return fmt.Errorf("%w prefs: default %q is not always, never or roster", ErrInvalid, p.Default)
	}
	for _, l := range [][]string{p.Always, p.Never} {
		if len(l) > maxPrefsJIDs {
			return fmt.Errorf("%w prefs: more than %d JIDs in a list", ErrInvalid, maxPrefsJIDs)
		}
		for _, j := range l {
			if err := checkJID("prefs JID", j, true); err != nil {
				return err
			}
		}
	}
	// Invalidate before and after: a read that starts in between does not
	// cache the old value (prefsCache.gen).
	a.prefs.invalidate(owner)
	defer a.prefs.invalidate(owner)
	if err := a.store.SetArchivePrefs(ctx, owner, storage.ArchivePrefs{Default: p.Default, Always: p.Always, Never: p.Never}); err != nil {
		return fmt.Errorf("archive: set prefs: %w", err)
	}
	return nil
}

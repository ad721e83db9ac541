// Package mamtest is a simple, correct, in-memory module.Archive for tests
// of the MAM module and of anything else that needs an archive without the
// archive package (which core must not import). It keeps everything in
// memory in the clear; it is not for production.
//
// It implements the contract of module.Archive as the MAM module relies on
// it, which spells out what module.ArchiveQuery leaves open:
//
//   - Archive order is id order, the ids compared as strings (the archive
//     package orders by id too: its ids, like the MAM module's, are UUIDv7
//     and sort in time order). A message appended late with an earlier id
//     goes in its place.
//   - ArchivedMessage.With is the peer's JID as the stanza has it ('from'
//     of an incoming, 'to' of an outgoing message), with its resource if
//     it has one.
//   - The selection of a query is the owner's messages that match With (a
//     bare JID matches every With of that bare JID; a full JID only an
//     equal With), Start and End (inclusive),
//     and IDs (when not empty), and that come strictly after AfterID and
//     strictly before BeforeID in archive order. AfterID and BeforeID are
//     bounds, not directions.
//   - AfterID and BeforeID must name messages of the owner's archive
//     (whatever the other filters); otherwise Query fails with an error
//     wrapping storage.ErrNotFound. Unknown IDs are simply not found.
//   - The page is the first Max messages of the selection, or the last Max
//     when Last is set (an RSM <before/>, empty or not, pages backwards),
//     always oldest first. Max below 1 means DefaultMax; above MaxMax it is
//     capped.
//   - Complete is true when the page holds the end of the selection in the
//     direction of paging: its newest message going forwards, its oldest
//     going backwards.
//   - Count is the number of messages that match the filters (With, Start,
//     End, IDs), ignoring AfterID and BeforeID: the size of the result set
//     a client pages through.
//   - Append refuses a message without an owner or an ID, and an ID already
//     in the owner's archive.
//   - Prefs of an owner who never set any are the zero ArchivePrefs (an
//     empty Default: the MAM module applies its own default). SetPrefs
//     refuses a Default other than always, never or roster.
package mamtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/storage"
)

// Page sizes of a query.
const (
	DefaultMax = 50
	MaxMax     = 1000
)

// Archive is an in-memory module.Archive. The zero value is not ready; use
// New. It is safe for concurrent use.
type Archive struct {
	mu    sync.Mutex
	msgs  map[string][]module.ArchivedMessage // owner → messages in id order
	pos   map[string]map[string]int           // owner → id → index in msgs
	prefs map[string]module.ArchivePrefs
	fail  error
	calls int
}

var _ module.Archive = (*Archive)(nil)

// New returns an empty archive.
func New() *Archive {
	return &Archive{msgs: map[string][]module.ArchivedMessage{}, pos: map[string]map[string]int{}, prefs: map[string]module.ArchivePrefs{}}
}

// Fail makes every later call return err (nil restores normal service), to
// test how callers handle an archive that is unavailable.
func (a *Archive) Fail(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fail = err
}

// Messages returns a copy of an owner's archive in archive order.
func (a *Archive) Messages(owner string) []module.ArchivedMessage {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.msgs[owner])
}

// Calls counts the calls made to the archive so far (all methods).
func (a *Archive) Calls() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls
}

// Append implements module.Archive.
func (a *Archive) Append(_ context.Context, m module.ArchivedMessage) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	if a.fail != nil {
		return a.fail
	}
	if m.Owner == "" || m.ID == "" {
		return errors.New("mamtest: a message needs an owner and an id")
	}
	pos := a.pos[m.Owner]
	if pos == nil {
		pos = map[string]int{}
		a.pos[m.Owner] = pos
	}
	if _, dup := pos[m.ID]; dup {
		return fmt.Errorf("mamtest: id %q is already in the archive of %s: %w", m.ID, m.Owner, storage.ErrExists)
	}
	m.Stanza = slices.Clone(m.Stanza)
	msgs := a.msgs[m.Owner]
	i, _ := slices.BinarySearchFunc(msgs, m.ID, func(x module.ArchivedMessage, id string) int { return strings.Compare(x.ID, id) })
	msgs = slices.Insert(msgs, i, m)
	for j := i; j < len(msgs); j++ {
		pos[msgs[j].ID] = j
	}
	a.msgs[m.Owner] = msgs
	return nil
}

// Query implements module.Archive.
func (a *Archive) Query(_ context.Context, q module.ArchiveQuery) (module.ArchivePage, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	if a.fail != nil {
		return module.ArchivePage{}, a.fail
	}
	if q.Owner == "" {
		return module.ArchivePage{}, errors.New("mamtest: a query needs an owner")
	}
	all, pos := a.msgs[q.Owner], a.pos[q.Owner]
	lo, hi := -1, len(all) // exclusive bounds, as positions in all
	var ok bool
	if q.AfterID != "" {
		if lo, ok = pos[q.AfterID]; !ok {
			return module.ArchivePage{}, fmt.Errorf("mamtest: after id %q: %w", q.AfterID, storage.ErrNotFound)
		}
	}
	if q.BeforeID != "" {
		if hi, ok = pos[q.BeforeID]; !ok {
			return module.ArchivePage{}, fmt.Errorf("mamtest: before id %q: %w", q.BeforeID, storage.ErrNotFound)
		}
	}
	with, err := parseWith(q.With)
	if err != nil {
		return module.ArchivePage{}, err
	}
	var sel []module.ArchivedMessage
	count := 0
	for i, m := range all {
		if !matches(m, q, with) {
			continue
		}
		count++
		if i > lo && i < hi {
			sel = append(sel, m)
		}
	}
	n := q.Max
	switch {
	case n < 1:
		n = DefaultMax
	case n > MaxMax:
		n = MaxMax
	}
	page := module.ArchivePage{Count: count, Complete: len(sel) <= n}
	if len(sel) > n {
		if q.Last {
			sel = sel[len(sel)-n:]
		} else {
			sel = sel[:n]
		}
	}
	page.Messages = make([]module.ArchivedMessage, len(sel))
	for i, m := range sel {
		m.Stanza = slices.Clone(m.Stanza)
		page.Messages[i] = m
	}
	return page, nil
}

func parseWith(s string) (jid.JID, error) {
	if s == "" {
		return jid.JID{}, nil
	}
	j, err := jid.Parse(s)
	if err != nil {
		return jid.JID{}, fmt.Errorf("mamtest: with %q: %w", s, err)
	}
	return j, nil
}

func matches(m module.ArchivedMessage, q module.ArchiveQuery, with jid.JID) bool {
	if !with.IsZero() {
		if with.IsBare() {
			if bare, _, _ := strings.Cut(m.With, "/"); bare != with.String() {
				return false
			}
		} else if m.With != with.String() {
			return false
		}
	}
	if !q.Start.IsZero() && m.Time.Before(q.Start) {
		return false
	}
	if !q.End.IsZero() && m.Time.After(q.End) {
		return false
	}
	if len(q.IDs) > 0 && !slices.Contains(q.IDs, m.ID) {
		return false
	}
	return true
}

// Prefs implements module.Archive.
func (a *Archive) Prefs(_ context.Context, owner string) (module.ArchivePrefs, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	if a.fail != nil {
		return module.ArchivePrefs{}, a.fail
	}
	p := a.prefs[owner]
	p.Always = slices.Clone(p.Always)
	p.Never = slices.Clone(p.Never)
	return p, nil
}

// SetPrefs implements module.Archive.
func (a *Archive) SetPrefs(_ context.Context, owner string, p module.ArchivePrefs) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	if a.fail != nil {
		return a.fail
	}
	switch p.Default {
	case "always", "never", "roster":
	default:
		return fmt.Errorf("mamtest: default %q is not always, never or roster", p.Default)
	}
	p.Always = slices.Clone(p.Always)
	p.Never = slices.Clone(p.Never)
	a.prefs[owner] = p
	return nil
}

package ldapsync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/rosterstate"
	"kontor.im/kontor/core/storage"
)

// Shared groups: every member of a directory group (nesting resolved) has
// every other member in their roster, in a roster group named after the
// directory group, with a mutual subscription. The items the sync wrote
// are recorded (storage.LDAPRosterItem), so that a later sync changes only
// its own part of a roster: groups the user added to an item stay, a name
// the user gave it stays, and an item is removed only when no group of the
// user's own is left on it.

// rosterGroup is a directory group as it appears in rosters.
type rosterGroup struct {
	name    string
	members []string // JIDs, sorted
}

// eligible reports whether a user takes part in shared groups: in the
// directory, not disabled there or by the sync.
func eligible(st *syncState, id string) bool {
	l, ok := st.links[id]
	return ok && l.GoneSince.IsZero() && !l.Disabled && st.attrs[id].Disabled == ""
}

// rosterGroups lists the groups that go into rosters: with Roster on, with
// at least two eligible members and at most MaxRosterSize.
func (s *Syncer) rosterGroups(st *syncState, res resolution) map[string]rosterGroup {
	out := map[string]rosterGroup{}
	if !s.cfg.Groups.Roster {
		return out
	}
	for id, users := range res.flat {
		var members []string
		for _, u := range users {
			if eligible(st, u) {
				members = append(members, st.links[u].JID)
			}
		}
		if len(members) < 2 || len(members) > s.cfg.Groups.MaxRosterSize {
			continue
		}
		slices.Sort(members)
		out[id] = rosterGroup{name: st.groups[id].Name, members: members}
	}
	return out
}

// desiredItems computes the managed items of each given owner.
func desiredItems(st *syncState, rg map[string]rosterGroup, owners map[string]bool) map[string]map[string]*storage.LDAPRosterItem {
	out := make(map[string]map[string]*storage.LDAPRosterItem, len(owners))
	names := map[string]string{}
	for id, l := range st.links {
		names[l.JID] = st.attrs[id].DisplayName
	}
	for _, gid := range sortedKeys(rg) {
		g := rg[gid]
		for _, o := range g.members {
			if !owners[o] {
				continue
			}
			items := out[o]
			if items == nil {
				items = map[string]*storage.LDAPRosterItem{}
				out[o] = items
			}
			for _, c := range g.members {
				if c == o {
					continue
				}
				it := items[c]
				if it == nil {
					it = &storage.LDAPRosterItem{Contact: c, Name: names[c]}
					items[c] = it
				}
				if !slices.Contains(it.Groups, g.name) {
					it.Groups = append(it.Groups, g.name)
				}
			}
		}
	}
	for _, items := range out {
		for _, it := range items {
			slices.Sort(it.Groups)
		}
	}
	return out
}

// planRosters lists the roster changes for the owners a sync touches:
// everyone on a full sync; on an incremental one, the members of groups
// whose members, name or eligibility changed and of groups holding
// someone whose display name changed.
func (s *Syncer) planRosters(ctx context.Context, old, nw *syncState, oldRes, newRes resolution, mode Mode) ([]*step, error) {
	oldRG, newRG := s.rosterGroups(old, oldRes), s.rosterGroups(nw, newRes)
	dirty := map[string]bool{}
	var all map[string][]storage.LDAPRosterItem // every managed item (full sync)
	if mode == Full {
		for _, g := range newRG {
			for _, m := range g.members {
				dirty[m] = true
			}
		}
		var err error
		if all, err = s.store.AllLDAPRosterItems(ctx, Source); err != nil {
			return nil, fmt.Errorf("ldapsync: %w", err)
		}
		for o := range all {
			dirty[o] = true
		}
	} else {
		for _, id := range union(sortedKeys(oldRG), sortedKeys(newRG)) {
			og, ng := oldRG[id], newRG[id]
			if og.name != ng.name || !slices.Equal(og.members, ng.members) {
				for _, m := range og.members {
					dirty[m] = true
				}
				for _, m := range ng.members {
					dirty[m] = true
				}
			}
		}
		renamed := map[string]bool{}
		for id, a := range nw.attrs {
			if oa, ok := old.attrs[id]; ok && oa.DisplayName != a.DisplayName {
				renamed[nw.links[id].JID] = true
			}
		}
		if len(renamed) > 0 {
			for _, rg := range []map[string]rosterGroup{oldRG, newRG} {
				for _, g := range rg {
					if slices.ContainsFunc(g.members, func(m string) bool { return renamed[m] }) {
						for _, m := range g.members {
							dirty[m] = true
						}
					}
				}
			}
		}
	}
	// Deleted accounts take their roster along (deleteAccount).
	for o := range dirty {
		if _, ok := nw.byJID[o]; !ok {
			delete(dirty, o)
		}
	}
	desired := desiredItems(nw, newRG, dirty)
	var steps []*step
	for _, o := range sortedKeys(dirty) {
		managed := all[o]
		if all == nil {
			var err error
			if managed, err = s.store.LDAPRosterItems(ctx, Source, o); err != nil {
				return nil, fmt.Errorf("ldapsync: %w", err)
			}
		}
		have := make(map[string]*storage.LDAPRosterItem, len(managed))
		for i := range managed {
			have[managed[i].Contact] = &managed[i]
		}
		want := desired[o]
		var changes []rosterChange
		for _, c := range union(sortedKeys(have), sortedKeys(want)) {
			d, m := want[c], have[c]
			var op Op
			switch {
			case d == nil:
				op = OpRosterRemove
			case m == nil:
				op = OpRosterAdd
			case d.Name != m.Name || !slices.Equal(d.Groups, m.Groups):
				op = OpRosterUpdate
			default:
				continue
			}
			detail := c
			if d != nil {
				detail = fmt.Sprintf("%s %q in %s", c, d.Name, strings.Join(d.Groups, ", "))
			}
			steps = append(steps, &step{Change: Change{Op: op, JID: o, Detail: detail}})
			changes = append(changes, rosterChange{contact: c, want: d, had: m})
		}
		if len(changes) > 0 {
			// One step applies the owner's changes together: one roster
			// read, one write of the sync's record.
			steps = append(steps, &step{Change: Change{Op: OpRosterUpdate, JID: o}, hidden: true,
				run: s.applyRoster(o, changes)})
		}
	}
	return steps, nil
}

// rosterChange is one item of an owner's roster to change: want is what
// the sync wants there (nil: nothing), had what it last put there (nil:
// nothing).
type rosterChange struct {
	contact   string
	want, had *storage.LDAPRosterItem
}

func union(a, b []string) []string {
	out := append(append([]string{}, a...), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// applyRoster applies an owner's roster changes under the owner's roster
// lock (core/rosterstate: the roster and presence modules change items
// too), then pushes them to the owner's online resources.
func (s *Syncer) applyRoster(owner string, changes []rosterChange) func(context.Context) error {
	return func(ctx context.Context) error {
		oj, err := jid.Parse(owner)
		if err != nil {
			return err
		}
		type push struct {
			item    storage.RosterItem
			removed bool
			ver     int64
		}
		var (
			pushes []push
			puts   []storage.LDAPRosterItem
			dels   []string
			errs   []error
		)
		unlock := rosterstate.Lock(oj)
		items, _, err := s.store.RosterItems(ctx, owner)
		if err != nil {
			unlock()
			return err
		}
		cur := make(map[string]storage.RosterItem, len(items))
		for _, it := range items {
			cur[it.Contact] = it
		}
		for _, ch := range changes {
			item, exists := cur[ch.contact]
			next, keep := mergeItem(ch.contact, item, exists, ch.want, ch.had)
			switch {
			case !keep && exists:
				ver, err := s.store.DeleteRosterItem(ctx, owner, ch.contact)
				if err != nil && !errors.Is(err, storage.ErrNotFound) {
					errs = append(errs, fmt.Errorf("%s: %w", ch.contact, err))
					continue
				}
				if err == nil {
					pushes = append(pushes, push{item: storage.RosterItem{Contact: ch.contact}, removed: true, ver: ver})
				}
			case keep && (!exists || !sameItem(item, next)):
				ver, err := s.store.PutRosterItem(ctx, owner, next)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", ch.contact, err))
					continue
				}
				pushes = append(pushes, push{item: next, ver: ver})
			}
			if ch.want == nil {
				dels = append(dels, ch.contact)
			} else {
				puts = append(puts, *ch.want)
			}
		}
		unlock()
		if err := s.store.PutLDAPRosterItems(ctx, Source, owner, puts); err != nil {
			errs = append(errs, err)
		}
		if err := s.store.DeleteLDAPRosterItems(ctx, Source, owner, dels); err != nil {
			errs = append(errs, err)
		}
		if s.pusher != nil {
			for _, p := range pushes {
				if p.removed {
					s.pusher.PushRosterRemoval(owner, p.item.Contact, p.ver)
				} else {
					s.pusher.PushRosterItem(owner, p.item, p.ver)
				}
			}
		}
		return errors.Join(errs...)
	}
}

// mergeItem computes the roster item after a change: the user's own part
// of cur (groups the sync did not put there, a name the user gave) stays,
// the sync's part becomes want's. keep is false when nothing is left.
func mergeItem(contact string, cur storage.RosterItem, exists bool, want, had *storage.LDAPRosterItem) (storage.RosterItem, bool) {
	var mine []string // groups that are not the sync's
	if exists {
		for _, g := range cur.Groups {
			if had == nil || !slices.Contains(had.Groups, g) {
				mine = append(mine, g)
			}
		}
	}
	if want == nil {
		if !exists || len(mine) == 0 {
			return storage.RosterItem{}, false
		}
		cur.Groups = mine
		return cur, true
	}
	item := storage.RosterItem{Contact: contact}
	if exists {
		item = cur
	}
	item.Subscription, item.AskOut = storage.SubBoth, false
	item.Groups = mine
	for _, g := range want.Groups {
		if !slices.Contains(item.Groups, g) {
			item.Groups = append(item.Groups, g)
		}
	}
	userNamed := exists && ((had != nil && cur.Name != had.Name) || (had == nil && cur.Name != ""))
	if !userNamed {
		item.Name = want.Name
	}
	return item, true
}

func sameItem(a, b storage.RosterItem) bool {
	return a.Contact == b.Contact && a.Name == b.Name && a.Subscription == b.Subscription &&
		a.AskOut == b.AskOut && slices.Equal(a.Groups, b.Groups)
}

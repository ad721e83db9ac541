package ldapsync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"kontor.im/kontor/core/storage"
)

// Op is the kind of one change a sync makes.
type Op string

// The changes, in the order a sync applies them.
const (
	OpCreate       Op = "create"        // a new entry: an account without credentials
	OpRecreate     Op = "recreate"      // a linked account that was deleted by hand
	OpUpdate       Op = "update"        // attributes, vCard, DN (rename or move)
	OpRestore      Op = "restore"       // back in the directory after it was gone
	OpDisable      Op = "disable"       // disabled, locked or expired in the directory
	OpEnable       Op = "enable"        // enabled again in the directory
	OpRetire       Op = "retire"        // gone from the directory: disabled, deleted later
	OpDelete       Op = "delete"        // gone for longer than delete_after
	OpGroupAdd     Op = "group add"     // a new group
	OpGroupUpdate  Op = "group update"  // name or members changed
	OpGroupRemove  Op = "group remove"  // gone from the directory
	OpRosterAdd    Op = "roster add"    // a shared-group contact put into a roster
	OpRosterUpdate Op = "roster update" // its name or groups changed
	OpRosterRemove Op = "roster remove" // taken out again
	// OpErasedSkip is an entry of a person who was erased (GDPR Art. 17):
	// no account is created until a DPO reinstates them.
	OpErasedSkip Op = "erased, skipped"
)

// Change is one change of a plan.
type Change struct {
	Op     Op
	JID    string // the account concerned (the owner, for roster changes)
	DN     string
	Detail string // what exactly, for people
}

func (c Change) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-13s %s", c.Op, c.JID)
	if c.Detail != "" {
		b.WriteString("  ")
		b.WriteString(c.Detail)
	}
	if c.DN != "" {
		fmt.Fprintf(&b, "  [%s]", c.DN)
	}
	return b.String()
}

// EntryError is a problem with one entry or change; it never stops a sync.
type EntryError struct {
	DN  string
	JID string
	Err error
}

func (e EntryError) String() string {
	who := e.JID
	if e.DN != "" {
		who = strings.TrimSpace(who + " [" + e.DN + "]")
	}
	if who == "" {
		return e.Err.Error()
	}
	return who + ": " + e.Err.Error()
}

// Report says what a sync did (or, in a dry run, would do).
type Report struct {
	Mode       Mode
	ModeReason string
	DryRun     bool
	Started    time.Time
	Duration   time.Duration
	Read       int // user entries read
	GroupsRead int
	Changes    []Change
	Errors     []EntryError
	Warnings   []string
	Cycles     [][]string // nested group cycles (group names)

	Created, Updated, Disabled, Enabled, Retired, Restored, Deleted, Groups, Roster int
	// ErasedSkipped counts the entries of erased people that were not
	// recreated (OpErasedSkip).
	ErasedSkipped int
}

func (r *Report) count() {
	r.Created, r.Updated, r.Disabled, r.Enabled, r.Retired, r.Restored, r.Deleted, r.Groups, r.Roster = 0, 0, 0, 0, 0, 0, 0, 0, 0
	r.ErasedSkipped = 0
	for _, c := range r.Changes {
		switch c.Op {
		case OpErasedSkip:
			r.ErasedSkipped++
		case OpCreate, OpRecreate:
			r.Created++
		case OpUpdate:
			r.Updated++
		case OpDisable:
			r.Disabled++
		case OpEnable:
			r.Enabled++
		case OpRetire:
			r.Retired++
		case OpRestore:
			r.Restored++
		case OpDelete:
			r.Deleted++
		case OpGroupAdd, OpGroupUpdate, OpGroupRemove:
			r.Groups++
		case OpRosterAdd, OpRosterUpdate, OpRosterRemove:
			r.Roster++
		}
	}
}

// Summary is one line: the counts and the duration.
func (r *Report) Summary() string {
	verb := "made"
	if r.DryRun {
		verb = "would make"
	}
	erased := ""
	if r.ErasedSkipped > 0 {
		erased = fmt.Sprintf("; %d erased, skipped", r.ErasedSkipped)
	}
	return fmt.Sprintf("%s sync %s %d changes: %d created, %d updated, %d disabled, %d enabled, %d retired, %d restored, "+
		"%d deleted, %d group and %d roster changes%s; %d errors; %d users and %d groups read in %v",
		r.Mode, verb, len(r.Changes)-r.ErasedSkipped, r.Created, r.Updated, r.Disabled, r.Enabled, r.Retired, r.Restored, r.Deleted,
		r.Groups, r.Roster, erased, len(r.Errors), r.Read, r.GroupsRead, r.Duration.Round(time.Millisecond))
}

// WriteTo writes the whole report: every change, every error, the summary.
func (r *Report) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s sync (%s)", r.Mode, r.ModeReason)
	if r.DryRun {
		b.WriteString(", dry run: nothing was changed")
	}
	b.WriteString("\n")
	for _, c := range r.Changes {
		b.WriteString(c.String())
		b.WriteString("\n")
	}
	for _, cy := range r.Cycles {
		fmt.Fprintf(&b, "warning: nested groups form a cycle: %s\n", strings.Join(cy, " → "))
	}
	for _, wn := range r.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", wn)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(&b, "error: %s\n", e)
	}
	b.WriteString(r.Summary())
	b.WriteString("\n")
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

// step is one change with what applying it takes.
type step struct {
	Change
	run    func(ctx context.Context) error // side effects; nil: none
	link   *storage.LDAPLink               // persisted once run succeeded
	unlink string                          // stable id whose link goes once run succeeded
	hidden bool                            // carries out other steps' changes; not listed
}

// plan is what a sync is going to do.
type plan struct {
	steps    []*step
	nw       *syncState // the state once applied
	res      resolution // groups of nw, resolved
	groupOps []groupOp
	errors   []EntryError
	warnings []string
}

type groupOp struct {
	put    *group
	remove string
}

// accountLookup caches account reads during planning.
type accountLookup struct {
	store Store
	all   map[string]storage.Account // a full listing, or nil
	cache map[string]*storage.Account
}

func (a *accountLookup) get(ctx context.Context, j string) (*storage.Account, error) {
	if a.all != nil {
		if acc, ok := a.all[j]; ok {
			return &acc, nil
		}
		return nil, nil
	}
	if acc, ok := a.cache[j]; ok {
		return acc, nil
	}
	acc, err := a.store.Account(ctx, j)
	if errors.Is(err, storage.ErrNotFound) {
		a.cache[j] = nil
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	a.cache[j] = &acc
	return &acc, nil
}

// plan compares what was read with the stored state and lists the changes.
func (s *Syncer) plan(ctx context.Context, old *syncState, rd *readResult, mode Mode, now time.Time) (*plan, error) {
	p := &plan{nw: old.clone()}
	nw := p.nw
	keys := dnKeys{}
	accts := &accountLookup{store: s.store, cache: map[string]*storage.Account{}}
	if mode == Full {
		list, err := s.store.ListAccounts(ctx, s.domain)
		if err != nil {
			return nil, fmt.Errorf("ldapsync: listing accounts: %w", err)
		}
		accts.all = make(map[string]storage.Account, len(list))
		for _, a := range list {
			accts.all[a.JID] = a
		}
	}
	var creates, updates, restores, disables, enables, retires, deletes, skipped []*step
	renamed := map[string]string{} // old DN key → new DN
	erased := func(string, string) bool { return false }
	if s.erased != nil {
		m, err := s.erased.ErasedMatcher(ctx)
		if err != nil {
			return nil, fmt.Errorf("ldapsync: reading the erasure tombstones: %w", err)
		}
		erased = m
	}
	skip := func(ue *userEntry, j string) {
		skipped = append(skipped, &step{Change: Change{Op: OpErasedSkip, JID: j, DN: ue.DN,
			Detail: "erased (GDPR Art. 17); not recreated until a DPO runs kontor gdpr reinstate"}})
	}

	ids := make([]string, 0, len(rd.users))
	for id := range rd.users {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return rd.users[ids[i]].JID < rd.users[ids[j]].JID })
	for _, id := range ids {
		ue := rd.users[id]
		dirDisabled := ue.Attrs.Disabled != ""
		l, linked := old.links[id]
		if !linked {
			if erased(ue.JID, id) {
				skip(ue, ue.JID)
				continue
			}
			if other, taken := nw.byJID[ue.JID]; taken {
				p.errors = append(p.errors, EntryError{DN: ue.DN, JID: ue.JID,
					Err: fmt.Errorf("ldapsync: the address belongs to the account of another directory entry (%s), "+
						"which keeps it after a rename", other)})
				continue
			}
			acc, err := accts.get(ctx, ue.JID)
			if err != nil {
				return nil, fmt.Errorf("ldapsync: %w", err)
			}
			if acc != nil {
				p.errors = append(p.errors, EntryError{DN: ue.DN, JID: ue.JID,
					Err: errors.New("ldapsync: a local account with this address exists; the directory does not take it over")})
				continue
			}
			nl := &storage.LDAPLink{StableID: id, JID: ue.JID, DN: ue.DN, Attrs: ue.Attrs.encode(), Disabled: dirDisabled}
			nw.links[id], nw.attrs[id], nw.byJID[ue.JID] = nl, ue.Attrs, id
			detail := fmt.Sprintf("%q", ue.Attrs.DisplayName)
			if dirDisabled {
				detail += " (disabled: " + ue.Attrs.Disabled + ")"
			}
			creates = append(creates, &step{
				Change: Change{Op: OpCreate, JID: ue.JID, DN: ue.DN, Detail: detail},
				run:    s.createAccount(ue, dirDisabled, now),
				link:   nl,
			})
			continue
		}

		la := old.attrs[id]
		nl := nw.links[id]
		acc, err := accts.get(ctx, l.JID)
		if err != nil {
			return nil, fmt.Errorf("ldapsync: %w", err)
		}
		missing := acc == nil
		if ue.JID != l.JID {
			p.warnings = append(p.warnings, fmt.Sprintf("%s: the username changed to %q; the account keeps its address",
				l.JID, ue.Attrs.Username))
		}
		oldKey, _ := dnKey(l.DN)
		var what []string
		if oldKey != ue.DNKey {
			what = append(what, fmt.Sprintf("DN %s → %s", l.DN, ue.DN))
			renamed[oldKey] = ue.DN
		}
		what = append(what, la.diff(ue.Attrs)...)
		nl.DN = ue.DN
		nl.Attrs = ue.Attrs.encode()
		nw.attrs[id] = ue.Attrs
		vcardChanged := la.vcardFields() != ue.Attrs.vcardFields()

		if missing && erased(l.JID, id) {
			// Linked still (an erasure under way, or its link removal
			// failed): not recreated either, and the link goes.
			delete(nw.links, id)
			delete(nw.attrs, id)
			delete(nw.byJID, l.JID)
			skip(ue, l.JID)
			skipped[len(skipped)-1].unlink = id
			continue
		}
		if missing {
			nl.Disabled = dirDisabled
			nl.GoneSince = time.Time{}
			creates = append(creates, &step{
				Change: Change{Op: OpRecreate, JID: l.JID, DN: ue.DN, Detail: "the account was deleted by hand; the directory still has the entry"},
				run:    s.createAccount(&userEntry{StableID: id, DN: ue.DN, JID: l.JID, Attrs: ue.Attrs, Photo: ue.Photo}, dirDisabled, now),
				link:   nl,
			})
			continue
		}
		if !l.GoneSince.IsZero() {
			nl.GoneSince = time.Time{}
			restores = append(restores, &step{
				Change: Change{Op: OpRestore, JID: l.JID, DN: ue.DN, Detail: "back in the directory (gone since " + fmtTime(l.GoneSince) + ")"},
				link:   nl,
			})
		}
		if len(what) > 0 || (l.DN != ue.DN) {
			st := &step{Change: Change{Op: OpUpdate, JID: l.JID, DN: ue.DN, Detail: strings.Join(what, "; ")}, link: nl}
			var runs []func(context.Context) error
			if vcardChanged {
				runs = append(runs, s.writeVCard(l.JID, id, *ue))
			}
			if la.passwordChanged(ue.Attrs) {
				runs = append(runs, s.revokeFAST(l.JID))
			}
			st.run = sequence(runs)
			if len(what) == 0 {
				st.Detail = "DN spelling " + l.DN + " → " + ue.DN
			}
			updates = append(updates, st)
		}
		switch {
		case dirDisabled && !l.Disabled:
			if acc.Disabled {
				// Disabled by an operator already: leave it theirs.
				break
			}
			nl.Disabled = true
			disables = append(disables, &step{
				Change: Change{Op: OpDisable, JID: l.JID, DN: ue.DN, Detail: ue.Attrs.Disabled},
				run:    s.setDisabled(l.JID, true), link: nl,
			})
		case !dirDisabled && l.Disabled:
			nl.Disabled = false
			enables = append(enables, &step{
				Change: Change{Op: OpEnable, JID: l.JID, DN: ue.DN, Detail: "enabled in the directory"},
				run:    s.setDisabled(l.JID, false), link: nl,
			})
		}
	}

	// Accounts whose expiry passed since they were last read (accountExpires
	// does not change when the date comes).
	for _, id := range sortedKeys(nw.links) {
		if _, read := rd.users[id]; read {
			continue
		}
		a, l := nw.attrs[id], nw.links[id]
		if a.Disabled == "" && !a.Expires.IsZero() && !now.Before(a.Expires) && l.GoneSince.IsZero() {
			a.Disabled = "account expired"
			nw.attrs[id], l.Attrs = a, a.encode()
			if !l.Disabled {
				l.Disabled = true
				disables = append(disables, &step{
					Change: Change{Op: OpDisable, JID: l.JID, DN: l.DN, Detail: "account expired " + fmtTime(a.Expires)},
					run:    s.setDisabled(l.JID, true), link: l,
				})
			}
		}
	}

	// Entries gone from the directory.
	var gone []string
	for _, id := range sortedKeys(nw.links) {
		l := nw.links[id]
		if !l.GoneSince.IsZero() {
			continue
		}
		if rd.present != nil && !rd.present[id] {
			gone = append(gone, id)
		}
	}
	present := 0
	for _, l := range old.links {
		if l.GoneSince.IsZero() {
			present++
		}
	}
	if limit := s.cfg.Sync.MaxGonePercent; len(gone) > 10 && len(gone)*100 > limit*present {
		p.errors = append(p.errors, EntryError{Err: fmt.Errorf("ldapsync: %d of %d accounts would leave the directory at once, "+
			"more than max_gone_percent (%d%%): nothing is retired; check the base DN and filter, or raise the limit",
			len(gone), present, limit)})
		gone = nil
	}
	for _, id := range gone {
		l := nw.links[id]
		l.GoneSince = now
		acc, err := accts.get(ctx, l.JID)
		if err != nil {
			return nil, fmt.Errorf("ldapsync: %w", err)
		}
		st := &step{Change: Change{Op: OpRetire, JID: l.JID, DN: l.DN,
			Detail: fmt.Sprintf("gone from the directory; disabled now, deleted after %s", fmtTime(now.Add(s.cfg.Sync.DeleteAfter)))}, link: l}
		if acc != nil && !acc.Disabled && !l.Disabled {
			l.Disabled = true
			st.run = s.setDisabled(l.JID, true)
		}
		retires = append(retires, st)
	}
	for _, id := range sortedKeys(nw.links) {
		l := nw.links[id]
		if l.GoneSince.IsZero() || now.Sub(l.GoneSince) < s.cfg.Sync.DeleteAfter {
			continue
		}
		deletes = append(deletes, &step{
			Change: Change{Op: OpDelete, JID: l.JID, DN: l.DN, Detail: "gone since " + fmtTime(l.GoneSince) + ", longer than delete_after"},
			run:    s.deleteAccount(l.JID),
			unlink: id,
		})
		delete(nw.links, id)
		delete(nw.attrs, id)
		delete(nw.byJID, l.JID)
	}

	// Groups.
	var groupSteps []*step
	oldGroups := old.groups
	if mode == Full {
		nw.groups = map[string]*group{}
	}
	for id, g := range rd.groups {
		nw.groups[id] = g
	}
	for id := range nw.groups {
		if rd.presentGroups != nil && !rd.presentGroups[id] {
			delete(nw.groups, id)
		}
	}
	if len(renamed) > 0 {
		// Members named by an old DN (a group not read this time still
		// lists a user under the DN it had then).
		for _, g := range nw.groups {
			if _, fresh := rd.groups[g.StableID]; fresh {
				continue
			}
			for i, m := range g.Members {
				if k, err := keys.key(m); err == nil {
					if dn, ok := renamed[k]; ok {
						g.Members[i] = dn
					}
				}
			}
		}
	}
	for _, id := range sortedKeys(nw.groups) {
		g := nw.groups[id]
		og, existed := oldGroups[id]
		switch {
		case !existed:
			groupSteps = append(groupSteps, &step{Change: Change{Op: OpGroupAdd, DN: g.DN,
				Detail: fmt.Sprintf("%q, %d direct members", g.Name, len(g.Members))}})
			p.groupOps = append(p.groupOps, groupOp{put: g})
		default:
			var what []string
			if og.Name != g.Name {
				what = append(what, fmt.Sprintf("name %q → %q", og.Name, g.Name))
			}
			if og.DNKey != g.DNKey {
				what = append(what, "DN "+og.DN+" → "+g.DN)
			}
			if added, removed := memberDiff(og.Members, g.Members, keys); added+removed > 0 {
				what = append(what, fmt.Sprintf("members +%d −%d", added, removed))
			}
			if og.RID != g.RID {
				what = append(what, fmt.Sprintf("rid %d → %d", og.RID, g.RID))
			}
			if len(what) > 0 || og.DN != g.DN {
				groupSteps = append(groupSteps, &step{Change: Change{Op: OpGroupUpdate, DN: g.DN,
					Detail: fmt.Sprintf("%q: %s", g.Name, strings.Join(what, "; "))}})
				p.groupOps = append(p.groupOps, groupOp{put: g})
			}
		}
	}
	for _, id := range sortedKeys(oldGroups) {
		if _, still := nw.groups[id]; !still {
			g := oldGroups[id]
			groupSteps = append(groupSteps, &step{Change: Change{Op: OpGroupRemove, DN: g.DN, Detail: fmt.Sprintf("%q", g.Name)}})
			p.groupOps = append(p.groupOps, groupOp{remove: id})
		}
	}

	// Nested groups, before and after; then the rosters.
	oldRes := resolveState(old, keys)
	p.res = resolveState(nw, keys)
	rosterSteps, err := s.planRosters(ctx, old, nw, oldRes, p.res, mode)
	if err != nil {
		return nil, err
	}
	for _, list := range [][]*step{skipped, creates, restores, updates, disables, enables, retires, deletes, groupSteps, rosterSteps} {
		p.steps = append(p.steps, list...)
	}
	return p, nil
}

// memberDiff counts members added and removed, comparing DNs as DNs.
func memberDiff(before, after []string, cache dnKeys) (added, removed int) {
	if slices.Equal(before, after) {
		return 0, 0
	}
	keys := func(list []string) map[string]bool {
		m := make(map[string]bool, len(list))
		for _, dn := range list {
			k, err := cache.key(dn)
			if err != nil {
				k = "\x00" + dn
			}
			m[k] = true
		}
		return m
	}
	b, a := keys(before), keys(after)
	for k := range a {
		if !b[k] {
			added++
		}
	}
	for k := range b {
		if !a[k] {
			removed++
		}
	}
	return added, removed
}

// resolveState resolves the nested groups of a state over its users that
// are in the directory (not gone).
func resolveState(st *syncState, keys dnKeys) resolution {
	userByDN := make(map[string]string, len(st.links))
	byRID := map[uint32][]string{}
	for _, id := range sortedKeys(st.links) {
		l := st.links[id]
		if !l.GoneSince.IsZero() {
			continue
		}
		if k, err := keys.key(l.DN); err == nil {
			userByDN[k] = id
		}
		if rid := st.attrs[id].PrimaryGroup; rid != 0 {
			byRID[rid] = append(byRID[rid], id)
		}
	}
	return resolveGroups(st.groups, userByDN, byRID, keys)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

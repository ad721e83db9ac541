package ldapsync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/directory"
)

// snapshot builds the directory as the policy engine sees it: every user in
// the directory (disabled ones flagged) and every group with its members,
// nesting flattened.
func snapshot(st *syncState, res resolution, at time.Time) directory.Snapshot {
	snap := directory.Snapshot{People: map[string]directory.Person{}, Groups: map[string]directory.Group{}, At: at.UTC()}
	jidByDN := map[string]string{}
	for _, l := range st.links {
		if k, err := dnKey(l.DN); err == nil && l.GoneSince.IsZero() {
			jidByDN[k] = l.JID
		}
	}
	groupsOf := map[string][]string{}
	for _, gid := range sortedKeys(res.flat) {
		g := st.groups[gid]
		if g == nil {
			continue
		}
		dg := directory.Group{ID: gid, Name: g.Name}
		for _, u := range res.flat[gid] {
			l := st.links[u]
			if l == nil || !l.GoneSince.IsZero() {
				continue
			}
			dg.Members = append(dg.Members, l.JID)
			groupsOf[u] = append(groupsOf[u], gid)
		}
		slices.Sort(dg.Members)
		snap.Groups[gid] = dg
	}
	for _, id := range sortedKeys(st.links) {
		l := st.links[id]
		if !l.GoneSince.IsZero() {
			continue
		}
		a := st.attrs[id]
		p := directory.Person{JID: l.JID, StableID: id, Username: a.Username, DisplayName: a.DisplayName,
			Email: a.Email, Department: a.Department, Company: a.Company, Phone: a.Phone, Kind: a.Kind,
			Groups: groupsOf[id], Disabled: l.Disabled || a.Disabled != ""}
		slices.Sort(p.Groups)
		for _, dn := range a.Sponsors {
			if k, err := dnKey(dn); err == nil {
				if j, ok := jidByDN[k]; ok {
					p.Sponsors = append(p.Sponsors, j)
				}
			}
		}
		slices.Sort(p.Sponsors)
		snap.People[l.JID] = p
	}
	snap.Revision = revision(snap)
	return snap
}

// revision hashes the content of a snapshot (not its time): equal
// directories have equal revisions.
func revision(s directory.Snapshot) string {
	h := sha256.New()
	enc := json.NewEncoder(h)
	for _, j := range sortedKeys(s.People) {
		_ = enc.Encode(s.People[j])
	}
	for _, id := range sortedKeys(s.Groups) {
		_ = enc.Encode(s.Groups[id])
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// sendSnapshot hands the directory to the sink when it differs from the
// last one this process handed over (a sync run by the CLI changes the
// directory under a running server: the server's next sync passes it on),
// and returns its revision.
func (s *Syncer) sendSnapshot(ctx context.Context, p *plan, at time.Time) (string, error) {
	snap := snapshot(p.nw, p.res, at)
	if s.sink == nil || snap.Revision == s.lastSent {
		return snap.Revision, nil
	}
	if err := s.sink.UpdateDirectory(ctx, snap); err != nil {
		return "", fmt.Errorf("ldapsync: handing the directory to the policy engine: %w", err)
	}
	s.lastSent = snap.Revision
	return snap.Revision, nil
}

// Snapshot returns the directory as the last sync left it, from the stored
// state alone (no directory access): for a server that starts, so that the
// policy engine has the directory before the first sync ends.
func (s *Syncer) Snapshot(ctx context.Context) (directory.Snapshot, error) {
	st, err := s.loadState(ctx)
	if err != nil {
		return directory.Snapshot{}, fmt.Errorf("ldapsync: %w", err)
	}
	return snapshot(st, resolveState(st, dnKeys{}), s.now()), nil
}

// writeAudit appends the sync's summary to the audit trail.
func (s *Syncer) writeAudit(ctx context.Context, r *Report, reason string) {
	if s.audit == nil {
		return
	}
	if reason == "" {
		reason = "scheduled"
	}
	itoa := strconv.Itoa
	e := audit.Entry{
		Actor: "ldapsync", Action: "ldap.sync", Subject: s.domain, Reason: reason,
		Details: map[string]string{
			"mode": string(r.Mode), "mode_reason": r.ModeReason,
			"created": itoa(r.Created), "updated": itoa(r.Updated), "disabled": itoa(r.Disabled),
			"enabled": itoa(r.Enabled), "retired": itoa(r.Retired), "restored": itoa(r.Restored),
			"deleted": itoa(r.Deleted), "groups": itoa(r.Groups), "roster": itoa(r.Roster),
			"erased_skipped": itoa(r.ErasedSkipped),
			"errors":         itoa(len(r.Errors)), "entries_read": itoa(r.Read), "groups_read": itoa(r.GroupsRead),
			"duration_ms": strconv.FormatInt(r.Duration.Milliseconds(), 10),
		},
	}
	if _, err := s.audit.Append(context.WithoutCancel(ctx), e); err != nil {
		s.log.Error("writing the sync summary to the audit trail failed", "err", err)
	}
}

package ldapsync

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"kontor.im/kontor/core/storage"
)

// erasedSet is the tombstones of erased people as the sync sees them (the
// real ones, keyed hashes in the store, are archive/gdpr's and are tested
// with this sync in cmd/kontor).
type erasedSet struct {
	mu        sync.Mutex
	jids, ids map[string]bool
	err       error
}

func (e *erasedSet) ErasedMatcher(context.Context) (func(jid, stableID string) bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return nil, e.err
	}
	return func(j, id string) bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.jids[j] || e.ids[id]
	}, nil
}

// TestSyncSkipsErased: after an erasure (link and account gone) of people
// still in the directory, a full sync does not create them again and says
// "erased, skipped" (matching by JID, or by stable id alone), keeps them
// out of shared-group rosters, writes the count to the audit entry, and
// creates them once reinstated. A matcher that fails stops the sync.
func TestSyncSkipsErased(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, backend, treeLDIF(treeUsers(t)), nil)
			ctx := context.Background()
			rep := e.sync(t, SyncOptions{Reason: "first"})
			if rep.Created != 50 {
				t.Fatalf("first sync created %d", rep.Created)
			}
			g, isG := e.store.(storage.GDPRStore)
			if !isG {
				t.Fatal("the store lacks the GDPR tables")
			}
			byID := func(j string) string {
				l, err := e.store.LDAPLinkByJID(ctx, Source, j)
				if err != nil {
					t.Fatalf("link of %s: %v", j, err)
				}
				return l.StableID
			}
			jane, s02 := jidOf("jane.doe"), jidOf("s02")
			er := &erasedSet{jids: map[string]bool{jane: true}, ids: map[string]bool{byID(s02): true}}
			// What archive/gdpr's erasure does to the directory's traces:
			// the link, the managed roster items, others' items, the account.
			for _, j := range []string{jane, s02} {
				if _, err := g.DeleteLDAPLinksOf(ctx, j); err != nil {
					t.Fatal(err)
				}
				owners, _, err := g.RosterReferences(ctx, j)
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range owners {
					if _, err := e.store.DeleteRosterItem(ctx, o, j); err != nil {
						t.Fatal(err)
					}
				}
				if err := e.store.DeleteAccount(ctx, j); err != nil {
					t.Fatal(err)
				}
			}
			log := slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
			sy, err := NewSyncer(Options{Config: e.cfg, Domain: testDomain, Store: e.store, Client: e.client, Log: log,
				Audit: e.audit, Now: e.clock.now, Erasures: er})
			if err != nil {
				t.Fatal(err)
			}
			run := func(o SyncOptions) *Report {
				t.Helper()
				r, err := sy.Sync(ctx, o)
				if err != nil {
					t.Fatalf("sync: %v", err)
				}
				return r
			}

			dry := run(SyncOptions{Full: true, DryRun: true})
			if dry.ErasedSkipped != 2 || dry.Created != 0 {
				t.Errorf("dry run: %d skipped, %d created; want 2, 0\n%s", dry.ErasedSkipped, dry.Created, reportText(dry))
			}
			rep = run(SyncOptions{Full: true, Reason: "after the erasure"})
			if got := opsOf(rep, OpErasedSkip); strings.Join(got, ",") != "erased, skipped "+jane+",erased, skipped "+s02 || rep.Created != 0 || rep.ErasedSkipped != 2 {
				t.Errorf("sync after the erasure: skipped %v, created %d\n%s", got, rep.Created, reportText(rep))
			}
			if txt := reportText(rep); !strings.Contains(txt, "erased, skipped") || !strings.Contains(txt, "2 erased, skipped") {
				t.Errorf("report text does not say erased, skipped:\n%s", txt)
			}
			for _, j := range []string{jane, s02} {
				if _, err := e.store.Account(ctx, j); !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("%s was recreated: %v", j, err)
				}
				if _, err := e.store.LDAPLinkByJID(ctx, Source, j); !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("%s was linked again: %v", j, err)
				}
			}
			if _, ok := rosterOf(t, e.store, jidOf("s01"))[jane]; ok {
				t.Error("the erased Jane is in s01's shared-group roster")
			}
			for _, c := range rep.Changes {
				if c.Op == OpRosterAdd && (strings.Contains(c.Detail, jane) || strings.Contains(c.Detail, s02)) {
					t.Errorf("the sync puts an erased person into a roster: %s", c)
				}
			}
			audits := e.audit.all()
			if last := audits[len(audits)-1]; last.Details["erased_skipped"] != "2" || last.Details["created"] != "0" {
				t.Errorf("audit entry = %+v", last.Details)
			}

			// A matcher that cannot tell stops the sync.
			er.mu.Lock()
			er.err = errors.New("tombstone key missing")
			er.mu.Unlock()
			if _, err := sy.Sync(ctx, SyncOptions{Full: true}); err == nil || !strings.Contains(err.Error(), "tombstone key missing") {
				t.Errorf("sync with a failing matcher: %v", err)
			}

			// Jane reinstated: the next sync creates her.
			er.mu.Lock()
			er.err = nil
			delete(er.jids, jane)
			er.mu.Unlock()
			rep = run(SyncOptions{Full: true, Reason: "reinstated"})
			if got := opsOf(rep, OpCreate); strings.Join(got, ",") != "create "+jane || rep.ErasedSkipped != 1 {
				t.Errorf("after reinstating Jane: created %v, skipped %d\n%s", got, rep.ErasedSkipped, reportText(rep))
			}
			mustAccount(t, e.store, jane)
		})
	}
}

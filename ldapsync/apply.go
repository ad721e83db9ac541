package ldapsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"kontor.im/kontor/core/storage"
)

// linkBatch is how many links are written per transaction.
const linkBatch = 500

// apply runs the plan's steps in order. A step that fails is reported and
// the rest go on; its link is not written, so the next sync tries again.
func (s *Syncer) apply(ctx context.Context, p *plan, progress func(Progress)) []EntryError {
	var errs []EntryError
	var pending []storage.LDAPLink
	flush := func() {
		if len(pending) == 0 {
			return
		}
		if err := s.store.PutLDAPLinks(ctx, Source, pending); err != nil {
			// One bad link must not cost the batch: write them one by one.
			for _, l := range pending {
				if err := s.store.PutLDAPLinks(ctx, Source, []storage.LDAPLink{l}); err != nil {
					errs = append(errs, EntryError{JID: l.JID, DN: l.DN, Err: fmt.Errorf("ldapsync: saving the link: %w", err)})
				}
			}
		}
		pending = pending[:0]
	}
	groupsDone := false
	var rosters []*step
	for i, st := range p.steps {
		if ctx.Err() != nil {
			break
		}
		if !groupsDone && isRosterOp(st.Op) {
			// Group state before roster changes, links before both.
			flush()
			errs = append(errs, s.applyGroups(ctx, p.groupOps)...)
			groupsDone = true
		}
		if st.hidden && isRosterOp(st.Op) {
			rosters = append(rosters, st)
			continue
		}
		if st.run != nil {
			if err := st.run(ctx); err != nil {
				errs = append(errs, EntryError{JID: st.JID, DN: st.DN, Err: fmt.Errorf("%s: %w", st.Op, err)})
				continue
			}
		}
		if st.link != nil {
			pending = append(pending, *st.link)
			if len(pending) >= linkBatch {
				flush()
			}
		}
		if st.unlink != "" {
			flush()
			if err := s.store.DeleteLDAPLink(ctx, Source, st.unlink); err != nil {
				errs = append(errs, EntryError{JID: st.JID, Err: err})
			}
		}
		if i%100 == 0 {
			progress(Progress{Phase: "apply", Done: i, Total: len(p.steps)})
		}
	}
	flush()
	if !groupsDone && ctx.Err() == nil {
		errs = append(errs, s.applyGroups(ctx, p.groupOps)...)
	}
	errs = append(errs, s.applyRosters(ctx, rosters)...)
	progress(Progress{Phase: "apply", Done: len(p.steps), Total: len(p.steps)})
	return errs
}

// rosterWorkers is how many owners' rosters are changed at once. Each
// owner's changes are one step under that owner's roster lock; owners are
// independent, and PostgreSQL serves them in parallel (SQLite's single
// writer queues them).
const rosterWorkers = 4

func (s *Syncer) applyRosters(ctx context.Context, steps []*step) []EntryError {
	var (
		mu   sync.Mutex
		errs []EntryError
		wg   sync.WaitGroup
		next = make(chan *step)
	)
	for range min(rosterWorkers, len(steps)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for st := range next {
				if err := st.run(ctx); err != nil {
					mu.Lock()
					errs = append(errs, EntryError{JID: st.JID, Err: fmt.Errorf("roster: %w", err)})
					mu.Unlock()
				}
			}
		}()
	}
	for _, st := range steps {
		if ctx.Err() != nil {
			break
		}
		next <- st
	}
	close(next)
	wg.Wait()
	return errs
}

func isRosterOp(op Op) bool {
	return op == OpRosterAdd || op == OpRosterUpdate || op == OpRosterRemove
}

func (s *Syncer) applyGroups(ctx context.Context, ops []groupOp) []EntryError {
	var errs []EntryError
	var puts []storage.LDAPGroup
	for _, op := range ops {
		if op.remove != "" {
			if err := s.store.DeleteLDAPGroup(ctx, Source, op.remove); err != nil {
				errs = append(errs, EntryError{Err: err})
			}
			continue
		}
		g := op.put
		a, _ := json.Marshal(groupAttrs{RID: g.RID})
		puts = append(puts, storage.LDAPGroup{StableID: g.StableID, DN: g.DN, Name: g.Name, Members: g.Members, Attrs: a})
	}
	for len(puts) > 0 {
		n := min(len(puts), linkBatch)
		if err := s.store.PutLDAPGroups(ctx, Source, puts[:n]); err != nil {
			errs = append(errs, EntryError{Err: fmt.Errorf("ldapsync: saving groups: %w", err)})
		}
		puts = puts[n:]
	}
	return errs
}

// createAccount creates a directory account: no credentials (it logs in
// by bind), disabled if the directory has it disabled; then its vCard.
func (s *Syncer) createAccount(ue *userEntry, disabled bool, now time.Time) func(context.Context) error {
	return func(ctx context.Context) error {
		err := s.store.CreateAccount(ctx, storage.Account{JID: ue.JID, Domain: s.domain, Disabled: disabled, Created: now.UTC()})
		if errors.Is(err, storage.ErrExists) {
			return fmt.Errorf("ldapsync: a local account %s was created meanwhile: %w", ue.JID, err)
		}
		if err != nil {
			return err
		}
		return s.writeVCard(ue.JID, ue.StableID, *ue)(ctx)
	}
}

// writeVCard writes the vCard from the directory's attributes and photo.
func (s *Syncer) writeVCard(j, stableID string, ue userEntry) func(context.Context) error {
	return func(ctx context.Context) error {
		photo := ue.Photo
		if photo == nil && ue.Attrs.PhotoHash != "" {
			var err error
			if photo, err = s.fetchPhoto(ctx, stableID); err != nil {
				return err
			}
		}
		return s.store.SetVCard(ctx, j, vcard(j, ue.Attrs, photo))
	}
}

// revokeFAST removes an account's FAST tokens (XEP-0484) after the
// directory changed its password: a token stands in for the password, so
// a client that had one must log in with the new password again.
func (s *Syncer) revokeFAST(j string) func(context.Context) error {
	return func(ctx context.Context) error {
		n, err := s.store.DeleteFASTTokens(ctx, j, "")
		if err == nil && n > 0 {
			s.log.Info("password changed in the directory; FAST tokens revoked", "jid", j, "tokens", n)
		}
		return err
	}
}

// sequence runs the steps in order and stops at the first error; nil for
// none.
func sequence(runs []func(context.Context) error) func(context.Context) error {
	switch len(runs) {
	case 0:
		return nil
	case 1:
		return runs[0]
	}
	return func(ctx context.Context) error {
		for _, r := range runs {
			if err := r(ctx); err != nil {
				return err
			}
		}
		return nil
	}
}

// setDisabled disables or enables an account. The account change log
// carries it to every running server, which closes the sessions of a
// disabled account (core/account.Watch).
func (s *Syncer) setDisabled(j string, disabled bool) func(context.Context) error {
	return func(ctx context.Context) error {
		return s.store.SetDisabled(ctx, j, disabled)
	}
}

// deleteAccount deletes an account with everything it owns, and the
// sync's record of its roster. Its archive is not touched here: retention
// decides when that goes.
func (s *Syncer) deleteAccount(j string) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := s.store.DeleteAccount(ctx, j); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		items, err := s.store.LDAPRosterItems(ctx, Source, j)
		if err != nil {
			return err
		}
		contacts := make([]string, len(items))
		for i, it := range items {
			contacts[i] = it.Contact
		}
		return s.store.DeleteLDAPRosterItems(ctx, Source, j, contacts)
	}
}

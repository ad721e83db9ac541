package gdpr

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"kontor.im/kontor/archive"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/storage"
)

const (
	alice    = "alice@example.com"
	bob      = "bob@example.com"
	carol    = "carol@example.com"
	dave     = "dave@example.com"
	remote   = "remote@other.example"
	supplier = "supplier@other.example"
)

var retention = byPeer{supplier: {Name: "business_letter", Keep: 6 * 365 * 24 * time.Hour}}

// seed gives alice (and bob, carol) data in every store, with secret in
// alice's message bodies and vcardSecret in her vCard (stored in the
// clear).
func seed(t *testing.T, b *backend, a *archive.Archive, secret, vcardSecret string) {
	t.Helper()
	ctx := t.Context()
	st := b.st
	for _, j := range []string{alice, bob, carol, dave} {
		ok(t, st.CreateAccount(ctx, storage.Account{JID: j, Domain: "example.com", Created: time.Now()}))
	}
	_, err := st.PutRosterItem(ctx, alice, storage.RosterItem{Contact: bob, Name: "Bob", Subscription: storage.SubBoth, Groups: []string{"Team"}})
	ok(t, err)
	_, err = st.PutRosterItem(ctx, bob, storage.RosterItem{Contact: alice, Name: "Alice", Subscription: storage.SubBoth})
	ok(t, err)
	ok(t, st.PutSubscriptionRequest(ctx, carol, storage.SubscriptionRequest{From: alice, Stanza: []byte("<presence type='subscribe'/>"), At: time.Now()}))
	ok(t, st.SetVCard(ctx, alice, []byte("<vCard xmlns='vcard-temp'><FN>"+vcardSecret+"</FN></vCard>")))
	ok(t, st.SetPrivate(ctx, alice, "{storage:bookmarks}storage", []byte("<storage xmlns='storage:bookmarks'/>")))
	ok(t, st.CreatePEPNode(ctx, storage.PEPNode{Owner: alice, Node: "urn:xmpp:avatar:metadata", Config: []byte("{}"), MaxItems: 1}, 0))
	ok(t, st.PublishPEPItem(ctx, storage.PEPItem{Owner: alice, Node: "urn:xmpp:avatar:metadata", ID: "i1",
		Payload: []byte("<metadata xmlns='urn:xmpp:avatar:metadata'/>"), Publisher: alice}, 0))
	_, err = st.BlockJIDs(ctx, alice, []string{"spam@other.example"}, 0)
	ok(t, err)
	ok(t, st.SetLastActivity(ctx, alice, time.Now(), "away"))
	ok(t, a.SetPrefs(ctx, alice, module.ArchivePrefs{Default: "always"}))
	stamp := time.Now().UTC().Truncate(time.Microsecond)
	sealed, err := a.Sealer(nil).Seal(alice, offlineAD(remote+"/x", stamp),
		[]byte("<message xmlns='jabber:client' from='"+remote+"/x' to='"+alice+"'><body>"+secret+" offline</body></message>"))
	ok(t, err)
	_, err = st.StoreOffline(ctx, storage.OfflineMessage{Owner: alice, From: remote + "/x", Stamp: stamp, Sealed: sealed}, 0)
	ok(t, err)
	base := time.Now().Add(-time.Hour)
	for i := range 20 {
		at := base.Add(time.Duration(i) * time.Second)
		ok(t, a.Append(ctx, chat(alice, remote+"/phone", i%2 == 0, at, secret+" standard "+time.Duration(i).String())))
	}
	for i := range 5 {
		ok(t, a.Append(ctx, chat(alice, supplier, true, base.Add(time.Duration(30+i)*time.Second), "order "+time.Duration(i).String())))
	}
	for i := range 3 {
		ok(t, a.Append(ctx, chat(dave, remote, true, base.Add(time.Duration(i)*time.Second), "held message")))
	}
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ok(t, a.Flush(fctx))
}

// archived is what the DPO sees of owner's archive: restricted messages too.
func archived(t *testing.T, a *archive.Archive, owner string) []module.ArchivedMessage {
	t.Helper()
	var out []module.ArchivedMessage
	ok(t, a.WalkRestricted(t.Context(), owner, time.Time{}, time.Time{}, 7, func(ms []module.ArchivedMessage) error {
		out = append(out, ms...)
		return nil
	}))
	return out
}

func TestEraseEverything(t *testing.T) {
	forBackends(t, func(t *testing.T, b *backend) {
		ctx := t.Context()
		tool, a, rec := newTool(t, b, retention)
		secret, vsecret := marker(t, "SECRET"), marker(t, "VCARD")
		seed(t, b, a, secret, vsecret)
		if n := len(archived(t, a, alice)); n != 25 {
			t.Fatalf("alice has %d archived messages before, want 25", n)
		}
		keysBefore, err := b.st.ArchiveKeysOf(ctx, alice)
		ok(t, err)
		g := Grant{Operator: "dpo", CaseNumber: "DSR-7"}

		dry, err := tool.Erase(ctx, g, alice, EraseOptions{DryRun: true})
		ok(t, err)
		if _, err := b.st.Account(ctx, alice); err != nil {
			t.Fatalf("a dry run erased the account: %v", err)
		}
		want := map[string]string{"account": "1 deleted", "vcard": "1 deleted", "others_rosters": "2 deleted",
			"offline_messages": "1 deleted", "pep_nodes": "1 deleted", "blocklist": "1 deleted", "archive_messages": "25 deleted unless kept above"}
		for _, c := range dry.Categories {
			if w, ok := want[c.Name]; ok && strconv.Itoa(c.Count)+" "+c.Status != w {
				t.Errorf("dry run %s = %d %s, want %s", c.Name, c.Count, c.Status, w)
			}
		}

		cert, err := tool.Erase(ctx, g, alice, EraseOptions{Reason: "Art. 17 request"})
		ok(t, err)
		t.Logf("certificate:\n%s", certText(cert))

		// No row of alice's is left but the business letters, restricted.
		if _, err := b.st.Account(ctx, alice); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("account: %v", err)
		}
		if items, _, _ := b.st.RosterItems(ctx, alice); len(items) != 0 {
			t.Errorf("roster: %v", items)
		}
		if items, _, _ := b.st.RosterItems(ctx, bob); len(items) != 0 {
			t.Errorf("bob's roster still names alice: %v", items)
		}
		if reqs, _ := b.st.SubscriptionRequests(ctx, carol); len(reqs) != 0 {
			t.Errorf("carol's requests: %v", reqs)
		}
		if _, err := b.st.VCard(ctx, alice); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("vcard: %v", err)
		}
		if keys, _ := b.st.PrivateXMLKeys(ctx, alice); len(keys) != 0 {
			t.Errorf("private xml: %v", keys)
		}
		if nodes, _ := b.st.PEPNodes(ctx, alice); len(nodes) != 0 {
			t.Errorf("pep: %v", nodes)
		}
		if bl, _ := b.st.BlockedJIDs(ctx, alice); len(bl) != 0 {
			t.Errorf("blocklist: %v", bl)
		}
		if n, _ := b.st.OfflineCount(ctx, alice); n != 0 {
			t.Errorf("offline: %d", n)
		}
		if _, _, err := b.st.LastActivity(ctx, alice); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("last activity: %v", err)
		}
		if _, err := b.st.ArchivePrefs(ctx, alice); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("archive prefs: %v", err)
		}
		left := archived(t, a, alice)
		if len(left) != 5 || !strings.Contains(string(left[0].Stanza), "order") {
			t.Errorf("alice's archive keeps %d messages, want the 5 business letters", len(left))
		}
		keysAfter, err := b.st.ArchiveKeysOf(ctx, alice)
		ok(t, err)
		if len(keysAfter) != 1 || keysAfter[0].Class != "business_letter" {
			t.Errorf("alice keeps keys %+v, want the business_letter key only", keysAfter)
		}
		rs, err := b.st.Restrictions(ctx, alice)
		ok(t, err)
		if len(rs) != 1 || rs[0].Category != "archive:business_letter" || rs[0].Until.Before(time.Now().AddDate(5, 11, 0)) {
			t.Errorf("restrictions = %+v", rs)
		}
		kept := cert.Kept()
		if len(kept) < 1 || kept[0].Status != Restricted {
			t.Errorf("certificate keeps %+v", kept)
		}

		// The certificate is in the audit trail, without the erased data.
		e, found := rec.last("gdpr.erase")
		if !found || e.Subject != alice || e.Details["case"] != "DSR-7" || !strings.HasPrefix(e.Details["erased.account"], "deleted 1") ||
			!strings.HasPrefix(e.Details["erased.archive_keys:business_letter"], "restricted 1 until ") {
			t.Errorf("audit entry = %+v", e)
		}
		for k, v := range e.Details {
			if strings.Contains(v, secret) || strings.Contains(v, vsecret) || strings.Contains(k, "Bob") {
				t.Errorf("the certificate holds erased data: %s=%s", k, v)
			}
		}
		recs, err := ReadErasureLog(tool.ErasureLog)
		ok(t, err)
		if len(recs) != 1 || recs[0].Subject != alice || !recs[0].Completed || recs[0].Job != cert.Job {
			t.Errorf("erasure log = %+v", recs)
		}

		// Nothing readable is left in the database files: not the message
		// marker, not the vCard (stored in the clear), not the wrapped
		// data keys that were shredded.
		files := dbFiles(t, b, true)
		if f := findIn(t, files, []byte(secret)); len(f) > 0 {
			t.Errorf("the message marker is in %v", f)
		}
		noWAL := dbFiles(t, b, false)
		if f := findIn(t, noWAL, []byte(vsecret)); len(f) > 0 {
			t.Errorf("the vCard marker is in %v", f)
		}
		for _, k := range keysBefore {
			if k.Class == "business_letter" {
				if f := findIn(t, noWAL, k.Wrapped); len(f) == 0 {
					t.Errorf("the kept key %d is not in the files: the scan does not see the data", k.ID)
				}
				continue
			}
			if f := findIn(t, noWAL, k.Wrapped); len(f) > 0 {
				t.Errorf("the shredded key %d (%s) is still in %v", k.ID, k.Class, f)
			}
		}

		// Running it again changes nothing and succeeds.
		if _, err := tool.Erase(ctx, g, alice, EraseOptions{}); err != nil {
			t.Fatalf("second erasure: %v", err)
		}
		if n := len(archived(t, a, alice)); n != 5 {
			t.Errorf("after a second erasure alice keeps %d", n)
		}
		// Bob is untouched.
		if _, err := b.st.Account(ctx, bob); err != nil {
			t.Errorf("bob: %v", err)
		}
	})
}

func certText(c Certificate) string {
	var lines []string
	for _, x := range c.Categories {
		lines = append(lines, "  "+x.String())
	}
	return strings.Join(lines, "\n")
}

func TestEraseHeldUser(t *testing.T) {
	forBackends(t, func(t *testing.T, b *backend) {
		ctx := t.Context()
		tool, a, rec := newTool(t, b, retention)
		seed(t, b, a, marker(t, "S"), marker(t, "V"))
		g := Grant{Operator: "legal"}
		h, err := tool.AddHold(ctx, g, dave, "LIT-2026-017", "lawsuit")
		ok(t, err)
		if e, found := rec.last("hold.add"); !found || e.Subject != dave || e.Details["hold_case"] != "LIT-2026-017" {
			t.Fatalf("hold.add entry = %+v", e)
		}
		cert, err := tool.Erase(ctx, g, dave, EraseOptions{})
		ok(t, err)
		if _, err := b.st.Account(ctx, dave); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("the account of a held user is not erased: %v", err)
		}
		if n := len(archived(t, a, dave)); n != 3 {
			t.Fatalf("held archive after erasure: %d messages, want 3", n)
		}
		var heldCat bool
		for _, c := range cert.Kept() {
			heldCat = heldCat || (c.Status == Held && c.Case == "LIT-2026-017")
		}
		if !heldCat {
			t.Errorf("certificate does not say held by the case: %+v", cert.Categories)
		}
		// Purge long after every message expired keeps them too.
		purger, err := archive.New(archive.Config{Store: b.st, Keys: b.ring, Holds: Holds{b.st},
			Now: func() time.Time { return time.Now().AddDate(10, 0, 0) }})
		ok(t, err)
		res, err := purger.Purge(ctx)
		ok(t, err)
		if res.HeldOwners == 0 {
			t.Errorf("purge skipped no held owner: %+v", res)
		}
		if n := len(archived(t, a, dave)); n != 3 {
			t.Errorf("held archive after purge: %d messages, want 3", n)
		}
		// Released, the next erasure takes it.
		_, err = tool.ReleaseHold(ctx, g, h.ID, "case closed")
		ok(t, err)
		_, err = tool.Erase(ctx, g, dave, EraseOptions{})
		ok(t, err)
		if n := len(archived(t, a, dave)); n != 0 {
			t.Errorf("released archive after erasure: %d messages", n)
		}
	})
}

// failingStore fails EraseAccount once: an erasure stopped half way.
type failingStore struct {
	Store
	failed bool
}

func (f *failingStore) EraseAccount(ctx context.Context, jid string) error {
	if !f.failed {
		f.failed = true
		return errors.New("connection lost")
	}
	return f.Store.EraseAccount(ctx, jid)
}

func TestEraseResumes(t *testing.T) {
	forBackends(t, func(t *testing.T, b *backend) {
		ctx := t.Context()
		tool, a, _ := newTool(t, b, retention)
		seed(t, b, a, marker(t, "S"), marker(t, "V"))
		tool.Store = &failingStore{Store: b.st}
		_, err := tool.Erase(ctx, Grant{Operator: "dpo"}, alice, EraseOptions{})
		if err == nil || !strings.Contains(err.Error(), "run it again") {
			t.Fatalf("Erase = %v, want the injected failure", err)
		}
		recs, err := ReadErasureLog(tool.ErasureLog)
		ok(t, err)
		if len(recs) != 1 || recs[0].Completed {
			t.Fatalf("erasure log after the failure = %+v", recs)
		}
		// The keys went first: nothing of the standard class opens.
		if n := len(archived(t, a, alice)); n != 5 {
			t.Errorf("after the failure alice's archive opens %d messages, want the 5 restricted", n)
		}
		_, err = tool.Erase(ctx, Grant{Operator: "dpo"}, alice, EraseOptions{})
		ok(t, err)
		recs, err = ReadErasureLog(tool.ErasureLog)
		ok(t, err)
		if len(recs) != 1 || !recs[0].Completed {
			t.Fatalf("erasure log after the rerun = %+v", recs)
		}
		if _, err := b.st.Account(ctx, alice); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("account after the rerun: %v", err)
		}
	})
}

// fakeUploads stands for the upload module's files (core/mod/upload,
// adapted in cmd/kontor): files per owner.
type fakeUploads struct {
	mu sync.Mutex
	n  map[string]int
}

func (f *fakeUploads) CountOwner(_ context.Context, owner string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n[owner], nil
}

func (f *fakeUploads) DeleteOwner(_ context.Context, owner string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.n[owner]
	delete(f.n, owner)
	return n, nil
}

// TestEraseUploads: an erasure deletes the person's uploaded files and says
// so in the certificate; a dry run only counts them; a legal hold keeps
// them.
func TestEraseUploads(t *testing.T) {
	forBackends(t, func(t *testing.T, b *backend) {
		ctx := t.Context()
		tool, a, _ := newTool(t, b, retention)
		seed(t, b, a, marker(t, "S"), marker(t, "V"))
		up := &fakeUploads{n: map[string]int{alice: 2, dave: 3}}
		tool.Uploads = up
		g := Grant{Operator: "dpo"}
		category := func(cert Certificate) Category {
			for _, c := range cert.Categories {
				if c.Name == "uploads" {
					return c
				}
			}
			t.Fatalf("no uploads category in %+v", cert.Categories)
			return Category{}
		}
		dry, err := tool.Erase(ctx, g, alice, EraseOptions{DryRun: true})
		ok(t, err)
		if c := category(dry); c.Count != 2 || c.Status != Deleted || up.n[alice] != 2 {
			t.Errorf("dry run: %+v, files left %d", c, up.n[alice])
		}
		cert, err := tool.Erase(ctx, g, alice, EraseOptions{})
		ok(t, err)
		if c := category(cert); c.Count != 2 || c.Status != Deleted || up.n[alice] != 0 {
			t.Errorf("erasure: %+v, files left %d", c, up.n[alice])
		}
		_, err = tool.AddHold(ctx, g, dave, "LIT-9", "lawsuit")
		ok(t, err)
		cert, err = tool.Erase(ctx, g, dave, EraseOptions{})
		ok(t, err)
		if c := category(cert); c.Count != 3 || c.Status != Held || c.Case != "LIT-9" || up.n[dave] != 3 {
			t.Errorf("held: %+v, files left %d", c, up.n[dave])
		}
	})
}

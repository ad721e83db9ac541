package storagetest

import (
	"reflect"
	"testing"
	"time"

	"kontor.im/kontor/core/storage"
)

// RunGDPR runs the conformance suite of storage.GDPRStore (legal holds,
// restrictions and the erasure helpers, the "gdpr" migration track). open
// follows the rules of Run.
func RunGDPR(t *testing.T, open func(t *testing.T) storage.Store) {
	h := &harness{open: open}
	groups := []struct {
		name string
		run  func(*testing.T, *harness)
	}{
		{"LegalHolds", testLegalHolds},
		{"Restrictions", testRestrictions},
		{"References", testGDPRReferences},
		{"ShredArchive", testShredArchive},
		{"ErasureTombstones", testErasureTombstones},
		{"RetireArchiveKeys", testRetireArchiveKeys},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			g.run(t, h)
		})
	}
}

func (h *harness) gdpr(t *testing.T) (storage.Store, storage.GDPRStore) {
	t.Helper()
	s := h.store(t)
	g, isG := s.(storage.GDPRStore)
	if !isG {
		t.Fatalf("%s store does not implement storage.GDPRStore", s.Backend())
	}
	return s, g
}

func testLegalHolds(t *testing.T, h *harness) {
	_, g := h.gdpr(t)
	ctx := t.Context()
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	id1, err := g.CreateLegalHold(ctx, storage.LegalHold{Subject: "alice@example.com", Case: "LIT-1", Reason: "suit", By: "dpo", Created: at})
	ok(t, err)
	id2, err := g.CreateLegalHold(ctx, storage.LegalHold{Subject: "room@conference.example.com", Case: "LIT-2", By: "dpo", Created: at})
	ok(t, err)
	if id2 <= id1 {
		t.Fatalf("ids %d, %d do not increase", id1, id2)
	}
	holds, err := g.LegalHolds(ctx, "alice@example.com", false)
	ok(t, err)
	want := storage.LegalHold{ID: id1, Subject: "alice@example.com", Case: "LIT-1", Reason: "suit", By: "dpo", Created: at}
	if len(holds) != 1 || !reflect.DeepEqual(holds[0], want) {
		t.Fatalf("LegalHolds = %+v, want %+v", holds, want)
	}
	ok(t, g.ReleaseLegalHold(ctx, id1, "dpo2", at.Add(time.Hour)))
	is(t, g.ReleaseLegalHold(ctx, id1, "dpo2", at.Add(time.Hour)), storage.ErrNotFound)
	is(t, g.ReleaseLegalHold(ctx, 999999, "dpo2", at), storage.ErrNotFound)
	if holds, err = g.LegalHolds(ctx, "alice@example.com", false); err != nil || len(holds) != 0 {
		t.Fatalf("active holds after release = %+v, %v", holds, err)
	}
	all, err := g.LegalHolds(ctx, "", true)
	ok(t, err)
	if len(all) != 2 || all[0].Released != at.Add(time.Hour) || all[0].ReleasedBy != "dpo2" || all[0].Active() || !all[1].Active() {
		t.Fatalf("all holds = %+v", all)
	}
}

func testRestrictions(t *testing.T, h *harness) {
	_, g := h.gdpr(t)
	ctx := t.Context()
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	r1 := storage.Restriction{Subject: "bob@example.com", Category: "archive:business_letter", Until: at.AddDate(6, 0, 0), Reason: "HGB 257", Created: at}
	r2 := storage.Restriction{Subject: "bob@example.com", Category: "archive", Case: "LIT-1", Created: at}
	ok(t, g.PutRestriction(ctx, r1))
	ok(t, g.PutRestriction(ctx, r2))
	ok(t, g.PutRestriction(ctx, r2)) // replacing is fine
	got, err := g.Restrictions(ctx, "bob@example.com")
	ok(t, err)
	if !reflect.DeepEqual(got, []storage.Restriction{r2, r1}) {
		t.Fatalf("Restrictions = %+v", got)
	}
	if got, _ := g.Restrictions(ctx, "carol@example.com"); len(got) != 0 {
		t.Fatalf("carol has restrictions: %+v", got)
	}
}

func testGDPRReferences(t *testing.T, h *harness) {
	s, g := h.gdpr(t)
	ctx := t.Context()
	alice := "alice@example.com"
	for _, owner := range []string{"carol@example.com", "bob@example.com"} {
		_, err := s.PutRosterItem(ctx, owner, storage.RosterItem{Contact: alice, Subscription: storage.SubBoth})
		ok(t, err)
	}
	ok(t, s.PutSubscriptionRequest(ctx, "dave@example.com", storage.SubscriptionRequest{From: alice, Stanza: []byte("<presence/>"), At: time.Now()}))
	items, reqs, err := g.RosterReferences(ctx, alice)
	ok(t, err)
	if !reflect.DeepEqual(items, []string{"bob@example.com", "carol@example.com"}) || !reflect.DeepEqual(reqs, []string{"dave@example.com"}) {
		t.Fatalf("RosterReferences = %q, %q", items, reqs)
	}
	ok(t, s.SetPrivate(ctx, alice, "{storage:bookmarks}storage", []byte("<storage xmlns='storage:bookmarks'/>")))
	ok(t, s.SetPrivate(ctx, alice, "{a:b}c", []byte("<c xmlns='a:b'/>")))
	keys, err := g.PrivateXMLKeys(ctx, alice)
	ok(t, err)
	if !reflect.DeepEqual(keys, []string{"{a:b}c", "{storage:bookmarks}storage"}) {
		t.Fatalf("PrivateXMLKeys = %q", keys)
	}
	n, err := g.DeleteLDAPLinksOf(ctx, alice)
	ok(t, err)
	if n != 0 {
		t.Fatalf("DeleteLDAPLinksOf without links = %d", n)
	}
	if ls, isLDAP := s.(storage.LDAPState); isLDAP {
		ok(t, ls.PutLDAPLinks(ctx, "default", []storage.LDAPLink{{StableID: "g1", JID: alice, DN: "uid=alice", Attrs: []byte("{}")}}))
		ok(t, ls.PutLDAPLinks(ctx, "second", []storage.LDAPLink{{StableID: "g0", JID: alice, DN: "uid=alice", Attrs: []byte("{}")}}))
		ids, err := g.LDAPStableIDsOf(ctx, alice)
		ok(t, err)
		if !reflect.DeepEqual(ids, []string{"g0", "g1"}) {
			t.Fatalf("LDAPStableIDsOf = %q", ids)
		}
		if ids, _ := g.LDAPStableIDsOf(ctx, "nobody@example.com"); len(ids) != 0 {
			t.Fatalf("LDAPStableIDsOf(nobody) = %q", ids)
		}
		n, err := g.DeleteLDAPLinksOf(ctx, alice)
		ok(t, err)
		_, lerr := ls.LDAPLinkByJID(ctx, "default", alice)
		if n != 2 {
			t.Fatalf("DeleteLDAPLinksOf = %d, want 2 (both sources)", n)
		}
		is(t, lerr, storage.ErrNotFound)
	}
}

func testShredArchive(t *testing.T, h *harness) {
	s, g := h.gdpr(t)
	as, isArchive := s.(storage.ArchiveStore)
	if !isArchive {
		t.Fatalf("%s store has no archive", s.Backend())
	}
	ctx := t.Context()
	alice, bob := "alice@example.com", "bob@example.com"
	keys := []storage.ArchiveKey{
		{ArchiveKeySlot: storage.ArchiveKeySlot{Owner: alice, Slice: 202603, Class: "standard"}, KEKID: "k", Wrapped: []byte("w1"), KeepUntil: storage.ArchiveForever},
		{ArchiveKeySlot: storage.ArchiveKeySlot{Owner: alice, Slice: 202603, Class: "business_letter"}, KEKID: "k", Wrapped: []byte("w2"), KeepUntil: storage.ArchiveForever},
		{ArchiveKeySlot: storage.ArchiveKeySlot{Owner: bob, Slice: 202603, Class: "standard"}, KEKID: "k", Wrapped: []byte("w3"), KeepUntil: storage.ArchiveForever},
	}
	ok(t, as.CreateArchiveKeys(ctx, keys))
	ak, err := g.ArchiveKeysOf(ctx, alice)
	ok(t, err)
	bk, err := g.ArchiveKeysOf(ctx, bob)
	ok(t, err)
	if len(ak) != 2 || len(bk) != 1 {
		t.Fatalf("ArchiveKeysOf: alice %d, bob %d", len(ak), len(bk))
	}
	at := time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC)
	var rows []storage.ArchiveRow
	for i := range 10 {
		k := ak[i%2]
		rows = append(rows, storage.ArchiveRow{Owner: alice, ID: [16]byte{byte(i + 1)}, Peer: bob, Time: at, Expires: storage.ArchiveForever, KeyID: k.ID, Sealed: []byte("x")})
	}
	rows = append(rows, storage.ArchiveRow{Owner: bob, ID: [16]byte{1}, Peer: alice, Time: at, Expires: storage.ArchiveForever, KeyID: bk[0].ID, Sealed: []byte("y")})
	ok(t, as.AppendArchive(ctx, rows, nil))

	// Bob's key id passed with alice as owner is not shredded.
	n, err := g.ShredArchiveKeys(ctx, alice, []int64{ak[0].ID, bk[0].ID})
	ok(t, err)
	if n != 1 {
		t.Fatalf("ShredArchiveKeys = %d, want 1", n)
	}
	total := 0
	for {
		n, err := g.DeleteUnkeyedArchive(ctx, alice, 2)
		ok(t, err)
		if n == 0 {
			break
		}
		if n > 2 {
			t.Fatalf("DeleteUnkeyedArchive deleted %d, limit 2", n)
		}
		total += n
	}
	if total != 5 {
		t.Fatalf("deleted %d unkeyed messages, want 5", total)
	}
	cnt, err := as.CountArchive(ctx, storage.ArchiveRowQuery{Owner: alice, MaxID: maxArchiveID}, 100)
	ok(t, err)
	if cnt != 5 {
		t.Fatalf("alice keeps %d messages, want the 5 of the business_letter key", cnt)
	}
	if cnt, _ := as.CountArchive(ctx, storage.ArchiveRowQuery{Owner: bob, MaxID: maxArchiveID}, 100); cnt != 1 {
		t.Fatalf("bob keeps %d messages, want 1", cnt)
	}

	// Art. 18: what is kept is restricted, and then matches no ordinary
	// query (nor a new message of the same owner's JID), only the DPO's.
	n, err = g.RestrictArchive(ctx, alice)
	ok(t, err)
	if n != 5 {
		t.Fatalf("RestrictArchive = %d, want 5", n)
	}
	if n, err := g.RestrictArchive(ctx, alice); err != nil || n != 0 {
		t.Fatalf("RestrictArchive again = %d, %v; want 0, nil", n, err)
	}
	later := storage.ArchiveRow{Owner: alice, ID: [16]byte{0x80}, Peer: bob, Time: at, Expires: storage.ArchiveForever, KeyID: ak[1].ID, Sealed: []byte("new")}
	ok(t, as.AppendArchive(ctx, []storage.ArchiveRow{later}, nil))
	all := storage.ArchiveRowQuery{Owner: alice, MaxID: maxArchiveID, Limit: 100}
	got, err := as.QueryArchive(ctx, all)
	ok(t, err)
	if len(got) != 1 || got[0].ID != later.ID || got[0].Restricted {
		t.Fatalf("ordinary query after restriction = %+v, want only the new unrestricted row", got)
	}
	if cnt, _ := as.CountArchive(ctx, all, 100); cnt != 1 {
		t.Fatalf("ordinary count after restriction = %d, want 1", cnt)
	}
	for _, q := range []storage.ArchiveRowQuery{
		{Owner: alice, MinID: [16]byte{1}, MaxID: [16]byte{1}, Limit: 1},
		{Owner: alice, Peer: bob, MaxID: maxArchiveID, Limit: 100, IDs: [][16]byte{{2}, {4}}},
	} {
		if got, _ := as.QueryArchive(ctx, q); len(got) != 0 {
			t.Fatalf("query %+v returned %d restricted rows", q, len(got))
		}
	}
	all.IncludeRestricted = true
	got, err = as.QueryArchive(ctx, all)
	ok(t, err)
	restricted := 0
	for _, r := range got {
		if r.Restricted {
			restricted++
		}
	}
	if len(got) != 6 || restricted != 5 {
		t.Fatalf("DPO query = %d rows, %d restricted; want 6, 5", len(got), restricted)
	}
	if cnt, _ := as.CountArchive(ctx, all, 100); cnt != 6 {
		t.Fatalf("DPO count = %d, want 6", cnt)
	}
	if cnt, _ := as.CountArchive(ctx, storage.ArchiveRowQuery{Owner: bob, MaxID: maxArchiveID}, 100); cnt != 1 {
		t.Fatalf("bob's messages restricted by alice's restriction: %d left, want 1", cnt)
	}
	ok(t, g.CompactAfterErasure(ctx))
}

var maxArchiveID = [16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

func testErasureTombstones(t *testing.T, h *harness) {
	ctx := t.Context()
	_, g := h.gdpr(t)
	at := time.Date(2026, 3, 5, 10, 0, 0, 0, time.UTC)
	ja, jb, sa := []byte("hash-of-alice"), []byte("hash-of-bob"), []byte("hash-of-guid-a")
	ok(t, g.PutErasureTombstone(ctx, storage.ErasureTombstone{JIDHash: ja, StableHash: sa, Job: "e-1", Created: at}))
	// The same erasure run again adds nothing.
	ok(t, g.PutErasureTombstone(ctx, storage.ErasureTombstone{JIDHash: ja, StableHash: sa, Job: "e-1", Created: at.Add(time.Minute)}))
	// A rerun without the directory link (already deleted) is a tombstone of its own.
	ok(t, g.PutErasureTombstone(ctx, storage.ErasureTombstone{JIDHash: ja, Job: "e-1", Created: at}))
	ok(t, g.PutErasureTombstone(ctx, storage.ErasureTombstone{JIDHash: jb, Job: "e-2", Created: at}))
	ts, err := g.ErasureTombstones(ctx, false)
	ok(t, err)
	if len(ts) != 3 || string(ts[0].JIDHash) != string(ja) || string(ts[0].StableHash) != string(sa) || ts[0].Job != "e-1" ||
		!ts[0].Created.Equal(at) || !ts[0].Active() || len(ts[1].StableHash) != 0 {
		t.Fatalf("tombstones = %+v", ts)
	}
	n, err := g.ReinstateErasureTombstones(ctx, ja, "dpo", at.Add(time.Hour))
	ok(t, err)
	if n != 2 {
		t.Fatalf("ReinstateErasureTombstones = %d, want 2", n)
	}
	if n, _ := g.ReinstateErasureTombstones(ctx, ja, "dpo", at.Add(2*time.Hour)); n != 0 {
		t.Fatalf("reinstating again = %d, want 0", n)
	}
	ts, err = g.ErasureTombstones(ctx, false)
	ok(t, err)
	if len(ts) != 1 || string(ts[0].JIDHash) != string(jb) {
		t.Fatalf("active tombstones after reinstating alice = %+v", ts)
	}
	all, err := g.ErasureTombstones(ctx, true)
	ok(t, err)
	if len(all) != 3 || all[0].Active() || all[0].ReinstatedBy != "dpo" || !all[0].Reinstated.Equal(at.Add(time.Hour)) {
		t.Fatalf("all tombstones = %+v", all)
	}
	// Erased again after being reinstated: a new active tombstone.
	ok(t, g.PutErasureTombstone(ctx, storage.ErasureTombstone{JIDHash: ja, StableHash: sa, Job: "e-3", Created: at.Add(3 * time.Hour)}))
	if ts, _ := g.ErasureTombstones(ctx, false); len(ts) != 2 || ts[1].Job != "e-3" {
		t.Fatalf("after a second erasure: %+v", ts)
	}
}

// testRetireArchiveKeys: retired keys still open what they sealed (by ID)
// but are no slot's key any more: the slot gets a new key, ArchiveKeysOf
// lists both (the old one marked), shredding the new one leaves the old,
// and retiring twice changes nothing.
func testRetireArchiveKeys(t *testing.T, h *harness) {
	s, g := h.gdpr(t)
	as, isArchive := s.(storage.ArchiveStore)
	if !isArchive {
		t.Fatalf("%s store has no archive", s.Backend())
	}
	ctx := t.Context()
	alice, bob := "alice@example.com", "bob@example.com"
	slot := storage.ArchiveKeySlot{Owner: alice, Slice: 202611, Class: "standard"}
	bobSlot := storage.ArchiveKeySlot{Owner: bob, Slice: 202611, Class: "standard"}
	ok(t, as.CreateArchiveKeys(ctx, []storage.ArchiveKey{
		{ArchiveKeySlot: slot, KEKID: "k", Wrapped: []byte("old"), KeepUntil: storage.ArchiveForever},
		{ArchiveKeySlot: bobSlot, KEKID: "k", Wrapped: []byte("bob"), KeepUntil: storage.ArchiveForever},
	}))
	old, err := as.ArchiveKeys(ctx, []storage.ArchiveKeySlot{slot})
	ok(t, err)
	if len(old) != 1 {
		t.Fatalf("ArchiveKeys = %d keys, want 1", len(old))
	}
	n, err := g.RetireArchiveKeys(ctx, alice)
	ok(t, err)
	if n != 1 {
		t.Fatalf("RetireArchiveKeys = %d, want 1 (bob's key is not alice's)", n)
	}
	if n, err := g.RetireArchiveKeys(ctx, alice); err != nil || n != 0 {
		t.Fatalf("retiring again = %d, %v; want 0", n, err)
	}
	if ks, err := as.ArchiveKeys(ctx, []storage.ArchiveKeySlot{slot}); err != nil || len(ks) != 0 {
		t.Fatalf("ArchiveKeys after retirement = %v, %v; want none", ks, err)
	}
	if ks, err := g.ArchiveKeysOf(ctx, alice); err != nil || len(ks) != 1 || !ks[0].Retired {
		t.Fatalf("ArchiveKeysOf after retirement = %+v, %v; want the key, marked retired", ks, err)
	}
	if ks, err := as.ArchiveKeysByID(ctx, []int64{old[0].ID}); err != nil || len(ks) != 1 || string(ks[0].Wrapped) != "old" {
		t.Fatalf("ArchiveKeysByID of the retired key = %v, %v; want it", ks, err)
	}
	// The slot gets a new key; creating again keeps it.
	for _, w := range []string{"new", "newer"} {
		ok(t, as.CreateArchiveKeys(ctx, []storage.ArchiveKey{{ArchiveKeySlot: slot, KEKID: "k", Wrapped: []byte(w), KeepUntil: storage.ArchiveForever}}))
	}
	cur, err := as.ArchiveKeys(ctx, []storage.ArchiveKeySlot{slot})
	ok(t, err)
	if len(cur) != 1 || string(cur[0].Wrapped) != "new" || cur[0].ID == old[0].ID {
		t.Fatalf("the slot's key after retirement = %+v; want a new one (wrapped \"new\")", cur)
	}
	if ks, err := g.ArchiveKeysOf(ctx, alice); err != nil || len(ks) != 2 || !ks[0].Retired || ks[1].Retired || ks[1].ID != cur[0].ID {
		t.Fatalf("ArchiveKeysOf = %+v, %v; want the retired key and the new one", ks, err)
	}
	// Shredding the new account's keys leaves the retired one.
	if n, err := g.ShredArchiveKeys(ctx, alice, []int64{cur[0].ID}); err != nil || n != 1 {
		t.Fatalf("ShredArchiveKeys = %d, %v", n, err)
	}
	if ks, err := as.ArchiveKeysByID(ctx, []int64{old[0].ID, cur[0].ID}); err != nil || len(ks) != 1 || ks[0].ID != old[0].ID {
		t.Fatalf("after shredding the new key: %+v, %v; want the retired one alone", ks, err)
	}
	if ks, err := as.ArchiveKeys(ctx, []storage.ArchiveKeySlot{bobSlot}); err != nil || len(ks) != 1 {
		t.Fatalf("bob's key: %v, %v", ks, err)
	}
}

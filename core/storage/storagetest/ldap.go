package storagetest

import (
	"context"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kontor.im/kontor/core/storage"
)

// RunLDAP runs the conformance suite of storage.LDAPState, the state of
// directory sync. open follows the rules of Run: a new, empty database on
// the first call for a given t, the same database on later calls.
func RunLDAP(t *testing.T, open func(t *testing.T) storage.Store) {
	h := &harness{open: open}
	groups := []struct {
		name string
		run  func(*testing.T, *harness)
	}{
		{"Links", testLDAPLinks},
		{"LinkConflicts", testLDAPLinkConflicts},
		{"Groups", testLDAPGroups},
		{"RosterItems", testLDAPRosterItems},
		{"Marks", testLDAPMarks},
		{"Lease", testLDAPLease},
		{"LeaseConcurrent", testLDAPLeaseConcurrent},
		{"Sources", testLDAPSources},
		{"Reopen", testLDAPReopen},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			g.run(t, h)
		})
	}
}

// ldapState opens a store for t and returns it as LDAPState.
func (h *harness) ldapState(t *testing.T) storage.LDAPState {
	t.Helper()
	s := h.store(t)
	st, ok := s.(storage.LDAPState)
	if !ok {
		t.Fatalf("%s store does not implement storage.LDAPState", s.Backend())
	}
	return st
}

const src = "default"

func testLDAPLinks(t *testing.T, h *harness) {
	st := h.ldapState(t)
	ctx := t.Context()
	gone := time.Date(2025, 3, 4, 5, 6, 7, 891234567, time.FixedZone("CET", 3600))
	a := storage.LDAPLink{StableID: "b3d9c1a0-0000-4000-8000-000000000001", JID: alice,
		DN: "uid=alice,ou=People,dc=example,dc=com", Attrs: []byte(`{"display_name":"Alice"}`)}
	z := storage.LDAPLink{StableID: "0f000000-0000-4000-8000-000000000002", JID: zoe,
		DN: "CN=Zoë Ärger\\, Dr.,OU=Büro,DC=example,DC=com", Disabled: true, GoneSince: gone}

	if links, err := st.LDAPLinks(ctx, src); err != nil || len(links) != 0 {
		t.Fatalf("LDAPLinks on an empty store = %v, %v; want none", links, err)
	}
	_, err := st.LDAPLinkByJID(ctx, src, alice)
	is(t, err, storage.ErrNotFound)

	before := time.Now()
	ok(t, st.PutLDAPLinks(ctx, src, []storage.LDAPLink{a, z}))
	after := time.Now()
	links, err := st.LDAPLinks(ctx, src)
	ok(t, err)
	if len(links) != 2 || links[0].StableID != z.StableID || links[1].StableID != a.StableID {
		t.Fatalf("LDAPLinks = %+v, want zoe then alice (ordered by stable id)", links)
	}
	tests := []struct {
		name string
		got  storage.LDAPLink
		want storage.LDAPLink
	}{
		{"present and enabled", links[1], a},
		{"gone and disabled, non-ASCII DN", links[0], z},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, want := tt.got, tt.want
			recent(t, "Updated", got.Updated, before, after)
			if want.GoneSince.IsZero() {
				if !got.GoneSince.IsZero() {
					t.Errorf("GoneSince = %v, want zero", got.GoneSince)
				}
			} else {
				sameTime(t, "GoneSince", got.GoneSince, want.GoneSince.UTC())
			}
			if got.JID != want.JID || got.DN != want.DN || got.Disabled != want.Disabled ||
				string(got.Attrs) != string(want.Attrs) {
				t.Errorf("link = %+v, want %+v", got, want)
			}
			byJID, err := st.LDAPLinkByJID(ctx, src, want.JID)
			ok(t, err)
			if byJID.StableID != want.StableID {
				t.Errorf("LDAPLinkByJID(%s).StableID = %q, want %q", want.JID, byJID.StableID, want.StableID)
			}
		})
	}

	// A rename: same stable id, new DN and attributes; back in the
	// directory (GoneSince cleared).
	z2 := z
	z2.DN, z2.Attrs, z2.GoneSince, z2.Disabled = "CN=Zoë Neu,OU=Büro,DC=example,DC=com", []byte("{}"), time.Time{}, false
	ok(t, st.PutLDAPLinks(ctx, src, []storage.LDAPLink{z2}))
	got, err := st.LDAPLinkByJID(ctx, src, zoe)
	ok(t, err)
	if got.DN != z2.DN || !got.GoneSince.IsZero() || got.Disabled || string(got.Attrs) != "{}" {
		t.Errorf("after update: %+v, want %+v", got, z2)
	}

	ok(t, st.DeleteLDAPLink(ctx, src, z.StableID))
	ok(t, st.DeleteLDAPLink(ctx, src, z.StableID)) // absent: no error
	_, err = st.LDAPLinkByJID(ctx, src, zoe)
	is(t, err, storage.ErrNotFound)
	links, err = st.LDAPLinks(ctx, src)
	ok(t, err)
	if len(links) != 1 || links[0].JID != alice {
		t.Errorf("after delete: %+v, want only alice", links)
	}
	ok(t, st.PutLDAPLinks(ctx, src, nil)) // an empty batch is fine
}

func testLDAPLinkConflicts(t *testing.T, h *harness) {
	st := h.ldapState(t)
	ctx := t.Context()
	ok(t, st.PutLDAPLinks(ctx, src, []storage.LDAPLink{{StableID: "id-1", JID: alice, DN: "uid=a"}}))
	tests := []struct {
		name  string
		batch []storage.LDAPLink
	}{
		{"another entry takes a linked JID", []storage.LDAPLink{{StableID: "id-2", JID: alice, DN: "uid=a2"}}},
		{"conflict after a good link in the same batch", []storage.LDAPLink{
			{StableID: "id-3", JID: bob, DN: "uid=b"}, {StableID: "id-4", JID: alice, DN: "uid=a4"}}},
		{"two entries of one batch want one JID", []storage.LDAPLink{
			{StableID: "id-5", JID: carol, DN: "uid=c"}, {StableID: "id-6", JID: carol, DN: "uid=c2"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is(t, st.PutLDAPLinks(ctx, src, tt.batch), storage.ErrExists)
			links, err := st.LDAPLinks(ctx, src)
			ok(t, err)
			if len(links) != 1 || links[0].StableID != "id-1" || links[0].DN != "uid=a" {
				t.Errorf("after a refused batch: %+v, want the one link unchanged (nothing written)", links)
			}
		})
	}
}

func testLDAPGroups(t *testing.T, h *harness) {
	st := h.ldapState(t)
	ctx := t.Context()
	g1 := storage.LDAPGroup{StableID: "g-1", DN: "cn=Sales,ou=Groups,dc=example,dc=com", Name: "Sales",
		Members: []string{"uid=bob,ou=People,dc=example,dc=com", "cn=Sales EU,ou=Groups,dc=example,dc=com",
			"uid=alice,ou=People,dc=example,dc=com"}, Attrs: []byte("x")}
	g2 := storage.LDAPGroup{StableID: "g-0", DN: "cn=Leer,ou=Groups,dc=example,dc=com", Name: "Leer (ä)"}
	ok(t, st.PutLDAPGroups(ctx, src, []storage.LDAPGroup{g1, g2}))
	groups, err := st.LDAPGroups(ctx, src)
	ok(t, err)
	want := []storage.LDAPGroup{{StableID: "g-0", DN: g2.DN, Name: g2.Name, Attrs: []byte{}}, g1}
	if len(groups) != 2 {
		t.Fatalf("LDAPGroups = %+v, want 2 groups", groups)
	}
	for i := range want {
		if groups[i].Attrs == nil {
			groups[i].Attrs = []byte{}
		}
		if !reflect.DeepEqual(groups[i], want[i]) {
			t.Errorf("group %d = %+v, want %+v (members in order, none as nil)", i, groups[i], want[i])
		}
	}
	g1.Members = g1.Members[:1]
	g1.Name = "Sales & Marketing"
	ok(t, st.PutLDAPGroups(ctx, src, []storage.LDAPGroup{g1}))
	ok(t, st.DeleteLDAPGroup(ctx, src, "g-0"))
	ok(t, st.DeleteLDAPGroup(ctx, src, "g-0"))
	groups, err = st.LDAPGroups(ctx, src)
	ok(t, err)
	if len(groups) != 1 || groups[0].Name != g1.Name || !reflect.DeepEqual(groups[0].Members, g1.Members) {
		t.Errorf("after update and delete: %+v, want %+v", groups, g1)
	}
}

func testLDAPRosterItems(t *testing.T, h *harness) {
	st := h.ldapState(t)
	ctx := t.Context()
	items := []storage.LDAPRosterItem{
		{Contact: wei, Name: "张伟", Groups: []string{"Engineering", "研发"}},
		{Contact: bob, Name: "Bob"},
		{Contact: carol, Name: "Carol", Groups: []string{"Sales"}},
	}
	ok(t, st.PutLDAPRosterItems(ctx, src, alice, items))
	ok(t, st.PutLDAPRosterItems(ctx, src, zoe, []storage.LDAPRosterItem{{Contact: alice, Name: "Alice", Groups: []string{"Sales"}}}))
	ok(t, st.PutLDAPRosterItems(ctx, src, zoe, nil))
	ok(t, st.DeleteLDAPRosterItems(ctx, src, zoe, nil))
	got, err := st.LDAPRosterItems(ctx, src, alice)
	ok(t, err)
	want := []storage.LDAPRosterItem{items[1], items[2], items[0]} // by contact
	if !reflect.DeepEqual(got, want) {
		t.Errorf("LDAPRosterItems = %+v, want %+v", got, want)
	}
	all, err := st.AllLDAPRosterItems(ctx, src)
	ok(t, err)
	if len(all) != 2 || !reflect.DeepEqual(all[alice], want) || len(all[zoe]) != 1 || all[zoe][0].Contact != alice {
		t.Errorf("AllLDAPRosterItems = %v, want alice's three and zoe's one", all)
	}
	items[2].Groups = []string{"Sales", "Support"}
	ok(t, st.PutLDAPRosterItems(ctx, src, alice, items[2:3]))
	ok(t, st.DeleteLDAPRosterItems(ctx, src, alice, []string{bob, "nobody@example.com"}))
	ok(t, st.DeleteLDAPRosterItems(ctx, src, alice, []string{bob}))
	got, err = st.LDAPRosterItems(ctx, src, alice)
	ok(t, err)
	if !reflect.DeepEqual(got, []storage.LDAPRosterItem{items[2], items[0]}) {
		t.Errorf("after update and delete: %+v", got)
	}
	if got, err := st.LDAPRosterItems(ctx, src, bob); err != nil || got != nil {
		t.Errorf("LDAPRosterItems(nobody) = %v, %v; want nil, nil", got, err)
	}
}

func testLDAPMarks(t *testing.T, h *harness) {
	st := h.ldapState(t)
	ctx := t.Context()
	m, err := st.LDAPMarks(ctx, src)
	ok(t, err)
	if len(m) != 0 {
		t.Fatalf("LDAPMarks on an empty store = %v", m)
	}
	steps := []struct {
		name string
		set  map[string]string
		want map[string]string
	}{
		{"set two", map[string]string{"usn": "12345", "server": "CN=DC1"},
			map[string]string{"usn": "12345", "server": "CN=DC1"}},
		{"replace one, keep the other", map[string]string{"usn": "12399"},
			map[string]string{"usn": "12399", "server": "CN=DC1"}},
		{"empty deletes", map[string]string{"server": "", "last_full": "2025-01-01T00:00:00Z"},
			map[string]string{"usn": "12399", "last_full": "2025-01-01T00:00:00Z"}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			ok(t, st.SetLDAPMarks(ctx, src, s.set))
			got, err := st.LDAPMarks(ctx, src)
			ok(t, err)
			if !reflect.DeepEqual(got, s.want) {
				t.Errorf("LDAPMarks = %v, want %v", got, s.want)
			}
		})
	}
}

func testLDAPLease(t *testing.T, h *harness) {
	st := h.ldapState(t)
	ctx := t.Context()
	steps := []struct {
		name   string
		do     func() (bool, error)
		want   bool
		before time.Duration // sleep first
	}{
		{"first holder takes it", func() (bool, error) { return st.AcquireLDAPLease(ctx, src, "node-a", time.Second) }, true, 0},
		{"holder renews it", func() (bool, error) { return st.AcquireLDAPLease(ctx, src, "node-a", time.Second) }, true, 0},
		{"another holder is refused", func() (bool, error) { return st.AcquireLDAPLease(ctx, src, "node-b", time.Minute) }, false, 0},
		{"another holder takes an expired lease", func() (bool, error) { return st.AcquireLDAPLease(ctx, src, "node-b", time.Minute) }, true, 1200 * time.Millisecond},
		{"the old holder is refused now", func() (bool, error) { return st.AcquireLDAPLease(ctx, src, "node-a", time.Minute) }, false, 0},
		{"release by a non-holder changes nothing", func() (bool, error) {
			if err := st.ReleaseLDAPLease(ctx, src, "node-a"); err != nil {
				return false, err
			}
			return st.AcquireLDAPLease(ctx, src, "node-a", time.Minute)
		}, false, 0},
		{"after release anyone takes it", func() (bool, error) {
			if err := st.ReleaseLDAPLease(ctx, src, "node-b"); err != nil {
				return false, err
			}
			return st.AcquireLDAPLease(ctx, src, "node-a", time.Minute)
		}, true, 0},
	}
	for _, s := range steps {
		time.Sleep(s.before)
		got, err := s.do()
		ok(t, err)
		if got != s.want {
			t.Errorf("%s: got %v, want %v", s.name, got, s.want)
		}
	}
}

func testLDAPLeaseConcurrent(t *testing.T, h *harness) {
	st := h.ldapState(t)
	var (
		wg  sync.WaitGroup
		won atomic.Int32
	)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := st.AcquireLDAPLease(ctx, src, "node-"+string(rune('a'+i)), time.Minute)
			if err != nil {
				t.Errorf("AcquireLDAPLease: %v", err)
			}
			if got {
				won.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := won.Load(); n != 1 {
		t.Errorf("%d of 8 concurrent holders got the lease, want exactly 1", n)
	}
}

func testLDAPSources(t *testing.T, h *harness) {
	st := h.ldapState(t)
	ctx := t.Context()
	// The same stable id and JID in two sources do not collide.
	ok(t, st.PutLDAPLinks(ctx, "corp", []storage.LDAPLink{{StableID: "x", JID: alice, DN: "uid=a,dc=corp"}}))
	ok(t, st.PutLDAPLinks(ctx, "lab", []storage.LDAPLink{{StableID: "x", JID: alice, DN: "uid=a,dc=lab"}}))
	ok(t, st.SetLDAPMarks(ctx, "corp", map[string]string{"usn": "1"}))
	ok(t, st.PutLDAPGroups(ctx, "corp", []storage.LDAPGroup{{StableID: "g", DN: "cn=g", Name: "G"}}))
	ok(t, st.PutLDAPRosterItems(ctx, "corp", alice, []storage.LDAPRosterItem{{Contact: bob}}))
	got, err := st.AcquireLDAPLease(ctx, "corp", "n1", time.Minute)
	ok(t, err)
	got2, err := st.AcquireLDAPLease(ctx, "lab", "n2", time.Minute)
	ok(t, err)
	if !got || !got2 {
		t.Errorf("leases of two sources: %v, %v; want both taken", got, got2)
	}
	l, err := st.LDAPLinkByJID(ctx, "lab", alice)
	ok(t, err)
	if l.DN != "uid=a,dc=lab" {
		t.Errorf("lab link DN = %q", l.DN)
	}
	m, err := st.LDAPMarks(ctx, "lab")
	ok(t, err)
	groups, err := st.LDAPGroups(ctx, "lab")
	ok(t, err)
	items, err := st.LDAPRosterItems(ctx, "lab", alice)
	ok(t, err)
	if len(m) != 0 || len(groups) != 0 || len(items) != 0 {
		t.Errorf("lab sees corp's state: marks %v, groups %v, items %v", m, groups, items)
	}
}

func testLDAPReopen(t *testing.T, h *harness) {
	st := h.ldapState(t)
	ctx := t.Context()
	ok(t, st.PutLDAPLinks(ctx, src, []storage.LDAPLink{{StableID: "s", JID: bob, DN: "uid=bob", Disabled: true}}))
	ok(t, st.SetLDAPMarks(ctx, src, map[string]string{"csn": "20250101000000.000000Z#000000#000#000000"}))
	st2 := h.ldapState(t)
	l, err := st2.LDAPLinkByJID(ctx, src, bob)
	ok(t, err)
	m, err := st2.LDAPMarks(ctx, src)
	ok(t, err)
	if !l.Disabled || m["csn"] == "" {
		t.Errorf("after reopening: link %+v, marks %v", l, m)
	}
}

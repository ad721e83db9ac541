package ldapsync

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"kontor.im/kontor/core/directory"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/ldapsync/slapdtest"
)

var backends = []string{"sqlite", "postgres"}

// opsOf returns "op jid" for every change of a report whose op is in ops
// (all when none), sorted.
func opsOf(r *Report, ops ...Op) []string {
	var out []string
	for _, c := range r.Changes {
		if len(ops) == 0 || slices.Contains(ops, c.Op) {
			out = append(out, string(c.Op)+" "+c.JID)
		}
	}
	sort.Strings(out)
	return out
}

func rosterOf(t *testing.T, st Store, owner string) map[string]storage.RosterItem {
	t.Helper()
	items, _, err := st.RosterItems(context.Background(), owner)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]storage.RosterItem{}
	for _, it := range items {
		m[it.Contact] = it
	}
	return m
}

func mustAccount(t *testing.T, st Store, j string) storage.Account {
	t.Helper()
	a, err := st.Account(context.Background(), j)
	if err != nil {
		t.Fatalf("Account(%s): %v", j, err)
	}
	return a
}

func jidOf(uid string) string { return uid + "@" + testDomain }

// TestSyncLifecycle follows a directory through a full sync, changes,
// renames, moves, a lock, an unlock, a deletion and a new hire, an
// incremental sync that reads only what changed, and the grace period
// that ends in deletion; on both storage backends.
func TestSyncLifecycle(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			testSyncLifecycle(t, backend)
		})
	}
}

func testSyncLifecycle(t *testing.T, backend string) {
	users := treeUsers(t)
	e := newEnv(t, backend, treeLDIF(users), nil)
	ctx := context.Background()
	const n = 50
	if len(users) != n {
		t.Fatalf("the tree has %d users, want %d", len(users), n)
	}

	// --- The first sync is full and creates everyone.
	rep := e.sync(t, SyncOptions{Reason: "test"})
	if rep.Mode != Full || rep.Read != n || rep.Created != n {
		t.Fatalf("first sync: mode %s, read %d, created %d; want full, %d, %d\n%s", rep.Mode, rep.Read, rep.Created, n, n, reportText(rep))
	}
	if len(rep.Errors) != 0 {
		t.Fatalf("first sync errors: %v", rep.Errors)
	}
	if len(rep.Cycles) != 1 || !slices.Equal(rep.Cycles[0], []string{"Cycle A", "Cycle B"}) {
		t.Errorf("cycles = %v, want [[Cycle A Cycle B]]", rep.Cycles)
	}
	accounts, err := e.store.ListAccounts(ctx, testDomain)
	if err != nil || len(accounts) != n {
		t.Fatalf("ListAccounts = %d, %v; want %d", len(accounts), err, n)
	}
	for _, a := range accounts {
		if len(a.Credentials) != 0 {
			t.Errorf("%s has SCRAM credentials; directory accounts must have none", a.JID)
		}
	}
	t.Run("first sync", func(t *testing.T) {
		tests := []struct {
			name  string
			check func(t *testing.T)
		}{
			{"the disabled user's account is disabled", func(t *testing.T) {
				if !mustAccount(t, e.store, jidOf("dora")).Disabled {
					t.Error("dora is enabled")
				}
				if mustAccount(t, e.store, jidOf("s01")).Disabled {
					t.Error("s01 is disabled")
				}
			}},
			{"a non-ASCII name maps to a JID and a vCard with the photo", func(t *testing.T) {
				v, err := e.store.VCard(ctx, "jürgen.groß@"+testDomain)
				if err != nil {
					t.Fatal(err)
				}
				for _, want := range []string{"<FN>Jürgen Groß</FN>", "<TYPE>image/jpeg</TYPE>", "<BINVAL>", "<ORGUNIT>Engineering</ORGUNIT>", "<NUMBER>+49 30 5555</NUMBER>"} {
					if !strings.Contains(string(v), want) {
						t.Errorf("vCard lacks %s:\n%s", want, v)
					}
				}
			}},
			{"nested groups and a DN spelled differently become shared groups", func(t *testing.T) {
				r := rosterOf(t, e.store, jidOf("s01"))
				jane, ok := r[jidOf("jane.doe")]
				if !ok || !slices.Equal(jane.Groups, []string{"Everyone", "Sales", "Sales EU"}) || jane.Subscription != storage.SubBoth || jane.Name != "Jane Doe" {
					t.Errorf("s01's item for Jane = %+v (present %v), want groups [Everyone Sales Sales EU], both, \"Jane Doe\"", jane, ok)
				}
				if it := r[jidOf("e05")]; !slices.Equal(it.Groups, []string{"Everyone"}) {
					t.Errorf("s01's item for e05 = %+v, want only Everyone", it)
				}
				if _, ok := r[jidOf("dora")]; ok {
					t.Error("the disabled user is in s01's roster")
				}
				if _, ok := r[jidOf("gustav")]; ok {
					t.Error("the guest (in no group) is in s01's roster")
				}
				if len(r) != 47 { // 50 - s01 - dora - gustav
					t.Errorf("s01 has %d roster items, want 47", len(r))
				}
			}},
			{"a cycle of groups shares its members", func(t *testing.T) {
				if it := rosterOf(t, e.store, jidOf("p01"))[jidOf("p02")]; !slices.Contains(it.Groups, "Cycle A") || !slices.Contains(it.Groups, "Cycle B") {
					t.Errorf("p01's item for p02 = %+v, want Cycle A and Cycle B among its groups", it)
				}
			}},
			{"the policy engine gets the directory", func(t *testing.T) {
				snap := e.sink.last(t)
				if len(snap.People) != n || len(snap.Groups) != 8 {
					t.Fatalf("snapshot has %d people, %d groups; want %d, 8", len(snap.People), len(snap.Groups), n)
				}
				g := snap.People[jidOf("gustav")]
				if g.Kind != directory.Guest || !slices.Equal(g.Sponsors, []string{jidOf("m01")}) {
					t.Errorf("gustav = %+v, want a guest sponsored by m01", g)
				}
				if !snap.People[jidOf("dora")].Disabled {
					t.Error("dora is not flagged disabled in the snapshot")
				}
				var everyone directory.Group
				for _, gr := range snap.Groups {
					if gr.Name == "Everyone" {
						everyone = gr
					}
				}
				if len(everyone.Members) != 49 { // all but gustav; dora (disabled) included; backup is outside the base DN
					t.Errorf("Everyone has %d members, want 49", len(everyone.Members))
				}
				if p := snap.People[jidOf("jane.doe")]; len(p.Groups) != 3 {
					t.Errorf("jane's groups = %v, want 3 (Sales EU, Sales, Everyone)", p.Groups)
				}
			}},
			{"the audit trail has the summary", func(t *testing.T) {
				entries := e.audit.all()
				if len(entries) != 1 || entries[0].Action != "ldap.sync" || entries[0].Details["created"] != "50" ||
					entries[0].Details["mode"] != "full" || entries[0].Reason != "test" || entries[0].Details["duration_ms"] == "" {
					t.Errorf("audit entries = %+v", entries)
				}
			}},
		}
		for _, tt := range tests {
			t.Run(tt.name, tt.check)
		}
	})

	// --- Nothing changed: an incremental sync reads nothing (but the
	// scan of ids) and changes nothing.
	rep = e.sync(t, SyncOptions{})
	if rep.Mode != Incremental || rep.Read != 0 || len(rep.Changes) != 0 || len(rep.Errors) != 0 {
		t.Fatalf("idle incremental sync: mode %s, read %d, changes %d, errors %v", rep.Mode, rep.Read, len(rep.Changes), rep.Errors)
	}
	snaps := e.sink.count()

	// --- Changes in the directory.
	admin := e.slapd.Admin(t)
	byUID := map[string]testUser{}
	for _, u := range users {
		byUID[u.uid] = u
	}
	modify := func(dn string, f func(*ldap.ModifyRequest)) {
		t.Helper()
		req := ldap.NewModifyRequest(dn, nil)
		f(req)
		if err := admin.Modify(req); err != nil {
			t.Fatalf("modify %s: %v", dn, err)
		}
	}
	modify(byUID["e01"].dn(), func(r *ldap.ModifyRequest) { r.Replace("displayName", []string{"Eva Neuname"}) })
	// A move to another OU: the DN changes, the account stays.
	if err := admin.ModifyDN(ldap.NewModifyDNRequest(byUID["s02"].dn(), "uid=s02", true, "ou=Support,"+peopleDN)); err != nil {
		t.Fatal(err)
	}
	// A rename of the username (the RDN): the account keeps its address.
	if err := admin.ModifyDN(ldap.NewModifyDNRequest(byUID["s03"].dn(), "uid=s03x", true, "")); err != nil {
		t.Fatal(err)
	}
	modify(byUID["m02"].dn(), func(r *ldap.ModifyRequest) { r.Replace("pwdAccountLockedTime", []string{"000001010000Z"}) })
	modify(byUID["dora"].dn(), func(r *ldap.ModifyRequest) { r.Delete("pwdAccountLockedTime", nil) })
	if err := admin.Del(ldap.NewDelRequest(byUID["p06"].dn(), nil)); err != nil {
		t.Fatal(err)
	}
	add := ldap.NewAddRequest("uid=e21,ou=Engineering,"+peopleDN, nil)
	for k, v := range map[string]string{"objectClass": "inetOrgPerson", "uid": "e21", "cn": "E21 Person", "sn": "Person",
		"displayName": "Neue Kollegin", "userPassword": password("e21")} {
		add.Attribute(k, []string{v})
	}
	if err := admin.Add(add); err != nil {
		t.Fatal(err)
	}
	modify("cn=Engineering,"+groupsDN, func(r *ldap.ModifyRequest) { r.Add("member", []string{"uid=e21,ou=Engineering," + peopleDN}) })
	modify(byUID["jürgen.groß"].dn(), func(r *ldap.ModifyRequest) { r.Replace("jpegPhoto", []string{string(testPhoto(t, 10))}) })

	wantOps := []string{
		"create " + jidOf("e21"),
		"disable " + jidOf("m02"),
		"enable " + jidOf("dora"),
		"retire " + jidOf("p06"),
		"update " + jidOf("e01"),
		"update " + jidOf("jürgen.groß"),
		"update " + jidOf("s02"),
		"update " + jidOf("s03"),
	}
	// --- A dry run plans exactly what the sync then does, and changes
	// nothing.
	marks, _ := e.store.LDAPMarks(ctx, Source)
	dry := e.sync(t, SyncOptions{DryRun: true})
	if got := opsOf(dry, OpCreate, OpUpdate, OpDisable, OpEnable, OpRetire, OpDelete, OpRestore); !slices.Equal(got, wantOps) {
		t.Errorf("dry run plans\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(wantOps, "\n  "))
	}
	if _, err := e.store.Account(ctx, jidOf("e21")); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("after a dry run e21 exists (or %v)", err)
	}
	if mustAccount(t, e.store, jidOf("m02")).Disabled {
		t.Error("a dry run disabled m02")
	}
	if after, _ := e.store.LDAPMarks(ctx, Source); fmt.Sprint(after) != fmt.Sprint(marks) {
		t.Errorf("a dry run moved the marks: %v → %v", marks, after)
	}
	var text strings.Builder
	if _, err := dry.WriteTo(&text); err != nil || !strings.Contains(text.String(), "dry run: nothing was changed") ||
		!strings.Contains(text.String(), `display name "Engineering e01 Person" → "Eva Neuname"`) {
		t.Errorf("dry run report:\n%s", text.String())
	}

	rep = e.sync(t, SyncOptions{})
	if got := opsOf(rep, OpCreate, OpUpdate, OpDisable, OpEnable, OpRetire, OpDelete, OpRestore); !slices.Equal(got, wantOps) {
		t.Errorf("incremental sync made\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(wantOps, "\n  "))
	}
	if len(rep.Changes) != len(dry.Changes) {
		t.Errorf("the sync made %d changes, the dry run planned %d", len(rep.Changes), len(dry.Changes))
	}
	// Only the changed entries were read: e01, s02, s03, m02, dora, e21,
	// jürgen.
	if rep.Mode != Incremental || rep.Read != 7 || len(rep.Errors) != 0 {
		t.Errorf("incremental sync: mode %s, read %d, errors %v; want incremental, 7 read, none\n%s", rep.Mode, rep.Read, rep.Errors, reportText(rep))
	}
	t.Run("incremental sync", func(t *testing.T) {
		tests := []struct {
			name  string
			check func(t *testing.T)
		}{
			{"a moved user keeps the account, with the new DN", func(t *testing.T) {
				l, err := e.store.LDAPLinkByJID(ctx, Source, jidOf("s02"))
				if err != nil || !strings.Contains(l.DN, "ou=Support") {
					t.Errorf("link of s02 = %+v, %v; want the DN in ou=Support", l, err)
				}
				if it := rosterOf(t, e.store, jidOf("s01"))[jidOf("s02")]; !slices.Contains(it.Groups, "Sales") {
					t.Errorf("s01's item for s02 after the move = %+v, want still in Sales (refint renamed the member)", it)
				}
			}},
			{"a renamed username keeps its address", func(t *testing.T) {
				if _, err := e.store.Account(ctx, jidOf("s03x")); !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("an account s03x appeared: %v", err)
				}
				if mustAccount(t, e.store, jidOf("s03")).Disabled {
					t.Error("s03 was disabled by the rename")
				}
				if !slices.ContainsFunc(rep.Warnings, func(w string) bool { return strings.Contains(w, `"s03x"`) }) {
					t.Errorf("no warning about the username change: %v", rep.Warnings)
				}
			}},
			{"a locked user is disabled and leaves the shared groups", func(t *testing.T) {
				if !mustAccount(t, e.store, jidOf("m02")).Disabled {
					t.Error("m02 is enabled")
				}
				if _, ok := rosterOf(t, e.store, jidOf("m01"))[jidOf("m02")]; ok {
					t.Error("m02 is still in m01's roster")
				}
			}},
			{"an unlocked user is enabled and joins the shared groups", func(t *testing.T) {
				if mustAccount(t, e.store, jidOf("dora")).Disabled {
					t.Error("dora is disabled")
				}
				if it := rosterOf(t, e.store, jidOf("s01"))[jidOf("dora")]; !slices.Equal(it.Groups, []string{"Everyone", "Sales"}) {
					t.Errorf("s01's item for dora = %+v", it)
				}
			}},
			{"a deleted entry is retired: disabled now, deleted later", func(t *testing.T) {
				a := mustAccount(t, e.store, jidOf("p06"))
				l, err := e.store.LDAPLinkByJID(ctx, Source, jidOf("p06"))
				if !a.Disabled || err != nil || l.GoneSince.IsZero() {
					t.Errorf("p06: disabled %v, link %+v, %v", a.Disabled, l, err)
				}
				if _, ok := rosterOf(t, e.store, jidOf("p01"))[jidOf("p06")]; ok {
					t.Error("p06 is still in p01's roster")
				}
			}},
			{"a new hire gets an account and the shared groups", func(t *testing.T) {
				if mustAccount(t, e.store, jidOf("e21")).Disabled {
					t.Error("e21 is disabled")
				}
				if it := rosterOf(t, e.store, jidOf("e02"))[jidOf("e21")]; it.Name != "Neue Kollegin" || !slices.Equal(it.Groups, []string{"Engineering", "Everyone"}) {
					t.Errorf("e02's item for e21 = %+v", it)
				}
			}},
			{"a changed display name reaches the rosters", func(t *testing.T) {
				if it := rosterOf(t, e.store, jidOf("e02"))[jidOf("e01")]; it.Name != "Eva Neuname" {
					t.Errorf("e02's item for e01 = %+v, want the new name", it)
				}
			}},
			{"a changed photo reaches the vCard", func(t *testing.T) {
				v, _ := e.store.VCard(ctx, jidOf("jürgen.groß"))
				if !strings.Contains(string(v), base64Of(testPhoto(t, 10))) {
					t.Error("the vCard has the old photo")
				}
			}},
			{"the policy engine gets the new directory", func(t *testing.T) {
				if e.sink.count() != snaps+1 {
					t.Errorf("%d snapshots after the changes, want %d", e.sink.count(), snaps+1)
				}
				snap := e.sink.last(t)
				if _, ok := snap.People[jidOf("p06")]; ok {
					t.Error("p06 is still in the snapshot")
				}
				if !snap.People[jidOf("m02")].Disabled || snap.People[jidOf("e01")].DisplayName != "Eva Neuname" {
					t.Errorf("m02 = %+v, e01 = %+v", snap.People[jidOf("m02")], snap.People[jidOf("e01")])
				}
			}},
		}
		for _, tt := range tests {
			t.Run(tt.name, tt.check)
		}
	})

	// --- A user edits a shared item: the sync leaves the user's part.
	_, err = e.store.PutRosterItem(ctx, jidOf("e03"), storage.RosterItem{Contact: jidOf("e04"), Name: "Mein Kollege",
		Subscription: storage.SubBoth, Groups: []string{"Engineering", "Everyone", "Freunde"}})
	if err != nil {
		t.Fatal(err)
	}
	modify("cn=Engineering,"+groupsDN, func(r *ldap.ModifyRequest) { r.Delete("member", []string{byUID["e04"].dn()}) })
	rep = e.sync(t, SyncOptions{})
	// e04 was in Everyone only through Engineering: both shared groups go,
	// the user's own group and name stay.
	if it := rosterOf(t, e.store, jidOf("e03"))[jidOf("e04")]; it.Name != "Mein Kollege" || !slices.Equal(it.Groups, []string{"Freunde"}) {
		t.Errorf("e03's own item for e04 after e04 left Engineering = %+v; want the user's name and group kept, the shared ones gone", it)
	}
	if _, ok := rosterOf(t, e.store, jidOf("e05"))[jidOf("e04")]; ok {
		t.Error("e04 is still in e05's roster")
	}

	// --- The grace period passes: the retired account is deleted.
	e.clock.advance(2 * time.Hour)
	rep = e.sync(t, SyncOptions{})
	if got := opsOf(rep, OpDelete); !slices.Equal(got, []string{"delete " + jidOf("p06")}) {
		t.Errorf("after the grace period: %v, want p06 deleted", got)
	}
	if _, err := e.store.Account(ctx, jidOf("p06")); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("p06 still exists: %v", err)
	}
	if _, err := e.store.LDAPLinkByJID(ctx, Source, jidOf("p06")); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("p06 is still linked: %v", err)
	}
	if items, _ := e.store.LDAPRosterItems(ctx, Source, jidOf("p06")); len(items) != 0 {
		t.Errorf("the sync still records %d roster items of p06", len(items))
	}

	// --- A full sync now finds nothing to change but one thing that no
	// incremental sync can see on OpenLDAP: refint took p06 out of the
	// Support group without changing the group's entryCSN (or
	// modifyTimestamp). p06 was retired all the same, from the scan of ids.
	rep = e.sync(t, SyncOptions{Full: true})
	if got := opsOf(rep); rep.Mode != Full || len(rep.Errors) != 0 || !slices.Equal(got, []string{"group update "}) ||
		!strings.Contains(rep.Changes[0].Detail, `"Support": members +0 −1`) {
		t.Errorf("full sync after all that: %v, errors %v\n%s", got, rep.Errors, reportText(rep))
	}
	if got := len(e.audit.all()); got != 6 {
		t.Errorf("%d audit entries, want one per sync that was not a dry run (6)", got)
	}
}

func reportText(r *Report) string {
	var b strings.Builder
	_, _ = r.WriteTo(&b)
	return b.String()
}

func base64Of(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// TestSyncLease: two syncers on one store (two processes, two nodes) never
// sync at once.
func TestSyncLease(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite", treeLDIF(treeUsers(t)), func(c *Config) { c.Groups.Roster = false })
	other, err := NewSyncer(Options{Config: e.cfg, Domain: testDomain, Store: e.store, Client: e.client, Log: e.syncer.log})
	if err != nil {
		t.Fatal(err)
	}
	ok, err := e.store.AcquireLDAPLease(context.Background(), Source, other.holder, time.Minute)
	if err != nil || !ok {
		t.Fatalf("taking the lease: %v %v", ok, err)
	}
	if _, err := e.syncer.Sync(context.Background(), SyncOptions{}); !errors.Is(err, ErrBusy) {
		t.Errorf("Sync while another holds the lease: %v, want ErrBusy", err)
	}
	if rep, err := e.syncer.Sync(context.Background(), SyncOptions{DryRun: true}); err != nil || rep.Created != 50 {
		t.Errorf("a dry run needs no lease: %v, %v", rep, err)
	}
	if err := e.store.ReleaseLDAPLease(context.Background(), Source, other.holder); err != nil {
		t.Fatal(err)
	}
	if rep := e.sync(t, SyncOptions{}); rep.Created != 50 {
		t.Errorf("after release: created %d", rep.Created)
	}
}

// TestGoneGuard: a sync that would retire too many accounts at once (a
// wrong base DN or filter) retires none.
func TestGoneGuard(t *testing.T) {
	t.Parallel()
	users := treeUsers(t)
	e := newEnv(t, "sqlite", treeLDIF(users), func(c *Config) { c.Groups.Roster = false })
	e.sync(t, SyncOptions{})
	admin := e.slapd.Admin(t)
	for _, u := range users[:15] { // the Sales OU: 30% of everyone
		if err := admin.Del(ldap.NewDelRequest(u.dn(), nil)); err != nil {
			t.Fatal(err)
		}
	}
	rep := e.sync(t, SyncOptions{Full: true})
	if rep.Retired != 0 || len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0].Err.Error(), "max_gone_percent") {
		t.Errorf("retired %d, errors %v; want none retired and one error", rep.Retired, rep.Errors)
	}
	if mustAccount(t, e.store, jidOf("s01")).Disabled {
		t.Error("s01 was disabled")
	}
}

// TestPaging syncs a directory larger than the server's size
// limit for unpaged searches, in pages.
func TestPaging(t *testing.T) {
	t.Parallel()
	const n = slapdtest.SizeLimit*2 + 37
	var seed strings.Builder
	entryLDIF(&seed, corpDN, [2]string{"objectClass", "organizationalUnit"}, [2]string{"ou", "Corp"})
	entryLDIF(&seed, peopleDN, [2]string{"objectClass", "organizationalUnit"}, [2]string{"ou", "People"})
	entryLDIF(&seed, groupsDN, [2]string{"objectClass", "organizationalUnit"}, [2]string{"ou", "Groups"})
	for i := range n {
		uid := fmt.Sprintf("u%05d", i)
		entryLDIF(&seed, "uid="+uid+","+peopleDN, [2]string{"objectClass", "inetOrgPerson"}, [2]string{"uid", uid},
			[2]string{"cn", uid}, [2]string{"sn", uid})
	}
	tests := []struct {
		name     string
		pageSize int
	}{
		{"pages of 1000 (Active Directory's maximum)", 1000},
		{"pages of 7", 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "sqlite", []byte(seed.String()), func(c *Config) { c.PageSize = tt.pageSize })
			var pages int
			rep, err := e.syncer.Sync(context.Background(), SyncOptions{Progress: func(p Progress) {
				if p.Phase == "users" {
					pages++
				}
			}})
			if err != nil || rep.Created != n || rep.Read != n {
				t.Fatalf("created %d, read %d, %v; want %d", rep.Created, rep.Read, err, n)
			}
			if want := (n + tt.pageSize - 1) / tt.pageSize; pages != want {
				t.Errorf("%d pages of users, want %d", pages, want)
			}
		})
	}
}

// Package storagetest is the conformance suite that every storage.Store
// backend must pass: one suite, run against SQLite and PostgreSQL alike, with
// real databases and no mocks.
//
// A backend's tests call Run with a function that opens a store:
//
//	func TestConformance(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storage.Store { ... })
//	}
//
// The suite checks every method and every contract written in the doc
// comments of core/storage, plus what both backends promise beyond them
// (times come back in UTC, truncated to microseconds; a zero Created, Stamp
// or At means now; an empty Domain is taken from the JID; an empty
// Subscription means none; no groups read back as nil).
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"kontor.im/kontor/core/storage"
)

// Run runs the conformance suite. open must return a new Store on t's
// database: empty on the first call for a given t, and the same database
// again on later calls with that t (a new Store, as a restarted server would
// open), which is how the suite checks that data survives a reopen. The suite
// closes every store it opens. Subtests run in parallel, each on its own
// database.
func Run(t *testing.T, open func(t *testing.T) storage.Store) {
	h := &harness{open: open}
	groups := []struct {
		name string
		run  func(*testing.T, *harness)
	}{
		{"Accounts", testAccounts},
		{"AccountChanges", testAccountChanges},
		{"PruneAccountChanges", testPruneAccountChanges},
		{"AccountChangesWatcher", testAccountChangesWatcher},
		{"DeleteAccount", testDeleteAccount},
		{"Roster", testRoster},
		{"SubscriptionRequests", testSubscriptionRequests},
		{"RosterWithRequests", testRosterWithRequests},
		{"Offline", testOffline},
		{"VCards", testVCards},
		{"PrivateXML", testPrivateXML},
		{"LastActivity", testLastActivity},
		{"Store", testStore},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			g.run(t, h)
		})
	}
}

type harness struct {
	open func(*testing.T) storage.Store
}

// store opens a store on a new database for t and closes it when t ends.
func (h *harness) store(t *testing.T) storage.Store {
	t.Helper()
	s := h.open(t)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// JIDs used throughout: ASCII and not, to check that stores compare bytes.
const (
	alice = "alice@example.com"
	bob   = "bob@example.com"
	carol = "carol@example.org"
	zoe   = "zoë@exämple.org"
	wei   = "张伟@例子.中国"
)

// ok fails the test now if err is not nil.
func ok(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

// is fails the test now unless errors.Is(err, target).
func is(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want one matching %v", err, target)
	}
}

// sameTime fails unless got is want truncated to microseconds, in UTC.
func sameTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want.Truncate(time.Microsecond)) {
		t.Errorf("%s = %v, want %v", what, got, want.Truncate(time.Microsecond))
	}
	if got.Location() != time.UTC {
		t.Errorf("%s is in %v, want UTC", what, got.Location())
	}
}

// recent fails unless got lies in [before, after] at microsecond precision.
func recent(t *testing.T, what string, got, before, after time.Time) {
	t.Helper()
	if got.Before(before.Truncate(time.Microsecond)) || got.After(after) {
		t.Errorf("%s = %v, want between %v and %v", what, got, before, after)
	}
	if got.Location() != time.UTC {
		t.Errorf("%s is in %v, want UTC", what, got.Location())
	}
}

var (
	berlin  = time.FixedZone("CET", 3600)
	created = time.Date(2024, 2, 29, 13, 14, 15, 123456789, berlin)
)

func credentials() []storage.SCRAMCredential {
	return []storage.SCRAMCredential{
		{Hash: "SHA-256", Salt: []byte("salt-256\x00\xff"), Iterations: 4096,
			StoredKey: bytes.Repeat([]byte{0xA5}, 32), ServerKey: bytes.Repeat([]byte{0x5A}, 32)},
		{Hash: "SHA-1", Salt: []byte("salt-1"), Iterations: 10000,
			StoredKey: bytes.Repeat([]byte{1}, 20), ServerKey: bytes.Repeat([]byte{2}, 20)},
	}
}

func checkAccount(t *testing.T, got, want storage.Account) {
	t.Helper()
	if got.JID != want.JID || got.Domain != want.Domain || got.Disabled != want.Disabled {
		t.Errorf("account = {%q %q disabled=%v}, want {%q %q disabled=%v}",
			got.JID, got.Domain, got.Disabled, want.JID, want.Domain, want.Disabled)
	}
	sameTime(t, "Created", got.Created, want.Created)
	if len(got.Credentials) != len(want.Credentials) ||
		(len(want.Credentials) > 0 && !reflect.DeepEqual(got.Credentials, want.Credentials)) {
		t.Errorf("credentials = %+v, want %+v", got.Credentials, want.Credentials)
	}
}

func testAccounts(t *testing.T, h *harness) {
	t.Run("CreateAndGet", func(t *testing.T) {
		s := h.store(t)
		ctx := t.Context()
		accounts := []storage.Account{
			{JID: alice, Domain: "example.com", Created: created, Credentials: credentials()},
			{JID: zoe, Domain: "exämple.org", Disabled: true, Created: created.Add(time.Hour)},
			{JID: wei, Domain: "例子.中国", Created: created.Add(-time.Hour), Credentials: credentials()[1:]},
		}
		for _, a := range accounts {
			ok(t, s.CreateAccount(ctx, a))
		}
		for _, want := range accounts {
			got, err := s.Account(ctx, want.JID)
			ok(t, err)
			checkAccount(t, got, want)
		}
	})

	t.Run("CreateExisting", func(t *testing.T) {
		s := h.store(t)
		ctx := t.Context()
		want := storage.Account{JID: alice, Domain: "example.com", Created: created, Credentials: credentials()}
		ok(t, s.CreateAccount(ctx, want))
		err := s.CreateAccount(ctx, storage.Account{JID: alice, Domain: "example.com", Disabled: true})
		is(t, err, storage.ErrExists)
		got, err := s.Account(ctx, alice)
		ok(t, err)
		checkAccount(t, got, want) // unchanged
	})

	t.Run("Defaults", func(t *testing.T) {
		s := h.store(t)
		ctx := t.Context()
		before := time.Now()
		ok(t, s.CreateAccount(ctx, storage.Account{JID: carol}))
		after := time.Now()
		got, err := s.Account(ctx, carol)
		ok(t, err)
		if got.Domain != "example.org" {
			t.Errorf("Domain = %q, want it taken from the JID: example.org", got.Domain)
		}
		recent(t, "Created", got.Created, before, after)
		if got.Disabled || len(got.Credentials) != 0 {
			t.Errorf("account = %+v, want enabled and without credentials", got)
		}
	})

	t.Run("DuplicateCredentialHash", func(t *testing.T) {
		s := h.store(t)
		ctx := t.Context()
		c := credentials()
		c[1].Hash = c[0].Hash
		if err := s.CreateAccount(ctx, storage.Account{JID: alice, Credentials: c}); err == nil {
			t.Fatal("CreateAccount with two credentials for one hash succeeded")
		}
		_, err := s.Account(ctx, alice)
		is(t, err, storage.ErrNotFound)
	})

	t.Run("UnknownAccount", func(t *testing.T) {
		s := h.store(t)
		ctx := t.Context()
		ok(t, s.CreateAccount(ctx, storage.Account{JID: alice}))
		tests := []struct {
			name string
			call func() error
		}{
			{"Account", func() error { _, err := s.Account(ctx, bob); return err }},
			{"SetCredentials", func() error { return s.SetCredentials(ctx, bob, credentials()) }},
			{"SetDisabled", func() error { return s.SetDisabled(ctx, bob, true) }},
			{"DeleteAccount", func() error { return s.DeleteAccount(ctx, bob) }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) { is(t, tt.call(), storage.ErrNotFound) })
		}
	})

	t.Run("SetCredentials", func(t *testing.T) {
		s := h.store(t)
		ctx := t.Context()
		ok(t, s.CreateAccount(ctx, storage.Account{JID: alice, Created: created, Credentials: credentials()}))
		tests := []struct {
			name  string
			creds []storage.SCRAMCredential
		}{
			{"fewer", credentials()[:1]},
			{"other order", []storage.SCRAMCredential{credentials()[1], credentials()[0]}},
			{"new values", []storage.SCRAMCredential{{Hash: "SHA-256", Salt: []byte("new"), Iterations: 1,
				StoredKey: []byte("sk"), ServerKey: []byte("vk")}}},
			{"none", nil},
			{"both again", credentials()},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				ok(t, s.SetCredentials(ctx, alice, tt.creds))
				got, err := s.Account(ctx, alice)
				ok(t, err)
				checkAccount(t, got, storage.Account{JID: alice, Domain: "example.com", Created: created, Credentials: tt.creds})
			})
		}
	})

	t.Run("AddCredential", func(t *testing.T) {
		s := h.store(t)
		ctx := t.Context()
		sha1Only := credentials()[1:]
		ok(t, s.CreateAccount(ctx, storage.Account{JID: alice, Created: created, Credentials: sha1Only}))
		seq, err := s.LastAccountChange(ctx)
		ok(t, err)
		added, err := s.AddCredential(ctx, alice, credentials()[0])
		ok(t, err)
		if !added {
			t.Fatal("AddCredential of a missing hash = false")
		}
		got, err := s.Account(ctx, alice)
		ok(t, err)
		checkAccount(t, got, storage.Account{JID: alice, Domain: "example.com", Created: created,
			Credentials: []storage.SCRAMCredential{credentials()[1], credentials()[0]}})
		if now, err := s.LastAccountChange(ctx); err != nil || now != seq {
			t.Errorf("AddCredential logged an account change (%d → %d, %v): it is no password change", seq, now, err)
		}
		// A hash the account has already (a password change came first)
		// is left alone.
		other := credentials()[0]
		other.Salt = []byte("other")
		added, err = s.AddCredential(ctx, alice, other)
		ok(t, err)
		if added {
			t.Error("AddCredential replaced an existing credential")
		}
		got, err = s.Account(ctx, alice)
		ok(t, err)
		checkAccount(t, got, storage.Account{JID: alice, Domain: "example.com", Created: created,
			Credentials: []storage.SCRAMCredential{credentials()[1], credentials()[0]}})
		_, err = s.AddCredential(ctx, "nobody@example.com", credentials()[0])
		is(t, err, storage.ErrNotFound)
	})

	t.Run("SetDisabled", func(t *testing.T) {
		s := h.store(t)
		ctx := t.Context()
		ok(t, s.CreateAccount(ctx, storage.Account{JID: alice}))
		ok(t, s.CreateAccount(ctx, storage.Account{JID: bob}))
		for _, disabled := range []bool{true, true, false, false, true} {
			ok(t, s.SetDisabled(ctx, alice, disabled))
			got, err := s.Account(ctx, alice)
			ok(t, err)
			if got.Disabled != disabled {
				t.Errorf("after SetDisabled(%v): Disabled = %v", disabled, got.Disabled)
			}
		}
		other, err := s.Account(ctx, bob)
		ok(t, err)
		if other.Disabled {
			t.Error("SetDisabled(alice) disabled bob too")
		}
	})

	t.Run("List", func(t *testing.T) {
		s := h.store(t)
		ctx := t.Context()
		jids := []string{"zed@example.com", "émile@example.com", bob, alice, carol, zoe, wei, "example.com"}
		for i, j := range jids {
			a := storage.Account{JID: j, Created: created}
			if i%2 == 0 {
				a.Credentials = credentials()
			}
			ok(t, s.CreateAccount(ctx, a))
		}
		list := func(domain string) []string {
			t.Helper()
			accts, err := s.ListAccounts(ctx, domain)
			ok(t, err)
			var got []string
			for _, a := range accts {
				got = append(got, a.JID)
				if want := map[bool]int{true: 2, false: 0}[indexOf(jids, a.JID)%2 == 0]; len(a.Credentials) != want {
					t.Errorf("ListAccounts: %s has %d credentials, want %d", a.JID, len(a.Credentials), want)
				}
			}
			return got
		}
		all := append([]string(nil), jids...)
		sort.Strings(all) // bytewise, as the stores must order
		tests := []struct {
			domain string
			want   []string
		}{
			{"", all},
			{"example.com", []string{alice, bob, "example.com", "zed@example.com", "émile@example.com"}},
			{"example.org", []string{carol}},
			{"exämple.org", []string{zoe}},
			{"例子.中国", []string{wei}},
			{"nowhere.example", nil},
		}
		for _, tt := range tests {
			t.Run(tt.domain, func(t *testing.T) {
				if got := list(tt.domain); !reflect.DeepEqual(got, tt.want) {
					t.Errorf("ListAccounts(%q) = %q, want %q", tt.domain, got, tt.want)
				}
			})
		}
	})
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func testAccountChanges(t *testing.T, h *harness) {
	s := h.store(t)
	ctx := t.Context()

	last, err := s.LastAccountChange(ctx)
	ok(t, err)
	if last != 0 {
		t.Errorf("LastAccountChange on an empty log = %d, want 0", last)
	}
	changes, err := s.AccountChanges(ctx, 0, 10)
	ok(t, err)
	if len(changes) != 0 {
		t.Errorf("AccountChanges on an empty log = %v", changes)
	}

	before := time.Now()
	ok(t, s.CreateAccount(ctx, storage.Account{JID: alice}))
	ok(t, s.CreateAccount(ctx, storage.Account{JID: zoe}))
	ok(t, s.SetDisabled(ctx, alice, true))
	ok(t, s.SetDisabled(ctx, alice, false))
	ok(t, s.SetCredentials(ctx, zoe, credentials()))
	ok(t, s.DeleteAccount(ctx, zoe))
	// Failed mutations log nothing.
	is(t, s.CreateAccount(ctx, storage.Account{JID: alice}), storage.ErrExists)
	is(t, s.SetDisabled(ctx, zoe, true), storage.ErrNotFound)
	is(t, s.SetCredentials(ctx, zoe, nil), storage.ErrNotFound)
	is(t, s.DeleteAccount(ctx, zoe), storage.ErrNotFound)
	after := time.Now()

	want := []struct {
		jid  string
		kind storage.AccountChangeKind
	}{
		{alice, storage.AccountCreated},
		{zoe, storage.AccountCreated},
		{alice, storage.AccountDisabled},
		{alice, storage.AccountEnabled},
		{zoe, storage.AccountCredentials},
		{zoe, storage.AccountDeleted},
	}
	all, err := s.AccountChanges(ctx, 0, 0)
	ok(t, err)
	if len(all) != len(want) {
		t.Fatalf("AccountChanges(0, 0) returned %d changes, want %d: %+v", len(all), len(want), all)
	}
	for i, c := range all {
		if c.JID != want[i].jid || c.Kind != want[i].kind {
			t.Errorf("change %d = %s %s, want %s %s", i, c.JID, c.Kind, want[i].jid, want[i].kind)
		}
		if i > 0 && c.Seq <= all[i-1].Seq {
			t.Errorf("change %d: Seq %d after %d, want strictly increasing", i, c.Seq, all[i-1].Seq)
		}
		recent(t, fmt.Sprintf("change %d At", i), c.At, before, after)
	}
	last, err = s.LastAccountChange(ctx)
	ok(t, err)
	if last != all[len(all)-1].Seq {
		t.Errorf("LastAccountChange = %d, want %d", last, all[len(all)-1].Seq)
	}

	tests := []struct {
		name  string
		after int64
		limit int
		want  []storage.AccountChange
	}{
		{"first page", 0, 2, all[:2]},
		{"next page", all[1].Seq, 2, all[2:4]},
		{"last page", all[3].Seq, 2, all[4:]},
		{"past the end", last, 2, nil},
		{"no limit", all[2].Seq, 0, all[3:]},
		{"negative limit", all[2].Seq, -1, all[3:]},
		{"limit beyond", 0, 100, all},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.AccountChanges(ctx, tt.after, tt.limit)
			ok(t, err)
			if len(got) != len(tt.want) {
				t.Fatalf("AccountChanges(%d, %d) = %d changes, want %d", tt.after, tt.limit, len(got), len(tt.want))
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("change %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func testPruneAccountChanges(t *testing.T, h *harness) {
	s := h.store(t)
	ctx := t.Context()
	ok(t, s.CreateAccount(ctx, storage.Account{JID: alice}))
	ok(t, s.CreateAccount(ctx, storage.Account{JID: zoe}))
	time.Sleep(5 * time.Millisecond)
	cut := time.Now()
	time.Sleep(5 * time.Millisecond)
	ok(t, s.DeleteAccount(ctx, zoe))
	last, err := s.LastAccountChange(ctx)
	ok(t, err)

	n, err := s.PruneAccountChanges(ctx, cut)
	ok(t, err)
	if n != 2 {
		t.Errorf("pruned %d changes, want the 2 before the cut", n)
	}
	left, err := s.AccountChanges(ctx, 0, 0)
	ok(t, err)
	if len(left) != 1 || left[0].JID != zoe || left[0].Kind != storage.AccountDeleted || left[0].Seq != last {
		t.Errorf("left %+v, want zoe's deletion (seq %d)", left, last)
	}
	// Pruning everything does not make Seq start again: a watcher that
	// saw seq 'last' sees what comes next.
	_, err = s.PruneAccountChanges(ctx, time.Now().Add(time.Second))
	ok(t, err)
	ok(t, s.SetDisabled(ctx, alice, true))
	next, err := s.AccountChanges(ctx, last, 0)
	ok(t, err)
	if len(next) != 1 || next[0].JID != alice || next[0].Seq <= last {
		t.Errorf("after pruning all: %+v, want alice's change with a Seq above %d", next, last)
	}
}

// testAccountChangesWatcher follows the change log the way a running server
// does (changes after the last Seq seen) while accounts change concurrently,
// and must not miss any: a change may not become visible after one with a
// higher Seq.
func testAccountChangesWatcher(t *testing.T, h *harness) {
	s := h.store(t)
	ctx := t.Context()
	const writers, perWriter = 6, 15
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				jid := fmt.Sprintf("w%d-%d@example.com", w, i)
				if err := s.CreateAccount(ctx, storage.Account{JID: jid}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	var (
		after    int64
		seen     = map[string]bool{}
		finished bool
	)
	for !finished {
		select {
		case <-done:
			finished = true // one more read after the writers are done
		default:
		}
		changes, err := s.AccountChanges(ctx, after, 7)
		ok(t, err)
		for _, c := range changes {
			if c.Seq <= after {
				t.Fatalf("change %d returned after %d", c.Seq, after)
			}
			seen[c.JID] = true
			after = c.Seq
		}
		if len(changes) == 7 {
			finished = false // more to read
		}
	}
	close(errs)
	for err := range errs {
		ok(t, err)
	}
	if len(seen) != writers*perWriter {
		t.Errorf("the watcher saw %d creations, want %d", len(seen), writers*perWriter)
	}
}

func testDeleteAccount(t *testing.T, h *harness) {
	s := h.store(t)
	ctx := t.Context()
	at := time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)

	// alice and bob know each other, and each owns one of everything.
	for _, owner := range []string{alice, bob} {
		other := map[string]string{alice: bob, bob: alice}[owner]
		ok(t, s.CreateAccount(ctx, storage.Account{JID: owner, Credentials: credentials()}))
		_, err := s.PutRosterItem(ctx, owner, storage.RosterItem{Contact: other, Subscription: storage.SubBoth, Groups: []string{"Friends"}})
		ok(t, err)
		_, err = s.PutRosterItem(ctx, owner, storage.RosterItem{Contact: carol, Subscription: storage.SubTo})
		ok(t, err)
		ok(t, s.PutSubscriptionRequest(ctx, owner, storage.SubscriptionRequest{From: carol, Stanza: []byte("<presence/>"), At: at}))
		ok(t, s.PutSubscriptionRequest(ctx, owner, storage.SubscriptionRequest{From: other, Stanza: []byte("<presence/>"), At: at}))
		_, err = s.StoreOffline(ctx, storage.OfflineMessage{Owner: owner, From: other, Stamp: at, Sealed: []byte("sealed")}, 0)
		ok(t, err)
		ok(t, s.SetVCard(ctx, owner, []byte("<vCard/>")))
		ok(t, s.SetPrivate(ctx, owner, "{storage:bookmarks}storage", []byte("<storage/>")))
		ok(t, s.SetPrivate(ctx, owner, "{x}y", []byte("<y/>")))
		ok(t, s.SetLastActivity(ctx, owner, at, "gone"))
	}

	ok(t, s.DeleteAccount(ctx, alice))

	t.Run("AliceIsGone", func(t *testing.T) {
		_, err := s.Account(ctx, alice)
		is(t, err, storage.ErrNotFound)
		items, ver, err := s.RosterItems(ctx, alice)
		ok(t, err)
		if len(items) != 0 || ver != 0 {
			t.Errorf("RosterItems = %v, version %d; want none, 0", items, ver)
		}
		_, err = s.RosterItem(ctx, alice, bob)
		is(t, err, storage.ErrNotFound)
		reqs, err := s.SubscriptionRequests(ctx, alice)
		ok(t, err)
		if len(reqs) != 0 {
			t.Errorf("SubscriptionRequests = %v, want none", reqs)
		}
		n, err := s.OfflineCount(ctx, alice)
		ok(t, err)
		msgs, err := s.OfflineMessages(ctx, alice, 0)
		ok(t, err)
		if n != 0 || len(msgs) != 0 {
			t.Errorf("OfflineCount = %d, OfflineMessages = %v; want none", n, msgs)
		}
		_, err = s.VCard(ctx, alice)
		is(t, err, storage.ErrNotFound)
		_, err = s.Private(ctx, alice, "{storage:bookmarks}storage")
		is(t, err, storage.ErrNotFound)
		_, err = s.Private(ctx, alice, "{x}y")
		is(t, err, storage.ErrNotFound)
		_, _, err = s.LastActivity(ctx, alice)
		is(t, err, storage.ErrNotFound)
	})

	t.Run("BobKeepsEverything", func(t *testing.T) {
		a, err := s.Account(ctx, bob)
		ok(t, err)
		if len(a.Credentials) != 2 {
			t.Errorf("bob has %d credentials, want 2", len(a.Credentials))
		}
		// bob's roster item for alice stays, as for a remote contact.
		item, err := s.RosterItem(ctx, bob, alice)
		ok(t, err)
		if item.Subscription != storage.SubBoth || !reflect.DeepEqual(item.Groups, []string{"Friends"}) {
			t.Errorf("bob's item for alice = %+v", item)
		}
		items, ver, err := s.RosterItems(ctx, bob)
		ok(t, err)
		if len(items) != 2 || ver != 2 {
			t.Errorf("bob's roster: %d items, version %d; want 2, 2", len(items), ver)
		}
		reqs, err := s.SubscriptionRequests(ctx, bob)
		ok(t, err)
		if len(reqs) != 2 {
			t.Errorf("bob has %d subscription requests, want 2 (also alice's)", len(reqs))
		}
		msgs, err := s.OfflineMessages(ctx, bob, 0)
		ok(t, err)
		if len(msgs) != 1 || msgs[0].From != alice {
			t.Errorf("bob's offline messages = %+v, want the one from alice", msgs)
		}
		_, err = s.VCard(ctx, bob)
		ok(t, err)
		_, err = s.Private(ctx, bob, "{x}y")
		ok(t, err)
		_, _, err = s.LastActivity(ctx, bob)
		ok(t, err)
	})

	t.Run("Logged", func(t *testing.T) {
		last, err := s.LastAccountChange(ctx)
		ok(t, err)
		changes, err := s.AccountChanges(ctx, last-1, 0)
		ok(t, err)
		if len(changes) != 1 || changes[0].JID != alice || changes[0].Kind != storage.AccountDeleted {
			t.Errorf("last change = %+v, want alice deleted", changes)
		}
	})

	t.Run("Recreate", func(t *testing.T) {
		ok(t, s.CreateAccount(ctx, storage.Account{JID: alice}))
		a, err := s.Account(ctx, alice)
		ok(t, err)
		if len(a.Credentials) != 0 {
			t.Errorf("recreated account has the old credentials: %+v", a.Credentials)
		}
		ver, err := s.RosterVersion(ctx, alice)
		ok(t, err)
		if ver != 0 {
			t.Errorf("recreated account's roster version = %d, want 0", ver)
		}
	})
}

func testRoster(t *testing.T, h *harness) {
	t.Run("Empty", func(t *testing.T) {
		s := h.store(t)
		ctx := t.Context()
		items, ver, err := s.RosterItems(ctx, alice)
		ok(t, err)
		if len(items) != 0 || ver != 0 {
			t.Errorf("RosterItems = %v, %d; want none, 0", items, ver)
		}
		ver, err = s.RosterVersion(ctx, alice)
		ok(t, err)
		if ver != 0 {
			t.Errorf("RosterVersion = %d, want 0", ver)
		}
		_, err = s.RosterItem(ctx, alice, bob)
		is(t, err, storage.ErrNotFound)
		_, err = s.DeleteRosterItem(ctx, alice, bob)
		is(t, err, storage.ErrNotFound)
		ver, err = s.RosterVersion(ctx, alice)
		ok(t, err)
		if ver != 0 {
			t.Errorf("RosterVersion after a failed delete = %d, want 0", ver)
		}
	})

	t.Run("PutAndGet", func(t *testing.T) {
		s := h.store(t)
		ctx := t.Context()
		items := []storage.RosterItem{
			{Contact: zoe, Name: "Zoë 🦊", Subscription: storage.SubBoth, Groups: []string{"Zeta", "alpha", "Ärzte", "家人"}},
			{Contact: bob, Name: "Bob", Subscription: storage.SubTo, AskOut: true, Groups: []string{"Work"}},
			{Contact: wei, Name: "张伟", Subscription: storage.SubFrom},
			{Contact: carol, Subscription: storage.SubNone, AskOut: true},
			{Contact: "émile@example.com", Subscription: storage.SubNone, Groups: []string{"b", "a", "b "}},
			{Contact: "conference.example.com"},
		}
		for _, it := range items {
			_, err := s.PutRosterItem(ctx, alice, it)
			ok(t, err)
		}
		want := append([]storage.RosterItem(nil), items...)
		want[5].Subscription = storage.SubNone // empty means none
		sort.Slice(want, func(i, j int) bool { return want[i].Contact < want[j].Contact })

		got, ver, err := s.RosterItems(ctx, alice)
		ok(t, err)
		if ver != int64(len(items)) {
			t.Errorf("version = %d, want %d", ver, len(items))
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("RosterItems =\n%+v\nwant (ordered by contact, bytewise)\n%+v", got, want)
		}
		for _, w := range want {
			g, err := s.RosterItem(ctx, alice, w.Contact)
			ok(t, err)
			if !reflect.DeepEqual(g, w) {
				t.Errorf("RosterItem(%s) = %+v, want %+v", w.Contact, g, w)
			}
		}
		// Another owner's roster is separate.
		other, ver, err := s.RosterItems(ctx, bob)
		ok(t, err)
		if len(other) != 0 || ver != 0 {
			t.Errorf("bob's roster = %v, version %d; want empty", other, ver)
		}
	})

	t.Run("Versions", func(t *testing.T) {
		s := h.store(t)
		ctx := t.Context()
		steps := []struct {
			name    string
			do      func() (int64, error)
			wantErr error
			want    int64
		}{
			{"put bob", func() (int64, error) {
				return s.PutRosterItem(ctx, alice, storage.RosterItem{Contact: bob, Groups: []string{"a", "b"}})
			}, nil, 1},
			{"put carol", func() (int64, error) { return s.PutRosterItem(ctx, alice, storage.RosterItem{Contact: carol}) }, nil, 2},
			{"replace bob", func() (int64, error) {
				return s.PutRosterItem(ctx, alice, storage.RosterItem{Contact: bob, Name: "B", Subscription: storage.SubBoth})
			}, nil, 3},
			{"put unchanged", func() (int64, error) {
				return s.PutRosterItem(ctx, alice, storage.RosterItem{Contact: bob, Name: "B", Subscription: storage.SubBoth})
			}, nil, 4},
			{"delete carol", func() (int64, error) { return s.DeleteRosterItem(ctx, alice, carol) }, nil, 5},
			{"delete carol again", func() (int64, error) { return s.DeleteRosterItem(ctx, alice, carol) }, storage.ErrNotFound, 5},
			{"delete a stranger", func() (int64, error) { return s.DeleteRosterItem(ctx, alice, zoe) }, storage.ErrNotFound, 5},
			{"delete bob", func() (int64, error) { return s.DeleteRosterItem(ctx, alice, bob) }, nil, 6},
			{"put bob back", func() (int64, error) { return s.PutRosterItem(ctx, alice, storage.RosterItem{Contact: bob}) }, nil, 7},
		}
		for _, st := range steps {
			v, err := st.do()
			if st.wantErr != nil {
				is(t, err, st.wantErr)
			} else {
				ok(t, err)
				if v != st.want {
					t.Errorf("%s: returned version %d, want %d", st.name, v, st.want)
				}
			}
			cur, err := s.RosterVersion(ctx, alice)
			ok(t, err)
			if cur != st.want {
				t.Errorf("%s: RosterVersion = %d, want %d", st.name, cur, st.want)
			}
		}
		item, err := s.RosterItem(ctx, alice, bob)
		ok(t, err)
		if want := (storage.RosterItem{Contact: bob, Subscription: storage.SubNone}); !reflect.DeepEqual(item, want) {
			t.Errorf("bob after delete and put = %+v, want %+v (no leftovers)", item, want)
		}
		v, err := s.RosterVersion(ctx, bob)
		ok(t, err)
		if v != 0 {
			t.Errorf("bob's RosterVersion = %d, want 0 (versions are per owner)", v)
		}
	})

	t.Run("Replace", func(t *testing.T) {
		s := h.store(t)
		ctx := t.Context()
		tests := []storage.RosterItem{
			{Contact: bob, Name: "Bob", Subscription: storage.SubNone, AskOut: true, Groups: []string{"x", "y", "z"}},
			{Contact: bob, Name: "Robert", Subscription: storage.SubTo, Groups: []string{"z", "x"}},
			{Contact: bob, Subscription: storage.SubBoth},
			{Contact: bob, Name: "B", Subscription: storage.SubFrom, AskOut: true, Groups: []string{"only"}},
		}
		for i, want := range tests {
			_, err := s.PutRosterItem(ctx, alice, want)
			ok(t, err)
			got, err := s.RosterItem(ctx, alice, bob)
			ok(t, err)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("step %d: RosterItem = %+v, want %+v", i, got, want)
			}
			items, _, err := s.RosterItems(ctx, alice)
			ok(t, err)
			if len(items) != 1 {
				t.Errorf("step %d: %d items, want 1", i, len(items))
			}
		}
	})

	t.Run("Subscriptions", func(t *testing.T) {
		s := h.store(t)
		ctx := t.Context()
		for _, sub := range []storage.Subscription{storage.SubNone, storage.SubTo, storage.SubFrom, storage.SubBoth} {
			for _, ask := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/ask=%v", sub, ask), func(t *testing.T) {
					want := storage.RosterItem{Contact: carol, Subscription: sub, AskOut: ask}
					_, err := s.PutRosterItem(ctx, alice, want)
					ok(t, err)
					got, err := s.RosterItem(ctx, alice, carol)
					ok(t, err)
					if !reflect.DeepEqual(got, want) {
						t.Errorf("RosterItem = %+v, want %+v", got, want)
					}
				})
			}
		}
	})

	t.Run("ConcurrentPuts", func(t *testing.T) {
		s := h.store(t)
		ctx := t.Context()
		const n = 10
		versions := make([]int64, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				versions[i], errs[i] = s.PutRosterItem(ctx, alice,
					storage.RosterItem{Contact: fmt.Sprintf("c%02d@example.com", i)})
			})
		}
		wg.Wait()
		for _, err := range errs {
			ok(t, err)
		}
		sort.Slice(versions, func(i, j int) bool { return versions[i] < versions[j] })
		for i, v := range versions {
			if v != int64(i+1) {
				t.Fatalf("returned versions = %v, want 1..%d, each once", versions, n)
			}
		}
		items, ver, err := s.RosterItems(ctx, alice)
		ok(t, err)
		if len(items) != n || ver != n {
			t.Errorf("RosterItems: %d items, version %d; want %d, %d", len(items), ver, n, n)
		}
	})
}

func testSubscriptionRequests(t *testing.T, h *harness) {
	s := h.store(t)
	ctx := t.Context()
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 999999999, berlin)
	list := func(owner string) []storage.SubscriptionRequest {
		t.Helper()
		reqs, err := s.SubscriptionRequests(ctx, owner)
		ok(t, err)
		return reqs
	}
	check := func(step string, got []storage.SubscriptionRequest, want ...storage.SubscriptionRequest) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d requests %+v, want %d", step, len(got), got, len(want))
		}
		for i := range want {
			if got[i].From != want[i].From || !bytes.Equal(got[i].Stanza, want[i].Stanza) {
				t.Errorf("%s: request %d = %s %q, want %s %q", step, i, got[i].From, got[i].Stanza, want[i].From, want[i].Stanza)
			}
			sameTime(t, step+": At", got[i].At, want[i].At)
		}
	}

	check("empty", list(alice))
	b := storage.SubscriptionRequest{From: bob, Stanza: []byte(`<presence type="subscribe"><status>hi</status></presence>`), At: t0.Add(2 * time.Minute)}
	z := storage.SubscriptionRequest{From: zoe, Stanza: []byte(`<presence type="subscribe"><status>Grüße 👋</status></presence>`), At: t0}
	c := storage.SubscriptionRequest{From: carol, Stanza: []byte(`<presence type="subscribe"/>`), At: t0.Add(time.Minute)}
	for _, r := range []storage.SubscriptionRequest{b, z, c} {
		ok(t, s.PutSubscriptionRequest(ctx, alice, r))
	}
	check("oldest first", list(alice), z, c, b)

	z2 := storage.SubscriptionRequest{From: zoe, Stanza: []byte(`<presence type="subscribe"><status>again</status></presence>`), At: t0.Add(3 * time.Minute)}
	ok(t, s.PutSubscriptionRequest(ctx, alice, z2))
	check("replaced", list(alice), c, b, z2)

	ok(t, s.PutSubscriptionRequest(ctx, bob, storage.SubscriptionRequest{From: alice, Stanza: []byte("<presence/>"), At: t0}))
	ok(t, s.DeleteSubscriptionRequest(ctx, alice, carol))
	check("deleted", list(alice), b, z2)
	ok(t, s.DeleteSubscriptionRequest(ctx, alice, carol))
	ok(t, s.DeleteSubscriptionRequest(ctx, wei, alice))
	check("deleting an absent request", list(alice), b, z2)
	check("other owner", list(bob), storage.SubscriptionRequest{From: alice, Stanza: []byte("<presence/>"), At: t0})

	before := time.Now()
	ok(t, s.PutSubscriptionRequest(ctx, carol, storage.SubscriptionRequest{From: wei, Stanza: []byte("<presence/>")}))
	got := list(carol)
	if len(got) != 1 {
		t.Fatalf("carol has %d requests, want 1", len(got))
	}
	recent(t, "zero At", got[0].At, before, time.Now())
}

// testRosterWithRequests: the one-statement read gives exactly what
// RosterItems and SubscriptionRequests give, in every state.
func testRosterWithRequests(t *testing.T, h *harness) {
	s := h.store(t)
	ctx := t.Context()
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 123456000, berlin)
	same := func(step, owner string) {
		t.Helper()
		items, ver, reqs, err := s.RosterWithRequests(ctx, owner)
		ok(t, err)
		wantItems, wantVer, err := s.RosterItems(ctx, owner)
		ok(t, err)
		wantReqs, err := s.SubscriptionRequests(ctx, owner)
		ok(t, err)
		if ver != wantVer || !reflect.DeepEqual(items, wantItems) {
			t.Errorf("%s: roster = %+v, %d; want %+v, %d", step, items, ver, wantItems, wantVer)
		}
		if len(reqs) != len(wantReqs) {
			t.Fatalf("%s: requests = %+v, want %+v", step, reqs, wantReqs)
		}
		for i := range reqs {
			if reqs[i].From != wantReqs[i].From || !bytes.Equal(reqs[i].Stanza, wantReqs[i].Stanza) || !reqs[i].At.Equal(wantReqs[i].At) {
				t.Errorf("%s: request %d = %+v, want %+v", step, i, reqs[i], wantReqs[i])
			}
		}
	}
	same("nothing", alice)
	ok(t, s.PutSubscriptionRequest(ctx, alice, storage.SubscriptionRequest{From: zoe, Stanza: []byte(`<presence type='subscribe'/>`), At: t0.Add(time.Minute)}))
	ok(t, s.PutSubscriptionRequest(ctx, alice, storage.SubscriptionRequest{From: wei, Stanza: []byte(`<presence type='subscribe'><status>Grüße</status></presence>`), At: t0}))
	ok(t, s.PutSubscriptionRequest(ctx, alice, storage.SubscriptionRequest{From: bob, Stanza: []byte(`<presence type='subscribe'/>`), At: t0}))
	same("requests, no roster", alice)
	for _, it := range []storage.RosterItem{
		{Contact: zoe, Name: "Zoë", Subscription: storage.SubBoth, Groups: []string{"Zeta", "家人"}},
		{Contact: bob, Name: "", Subscription: storage.SubNone, AskOut: true},
		{Contact: carol, Name: "Carol", Subscription: storage.SubFrom, Groups: []string{"Work"}},
	} {
		_, err := s.PutRosterItem(ctx, alice, it)
		ok(t, err)
	}
	_, err := s.PutRosterItem(ctx, bob, storage.RosterItem{Contact: alice, Subscription: storage.SubTo})
	ok(t, err)
	same("roster and requests", alice)
	same("roster, no requests", bob)
	for _, c := range []string{zoe, bob, carol} {
		_, err := s.DeleteRosterItem(ctx, alice, c)
		ok(t, err)
	}
	same("roster emptied (a version, no items)", alice)
	items, ver, reqs, err := s.RosterWithRequests(ctx, alice)
	ok(t, err)
	if len(items) != 0 || ver == 0 || len(reqs) != 3 {
		t.Errorf("after emptying: %d items, version %d, %d requests; want 0, >0, 3", len(items), ver, len(reqs))
	}
}

func testOffline(t *testing.T, h *harness) {
	t0 := time.Date(2025, 3, 30, 1, 59, 59, 999999000, berlin)

	t.Run("StoreAndList", func(t *testing.T) {
		s := h.store(t)
		ctx := t.Context()
		msgs := []storage.OfflineMessage{
			{Owner: zoe, From: bob, Stamp: t0, Sealed: []byte{0, 1, 2, 0, 255}},
			{Owner: zoe, From: wei, Stamp: t0.Add(-time.Hour), Sealed: bytes.Repeat([]byte("x"), 64<<10)},
			{Owner: zoe, From: alice, Stamp: t0.Add(time.Second), Sealed: []byte("third")},
		}
		var last int64
		for i := range msgs {
			id, err := s.StoreOffline(ctx, msgs[i], 0)
			ok(t, err)
			if id <= last {
				t.Errorf("message %d got ID %d after %d, want increasing", i, id, last)
			}
			msgs[i].ID, last = id, id
		}
		check := func(got, want []storage.OfflineMessage) {
			t.Helper()
			if len(got) != len(want) {
				t.Fatalf("got %d messages, want %d", len(got), len(want))
			}
			for i := range want {
				g, w := got[i], want[i]
				if g.ID != w.ID || g.Owner != w.Owner || g.From != w.From || !bytes.Equal(g.Sealed, w.Sealed) {
					t.Errorf("message %d = {%d %s %s %d bytes}, want {%d %s %s %d bytes}",
						i, g.ID, g.Owner, g.From, len(g.Sealed), w.ID, w.Owner, w.From, len(w.Sealed))
				}
				sameTime(t, "Stamp", g.Stamp, w.Stamp)
			}
		}
		tests := []struct {
			limit int
			want  []storage.OfflineMessage
		}{
			{0, msgs}, {-1, msgs}, {1, msgs[:1]}, {2, msgs[:2]}, {3, msgs}, {10, msgs},
		}
		for _, tt := range tests {
			t.Run(fmt.Sprint("limit=", tt.limit), func(t *testing.T) {
				got, err := s.OfflineMessages(ctx, zoe, tt.limit)
				ok(t, err)
				check(got, tt.want)
			})
		}
		n, err := s.OfflineCount(ctx, zoe)
		ok(t, err)
		if n != 3 {
			t.Errorf("OfflineCount = %d, want 3", n)
		}
		none, err := s.OfflineMessages(ctx, alice, 0)
		ok(t, err)
		n, err = s.OfflineCount(ctx, alice)
		ok(t, err)
		if len(none) != 0 || n != 0 {
			t.Errorf("alice has %d messages (count %d), want none", len(none), n)
		}
	})

	t.Run("ZeroStamp", func(t *testing.T) {
		s := h.store(t)
		ctx := t.Context()
		before := time.Now()
		_, err := s.StoreOffline(ctx, storage.OfflineMessage{Owner: alice, From: bob, Sealed: []byte("x")}, 0)
		ok(t, err)
		msgs, err := s.OfflineMessages(ctx, alice, 0)
		ok(t, err)
		if len(msgs) != 1 {
			t.Fatalf("%d messages, want 1", len(msgs))
		}
		recent(t, "Stamp", msgs[0].Stamp, before, time.Now())
	})

	t.Run("IDsIncreasePerOwner", func(t *testing.T) {
		s := h.store(t)
		ctx := t.Context()
		ids := map[string][]int64{}
		for i := range 12 {
			owner := []string{alice, bob, wei}[i%3]
			id, err := s.StoreOffline(ctx, storage.OfflineMessage{Owner: owner, From: carol, Stamp: t0, Sealed: []byte{byte(i)}}, 0)
			ok(t, err)
			ids[owner] = append(ids[owner], id)
		}
		for owner, want := range ids {
			msgs, err := s.OfflineMessages(ctx, owner, 0)
			ok(t, err)
			var got []int64
			for _, m := range msgs {
				got = append(got, m.ID)
			}
			if !reflect.DeepEqual(got, want) || !sort.SliceIsSorted(got, func(i, j int) bool { return got[i] < got[j] }) {
				t.Errorf("%s: IDs %v, want %v in increasing order", owner, got, want)
			}
		}
		// An ID is not reused after the newest message is deleted.
		last := ids[wei][len(ids[wei])-1]
		ok(t, s.DeleteOffline(ctx, wei, []int64{last}))
		id, err := s.StoreOffline(ctx, storage.OfflineMessage{Owner: wei, From: carol, Stamp: t0}, 0)
		ok(t, err)
		if id <= last {
			t.Errorf("ID after deleting the newest = %d, want > %d", id, last)
		}
	})

	t.Run("Limit", func(t *testing.T) {
		s := h.store(t)
		ctx := t.Context()
		store := func(owner string, limit int) error {
			_, err := s.StoreOffline(ctx, storage.OfflineMessage{Owner: owner, From: bob, Stamp: t0, Sealed: []byte("m")}, limit)
			return err
		}
		count := func(owner string) int {
			t.Helper()
			n, err := s.OfflineCount(ctx, owner)
			ok(t, err)
			return n
		}
		for range 3 {
			ok(t, store(alice, 3))
		}
		is(t, store(alice, 3), storage.ErrQuotaExceeded)
		is(t, store(alice, 2), storage.ErrQuotaExceeded)
		if n := count(alice); n != 3 {
			t.Errorf("after a refused message: %d messages, want 3", n)
		}
		ok(t, store(bob, 3)) // the limit is per owner
		ok(t, store(alice, 0))
		ok(t, store(alice, -1))
		ok(t, store(alice, 6))
		if n := count(alice); n != 6 {
			t.Errorf("%d messages, want 6", n)
		}
		msgs, err := s.OfflineMessages(ctx, alice, 1)
		ok(t, err)
		ok(t, s.DeleteOffline(ctx, alice, []int64{msgs[0].ID}))
		ok(t, store(alice, 6))
		is(t, store(alice, 6), storage.ErrQuotaExceeded)
	})

	t.Run("LimitConcurrent", func(t *testing.T) {
		s := h.store(t)
		ctx := t.Context()
		const writers, limit = 20, 10
		ids := make([]int64, writers)
		errs := make([]error, writers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range writers {
			wg.Go(func() {
				<-start
				ids[i], errs[i] = s.StoreOffline(ctx, storage.OfflineMessage{
					Owner: alice, From: bob, Stamp: t0, Sealed: []byte{byte(i)}}, limit)
			})
		}
		close(start)
		wg.Wait()
		stored, refused := 0, 0
		seen := map[int64]bool{}
		for i, err := range errs {
			switch {
			case err == nil:
				stored++
				if seen[ids[i]] {
					t.Errorf("ID %d assigned twice", ids[i])
				}
				seen[ids[i]] = true
			case errors.Is(err, storage.ErrQuotaExceeded):
				refused++
			default:
				t.Errorf("StoreOffline: %v", err)
			}
		}
		n, err := s.OfflineCount(ctx, alice)
		ok(t, err)
		if stored != limit || refused != writers-limit || n != limit {
			t.Errorf("stored %d, refused %d, count %d; want %d, %d, %d", stored, refused, n, limit, writers-limit, limit)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		s := h.store(t)
		ctx := t.Context()
		var aliceIDs, bobIDs []int64
		for i := range 4 {
			id, err := s.StoreOffline(ctx, storage.OfflineMessage{Owner: alice, From: carol, Stamp: t0, Sealed: []byte{byte(i)}}, 0)
			ok(t, err)
			aliceIDs = append(aliceIDs, id)
			id, err = s.StoreOffline(ctx, storage.OfflineMessage{Owner: bob, From: carol, Stamp: t0, Sealed: []byte{byte(i)}}, 0)
			ok(t, err)
			bobIDs = append(bobIDs, id)
		}
		ids := func(owner string) []int64 {
			t.Helper()
			msgs, err := s.OfflineMessages(ctx, owner, 0)
			ok(t, err)
			var got []int64
			for _, m := range msgs {
				got = append(got, m.ID)
			}
			return got
		}
		steps := []struct {
			name      string
			delete    []int64
			wantAlice []int64
		}{
			{"none", nil, aliceIDs},
			{"empty", []int64{}, aliceIDs},
			{"unknown", []int64{-1, 0, 1 << 62}, aliceIDs},
			{"bob's only", bobIDs, aliceIDs},
			{"some, mixed with bob's", []int64{aliceIDs[1], bobIDs[0], aliceIDs[3], aliceIDs[3]}, []int64{aliceIDs[0], aliceIDs[2]}},
			{"the rest", []int64{aliceIDs[2], aliceIDs[0], aliceIDs[1]}, nil},
		}
		for _, st := range steps {
			ok(t, s.DeleteOffline(ctx, alice, st.delete))
			if got := ids(alice); !reflect.DeepEqual(got, st.wantAlice) {
				t.Errorf("%s: alice's IDs = %v, want %v", st.name, got, st.wantAlice)
			}
			if got := ids(bob); !reflect.DeepEqual(got, bobIDs) {
				t.Errorf("%s: bob's IDs = %v, want %v (untouched)", st.name, got, bobIDs)
			}
		}
	})
}

// testBlobs checks a get/set pair with "nil or empty deletes" semantics.
func testBlobs(t *testing.T, h *harness, get func(s storage.Store, owner, key string) ([]byte, error),
	set func(s storage.Store, owner, key string, data []byte) error, keys []string) {
	s := h.store(t)
	for _, key := range keys {
		_, err := get(s, alice, key)
		is(t, err, storage.ErrNotFound)
	}
	steps := []struct {
		name string
		data []byte // nil or empty: deleted
	}{
		{"set", []byte(`<vCard xmlns="vcard-temp"><FN>Zoë 🦊</FN></vCard>`)},
		{"replace", []byte("<x>\x00binary\xff</x>")},
		{"large", bytes.Repeat([]byte("<a/>"), 64<<10)},
		{"nil deletes", nil},
		{"set again", []byte("<y/>")},
		{"empty deletes", []byte{}},
		{"delete absent", nil},
		{"set last", []byte("<z/>")},
	}
	for _, key := range keys {
		for _, st := range steps {
			ok(t, set(s, alice, key, st.data))
			got, err := get(s, alice, key)
			if len(st.data) == 0 {
				is(t, err, storage.ErrNotFound)
				continue
			}
			ok(t, err)
			if !bytes.Equal(got, st.data) {
				t.Errorf("key %q, %s: got %d bytes %.40q, want %.40q", key, st.name, len(got), got, st.data)
			}
		}
	}
	for _, key := range keys {
		_, err := get(s, bob, key)
		is(t, err, storage.ErrNotFound) // per owner
		got, err := get(s, alice, key)
		ok(t, err)
		if string(got) != "<z/>" {
			t.Errorf("key %q = %q, want <z/> (keys are separate)", key, got)
		}
	}
}

func testVCards(t *testing.T, h *harness) {
	testBlobs(t, h,
		func(s storage.Store, owner, _ string) ([]byte, error) { return s.VCard(t.Context(), owner) },
		func(s storage.Store, owner, _ string, data []byte) error { return s.SetVCard(t.Context(), owner, data) },
		[]string{""})
}

func testPrivateXML(t *testing.T, h *harness) {
	testBlobs(t, h,
		func(s storage.Store, owner, key string) ([]byte, error) { return s.Private(t.Context(), owner, key) },
		func(s storage.Store, owner, key string, data []byte) error {
			return s.SetPrivate(t.Context(), owner, key, data)
		},
		[]string{"{storage:bookmarks}storage", "{storage:rosternotes}storage", "{urn:x-ümlaut}ä"})
}

func testLastActivity(t *testing.T, h *harness) {
	s := h.store(t)
	ctx := t.Context()
	_, _, err := s.LastActivity(ctx, alice)
	is(t, err, storage.ErrNotFound)
	steps := []struct {
		at     time.Time
		status string
	}{
		{time.Date(2024, 12, 31, 23, 59, 59, 123456789, berlin), "Gone fishing 🎣"},
		{time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), ""},
		{time.Date(1999, 1, 1, 0, 0, 0, 1000, time.UTC), "Zurück am Montag"},
	}
	for i, st := range steps {
		ok(t, s.SetLastActivity(ctx, alice, st.at, st.status))
		at, status, err := s.LastActivity(ctx, alice)
		ok(t, err)
		sameTime(t, fmt.Sprintf("step %d: at", i), at, st.at)
		if status != st.status {
			t.Errorf("step %d: status = %q, want %q", i, status, st.status)
		}
	}
	_, _, err = s.LastActivity(ctx, bob)
	is(t, err, storage.ErrNotFound)
}

func testStore(t *testing.T, h *harness) {
	t.Run("Identity", func(t *testing.T) {
		s := h.store(t)
		if b := s.Backend(); b != "sqlite" && b != "postgres" {
			t.Errorf("Backend() = %q, want sqlite or postgres", b)
		}
		v, err := s.SchemaVersion(t.Context())
		ok(t, err)
		if v <= 0 {
			t.Errorf("SchemaVersion = %d, want > 0", v)
		}
	})

	t.Run("ReopenKeepsData", func(t *testing.T) {
		ctx := t.Context()
		at := time.Date(2025, 5, 5, 5, 5, 5, 5000, time.UTC)
		s1 := h.open(t)
		closed := false
		t.Cleanup(func() {
			if !closed {
				s1.Close()
			}
		})
		version, err := s1.SchemaVersion(ctx)
		ok(t, err)
		ok(t, s1.CreateAccount(ctx, storage.Account{JID: alice, Created: at, Credentials: credentials()}))
		_, err = s1.PutRosterItem(ctx, alice, storage.RosterItem{Contact: zoe, Name: "Zoë", Subscription: storage.SubBoth, Groups: []string{"b", "a"}})
		ok(t, err)
		ok(t, s1.PutSubscriptionRequest(ctx, alice, storage.SubscriptionRequest{From: wei, Stanza: []byte("<presence/>"), At: at}))
		id, err := s1.StoreOffline(ctx, storage.OfflineMessage{Owner: alice, From: zoe, Stamp: at, Sealed: []byte("sealed")}, 0)
		ok(t, err)
		ok(t, s1.SetVCard(ctx, alice, []byte("<vCard/>")))
		ok(t, s1.SetPrivate(ctx, alice, "{a}b", []byte("<b/>")))
		ok(t, s1.SetLastActivity(ctx, alice, at, "bye"))
		closed = true
		if err := s1.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}

		s2 := h.store(t)
		v2, err := s2.SchemaVersion(ctx)
		ok(t, err)
		if v2 != version {
			t.Errorf("SchemaVersion after reopen = %d, want %d", v2, version)
		}
		a, err := s2.Account(ctx, alice)
		ok(t, err)
		checkAccount(t, a, storage.Account{JID: alice, Domain: "example.com", Created: at, Credentials: credentials()})
		items, ver, err := s2.RosterItems(ctx, alice)
		ok(t, err)
		if want := []storage.RosterItem{{Contact: zoe, Name: "Zoë", Subscription: storage.SubBoth, Groups: []string{"b", "a"}}}; !reflect.DeepEqual(items, want) || ver != 1 {
			t.Errorf("roster after reopen = %+v v%d, want %+v v1", items, ver, want)
		}
		reqs, err := s2.SubscriptionRequests(ctx, alice)
		ok(t, err)
		if len(reqs) != 1 || reqs[0].From != wei {
			t.Errorf("requests after reopen = %+v", reqs)
		}
		msgs, err := s2.OfflineMessages(ctx, alice, 0)
		ok(t, err)
		if len(msgs) != 1 || msgs[0].ID != id || string(msgs[0].Sealed) != "sealed" {
			t.Errorf("offline after reopen = %+v", msgs)
		}
		if v, err := s2.VCard(ctx, alice); err != nil || string(v) != "<vCard/>" {
			t.Errorf("vcard after reopen = %q, %v", v, err)
		}
		if p, err := s2.Private(ctx, alice, "{a}b"); err != nil || string(p) != "<b/>" {
			t.Errorf("private after reopen = %q, %v", p, err)
		}
		if la, status, err := s2.LastActivity(ctx, alice); err != nil || !la.Equal(at) || status != "bye" {
			t.Errorf("last activity after reopen = %v %q, %v", la, status, err)
		}
		changes, err := s2.AccountChanges(ctx, 0, 0)
		ok(t, err)
		if len(changes) != 1 {
			t.Errorf("change log after reopen = %+v, want one entry", changes)
		}
	})
}

// BenchStoreOffline measures StoreOffline with a quota check (the
// server's path), deleting messages now and then so the quota never bites.
func BenchStoreOffline(b *testing.B, s storage.Store) {
	ctx := context.Background()
	sealed := bytes.Repeat([]byte{0xAB}, 512)
	const limit = 1000
	b.ReportAllocs()
	var ids []int64
	for i := 0; b.Loop(); i++ {
		id, err := s.StoreOffline(ctx, storage.OfflineMessage{Owner: alice, From: bob, Stamp: time.Now(), Sealed: sealed}, limit)
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, id)
		if len(ids) == limit/2 {
			b.StopTimer()
			if err := s.DeleteOffline(ctx, alice, ids); err != nil {
				b.Fatal(err)
			}
			ids = ids[:0]
			b.StartTimer()
		}
	}
}

// BenchRosterItems measures loading a 100-item roster (every login).
func BenchRosterItems(b *testing.B, s storage.Store) {
	ctx := context.Background()
	for i := range 100 {
		if _, err := s.PutRosterItem(ctx, alice, storage.RosterItem{
			Contact:      fmt.Sprintf("contact%03d@example.com", i),
			Name:         fmt.Sprintf("Contact %d", i),
			Subscription: storage.SubBoth,
			Groups:       []string{"Friends", "Work"},
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		items, _, err := s.RosterItems(ctx, alice)
		if err != nil {
			b.Fatal(err)
		}
		if len(items) != 100 {
			b.Fatalf("%d items, want 100", len(items))
		}
	}
}

// BenchRosterWithRequests measures what an initial presence reads: a
// 100-item roster and 3 pending subscription requests, in one statement.
func BenchRosterWithRequests(b *testing.B, s storage.Store) {
	ctx := context.Background()
	for i := range 100 {
		if _, err := s.PutRosterItem(ctx, alice, storage.RosterItem{
			Contact:      fmt.Sprintf("contact%03d@example.com", i),
			Name:         fmt.Sprintf("Contact %d", i),
			Subscription: storage.SubBoth,
			Groups:       []string{"Friends", "Work"},
		}); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 3 {
		if err := s.PutSubscriptionRequest(ctx, alice, storage.SubscriptionRequest{
			From: fmt.Sprintf("stranger%d@example.com", i), Stanza: []byte("<presence type='subscribe'/>")}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		items, _, reqs, err := s.RosterWithRequests(ctx, alice)
		if err != nil {
			b.Fatal(err)
		}
		if len(items) != 100 || len(reqs) != 3 {
			b.Fatalf("%d items, %d requests; want 100, 3", len(items), len(reqs))
		}
	}
}

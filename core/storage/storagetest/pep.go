package storagetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"kontor.im/kontor/core/storage"
)

// RunPEP runs the conformance suite of storage.PEPStore, the nodes and
// items of personal eventing (XEP-0163). open follows the rules of Run: a
// new, empty database on the first call for a given t, the same database
// on later calls.
func RunPEP(t *testing.T, open func(t *testing.T) storage.Store) {
	h := &harness{open: open}
	groups := []struct {
		name string
		run  func(*testing.T, *harness)
	}{
		{"Nodes", testPEPNodes},
		{"NodeLimit", testPEPNodeLimit},
		{"Publish", testPEPPublish},
		{"MaxItems", testPEPMaxItems},
		{"Items", testPEPItems},
		{"LastItems", testPEPLastItems},
		{"Quota", testPEPQuota},
		{"QuotaConcurrent", testPEPQuotaConcurrent},
		{"Configure", testPEPConfigure},
		{"RetractPurgeDelete", testPEPRetractPurgeDelete},
		{"DeleteAccount", testPEPDeleteAccount},
		{"Reopen", testPEPReopen},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			g.run(t, h)
		})
	}
}

// pepStore opens a store for t and returns it as PEPStore.
func (h *harness) pepStore(t *testing.T) storage.PEPStore {
	t.Helper()
	s := h.store(t)
	st, ok := s.(storage.PEPStore)
	if !ok {
		t.Fatalf("%s store does not implement storage.PEPStore", s.Backend())
	}
	return st
}

const (
	devices = "urn:xmpp:omemo:2:devices"
	bundles = "urn:xmpp:omemo:2:bundles"
	marks   = "urn:xmpp:bookmarks:1"
)

func pepNode(owner, node string, max int) storage.PEPNode {
	return storage.PEPNode{Owner: owner, Node: node, Config: []byte(`{"access_model":"open"}` + "\x00\xff"), MaxItems: max}
}

func pepItem(owner, node, id string) storage.PEPItem {
	return storage.PEPItem{Owner: owner, Node: node, ID: id, Publisher: owner + "/phone",
		Payload: []byte("<p xmlns='urn:example'>" + id + "</p>")}
}

// itemIDs returns the ids of items, in order.
func itemIDs(items []storage.PEPItem) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.ID
	}
	return out
}

func wantIDs(t *testing.T, what string, items []storage.PEPItem, want ...string) {
	t.Helper()
	if got := itemIDs(items); !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

func testPEPNodes(t *testing.T, h *harness) {
	st := h.pepStore(t)
	ctx := t.Context()
	if nodes, err := st.PEPNodes(ctx, alice); err != nil || len(nodes) != 0 {
		t.Fatalf("PEPNodes on an empty store = %v, %v; want none", nodes, err)
	}
	_, err := st.PEPNode(ctx, alice, devices)
	is(t, err, storage.ErrNotFound)

	at := time.Date(2025, 6, 7, 8, 9, 10, 111222333, berlin)
	n1 := pepNode(alice, devices, 1)
	n1.Created = at
	n2 := pepNode(alice, "eu.siacs.conversations.axolotl.bundles:12345", 1)
	n3 := pepNode(zoe, "urn:xmpp:avatar:metadata", 1)
	n3.Config = nil // an empty config is stored as empty
	before := time.Now()
	for _, n := range []storage.PEPNode{n1, n2, n3} {
		ok(t, st.CreatePEPNode(ctx, n, 0))
	}
	after := time.Now()
	is(t, st.CreatePEPNode(ctx, pepNode(alice, devices, 5), 0), storage.ErrExists)

	got, err := st.PEPNode(ctx, alice, devices)
	ok(t, err)
	if got.Owner != alice || got.Node != devices || string(got.Config) != string(n1.Config) || got.MaxItems != 1 {
		t.Errorf("PEPNode = %+v, want %+v (unchanged by the refused second create)", got, n1)
	}
	sameTime(t, "Created", got.Created, at.UTC())

	nodes, err := st.PEPNodes(ctx, alice)
	ok(t, err)
	var names []string
	for _, n := range nodes {
		names = append(names, n.Node)
	}
	// Bytewise: "eu..." < "urn..."
	if want := []string{n2.Node, devices}; !slices.Equal(names, want) {
		t.Errorf("PEPNodes(alice) = %q, want %q", names, want)
	}
	if len(nodes) == 2 {
		recent(t, "Created (zero means now)", nodes[0].Created, before, after)
	}
	z, err := st.PEPNode(ctx, zoe, n3.Node)
	ok(t, err)
	if len(z.Config) != 0 || z.Owner != zoe {
		t.Errorf("PEPNode(zoë) = %+v, want an empty config", z)
	}
	_, err = st.PEPNode(ctx, bob, devices)
	is(t, err, storage.ErrNotFound)

	tests := []struct {
		name string
		n    storage.PEPNode
	}{
		{"zero max items", pepNode(bob, devices, 0)},
		{"negative max items", pepNode(bob, devices, -1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := st.CreatePEPNode(ctx, tt.n, 0); err == nil {
				t.Fatalf("CreatePEPNode(%+v) succeeded", tt.n)
			}
			if err := st.ConfigurePEPNode(ctx, alice, devices, nil, tt.n.MaxItems); err == nil {
				t.Fatalf("ConfigurePEPNode with max items %d succeeded", tt.n.MaxItems)
			}
		})
	}
}

func testPEPNodeLimit(t *testing.T, h *harness) {
	st := h.pepStore(t)
	ctx := t.Context()
	ok(t, st.CreatePEPNode(ctx, pepNode(alice, "a", 1), 2))
	ok(t, st.CreatePEPNode(ctx, pepNode(alice, "b", 1), 2))
	is(t, st.CreatePEPNode(ctx, pepNode(alice, "c", 1), 2), storage.ErrQuotaExceeded)
	is(t, st.CreatePEPNode(ctx, pepNode(alice, "a", 1), 2), storage.ErrExists)
	ok(t, st.CreatePEPNode(ctx, pepNode(bob, "c", 1), 2)) // per owner
	ok(t, st.CreatePEPNode(ctx, pepNode(alice, "c", 1), 0))
	n, _, err := st.PEPUsage(ctx, alice)
	ok(t, err)
	if n != 3 {
		t.Errorf("PEPUsage(alice) nodes = %d, want 3", n)
	}

	// Concurrent creates never exceed the limit.
	const limit, tries = 4, 12
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		created  int
		failures []error
	)
	for i := range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := st.CreatePEPNode(ctx, pepNode(carol, fmt.Sprintf("n%d", i), 1), limit)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				created++
			case !errors.Is(err, storage.ErrQuotaExceeded):
				failures = append(failures, err)
			}
		}()
	}
	wg.Wait()
	if len(failures) > 0 || created != limit {
		t.Errorf("concurrent creates: %d created, errors %v; want exactly %d and only quota errors", created, failures, limit)
	}
}

func testPEPPublish(t *testing.T, h *harness) {
	st := h.pepStore(t)
	ctx := t.Context()
	is(t, st.PublishPEPItem(ctx, pepItem(alice, devices, "current"), 0), storage.ErrNotFound)
	ok(t, st.CreatePEPNode(ctx, pepNode(alice, devices, 3), 0))

	at := time.Date(2025, 1, 2, 3, 4, 5, 678901234, berlin)
	first := pepItem(alice, devices, "a")
	first.Published = at
	ok(t, st.PublishPEPItem(ctx, first, 0))
	before := time.Now()
	ok(t, st.PublishPEPItem(ctx, pepItem(alice, devices, "b"), 0))
	after := time.Now()

	items, err := st.PEPItems(ctx, alice, devices, nil, 0)
	ok(t, err)
	wantIDs(t, "items", items, "a", "b")
	if len(items) == 2 {
		a := items[0]
		if a.Owner != alice || a.Node != devices || a.Publisher != alice+"/phone" || string(a.Payload) != string(first.Payload) {
			t.Errorf("item = %+v, want %+v", a, first)
		}
		sameTime(t, "Published", a.Published, at.UTC())
		recent(t, "Published (zero means now)", items[1].Published, before, after)
	}

	// Republishing "a" replaces it and makes it the newest.
	again := pepItem(alice, devices, "a")
	again.Payload = []byte("<p xmlns='urn:example'>a, second version</p>")
	again.Publisher = alice + "/laptop"
	ok(t, st.PublishPEPItem(ctx, again, 0))
	items, err = st.PEPItems(ctx, alice, devices, nil, 0)
	ok(t, err)
	wantIDs(t, "after republishing a", items, "b", "a")
	if len(items) == 2 && (string(items[1].Payload) != string(again.Payload) || items[1].Publisher != again.Publisher) {
		t.Errorf("republished item = %+v, want %+v", items[1], again)
	}
	_, bytes, err := st.PEPUsage(ctx, alice)
	ok(t, err)
	if want := int64(len(again.Payload) + len(pepItem(alice, devices, "b").Payload)); bytes != want {
		t.Errorf("PEPUsage bytes = %d, want %d (the replaced payload no longer counts)", bytes, want)
	}
}

func testPEPMaxItems(t *testing.T, h *harness) {
	st := h.pepStore(t)
	ctx := t.Context()
	ok(t, st.CreatePEPNode(ctx, pepNode(alice, devices, 1), 0))
	ok(t, st.CreatePEPNode(ctx, pepNode(alice, marks, 3), 0))
	for _, id := range []string{"1", "2", "3", "4", "5"} {
		ok(t, st.PublishPEPItem(ctx, pepItem(alice, devices, id), 0))
		ok(t, st.PublishPEPItem(ctx, pepItem(alice, marks, id), 0))
	}
	tests := []struct {
		name string
		node string
		want []string
	}{
		{"max items 1 keeps the last", devices, []string{"5"}},
		{"max items 3 keeps the newest three", marks, []string{"3", "4", "5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items, err := st.PEPItems(ctx, alice, tt.node, nil, 0)
			ok(t, err)
			wantIDs(t, "items", items, tt.want...)
		})
	}
	// Republishing the oldest kept item does not evict anything else.
	ok(t, st.PublishPEPItem(ctx, pepItem(alice, marks, "3"), 0))
	items, err := st.PEPItems(ctx, alice, marks, nil, 0)
	ok(t, err)
	wantIDs(t, "after republishing 3", items, "4", "5", "3")
}

func testPEPItems(t *testing.T, h *harness) {
	st := h.pepStore(t)
	ctx := t.Context()
	ok(t, st.CreatePEPNode(ctx, pepNode(alice, marks, 100), 0))
	ok(t, st.CreatePEPNode(ctx, pepNode(bob, marks, 100), 0))
	for _, id := range []string{"r1@muc", "r2@muc", "r3@muc", "r4@muc"} {
		ok(t, st.PublishPEPItem(ctx, pepItem(alice, marks, id), 0))
	}
	ok(t, st.PublishPEPItem(ctx, pepItem(bob, marks, "bob-only@muc"), 0))
	tests := []struct {
		name  string
		owner string
		node  string
		ids   []string
		max   int
		want  []string
	}{
		{"all, oldest first", alice, marks, nil, 0, []string{"r1@muc", "r2@muc", "r3@muc", "r4@muc"}},
		{"max 2: the two most recent, oldest first", alice, marks, nil, 2, []string{"r3@muc", "r4@muc"}},
		{"max beyond the count", alice, marks, nil, 50, []string{"r1@muc", "r2@muc", "r3@muc", "r4@muc"}},
		{"by ids, in node order", alice, marks, []string{"r4@muc", "r1@muc"}, 0, []string{"r1@muc", "r4@muc"}},
		{"ids win over max", alice, marks, []string{"r2@muc", "r3@muc"}, 1, []string{"r2@muc", "r3@muc"}},
		{"unknown ids are left out", alice, marks, []string{"nope", "r2@muc"}, 0, []string{"r2@muc"}},
		{"another owner's item is not found", alice, marks, []string{"bob-only@muc"}, 0, nil},
		{"a node that does not exist has no items", alice, devices, nil, 0, nil},
		{"an owner without nodes", carol, marks, nil, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items, err := st.PEPItems(ctx, tt.owner, tt.node, tt.ids, tt.max)
			ok(t, err)
			wantIDs(t, "items", items, tt.want...)
		})
	}
}

func testPEPLastItems(t *testing.T, h *harness) {
	st := h.pepStore(t)
	ctx := t.Context()
	if items, err := st.PEPLastItems(ctx, alice); err != nil || len(items) != 0 {
		t.Fatalf("PEPLastItems on an empty store = %v, %v", items, err)
	}
	for _, n := range []string{devices, bundles, marks, "empty"} {
		ok(t, st.CreatePEPNode(ctx, pepNode(alice, n, 10), 0))
	}
	ok(t, st.CreatePEPNode(ctx, pepNode(bob, devices, 10), 0))
	ok(t, st.PublishPEPItem(ctx, pepItem(alice, devices, "d1"), 0))
	ok(t, st.PublishPEPItem(ctx, pepItem(alice, marks, "m1"), 0))
	ok(t, st.PublishPEPItem(ctx, pepItem(alice, marks, "m2"), 0))
	ok(t, st.PublishPEPItem(ctx, pepItem(alice, bundles, "b1"), 0))
	ok(t, st.PublishPEPItem(ctx, pepItem(alice, devices, "d2"), 0))
	ok(t, st.PublishPEPItem(ctx, pepItem(alice, devices, "d1"), 0)) // d1 is the newest again
	ok(t, st.PublishPEPItem(ctx, pepItem(bob, devices, "bob"), 0))
	items, err := st.PEPLastItems(ctx, alice)
	ok(t, err)
	var got []string
	for _, it := range items {
		got = append(got, it.Node+"="+it.ID)
	}
	// Ordered by node: bookmarks:1 < omemo:2:bundles < omemo:2:devices.
	if want := []string{marks + "=m2", bundles + "=b1", devices + "=d1"}; !slices.Equal(got, want) {
		t.Errorf("PEPLastItems = %q, want %q", got, want)
	}
}

func testPEPQuota(t *testing.T, h *harness) {
	st := h.pepStore(t)
	ctx := t.Context()
	ok(t, st.CreatePEPNode(ctx, pepNode(alice, marks, 10), 0))
	ok(t, st.CreatePEPNode(ctx, pepNode(alice, devices, 1), 0))
	item := func(node, id string, size int) storage.PEPItem {
		it := pepItem(alice, node, id)
		it.Payload = make([]byte, size)
		for i := range it.Payload {
			it.Payload[i] = 'x'
		}
		return it
	}
	ok(t, st.PublishPEPItem(ctx, item(marks, "a", 400), 1000))
	ok(t, st.PublishPEPItem(ctx, item(marks, "b", 400), 1000))
	tests := []struct {
		name string
		it   storage.PEPItem
		err  error
	}{
		{"a new item beyond the quota", item(marks, "c", 201), storage.ErrQuotaExceeded},
		{"a replacement beyond the quota", item(marks, "a", 601), storage.ErrQuotaExceeded},
		{"exactly up to the quota", item(marks, "c", 200), nil},
		{"a replacement that shrinks", item(marks, "a", 100), nil},
		{"max items evicts before the quota is checked", item(devices, "d", 300), nil},
		{"then replacing it within the node", item(devices, "e", 300), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := st.PublishPEPItem(ctx, tt.it, 1000)
			if tt.err == nil {
				ok(t, err)
			} else {
				is(t, err, tt.err)
			}
		})
	}
	items, err := st.PEPItems(ctx, alice, marks, nil, 0)
	ok(t, err)
	wantIDs(t, "items after refused publishes", items, "b", "c", "a")
	if len(items) == 3 && len(items[2].Payload) != 100 {
		t.Errorf("item a has %d bytes, want the 100 of the last accepted version", len(items[2].Payload))
	}
	_, bytes, err := st.PEPUsage(ctx, alice)
	ok(t, err)
	if bytes != 400+200+100+300 {
		t.Errorf("PEPUsage bytes = %d, want 1000", bytes)
	}
	// Without a quota anything goes.
	ok(t, st.PublishPEPItem(ctx, item(marks, "big", 5000), 0))
}

func testPEPQuotaConcurrent(t *testing.T, h *harness) {
	st := h.pepStore(t)
	ctx := t.Context()
	ok(t, st.CreatePEPNode(ctx, pepNode(alice, marks, 1000), 0))
	const (
		quota  = 1000
		size   = 100
		writes = 20
	)
	var wg sync.WaitGroup
	errs := make([]error, writes)
	for i := range writes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			it := pepItem(alice, marks, fmt.Sprintf("i%02d", i))
			it.Payload = make([]byte, size)
			errs[i] = st.PublishPEPItem(ctx, it, quota)
		}()
	}
	wg.Wait()
	stored := 0
	for _, err := range errs {
		switch {
		case err == nil:
			stored++
		case !errors.Is(err, storage.ErrQuotaExceeded):
			t.Errorf("concurrent publish: %v", err)
		}
	}
	_, bytes, err := st.PEPUsage(ctx, alice)
	ok(t, err)
	if stored != quota/size || bytes != quota {
		t.Errorf("concurrent publishes: %d stored, %d bytes; want %d and %d", stored, bytes, quota/size, quota)
	}
}

func testPEPConfigure(t *testing.T, h *harness) {
	st := h.pepStore(t)
	ctx := t.Context()
	is(t, st.ConfigurePEPNode(ctx, alice, marks, []byte("c"), 5), storage.ErrNotFound)
	ok(t, st.CreatePEPNode(ctx, pepNode(alice, marks, 10), 0))
	for _, id := range []string{"1", "2", "3", "4"} {
		ok(t, st.PublishPEPItem(ctx, pepItem(alice, marks, id), 0))
	}
	tests := []struct {
		name   string
		config string
		max    int
		want   []string
	}{
		{"raising keeps everything", "raised", 20, []string{"1", "2", "3", "4"}},
		{"lowering drops the oldest", "lowered", 2, []string{"3", "4"}},
		{"to one", "one", 1, []string{"4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok(t, st.ConfigurePEPNode(ctx, alice, marks, []byte(tt.config), tt.max))
			n, err := st.PEPNode(ctx, alice, marks)
			ok(t, err)
			if string(n.Config) != tt.config || n.MaxItems != tt.max {
				t.Errorf("node = %q max %d, want %q max %d", n.Config, n.MaxItems, tt.config, tt.max)
			}
			items, err := st.PEPItems(ctx, alice, marks, nil, 0)
			ok(t, err)
			wantIDs(t, "items", items, tt.want...)
		})
	}
}

func testPEPRetractPurgeDelete(t *testing.T, h *harness) {
	st := h.pepStore(t)
	ctx := t.Context()
	for _, n := range []string{marks, devices} {
		ok(t, st.CreatePEPNode(ctx, pepNode(alice, n, 10), 0))
		for _, id := range []string{"1", "2", "3"} {
			ok(t, st.PublishPEPItem(ctx, pepItem(alice, n, id), 0))
		}
	}
	ok(t, st.RetractPEPItem(ctx, alice, marks, "2"))
	is(t, st.RetractPEPItem(ctx, alice, marks, "2"), storage.ErrNotFound)
	is(t, st.RetractPEPItem(ctx, alice, "no-such-node", "1"), storage.ErrNotFound)
	is(t, st.RetractPEPItem(ctx, bob, marks, "1"), storage.ErrNotFound)
	items, err := st.PEPItems(ctx, alice, marks, nil, 0)
	ok(t, err)
	wantIDs(t, "after retract", items, "1", "3")

	ok(t, st.PurgePEPNode(ctx, alice, marks))
	is(t, st.PurgePEPNode(ctx, alice, "no-such-node"), storage.ErrNotFound)
	items, err = st.PEPItems(ctx, alice, marks, nil, 0)
	ok(t, err)
	wantIDs(t, "after purge", items)
	if _, err := st.PEPNode(ctx, alice, marks); err != nil {
		t.Errorf("a purged node is still there: %v", err)
	}

	ok(t, st.DeletePEPNode(ctx, alice, devices))
	is(t, st.DeletePEPNode(ctx, alice, devices), storage.ErrNotFound)
	_, err = st.PEPNode(ctx, alice, devices)
	is(t, err, storage.ErrNotFound)
	// A node created again under the same name starts empty.
	ok(t, st.CreatePEPNode(ctx, pepNode(alice, devices, 10), 0))
	items, err = st.PEPItems(ctx, alice, devices, nil, 0)
	ok(t, err)
	wantIDs(t, "re-created node", items)
	_, bytes, err := st.PEPUsage(ctx, alice)
	ok(t, err)
	if bytes != 0 {
		t.Errorf("PEPUsage bytes = %d after retract, purge and delete, want 0", bytes)
	}
}

func testPEPDeleteAccount(t *testing.T, h *harness) {
	s := h.store(t)
	st := s.(storage.PEPStore)
	ctx := t.Context()
	for _, owner := range []string{alice, bob, zoe} {
		ok(t, s.CreateAccount(ctx, storage.Account{JID: owner}))
		for _, n := range []string{devices, marks} {
			ok(t, st.CreatePEPNode(ctx, pepNode(owner, n, 10), 0))
			ok(t, st.PublishPEPItem(ctx, pepItem(owner, n, "x"), 0))
		}
	}
	ok(t, s.DeleteAccount(ctx, alice))
	ok(t, st.DeletePEPOwner(ctx, zoe))
	ok(t, st.DeletePEPOwner(ctx, carol)) // nothing to delete: no error
	tests := []struct {
		name  string
		owner string
		nodes int
	}{
		{"DeleteAccount removes the account's nodes and items", alice, 0},
		{"DeletePEPOwner removes them too", zoe, 0},
		{"another owner keeps its own", bob, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodes, bytes, err := st.PEPUsage(ctx, tt.owner)
			ok(t, err)
			if nodes != tt.nodes || (tt.nodes == 0) != (bytes == 0) {
				t.Errorf("PEPUsage(%s) = %d nodes, %d bytes; want %d nodes", tt.owner, nodes, bytes, tt.nodes)
			}
			items, err := st.PEPItems(ctx, tt.owner, devices, nil, 0)
			ok(t, err)
			if (len(items) == 0) != (tt.nodes == 0) {
				t.Errorf("PEPItems(%s) = %v", tt.owner, itemIDs(items))
			}
		})
	}
	// A new account under the deleted JID starts without nodes.
	ok(t, s.CreateAccount(ctx, storage.Account{JID: alice}))
	ok(t, st.CreatePEPNode(ctx, pepNode(alice, devices, 1), 0))
}

func testPEPReopen(t *testing.T, h *harness) {
	st := h.pepStore(t)
	ctx := t.Context()
	ok(t, st.CreatePEPNode(ctx, pepNode(wei, bundles, 5), 0))
	want := pepItem(wei, bundles, "31415")
	want.Payload = []byte("<bundle xmlns='urn:xmpp:omemo:2'><spk id='1'>AAAA</spk></bundle>")
	ok(t, st.PublishPEPItem(ctx, want, 0))

	again := h.pepStore(t) // the same database, as a restarted server opens it
	items, err := again.PEPItems(ctx, wei, bundles, nil, 0)
	ok(t, err)
	if len(items) != 1 || string(items[0].Payload) != string(want.Payload) || items[0].Publisher != want.Publisher {
		t.Fatalf("after reopening: %+v, want %+v", items, want)
	}
	n, err := again.PEPNode(ctx, wei, bundles)
	ok(t, err)
	if n.MaxItems != 5 || string(n.Config) != string(pepNode(wei, bundles, 5).Config) {
		t.Errorf("after reopening: node %+v", n)
	}
}

package mamtest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/storage"
)

const owner = "alice@example.com"

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// fill appends n messages m1..mn, one second apart; odd ones are with bob
// (incoming from bob/phone), even ones with carol (outgoing to carol/desk).
func fill(t *testing.T, a *Archive, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		m := module.ArchivedMessage{ID: fmt.Sprintf("m%d", i), Owner: owner, Time: t0.Add(time.Duration(i) * time.Second)}
		if i%2 == 1 {
			m.With = "bob@example.com/phone"
			m.Stanza = fmt.Appendf(nil, "<message xmlns='jabber:client' from='bob@example.com/phone' to='%s/home'><body>%d</body></message>", owner, i)
		} else {
			m.With, m.Outgoing = "carol@example.com/desk", true
			m.Stanza = fmt.Appendf(nil, "<message xmlns='jabber:client' to='carol@example.com/desk' from='%s/home'><body>%d</body></message>", owner, i)
		}
		if err := a.Append(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
}

func ids(p module.ArchivePage) []string {
	out := []string{}
	for _, m := range p.Messages {
		out = append(out, m.ID)
	}
	return out
}

func TestQuery(t *testing.T) {
	a := New()
	fill(t, a, 7)
	tests := []struct {
		name     string
		q        module.ArchiveQuery
		want     []string
		complete bool
		count    int
	}{
		{name: "everything", q: module.ArchiveQuery{}, want: []string{"m1", "m2", "m3", "m4", "m5", "m6", "m7"}, complete: true, count: 7},
		{name: "first page", q: module.ArchiveQuery{Max: 2}, want: []string{"m1", "m2"}, count: 7},
		{name: "page after", q: module.ArchiveQuery{Max: 2, AfterID: "m4"}, want: []string{"m5", "m6"}, count: 7},
		{name: "last forward page", q: module.ArchiveQuery{Max: 2, AfterID: "m6"}, want: []string{"m7"}, complete: true, count: 7},
		{name: "last page", q: module.ArchiveQuery{Max: 2, Last: true}, want: []string{"m6", "m7"}, count: 7},
		{name: "page before", q: module.ArchiveQuery{Max: 2, Last: true, BeforeID: "m3"}, want: []string{"m1", "m2"}, complete: true, count: 7},
		{name: "before-id alone is a bound, read forwards", q: module.ArchiveQuery{Max: 2, BeforeID: "m6"}, want: []string{"m1", "m2"}, count: 7},
		{name: "between two ids", q: module.ArchiveQuery{AfterID: "m2", BeforeID: "m6"}, want: []string{"m3", "m4", "m5"}, complete: true, count: 7},
		{name: "between two ids backwards", q: module.ArchiveQuery{AfterID: "m2", BeforeID: "m6", Last: true, Max: 2}, want: []string{"m4", "m5"}, count: 7},
		{name: "with bare", q: module.ArchiveQuery{With: "bob@example.com"}, want: []string{"m1", "m3", "m5", "m7"}, complete: true, count: 4},
		{name: "with full, incoming", q: module.ArchiveQuery{With: "bob@example.com/phone"}, want: []string{"m1", "m3", "m5", "m7"}, complete: true, count: 4},
		{name: "with full, outgoing", q: module.ArchiveQuery{With: "carol@example.com/desk"}, want: []string{"m2", "m4", "m6"}, complete: true, count: 3},
		{name: "with other resource", q: module.ArchiveQuery{With: "bob@example.com/laptop"}, want: []string{}, complete: true, count: 0},
		{name: "with a prefix of a bare JID", q: module.ArchiveQuery{With: "bob@example.co"}, want: []string{}, complete: true, count: 0},
		{name: "start and end are inclusive", q: module.ArchiveQuery{Start: t0.Add(2 * time.Second), End: t0.Add(4 * time.Second)}, want: []string{"m2", "m3", "m4"}, complete: true, count: 3},
		{name: "ids", q: module.ArchiveQuery{IDs: []string{"m5", "m2", "nope"}}, want: []string{"m2", "m5"}, complete: true, count: 2},
		{name: "filters and paging", q: module.ArchiveQuery{With: "bob@example.com", AfterID: "m1", Max: 2}, want: []string{"m3", "m5"}, count: 4},
		{name: "max above the cap", q: module.ArchiveQuery{Max: MaxMax + 1}, want: []string{"m1", "m2", "m3", "m4", "m5", "m6", "m7"}, complete: true, count: 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.q.Owner = owner
			p, err := a.Query(context.Background(), tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(p); !reflect.DeepEqual(got, tc.want) || p.Complete != tc.complete || p.Count != tc.count {
				t.Fatalf("got %v complete=%v count=%d; want %v complete=%v count=%d", got, p.Complete, p.Count, tc.want, tc.complete, tc.count)
			}
		})
	}
}

func TestQueryErrors(t *testing.T) {
	a := New()
	fill(t, a, 3)
	tests := []struct {
		name     string
		q        module.ArchiveQuery
		notFound bool
	}{
		{name: "unknown after", q: module.ArchiveQuery{Owner: owner, AfterID: "x"}, notFound: true},
		{name: "unknown before", q: module.ArchiveQuery{Owner: owner, BeforeID: "x", Last: true}, notFound: true},
		{name: "another owner's id", q: module.ArchiveQuery{Owner: "bob@example.com", AfterID: "m1"}, notFound: true},
		{name: "no owner", q: module.ArchiveQuery{}},
		{name: "bad with", q: module.ArchiveQuery{Owner: owner, With: "@"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.Query(context.Background(), tc.q)
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, storage.ErrNotFound) != tc.notFound {
				t.Fatalf("error %v: wraps ErrNotFound = %v, want %v", err, !tc.notFound, tc.notFound)
			}
		})
	}
}

func TestAppend(t *testing.T) {
	a := New()
	ctx := context.Background()
	tests := []struct {
		name string
		m    module.ArchivedMessage
		ok   bool
	}{
		{name: "first", m: module.ArchivedMessage{ID: "a", Owner: owner}, ok: true},
		{name: "same id, other owner", m: module.ArchivedMessage{ID: "a", Owner: "bob@example.com"}, ok: true},
		{name: "duplicate id", m: module.ArchivedMessage{ID: "a", Owner: owner}},
		{name: "no id", m: module.ArchivedMessage{Owner: owner}},
		{name: "no owner", m: module.ArchivedMessage{ID: "b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := a.Append(ctx, tc.m); (err == nil) != tc.ok {
				t.Fatalf("Append: %v, want ok=%v", err, tc.ok)
			}
		})
	}
	if n := len(a.Messages(owner)); n != 1 {
		t.Fatalf("%d messages kept for %s, want 1", n, owner)
	}
	// Archive order is id order, whatever the order of Append.
	for _, id := range []string{"d", "b", "c"} {
		if err := a.Append(ctx, module.ArchivedMessage{ID: id, Owner: owner}); err != nil {
			t.Fatal(err)
		}
	}
	var order []string
	for _, m := range a.Messages(owner) {
		order = append(order, m.ID)
	}
	if !reflect.DeepEqual(order, []string{"a", "b", "c", "d"}) {
		t.Fatalf("archive order %v", order)
	}
	if p, err := a.Query(ctx, module.ArchiveQuery{Owner: owner, AfterID: "b"}); err != nil || !reflect.DeepEqual(ids(p), []string{"c", "d"}) {
		t.Fatalf("after b: %v, %v", ids(p), err)
	}
	a.Fail(errors.New("down"))
	if err := a.Append(ctx, module.ArchivedMessage{ID: "z", Owner: owner}); err == nil {
		t.Fatal("Fail did not make Append fail")
	}
	if _, err := a.Prefs(ctx, owner); err == nil {
		t.Fatal("Fail did not make Prefs fail")
	}
	if a.Calls() != 11 {
		t.Fatalf("Calls() = %d, want 11", a.Calls())
	}
}

func TestPrefs(t *testing.T) {
	a := New()
	ctx := context.Background()
	p, err := a.Prefs(ctx, owner)
	if err != nil || !reflect.DeepEqual(p, module.ArchivePrefs{}) {
		t.Fatalf("prefs of a new owner: %+v, %v", p, err)
	}
	tests := []struct {
		name string
		p    module.ArchivePrefs
		ok   bool
	}{
		{name: "roster with lists", p: module.ArchivePrefs{Default: "roster", Always: []string{"bob@example.com"}, Never: []string{"eve@example.com"}}, ok: true},
		{name: "never", p: module.ArchivePrefs{Default: "never"}, ok: true},
		{name: "empty default", p: module.ArchivePrefs{}},
		{name: "unknown default", p: module.ArchivePrefs{Default: "sometimes"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := a.SetPrefs(ctx, owner, tc.p)
			if (err == nil) != tc.ok {
				t.Fatalf("SetPrefs: %v, want ok=%v", err, tc.ok)
			}
			if !tc.ok {
				return
			}
			got, err := a.Prefs(ctx, owner)
			if err != nil || !reflect.DeepEqual(got, tc.p) {
				t.Fatalf("Prefs = %+v, %v; want %+v", got, err, tc.p)
			}
		})
	}
}

package archive

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/storage"
)

// pagingFixture archives 120 messages of alice: with bob (phone for even
// i, laptop for odd) except every third, which is with carol.
func pagingFixture(t *testing.T, a *Archive) []module.ArchivedMessage {
	t.Helper()
	base := t0.Add(-time.Hour)
	var all []module.ArchivedMessage
	for i := range 120 {
		with := bob + "/phone"
		switch {
		case i%3 == 0:
			with = carol
		case i%2 == 1:
			with = bob + "/laptop"
		}
		all = append(all, msg(alice, with, i%2 == 0, base.Add(time.Duration(i)*time.Second), fmt.Sprint("message ", i)))
	}
	// Another owner's messages in between must never show up.
	for i := range 30 {
		mustAppend(t, a, msg(bob, alice, false, base.Add(time.Duration(i)*time.Second+time.Millisecond), "bob's"))
	}
	mustAppend(t, a, all...)
	mustFlush(t, a)
	return all
}

func TestPaging(t *testing.T) {
	forBackends(t, func(t *testing.T, b *backend) {
		a := newArchive(t, b.store(), testRing(t), nil)
		all := pagingFixture(t, a)
		allIDs := ids(all)
		where := func(f func(i int, m module.ArchivedMessage) bool) []string {
			var out []string
			for i, m := range all {
				if f(i, m) {
					out = append(out, m.ID)
				}
			}
			return out
		}
		withBob := where(func(i int, _ module.ArchivedMessage) bool { return i%3 != 0 })
		bobPhone := where(func(i int, _ module.ArchivedMessage) bool { return i%3 != 0 && i%2 == 0 })

		tests := []struct {
			name         string
			q            module.ArchiveQuery
			want         []string
			complete     bool
			count        int
			wantNotFound bool
		}{
			{"first page", module.ArchiveQuery{}, allIDs[:50], false, 120, false},
			{"second page", module.ArchiveQuery{AfterID: allIDs[49]}, allIDs[50:100], false, 120, false},
			{"third page", module.ArchiveQuery{AfterID: allIDs[99]}, allIDs[100:], true, 120, false},
			{"after the last", module.ArchiveQuery{AfterID: allIDs[119]}, nil, true, 120, false},
			{"last page", module.ArchiveQuery{Last: true}, allIDs[70:], false, 120, false},
			{"before", module.ArchiveQuery{BeforeID: allIDs[70], Last: true}, allIDs[20:70], false, 120, false},
			{"before, reaching the start", module.ArchiveQuery{BeforeID: allIDs[20], Last: true}, allIDs[:20], true, 120, false},
			// before-id without Last is a bound (XEP-0313 #extended): the
			// page nearest the start of the range.
			{"before-id as a bound", module.ArchiveQuery{BeforeID: allIDs[20], Max: 5}, allIDs[:5], false, 120, false},
			{"last page of 10", module.ArchiveQuery{Last: true, Max: 10}, allIDs[110:], false, 120, false},
			{"everything (max capped at 250)", module.ArchiveQuery{Max: 1000}, allIDs, true, 120, false},
			{"with bare JID", module.ArchiveQuery{With: bob, Max: 30}, withBob[:30], false, 80, false},
			{"with bare JID, next", module.ArchiveQuery{With: bob, Max: 30, AfterID: withBob[29]}, withBob[30:60], false, 80, false},
			{"with bare JID, last", module.ArchiveQuery{With: bob, Max: 30, Last: true}, withBob[50:], false, 80, false},
			{"with full JID", module.ArchiveQuery{With: bob + "/phone", Max: 100}, bobPhone, true, len(bobPhone), false},
			{"with a resource nobody used", module.ArchiveQuery{With: bob + "/tablet"}, nil, true, 0, false},
			{"start and end", module.ArchiveQuery{Start: all[10].Time, End: all[19].Time}, allIDs[10:20], true, 10, false},
			{"start only, last page", module.ArchiveQuery{Start: all[100].Time, Last: true, Max: 5}, allIDs[115:], false, 20, false},
			{"end only", module.ArchiveQuery{End: all[4].Time.Add(time.Millisecond)}, allIDs[:5], true, 5, false},
			{"start, end and with", module.ArchiveQuery{Start: all[10].Time, End: all[19].Time, With: carol},
				[]string{allIDs[12], allIDs[15], allIDs[18]}, true, 3, false},
			{"ids", module.ArchiveQuery{IDs: []string{allIDs[7], allIDs[3], "not-an-id", FormatID(idAt(t0))}}, []string{allIDs[3], allIDs[7]}, true, 2, false},
			{"ids and with", module.ArchiveQuery{IDs: []string{allIDs[3], allIDs[4]}, With: carol}, []string{allIDs[3]}, true, 1, false},
			{"ids, none valid", module.ArchiveQuery{IDs: []string{"x"}}, nil, true, 0, false},
			{"between after and before, last page", module.ArchiveQuery{AfterID: allIDs[10], BeforeID: allIDs[20], Max: 5, Last: true}, allIDs[15:20], false, 120, false},
			{"between after and before", module.ArchiveQuery{AfterID: allIDs[10], BeforeID: allIDs[20], Max: 5}, allIDs[11:16], false, 120, false},
			{"unknown after id", module.ArchiveQuery{AfterID: FormatID(idAt(t0))}, nil, false, 0, true},
			{"malformed before id", module.ArchiveQuery{BeforeID: "nope"}, nil, false, 0, true},
			{"another owner's id", module.ArchiveQuery{Owner: bob, AfterID: allIDs[0]}, nil, false, 0, true},
			// The anchor read with the page (after forwards, before backwards).
			{"unknown before id, last", module.ArchiveQuery{BeforeID: FormatID(idAt(t0)), Last: true}, nil, false, 0, true},
			{"malformed after id", module.ArchiveQuery{AfterID: "nope"}, nil, false, 0, true},
			{"another owner's id, before, last", module.ArchiveQuery{Owner: bob, BeforeID: allIDs[5], Last: true}, nil, false, 0, true},
			{"after, one from the end", module.ArchiveQuery{AfterID: allIDs[118]}, allIDs[119:], true, 120, false},
			{"before the second, last", module.ArchiveQuery{BeforeID: allIDs[1], Last: true}, allIDs[:1], true, 120, false},
			{"before the first, last", module.ArchiveQuery{BeforeID: allIDs[0], Last: true}, nil, true, 120, false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				q := tt.q
				if q.Owner == "" {
					q.Owner = alice
				}
				p, err := a.Query(t.Context(), q)
				if tt.wantNotFound {
					if !errors.Is(err, ErrItemNotFound) || !errors.Is(err, storage.ErrNotFound) {
						t.Fatalf("Query = %v, want ErrItemNotFound", err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if got := ids(p.Messages); !slices.Equal(got, tt.want) {
					t.Errorf("got %d ids, want %d\n got %v\nwant %v", len(got), len(tt.want), got, tt.want)
				}
				if p.Complete != tt.complete || p.Count != tt.count {
					t.Errorf("complete=%v count=%d, want %v %d", p.Complete, p.Count, tt.complete, tt.count)
				}
				for _, m := range p.Messages {
					if m.Owner != alice {
						t.Errorf("message of %s in alice's archive", m.Owner)
					}
				}
			})
		}
	})
}

func TestPagingCountLimit(t *testing.T) {
	b := openBackend(t, "sqlite")
	a := newArchive(t, b.store(), testRing(t), func(c *Config) { c.CountLimit = 100 })
	pagingFixture(t, a)
	tests := []struct {
		name  string
		q     module.ArchiveQuery
		count int
	}{
		{"beyond the limit", module.ArchiveQuery{Owner: alice}, -1},
		{"below the limit", module.ArchiveQuery{Owner: alice, With: bob}, 80},
		{"at the limit", module.ArchiveQuery{Owner: alice, End: t0.Add(-time.Hour + 99*time.Second)}, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if p := mustQuery(t, a, tt.q); p.Count != tt.count {
				t.Errorf("Count = %d, want %d", p.Count, tt.count)
			}
		})
	}
}

// TestPagingWhileAppending pages forwards through an archive, and backwards
// from its end, while a writer keeps appending: every message is seen once,
// in order.
func TestPagingWhileAppending(t *testing.T) {
	forBackends(t, func(t *testing.T, b *backend) {
		a := newArchive(t, b.store(), testRing(t), func(c *Config) { c.BatchSize = 7 })
		base := t0.Add(-2 * time.Hour)
		var want []string
		var mu sync.Mutex
		var wg sync.WaitGroup
		writerDone := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(writerDone)
			for i := range 300 {
				m := msg(alice, bob, i%2 == 0, base.Add(time.Duration(i)*time.Millisecond), fmt.Sprint("live ", i))
				if err := a.Append(context.Background(), m); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				mu.Lock()
				want = append(want, m.ID)
				mu.Unlock()
				if i%25 == 0 {
					time.Sleep(2 * time.Millisecond)
				}
			}
		}()

		var seen []string
		after := ""
		deadline := time.Now().Add(60 * time.Second)
		for {
			if time.Now().After(deadline) {
				t.Fatalf("paging did not finish: %d seen", len(seen))
			}
			p := mustQuery(t, a, module.ArchiveQuery{Owner: alice, AfterID: after, Max: 9})
			seen = append(seen, ids(p.Messages)...)
			if len(p.Messages) > 0 {
				after = p.Messages[len(p.Messages)-1].ID
			}
			if !p.Complete {
				continue
			}
			select {
			case <-writerDone:
				mustFlush(t, a)
				p := mustQuery(t, a, module.ArchiveQuery{Owner: alice, AfterID: after, Max: 9})
				if len(p.Messages) == 0 && p.Complete {
					goto done
				}
			default:
				time.Sleep(time.Millisecond)
			}
		}
	done:
		wg.Wait()
		if !reflect.DeepEqual(seen, want) {
			t.Fatalf("forward paging saw %d messages, want %d in order (first difference at %d)", len(seen), len(want), firstDiff(seen, want))
		}

		// Backwards from the end, in pages of 11.
		var back []string
		before := ""
		for {
			p := mustQuery(t, a, module.ArchiveQuery{Owner: alice, BeforeID: before, Last: true, Max: 11})
			back = append(ids(p.Messages), back...)
			if p.Complete {
				break
			}
			before = p.Messages[0].ID
		}
		if !reflect.DeepEqual(back, want) {
			t.Fatalf("backward paging saw %d, want %d (first difference at %d)", len(back), len(want), firstDiff(back, want))
		}
	})
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestQueryValidation(t *testing.T) {
	b := openBackend(t, "sqlite")
	a := newArchive(t, b.store(), testRing(t), nil)
	tooMany := make([]string, maxQueryIDs+1)
	for i := range tooMany {
		tooMany[i] = FormatID(idAt(t0.Add(time.Duration(i) * time.Millisecond)))
	}
	tests := []struct {
		name string
		q    module.ArchiveQuery
	}{
		{"no owner", module.ArchiveQuery{}},
		{"full owner", module.ArchiveQuery{Owner: alice + "/x"}},
		{"bad with", module.ArchiveQuery{Owner: alice, With: "\x00"}},
		{"too many ids", module.ArchiveQuery{Owner: alice, IDs: tooMany}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := a.Query(t.Context(), tt.q); !errors.Is(err, ErrInvalid) {
				t.Errorf("Query = %v, want ErrInvalid", err)
			}
		})
	}
	if p := mustQuery(t, a, module.ArchiveQuery{Owner: alice, IDs: tooMany[:maxQueryIDs]}); len(p.Messages) != 0 || !p.Complete {
		t.Errorf("%d ids: %+v", maxQueryIDs, p)
	}
}

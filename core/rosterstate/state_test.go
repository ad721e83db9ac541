package rosterstate

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/storage/sqlite"
)

// row is one row of an Appendix A table as the RFC prints it: existing
// state, whether the stanza is routed/delivered ("MUST" or "SHOULD NOT"),
// and the new state ("no state change" or a state name).
type row struct {
	typ      Type
	existing string
	forward  string
	next     string
}

const same = "no state change"

// A.2: the user's server processing what the user sends.
var outboundRows = []row{
	// A.2.1 subscribe
	{Subscribe, "None", "MUST", "None + Pending Out"},
	{Subscribe, "None + Pending Out", "MUST", same},
	{Subscribe, "None + Pending In", "MUST", "None + Pending Out+In"},
	{Subscribe, "None + Pending Out+In", "MUST", same},
	{Subscribe, "To", "MUST", same},
	{Subscribe, "To + Pending In", "MUST", same},
	{Subscribe, "From", "MUST", "From + Pending Out"},
	{Subscribe, "From + Pending Out", "MUST", same},
	{Subscribe, "Both", "MUST", same},
	// A.2.2 unsubscribe
	{Unsubscribe, "None", "MUST", same},
	{Unsubscribe, "None + Pending Out", "MUST", "None"},
	{Unsubscribe, "None + Pending In", "MUST", same},
	{Unsubscribe, "None + Pending Out+In", "MUST", "None + Pending In"},
	{Unsubscribe, "To", "MUST", "None"},
	{Unsubscribe, "To + Pending In", "MUST", "None + Pending In"},
	{Unsubscribe, "From", "MUST", same},
	{Unsubscribe, "From + Pending Out", "MUST", "From"},
	{Unsubscribe, "Both", "MUST", "From"},
	// A.2.3 subscribed
	{Subscribed, "None", "SHOULD NOT", same},
	{Subscribed, "None + Pending Out", "SHOULD NOT", same},
	{Subscribed, "None + Pending In", "MUST", "From"},
	{Subscribed, "None + Pending Out+In", "MUST", "From + Pending Out"},
	{Subscribed, "To", "SHOULD NOT", same},
	{Subscribed, "To + Pending In", "MUST", "Both"},
	{Subscribed, "From", "SHOULD NOT", same},
	{Subscribed, "From + Pending Out", "SHOULD NOT", same},
	{Subscribed, "Both", "SHOULD NOT", same},
	// A.2.4 unsubscribed
	{Unsubscribed, "None", "SHOULD NOT", same},
	{Unsubscribed, "None + Pending Out", "SHOULD NOT", same},
	{Unsubscribed, "None + Pending In", "MUST", "None"},
	{Unsubscribed, "None + Pending Out+In", "MUST", "None + Pending Out"},
	{Unsubscribed, "To", "SHOULD NOT", same},
	{Unsubscribed, "To + Pending In", "MUST", "To"},
	{Unsubscribed, "From", "MUST", "None"},
	{Unsubscribed, "From + Pending Out", "MUST", "None + Pending Out"},
	{Unsubscribed, "Both", "MUST", "To"},
}

// A.3: the user's server processing what the user receives.
var inboundRows = []row{
	// A.3.1 subscribe
	{Subscribe, "None", "MUST", "None + Pending In"},
	{Subscribe, "None + Pending Out", "MUST", "None + Pending Out+In"},
	{Subscribe, "None + Pending In", "SHOULD NOT", same},
	{Subscribe, "None + Pending Out+In", "SHOULD NOT", same},
	{Subscribe, "To", "MUST", "To + Pending In"},
	{Subscribe, "To + Pending In", "SHOULD NOT", same},
	{Subscribe, "From", "SHOULD NOT", same},
	{Subscribe, "From + Pending Out", "SHOULD NOT", same},
	{Subscribe, "Both", "SHOULD NOT", same},
	// A.3.2 unsubscribe
	{Unsubscribe, "None", "SHOULD NOT", same},
	{Unsubscribe, "None + Pending Out", "SHOULD NOT", same},
	{Unsubscribe, "None + Pending In", "MUST", "None"},
	{Unsubscribe, "None + Pending Out+In", "MUST", "None + Pending Out"},
	{Unsubscribe, "To", "SHOULD NOT", same},
	{Unsubscribe, "To + Pending In", "MUST", "To"},
	{Unsubscribe, "From", "MUST", "None"},
	{Unsubscribe, "From + Pending Out", "MUST", "None + Pending Out"},
	{Unsubscribe, "Both", "MUST", "To"},
	// A.3.3 subscribed
	{Subscribed, "None", "SHOULD NOT", same},
	{Subscribed, "None + Pending Out", "MUST", "To"},
	{Subscribed, "None + Pending In", "SHOULD NOT", same},
	{Subscribed, "None + Pending Out+In", "MUST", "To + Pending In"},
	{Subscribed, "To", "SHOULD NOT", same},
	{Subscribed, "To + Pending In", "SHOULD NOT", same},
	{Subscribed, "From", "SHOULD NOT", same},
	{Subscribed, "From + Pending Out", "MUST", "Both"},
	{Subscribed, "Both", "SHOULD NOT", same},
	// A.3.4 unsubscribed
	{Unsubscribed, "None", "SHOULD NOT", same},
	{Unsubscribed, "None + Pending Out", "MUST", "None"},
	{Unsubscribed, "None + Pending In", "SHOULD NOT", same},
	{Unsubscribed, "None + Pending Out+In", "MUST", "None + Pending In"},
	{Unsubscribed, "To", "MUST", "None"},
	{Unsubscribed, "To + Pending In", "MUST", "None + Pending In"},
	{Unsubscribed, "From", "SHOULD NOT", same},
	{Unsubscribed, "From + Pending Out", "MUST", "From"},
	{Unsubscribed, "Both", "MUST", "From"},
}

func stateNamed(t *testing.T, name string) State {
	t.Helper()
	for s := range numStates {
		if s.String() == name {
			return s
		}
	}
	t.Fatalf("no state named %q", name)
	return 0
}

func TestTables(t *testing.T) {
	for _, tc := range []struct {
		name string
		rows []row
		rule func(State, Type) Rule
	}{
		{"A.2 outbound", outboundRows, Outbound},
		{"A.3 inbound", inboundRows, Inbound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			covered := map[[2]int]bool{}
			for _, r := range tc.rows {
				t.Run(fmt.Sprintf("%s/%s", r.typ, r.existing), func(t *testing.T) {
					cur := stateNamed(t, r.existing)
					covered[[2]int{int(r.typ), int(cur)}] = true
					want := cur
					if r.next != same {
						want = stateNamed(t, r.next)
					}
					got := tc.rule(cur, r.typ)
					if got.Next != want {
						t.Errorf("new state %q, want %q", got.Next, want)
					}
					if got.Forward != (r.forward == "MUST") {
						t.Errorf("forward %v, want %s", got.Forward, r.forward)
					}
				})
			}
			if len(covered) != int(numTypes)*int(numStates) {
				t.Errorf("the rows cover %d of %d (type, state) pairs", len(covered), int(numTypes)*int(numStates))
			}
		})
	}
}

func TestAutoReply(t *testing.T) {
	for s := range numStates {
		for typ := range numTypes {
			want := typ == Subscribe && s.HasFrom()
			if got := Inbound(s, typ).AutoReply; got != want {
				t.Errorf("inbound %s in %q: AutoReply %v, want %v", typ, s, got, want)
			}
			if Outbound(s, typ).AutoReply {
				t.Errorf("outbound %s in %q has AutoReply", typ, s)
			}
		}
	}
}

func TestOf(t *testing.T) {
	for _, tc := range []struct {
		sub     storage.Subscription
		out, in bool
		want    State
	}{
		{"", false, false, None},
		{storage.SubNone, true, false, NonePendingOut},
		{storage.SubNone, false, true, NonePendingIn},
		{storage.SubNone, true, true, NonePendingOutIn},
		{storage.SubTo, false, true, ToPendingIn},
		{storage.SubTo, true, false, To},              // stale ask
		{storage.SubFrom, true, true, FromPendingOut}, // stale request
		{storage.SubBoth, true, true, Both},
	} {
		got := Of(tc.sub, tc.out, tc.in)
		if got != tc.want {
			t.Errorf("Of(%q, %v, %v) = %q, want %q", tc.sub, tc.out, tc.in, got, tc.want)
		}
	}
	// Every state survives the round trip through its parts.
	for s := range numStates {
		if got := Of(s.Subscription(), s.PendingOut(), s.PendingIn()); got != s {
			t.Errorf("round trip of %q gave %q", s, got)
		}
	}
}

func TestParseType(t *testing.T) {
	for typ := range numTypes {
		if got, ok := ParseType(typ.String()); !ok || got != typ {
			t.Errorf("ParseType(%q) = %v, %v", typ, got, ok)
		}
	}
	for _, s := range []string{"", "unavailable", "probe", "error", "Subscribe"} {
		if _, ok := ParseType(s); ok {
			t.Errorf("ParseType(%q) accepted", s)
		}
	}
}

// TestApply checks that moves are stored as the state's parts: the item's
// subscription and ask, and the stored request.
func TestApply(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "kontor.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	owner, contact := jid.MustParse("alice@example.com"), jid.MustParse("bob@example.com")

	steps := []struct {
		next        State
		wantChanged bool
	}{
		{NonePendingIn, false},   // a request is stored, no item is needed
		{NonePendingOutIn, true}, // the ask needs an item
		{ToPendingIn, true},
		{Both, true},
		{Both, false},
		{From, true},
		{None, true}, // the item stays, with subscription none
	}
	for _, step := range steps {
		e, err := Load(ctx, st, owner, contact)
		if err != nil {
			t.Fatal(err)
		}
		changed, ver, err := e.Apply(ctx, st, owner, step.next, []byte("<presence/>"))
		if err != nil {
			t.Fatal(err)
		}
		if changed != step.wantChanged || (changed && ver == 0) {
			t.Errorf("move to %q: changed %v (version %d), want %v", step.next, changed, ver, step.wantChanged)
		}
		again, err := Load(ctx, st, owner, contact)
		if err != nil {
			t.Fatal(err)
		}
		if again.State != step.next {
			t.Errorf("after moving to %q, Load says %q", step.next, again.State)
		}
	}
}

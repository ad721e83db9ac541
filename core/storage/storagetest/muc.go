package storagetest

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"kontor.im/kontor/core/storage"
)

// RunMUCRooms runs the conformance suite of storage.MUCRooms (the "muc"
// migration track). open follows the rules of Run.
func RunMUCRooms(t *testing.T, open func(t *testing.T) storage.Store) {
	st, ok := open(t).(storage.MUCRooms)
	if !ok {
		t.Fatal("the store does not implement storage.MUCRooms")
	}
	ctx := context.Background()
	rooms := func(service string) []storage.MUCRoom {
		t.Helper()
		got, err := st.MUCRooms(ctx, service)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := rooms("conference.example.com"); len(got) != 0 {
		t.Fatalf("empty store has rooms %v", got)
	}
	put := func(r storage.MUCRoom) {
		t.Helper()
		if err := st.PutMUCRoom(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	b := storage.MUCRoom{JID: "b@conference.example.com", Service: "conference.example.com", State: []byte{0, 1, 2, 0xff}}
	a := storage.MUCRoom{JID: "a@conference.example.com", Service: "conference.example.com", State: []byte("a")}
	other := storage.MUCRoom{JID: "a@muc.example.org", Service: "muc.example.org", State: []byte("o")}
	put(b)
	put(a)
	put(other)
	if got := rooms("conference.example.com"); !reflect.DeepEqual(got, []storage.MUCRoom{a, b}) {
		t.Fatalf("rooms %v, want a and b in order", got)
	}
	b.State = []byte("replaced")
	put(b)
	if got := rooms("conference.example.com"); len(got) != 2 || string(got[1].State) != "replaced" {
		t.Fatalf("after replace: %v", got)
	}
	if err := st.DeleteMUCRoom(ctx, a.JID); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteMUCRoom(ctx, "never@conference.example.com"); err != nil {
		t.Fatalf("deleting a room that is not stored: %v", err)
	}
	if got := rooms("conference.example.com"); len(got) != 1 || got[0].JID != b.JID {
		t.Fatalf("after delete: %v", got)
	}
	if got := rooms("muc.example.org"); fmt.Sprint(got) != fmt.Sprint([]storage.MUCRoom{other}) {
		t.Fatalf("other service: %v", got)
	}
	// The rooms are there after reopening (the same database).
	st2 := open(t).(storage.MUCRooms)
	if got, err := st2.MUCRooms(ctx, "conference.example.com"); err != nil || len(got) != 1 {
		t.Fatalf("after reopening: %v, %v", got, err)
	}
}

package main

// End-to-end test of room invitations with mellium.im/xmpp: a direct
// invitation (XEP-0249) goes client to client and mellium's invitation
// handler reads it; a mediated invitation (XEP-0045 §7.8.2) goes through
// the room, and the invitee's decline comes back to the inviter from the
// room.

import (
	"context"
	"fmt"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/muc"
	"mellium.im/xmpp/mux"
	"mellium.im/xmpp/stanza"
)

func TestE2EMUCInvitations(t *testing.T) {
	ts := startTestServer(t, "sqlite", nil)
	for _, u := range []string{"alice", "bob", "carol"} {
		ts.addUser(t, u, u+"-password")
	}
	room := jid.MustParse("lunch@conference.localhost")

	// Bob's client handles direct invitations with mellium's muc package.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	bs, bconn, err := ts.connect(ctx, "bob", "bob-password")
	if err != nil {
		t.Fatal(err)
	}
	invites := make(chan muc.Invitation, 4)
	bob := &testClient{Session: bs, name: "bob", conn: bconn, done: make(chan struct{})}
	go func() {
		defer close(bob.done)
		bob.err = bs.Serve(mux.New(stanza.NSClient, muc.HandleInvite(func(i muc.Invitation) { invites <- i })))
		bconn.Close()
	}()
	t.Cleanup(bob.close)
	bob.send(t, "<presence/>")

	alice := ts.dial(t, "alice", "alice-password")
	alice.send(t, "<presence/>")
	carol := ts.dial(t, "carol", "carol-password")
	carol.send(t, "<presence/>")
	alice.barrier(t)
	carol.barrier(t)

	// Direct: alice's client to bob's client, under the contact policy.
	if err := muc.Invite(ctx, jid.MustParse("bob@localhost"), muc.Invitation{JID: room, Reason: "noon?"}, alice.Session); err != nil {
		t.Fatalf("muc.Invite: %v", err)
	}
	select {
	case inv := <-invites:
		if !inv.JID.Equal(room) || inv.Reason != "noon?" {
			t.Fatalf("direct invitation %+v", inv)
		}
	case <-time.After(e2eWait):
		t.Fatal("bob got no direct invitation")
	}

	// Mediated: alice joins, invites carol through the room, carol
	// declines, alice hears it from the room.
	alice.send(t, fmt.Sprintf("<presence to='%s/Alice'><x xmlns='%s'/></presence>", room, muc.NS))
	alice.Messages.expect(t, "alice's subject", func(n xmlNode) bool { return n.child("", "subject") != nil })
	err = alice.Send(ctx, stanza.Message{To: room, Type: stanza.NormalMessage}.Wrap(
		muc.Invitation{JID: jid.MustParse("carol@localhost"), Reason: "join us"}.MarshalMediated()))
	if err != nil {
		t.Fatal(err)
	}
	inv := carol.Messages.expect(t, "mediated invitation", func(n xmlNode) bool {
		x := n.child(muc.NSUser, "x")
		return x != nil && x.child(muc.NSUser, "invite") != nil
	})
	if inv.attr("from") != room.String() || inv.child(muc.NSUser, "x").child(muc.NSUser, "invite").attr("from") != "alice@localhost" {
		t.Fatalf("mediated invitation %s", inv)
	}
	carol.send(t, fmt.Sprintf("<message to='%s'><x xmlns='%s'><decline to='alice@localhost'><reason>full today</reason></decline></x></message>", room, muc.NSUser))
	dec := alice.Messages.expect(t, "decline", func(n xmlNode) bool {
		x := n.child(muc.NSUser, "x")
		return x != nil && x.child(muc.NSUser, "decline") != nil
	})
	d := dec.child(muc.NSUser, "x").child(muc.NSUser, "decline")
	if dec.attr("from") != room.String() || d.attr("from") != "carol@localhost" || d.childText(muc.NSUser, "reason") != "full today" {
		t.Fatalf("decline %s", dec)
	}
	// A second decline has no invitation left: an error, nothing relayed.
	carol.send(t, fmt.Sprintf("<message to='%s' id='d2'><x xmlns='%s'><decline to='alice@localhost'/></x></message>", room, muc.NSUser))
	if e := carol.Messages.expect(t, "second decline refused", func(n xmlNode) bool { return n.attr("id") == "d2" }); e.attr("type") != "error" {
		t.Fatalf("second decline: %s", e)
	}
	alice.barrier(t)
	alice.Messages.none(t, "alice", func(n xmlNode) bool {
		x := n.child(muc.NSUser, "x")
		return x != nil && x.child(muc.NSUser, "decline") != nil
	})
}

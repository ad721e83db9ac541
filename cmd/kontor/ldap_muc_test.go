package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"kontor.im/kontor/ldapsync"
	"kontor.im/kontor/ldapsync/slapdtest"
)

// TestE2EDirectoryRoom: a room mapped to a directory group admits the
// group's members (as members) and nobody else, after the first sync
// against a real slapd.
func TestE2EDirectoryRoom(t *testing.T) {
	s := slapdtest.Start(t, slapdtest.Options{Seed: ldapSeed()})
	ts := startTestServer(t, "sqlite", func(c *Config) {
		c.LDAP.Enabled = true
		c.LDAP.Flavor = ldapsync.OpenLDAP
		c.LDAP.URLs = []string{s.URL}
		c.LDAP.CAFile = s.CAFile
		c.LDAP.BindDN, c.LDAP.BindPassword = slapdtest.ServiceDN, slapdtest.ServicePassword
		c.LDAP.Users.BaseDN, c.LDAP.Groups.BaseDN = ldapPeople, ldapGroups
		c.LDAP.Sync.Interval = time.Hour
		if c.Modules.Options == nil {
			c.Modules.Options = map[string]any{}
		}
		c.Modules.Options["muc"] = map[string]any{
			"directory_rooms": []any{map[string]any{"group": "Team", "room": "team", "name": "The team"}},
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := ts.srv.store.Account(context.Background(), "carol@"+e2eDomain); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first sync did not run within 30 s\n%s", ts.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	room := "team@conference." + e2eDomain
	join := func(user string) xmlNode {
		t.Helper()
		c := ts.dial(t, user, ldapPassword(user))
		c.send(t, fmt.Sprintf("<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'/></presence>", room, user))
		return c.Presences.expect(t, user+"'s answer from the room", func(n xmlNode) bool {
			return n.attr("from") == room+"/"+user
		})
	}
	// The snapshot reaches the module right after the accounts are
	// written: wait until alice is admitted.
	var p xmlNode
	for {
		p = join("alice")
		if p.attr("type") != "error" || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	x := p.child("http://jabber.org/protocol/muc#user", "x")
	if p.attr("type") == "error" || x == nil || x.child("http://jabber.org/protocol/muc#user", "item").attr("affiliation") != "member" {
		t.Fatalf("alice, in Team, got %s", p)
	}
	if p := join("carol"); p.attr("type") != "error" || func() string { _, c := p.stanzaError(); return c }() != "registration-required" {
		t.Fatalf("carol, not in Team, got %s", p)
	}
}

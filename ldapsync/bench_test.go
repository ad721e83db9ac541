package ldapsync

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

func BenchmarkDNKey(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := dnKey(`CN=Doe\2C Jane,OU=Sales,OU=People,DC=corp,DC=example,DC=com`); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGUIDString(b *testing.B) {
	g, _ := GUIDFromBytes([]byte("\xff\x19\x96\x6f\x86\x8b\x11\xd0\xb4\x2d\x00\xc0\x4f\xc9\x64\xff"))
	b.ReportAllocs()
	for b.Loop() {
		_ = g.String()
	}
}

func BenchmarkBindReason(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		BindReasonOf("80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error, data 775, v4563")
	}
}

func BenchmarkMapUser(b *testing.B) {
	m := newMapper(Config{Flavor: ActiveDirectory}.Resolved(), "example.com")
	e := adEntry("CN=Jürgen Groß,OU=Staff,DC=corp,DC=example", []byte("\xff\x19\x96\x6f\x86\x8b\x11\xd0\xb4\x2d\x00\xc0\x4f\xc9\x64\xff"),
		map[string]string{"sAMAccountName": "jgross", "displayName": "Jürgen Groß", "mail": "j@corp.example",
			"userAccountControl": "512", "accountExpires": "0", "primaryGroupID": "513"})
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.mapUser(e, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkResolveGroups resolves the scale test's groups: 10,000 users
// in 1,000 teams, 10 departments and one group of the departments.
func BenchmarkResolveGroups(b *testing.B) {
	users := map[string]string{}
	groups := map[string]*group{}
	var depts []string
	for d := range 10 {
		var deptMembers []string
		for i := range 1000 {
			dn := fmt.Sprintf("uid=u%05d,ou=Dept%02d,dc=x", d*1000+i, d)
			k, _ := dnKey(dn)
			users[k] = fmt.Sprint(d*1000 + i)
			deptMembers = append(deptMembers, dn)
		}
		for t := 0; t < 1000; t += 10 {
			dn := fmt.Sprintf("cn=Team %d-%d,dc=x", d, t)
			k, _ := dnKey(dn)
			groups[dn] = &group{StableID: dn, DN: dn, DNKey: k, Name: dn, Members: deptMembers[t : t+10]}
		}
		dn := fmt.Sprintf("cn=Dept%02d,dc=x", d)
		k, _ := dnKey(dn)
		groups[dn] = &group{StableID: dn, DN: dn, DNKey: k, Name: dn, Members: deptMembers}
		depts = append(depts, dn)
	}
	k, _ := dnKey("cn=All,dc=x")
	groups["all"] = &group{StableID: "all", DN: "cn=All,dc=x", DNKey: k, Name: "All", Members: depts}
	keys := dnKeys{}
	b.ReportAllocs()
	for b.Loop() {
		res := resolveGroups(groups, users, nil, keys)
		if len(res.flat["all"]) != 10000 {
			b.Fatalf("All has %d members", len(res.flat["all"]))
		}
	}
}

func BenchmarkBadPasswordCache(b *testing.B) {
	c := newBadPasswords(time.Minute, 10000)
	k := c.key("a@example.com", "stale", []byte(`{"username":"a"}`))
	c.add(k)
	b.ReportAllocs()
	for b.Loop() {
		if !c.has(c.key("a@example.com", "stale", []byte(`{"username":"a"}`))) {
			b.Fatal("miss")
		}
	}
}

// BenchmarkVerifyPlain is a login by bind against slapd (over StartTLS,
// pooled connections), the DN found by the stable id.
func BenchmarkVerifyPlain(b *testing.B) {
	e := newEnv(b, "sqlite", treeLDIF(treeUsers(b)), func(c *Config) { c.Groups.Roster = false; c.Login.BadPasswordCache = 0 })
	e.sync(b, SyncOptions{})
	a, err := NewAuthenticator(AuthOptions{Config: e.cfg, Domain: testDomain, Store: e.store, Client: e.client, Log: e.syncer.log})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := a.VerifyPlain(ctx, "s01", password("s01")); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSearchPaged reads the 50 users of the test tree, 10 per page.
func BenchmarkSearchPaged(b *testing.B) {
	e := newEnv(b, "sqlite", treeLDIF(treeUsers(b)), nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		err := e.client.searchPaged(ctx, peopleDN, "(objectClass=inetOrgPerson)", []string{"uid"}, []ldap.Control(nil), 10, func(p page) error {
			n += len(p.entries)
			return nil
		})
		if err != nil || n != 50 {
			b.Fatalf("%d entries, %v", n, err)
		}
	}
}

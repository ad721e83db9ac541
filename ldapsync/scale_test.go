// The scale test needs about a minute without the race detector and far
// longer with it (every SQL statement of modernc.org/sqlite is
// instrumented), so it is left out of race builds; CI runs it in a step of
// its own without -race.

//go:build !race

package ldapsync

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// scaleUsers is the size of the scale test's directory.
const scaleUsers = 10000

// scaleSeed is a company of scaleUsers people in 10 departments (OUs), in
// teams of 10 (groups that become shared roster groups), department groups
// of 1000 (too large for rosters: the policy engine only) and one group
// holding the departments (nested, 10000 members).
func scaleSeed() []byte {
	var b strings.Builder
	ou := func(dn, name string) {
		entryLDIF(&b, dn, [2]string{"objectClass", "organizationalUnit"}, [2]string{"ou", name})
	}
	ou(corpDN, "Corp")
	ou(peopleDN, "People")
	ou(groupsDN, "Groups")
	const depts, teamSize = 10, 10
	perDept := scaleUsers / depts
	var deptGroups []string
	for d := range depts {
		dept := fmt.Sprintf("Dept%02d", d)
		ou("ou="+dept+","+peopleDN, dept)
		var members []string
		for i := range perDept {
			uid := fmt.Sprintf("u%05d", d*perDept+i)
			dn := "uid=" + uid + ",ou=" + dept + "," + peopleDN
			members = append(members, dn)
			entryLDIF(&b, dn, [2]string{"objectClass", "inetOrgPerson"}, [2]string{"uid", uid},
				[2]string{"cn", "User " + uid}, [2]string{"sn", uid}, [2]string{"displayName", "User " + uid},
				[2]string{"mail", uid + "@corp.example.com"}, [2]string{"departmentNumber", dept},
				[2]string{"telephoneNumber", "+49 30 " + uid}, [2]string{"userPassword", password(uid)})
		}
		for t := 0; t < perDept; t += teamSize {
			attrs := [][2]string{{"objectClass", "groupOfNames"}, {"cn", fmt.Sprintf("%s Team %03d", dept, t/teamSize)}}
			for _, m := range members[t : t+teamSize] {
				attrs = append(attrs, [2]string{"member", m})
			}
			entryLDIF(&b, fmt.Sprintf("cn=%s Team %03d,%s", dept, t/teamSize, groupsDN), attrs...)
		}
		attrs := [][2]string{{"objectClass", "groupOfNames"}, {"cn", dept}}
		for _, m := range members {
			attrs = append(attrs, [2]string{"member", m})
		}
		entryLDIF(&b, "cn="+dept+","+groupsDN, attrs...)
		deptGroups = append(deptGroups, "cn="+dept+","+groupsDN)
	}
	attrs := [][2]string{{"objectClass", "groupOfNames"}, {"cn", "All"}}
	for _, g := range deptGroups {
		attrs = append(attrs, [2]string{"member", g})
	}
	entryLDIF(&b, "cn=All,"+groupsDN, attrs...)
	return []byte(b.String())
}

// TestScale syncs 10,000 users (slapadd) on both backends and logs the
// full and incremental sync times (README.md reports them).
func TestScale(t *testing.T) {
	seed := scaleSeed()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			start := time.Now()
			e := newEnv(t, backend, seed, func(c *Config) { c.PageSize = 1000 })
			t.Logf("%s: slapd with %d users started in %v", backend, scaleUsers, time.Since(start).Round(time.Millisecond))

			rep := e.sync(t, SyncOptions{})
			if rep.Created != scaleUsers || len(rep.Errors) != 0 {
				t.Fatalf("full sync created %d, errors %v", rep.Created, rep.Errors)
			}
			t.Logf("%s: first full sync: %v (%d users, %d groups, %d roster items)", backend,
				rep.Duration.Round(time.Millisecond), rep.Read, rep.GroupsRead, rep.Roster)

			rep = e.sync(t, SyncOptions{Full: true})
			if len(rep.Changes) != 0 {
				t.Fatalf("second full sync: %d changes", len(rep.Changes))
			}
			t.Logf("%s: full sync without changes: %v", backend, rep.Duration.Round(time.Millisecond))

			admin := e.slapd.Admin(t)
			const changed = 100
			for i := range changed {
				uid := fmt.Sprintf("u%05d", i*97)
				dn := fmt.Sprintf("uid=%s,ou=Dept%02d,%s", uid, i*97/(scaleUsers/10), peopleDN)
				req := ldap.NewModifyRequest(dn, nil)
				req.Replace("telephoneNumber", []string{"+49 40 " + uid})
				if err := admin.Modify(req); err != nil {
					t.Fatal(err)
				}
			}
			rep = e.sync(t, SyncOptions{})
			if rep.Mode != Incremental || rep.Read != changed || rep.Updated != changed || len(rep.Errors) != 0 {
				t.Fatalf("incremental sync: mode %s, read %d, updated %d, errors %v", rep.Mode, rep.Read, rep.Updated, rep.Errors)
			}
			t.Logf("%s: incremental sync of %d changed users: %v", backend, changed, rep.Duration.Round(time.Millisecond))
			for _, line := range strings.Split(e.log(), "\n") {
				if strings.Contains(line, "sync done") {
					t.Log(line[strings.Index(line, "mode="):])
				}
			}
			accounts, err := e.store.ListAccounts(context.Background(), testDomain)
			if err != nil || len(accounts) != scaleUsers {
				t.Fatalf("%d accounts, %v", len(accounts), err)
			}
		})
	}
}

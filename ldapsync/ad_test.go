//go:build samba

// The Active Directory suite: the same sync and login against a real AD
// domain controller (Samba), provisioned by ldapsync/sambatest. It is a
// separate test target because provisioning takes a while:
//
//	go test -tags samba -count=1 -run 'TestAD' ./ldapsync/...

package ldapsync

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/go-ldap/ldap/v3"

	"kontor.im/kontor/core/directory"
	"kontor.im/kontor/core/sasl"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/ldapsync/sambatest"
)

const (
	adServiceUser     = "svc-kontor"
	adServicePassword = "Service-Passw0rd!"
	adLockoutAfter    = 3 // bad passwords before the domain locks an account
)

var adSetupOnce sync.Once

// adDC returns the shared DC with the domain-wide settings of this suite:
// a service account for Kontor and a lockout policy.
func adDC(t *testing.T) *sambatest.DC {
	t.Helper()
	dc := sambatest.Start(t)
	adSetupOnce.Do(func() {
		dc.Tool(t, "user", "create", adServiceUser, adServicePassword, "--description=Kontor directory sync")
		dc.Tool(t, "domain", "passwordsettings", "set", fmt.Sprintf("--account-lockout-threshold=%d", adLockoutAfter),
			"--account-lockout-duration=30", "--reset-account-lockout-after=30")
	})
	return dc
}

// adOU makes an OU of the test's own with Staff and Groups below it, and
// returns its DN.
func adOU(t *testing.T, dc *sambatest.DC, name string) string {
	t.Helper()
	ou := "OU=" + name + "," + sambatest.BaseDN
	dc.Tool(t, "ou", "add", "OU="+name)
	dc.Tool(t, "ou", "add", "OU=Staff,OU="+name)
	dc.Tool(t, "ou", "add", "OU=Groups,OU="+name)
	return ou
}

func unicodePwd(pw string) string {
	u := utf16.Encode([]rune(`"` + pw + `"`))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return string(b)
}

type adUser struct {
	sam, given, sn, display string
	dept, company, phone    string
	photo                   []byte
}

// adAddUser adds an enabled user over LDAPS (faster than samba-tool) and
// returns its DN.
func adAddUser(t *testing.T, admin *ldap.Conn, ou string, u adUser) string {
	t.Helper()
	dn := "CN=" + ldap.EscapeDN(u.display) + ",OU=Staff," + ou
	add := ldap.NewAddRequest(dn, nil)
	add.Attribute("objectClass", []string{"top", "person", "organizationalPerson", "user"})
	add.Attribute("sAMAccountName", []string{u.sam})
	add.Attribute("userPrincipalName", []string{u.sam + "@kontor.test"})
	add.Attribute("displayName", []string{u.display})
	add.Attribute("mail", []string{u.sam + "@corp.example"})
	for k, v := range map[string]string{"givenName": u.given, "sn": u.sn, "department": u.dept, "company": u.company, "telephoneNumber": u.phone} {
		if v != "" {
			add.Attribute(k, []string{v})
		}
	}
	if len(u.photo) > 0 {
		add.Attribute("thumbnailPhoto", []string{string(u.photo)})
	}
	add.Attribute("unicodePwd", []string{unicodePwd(password(u.sam))})
	add.Attribute("userAccountControl", []string{"512"})
	if err := admin.Add(add); err != nil {
		t.Fatalf("add %s: %v", dn, err)
	}
	return dn
}

func adModify(t *testing.T, admin *ldap.Conn, dn string, f func(*ldap.ModifyRequest)) {
	t.Helper()
	req := ldap.NewModifyRequest(dn, nil)
	f(req)
	if err := admin.Modify(req); err != nil {
		t.Fatalf("modify %s: %v", dn, err)
	}
}

func adConfig(dc *sambatest.DC, ou string) Config {
	return Config{
		Enabled: true, Flavor: ActiveDirectory, URLs: []string{dc.LDAPSURL}, StartTLS: true, CAFile: dc.CAFile,
		TLSServerName: dc.Addr, BindDN: adServiceUser + "@kontor.test", BindPassword: adServicePassword,
		DialTimeout: 5 * time.Second, RequestTimeout: 30 * time.Second,
		ReconnectBackoff: 50 * time.Millisecond, MaxReconnectBackoff: 200 * time.Millisecond, PageSize: 1000,
		Users:  UsersConfig{BaseDN: "OU=Staff," + ou, KindAttribute: "employeeType", GuestValues: []string{"Guest"}},
		Groups: GroupsConfig{BaseDN: "OU=Groups," + ou, Roster: true, MaxRosterSize: 500},
		Sync:   SyncConfig{Interval: time.Minute, FullInterval: 24 * time.Hour, DeleteAfter: time.Hour, MaxGonePercent: 50},
		Login:  LoginConfig{Enabled: true, PoolSize: 2, BadPasswordCache: time.Minute},
	}
}

// TestADSync: full sync, then changes made with samba-tool and over LDAP,
// an incremental sync by uSNChanged that reads only them (and finds the
// deletion from the scan of objectGUIDs), and a lockout.
func TestADSync(t *testing.T) {
	dc := adDC(t)
	ou := adOU(t, dc, "SyncTest")
	admin := dc.Admin(t)
	dn := map[string]string{}
	for i := 1; i <= 6; i++ {
		sam := fmt.Sprintf("s%d", i)
		dn[sam] = adAddUser(t, admin, ou, adUser{sam: sam, given: "S", sn: fmt.Sprint(i), display: fmt.Sprintf("Sales %d", i), dept: "Sales", company: "Kontor"})
	}
	dn["jgross"] = adAddUser(t, admin, ou, adUser{sam: "jgross", given: "Jürgen", sn: "Groß", display: "Jürgen Groß",
		dept: "Engineering", phone: "+49 30 5555", photo: testPhoto(t, 99)})
	dn["doe"] = adAddUser(t, admin, ou, adUser{sam: "jdoe", given: "Jane", sn: "Doe", display: "Doe, Jane", dept: "Sales"})
	// With samba-tool, as an administrator would: a disabled user and one
	// that will be deleted.
	dc.Tool(t, "user", "create", "dora", password("dora"), "--userou=OU=Staff,OU=SyncTest", "--given-name=Dora", "--surname=Disabled")
	dc.Tool(t, "user", "disable", "dora")
	dc.Tool(t, "user", "create", "leaver", password("leaver"), "--userou=OU=Staff,OU=SyncTest", "--given-name=Lea", "--surname=Leaver")
	// Groups: nested, with a cycle.
	for _, g := range []string{"Sales", "Sales EU", "Everyone", "Cycle A", "Cycle B"} {
		dc.Tool(t, "group", "add", g, "--groupou=OU=Groups,OU=SyncTest")
	}
	dc.Tool(t, "group", "addmembers", "Sales", "s1,s2,s3,dora,Sales EU")
	dc.Tool(t, "group", "addmembers", "Sales EU", "s4,jdoe")
	dc.Tool(t, "group", "addmembers", "Everyone", "Sales,jgross,leaver")
	dc.Tool(t, "group", "addmembers", "Cycle A", "Cycle B,s5")
	dc.Tool(t, "group", "addmembers", "Cycle B", "Cycle A,s6")

	e := newEnvFor(t, "sqlite", adConfig(dc, ou))
	rep := e.sync(t, SyncOptions{Reason: "test"})
	const n = 10 // s1..s6, jgross, jdoe, dora, leaver
	if rep.Mode != Full || rep.Created != n || len(rep.Errors) != 0 {
		t.Fatalf("first sync: %s, created %d, errors %v\n%s", rep.Mode, rep.Created, rep.Errors, reportText(rep))
	}
	ctx := context.Background()
	t.Run("first sync", func(t *testing.T) {
		tests := []struct {
			name  string
			check func(t *testing.T)
		}{
			{"the service account and built-in accounts are not synced", func(t *testing.T) {
				for _, u := range []string{"administrator", "krbtgt", "guest", adServiceUser} {
					if _, err := e.store.Account(ctx, jidOf(u)); !errors.Is(err, storage.ErrNotFound) {
						t.Errorf("%s has an account (%v)", u, err)
					}
				}
			}},
			{"the disabled user (userAccountControl) is disabled", func(t *testing.T) {
				if !mustAccount(t, e.store, jidOf("dora")).Disabled || mustAccount(t, e.store, jidOf("s1")).Disabled {
					t.Error("dora enabled or s1 disabled")
				}
			}},
			{"objectGUID is the stable id, in canonical form", func(t *testing.T) {
				l, err := e.store.LDAPLinkByJID(ctx, Source, jidOf("s1"))
				if err != nil {
					t.Fatal(err)
				}
				res, err := admin.Search(ldap.NewSearchRequest(dn["s1"], ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)", []string{"objectGUID"}, nil))
				if err != nil {
					t.Fatal(err)
				}
				g, _ := GUIDFromBytes(res.Entries[0].GetRawAttributeValue("objectGUID"))
				if l.StableID != g.String() {
					t.Errorf("stable id %s, objectGUID %s", l.StableID, g)
				}
				// Found again through the escaped bytes in a filter.
				if got, err := e.syncer.findDN(ctx, l.StableID); err != nil || !strings.EqualFold(got, dn["s1"]) {
					t.Errorf("findDN = %q, %v; want %s", got, err, dn["s1"])
				}
			}},
			{"the vCard has the non-ASCII name and the thumbnail photo", func(t *testing.T) {
				v, err := e.store.VCard(ctx, jidOf("jgross"))
				if err != nil || !strings.Contains(string(v), "<FN>Jürgen Groß</FN>") || !strings.Contains(string(v), base64Of(testPhoto(t, 99))) {
					t.Errorf("vCard: %v\n%s", err, v)
				}
			}},
			{"nested groups, a DN with an escaped comma and a cycle resolve", func(t *testing.T) {
				snap := e.sink.last(t)
				groups := map[string]directory.Group{}
				for _, g := range snap.Groups {
					groups[g.Name] = g
				}
				want := map[string][]string{
					"Sales":    {jidOf("dora"), jidOf("jdoe"), jidOf("s1"), jidOf("s2"), jidOf("s3"), jidOf("s4")},
					"Everyone": {jidOf("dora"), jidOf("jdoe"), jidOf("jgross"), jidOf("leaver"), jidOf("s1"), jidOf("s2"), jidOf("s3"), jidOf("s4")},
					"Cycle A":  {jidOf("s5"), jidOf("s6")},
					"Cycle B":  {jidOf("s5"), jidOf("s6")},
				}
				for name, members := range want {
					if !slices.Equal(groups[name].Members, members) {
						t.Errorf("%s = %v, want %v", name, groups[name].Members, members)
					}
				}
				if len(rep.Cycles) != 1 {
					t.Errorf("cycles = %v", rep.Cycles)
				}
				if it := rosterOf(t, e.store, jidOf("s4"))[jidOf("jdoe")]; !slices.Equal(it.Groups, []string{"Everyone", "Sales", "Sales EU"}) || it.Name != "Doe, Jane" {
					t.Errorf("s4's item for Jane Doe = %+v", it)
				}
				if it := rosterOf(t, e.store, jidOf("s1"))[jidOf("jdoe")]; !slices.Equal(it.Groups, []string{"Everyone", "Sales"}) {
					t.Errorf("s1's item for Jane Doe = %+v (s1 is in Sales, not Sales EU)", it)
				}
			}},
		}
		for _, tt := range tests {
			t.Run(tt.name, tt.check)
		}
	})

	// Changes: over LDAP, with samba-tool, and a lockout by bad passwords.
	adModify(t, admin, dn["s1"], func(r *ldap.ModifyRequest) { r.Replace("displayName", []string{"Sabine Neu"}) })
	dc.Tool(t, "user", "disable", "s2")
	dc.Tool(t, "user", "enable", "dora")
	dc.Tool(t, "user", "delete", "leaver")
	if err := admin.ModifyDN(ldap.NewModifyDNRequest(dn["s5"], "CN=Sales Fuenf", true, "")); err != nil {
		t.Fatal(err)
	}
	for range adLockoutAfter {
		conn, err := ldap.DialURL(dc.LDAPSURL, ldap.DialWithTLSConfig(dc.TLSConfig()))
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.Bind(dn["s6"], "wrong-password")
		conn.Close()
	}

	rep = e.sync(t, SyncOptions{})
	want := []string{
		"disable " + jidOf("s2"),
		"disable " + jidOf("s6"),
		"enable " + jidOf("dora"),
		"retire " + jidOf("leaver"),
		"update " + jidOf("s1"),
		"update " + jidOf("s5"),
	}
	if got := opsOf(rep, OpCreate, OpUpdate, OpDisable, OpEnable, OpRetire, OpDelete); rep.Mode != Incremental || !slices.Equal(got, want) || len(rep.Errors) != 0 {
		t.Errorf("incremental sync (%s): %v, errors %v; want %v\n%s", rep.Mode, got, rep.Errors, want, reportText(rep))
	}
	// Read: only the changed users (s1, s2, dora, s5, s6), not the rest.
	if rep.Read > 5 {
		t.Errorf("the incremental sync read %d users, want only the 5 changed", rep.Read)
	}
	if !slices.ContainsFunc(rep.Changes, func(c Change) bool { return c.JID == jidOf("s6") && c.Detail == "locked out" }) {
		t.Errorf("s6 is not disabled as locked out:\n%s", reportText(rep))
	}
	if it := rosterOf(t, e.store, jidOf("s3"))[jidOf("dora")]; !slices.Contains(it.Groups, "Sales") {
		t.Errorf("dora (enabled again) is not in s3's roster: %+v", it)
	}
	if _, ok := rosterOf(t, e.store, jidOf("s1"))[jidOf("leaver")]; ok {
		t.Error("the deleted user is still in s1's roster")
	}

	// A full sync agrees.
	rep = e.sync(t, SyncOptions{Full: true})
	if got := opsOf(rep, OpCreate, OpUpdate, OpDisable, OpEnable, OpRetire, OpDelete); len(got) != 0 || len(rep.Errors) != 0 {
		t.Errorf("full sync after the incremental one: %v, errors %v\n%s", got, rep.Errors, reportText(rep))
	}
}

// TestADLogin: logins by bind, and Active Directory's sub-codes as log
// reasons; the client only ever learns not-authorized.
func TestADLogin(t *testing.T) {
	dc := adDC(t)
	ou := adOU(t, dc, "LoginTest")
	admin := dc.Admin(t)
	dn := map[string]string{}
	for _, sam := range []string{"ok1", "dis1", "exp1", "chg1", "lock1"} {
		dn[sam] = adAddUser(t, admin, ou, adUser{sam: sam, given: "L", sn: sam, display: "Login " + sam})
	}
	e := newEnvFor(t, "sqlite", adConfig(dc, ou))
	e.sync(t, SyncOptions{})
	a, err := NewAuthenticator(AuthOptions{Config: e.cfg, Domain: testDomain, Store: e.store, Client: e.client, Log: e.syncer.log})
	if err != nil {
		t.Fatal(err)
	}
	// After the sync, so that the accounts exist here and only the
	// directory refuses.
	dc.Tool(t, "user", "disable", "dis1")
	adModify(t, admin, dn["exp1"], func(r *ldap.ModifyRequest) {
		r.Replace("accountExpires", []string{toFileTime(time.Now().Add(-48 * time.Hour))})
	})
	adModify(t, admin, dn["chg1"], func(r *ldap.ModifyRequest) { r.Replace("pwdLastSet", []string{"0"}) })
	for range adLockoutAfter {
		conn, err := ldap.DialURL(dc.LDAPSURL, ldap.DialWithTLSConfig(dc.TLSConfig()))
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.Bind(dn["lock1"], "wrong-password")
		conn.Close()
	}
	ctx := context.Background()
	tests := []struct {
		name, user, password string
		want                 error
		reason               BindReason
	}{
		{"right password", "ok1", password("ok1"), nil, ""},
		{"wrong password: 52e", "ok1", "wrong", sasl.ErrBadPassword, ReasonWrongPassword},
		{"disabled: 533", "dis1", password("dis1"), sasl.ErrBadPassword, ReasonAccountDisabled},
		{"account expired: 701", "exp1", password("exp1"), sasl.ErrBadPassword, ReasonAccountExpired},
		{"must change the password: 773", "chg1", password("chg1"), sasl.ErrBadPassword, ReasonMustChangePassword},
		{"locked out: 775", "lock1", password("lock1"), sasl.ErrBadPassword, ReasonAccountLocked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := a.VerifyPlain(ctx, tt.user, tt.password)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("VerifyPlain = %v, want %v", err, tt.want)
			}
			if tt.reason != "" && !strings.Contains(e.log(), fmt.Sprintf("msg=\"login refused by the directory\" account=%s reason=\"%s\"", jidOf(tt.user), tt.reason)) {
				t.Errorf("the log lacks reason %q for %s:\n%s", tt.reason, tt.user, e.log())
			}
		})
	}
	t.Run("no such user: 525", func(t *testing.T) {
		err := e.client.bindAs(ctx, "nobody@kontor.test", "whatever")
		var be *BindError
		if !errors.As(err, &be) || be.Reason != ReasonNoSuchUser && be.Reason != ReasonWrongPassword {
			t.Fatalf("bind as a user that does not exist: %v", err)
		}
		// Windows says 525; Samba says 52e, so as not to tell whether a
		// user exists. Either is refused.
		t.Logf("Samba's sub-code for an unknown user: %x (%s)", be.SubCode, be.Reason)
	})
	if strings.Contains(e.log(), password("ok1")) {
		t.Error("a password is in the log")
	}
}

// TestADRangedRetrieval reads a group's members range by range, as Active
// Directory hands out large groups (1500 values per range).
func TestADRangedRetrieval(t *testing.T) {
	dc := adDC(t)
	ou := adOU(t, dc, "RangeTest")
	admin := dc.Admin(t)
	var sams []string
	for i := range 30 {
		sam := fmt.Sprintf("r%02d", i)
		adAddUser(t, admin, ou, adUser{sam: sam, given: "R", sn: sam, display: "Range " + sam})
		sams = append(sams, sam)
	}
	dc.Tool(t, "group", "add", "Big", "--groupou=OU=Groups,OU=RangeTest")
	dc.Tool(t, "group", "addmembers", "Big", strings.Join(sams, ","))
	e := newEnvFor(t, "sqlite", adConfig(dc, ou))
	groupDN := "CN=Big,OU=Groups," + ou
	ctx := context.Background()
	// Ask for the first ten values only, as a server with a small
	// MaxValRange would give them.
	first, err := e.client.searchBase(ctx, groupDN, []string{"member;range=0-9"}, nil)
	if err != nil || first == nil {
		t.Fatalf("reading the first range: %v", err)
	}
	var r valueRange
	var values []string
	for _, at := range first.Attributes {
		if rr, ok := parseRange(at.Name, "member"); ok {
			r, values = rr, at.Values
		}
	}
	if len(values) != 10 || r.last {
		t.Fatalf("first range: %d values, %+v", len(values), r)
	}
	all, err := e.client.rangedValues(ctx, groupDN, "member", values, r)
	if err != nil || len(all) != 30 {
		t.Fatalf("rangedValues: %d values, %v; want 30", len(all), err)
	}
	slices.Sort(all)
	if len(slices.Compact(all)) != 30 {
		t.Error("ranges overlap")
	}
	rep := e.sync(t, SyncOptions{})
	if rep.Created != 30 {
		t.Fatalf("created %d", rep.Created)
	}
	if snap := e.sink.last(t); len(snap.Groups) != 1 {
		t.Errorf("groups %v", snap.Groups)
	} else {
		for _, g := range snap.Groups {
			if len(g.Members) != 30 {
				t.Errorf("Big has %d members, want 30", len(g.Members))
			}
		}
	}
}

// TestADPasswordChangeRevokesFAST: a password set in Active Directory
// changes pwdLastSet; the next sync revokes the account's FAST tokens
// (XEP-0484) and only that account's.
func TestADPasswordChangeRevokesFAST(t *testing.T) {
	dc := adDC(t)
	ou := adOU(t, dc, "FASTTest")
	admin := dc.Admin(t)
	for _, sam := range []string{"fast1", "fast2"} {
		adAddUser(t, admin, ou, adUser{sam: sam, given: "F", sn: sam, display: "FAST " + sam})
	}
	e := newEnvFor(t, "sqlite", adConfig(dc, ou))
	e.sync(t, SyncOptions{})
	ctx := context.Background()
	j1, j2 := "fast1@"+testDomain, "fast2@"+testDomain
	l, err := e.store.LDAPLinkByJID(ctx, Source, j1)
	if err != nil {
		t.Fatal(err)
	}
	if a := decodeAttrs(l.Attrs); a.PasswordStamp == "" || a.PasswordStamp == "0" {
		t.Fatalf("pwdLastSet not recorded: %s", l.Attrs)
	}
	for _, j := range []string{j1, j2} {
		if err := e.store.PutFASTToken(ctx, j, storage.FASTToken{Client: "phone", Mechanism: "HT-SHA-256-NONE",
			Secret: []byte(strings.Repeat("s", 32)), Expires: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	dc.Tool(t, "user", "setpassword", "fast1", "--newpassword=Changed-Passw0rd!")
	rep := e.sync(t, SyncOptions{})
	if tok, err := e.store.FASTTokens(ctx, j1, "phone"); err != nil || len(tok) != 0 {
		t.Errorf("after the password change %s has %d tokens (%v), want none\n%s", j1, len(tok), err, reportText(rep))
	}
	if tok, err := e.store.FASTTokens(ctx, j2, "phone"); err != nil || len(tok) != 1 {
		t.Errorf("%s, whose password did not change, has %d tokens (%v), want 1", j2, len(tok), err)
	}
}

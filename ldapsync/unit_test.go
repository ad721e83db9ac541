package ldapsync

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"kontor.im/kontor/core/directory"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/xmlstream"
)

func TestGUID(t *testing.T) {
	seq := make([]byte, 16)
	for i := range seq {
		seq[i] = byte(i)
	}
	ms := []byte{0xFF, 0x19, 0x96, 0x6F, 0x86, 0x8B, 0x11, 0xD0, 0xB4, 0x2D, 0x00, 0xC0, 0x4F, 0xC9, 0x64, 0xFF}
	tests := []struct {
		name   string
		raw    []byte
		str    string
		filter string
	}{
		{"bytes 00..0f: the first three fields reversed", seq, "03020100-0504-0706-0809-0a0b0c0d0e0f",
			`\00\01\02\03\04\05\06\07\08\09\0a\0b\0c\0d\0e\0f`},
		{"Microsoft's documentation example", ms, "6f9619ff-8b86-d011-b42d-00c04fc964ff",
			`\ff\19\96\6f\86\8b\11\d0\b4\2d\00\c0\4f\c9\64\ff`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := GUIDFromBytes(tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			if got := g.String(); got != tt.str {
				t.Errorf("String() = %s, want %s", got, tt.str)
			}
			if got := g.FilterValue(); got != tt.filter {
				t.Errorf("FilterValue() = %s, want %s", got, tt.filter)
			}
			for _, in := range []string{tt.str, strings.ToUpper(tt.str), "{" + strings.ToUpper(tt.str) + "}"} {
				back, err := ParseGUID(in)
				if err != nil || back != g {
					t.Errorf("ParseGUID(%s) = %x, %v; want %x", in, back, err, g)
				}
			}
			// The escaped filter compiles to the raw bytes.
			p, err := ldap.CompileFilter("(objectGUID=" + g.FilterValue() + ")")
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Children[1].Data.Bytes(); string(got) != string(tt.raw) {
				t.Errorf("the filter's assertion value is %x, want %x", got, tt.raw)
			}
		})
	}
	bad := []struct {
		name string
		in   string
	}{
		{"too short", "03020100-0504-0706-0809-0a0b0c0d0e0"},
		{"dashes misplaced", "030201000-504-0706-0809-0a0b0c0d0e0f"},
		{"not hex", "0302010g-0504-0706-0809-0a0b0c0d0e0f"},
		{"one brace", "{03020100-0504-0706-0809-0a0b0c0d0e0f"},
		{"empty", ""},
	}
	for _, tt := range bad {
		t.Run("bad/"+tt.name, func(t *testing.T) {
			if _, err := ParseGUID(tt.in); !errors.Is(err, ErrBadGUID) {
				t.Errorf("ParseGUID(%q) = %v, want ErrBadGUID", tt.in, err)
			}
		})
	}
	for _, n := range []int{0, 15, 17} {
		if _, err := GUIDFromBytes(make([]byte, n)); !errors.Is(err, ErrBadGUID) {
			t.Errorf("GUIDFromBytes(%d bytes) = %v, want ErrBadGUID", n, err)
		}
	}
}

func TestBindReason(t *testing.T) {
	tests := []struct {
		name   string
		diag   string
		reason BindReason
		code   uint32
	}{
		{"Windows: wrong password", "80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error, data 52e, v4563", ReasonWrongPassword, 0x52e},
		{"Samba: wrong password", "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 52e, v1db1", ReasonWrongPassword, 0x52e},
		{"no such user", "80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error, data 525, v4563", ReasonNoSuchUser, 0x525},
		{"not permitted now", "... AcceptSecurityContext error, data 530, v4563", ReasonNotPermittedNow, 0x530},
		{"not permitted here", "... AcceptSecurityContext error, data 531, v4563", ReasonNotPermittedHere, 0x531},
		{"password expired", "... AcceptSecurityContext error, data 532, v4563", ReasonPasswordExpired, 0x532},
		{"disabled", "... AcceptSecurityContext error, data 533, v4563", ReasonAccountDisabled, 0x533},
		{"account expired", "... AcceptSecurityContext error, data 701, v4563", ReasonAccountExpired, 0x701},
		{"must change password", "... AcceptSecurityContext error, data 773, v4563", ReasonMustChangePassword, 0x773},
		{"locked out, upper case", "... AcceptSecurityContext error, data 775, vECE", ReasonAccountLocked, 0x775},
		{"at the end", "AcceptSecurityContext error, data 533", ReasonAccountDisabled, 0x533},
		{"unknown sub-code", "AcceptSecurityContext error, data 999, v1", ReasonUnknownSubCode, 0x999},
		{"OpenLDAP: no diagnostic", "", ReasonInvalidCredentials, 0},
		{"not a word: metadata", "metadata 52e, v1", ReasonInvalidCredentials, 0},
		{"a later data counts", "metadata 1, data 775, v1", ReasonAccountLocked, 0x775},
		{"too many digits", "data 123456789, v1", ReasonInvalidCredentials, 0},
		{"not hex", "data 52g, v1", ReasonInvalidCredentials, 0},
		{"nothing after data", "data , v1", ReasonInvalidCredentials, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reason, code := BindReasonOf(tt.diag)
			if reason != tt.reason || code != tt.code {
				t.Errorf("BindReasonOf(%q) = %q, %x; want %q, %x", tt.diag, reason, code, tt.reason, tt.code)
			}
		})
	}
}

func TestDNKey(t *testing.T) {
	tests := []struct {
		name  string
		a, b  string
		equal bool
	}{
		{"escaped comma as hex and as backslash, case", `cn=Doe\2C Jane,ou=Sales,dc=example,dc=com`, `CN=Doe\, Jane,OU=Sales,DC=Example,DC=COM`, true},
		{"spaces around separators", `cn=Jane , dc=example`, `cn=Jane,dc=example`, true},
		{"multi-valued RDN in another order", `cn=A+uid=a,dc=x`, `UID=a+CN=A,dc=x`, true},
		{"non-ASCII case", `cn=JÜRGEN GROSS,dc=x`, `cn=jürgen gross,dc=x`, true},
		{"Kelvin sign folds to k", "cn=\u212Aarl,dc=x", "cn=karl,dc=x", true},
		{"different value", `cn=Jane,dc=x`, `cn=John,dc=x`, false},
		{"different depth", `cn=Jane,dc=x`, `cn=Jane,dc=x,dc=y`, false},
		{"a value that looks like two RDNs", `cn=a\,dc\=b,dc=c`, `cn=a,dc=b,dc=c`, false},
		{"multi-valued vs two RDNs", `cn=a+uid=b,dc=c`, `cn=a,uid=b,dc=c`, false},
		{"repeated value in an RDN", `cn=a+cn=a,dc=c`, `cn=a+cn=b,dc=c`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ka, err := dnKey(tt.a)
			if err != nil {
				t.Fatal(err)
			}
			kb, err := dnKey(tt.b)
			if err != nil {
				t.Fatal(err)
			}
			if (ka == kb) != tt.equal {
				t.Errorf("dnKey equal = %v, want %v (%q, %q)", ka == kb, tt.equal, ka, kb)
			}
			da, _ := ldap.ParseDN(tt.a)
			db, _ := ldap.ParseDN(tt.b)
			if da.EqualFold(db) != tt.equal {
				t.Errorf("go-ldap's EqualFold = %v, want %v: the test case is wrong", da.EqualFold(db), tt.equal)
			}
		})
	}
	if _, err := dnKey("no equals sign"); err == nil {
		t.Error("dnKey of a non-DN succeeded")
	}
}

func TestParseRange(t *testing.T) {
	tests := []struct {
		name string
		desc string
		want valueRange
		ok   bool
	}{
		{"first range", "member;range=0-1499", valueRange{lo: 0, hi: 1499}, true},
		{"last range", "member;range=1500-*", valueRange{lo: 1500, last: true}, true},
		{"case-insensitive", "Member;Range=3000-4499", valueRange{lo: 3000, hi: 4499}, true},
		{"another attribute", "memberOf;range=0-1499", valueRange{}, false},
		{"no range", "member", valueRange{}, false},
		{"hi below lo", "member;range=10-5", valueRange{}, false},
		{"negative", "member;range=-1-5", valueRange{}, false},
		{"not a number", "member;range=a-5", valueRange{}, false},
		{"huge", "member;range=0-99999999999", valueRange{}, false},
		{"missing dash", "member;range=0", valueRange{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseRange(tt.desc, "member")
			if ok != tt.ok || (ok && got != tt.want) {
				t.Errorf("parseRange(%q) = %+v, %v; want %+v, %v", tt.desc, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// adEntry builds an Active Directory user entry.
func adEntry(dn string, guid []byte, attrs map[string]string) *ldap.Entry {
	e := ldap.NewEntry(dn, nil)
	e.Attributes = append(e.Attributes, &ldap.EntryAttribute{Name: "objectGUID", Values: []string{string(guid)}, ByteValues: [][]byte{guid}})
	for k, v := range attrs {
		e.Attributes = append(e.Attributes, &ldap.EntryAttribute{Name: k, Values: []string{v}, ByteValues: [][]byte{[]byte(v)}})
	}
	return e
}

// toFileTime is the inverse of fileTime.
func toFileTime(t time.Time) string {
	return strconv.FormatInt(t.Unix()*1e7+116444736000000000, 10)
}

func TestMapUser(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	guid := []byte{0xFF, 0x19, 0x96, 0x6F, 0x86, 0x8B, 0x11, 0xD0, 0xB4, 0x2D, 0x00, 0xC0, 0x4F, 0xC9, 0x64, 0xFF}
	adCfg := Config{Flavor: ActiveDirectory, Users: UsersConfig{KindAttribute: "employeeType", GuestValues: []string{"Guest"},
		ExternalValues: []string{"Contractor"}, SponsorAttribute: "manager"}}.Resolved()
	upnCfg := adCfg
	upnCfg.Users.UsernameAttribute = "userPrincipalName"
	m := newMapper(adCfg, "example.com")
	tests := []struct {
		name    string
		mapper  *mapper
		entry   *ldap.Entry
		check   func(t *testing.T, u userEntry)
		wantErr string
	}{
		{"an enabled AD user", m, adEntry("CN=Jürgen Groß,OU=Staff,DC=corp,DC=example", guid, map[string]string{
			"sAMAccountName": "JGross", "displayName": "Jürgen Groß", "mail": "j.gross@corp.example", "department": "R&D",
			"company": "Kontor", "telephoneNumber": "+49 1", "userAccountControl": "512", "accountExpires": "9223372036854775807",
			"primaryGroupID": "513", "employeeType": "contractor", "manager": "CN=Boss,OU=Staff,DC=corp,DC=example"}),
			func(t *testing.T, u userEntry) {
				if u.StableID != "6f9619ff-8b86-d011-b42d-00c04fc964ff" || u.JID != "jgross@example.com" {
					t.Errorf("id %s, JID %s", u.StableID, u.JID)
				}
				a := u.Attrs
				if a.Disabled != "" || !a.Expires.IsZero() || a.PrimaryGroup != 513 || a.Kind != directory.External ||
					a.DisplayName != "Jürgen Groß" || a.Department != "R&D" || !slices.Equal(a.Sponsors, []string{"CN=Boss,OU=Staff,DC=corp,DC=example"}) {
					t.Errorf("attrs = %+v", a)
				}
			}, ""},
		{"disabled: userAccountControl 0x2", m, adEntry("CN=a,DC=x", guid, map[string]string{"sAMAccountName": "a", "userAccountControl": "514"}),
			func(t *testing.T, u userEntry) {
				if u.Attrs.Disabled != "disabled in the directory" {
					t.Errorf("Disabled = %q", u.Attrs.Disabled)
				}
			}, ""},
		{"locked: msDS-User-Account-Control-Computed 0x10", m, adEntry("CN=a,DC=x", guid, map[string]string{"sAMAccountName": "a",
			"userAccountControl": "512", "msDS-User-Account-Control-Computed": "16"}),
			func(t *testing.T, u userEntry) {
				if u.Attrs.Disabled != "locked out" {
					t.Errorf("Disabled = %q", u.Attrs.Disabled)
				}
			}, ""},
		{"expired: accountExpires in the past", m, adEntry("CN=a,DC=x", guid, map[string]string{"sAMAccountName": "a",
			"userAccountControl": "512", "accountExpires": toFileTime(now.Add(-time.Hour))}),
			func(t *testing.T, u userEntry) {
				if u.Attrs.Disabled != "account expired" || !u.Attrs.Expires.Equal(now.Add(-time.Hour)) {
					t.Errorf("Disabled = %q, Expires = %v", u.Attrs.Disabled, u.Attrs.Expires)
				}
			}, ""},
		{"expires later: enabled until then", m, adEntry("CN=a,DC=x", guid, map[string]string{"sAMAccountName": "a",
			"userAccountControl": "512", "accountExpires": toFileTime(now.Add(time.Hour))}),
			func(t *testing.T, u userEntry) {
				if u.Attrs.Disabled != "" || u.Attrs.Expires.IsZero() {
					t.Errorf("Disabled = %q, Expires = %v", u.Attrs.Disabled, u.Attrs.Expires)
				}
			}, ""},
		{"expires after the year 9999: never", m, adEntry("CN=a,DC=x", guid, map[string]string{"sAMAccountName": "a",
			"userAccountControl": "512", "accountExpires": "9223372036854775806"}),
			func(t *testing.T, u userEntry) {
				if u.Attrs.Disabled != "" || !u.Attrs.Expires.IsZero() {
					t.Errorf("Disabled = %q, Expires = %v", u.Attrs.Disabled, u.Attrs.Expires)
				}
				if decodeAttrs(u.Attrs.encode()).Username != "a" {
					t.Error("attrs do not survive JSON")
				}
			}, ""},
		{"a password that expired does not disable", m, adEntry("CN=a,DC=x", guid, map[string]string{"sAMAccountName": "a",
			"userAccountControl": "512", "msDS-User-Account-Control-Computed": strconv.Itoa(uacPasswordExpired)}),
			func(t *testing.T, u userEntry) {
				if u.Attrs.Disabled != "" {
					t.Errorf("Disabled = %q", u.Attrs.Disabled)
				}
			}, ""},
		{"username from userPrincipalName's local part", newMapper(upnCfg, "example.com"), adEntry("CN=a,DC=x", guid,
			map[string]string{"userPrincipalName": "Anna.Schmidt@corp.example", "displayName": "", "cn": "a"}),
			func(t *testing.T, u userEntry) {
				if u.JID != "anna.schmidt@example.com" || u.Attrs.DisplayName != "a" {
					t.Errorf("JID %s, display name %q (want cn as the fallback)", u.JID, u.Attrs.DisplayName)
				}
			}, ""},
		{"a guest", m, adEntry("CN=g,DC=x", guid, map[string]string{"sAMAccountName": "g", "employeeType": "GUEST"}),
			func(t *testing.T, u userEntry) {
				if u.Attrs.Kind != directory.Guest {
					t.Errorf("Kind = %q", u.Attrs.Kind)
				}
			}, ""},
		{"a photo too large is left out", m, adEntry("CN=p,DC=x", guid, map[string]string{"sAMAccountName": "p",
			"thumbnailPhoto": strings.Repeat("x", maxPhotoBytes+1)}),
			func(t *testing.T, u userEntry) {
				if u.Attrs.PhotoHash != "" || u.Photo != nil || u.PhotoNote == "" {
					t.Errorf("photo hash %q, %d bytes, note %q", u.Attrs.PhotoHash, len(u.Photo), u.PhotoNote)
				}
			}, ""},
		{"no objectGUID", m, func() *ldap.Entry {
			e := ldap.NewEntry("CN=a,DC=x", map[string][]string{"sAMAccountName": {"a"}})
			return e
		}(), nil, "objectGUID"},
		{"a GUID of the wrong length", m, adEntry("CN=a,DC=x", guid[:15], map[string]string{"sAMAccountName": "a"}), nil, "15 bytes"},
		{"no username", m, adEntry("CN=a,DC=x", guid, map[string]string{}), nil, "empty sAMAccountName"},
		{"a username that is no localpart", m, adEntry("CN=a,DC=x", guid, map[string]string{"sAMAccountName": "a b/c"}), nil, "not a valid JID localpart"},
		{"a DN that does not parse", m, adEntry("no dn", guid, map[string]string{"sAMAccountName": "a"}), nil, "DN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := tt.mapper.mapUser(tt.entry, now)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, u)
		})
	}
}

func TestRidOf(t *testing.T) {
	// S-1-5-21-1-2-3-513 (Domain Users).
	sid := []byte{1, 5, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 1, 2, 0, 0}
	tests := []struct {
		name string
		sid  []byte
		rid  uint32
		ok   bool
	}{
		{"Domain Users", sid, 513, true},
		{"truncated", sid[:len(sid)-1], 0, false},
		{"wrong revision", append([]byte{2}, sid[1:]...), 0, false},
		{"empty", nil, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rid, err := ridOf(tt.sid)
			if (err == nil) != tt.ok || rid != tt.rid {
				t.Errorf("ridOf = %d, %v; want %d, ok %v", rid, err, tt.rid, tt.ok)
			}
		})
	}
}

func TestResolveGroups(t *testing.T) {
	g := func(id, name string, members ...string) *group {
		k, _ := dnKey("cn=" + name + ",dc=x")
		return &group{StableID: id, DN: "cn=" + name + ",dc=x", DNKey: k, Name: name, Members: members}
	}
	u := func(name string) string { return "uid=" + name + ",dc=x" }
	grp := func(name string) string { return "cn=" + name + ",dc=x" }
	users := map[string]string{}
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		k, _ := dnKey(u(n))
		users[k] = n
	}
	tests := []struct {
		name       string
		groups     []*group
		rid        map[uint32][]string
		want       map[string][]string
		cycles     [][]string
		unresolved int
	}{
		{"direct members", []*group{g("1", "G", u("a"), u("b"))}, nil, map[string][]string{"1": {"a", "b"}}, nil, 0},
		{"nested three deep, DNs spelled differently", []*group{
			g("1", "Top", grp("Mid")), g("2", "Mid", "CN=LOW,DC=X", u("a")), g("3", "Low", "UID=B,DC=X")}, nil,
			map[string][]string{"1": {"a", "b"}, "2": {"a", "b"}, "3": {"b"}}, nil, 0},
		{"a cycle shares its members", []*group{g("1", "A", grp("B"), u("a")), g("2", "B", grp("A"), u("b")), g("3", "Outer", grp("A"), u("c"))}, nil,
			map[string][]string{"1": {"a", "b"}, "2": {"a", "b"}, "3": {"a", "b", "c"}}, [][]string{{"A", "B"}}, 0},
		{"a group that contains itself", []*group{g("1", "Self", grp("Self"), u("d"))}, nil,
			map[string][]string{"1": {"d"}}, [][]string{{"Self"}}, 0},
		{"unknown members and bad DNs are left out", []*group{g("1", "G", u("a"), u("nobody"), "not a dn", grp("Missing"))}, nil,
			map[string][]string{"1": {"a"}}, nil, 3},
		{"primary group members", []*group{func() *group { x := g("1", "Domain Users", u("a")); x.RID = 513; return x }()},
			map[uint32][]string{513: {"e", "a"}}, map[string][]string{"1": {"a", "e"}}, nil, 0},
		{"a diamond counts each user once", []*group{g("1", "Top", grp("L"), grp("R")), g("2", "L", grp("Base")), g("3", "R", grp("Base")), g("4", "Base", u("a"))}, nil,
			map[string][]string{"1": {"a"}, "2": {"a"}, "3": {"a"}, "4": {"a"}}, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			groups := map[string]*group{}
			for _, x := range tt.groups {
				groups[x.StableID] = x
			}
			res := resolveGroups(groups, users, tt.rid, dnKeys{})
			if fmt.Sprint(res.flat) != fmt.Sprint(tt.want) {
				t.Errorf("flat = %v, want %v", res.flat, tt.want)
			}
			if fmt.Sprint(res.cycles) != fmt.Sprint(tt.cycles) {
				t.Errorf("cycles = %v, want %v", res.cycles, tt.cycles)
			}
			if res.unresolved != tt.unresolved {
				t.Errorf("unresolved = %d, want %d", res.unresolved, tt.unresolved)
			}
		})
	}
	t.Run("a chain of 5000 nested groups", func(t *testing.T) {
		groups := map[string]*group{}
		for i := range 5000 {
			var members []string
			if i < 4999 {
				members = []string{grp(fmt.Sprintf("g%d", i+1))}
			} else {
				members = []string{u("a")}
			}
			x := g(strconv.Itoa(i), fmt.Sprintf("g%d", i), members...)
			groups[x.StableID] = x
		}
		res := resolveGroups(groups, users, nil, dnKeys{})
		if !slices.Equal(res.flat["0"], []string{"a"}) || len(res.cycles) != 0 {
			t.Errorf("the top of the chain has %v, cycles %v", res.flat["0"], res.cycles)
		}
	})
}

func TestMergeItem(t *testing.T) {
	want := &storage.LDAPRosterItem{Contact: "b@x", Name: "Bob", Groups: []string{"Sales"}}
	had := &storage.LDAPRosterItem{Contact: "b@x", Name: "Bob", Groups: []string{"Sales", "Team"}}
	tests := []struct {
		name      string
		cur       storage.RosterItem
		exists    bool
		want, had *storage.LDAPRosterItem
		out       storage.RosterItem
		keep      bool
	}{
		{"new item", storage.RosterItem{}, false, want, nil,
			storage.RosterItem{Contact: "b@x", Name: "Bob", Subscription: storage.SubBoth, Groups: []string{"Sales"}}, true},
		{"the user had the contact already: their name and groups stay", storage.RosterItem{Contact: "b@x", Name: "Bobby", Subscription: storage.SubTo, AskOut: true, Groups: []string{"Friends"}}, true, want, nil,
			storage.RosterItem{Contact: "b@x", Name: "Bobby", Subscription: storage.SubBoth, Groups: []string{"Friends", "Sales"}}, true},
		{"a shared group goes, the user's stays", storage.RosterItem{Contact: "b@x", Name: "Bob", Subscription: storage.SubBoth, Groups: []string{"Sales", "Team", "Friends"}}, true, want, had,
			storage.RosterItem{Contact: "b@x", Name: "Bob", Subscription: storage.SubBoth, Groups: []string{"Friends", "Sales"}}, true},
		{"renamed in the directory, not by the user", storage.RosterItem{Contact: "b@x", Name: "Bob", Subscription: storage.SubBoth, Groups: []string{"Sales"}}, true,
			&storage.LDAPRosterItem{Contact: "b@x", Name: "Robert", Groups: []string{"Sales"}}, &storage.LDAPRosterItem{Contact: "b@x", Name: "Bob", Groups: []string{"Sales"}},
			storage.RosterItem{Contact: "b@x", Name: "Robert", Subscription: storage.SubBoth, Groups: []string{"Sales"}}, true},
		{"no longer shared, nothing of the user's: removed", storage.RosterItem{Contact: "b@x", Name: "Bob", Subscription: storage.SubBoth, Groups: []string{"Sales", "Team"}}, true, nil, had,
			storage.RosterItem{}, false},
		{"no longer shared, the user's group keeps it", storage.RosterItem{Contact: "b@x", Name: "Bob", Subscription: storage.SubBoth, Groups: []string{"Sales", "Friends"}}, true, nil, had,
			storage.RosterItem{Contact: "b@x", Name: "Bob", Subscription: storage.SubBoth, Groups: []string{"Friends"}}, true},
		{"the user removed it already", storage.RosterItem{}, false, nil, had, storage.RosterItem{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, keep := mergeItem("b@x", tt.cur, tt.exists, tt.want, tt.had)
			if keep != tt.keep || (keep && !sameItem(out, tt.out)) {
				t.Errorf("mergeItem = %+v, %v; want %+v, %v", out, keep, tt.out, tt.keep)
			}
		})
	}
}

func TestVCard(t *testing.T) {
	photo := []byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00")
	tests := []struct {
		name  string
		a     attrs
		photo []byte
		want  []string
		not   []string
	}{
		{"everything", attrs{DisplayName: "Jürgen <Groß> & Co", Email: "j@x", Department: "R&D", Company: "K", Phone: "+49"}, photo,
			[]string{"<FN>Jürgen &lt;Groß&gt; &amp; Co</FN>", "<USERID>j@x</USERID>", "<ORGNAME>K</ORGNAME>", "<ORGUNIT>R&amp;D</ORGUNIT>",
				"<NUMBER>+49</NUMBER>", "<JABBERID>j@example.com</JABBERID>", "<TYPE>image/jpeg</TYPE>",
				"<BINVAL>" + base64.StdEncoding.EncodeToString(photo) + "</BINVAL>"}, nil},
		{"only a name", attrs{DisplayName: "A"}, nil, []string{"<FN>A</FN>"}, []string{"<EMAIL", "<ORG", "<TEL", "<PHOTO"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := vcard("j@example.com", tt.a, tt.photo)
			el, err := xmlstream.ParseElement(b, xmlstream.Limits{MaxStanzaBytes: len(b) + 1024})
			if err != nil || el.Name.Space != "vcard-temp" || el.Name.Local != "vCard" {
				t.Fatalf("the vCard does not parse as vcard-temp: %v\n%s", err, b)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(b), w) {
					t.Errorf("vCard lacks %s:\n%s", w, b)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(string(b), n) {
					t.Errorf("vCard has %s:\n%s", n, b)
				}
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	base := func() Config {
		return Config{Enabled: true, Flavor: ActiveDirectory, URLs: []string{"ldaps://dc1.corp.example"}, StartTLS: true,
			BindDN: "CN=svc,DC=corp,DC=example", BindPassword: "x", DialTimeout: time.Second, RequestTimeout: time.Second,
			ReconnectBackoff: time.Second, MaxReconnectBackoff: time.Minute, PageSize: 500,
			Users:  UsersConfig{BaseDN: "DC=corp,DC=example"},
			Groups: GroupsConfig{MaxRosterSize: 100},
			Sync:   SyncConfig{Interval: time.Minute, FullInterval: time.Hour, DeleteAfter: time.Hour, MaxGonePercent: 20},
			Login:  LoginConfig{PoolSize: 4}}
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // "" = valid
	}{
		{"valid", func(*Config) {}, ""},
		{"disabled: nothing else is checked", func(c *Config) { *c = Config{Flavor: OpenLDAP} }, ""},
		{"unknown flavor", func(c *Config) { c.Flavor = "novell" }, "ldap.flavor"},
		{"no URL", func(c *Config) { c.URLs = nil }, "ldap.urls"},
		{"wrong scheme", func(c *Config) { c.URLs = []string{"http://dc1"} }, "ldap.urls[0]"},
		{"plain LDAP to a remote server", func(c *Config) { c.URLs = []string{"ldap://dc1.corp.example"}; c.StartTLS = false }, "in the clear"},
		{"plain LDAP on loopback is allowed", func(c *Config) { c.URLs = []string{"ldap://127.0.0.1:389"}; c.StartTLS = false }, ""},
		{"no bind DN", func(c *Config) { c.BindDN = "" }, "ldap.bind_dn"},
		{"a UPN as bind DN", func(c *Config) { c.BindDN = "svc@corp.example" }, ""},
		{"password and file", func(c *Config) { c.BindPasswordFile = "/etc/passwd" }, "not both"},
		{"no password", func(c *Config) { c.BindPassword = "" }, "ldap.bind_password"},
		{"page size beyond AD's maximum", func(c *Config) { c.PageSize = 1001 }, "ldap.page_size"},
		{"bad filter", func(c *Config) { c.Users.Filter = "(objectClass=user" }, "ldap.users.filter"},
		{"bad base DN", func(c *Config) { c.Users.BaseDN = "corp" }, "ldap.users.base_dn"},
		{"no base DN", func(c *Config) { c.Users.BaseDN = "" }, "ldap.users.base_dn: required"},
		{"full interval below interval", func(c *Config) { c.Sync.FullInterval = time.Second }, "ldap.sync.full_interval"},
		{"gone percent zero", func(c *Config) { c.Sync.MaxGonePercent = 0 }, "ldap.sync.max_gone_percent"},
		{"template without {username}", func(c *Config) { c.Login.DNTemplate = "uid=x" }, "ldap.login.dn_template"},
		{"domain not served", func(c *Config) { c.Domain = "other.example" }, "ldap.domain"},
		{"missing CA file", func(c *Config) { c.CAFile = "/nonexistent/ca.pem" }, "ldap.ca_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.mutate(&c)
			p := c.Validate([]string{"example.com"})
			if tt.want == "" {
				if len(p) != 0 {
					t.Errorf("problems: %v", p)
				}
				return
			}
			if !slices.ContainsFunc(p, func(s string) bool { return strings.Contains(s, tt.want) }) {
				t.Errorf("problems %v lack %q", p, tt.want)
			}
		})
	}
}

func TestReportText(t *testing.T) {
	r := &Report{Mode: Incremental, ModeReason: "changes since the last sync", DryRun: true, Read: 3, GroupsRead: 1,
		Changes: []Change{{Op: OpCreate, JID: "a@x", DN: "uid=a,dc=x", Detail: `"A"`}, {Op: OpRosterAdd, JID: "b@x", Detail: `a@x "A" in Sales`}},
		Errors:  []EntryError{{DN: "uid=c,dc=x", Err: errors.New("ldapsync: empty uid")}},
		Cycles:  [][]string{{"A", "B"}}}
	r.count()
	var b strings.Builder
	if _, err := r.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"incremental sync (changes since the last sync), dry run: nothing was changed\n",
		"create        a@x  \"A\"  [uid=a,dc=x]\n",
		"roster add    b@x  a@x \"A\" in Sales\n",
		"warning: nested groups form a cycle: A → B\n",
		"error: [uid=c,dc=x]: ldapsync: empty uid\n",
		"would make 2 changes: 1 created, 0 updated",
		"1 group", "1 roster changes; 1 errors",
	} {
		if !strings.Contains(b.String(), want) && !strings.Contains(b.String(), strings.TrimSpace(want)) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}

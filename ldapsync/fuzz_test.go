package ldapsync

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/xmlstream"
)

// Seed corpora are in testdata/fuzz/<target>; these f.Add seeds are the
// cases every run checks.

func FuzzGUID(f *testing.F) {
	f.Add([]byte("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"), "03020100-0504-0706-0809-0a0b0c0d0e0f")
	f.Add([]byte("\xff\x19\x96\x6f\x86\x8b\x11\xd0\xb4\x2d\x00\xc0\x4f\xc9\x64\xff"), "{6F9619FF-8B86-D011-B42D-00C04FC964FF}")
	f.Add([]byte("short"), "not-a-guid")
	f.Fuzz(func(t *testing.T, raw []byte, text string) {
		if g, err := GUIDFromBytes(raw); err == nil {
			back, err := ParseGUID(g.String())
			if err != nil || back != g {
				t.Fatalf("ParseGUID(String()) of %x = %x, %v", raw, back, err)
			}
			p, err := ldap.CompileFilter("(objectGUID=" + g.FilterValue() + ")")
			if err != nil {
				t.Fatalf("the filter value of %x does not compile: %v", raw, err)
			}
			if got := p.Children[1].Data.Bytes(); !bytes.Equal(got, raw) {
				t.Fatalf("the filter of %x asserts %x", raw, got)
			}
		} else if len(raw) == 16 {
			t.Fatalf("16 bytes refused: %v", err)
		}
		if g, err := ParseGUID(text); err == nil {
			want := strings.ToLower(strings.Trim(text, "{}"))
			if g.String() != want {
				t.Fatalf("ParseGUID(%q).String() = %s, want %s", text, g, want)
			}
		}
	})
}

var subCodeRE = regexp.MustCompile(`(^|[^0-9A-Za-z_])data ([0-9A-Fa-f]{1,8})(,| |\x00|$)`)

func FuzzParseADSubCode(f *testing.F) {
	f.Add("80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error, data 52e, v4563", uint32(0x775))
	f.Add("metadata 52e", uint32(0x533))
	f.Add("", uint32(0))
	f.Fuzz(func(t *testing.T, diag string, code uint32) {
		c, ok := ParseADSubCode(diag)
		if ok {
			// An independent reading: the code is one of the hex numbers
			// that follow a whole word "data ".
			found := false
			for _, m := range subCodeRE.FindAllStringSubmatch(diag, -1) {
				if v, err := strconv.ParseUint(m[2], 16, 32); err == nil && uint32(v) == c {
					found = true
				}
			}
			if !found {
				t.Fatalf("ParseADSubCode(%q) = %x, which the text does not hold", diag, c)
			}
		}
		reason, _ := BindReasonOf(diag)
		if reason == "" {
			t.Fatal("empty reason")
		}
		// A sub-code in the form AD writes it is found, whatever came before
		// (unless that already held one).
		if !strings.Contains(diag, "data") {
			msg := diag + ", comment: AcceptSecurityContext error, data " + fmt.Sprintf("%x", code) + ", v4563"
			if got, ok := ParseADSubCode(msg); !ok || got != code {
				t.Fatalf("ParseADSubCode(%q) = %x, %v; want %x", msg, got, ok, code)
			}
		}
	})
}

func FuzzDNKey(f *testing.F) {
	f.Add(`cn=Doe\2C Jane,ou=Sales,dc=example,dc=com`, `CN=Doe\, Jane,OU=Sales,DC=Example,DC=COM`)
	f.Add(`cn=A+uid=a,dc=x`, `uid=a+cn=A,dc=x`)
	f.Add("cn=\u212Aarl,dc=x", "CN=KARL,DC=X")
	f.Add(`cn=a\,dc\=b,dc=c`, `cn=a,dc=b,dc=c`)
	f.Add(`cn=a+cn=a,dc=c`, `cn=a+cn=b,dc=c`)
	f.Add(`cn=#04024869,dc=x`, `cn=Hi,dc=x`)
	f.Fuzz(func(t *testing.T, a, b string) {
		da, errA := ldap.ParseDN(a)
		db, errB := ldap.ParseDN(b)
		ka, kerrA := dnKey(a)
		kb, kerrB := dnKey(b)
		if (errA == nil) != (kerrA == nil) || (errB == nil) != (kerrB == nil) {
			t.Fatalf("dnKey and ParseDN disagree on whether %q / %q parse", a, b)
		}
		if errA != nil || errB != nil {
			return
		}
		if (ka == kb) != da.EqualFold(db) {
			t.Fatalf("dnKey equal = %v, EqualFold = %v for %q and %q", ka == kb, da.EqualFold(db), a, b)
		}
		if ka != keyOfDN(da) {
			t.Fatal("dnKey and keyOfDN differ")
		}
	})
}

func FuzzParseRange(f *testing.F) {
	f.Add("member;range=0-1499")
	f.Add("member;range=1500-*")
	f.Add("MEMBER;RANGE=3000-2999")
	f.Fuzz(func(t *testing.T, desc string) {
		r, ok := parseRange(desc, "member")
		if !ok {
			return
		}
		if r.lo < 0 || r.lo >= maxRangeBound || (!r.last && (r.hi < r.lo || r.hi >= maxRangeBound)) {
			t.Fatalf("parseRange(%q) = %+v", desc, r)
		}
		hi := fmt.Sprint(r.hi)
		if r.last {
			hi = "*"
		}
		if back, ok := parseRange(fmt.Sprintf("member;range=%d-%s", r.lo, hi), "member"); !ok || back != r {
			t.Fatalf("%+v does not survive a round trip: %+v", r, back)
		}
	})
}

// FuzzMapUser maps entries with arbitrary attribute values, on both
// flavors: whatever the directory holds, mapping never panics, and what it
// accepts is a valid account of the domain with a vCard that parses.
func FuzzMapUser(f *testing.F) {
	f.Add("CN=Jürgen Groß,OU=Staff,DC=corp", []byte("\xff\x19\x96\x6f\x86\x8b\x11\xd0\xb4\x2d\x00\xc0\x4f\xc9\x64\xff"),
		"JGross", "Jürgen <Groß>", "514", "9223372036854775807", "Guest", []byte("\xff\xd8\xff"))
	f.Add("uid=a,dc=x", []byte("0123456789abcdef"), "a@corp.example", "", "0", "133000000000000000", "", []byte{})
	f.Add("bad", []byte{}, "", "\x00", "x", "-1", "", []byte{})
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	mappers := []*mapper{
		newMapper(Config{Flavor: ActiveDirectory, Users: UsersConfig{KindAttribute: "employeeType", GuestValues: []string{"guest"}}}.Resolved(), "example.com"),
		newMapper(Config{Flavor: OpenLDAP}.Resolved(), "example.com"),
	}
	f.Fuzz(func(t *testing.T, dn string, guid []byte, username, display, uac, expires, kind string, photo []byte) {
		attr := func(name string, v []byte) *ldap.EntryAttribute {
			return &ldap.EntryAttribute{Name: name, Values: []string{string(v)}, ByteValues: [][]byte{v}}
		}
		e := &ldap.Entry{DN: dn, Attributes: []*ldap.EntryAttribute{
			attr("objectGUID", guid), attr("entryUUID", guid), attr("sAMAccountName", []byte(username)),
			attr("uid", []byte(username)), attr("displayName", []byte(display)), attr("userAccountControl", []byte(uac)),
			attr("accountExpires", []byte(expires)), attr("employeeType", []byte(kind)), attr("thumbnailPhoto", photo),
			attr("jpegPhoto", photo),
		}}
		for _, m := range mappers {
			u, err := m.mapUser(e, now)
			if err != nil {
				continue
			}
			j, err := jid.Parse(u.JID)
			if err != nil || j.Domain() != "example.com" || j.Local() == "" || !j.IsBare() {
				t.Fatalf("mapped to %q (%v)", u.JID, err)
			}
			if m.ad {
				if _, err := ParseGUID(u.StableID); err != nil {
					t.Fatalf("AD stable id %q: %v", u.StableID, err)
				}
			} else if u.StableID == "" {
				t.Fatal("empty stable id")
			}
			if back := decodeAttrs(u.Attrs.encode()); len(back.diff(u.Attrs)) > 0 {
				t.Fatalf("attrs do not survive JSON: %v", back.diff(u.Attrs))
			}
			v := vcard(u.JID, u.Attrs, u.Photo)
			if _, err := xmlstream.ParseElement(v, xmlstream.Limits{MaxStanzaBytes: len(v) + 1024}); err != nil {
				t.Fatalf("vCard does not parse: %v\n%q", err, v)
			}
		}
	})
}

package jid_test

import (
	"encoding"
	"errors"
	"fmt"
	"strings"
	"testing"

	"kontor.im/kontor/core/jid"
)

var (
	_ fmt.Stringer             = jid.JID{}
	_ encoding.TextMarshaler   = jid.JID{}
	_ encoding.TextUnmarshaler = (*jid.JID)(nil)
)

// checkParts fails the test unless j has the given parts and its String is
// their canonical composition.
func checkParts(t *testing.T, j jid.JID, local, domain, resource string) {
	t.Helper()
	if j.Local() != local || j.Domain() != domain || j.Resource() != resource {
		t.Errorf("parts = (%q, %q, %q), want (%q, %q, %q)",
			j.Local(), j.Domain(), j.Resource(), local, domain, resource)
	}
	want := domain
	if local != "" {
		want = local + "@" + want
	}
	if resource != "" {
		want += "/" + resource
	}
	if j.String() != want {
		t.Errorf("String() = %q, want %q", j.String(), want)
	}
	if j.IsBare() != (resource == "") {
		t.Errorf("IsBare() = %v with resource %q", j.IsBare(), resource)
	}
}

// checkMalformed fails the test unless err reports a malformed part.
func checkMalformed(t *testing.T, err error, part string) {
	t.Helper()
	if err == nil {
		t.Fatalf("error = nil, want malformed %s", part)
	}
	if !errors.Is(err, jid.ErrMalformed) {
		t.Errorf("error %q does not wrap ErrMalformed", err)
	}
	if want := "jid: malformed " + part + ": "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q does not start with %q", err, want)
	}
}

func TestParseValid(t *testing.T) {
	long := func(c string, n int) string { return strings.Repeat(c, n) }
	label63 := long("a", 63)
	domain1023 := strings.Repeat(label63+".", 15) + long("b", 63) // 15*64 + 63 bytes
	for _, tc := range []struct {
		name, in                string
		local, domain, resource string
	}{
		// RFC 7622 §3.5.1.
		{"rfc/bare", "juliet@example.com", "juliet", "example.com", ""},
		{"rfc/full", "juliet@example.com/foo", "juliet", "example.com", "foo"},
		{"rfc/resource space", "juliet@example.com/foo bar", "juliet", "example.com", "foo bar"},
		{"rfc/resource at", "juliet@example.com/foo@bar", "juliet", "example.com", "foo@bar"},
		{"rfc/escaped space", `foo\20bar@example.com`, `foo\20bar`, "example.com", ""},
		{"rfc/fussball", "fussball@example.com", "fussball", "example.com", ""},
		{"rfc/sharp s kept", "fußball@example.com", "fußball", "example.com", ""},
		{"rfc/pi", "π@example.com", "π", "example.com", ""},
		{"rfc/capital sigma lowercased", "Σ@example.com/foo", "σ", "example.com", "foo"},
		{"rfc/small sigma", "σ@example.com/foo", "σ", "example.com", "foo"},
		{"rfc/final sigma kept", "ς@example.com/foo", "ς", "example.com", "foo"},
		{"rfc/symbol in resource", "king@example.com/♚", "king", "example.com", "♚"},
		{"rfc/domain only", "example.com", "", "example.com", ""},
		{"rfc/domain and resource", "example.com/foobar", "", "example.com", "foobar"},
		{"rfc/resource looks like jid", "a.example.com/b@example.net", "", "a.example.com", "b@example.net"},
		// Listed as invalid by RFC 7622 §3.5.2, accepted on purpose: see the
		// package documentation.
		{"rfc/resource leading space", "juliet@example.com/ foo", "juliet", "example.com", " foo"},

		// Splitting.
		{"split/slash in resource", "juliet@example.com/foo/bar", "juliet", "example.com", "foo/bar"},
		{"split/at and slash in resource", "example.com//@/", "", "example.com", "/@/"},
		{"split/at after slash", "example.com/a@b", "", "example.com", "a@b"},
		{"split/slash before at", "a/b@example.com", "", "a", "b@example.com"},

		// Normalisation.
		{"norm/uppercase local", "JULIET@example.com", "juliet", "example.com", ""},
		{"norm/uppercase domain", "juliet@EXAMPLE.com", "juliet", "example.com", ""},
		{"norm/resource case kept", "Juliet@Example.COM/Balcony", "juliet", "example.com", "Balcony"},
		{"norm/trailing dot", "juliet@example.com./foo", "juliet", "example.com", "foo"},
		{"norm/trailing dot domain only", "example.com.", "", "example.com", ""},
		{"norm/fullwidth local", "ＪＵＬＩＥＴ@example.com", "juliet", "example.com", ""},
		{"norm/fullwidth domain", "ｅｘａｍｐｌｅ.com", "", "example.com", ""},
		{"norm/ideographic full stop", "example。com", "", "example.com", ""},
		{"norm/a-label to u-label", "juliet@xn--bcher-kva.example", "juliet", "bücher.example", ""},
		{"norm/uppercase a-label", "XN--BCHER-KVA.example", "", "bücher.example", ""},
		{"norm/uppercase u-label", "BÜCHER.example", "", "bücher.example", ""},
		{"norm/sharp s domain kept", "fußball.example", "", "fußball.example", ""},
		{"norm/nfc local", "e\u0301@example.com", "\u00e9", "example.com", ""},
		{"norm/nfc resource", "example.com/e\u0301", "", "example.com", "\u00e9"},
		{"norm/nbsp in resource", "example.com/foo\u00a0bar", "", "example.com", "foo bar"},
		{"norm/resource width kept", "example.com/ＡＢＣ", "", "example.com", "ＡＢＣ"},

		// Characters.
		{"chars/ascii punctuation local", "a!#$%()*+,-.;=?[\\]^_`{|}~@example.com", "a!#$%()*+,-.;=?[\\]^_`{|}~", "example.com", ""},
		{"chars/digit then non-ascii", "1müller@example.com", "1müller", "example.com", ""},
		{"chars/hebrew local", "\u05d0\u05d1@example.com", "\u05d0\u05d1", "example.com", ""},
		{"chars/cjk domain", "例子.测试", "", "例子.测试", ""},
		{"chars/resource ascii controls excluded space ok", "example.com/ ~!", "", "example.com", " ~!"},
		{"chars/numeric labels", "1.2.3", "", "1.2.3", ""},

		// IP literals.
		{"ip/ipv4", "juliet@127.0.0.1/foo", "juliet", "127.0.0.1", "foo"},
		{"ip/ipv6", "juliet@[::1]/foo", "juliet", "[::1]", "foo"},
		{"ip/ipv6 kept as written", "[2001:DB8:0::1]", "", "[2001:DB8:0::1]", ""},
		{"ip/ipv4 mapped ipv6", "[::ffff:192.0.2.1]", "", "[::ffff:192.0.2.1]", ""},

		// Lengths.
		{"len/local 1023", long("a", 1023) + "@example.com", long("a", 1023), "example.com", ""},
		{"len/local 1023 after width mapping", long("Ａ", 1023) + "@example.com", long("a", 1023), "example.com", ""},
		{"len/local 1023 multibyte", long("π", 511) + "a@example.com", long("π", 511) + "a", "example.com", ""},
		{"len/resource 1023", "example.com/" + long("r", 1023), "", "example.com", long("r", 1023)},
		{"len/domain 1023", domain1023, "", domain1023, ""},
		{"len/domain 1023 plus trailing dot", domain1023 + ".", "", domain1023, ""},
		{"len/label 63", label63 + ".example", "", label63 + ".example", ""},
		{"len/u-label of 114 bytes, a-label of 63", long("ü", 57) + ".example", "", long("ü", 57) + ".example", ""},
		{"len/single characters", "a@b/c", "a", "b", "c"},
		{"len/ignorables dropped from domain", "a" + long("\u00ad", 100) + ".com", "", "a.com", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, err := jid.Parse(tc.in)
			if err != nil {
				t.Fatalf("Parse(%q) error: %v", tc.in, err)
			}
			checkParts(t, j, tc.local, tc.domain, tc.resource)

			again, err := jid.Parse(j.String())
			if err != nil || again != j {
				t.Errorf("Parse(String()) = %q, %v; want %q", again, err, j)
			}
			n, err := jid.New(tc.local, tc.domain, tc.resource)
			if err != nil || n != j {
				t.Errorf("New(parts) = %q, %v; want %q", n, err, j)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	long := func(c string, n int) string { return strings.Repeat(c, n) }
	label63 := long("a", 63)
	domain1024 := strings.Repeat(label63+".", 15) + long("b", 62) + ".c" // 15*64 + 64 bytes, labels <= 63
	for _, tc := range []struct {
		name, in, part string
	}{
		// RFC 7622 §3.5.2.
		{"rfc/quotes in local", `"juliet"@example.com`, "localpart"},
		{"rfc/space in local", "foo bar@example.com", "localpart"},
		{"rfc/empty local and resource", "@example.com/", "resourcepart"},
		{"rfc/roman numeral", "henryⅣ@example.com", "localpart"},
		{"rfc/symbol in local", "♚@example.com", "localpart"},
		{"rfc/no domain after at", "juliet@", "domainpart"},
		{"rfc/no domain before slash", "/foobar", "domainpart"},

		// Structure.
		{"empty", "", "domainpart"},
		{"at only", "@", "localpart"},
		{"slash only", "/", "resourcepart"},
		{"empty local", "@example.com", "localpart"},
		{"empty resource", "juliet@example.com/", "resourcepart"},
		{"empty resource domain only", "example.com/", "resourcepart"},
		{"two ats", "a@b@example.com", "domainpart"},

		// Localpart characters.
		{"local/ampersand", "a&b@example.com", "localpart"},
		{"local/apostrophe", "a'b@example.com", "localpart"},
		{"local/colon", "a:b@example.com", "localpart"},
		{"local/less than", "a<b@example.com", "localpart"},
		{"local/greater than", "a>b@example.com", "localpart"},
		{"local/fullwidth at maps to at", "a＠b@example.com", "localpart"},
		{"local/fullwidth quote maps to quote", "ａ＂ｂ@example.com", "localpart"},
		{"local/tab", "a\tb@example.com", "localpart"},
		{"local/nul", "a\x00b@example.com", "localpart"},
		{"local/del", "a\x7fb@example.com", "localpart"},
		{"local/invalid utf-8", "\xff@example.com", "localpart"},
		{"local/truncated utf-8", "\xc3@example.com", "localpart"},
		{"local/bidi mixed", "\u05d0a@example.com", "localpart"},
		{"local/nbsp", "a\u00a0b@example.com", "localpart"},

		// Domainpart.
		{"domain/space", "ex ample.com", "domainpart"},
		{"domain/underscore", "ex_ample.com", "domainpart"},
		{"domain/empty label", "example..com", "domainpart"},
		{"domain/leading dot", ".example.com", "domainpart"},
		{"domain/two trailing dots", "example.com..", "domainpart"},
		{"domain/dot only", ".", "domainpart"},
		{"domain/trailing mapped dot after dot", "example.com.。", "domainpart"},
		{"domain/leading hyphen", "-example.com", "domainpart"},
		{"domain/trailing hyphen", "example-.com", "domainpart"},
		{"domain/hyphens in 3 and 4", "ab--cd.com", "domainpart"},
		{"domain/empty a-label", "xn--.com", "domainpart"},
		{"domain/bad punycode", "xn--zz.com", "domainpart"},
		{"domain/ascii a-label", "xn--abc-.com", "domainpart"},
		{"domain/disallowed symbol", "⒈com", "domainpart"},
		{"domain/invalid utf-8", "juliet@exa\xffmple.com", "domainpart"},
		{"domain/colon", "example.com:5222", "domainpart"},
		{"domain/ipv6 unbracketed", "::1", "domainpart"},
		{"domain/ipv6 unterminated", "user@[::1", "domainpart"},
		{"domain/ipv6 unterminated with resource", "user@[::1/res", "domainpart"},
		{"domain/ipv6 garbage", "[::g]", "domainpart"},
		{"domain/ipv6 empty", "[]", "domainpart"},
		{"domain/ipv6 zone", "[fe80::1%eth0]", "domainpart"},
		{"domain/ipv4 in brackets", "[192.0.2.1]", "domainpart"},
		{"domain/ipvfuture", "[v1.fe]", "domainpart"},
		{"domain/bracket inside", "a[::1]", "domainpart"},

		// Resourcepart.
		{"resource/invalid utf-8", "example.com/\xff", "resourcepart"},
		{"resource/nul", "example.com/a\x00b", "resourcepart"},
		{"resource/newline", "example.com/a\nb", "resourcepart"},
		{"resource/del", "example.com/a\x7f", "resourcepart"},

		// Lengths.
		{"len/local 1024", long("a", 1024) + "@example.com", "localpart"},
		{"len/local 1024 after width mapping", long("Ａ", 1024) + "@example.com", "localpart"},
		{"len/local 1024 multibyte", long("π", 512) + "@example.com", "localpart"},
		{"len/resource 1024", "example.com/" + long("r", 1024), "resourcepart"},
		{"len/resource 1024 multibyte", "example.com/" + long("é", 512), "resourcepart"},
		{"len/domain 1024", domain1024, "domainpart"},
		{"len/local over input limit", long("a", 8185) + "@example.com", "localpart"},
		{"len/domain over input limit", "a" + long("\u00ad", 4092) + ".com", "domainpart"},
		{"len/resource over input limit", "example.com/" + long("é", 4093), "resourcepart"},
		{"len/label 64", long("a", 64) + ".example", "domainpart"},
		{"len/u-label of 116 bytes, a-label of 64", long("ü", 58) + ".example", "domainpart"},
		{"len/u-label of 62 bytes, a-label of 68", "ü" + long("a", 60) + ".example", "domainpart"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, err := jid.Parse(tc.in)
			checkMalformed(t, err, tc.part)
			if strings.HasPrefix(tc.name, "len/") && err != nil && !strings.Contains(err.Error(), "longer than") {
				t.Errorf("error %q does not say what is too long", err)
			}
			if !j.IsZero() {
				t.Errorf("Parse(%q) returned %q with the error", tc.in, j)
			}
		})
	}
}

func TestNewInvalid(t *testing.T) {
	for _, tc := range []struct {
		name, local, domain, resource, part string
	}{
		{"no domain", "juliet", "", "", "domainpart"},
		{"at in local", "a@b", "example.com", "", "localpart"},
		{"slash in local", "a/b", "example.com", "", "localpart"},
		{"quote in local", `a"b`, "example.com", "", "localpart"},
		{"at in domain", "", "a@example.com", "", "domainpart"},
		{"slash in domain", "", "example.com/x", "", "domainpart"},
		{"space in local", " ", "example.com", "", "localpart"},
		{"invalid utf-8 in resource", "", "example.com", "\x80", "resourcepart"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := jid.New(tc.local, tc.domain, tc.resource)
			checkMalformed(t, err, tc.part)
		})
	}
}

func TestEquality(t *testing.T) {
	for _, tc := range []struct {
		name, a, b string
		equal      bool
	}{
		{"local case", "JULIET@example.com", "juliet@example.com", true},
		{"domain case", "juliet@EXAMPLE.COM", "juliet@example.com", true},
		{"trailing dot", "juliet@example.com.", "juliet@example.com", true},
		{"a-label and u-label", "xn--bcher-kva.example", "bücher.example", true},
		{"sigma", "Σ@example.com", "σ@example.com", true},
		{"fullwidth", "ｊｕｌｉｅｔ@example.com", "juliet@example.com", true},
		{"resource case", "juliet@example.com/Foo", "juliet@example.com/foo", false},
		{"final sigma", "ς@example.com", "σ@example.com", false},
		{"sharp s", "fußball@example.com", "fussball@example.com", false},
		{"bare and full", "juliet@example.com", "juliet@example.com/foo", false},
		{"domain and bare", "example.com", "juliet@example.com", false},
		{"local versus resource", "a@b", "b/a", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := jid.MustParse(tc.a), jid.MustParse(tc.b)
			if got := a == b; got != tc.equal {
				t.Errorf("%q == %q is %v, want %v", a, b, got, tc.equal)
			}
			m := map[jid.JID]bool{a: true}
			if m[b] != tc.equal {
				t.Errorf("map lookup of %q in {%q} is %v, want %v", b, a, m[b], tc.equal)
			}
		})
	}
}

func TestBareAndDomainJID(t *testing.T) {
	for _, tc := range []struct {
		name, in, bare, domain string
	}{
		{"full", "juliet@example.com/balcony", "juliet@example.com", "example.com"},
		{"bare", "juliet@example.com", "juliet@example.com", "example.com"},
		{"domain with resource", "example.com/foo", "example.com", "example.com"},
		{"domain", "example.com", "example.com", "example.com"},
		{"resource with separators", "juliet@example.com/a@b/c", "juliet@example.com", "example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := jid.MustParse(tc.in)
			bare, domain := j.Bare(), j.DomainJID()
			if bare != jid.MustParse(tc.bare) || !bare.IsBare() {
				t.Errorf("Bare() = %q, want %q", bare, tc.bare)
			}
			if domain != jid.MustParse(tc.domain) || domain.Local() != "" || !domain.IsBare() {
				t.Errorf("DomainJID() = %q, want %q", domain, tc.domain)
			}
			if bare.Bare() != bare || domain.DomainJID() != domain || bare.DomainJID() != domain {
				t.Errorf("Bare and DomainJID are not idempotent on %q", j)
			}
		})
	}
}

func TestWithResource(t *testing.T) {
	for _, tc := range []struct {
		name, in, resource, want string
	}{
		{"add", "juliet@example.com", "balcony", "juliet@example.com/balcony"},
		{"replace", "juliet@example.com/garden", "balcony", "juliet@example.com/balcony"},
		{"domain", "example.com", "x", "example.com/x"},
		{"normalised", "juliet@example.com", "e\u0301\u00a0x", "juliet@example.com/\u00e9 x"},
		{"separators", "juliet@example.com", "a/b@c", "juliet@example.com/a/b@c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, err := jid.MustParse(tc.in).WithResource(tc.resource)
			if err != nil {
				t.Fatal(err)
			}
			if j != jid.MustParse(tc.want) || j.String() != tc.want {
				t.Errorf("WithResource(%q) = %q, want %q", tc.resource, j, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name, in, resource, part string
	}{
		{"empty", "juliet@example.com/garden", "", "resourcepart"},
		{"control", "juliet@example.com", "a\x01", "resourcepart"},
		{"too long", "juliet@example.com", strings.Repeat("x", 1024), "resourcepart"},
		{"zero jid", "", "x", "domainpart"},
	} {
		t.Run("invalid/"+tc.name, func(t *testing.T) {
			var j jid.JID
			if tc.in != "" {
				j = jid.MustParse(tc.in)
			}
			_, err := j.WithResource(tc.resource)
			checkMalformed(t, err, tc.part)
		})
	}
}

func TestZero(t *testing.T) {
	var j jid.JID
	if !j.IsZero() || j.String() != "" || j.Local() != "" || j.Domain() != "" || j.Resource() != "" {
		t.Errorf("zero JID = %q (%q, %q, %q), IsZero %v", j, j.Local(), j.Domain(), j.Resource(), j.IsZero())
	}
	if j.Bare() != j || j.DomainJID() != j || !j.IsBare() {
		t.Errorf("Bare or DomainJID of the zero JID is not zero")
	}
	if jid.MustParse("example.com").IsZero() {
		t.Errorf("IsZero on a parsed JID")
	}
}

func TestMustParsePanics(t *testing.T) {
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(fmt.Sprint(r), `jid: MustParse("@example.com")`) {
			t.Errorf("recover() = %v", r)
		}
	}()
	jid.MustParse("@example.com")
}

func TestAppendTo(t *testing.T) {
	for _, in := range []string{"juliet@example.com/balcony", "Σ@BÜCHER.example./♚", "example.com"} {
		t.Run(in, func(t *testing.T) {
			j := jid.MustParse(in)
			if got := string(j.AppendTo([]byte("to="))); got != "to="+j.String() {
				t.Errorf("AppendTo = %q, want %q", got, "to="+j.String())
			}
		})
	}
}

func TestText(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		wantErr        bool
	}{
		{"full", "Juliet@Example.com/Balcony", "juliet@example.com/Balcony", false},
		{"empty is zero", "", "", false},
		{"malformed", "@example.com", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := jid.MustParse("previous@example.com")
			err := j.UnmarshalText([]byte(tc.in))
			if tc.wantErr {
				checkMalformed(t, err, "localpart")
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			out, err := j.MarshalText()
			if err != nil || string(out) != tc.want {
				t.Errorf("MarshalText = %q, %v; want %q", out, err, tc.want)
			}
		})
	}
}

package caps

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"kontor.im/kontor/core/dataform"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/xmlstream"
)

func parseQuery(t testing.TB, text string) *stanza.Element {
	t.Helper()
	rd := xmlstream.NewReader(strings.NewReader("<stream:stream xmlns='jabber:client' xmlns:stream='"+stanza.NSStream+"'>"+text), xmlstream.Limits{})
	if _, err := rd.Header(); err != nil {
		t.Fatal(err)
	}
	el, err := rd.Next()
	if err != nil {
		t.Fatalf("parse %q: %v", text, err)
	}
	return el
}

// The examples of XEP-0115 §5.2 and §5.3, as a client would receive them.
const (
	simpleExample = `<query xmlns='http://jabber.org/protocol/disco#info'>
		<identity category='client' name='Exodus 0.9.1' type='pc'/>
		<feature var='http://jabber.org/protocol/muc'/>
		<feature var='http://jabber.org/protocol/disco#info'/>
		<feature var='http://jabber.org/protocol/caps'/>
		<feature var='http://jabber.org/protocol/disco#items'/>
	</query>`
	complexExample = `<query xmlns='http://jabber.org/protocol/disco#info' node='http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w='>
		<identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>
		<identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/>
		<feature var='http://jabber.org/protocol/caps'/>
		<feature var='http://jabber.org/protocol/disco#info'/>
		<feature var='http://jabber.org/protocol/disco#items'/>
		<feature var='http://jabber.org/protocol/muc'/>
		<x xmlns='jabber:x:data' type='result'>
			<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>
			<field var='ip_version' type='text-multi'><value>ipv4</value><value>ipv6</value></field>
			<field var='os'><value>Mac</value></field>
			<field var='os_version'><value>10.5.1</value></field>
			<field var='software'><value>Psi</value></field>
			<field var='software_version'><value>0.11</value></field>
		</x>
	</query>`
)

func TestVerXEP0115Examples(t *testing.T) {
	tests := []struct {
		name, xml, want string
	}{
		{"simple generation example §5.2", simpleExample, "QgayPKawpkPSDYmwT/WM94uAlu0="},
		{"complex generation example §5.3", complexExample, "q07IKJEyjvHSyhy//CH0CxmKi8w="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := ParseInfo(parseQuery(t, tt.xml))
			if err != nil {
				t.Fatal(err)
			}
			got, err := info.Ver()
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Ver() = %s, want %s", got, tt.want)
			}
			// Rendering and reading again changes nothing.
			again, err := ParseInfo(info.Element())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(again, info) {
				t.Errorf("round trip:\n got %#v\nwant %#v", again, info)
			}
			if v, _ := again.Ver(); v != tt.want {
				t.Errorf("Ver() after a round trip = %s", v)
			}
		})
	}
}

func TestVerOrderIndependent(t *testing.T) {
	info, err := ParseInfo(parseQuery(t, complexExample))
	if err != nil {
		t.Fatal(err)
	}
	other := dataform.New(dataform.TypeResult, "urn:a", dataform.Field{Var: "z", Values: []string{"2", "1"}}, dataform.Field{Var: "b"})
	info.Forms = append(info.Forms, other)
	want, err := info.Ver()
	if err != nil {
		t.Fatal(err)
	}
	rev := Info{}
	for i := len(info.Identities) - 1; i >= 0; i-- {
		rev.Identities = append(rev.Identities, info.Identities[i])
	}
	for i := len(info.Features) - 1; i >= 0; i-- {
		rev.Features = append(rev.Features, info.Features[i])
	}
	rev.Forms = []dataform.Form{other, info.Forms[0]}
	if got, _ := rev.Ver(); got != want {
		t.Errorf("Ver depends on order: %s != %s", got, want)
	}
}

func TestVerIllFormed(t *testing.T) {
	form := func(ft string, vals ...string) dataform.Form {
		f := dataform.New(dataform.TypeResult, ft)
		f.Fields[0].Values = append(f.Fields[0].Values, vals...)
		return f
	}
	tests := []struct {
		name string
		info Info
	}{
		{"duplicate identity", Info{Identities: []Identity{{"client", "pc", "", "A"}, {"client", "pc", "", "A"}}}},
		{"duplicate feature", Info{Features: []string{"a", "b", "a"}}},
		{"duplicate FORM_TYPE", Info{Forms: []dataform.Form{form("urn:a"), form("urn:a")}}},
		{"FORM_TYPE with different values", Info{Forms: []dataform.Form{form("urn:a", "urn:b")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if v, err := tt.info.Ver(); !errors.Is(err, ErrIllFormed) {
				t.Errorf("Ver() = %q, %v; want ErrIllFormed", v, err)
			}
		})
	}
	// A form without a hidden FORM_TYPE is ignored (§5.4), not an error.
	base := Info{Identities: []Identity{{Category: "server", Type: "im"}}, Features: []string{"a"}}
	want, _ := base.Ver()
	withForm := base
	withForm.Forms = []dataform.Form{{Type: dataform.TypeResult, Fields: []dataform.Field{{Var: "FORM_TYPE", Values: []string{"urn:a"}}, {Var: "x"}}}}
	if got, err := withForm.Ver(); err != nil || got != want {
		t.Errorf("Ver() with a form without hidden FORM_TYPE = %q, %v; want %q", got, err, want)
	}
	// Same FORM_TYPE value twice is allowed.
	if _, err := (Info{Forms: []dataform.Form{form("urn:a", "urn:a")}}).Ver(); err != nil {
		t.Errorf("repeated equal FORM_TYPE value: %v", err)
	}
}

func TestParseInfoErrors(t *testing.T) {
	tests := []struct{ name, xml string }{
		{"not a query", `<query xmlns='http://jabber.org/protocol/disco#items'/>`},
		{"identity without type", `<query xmlns='http://jabber.org/protocol/disco#info'><identity category='client'/></query>`},
		{"feature without var", `<query xmlns='http://jabber.org/protocol/disco#info'><feature/></query>`},
		{"invalid form", `<query xmlns='http://jabber.org/protocol/disco#info'><x xmlns='jabber:x:data'/></query>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseInfo(parseQuery(t, tt.xml)); !errors.Is(err, ErrIllFormed) {
				t.Errorf("ParseInfo = %v, want ErrIllFormed", err)
			}
		})
	}
}

func TestHash(t *testing.T) {
	tests := []struct {
		name string
		size int // bytes; 0 for unsupported
	}{
		{"sha-1", 20}, {"sha-224", 28}, {"sha-256", 32}, {"sha-384", 48}, {"sha-512", 64},
		{"md5", 0}, {"", 0}, {"SHA-1", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := Hash(tt.name)
			switch {
			case tt.size == 0 && h != nil:
				t.Errorf("Hash(%q) is supported", tt.name)
			case tt.size > 0 && (h == nil || h.Size() != tt.size):
				t.Errorf("Hash(%q) = %v", tt.name, h)
			}
		})
	}
}

// TestVerWith: the §5.3 example with SHA-256 gives the hash of the same
// string, and a hash is reused between calls.
func TestVerWith(t *testing.T) {
	info, err := ParseInfo(parseQuery(t, complexExample))
	if err != nil {
		t.Fatal(err)
	}
	h := Hash("sha-256")
	a, err := info.VerWith(h)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := info.VerWith(h)
	if a != b || len(a) != 44 {
		t.Errorf("VerWith(sha-256) = %q, then %q", a, b)
	}
	if v, _ := info.Ver(); v != "q07IKJEyjvHSyhy//CH0CxmKi8w=" {
		t.Errorf("Ver = %q", v)
	}
}

func BenchmarkVer(b *testing.B) {
	q := parseQuery(b, complexExample)
	h := Hash("sha-1")
	b.ReportAllocs()
	for b.Loop() {
		info, err := ParseInfo(q)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := info.VerWith(h); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzVer: whatever a client sends, ParseInfo and Ver do not panic, and
// an info that parses renders to a query that parses to the same
// verification string.
func FuzzVer(f *testing.F) {
	f.Add(simpleExample)
	f.Add(complexExample)
	f.Fuzz(func(t *testing.T, data string) {
		el, err := xmlstream.ParseElement([]byte(data), xmlstream.Limits{MaxStanzaBytes: 64 << 10})
		if err != nil {
			return
		}
		info, err := ParseInfo(el)
		if err != nil {
			if !errors.Is(err, ErrIllFormed) {
				t.Fatalf("ParseInfo error %v does not wrap ErrIllFormed", err)
			}
			return
		}
		ver, verr := info.Ver()
		again, err := ParseInfo(info.Element())
		if err != nil {
			t.Fatalf("the rendered info does not parse: %v\n%s", err, info.Element())
		}
		ver2, verr2 := again.Ver()
		if ver != ver2 || (verr == nil) != (verr2 == nil) {
			t.Fatalf("Ver %q (%v), after a round trip %q (%v)", ver, verr, ver2, verr2)
		}
	})
}

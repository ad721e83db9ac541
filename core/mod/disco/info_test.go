package disco

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"kontor.im/kontor/core/dataform"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/xmlstream"
)

func parseQuery(t *testing.T, text string) *stanza.Element {
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

func TestOptionsValidate(t *testing.T) {
	many := make([]string, maxAddresses+1)
	for i := range many {
		many[i] = "mailto:a@example.com"
	}
	tests := []struct {
		name    string
		c       ContactAddresses
		wantErr string
	}{
		{"none", ContactAddresses{}, ""},
		{"good", ContactAddresses{Abuse: []string{"mailto:abuse@example.com", "xmpp:abuse@example.com"}, Status: []string{"https://status.example.com"}, Support: []string{"https://example.com/support"}}, ""},
		{"relative", ContactAddresses{Admin: []string{"admin@example.com"}}, "contact_addresses.admin[0]"},
		{"empty", ContactAddresses{Sales: []string{""}}, "contact_addresses.sales[0]"},
		{"scheme only", ContactAddresses{Security: []string{"https:"}}, "not an absolute URI"},
		{"space", ContactAddresses{Feedback: []string{"mailto:a@example.com b"}}, "white space"},
		{"too long", ContactAddresses{Abuse: []string{"mailto:" + strings.Repeat("a", maxAddressSize)}}, "1 to 1024 bytes"},
		{"too many", ContactAddresses{Abuse: many}, "more than 16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := Options{ContactAddresses: tt.c}
			err := o.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "disco: ")):
				t.Errorf("Validate = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

package dataform

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/xmlstream"
)

// parseXML reads one element from XML text whose default namespace is
// jabber:x:data unless the text declares another.
func parseXML(t testing.TB, text string) (*stanza.Element, error) {
	t.Helper()
	rd := xmlstream.NewReader(strings.NewReader("<stream:stream xmlns='"+NS+"' xmlns:stream='"+stanza.NSStream+"'>"+text), xmlstream.Limits{})
	if _, err := rd.Header(); err != nil {
		return nil, err
	}
	return rd.Next()
}

func mustXML(t *testing.T, text string) *stanza.Element {
	t.Helper()
	el, err := parseXML(t, text)
	if err != nil {
		t.Fatalf("parse %q: %v", text, err)
	}
	return el
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		xml  string
		want Form
	}{
		{
			name: "minimal",
			xml:  `<x type='submit'/>`,
			want: Form{Type: TypeSubmit},
		},
		{
			name: "everything",
			xml: `<x type='form'>
				<title>Bot Configuration</title>
				<instructions>Fill out this form.</instructions>
				<instructions>Then submit it.</instructions>
				<field type='hidden' var='FORM_TYPE'><value>jabber:bot</value></field>
				<field type='fixed'><value>Section 1: Bot Info</value></field>
				<field type='text-single' label='The name of your bot' var='botname'/>
				<field type='text-multi' label='Helpful description' var='description'><desc>Say what it does</desc><value>line 1</value><value>line 2</value></field>
				<field type='boolean' label='Public bot?' var='public'><required/><value>0</value></field>
				<field type='text-private' label='Password' var='password'/>
				<field type='list-single' label='Security' var='security'><value>20</value>
					<option label='Low'><value>10</value></option><option label='High'><value>20</value></option></field>
				<field type='list-multi' var='features'><value>news</value><value>search</value>
					<option label='News'><value>news</value></option><option><value>search</value></option></field>
				<field type='jid-multi' var='invitelist'><value>alice@example.com</value><value>bob@example.com/x</value></field>
				<field type='jid-single' var='owner'><value>example.com</value></field>
			</x>`,
			want: Form{
				Type:         TypeForm,
				Title:        "Bot Configuration",
				Instructions: []string{"Fill out this form.", "Then submit it."},
				Fields: []Field{
					{Var: "FORM_TYPE", Type: Hidden, Values: []string{"jabber:bot"}},
					{Type: Fixed, Values: []string{"Section 1: Bot Info"}},
					{Var: "botname", Type: TextSingle, Label: "The name of your bot"},
					{Var: "description", Type: TextMulti, Label: "Helpful description", Desc: "Say what it does", Values: []string{"line 1", "line 2"}},
					{Var: "public", Type: Boolean, Label: "Public bot?", Required: true, Values: []string{"0"}},
					{Var: "password", Type: TextPrivate, Label: "Password"},
					{Var: "security", Type: ListSingle, Label: "Security", Values: []string{"20"}, Options: []Option{{"Low", "10"}, {"High", "20"}}},
					{Var: "features", Type: ListMulti, Values: []string{"news", "search"}, Options: []Option{{"News", "news"}, {"", "search"}}},
					{Var: "invitelist", Type: JIDMulti, Values: []string{"alice@example.com", "bob@example.com/x"}},
					{Var: "owner", Type: JIDSingle, Values: []string{"example.com"}},
				},
			},
		},
		{
			name: "untyped fields in a result take their type from context",
			xml: `<x type='result'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/network/serverinfo</value></field>
				<field var='abuse-addresses'><value>mailto:abuse@example.com</value><value>xmpp:abuse@example.com</value></field></x>`,
			want: Form{Type: TypeResult, Fields: []Field{
				{Var: "FORM_TYPE", Type: Hidden, Values: []string{"http://jabber.org/network/serverinfo"}},
				{Var: "abuse-addresses", Values: []string{"mailto:abuse@example.com", "xmpp:abuse@example.com"}},
			}},
		},
		{
			name: "unknown type is kept",
			xml:  `<x type='form'><field var='a' type='x-color'><value>red</value></field></x>`,
			want: Form{Type: TypeForm, Fields: []Field{{Var: "a", Type: "x-color", Values: []string{"red"}}}},
		},
		{
			name: "unknown elements are ignored",
			xml: `<x type='form'><field var='a'><validate xmlns='http://jabber.org/protocol/xdata-validate'/><value>1</value></field>
				<foo/><page xmlns='http://jabber.org/protocol/xdata-layout'/></x>`,
			want: Form{Type: TypeForm, Fields: []Field{{Var: "a", Values: []string{"1"}}}},
		},
		{
			name: "reported and items",
			xml: `<x type='result'><title>Results</title>
				<reported><field var='name' label='Name' type='text-single'/><field var='jid' type='jid-single'/></reported>
				<item><field var='name'><value>Juliet</value></field><field var='jid'><value>juliet@capulet.lit</value></field></item>
				<item><field var='jid'><value>romeo@montague.lit</value></field><field var='name'><value/></field></item>
			</x>`,
			want: Form{Type: TypeResult, Title: "Results",
				Reported: []Field{{Var: "name", Label: "Name", Type: TextSingle}, {Var: "jid", Type: JIDSingle}},
				Items: [][]Field{
					{{Var: "name", Values: []string{"Juliet"}}, {Var: "jid", Values: []string{"juliet@capulet.lit"}}},
					{{Var: "jid", Values: []string{"romeo@montague.lit"}}, {Var: "name", Values: []string{""}}},
				}},
		},
		{
			name: "reported after items is accepted",
			xml:  `<x type='result'><item><field var='a'/></item><reported><field var='a'/></reported></x>`,
			want: Form{Type: TypeResult, Reported: []Field{{Var: "a"}}, Items: [][]Field{{{Var: "a"}}}},
		},
		{
			name: "required with whitespace",
			xml:  "<x type='form'><field var='a'><required>  \n</required></field></x>",
			want: Form{Type: TypeForm, Fields: []Field{{Var: "a", Required: true}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(mustXML(t, tt.xml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Parse:\n got %#v\nwant %#v", got, tt.want)
			}
			again, err := Parse(got.Element())
			if err != nil {
				t.Fatalf("Parse(Element()): %v", err)
			}
			if !reflect.DeepEqual(again, got) {
				t.Fatalf("round trip:\n got %#v\nwant %#v", again, got)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	many := func(n int, s string) string { return strings.Repeat(s, n) }
	tests := []struct {
		name  string
		xml   string
		lim   Limits
		field string
		want  string // part of the message
	}{
		{name: "wrong element", xml: `<query xmlns='jabber:iq:register'/>`, want: "expected an x element"},
		{name: "wrong namespace", xml: `<x xmlns='jabber:x:oob' type='form'/>`, want: "expected an x element"},
		{name: "no type", xml: `<x/>`, want: "no type"},
		{name: "unknown type", xml: `<x type='bogus'/>`, want: `unknown form type "bogus"`},
		{name: "two titles", xml: `<x type='form'><title>a</title><title>b</title></x>`, want: "more than one title"},
		{name: "field without var", xml: `<x type='form'><field type='text-single'/></x>`, want: "no var"},
		{name: "untyped field without var", xml: `<x type='form'><field/></x>`, want: "text-single has no var"},
		{name: "duplicate var", xml: `<x type='submit'><field var='a'/><field var='a'/></x>`, field: "a", want: "more than one field"},
		{name: "two values for text-single", xml: `<x type='form'><field var='a' type='text-single'><value>1</value><value>2</value></field></x>`, field: "a", want: "at most one value"},
		{name: "two values for untyped in form", xml: `<x type='form'><field var='a'><value>1</value><value>2</value></field></x>`, field: "a", want: "at most one value"},
		{name: "two values for boolean", xml: `<x type='submit'><field var='a' type='boolean'><value>1</value><value>0</value></field></x>`, field: "a", want: "at most one value"},
		{name: "bad boolean", xml: `<x type='submit'><field var='a' type='boolean'><value>yes</value></field></x>`, field: "a", want: "not a boolean"},
		{name: "bad jid", xml: `<x type='submit'><field var='a' type='jid-single'><value>@example.com</value></field></x>`, field: "a", want: "not a valid JID"},
		{name: "bad jid in multi", xml: `<x type='submit'><field var='a' type='jid-multi'><value>a@b</value><value>a@b/</value></field></x>`, field: "a", want: "not a valid JID"},
		{name: "options on text", xml: `<x type='form'><field var='a' type='text-single'><option><value>1</value></option></field></x>`, field: "a", want: "cannot have options"},
		{name: "option without value", xml: `<x type='form'><field var='a' type='list-single'><option label='x'/></field></x>`, field: "a", want: "exactly one value, not 0"},
		{name: "option with two values", xml: `<x type='form'><field var='a' type='list-single'><option><value>1</value><value>2</value></option></field></x>`, field: "a", want: "exactly one value, not 2"},
		{name: "duplicate option value", xml: `<x type='form'><field var='a' type='list-multi'><option label='x'><value>1</value></option><option label='y'><value>1</value></option></field></x>`, field: "a", want: "two options with the value"},
		{name: "duplicate option label", xml: `<x type='form'><field var='a' type='list-multi'><option label='x'><value>1</value></option><option label='x'><value>2</value></option></field></x>`, field: "a", want: "two options with the label"},
		{name: "required not empty", xml: `<x type='form'><field var='a'><required>yes</required></field></x>`, field: "a", want: "must be empty"},
		{name: "two descs", xml: `<x type='form'><field var='a'><desc/><desc/></field></x>`, field: "a", want: "more than one desc"},
		{name: "reported in form", xml: `<x type='form'><reported><field var='a'/></reported></x>`, want: "only a form of type result"},
		{name: "item in submit", xml: `<x type='submit'><item><field var='a'/></item></x>`, want: "only a form of type result"},
		{name: "two reported", xml: `<x type='result'><reported><field var='a'/></reported><reported><field var='a'/></reported></x>`, want: "more than one reported"},
		{name: "empty reported", xml: `<x type='result'><reported/></x>`, want: "reported has no fields"},
		{name: "empty item", xml: `<x type='result'><reported><field var='a'/></reported><item/></x>`, want: "item has no fields"},
		{name: "item without reported", xml: `<x type='result'><item><field var='a'/></item></x>`, want: "items without a reported"},
		{name: "item lacks a reported field", xml: `<x type='result'><reported><field var='a'/><field var='b'/></reported><item><field var='a'/></item></x>`, field: "b", want: "item 1 lacks"},
		{name: "reported field without var", xml: `<x type='result'><reported><field type='fixed'/></reported></x>`, want: "in reported has no var"},
		{name: "too many fields", xml: `<x type='submit'>` + many(5, `<field type='fixed'/>`) + `</x>`, lim: Limits{MaxFields: 4}, want: "more than 4 fields"},
		{name: "fields in items count", xml: `<x type='result'><reported><field var='a'/></reported>` + many(3, `<item><field var='a'/></item>`) + `</x>`, lim: Limits{MaxFields: 3}, want: "more than 3 fields"},
		{name: "too many values", xml: `<x type='submit'><field var='a' type='text-multi'>` + many(3, `<value/>`) + `</field></x>`, lim: Limits{MaxValues: 2}, field: "a", want: "more than 2 values"},
		{name: "too many options", xml: `<x type='form'><field var='a' type='list-multi'><option><value>1</value></option><option><value>2</value></option></field></x>`, lim: Limits{MaxOptions: 1}, field: "a", want: "more than 1 options"},
		{name: "too many items", xml: `<x type='result'><reported><field var='a'/></reported>` + many(3, `<item><field var='a'/></item>`) + `</x>`, lim: Limits{MaxItems: 2}, want: "more than 2 items"},
		{name: "too many instructions", xml: `<x type='form'>` + many(3, `<instructions/>`) + `</x>`, lim: Limits{MaxInstructions: 2}, want: "more than 2 instructions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.lim.Parse(mustXML(t, tt.xml))
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not *Error", err)
			}
			if e.Field != tt.field {
				t.Errorf("Field = %q, want %q", e.Field, tt.field)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "dataform: ") {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
		})
	}
	if _, err := Parse(nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("Parse(nil) = %v", err)
	}
}

func TestFormType(t *testing.T) {
	tests := []struct {
		name string
		xml  string
		want string
	}{
		{"hidden", `<x type='result'><field var='FORM_TYPE' type='hidden'><value>urn:a</value></field></x>`, "urn:a"},
		{"not first", `<x type='form'><field var='x'/><field var='FORM_TYPE' type='hidden'><value>urn:a</value></field></x>`, "urn:a"},
		{"visible in a result", `<x type='result'><field var='FORM_TYPE'><value>urn:a</value></field></x>`, ""},
		{"visible in a form", `<x type='form'><field var='FORM_TYPE' type='text-single'><value>urn:a</value></field></x>`, ""},
		{"untyped in a submit", `<x type='submit'><field var='FORM_TYPE'><value>urn:a</value></field></x>`, "urn:a"},
		{"no value", `<x type='result'><field var='FORM_TYPE' type='hidden'/></x>`, ""},
		{"none", `<x type='result'><field var='a'/></x>`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse(mustXML(t, tt.xml))
			if err != nil {
				t.Fatal(err)
			}
			if got := f.FormType(); got != tt.want {
				t.Errorf("FormType() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNewAndAccessors(t *testing.T) {
	f := New(TypeSubmit, "urn:xmpp:test", Field{Var: "flag", Type: Boolean, Values: []string{"true"}}, Field{Var: "name", Values: []string{"a", "b"}})
	el := f.Element()
	want := `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:test</value></field>` +
		`<field var='flag' type='boolean'><value>true</value></field><field var='name'><value>a</value><value>b</value></field></x>`
	if got := el.String(); got != want {
		t.Fatalf("Element:\n got %s\nwant %s", got, want)
	}
	g, err := Parse(el)
	if err != nil {
		t.Fatal(err)
	}
	if g.FormType() != "urn:xmpp:test" || g.Value("name") != "a" || g.Value("missing") != "" {
		t.Errorf("accessors: %q %q", g.FormType(), g.Value("name"))
	}
	flag, _ := g.Field("flag")
	if b, err := flag.Bool(); err != nil || !b {
		t.Errorf("Bool = %v, %v", b, err)
	}
	if b, err := (Field{}).Bool(); err != nil || b {
		t.Errorf("Bool of an empty field = %v, %v", b, err)
	}
	if _, err := (Field{Var: "x", Values: []string{"maybe"}}).Bool(); !errors.Is(err, ErrInvalid) {
		t.Errorf("Bool(maybe) = %v", err)
	}
	if len(New(TypeResult, "").Fields) != 0 {
		t.Error("New with no FORM_TYPE added a field")
	}
}

// FuzzParse checks that Parse never panics, that whatever it accepts renders
// to an element it accepts again as the same form (the round-trip property),
// also through serialisation and the stream reader, and that what it rejects
// is rejected with an ErrInvalid.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		el, err := parseXML(t, string(data))
		if err != nil {
			return
		}
		form, err := Parse(el)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		again, err := Parse(form.Element())
		if err != nil {
			t.Fatalf("Parse(Element()) of an accepted form: %v\n%s", err, form.Element())
		}
		if !reflect.DeepEqual(again, form) {
			t.Fatalf("round trip differs:\n got %#v\nwant %#v", again, form)
		}
		text := form.Element().String()
		el2, err := parseXML(t, text)
		if err != nil {
			t.Fatalf("the rendered form does not parse as XML: %v\n%s", err, text)
		}
		again, err = Parse(el2)
		if err != nil {
			t.Fatalf("Parse of the serialised form: %v\n%s", err, text)
		}
		if !reflect.DeepEqual(again, form) {
			t.Fatalf("serialised round trip differs:\n got %#v\nwant %#v", again, form)
		}
	})
}

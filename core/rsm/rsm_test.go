package rsm

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/xmlstream"
)

// parseXML reads one element from XML text whose default namespace is the
// RSM namespace unless the text declares another.
func parseXML(text string) (*stanza.Element, error) {
	rd := xmlstream.NewReader(strings.NewReader("<stream:stream xmlns='"+NS+"' xmlns:stream='"+stanza.NSStream+"'>"+text), xmlstream.Limits{})
	if _, err := rd.Header(); err != nil {
		return nil, err
	}
	return rd.Next()
}

func mustXML(t *testing.T, text string) *stanza.Element {
	t.Helper()
	el, err := parseXML(text)
	if err != nil {
		t.Fatalf("parse %q: %v", text, err)
	}
	return el
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		xml  string
		want Set
	}{
		{name: "empty", xml: `<set/>`, want: Set{}},
		{name: "max only", xml: `<set><max>10</max></set>`, want: Set{Max: 10, HasMax: true}},
		{name: "max zero asks for the count", xml: `<set><max>0</max></set>`, want: Set{Max: 0, HasMax: true}},
		{name: "max with whitespace, plus sign and leading zeros", xml: "<set><max> +007\n</max></set>", want: Set{Max: 7, HasMax: true}},
		{name: "largest max", xml: `<set><max>2147483647</max></set>`, want: Set{Max: 1<<31 - 1, HasMax: true}},
		{name: "after", xml: `<set><max>10</max><after>09af3-cc343-b409f</after></set>`,
			want: Set{Max: 10, HasMax: true, After: "09af3-cc343-b409f"}},
		{name: "before with a UID", xml: `<set><max>10</max><before>peterpan@neverland.lit</before></set>`,
			want: Set{Max: 10, HasMax: true, Before: "peterpan@neverland.lit", HasBefore: true}},
		{name: "empty before asks for the last page", xml: `<set><max>10</max><before/></set>`,
			want: Set{Max: 10, HasMax: true, HasBefore: true}},
		{name: "before and after together", xml: `<set><after>a</after><before>b</before></set>`,
			want: Set{After: "a", Before: "b", HasBefore: true}},
		{name: "index", xml: `<set><max>10</max><index>371</index></set>`,
			want: Set{Max: 10, HasMax: true, Index: 371, HasIndex: true}},
		{name: "response with index and count",
			xml:  `<set><first index='20'>stpeter@jabber.org</first><last>peterpan@neverland.lit</last><count>800</count></set>`,
			want: Set{First: "stpeter@jabber.org", FirstIndex: 20, HasFirstIndex: true, Last: "peterpan@neverland.lit", Count: 800, HasCount: true}},
		{name: "response without index", xml: `<set><first>a</first><last>b</last></set>`,
			want: Set{First: "a", Last: "b"}},
		{name: "count only", xml: `<set><count>0</count></set>`, want: Set{HasCount: true}},
		{name: "UIDs are opaque: spaces and markup characters kept", xml: `<set><after> a&lt;b </after></set>`,
			want: Set{After: " a<b "}},
		{name: "other namespaces and unknown children are ignored",
			xml:  `<set><max>3</max><x xmlns='urn:example'><max>9</max></x><future/></set>`,
			want: Set{Max: 3, HasMax: true}},
		{name: "prefixed namespace", xml: `<r:set xmlns:r='http://jabber.org/protocol/rsm'><r:max>1</r:max></r:set>`,
			want: Set{Max: 1, HasMax: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(mustXML(t, tc.xml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Parse:\n got %+v\nwant %+v", got, tc.want)
			}
			again, err := Parse(got.Element())
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("round trip: %+v, %v; rendered %s", again, err, got.Element())
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		name string
		xml  string
		want string // part of the error message
	}{
		{name: "wrong element", xml: `<query/>`, want: "expected a set element"},
		{name: "wrong namespace", xml: `<set xmlns='urn:example'/>`, want: "expected a set element"},
		{name: "negative max", xml: `<set><max>-1</max></set>`, want: "non-negative integer"},
		{name: "empty max", xml: `<set><max/></set>`, want: "non-negative integer"},
		{name: "max not a number", xml: `<set><max>ten</max></set>`, want: "non-negative integer"},
		{name: "max with a fraction", xml: `<set><max>1.5</max></set>`, want: "non-negative integer"},
		{name: "max too large", xml: `<set><max>2147483648</max></set>`, want: "larger than"},
		{name: "max far too large", xml: `<set><max>99999999999999999999999</max></set>`, want: "larger than"},
		{name: "two max", xml: `<set><max>1</max><max>2</max></set>`, want: "more than one max"},
		{name: "two before", xml: `<set><before/><before/></set>`, want: "more than one before"},
		{name: "empty after", xml: `<set><after/></set>`, want: "after is empty"},
		{name: "empty first", xml: `<set><first index='0'/></set>`, want: "first is empty"},
		{name: "empty last", xml: `<set><last></last></set>`, want: "last is empty"},
		{name: "negative index", xml: `<set><index>-3</index></set>`, want: "non-negative integer"},
		{name: "bad first index", xml: `<set><first index='x'>a</first></set>`, want: "the index of first"},
		{name: "negative count", xml: `<set><count>-1</count></set>`, want: "non-negative integer"},
		{name: "element inside after", xml: `<set><after><b/></after></set>`, want: "may hold text only"},
		{name: "UID too long", xml: `<set><before>` + strings.Repeat("x", MaxUIDBytes+1) + `</before></set>`, want: "longer than 1024 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(mustXML(t, tc.xml))
			if err == nil {
				t.Fatal("Parse accepted it")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "rsm: ") {
				t.Fatalf("error %q, want it to start with \"rsm: \" and contain %q", err, tc.want)
			}
		})
	}
	if _, err := Parse(nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Parse(nil) = %v, want ErrInvalid", err)
	}
}

func TestElement(t *testing.T) {
	tests := []struct {
		name string
		set  Set
		want string
	}{
		{name: "zero value is the empty set", set: Set{}, want: `<set xmlns='http://jabber.org/protocol/rsm'/>`},
		{name: "request for the last page", set: Set{Max: 2, HasMax: true, HasBefore: true},
			want: `<set xmlns='http://jabber.org/protocol/rsm'><max>2</max><before/></set>`},
		{name: "count request", set: Set{HasMax: true},
			want: `<set xmlns='http://jabber.org/protocol/rsm'><max>0</max></set>`},
		{name: "response", set: Set{First: "a", FirstIndex: 0, HasFirstIndex: true, Last: "z&", Count: 3, HasCount: true},
			want: `<set xmlns='http://jabber.org/protocol/rsm'><first index='0'>a</first><last>z&amp;</last><count>3</count></set>`},
		{name: "index of an absent first is not written", set: Set{FirstIndex: 4, HasFirstIndex: true},
			want: `<set xmlns='http://jabber.org/protocol/rsm'/>`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.set.Element().String(); got != tc.want {
				t.Fatalf("Element:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestLastPage(t *testing.T) {
	tests := []struct {
		name string
		set  Set
		want bool
	}{
		{name: "empty before", set: Set{HasBefore: true}, want: true},
		{name: "before with a UID", set: Set{HasBefore: true, Before: "x"}, want: false},
		{name: "no before", set: Set{}, want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.set.LastPage(); got != tc.want {
				t.Fatalf("LastPage() = %v, want %v", got, tc.want)
			}
		})
	}
}

// FuzzParse checks, for any input that is XML: Parse does not panic, its
// errors wrap ErrInvalid, what it accepts is within bounds, and an accepted
// set survives rendering, serialising and parsing again unchanged.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		el, err := parseXML(string(data))
		if err != nil {
			return
		}
		s, err := Parse(el)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		for _, n := range []int{s.Max, s.Index, s.FirstIndex, s.Count} {
			if n < 0 || n > maxNumber {
				t.Fatalf("number %d out of bounds in %+v", n, s)
			}
		}
		for _, u := range []string{s.After, s.Before, s.First, s.Last} {
			if len(u) > MaxUIDBytes {
				t.Fatalf("UID of %d bytes accepted", len(u))
			}
		}
		if s.HasFirstIndex && s.First == "" {
			t.Fatalf("an index without a first: %+v", s)
		}
		again, err := Parse(s.Element())
		if err != nil || !reflect.DeepEqual(again, s) {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, s)
		}
		text := s.Element().String()
		el2, err := parseXML(text)
		if err != nil {
			t.Fatalf("the rendered set is not XML: %v\n%s", err, text)
		}
		again, err = Parse(el2)
		if err != nil || !reflect.DeepEqual(again, s) {
			t.Fatalf("serialised round trip: %+v, %v; want %+v\n%s", again, err, s, text)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	el, err := parseXML(`<set><max>50</max><after>0c2r9b1f2c3d4e5f6g7h8j9k0m</after></set>`)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		s, err := Parse(el)
		if err != nil || s.Max != 50 {
			b.Fatal(s, err)
		}
	}
}

func BenchmarkElement(b *testing.B) {
	s := Set{First: "0c2r9b1f2c3d4e5f6g7h8j9k0m", Last: "0c2r9b1f2c3d4e5f6g7h8j9k0n", Count: 1234, HasCount: true}
	b.ReportAllocs()
	for b.Loop() {
		if s.Element() == nil {
			b.Fatal("nil")
		}
	}
}

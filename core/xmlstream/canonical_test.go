package xmlstream

import (
	"bytes"
	"io"
	"reflect"
	"strings"
	"testing"

	"kontor.im/kontor/core/stanza"
)

// parseFull is ParseElement without the fast paths.
func parseFull(b []byte, lim Limits) (*stanza.Element, error) {
	const open = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
	rd := NewReader(io.MultiReader(strings.NewReader(open), bytes.NewReader(b)), lim)
	rd.tokenizerOnly = true
	if _, err := rd.Header(); err != nil {
		return nil, err
	}
	return rd.Next()
}

// sameAsFull fails unless the fast path, where it accepts b, builds what
// the full reader builds.
func sameAsFull(t *testing.T, b []byte, lim Limits) bool {
	t.Helper()
	lim = lim.withDefaults()
	fast, ok := parseCanonical(b, lim)
	if !ok {
		return false
	}
	full, err := parseFull(b, lim)
	if err != nil {
		t.Fatalf("fast path accepted %q, the full reader did not: %v", b, err)
	}
	if !reflect.DeepEqual(fast, full) {
		t.Fatalf("fast path and full reader differ on %q:\nfast %#v\nfull %#v", b, fast, full)
	}
	return true
}

func TestParseCanonical(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		fast bool
	}{
		{"chat", "<message xmlns='jabber:client' to='a@b/r' type='chat' id='x1'><body>hi &amp; &lt;bye&gt; it&apos;s 'q' \"q\"</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>", true},
		{"no xmlns", "<message><body>x</body></message>", true},
		{"lang and escapes", "<message xml:lang='de' a='&apos;&quot;&#x9;&#xA;&#xD;&lt;&gt;'><body>ü ☺ 😀&#xD;\n\tz</body></message>", true},
		{"mixed content", "<message><x xmlns='urn:x'>a<y/>b<z>c</z></x></message>", true},
		{"empty", "<message/>", true},
		{"double quotes", "<message to=\"a@b\"/>", false},
		{"prefixed attribute", "<message><x xmlns:ns1='urn:a' ns1:b='c'/></message>", false},
		{"prefixed element", "<message><p:x xmlns:p='urn:a'/></message>", false},
		{"comment", "<message><!-- c --></message>", false},
		{"cdata", "<message><body><![CDATA[x]]></body></message>", false},
		{"numeric reference", "<message><body>&#65;</body></message>", false},
		{"raw CR", "<message><body>a\rb</body></message>", false},
		{"newline in attribute", "<message a='x\ny'/>", false},
		{"trailing", "<message/><message/>", false},
		{"trailing space", "<message/> ", false},
		{"space before close", "<message />", false},
		{"mismatched end", "<message></messages>", false},
		{"truncated", "<message><body>", false},
		{"duplicate attribute", "<message a='1' a='2'/>", false},
		{"empty xmlns", "<message><x xmlns=''/></message>", false},
		{"invalid utf-8", "<message><body>\xff</body></message>", false},
		{"non-character", "<message><body>\uFFFE</body></message>", false},
		{"control", "<message><body>\x01</body></message>", false},
		{"raw >", "<message><body>a>b</body></message>", false},
		{"element named xmlns", "<message><xmlns/></message>", false},
		{"top-level element named xmlns", "<xmlns/>", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sameAsFull(t, []byte(tc.in), Limits{}); got != tc.fast {
				t.Fatalf("fast path taken: %v, want %v", got, tc.fast)
			}
		})
	}
	// Limits: over any, the fast path stands aside (the full reader
	// rejects).
	deep := strings.Repeat("<a>", 5) + strings.Repeat("</a>", 5)
	if _, ok := parseCanonical([]byte(deep), Limits{MaxStanzaBytes: 1000, MaxDepth: 4, MaxAttrs: 4}); ok {
		t.Error("fast path went deeper than MaxDepth")
	}
	if _, ok := parseCanonical([]byte("<a b='1' c='2' d='3'/>"), Limits{MaxStanzaBytes: 1000, MaxDepth: 4, MaxAttrs: 2}); ok {
		t.Error("fast path took more than MaxAttrs")
	}
	if _, ok := parseCanonical([]byte("<a>"+strings.Repeat("x", 100)+"</a>"), Limits{MaxStanzaBytes: 50, MaxDepth: 4, MaxAttrs: 2}); ok {
		t.Error("fast path took more than MaxStanzaBytes")
	}
}

// FuzzParseCanonical: where the fast path accepts input, the full reader
// accepts it too and builds the same element; and whatever the full reader
// reads, serialised by AppendXML, takes the fast path.
func FuzzParseCanonical(f *testing.F) {
	for _, s := range []string{
		"<message xmlns='jabber:client' to='a@b'><body>x &amp; y</body></message>",
		"<message xml:lang='en'><x xmlns='urn:x' a='&apos;'>t<y/>u</x></message>",
		"<message><body>ü&#xD;</body></message>",
		"<message><x xmlns:ns1='urn:a' ns1:b='c'/></message>",
		"<a b='\t'/>",
	} {
		f.Add([]byte(s))
	}
	lim := Limits{MaxStanzaBytes: 4096, MaxDepth: 16, MaxAttrs: 16}
	f.Fuzz(func(t *testing.T, data []byte) {
		sameAsFull(t, data, lim)
		full, err := parseFull(data, lim)
		if err != nil {
			return
		}
		out := full.AppendXML(nil, stanza.NSClient)
		if len(out) > lim.MaxStanzaBytes {
			return
		}
		if !sameAsFull(t, out, Limits{MaxStanzaBytes: 4096, MaxDepth: 17, MaxAttrs: 17}) && !outsideFastPath(full) {
			t.Fatalf("AppendXML's output %q does not take the fast path", out)
		}
	})
}

// outsideFastPath reports whether AppendXML's form of e is one the fast
// path leaves to the full reader by design: an attribute in a namespace
// other than xml's (serialised with a prefix declaration), or an element
// in no namespace (serialised with an empty xmlns). Neither occurs in what the
// server stores: stanzas are in jabber:client and extensions in theirs.
func outsideFastPath(e *stanza.Element) bool {
	if e.Name.Space == "" {
		return true
	}
	for _, a := range e.Attr {
		if a.Name.Space != "" && a.Name.Space != stanza.NSXML {
			return true
		}
	}
	found := false
	e.Children(func(c *stanza.Element) bool {
		found = found || outsideFastPath(c)
		return !found
	})
	return found
}

// BenchmarkParseElement reads back a stored chat message (what a MAM page
// does fifty times), by the fast path and by the full reader.
func BenchmarkParseElement(b *testing.B) {
	msg := []byte("<message xmlns='jabber:client' from='alice@example.com/phone' to='bob@example.com' type='chat' id='a1b2c3d4'><body>Hello Bob, see you at 10 &amp; bring the slides.</body><active xmlns='http://jabber.org/protocol/chatstates'/><stanza-id xmlns='urn:xmpp:sid:0' by='bob@example.com' id='01HZZZZZZZZZZZZZZZZZZZZZZZ'/></message>")
	for _, tc := range []struct {
		name  string
		parse func([]byte, Limits) (*stanza.Element, error)
	}{{"fast", ParseElement}, {"full", parseFull}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tc.parse(msg, Limits{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

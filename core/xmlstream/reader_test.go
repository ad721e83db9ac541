package xmlstream

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"kontor.im/kontor/core/stanza"
)

const header = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0' xml:lang='de'>"

// readAll reads the header and every element until an error.
func readAll(t testing.TB, r io.Reader, lim Limits) ([]*stanza.Element, error) {
	t.Helper()
	rd := NewReader(r, lim)
	if _, err := rd.Header(); err != nil {
		return nil, err
	}
	var out []*stanza.Element
	for {
		el, err := rd.Next()
		if err != nil {
			return out, err
		}
		out = append(out, el)
	}
}

func condition(err error) string {
	var se *stanza.StreamError
	if errors.As(err, &se) {
		return se.Condition
	}
	if err == nil {
		return ""
	}
	return "io:" + err.Error()
}

func TestHeader(t *testing.T) {
	tests := []struct {
		name, in string
		want     Header
		cond     string
	}{
		{"client stream", header, Header{To: "example.com", Version: "1.0", Lang: "de", Namespace: "jabber:client"}, ""},
		{"without declaration", "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='a' version='1.0'>", Header{To: "a", Version: "1.0", Namespace: "jabber:client"}, ""},
		{"leading whitespace", "\n  " + header[21:], Header{To: "example.com", Version: "1.0", Lang: "de", Namespace: "jabber:client"}, ""},
		{"wrong stream namespace", "<stream:stream xmlns='jabber:client' xmlns:stream='urn:wrong'>", Header{}, stanza.StreamInvalidNamespace},
		{"not a stream", "<foo xmlns='jabber:client'>", Header{}, stanza.StreamBadFormat},
		{"other encoding", "<?xml version='1.0' encoding='ISO-8859-1'?>" + header[21:], Header{}, stanza.StreamUnsupportedEncoding},
		{"DTD", "<!DOCTYPE x [<!ENTITY a 'b'>]>" + header[21:], Header{}, stanza.StreamRestrictedXML},
		{"comment", "<!-- hi -->" + header[21:], Header{}, stanza.StreamRestrictedXML},
		{"text before", "hello" + header[21:], Header{}, stanza.StreamNotWellFormed},
		{"processing instruction", "<?php x?>" + header[21:], Header{}, stanza.StreamRestrictedXML},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rd := NewReader(strings.NewReader(tt.in), Limits{})
			h, err := rd.Header()
			if got := condition(err); got != tt.cond {
				t.Fatalf("error = %v (%s), want %q", err, got, tt.cond)
			}
			if tt.cond == "" && h != tt.want {
				t.Fatalf("header = %+v, want %+v", h, tt.want)
			}
		})
	}
}

func TestNext(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // serialised elements
		cond string   // final error condition; "io:EOF" for a clean close
	}{
		{"message", "<message to='b@example.com' type='chat'><body>hi &amp; bye &lt;3</body></message></stream:stream>",
			[]string{"<message to='b@example.com' type='chat'><body>hi &amp; bye &lt;3</body></message>"}, "io:EOF"},
		{"whitespace keepalives", "  \n<presence/> \t <presence type='unavailable'/>\n</stream:stream>",
			[]string{"<presence/>", "<presence type='unavailable'/>"}, "io:EOF"},
		{"payload namespace", "<iq type='get' id='1'><query xmlns='jabber:iq:roster' ver=''/></iq>",
			[]string{"<iq type='get' id='1'><query xmlns='jabber:iq:roster' ver=''/></iq>"}, "io:unexpected EOF"},
		{"prefixed namespace", "<message><x:y xmlns:x='urn:x' x:a='1'/></message>",
			[]string{"<message><y xmlns='urn:x' xmlns:ns1='urn:x' ns1:a='1'/></message>"}, "io:unexpected EOF"},
		{"xml:lang kept", "<message xml:lang='fr'><body>salut</body></message>",
			[]string{"<message xml:lang='fr'><body>salut</body></message>"}, "io:unexpected EOF"},
		{"mixed content order", "<message><html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'>a<b>b</b>c</body></html></message>",
			[]string{"<message><html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'>a<b>b</b>c</body></html></message>"}, "io:unexpected EOF"},
		{"character references", "<message><body>&#x263A;&#65;</body></message>",
			[]string{"<message><body>\u263aA</body></message>"}, "io:unexpected EOF"},
		{"undefined entity", "<message><body>&nbsp;</body></message>", nil, stanza.StreamRestrictedXML},
		{"comment inside", "<message><!-- x --></message>", nil, stanza.StreamRestrictedXML},
		{"processing instruction inside", "<message><?pi x?></message>", nil, stanza.StreamRestrictedXML},
		{"DTD inside", "<!DOCTYPE lol [<!ENTITY lol 'lol'>]><message>&lol;</message>", nil, stanza.StreamRestrictedXML},
		{"mismatched tags", "<message><body></message>", nil, stanza.StreamNotWellFormed},
		{"undeclared prefix", "<message><x:y/></message>", nil, stanza.StreamNotWellFormed},
		{"duplicate attribute", "<message to='a' to='b'/>", nil, stanza.StreamNotWellFormed},
		{"text at stream level", "hello<message/>", nil, stanza.StreamNotWellFormed},
		{"second one bad", "<presence/><message><</message>", []string{"<presence/>"}, stanza.StreamNotWellFormed},
	}
	for _, tt := range tests {
		for _, split := range []bool{false, true} {
			name := tt.name
			if split {
				name += "/one byte at a time"
			}
			t.Run(name, func(t *testing.T) {
				var r io.Reader = strings.NewReader(header + tt.in)
				if split {
					r = iotest.OneByteReader(r)
				}
				els, err := readAll(t, r, Limits{})
				if got := condition(err); got != tt.cond {
					t.Fatalf("error = %v (%s), want %s", err, got, tt.cond)
				}
				if len(els) != len(tt.want) {
					t.Fatalf("got %d elements, want %d", len(els), len(tt.want))
				}
				for i, el := range els {
					if got := string(el.AppendXML(nil, stanza.NSClient)); got != tt.want[i] {
						t.Errorf("element %d = %s\nwant        %s", i, got, tt.want[i])
					}
				}
			})
		}
	}
}

func TestLimits(t *testing.T) {
	deep := strings.Repeat("<a>", 40) + strings.Repeat("</a>", 40)
	manyAttrs := "<message"
	for i := range 70 {
		manyAttrs += " a" + string(rune('A'+i/26)) + string(rune('a'+i%26)) + "='1'"
	}
	manyAttrs += "/>"
	tests := []struct {
		name string
		in   string
		lim  Limits
		ok   int // elements read before the error
	}{
		{"stanza over the size limit", "<message><body>" + strings.Repeat("x", 5000) + "</body></message>", Limits{MaxStanzaBytes: 1000}, 0},
		{"one huge attribute", "<message to='" + strings.Repeat("x", 100000) + "'/>", Limits{MaxStanzaBytes: 1000}, 0},
		{"small then big", "<presence/><message><body>" + strings.Repeat("x", 5000) + "</body></message>", Limits{MaxStanzaBytes: 1000}, 1},
		{"nested too deep", "<message>" + deep + "</message>", Limits{MaxDepth: 32}, 0},
		{"too many attributes", manyAttrs, Limits{MaxAttrs: 64}, 0},
		// Keepalives between stanzas count against the budget of the next
		// stanza only until one arrives: at the default 256 KiB that is
		// months of one-byte keepalives without a stanza.
		{"endless whitespace is fine", strings.Repeat(" \n", 400) + "<presence/>", Limits{MaxStanzaBytes: 1000}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			els, err := readAll(t, strings.NewReader(header+tt.in), tt.lim)
			if tt.name == "endless whitespace is fine" {
				if len(els) != tt.ok {
					t.Fatalf("read %d elements (err %v), want %d", len(els), err, tt.ok)
				}
				return
			}
			if got := condition(err); got != stanza.StreamPolicyViolation {
				t.Fatalf("error = %v, want policy-violation", err)
			}
			if len(els) != tt.ok {
				t.Fatalf("read %d elements before the error, want %d", len(els), tt.ok)
			}
		})
	}
	// Many stanzas that are each within the limit add up to far more than
	// the limit: the budget is per stanza, not per stream.
	var b strings.Builder
	for range 100 {
		b.WriteString("<message><body>" + strings.Repeat("y", 500) + "</body></message>")
	}
	els, err := readAll(t, strings.NewReader(header+b.String()), Limits{MaxStanzaBytes: 1000})
	if len(els) != 100 || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("read %d of 100 stanzas within the limit, err %v", len(els), err)
	}
}

// TestBillionLaughs: entity expansion is refused outright.
func TestBillionLaughs(t *testing.T) {
	bomb := `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>` + header[21:] + "<message>&lol2;</message>"
	_, err := readAll(t, strings.NewReader(bomb), Limits{})
	if got := condition(err); got != stanza.StreamRestrictedXML {
		t.Fatalf("error = %v, want restricted-xml", err)
	}
}

func BenchmarkParseChat(b *testing.B) {
	msg := "<message to='bob@example.com/phone' from='alice@example.com/laptop' type='chat' id='a1b2c3d4'><body>Hello Bob, are we still on for lunch today?</body><active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/></message>"
	const n = 1000
	input := header + strings.Repeat(msg, n)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	count := 0
	for count < b.N {
		rd := NewReader(strings.NewReader(input), Limits{})
		if _, err := rd.Header(); err != nil {
			b.Fatal(err)
		}
		for i := 0; i < n && count < b.N; i++ {
			if _, err := rd.Next(); err != nil {
				b.Fatal(err)
			}
			count++
		}
	}
}

func TestNotXML(t *testing.T) {
	for _, in := range []string{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "\x16\x03\x01\x02\x00", "  hello"} {
		rd := NewReader(strings.NewReader(in), Limits{}) // no '<' ever comes: must not block
		if _, err := rd.Header(); condition(err) != stanza.StreamNotWellFormed {
			t.Errorf("%q: %v", in, err)
		}
	}
}

func TestParseElement(t *testing.T) {
	el, err := ParseElement([]byte("<message xmlns='jabber:client' to='a@b'><body>x &amp; y</body></message>"), Limits{})
	if err != nil || el.ChildText(stanza.NSClient, "body") != "x & y" || el.Name.Space != stanza.NSClient {
		t.Fatalf("ParseElement = %v, %v", el, err)
	}
	if _, err := ParseElement([]byte("<message><body>"), Limits{}); err == nil {
		t.Fatal("a truncated element was accepted")
	}
	if _, err := ParseElement([]byte("<message>"+strings.Repeat("x", 2000)+"</message>"), Limits{MaxStanzaBytes: 1000}); condition(err) != stanza.StreamPolicyViolation {
		t.Fatalf("over the limit: %v", err)
	}
}

// chunks is a reader that returns one chunk per read, then io.EOF.
type chunks struct{ parts []string }

func (c *chunks) Read(p []byte) (int, error) {
	if len(c.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.parts[0])
	c.parts[0] = c.parts[0][n:]
	if c.parts[0] == "" {
		c.parts = c.parts[1:]
	}
	return n, nil
}

// TestBufferedAndWait checks that Buffered tells whether the next Next
// would read from the connection first, and that Wait reads without
// losing or reordering anything (an error included).
func TestBufferedAndWait(t *testing.T) {
	src := &chunks{parts: []string{header, "<a/><b/>", "<c/>"}}
	rd := NewReader(src, Limits{})
	if _, err := rd.Header(); err != nil {
		t.Fatal(err)
	}
	if rd.Buffered() {
		t.Fatal("Buffered after the header's read was consumed")
	}
	rd.Wait()
	if !rd.Buffered() {
		t.Fatal("not Buffered after Wait read input")
	}
	rd.Wait() // buffered: reads nothing
	for _, want := range []string{"a", "b", "c"} {
		el, err := rd.Next()
		if err != nil || el.Name.Local != want {
			t.Fatalf("got %v, %v; want <%s/>", el, err, want)
		}
		if want == "a" && !rd.Buffered() {
			t.Fatal("<b/> is buffered, Buffered says no")
		}
		if want == "b" && rd.Buffered() {
			t.Fatal("Buffered with nothing left")
		}
	}
	rd.Wait() // the end: the error is kept for Next
	if _, err := rd.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Next after the end: %v, want unexpected EOF", err)
	}
}

// TestIdleReopens: after Idle lets the tokenizer go, Next opens a new one
// in the stream's state: the header's namespaces (any stream prefix,
// another default namespace, a prefix declared on the header, values that
// need escaping) resolve as before, the stream's end is recognised, and
// limits count from the right place. A header whose form cannot be
// copied keeps its tokenizer.
func TestIdleReopens(t *testing.T) {
	for _, tc := range []struct {
		name, header, body string
		want               []string // AppendXML of each element
		reopens            bool
	}{
		{"client", "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>",
			"<message to='a@b'><body>hi</body></message>",
			[]string{"<message to='a@b'><body>hi</body></message>"}, true},
		{"server with dialback", `<s:stream xmlns:s="http://etherx.jabber.org/streams" xmlns="jabber:server" xmlns:db="jabber:server:dialback">`,
			"<db:result from='a' to='b'>key</db:result><message from='x@a' to='y@b'/>",
			[]string{"<result xmlns='jabber:server:dialback' from='a' to='b'>key</result>", "<message xmlns='jabber:server' from='x@a' to='y@b'/>"}, true},
		{"escaped namespace", `<stream:stream xmlns="urn:x&amp;y&apos;z" xmlns:stream="http://etherx.jabber.org/streams">`,
			"<a/>", []string{"<a xmlns='urn:x&amp;y&apos;z'/>"}, true},
		{"no default namespace", `<stream:stream xmlns:stream="http://etherx.jabber.org/streams">`,
			"<a/>", []string{"<a xmlns=''/>"}, true},
		{"streams as the default namespace", `<stream xmlns="http://etherx.jabber.org/streams">`,
			"<a/>", []string{"<stream:a/>"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, idle := range []bool{false, true} {
				rd := NewReader(strings.NewReader(tc.header+tc.body+"</"+streamName(tc.header)+">"), Limits{})
				if _, err := rd.Header(); err != nil {
					t.Fatal(err)
				}
				for i, want := range tc.want {
					if idle {
						rd.Idle()
						if dropped := rd.dec == nil; dropped != tc.reopens {
							t.Fatalf("tokenizer dropped: %v, want %v", dropped, tc.reopens)
						}
					}
					el, err := rd.Next()
					if err != nil {
						t.Fatalf("element %d: %v", i, err)
					}
					if got := string(el.AppendXML(nil, stanza.NSClient)); got != want {
						t.Errorf("element %d (idle %v): %s, want %s", i, idle, got, want)
					}
				}
				if idle {
					rd.Idle()
				}
				if _, err := rd.Next(); err != io.EOF {
					t.Errorf("idle %v: at the stream's end: %v, want EOF", idle, err)
				}
			}
		})
	}
}

// streamName is the qualified name of a stream header's element.
func streamName(header string) string {
	name, _, _ := strings.Cut(header[1:], " ")
	return name
}

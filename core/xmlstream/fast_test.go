package xmlstream

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	"kontor.im/kontor/core/stanza"
)

// Stream headers of the kinds of stream the reader serves: the default
// namespace of a top-level element without xmlns comes from here.
var fastHeaders = []string{
	header,
	"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' version='1.0'>",
	"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:component:accept' to='c.example.com'>",
	"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
	`<?xml version="1.0" encoding="UTF-8"?><stream:stream to="example.com" xmlns:stream="http://etherx.jabber.org/streams" xmlns="jabber:client" version="1.0" xml:lang="en">`,
}

// Stanzas as clients write them (Conversations, Gajim/nbxmpp, Dino, Monal,
// Smack): the fast path must take each of them.
var clientStanzas = []string{
	// Conversations
	`<message xmlns="jabber:client" to="bob@example.com" type="chat" id="7d6d9f1e-3a8f-4c1b-9c55-2b1f0a6f5e11"><body>Hi Bob! Lunch at 12?</body><request xmlns="urn:xmpp:receipts"/><markable xmlns="urn:xmpp:chat-markers:0"/><origin-id xmlns="urn:xmpp:sid:0" id="7d6d9f1e-3a8f-4c1b-9c55-2b1f0a6f5e11"/><active xmlns="http://jabber.org/protocol/chatstates"/></message>`,
	`<message xmlns="jabber:client" to="bob@example.com" type="chat" id="c1"><encrypted xmlns="eu.siacs.conversations.axolotl"><header sid="1234567"><key rid="7654321" prekey="true">MwohBQ3Xr+Yx/Zk9AAAA==</key><key rid="1111">AAAA</key><iv>y7wGk1bb9dMqD0Xa</iv></header><payload>3N5Cw2sV</payload></encrypted><encryption xmlns="urn:xmpp:eme:0" name="OMEMO" namespace="eu.siacs.conversations.axolotl"/><body>I sent you an OMEMO encrypted message but your client doesn’t seem to support that.</body><store xmlns="urn:xmpp:hints"/></message>`,
	`<message xmlns="jabber:client" to="bob@example.com" id="d1" type="chat"><displayed xmlns="urn:xmpp:chat-markers:0" id="m0"/><store xmlns="urn:xmpp:hints"/></message>`,
	// Gajim (nbxmpp): a space before "/>", a body over several lines
	`<message xmlns="jabber:client" to="bob@example.com" type="chat" id="5c6e"><body>line one
	line two &amp; &lt;three&gt; &quot;quoted&quot; &apos;x&apos; &#128512; &#x263A;</body><origin-id xmlns="urn:xmpp:sid:0" id="5c6e" /><request xmlns="urn:xmpp:receipts" /><active xmlns="http://jabber.org/protocol/chatstates" /></message>`,
	// Dino: single quotes, xmlns last
	`<message type='chat' to='bob@example.com' id='e0a1' xmlns='jabber:client'><body>hey</body><markable xmlns='urn:xmpp:chat-markers:0'/></message>`,
	// Monal: xml:lang
	`<message xmlns='jabber:client' to='bob@example.com' type='chat' id='M1' xml:lang='en'><body>Hello 😀 ü</body><request xmlns='urn:xmpp:receipts'/></message>`,
	// Smack
	"<message xmlns='jabber:client' to='bob@example.com' id='Xy1-23' type='chat'><body>hi</body><thread>t1</thread></message>",
	// no xmlns: the stream's default namespace
	"<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://gajim.org' ver='q07IKJEyjvHSyhy//CH0CxmKi8w='/></presence>",
	"<presence type='unavailable'/>",
	`<iq type="get" id="r1"><query xmlns="jabber:iq:roster" ver=""/></iq>`,
	"<iq type='set' id='mam1'>\n  <query xmlns='urn:xmpp:mam:2' queryid='f27'>\n    <x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field><field var='with'><value>juliet@capulet.lit</value></field></x>\n    <set xmlns='http://jabber.org/protocol/rsm'><max>50</max></set>\n  </query>\n</iq>",
	"<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>",
	"<message to='bob@example.com'><html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'><p>Hi <em>there</em>!</p></body></html></message>",
	// white space inside tags, as encoding/xml allows it
	"<message\n\tto = 'a@b'\ttype=\"chat\" ><body >x</body\n></message >",
	"<presence a='1'b='2'/>",
	"<message><x xmlns=''/></message>",
	"<message xmlns='urn:a' xmlns='urn:b'/>",
	"<message><x a='tab\there' b='new\nline' c='gt>' d='\"' e=\"'\" f='&#xD;'/></message>",
	"<message xml:lang='de' xml:space='preserve'/>",
	"<message><body>]]&gt; ]&gt; ]>x</body></message>",
	" \n\t<presence/>",
	"<a/>",
}

// Input the fast path leaves to the tokenizer (which accepts or rejects
// it).
var fallbackStanzas = []string{
	"<message><x:y xmlns:x='urn:x' x:a='1'/></message>",
	"<message xmlns:x='urn:x'/>",
	"<message><x:y/></message>",
	"<message x:a='1'/>",
	"<message><body><![CDATA[x]]></body></message>",
	"<message><!-- c --></message>",
	"<message><?pi x?></message>",
	"<message><body>a\rb</body></message>",
	"<message a='x\r\ny'/>",
	"<message><body>a]]>b</body></message>",
	"<message><body>&nbsp;</body></message>",
	"<message><body>&#xD800;</body></message>",
	"<message><body>&#0;</body></message>",
	"<message><body>&#X41;</body></message>",
	"<message><body>&#x110000;</body></message>",
	"<message><body>&#000000000065;</body></message>",
	"<message><body>&#;</body></message>",
	"<message><body>\xff</body></message>",
	"<message><body>\uFFFE</body></message>",
	"<message><body>\x01</body></message>",
	"<message><bödy/></message>",
	"<message ä='1'/>",
	"<xmlns/>",
	"<message><xmlns/></message>",
	"<message to='a' to='b'/>",
	"<message xml:lang='a' xml:lang='b'/>",
	"<message xml:xmlns='x'/>",
	"<message><body></message>",
	"<message></messages>",
	"<message a=1/>",
	"<message a/>",
	"<message a='<'/>",
	"<message/ >",
	"<message><body>unterminated",
	"<-a/>",
	"<message xmlns:stream='http://etherx.jabber.org/streams'/>",
	"</stream:stream>",
	"hello<message/>",
}

// readEls reads the header and then every element until an error, with
// the fast paths on or off.
func readEls(r io.Reader, lim Limits, tokenizerOnly bool) ([]*stanza.Element, error) {
	rd := NewReader(r, lim)
	rd.tokenizerOnly = tokenizerOnly
	if _, err := rd.Header(); err != nil {
		return nil, err
	}
	var out []*stanza.Element
	for range 1000 {
		el, err := rd.Next()
		if err != nil {
			return out, err
		}
		out = append(out, el)
	}
	return out, nil
}

// errString describes an error with its stream error condition and text.
func errString(err error) string {
	if se, ok := err.(*stanza.StreamError); ok {
		return fmt.Sprintf("stream error %s: %s", se.Condition, se.Text)
	}
	return fmt.Sprint(err)
}

// sameAsTokenizer fails unless reading stream (split into reads of at
// most chunk bytes) with the fast paths gives the very elements and the
// very error that the tokenizer alone gives.
func sameAsTokenizer(t *testing.T, stream []byte, chunk int, lim Limits) {
	t.Helper()
	sameReads(t, fmt.Sprintf("%q in chunks of %d", stream, chunk), func() io.Reader { return chunkReader{bytes.NewReader(stream), chunk} }, lim)
}

// sameReads is sameAsTokenizer for the input that each call of input
// returns.
func sameReads(t *testing.T, what string, input func() io.Reader, lim Limits) {
	t.Helper()
	fast, ferr := readEls(input(), lim, false)
	slow, serr := readEls(input(), lim, true)
	if errString(ferr) != errString(serr) {
		t.Fatalf("%s: error with the fast path %q, with the tokenizer %q", what, errString(ferr), errString(serr))
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("%s: elements differ:\nfast path %s\ntokenizer %s", what, describe(fast, nil), describe(slow, nil))
	}
}

// takesFast reads the first element after hdr and reports whether the
// fast path took it, checking it against the tokenizer.
func takesFast(t *testing.T, hdr, in string, lim Limits) bool {
	t.Helper()
	stream := []byte(hdr + in + in)
	for _, chunk := range []int{1, 7, 64, 4096} {
		sameAsTokenizer(t, stream, chunk, lim)
	}
	rd := NewReader(strings.NewReader(hdr+in), lim)
	if _, err := rd.Header(); err != nil {
		t.Fatal(err)
	}
	before := rd.skipped
	_, _ = rd.Next()
	return rd.skipped != before
}

func TestFastElement(t *testing.T) {
	for _, hdr := range fastHeaders {
		for _, in := range clientStanzas {
			if !takesFast(t, hdr, in, Limits{}) {
				t.Errorf("fast path not taken for %q", in)
			}
		}
		for _, in := range fallbackStanzas {
			if takesFast(t, hdr, in, Limits{}) {
				t.Errorf("fast path taken for %q", in)
			}
		}
	}
}

// TestFastElementNamespace: an element without xmlns is in the stream's
// default namespace, whatever that is.
func TestFastElementNamespace(t *testing.T) {
	for hdr, want := range map[string]string{
		fastHeaders[0]: stanza.NSClient,
		fastHeaders[1]: "jabber:server",
		fastHeaders[2]: "jabber:component:accept",
		fastHeaders[3]: "",
	} {
		els, err := readEls(strings.NewReader(hdr+"<message><body>x</body></message>"), Limits{}, false)
		if len(els) != 1 || els[0].Name.Space != want || els[0].Nodes[0].Elem.Name.Space != want {
			t.Errorf("%s: %v %v, want namespace %q", hdr, describe(els, nil), err, want)
		}
	}
}

// TestFastElementLimits: at each limit the fast path takes the element;
// one over, it leaves it to the tokenizer, which rejects it.
func TestFastElementLimits(t *testing.T) {
	attrs := func(n int) string {
		var b strings.Builder
		b.WriteString("<message")
		for i := range n {
			fmt.Fprintf(&b, " a%d='x'", i)
		}
		b.WriteString("/>")
		return b.String()
	}
	nsAttrs := func(n int) string { // xmlns counts as an attribute
		return "<message xmlns='jabber:client'" + attrs(n - 1)[len("<message"):]
	}
	nest := func(n int) string {
		return strings.Repeat("<a>", n) + strings.Repeat("</a>", n)
	}
	sized := func(n int) string {
		const open, close = "<message><body>", "</body></message>"
		return open + strings.Repeat("x", n-len(open)-len(close)) + close
	}
	for _, tc := range []struct {
		name    string
		lim     Limits
		at, ovr string
	}{
		{"MaxAttrs", Limits{MaxAttrs: 6}, attrs(6), attrs(7)},
		{"MaxAttrs with xmlns", Limits{MaxAttrs: 6}, nsAttrs(6), nsAttrs(7)},
		{"MaxAttrs on a child", Limits{MaxAttrs: 6}, "<message><x" + attrs(6)[len("<message"):] + "</message>", "<message><x" + attrs(7)[len("<message"):] + "</message>"},
		{"MaxDepth", Limits{MaxDepth: 6}, nest(6), nest(7)},
		{"MaxStanzaBytes", Limits{MaxStanzaBytes: 300}, sized(300), sized(301)},
		{"MaxStanzaBytes after white space", Limits{MaxStanzaBytes: 300}, "   " + sized(300), "   " + sized(301)},
		{"MaxStanzaBytes default", Limits{}, sized(DefaultLimits.MaxStanzaBytes), sized(DefaultLimits.MaxStanzaBytes + 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The default limit is beyond a buffer: the fast path
			// cannot take either element.
			wantFast := len(tc.at) <= bufSize
			if got := takesFast(t, header, tc.at, tc.lim); got != wantFast {
				t.Errorf("at the limit: fast path taken %v, want %v", got, wantFast)
			}
			if takesFast(t, header, tc.ovr, tc.lim) {
				t.Error("over the limit: fast path taken")
			}
			_, err := readEls(strings.NewReader(header+tc.ovr), tc.lim, false)
			if c := condition(err); c != stanza.StreamPolicyViolation {
				t.Errorf("over the limit: %v, want policy-violation", err)
			}
			els, err := readEls(strings.NewReader(header+tc.at), tc.lim, false)
			if len(els) != 1 {
				t.Errorf("at the limit: %d elements, %v", len(els), err)
			}
		})
	}
}

// TestFastElementAfterError: after Next returned an error, the fast path
// does not take what follows (the tokenizer repeats its error).
func TestFastElementAfterError(t *testing.T) {
	for _, tokenizerOnly := range []bool{false, true} {
		rd := NewReader(strings.NewReader(header+"<message a='1' a='2'/><presence/>"), Limits{})
		rd.tokenizerOnly = tokenizerOnly
		if _, err := rd.Header(); err != nil {
			t.Fatal(err)
		}
		_, err1 := rd.Next()
		el, err2 := rd.Next()
		if err1 == nil || el != nil && !tokenizerOnly {
			t.Fatalf("tokenizerOnly %v: %v, then %v %v", tokenizerOnly, err1, el, err2)
		}
	}
}

// cutReader returns reads of the sizes cuts gives in turn (a byte n is a
// read of at most n+1 bytes; 255 one of as much as fits), so that reads
// end at arbitrary points, element and text boundaries included.
type cutReader struct {
	r    io.Reader
	cuts [8]byte
	i    int
}

func (c *cutReader) Read(p []byte) (int, error) {
	n := int(c.cuts[c.i%8]) + 1
	c.i++
	if n <= 255 && len(p) > n {
		p = p[:n]
	}
	return c.r.Read(p)
}

// FuzzReaderFast feeds the same stream through a reader with the fast
// paths and one with the tokenizer alone, after one of several stream
// headers, in reads of arbitrary sizes (cuts, see cutReader): the
// elements (compared field by field) and the final error must be
// identical.
func FuzzReaderFast(f *testing.F) {
	for i, s := range clientStanzas {
		f.Add([]byte(s+clientStanzas[(i+1)%len(clientStanzas)]), uint64(0xffffffffffffffff), uint8(i))
	}
	for i, s := range fallbackStanzas {
		f.Add([]byte("<presence/>"+s+"<r xmlns='urn:xmpp:sm:3'/>"), uint64(i)*0x0d0d0d0d0d0d0d0d, uint8(i))
	}
	f.Add([]byte(strings.Repeat("<a><b/></a> ", 10)+"</stream:stream>"), uint64(0x0b0a090807060504), uint8(0))
	lim := Limits{MaxStanzaBytes: 1024, MaxDepth: 8, MaxAttrs: 8}
	f.Fuzz(func(t *testing.T, data []byte, cuts uint64, hdr uint8) {
		h := fastHeaders[int(hdr)%len(fastHeaders)]
		sameReads(t, fmt.Sprintf("%q after header %d in reads of %x", data, hdr, cuts), func() io.Reader {
			c := &cutReader{r: bytes.NewReader(append([]byte(h), data...))}
			binary.LittleEndian.PutUint64(c.cuts[:], cuts)
			return c
		}, lim)
	})
}

// recordReader returns head in its first read, then rec in every read, as
// a client's stanzas arrive one per TLS record.
type recordReader struct{ head, rec []byte }

func (r *recordReader) Read(p []byte) (int, error) {
	if r.head != nil {
		n := copy(p, r.head)
		r.head = r.head[n:]
		if len(r.head) == 0 {
			r.head = nil
		}
		return n, nil
	}
	return copy(p, r.rec), nil
}

// BenchmarkReaderNext reads a chat message as Conversations sends it,
// one per read, through Reader.Next, with the fast paths and with the
// tokenizer alone.
func BenchmarkReaderNext(b *testing.B) {
	msg := []byte(clientStanzas[0])
	for _, tc := range []struct {
		name          string
		tokenizerOnly bool
	}{{"fast", false}, {"tokenizer", true}} {
		b.Run(tc.name, func(b *testing.B) {
			rd := NewReader(&recordReader{head: []byte(header), rec: msg}, Limits{})
			rd.tokenizerOnly = tc.tokenizerOnly
			if _, err := rd.Header(); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := rd.Next(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestFastElementOwnRead: stanzas that arrive each in a read of its own,
// as over TLS (one record per stanza), take the fast path, also after a
// whitespace keepalive of its own; after Wait (which reads a few bytes
// only) the tokenizer reads the stanza, to the same result.
func TestFastElementOwnRead(t *testing.T) {
	parts := []string{header, clientStanzas[0], clientStanzas[3], " ", clientStanzas[4], "<r xmlns='urn:xmpp:sm:3'/>"}
	rd := NewReader(&chunks{parts: append([]string(nil), parts...)}, Limits{})
	if _, err := rd.Header(); err != nil {
		t.Fatal(err)
	}
	var got []*stanza.Element
	for i := range 4 {
		before := rd.skipped
		el, err := rd.Next()
		if err != nil {
			t.Fatal(err)
		}
		if rd.skipped == before {
			t.Errorf("element %d did not take a fast path", i)
		}
		got = append(got, el)
	}
	want, err := readEls(strings.NewReader(strings.Join(parts, "")), Limits{}, true)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %s\nwant %s (%v)", describe(got, nil), describe(want, nil), err)
	}

	rd = NewReader(&chunks{parts: append([]string(nil), parts...)}, Limits{})
	if _, err := rd.Header(); err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for range 4 {
		rd.Wait()
		el, err := rd.Next()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, el)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after Wait: got %s\nwant %s", describe(got, nil), describe(want, nil))
	}
}

// TestFastElementAfterKeepalives: white space that arrives in reads of
// its own is consumed by the fast path as the tokenizer would consume it,
// budget included: the same elements and errors for elements at and over
// the size limit, which the fast path takes or leaves, after white space
// short and longer than the budget.
func TestFastElementAfterKeepalives(t *testing.T) {
	lim := Limits{MaxStanzaBytes: 300}
	sized := func(open, close string, n int) string {
		return open + strings.Repeat("x", n-len(open)-len(close)) + close
	}
	for _, ws := range []int{1, 100, 4000, 4200, 4390, 4396, 4397, 5000} {
		for _, el := range []string{
			sized("<message><body>", "</body></message>", 300),
			sized("<message><body>", "</body></message>", 301),
			sized("<message><p:x xmlns:p='urn:x'>", "</p:x></message>", 300),
			sized("<message><p:x xmlns:p='urn:x'>", "</p:x></message>", 301),
		} {
			stream := []byte(header + strings.Repeat(" ", ws) + el + "<presence/>")
			for _, chunk := range []int{1000, 4096} {
				sameAsTokenizer(t, stream, chunk, lim)
			}
			// The white space in reads of its own, the element in
			// one more.
			sameReads(t, fmt.Sprintf("%d bytes of white space, then %q", ws, el), func() io.Reader {
				parts := []string{header}
				for n := ws; n > 0; n -= min(n, 1000) {
					parts = append(parts, strings.Repeat(" ", min(n, 1000)))
				}
				return &chunks{parts: append(parts, el, "<presence/>")}
			}, lim)
		}
	}
}

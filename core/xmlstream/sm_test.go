package xmlstream

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"kontor.im/kontor/core/stanza"
)

// smInputs mix stream management nonzas in the forms clients write with
// forms the fast path leaves to the tokenizer, and with stanzas.
var smInputs = []string{
	"<r xmlns='urn:xmpp:sm:3'/>",
	`<r xmlns="urn:xmpp:sm:3"/>`,
	"<a xmlns='urn:xmpp:sm:3' h='0'/>",
	`<a xmlns="urn:xmpp:sm:3" h="4294967295"/>`,
	"<a xmlns='urn:xmpp:sm:3' h=\"12\"/>",
	"<message to='b@example.com' id='m1'><body>hi</body></message><r xmlns='urn:xmpp:sm:3'/>",
	"<r xmlns='urn:xmpp:sm:3'></r>",
	"<r xmlns='urn:xmpp:sm:3' />",
	"<a h='5' xmlns='urn:xmpp:sm:3'/>",
	"<a xmlns='urn:xmpp:sm:3' h='12345678901'/>",
	"<a xmlns='urn:xmpp:sm:3' h=''/>",
	"<a xmlns='urn:xmpp:sm:3' h='1x'/>",
	"<a xmlns='urn:xmpp:sm:3' h='1\"/>",
	"<r xmlns='urn:xmpp:sm:3\"/>",
	"<r xmlns='urn:xmpp:sm:2'/>",
	"<a xmlns='urn:xmpp:sm:3'/>",
	" <r xmlns='urn:xmpp:sm:3'/>",
	"<presence/><r xmlns='urn:xmpp:sm:3'/><a xmlns='urn:xmpp:sm:3' h='7'/>",
}

// describe renders what a reader returned, for comparison.
func describe(els []*stanza.Element, err error) string {
	var b []byte
	for _, el := range els {
		b = el.AppendXML(b, stanza.NSClient)
		b = append(b, '\n')
	}
	return string(b) + "error: " + condition(err)
}

// TestSMNonzaFastPath: the fast path for <r/> and <a h/> returns exactly
// what the tokenizer returns, for the forms it takes and those it leaves,
// whether the input arrives whole (fast path) or a byte at a time (never).
func TestSMNonzaFastPath(t *testing.T) {
	for _, in := range smInputs {
		// Repeated, so that a nonza follows another element in the buffer.
		stream := header + in + in + in
		fast, ferr := readAll(t, strings.NewReader(stream), Limits{})
		slow, serr := readAll(t, iotest.OneByteReader(strings.NewReader(stream)), Limits{})
		if f, s := describe(fast, ferr), describe(slow, serr); f != s {
			t.Errorf("%s:\nwhole input:\n%s\nbyte by byte:\n%s", in, f, s)
		}
	}
}

// TestSMNonzaBudget: nonzas taken by the fast path count for the input
// budget like any other bytes, so a long stream of them does not run into
// the limit meant for one element, and an element after them still gets
// its whole budget and no more.
func TestSMNonzaBudget(t *testing.T) {
	lim := Limits{MaxStanzaBytes: 200}
	var b strings.Builder
	b.WriteString(header)
	for range 20000 { // far beyond MaxStanzaBytes+bufSize in total
		b.WriteString("<message><body>x</body></message><r xmlns='urn:xmpp:sm:3'/><a xmlns='urn:xmpp:sm:3' h='42'/>")
	}
	b.WriteString("</stream:stream>")
	els, err := readAll(t, strings.NewReader(b.String()), lim)
	if !errors.Is(err, io.EOF) || len(els) != 60000 {
		t.Fatalf("read %d elements, then %v; want 60000, then EOF", len(els), err)
	}
	big := header + "<r xmlns='urn:xmpp:sm:3'/><message><body>" + strings.Repeat("x", 300) + "</body></message>"
	_, err = readAll(t, strings.NewReader(big), lim)
	if c := condition(err); c != stanza.StreamPolicyViolation {
		t.Fatalf("an element over the limit after a nonza: %v, want policy-violation", err)
	}
}

// FuzzSMNonza compares the reader on whole input (where the fast path for
// stream management nonzas applies) with the same input a byte at a time
// (where it never does): the elements and the error must be the same.
func FuzzSMNonza(f *testing.F) {
	for _, s := range smInputs {
		f.Add([]byte(s))
	}
	lim := Limits{MaxStanzaBytes: 4096, MaxDepth: 16, MaxAttrs: 16}
	f.Fuzz(func(t *testing.T, data []byte) {
		stream := append([]byte(header), data...)
		fast, ferr := readAll(t, bytes.NewReader(stream), lim)
		slow, serr := readAll(t, iotest.OneByteReader(bytes.NewReader(stream)), lim)
		if fs, ss := describe(fast, ferr), describe(slow, serr); fs != ss {
			t.Fatalf("whole input:\n%s\nbyte by byte:\n%s", fs, ss)
		}
	})
}

// BenchmarkReadAckRequest: reading <r/> and <a h/>, as a client sends
// them after each message and in answer to the server's requests.
func BenchmarkReadAckRequest(b *testing.B) {
	for _, tt := range []struct{ name, el string }{
		{"r", "<r xmlns='urn:xmpp:sm:3'/>"},
		{"a", "<a xmlns='urn:xmpp:sm:3' h='12345'/>"},
	} {
		b.Run(tt.name, func(b *testing.B) {
			const n = 1000
			input := header + strings.Repeat(tt.el, n)
			b.ReportAllocs()
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
		})
	}
}

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

// chunkReader returns at most n bytes per Read, to split the input at
// arbitrary points.
type chunkReader struct {
	r io.Reader
	n int
}

func (c chunkReader) Read(p []byte) (int, error) {
	if len(p) > c.n {
		p = p[:c.n]
	}
	return c.r.Read(p)
}

// FuzzReader feeds arbitrary bytes after a stream header, split at an
// arbitrary chunk size. Whatever the input: no panic, every error is a
// stream error or an end of input, the limits hold, and every element read
// serialises to XML that reads back to the same element.
func FuzzReader(f *testing.F) {
	seeds := []string{
		"<message to='a@b'><body>hi</body></message>",
		"<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>",
		"<presence><show>away</show><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/></presence>",
		"<message><x:y xmlns:x='urn:x' x:a='1'>t&amp;t</x:y></message>",
		"<message xml:lang='de'><body>&#x263A; ü</body></message></stream:stream>",
		"<!DOCTYPE a><message/>",
		"<message><!-- c --></message>",
		" \n <presence/>",
		"<a><b><c><d><e/></d></c></b></a>",
	}
	for _, s := range seeds {
		f.Add([]byte(s), uint8(7))
	}
	lim := Limits{MaxStanzaBytes: 4096, MaxDepth: 16, MaxAttrs: 16}
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		in := io.MultiReader(bytes.NewReader([]byte(header)), bytes.NewReader(data))
		rd := NewReader(chunkReader{in, int(chunk%64) + 1}, lim)
		if _, err := rd.Header(); err != nil {
			t.Fatalf("fixed header failed: %v", err)
		}
		for range 1000 {
			el, err := rd.Next()
			if err != nil {
				var se *stanza.StreamError
				if !errors.As(err, &se) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("unexpected error type %T: %v", err, err)
				}
				return
			}
			if d := depth(el); d > lim.MaxDepth {
				t.Fatalf("element of depth %d passed a limit of %d", d, lim.MaxDepth)
			}
			out := el.AppendXML(nil, stanza.NSClient)
			rd2 := NewReader(iotest.HalfReader(io.MultiReader(bytes.NewReader([]byte(header)), bytes.NewReader(out))), Limits{MaxStanzaBytes: 1 << 20, MaxDepth: 64, MaxAttrs: 64})
			if _, err := rd2.Header(); err != nil {
				t.Fatal(err)
			}
			el2, err := rd2.Next()
			if err != nil {
				t.Fatalf("re-reading our own output %q: %v", out, err)
			}
			if out2 := el2.AppendXML(nil, stanza.NSClient); !bytes.Equal(out, out2) {
				t.Fatalf("round trip changed the element:\n%s\n%s", out, out2)
			}
		}
	})
}

// FuzzReaderWait checks that waiting between elements (Wait, or Release
// and then Next, as a session's reader does) changes nothing: the same
// elements and the same final error as reading straight through, for
// arbitrary input split at an arbitrary chunk size.
func FuzzReaderWait(f *testing.F) {
	seeds := []string{
		"<message to='a@b'><body>hi</body></message> <r xmlns='urn:xmpp:sm:3'/>",
		"<presence/><presence/>\n<iq type='get' id='1'/>",
		"<message><body>" + strings.Repeat("x", 5000) + "</body></message><a/>",
		"<message><body>t</body></message></stream:stream>",
	}
	for _, s := range seeds {
		f.Add([]byte(s), uint8(7), uint8(0xaa))
		f.Add([]byte(s), uint8(3), uint8(0xff)) // Idle before every element
		f.Add([]byte(s), uint8(64), uint8(0xd9))
	}
	lim := Limits{MaxStanzaBytes: 8192, MaxDepth: 16, MaxAttrs: 16}
	read := func(data []byte, chunk int, waits uint8) (out []string, last string) {
		in := io.MultiReader(bytes.NewReader([]byte(header)), bytes.NewReader(data))
		rd := NewReader(chunkReader{in, chunk}, lim)
		if _, err := rd.Header(); err != nil {
			return nil, "header: " + err.Error()
		}
		for i := range 1000 {
			switch w := waits >> (2 * (i % 4)) & 3; {
			case w == 1 && !rd.Buffered():
				rd.Wait()
			case w == 2 && !rd.Buffered():
				rd.Release()
			case w == 3 && !rd.Buffered():
				rd.Idle()
			}
			el, err := rd.Next()
			if err != nil {
				return out, condition(err)
			}
			out = append(out, string(el.AppendXML(nil, stanza.NSClient)))
		}
		return out, ""
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk, waits uint8) {
		n := int(chunk%64) + 1
		want, wantErr := read(data, n, 0)
		got, gotErr := read(data, n, waits)
		if gotErr != wantErr || strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("waiting changed the result:\n%q %s\nwant\n%q %s", got, gotErr, want, wantErr)
		}
	})
}

func depth(e *stanza.Element) int {
	d := 0
	e.Children(func(c *stanza.Element) bool {
		d = max(d, depth(c))
		return true
	})
	return d + 1
}

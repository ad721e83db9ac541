package xmlstream

import (
	"bytes"
	"errors"
	"io"
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

func depth(e *stanza.Element) int {
	d := 0
	e.Children(func(c *stanza.Element) bool {
		d = max(d, depth(c))
		return true
	})
	return d + 1
}

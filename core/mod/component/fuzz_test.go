package component

import (
	"bytes"
	"testing"

	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/xmlstream"
)

// noComponentNS reports whether no element under el is still in the
// component namespace.
func noComponentNS(el *stanza.Element) bool {
	if el.Name.Space == NS {
		return false
	}
	for _, n := range el.Nodes {
		if n.Elem != nil && !noComponentNS(n.Elem) {
			return false
		}
	}
	return true
}

// FuzzHandshake reads what a component sends first (the stream header, the
// handshake, then stanzas) as the server does, for any input: nothing
// panics; a header that passes names a bare domain; a handshake that
// passes is short text; elements after it leave the component namespace
// entirely and serialise to XML the server's own reader takes back.
// Seeds: testdata/fuzz/FuzzHandshake.
func FuzzHandshake(f *testing.F) {
	lim := xmlstream.Limits{MaxStanzaBytes: 4096, MaxDepth: 8}
	f.Fuzz(func(t *testing.T, data []byte) {
		rd := xmlstream.NewReader(bytes.NewReader(data), lim)
		d, err := opening(rd)
		if err != nil {
			return
		}
		if d.Local() != "" || !d.IsBare() || d.String() == "" {
			t.Fatalf("opening gave %q", d)
		}
		digest, err := readHandshake(rd)
		if err != nil {
			return
		}
		if len(digest) > maxDigestText {
			t.Fatalf("digest of %d bytes", len(digest))
		}
		_ = validDigest("id", []byte("secret"), digest)
		for i := 0; i < 4; i++ {
			el, err := rd.Next()
			if err != nil {
				return
			}
			toClient(el)
			if !noComponentNS(el) {
				t.Fatalf("left in the component namespace: %s", el)
			}
			out := el.AppendXML(nil, stanza.NSClient)
			back := xmlstream.NewReader(bytes.NewReader(append(header("c.example", "x"), out...)), xmlstream.Limits{MaxStanzaBytes: 1 << 20})
			if _, err := back.Header(); err != nil {
				t.Fatalf("own header: %v", err)
			}
			if _, err := back.Next(); err != nil {
				t.Fatalf("%s does not read back: %v", out, err)
			}
		}
	})
}

package upload

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"io"
	"strings"
	"testing"

	"kontor.im/kontor/core/seal"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/xmlstream"
)

// FuzzParseRequest feeds slot requests to ParseRequest: it must never
// panic, and what it accepts must be what the limits assume.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`<request xmlns='urn:xmpp:http:upload:0' filename='a.png' size='23456' content-type='image/png'/>`,
		`<request xmlns='urn:xmpp:http:upload:0' filename='ü.txt' size='0'/>`,
		`<request xmlns='urn:xmpp:http:upload:0' filename='../etc/passwd' size='1'/>`,
		`<request xmlns='urn:xmpp:http:upload:0' filename='a' size='-1'/>`,
		`<request xmlns='urn:xmpp:http:upload:0' filename='a' size='99999999999999999999'/>`,
		`<request xmlns='urn:xmpp:http:upload:0' filename='a' size='1' content-type='text/plain; charset=utf-8'/>`,
		`<request xmlns='urn:xmpp:http:upload' filename='a' size='1'/>`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rd := xmlstream.NewReader(strings.NewReader("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"+s), xmlstream.Limits{})
		if _, err := rd.Header(); err != nil {
			return
		}
		el, err := rd.Next()
		if err != nil {
			return
		}
		r, err := ParseRequest(el)
		if err != nil {
			return
		}
		if r.Size < 0 || !validFilename(r.Filename) || !validContentType(r.ContentType) ||
			strings.ContainsAny(r.Filename, "/\\") || r.ContentType != strings.ToLower(r.ContentType) {
			t.Fatalf("accepted %+v from %q", r, s)
		}
	})
}

// FuzzReader seals random content in chunks, then reads it back through
// a sequence of seeks and reads taken from the fuzzer: every read must
// return the plaintext at that position, whatever the order.
func FuzzReader(f *testing.F) {
	f.Add(uint16(0), uint16(1024), []byte{})
	f.Add(uint16(5000), uint16(1024), []byte{0, 10, 200, 1, 255, 3, 4, 4})
	f.Add(uint16(1024), uint16(1024), []byte{4, 0, 0, 255})
	f.Add(uint16(3000), uint16(1500), []byte{9, 9, 9, 9, 1, 2, 3, 4, 5, 6})
	key := make([]byte, seal.KeySize)
	rand.Read(key)
	s, _ := seal.New(key)
	f.Fuzz(func(t *testing.T, size, chunk uint16, ops []byte) {
		cs := int(chunk%4096) + 1
		content := make([]byte, int(size)%20000)
		rand.Read(content)
		fs := &Files{Sealer: s, ChunkSize: cs}
		u := storage.Upload{ID: "0123456789abcdef0123456789abcdef", Owner: "a@example.com", Size: int64(len(content))}
		var buf bytes.Buffer
		if err := fs.seal(&buf, u, bytes.NewReader(content)); err != nil {
			t.Fatal(err)
		}
		sealed := buf.Bytes()
		fi := File{ID: u.ID, Owner: u.Owner, Size: u.Size}
		r, err := readerFor(bytes.NewReader(sealed), nil, int64(len(sealed)), fi, s)
		if err != nil {
			t.Fatal(err)
		}
		for len(ops) >= 4 {
			pos := int64(binary.BigEndian.Uint16(ops)) % (int64(len(content)) + 10)
			n := int(ops[2])*int(ops[3]%64) + 1
			ops = ops[4:]
			if _, err := r.Seek(pos, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, n)
			m, err := io.ReadFull(r, got)
			want := content[min(pos, int64(len(content))):]
			want = want[:min(len(want), n)]
			if m != len(want) || !bytes.Equal(got[:m], want) {
				t.Fatalf("at %d, %d bytes: got %d (%v), want %d", pos, n, m, err, len(want))
			}
		}
		// The sealed file cut short or changed does not open or read.
		if len(sealed) > trailerSize {
			if _, err := readerFor(bytes.NewReader(sealed[1:]), nil, int64(len(sealed)-1), fi, s); err == nil && len(content) > 0 {
				r2, _ := readerFor(bytes.NewReader(sealed[1:]), nil, int64(len(sealed)-1), fi, s)
				if b, err := io.ReadAll(r2); err == nil && bytes.Equal(b, content) {
					t.Fatal("a file cut short read back whole")
				}
			}
		}
	})
}

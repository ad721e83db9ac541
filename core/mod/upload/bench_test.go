package upload

import (
	"bytes"
	"crypto/rand"
	"io"
	"testing"

	"kontor.im/kontor/core/seal"
	"kontor.im/kontor/core/storage"
)

// BenchmarkRead measures the encrypted read path: opening the chunks of a
// 4 MiB file sealed with AES-256-GCM (the core sealer) and copying the
// plaintext out, as a whole and as 64 KiB ranges (a resumed or seeking
// download). MB/s is plaintext served.
func BenchmarkRead(b *testing.B) {
	key := make([]byte, seal.KeySize)
	rand.Read(key)
	s, _ := seal.New(key)
	const size = 4 << 20
	content := make([]byte, size)
	rand.Read(content)
	fs := &Files{Sealer: s}
	u := storage.Upload{ID: "0123456789abcdef0123456789abcdef", Owner: "a@example.com", Size: size}
	var buf bytes.Buffer
	if err := fs.seal(&buf, u, bytes.NewReader(content)); err != nil {
		b.Fatal(err)
	}
	sealed := buf.Bytes()
	fi := File{ID: u.ID, Owner: u.Owner, Size: u.Size}
	open := func(b *testing.B) *Reader {
		r, err := readerFor(bytes.NewReader(sealed), nil, int64(len(sealed)), fi, s)
		if err != nil {
			b.Fatal(err)
		}
		return r
	}
	b.Run("whole", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		dst := make([]byte, 32<<10)
		for b.Loop() {
			r := open(b)
			if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, dst); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("range64k", func(b *testing.B) {
		b.SetBytes(64 << 10)
		b.ReportAllocs()
		r := open(b)
		dst := make([]byte, 64<<10)
		i := int64(0)
		for b.Loop() {
			off := (i * 40961) % (size - 64<<10) // not chunk-aligned: two chunks opened
			i++
			r.Seek(off, io.SeekStart)
			if _, err := io.ReadFull(r, dst); err != nil {
				b.Fatal(err)
			}
		}
	})
}

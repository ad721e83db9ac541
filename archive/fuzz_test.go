package archive

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// FuzzSealerOpen feeds arbitrary bytes to Sealer.Open as stored sealed
// content: it must never panic, and nothing but what Seal produced for
// that owner and id may open.
func FuzzSealerOpen(f *testing.F) {
	b := openBackend(f, "sqlite")
	a := newArchive(f, b.store(), testRing(f), nil)
	s := a.Sealer(nil)
	id := []byte("offline-id")
	sealed, err := s.Seal(alice, id, []byte("<message><body>fuzz</body></message>"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed)
	f.Add(sealed[:sealHeader])
	f.Add(append([]byte{sealVersion}, make([]byte, 40)...))
	f.Add([]byte{1, 2, 3})
	f.Add([]byte{})
	otherKey := bytes.Clone(sealed)
	binary.BigEndian.PutUint64(otherKey[1:], 1<<62)
	f.Add(otherKey)
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := s.Open(alice, id, in)
		if err == nil && !bytes.Equal(in, sealed) {
			t.Fatalf("forged content opened: %q", p)
		}
		if err != nil && p != nil {
			t.Fatal("plaintext returned with an error")
		}
	})
}

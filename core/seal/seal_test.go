package seal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func newSealer(t *testing.T) *Sealer {
	t.Helper()
	key := bytes.Repeat([]byte{7}, KeySize)
	s, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRoundTrip(t *testing.T) {
	s := newSealer(t)
	msg := []byte("<message><body>marker-4711</body></message>")
	sealed, err := s.Seal("alice@example.com", []byte("id1"), msg)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("marker-4711")) {
		t.Fatal("plaintext visible in sealed output")
	}
	got, err := s.Open("alice@example.com", []byte("id1"), sealed)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	again, _ := s.Seal("alice@example.com", []byte("id1"), msg)
	if bytes.Equal(again, sealed) {
		t.Fatal("two seals of the same message are identical: nonce reused")
	}
}

func TestOpenRefuses(t *testing.T) {
	s := newSealer(t)
	sealed, err := s.Seal("alice@example.com", []byte("id1"), []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := New(bytes.Repeat([]byte{8}, KeySize))
	tampered := append([]byte(nil), sealed...)
	tampered[len(tampered)-1] ^= 1
	tests := []struct {
		name   string
		s      *Sealer
		owner  string
		id     string
		sealed []byte
	}{
		{"another owner", s, "bob@example.com", "id1", sealed},
		{"another id", s, "alice@example.com", "id2", sealed},
		{"wrong key", other, "alice@example.com", "id1", sealed},
		{"tampered", s, "alice@example.com", "id1", tampered},
		{"truncated", s, "alice@example.com", "id1", sealed[:10]},
		{"empty", s, "alice@example.com", "id1", nil},
		// The owner/id boundary is length-prefixed: no ambiguity.
		{"shifted boundary", s, "alice@example.comi", "d1", sealed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.s.Open(tt.owner, []byte(tt.id), tt.sealed); !errors.Is(err, ErrOpen) {
				t.Fatalf("Open = %v, want ErrOpen", err)
			}
		})
	}
}

func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "core.key")
	k1, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateKey(path)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("key changed on reload: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, %v", fi.Mode(), err)
	}
	if err := os.WriteFile(path, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(path); err == nil {
		t.Fatal("a short key file was accepted")
	}
	if _, err := New(make([]byte, 16)); err == nil {
		t.Fatal("a 16-byte key was accepted")
	}
}

func BenchmarkSeal(b *testing.B) {
	s, _ := New(bytes.Repeat([]byte{7}, KeySize))
	msg := bytes.Repeat([]byte("x"), 300)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Seal("alice@example.com", []byte("12345678"), msg); err != nil {
			b.Fatal(err)
		}
	}
}

// Package seal encrypts message content that the core stores outside the
// archive (offline messages), so that no message body is at rest in the
// clear: AES-256-GCM with a random 96-bit nonce, and the owner and the
// item's id bound as associated data, so that a sealed row moved to another
// owner or id fails to open.
//
// This is the core's own sealer with one server key. The archive's envelope
// encryption (per-owner data keys wrapped by a key-encryption key from a key
// provider) implements the same module.Sealer interface and replaces it
// when the archive is enabled.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// KeySize is the key length in bytes (AES-256).
const KeySize = 32

const version byte = 1

// ErrOpen is returned when sealed data does not open: wrong key, wrong owner
// or id, or tampered bytes.
var ErrOpen = errors.New("seal: cannot open sealed data")

// Sealer seals with one AES-256-GCM key.
type Sealer struct {
	aead cipher.AEAD
}

// New returns a sealer for a 32-byte key.
func New(key []byte) (*Sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("seal: key must be %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// ad builds the associated data: length-prefixed owner and id.
func ad(owner string, id []byte) []byte {
	b := make([]byte, 0, 8+len(owner)+len(id))
	b = binary.BigEndian.AppendUint32(b, uint32(len(owner)))
	b = append(b, owner...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(id)))
	return append(b, id...)
}

// Seal encrypts plaintext for owner and id. The output is a version byte,
// the nonce, and the ciphertext with its tag.
func (s *Sealer) Seal(owner string, id, plaintext []byte) ([]byte, error) {
	ns := s.aead.NonceSize()
	out := make([]byte, 1+ns, 1+ns+len(plaintext)+s.aead.Overhead())
	out[0] = version
	if _, err := rand.Read(out[1 : 1+ns]); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return s.aead.Seal(out, out[1:1+ns], plaintext, ad(owner, id)), nil
}

// Open decrypts what Seal produced for the same owner and id.
func (s *Sealer) Open(owner string, id, sealed []byte) ([]byte, error) {
	ns := s.aead.NonceSize()
	if len(sealed) < 1+ns+s.aead.Overhead() || sealed[0] != version {
		return nil, ErrOpen
	}
	p, err := s.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], ad(owner, id))
	if err != nil {
		return nil, ErrOpen
	}
	return p, nil
}

// LoadOrCreateKey reads a key file, creating it (mode 0600, in a directory
// of mode 0700) with a random key when it does not exist.
func LoadOrCreateKey(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if err == nil {
		if len(key) != KeySize {
			return nil, fmt.Errorf("seal: key file %s has %d bytes, want %d", path, len(key), KeySize)
		}
		return key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("seal: %w", err)
	}
	key = make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return LoadOrCreateKey(path)
		}
		return nil, fmt.Errorf("seal: %w", err)
	}
	if _, err := f.Write(key); err != nil {
		f.Close()
		return nil, fmt.Errorf("seal: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return key, nil
}

// Package keyring holds the archive's key-encryption keys (KEKs) and wraps
// data keys with them. A KEK never enters the database: it comes from a
// Provider, today a key file or an environment variable, later Vault
// Transit, a cloud KMS or PKCS#11, which wrap and unwrap without handing the
// key out. That is why Provider offers Wrap and Unwrap rather than keys.
//
// # The key ring format
//
// A key ring is text: one key per line (or, in an environment variable, per
// ';'-separated entry), '#' starts a comment. Each key is
//
//	kek-v1 <id> <base64 of 32 random bytes>
//
// The id (letters, digits, '.', '_', '-'; at most 64) is stored beside every
// data key it wraps, so that several KEKs can be in use at once: during a
// rotation the old and the new one must both be available. The last key is
// the primary: new data keys are wrapped with it, and a rotation rewraps
// every data key to it.
//
// Wrapping is AES-256-GCM with a random 96-bit nonce; the associated data
// binds the KEK id and what the caller passes (the data key's owner, month
// and retention class), so a wrapped key cannot be moved to another slot.
//
// Keys are never printed: Ring and Key format as their ids only.
package keyring

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// KeySize is the length of a KEK and of the data keys it wraps (AES-256).
const KeySize = 32

const (
	entryTag   = "kek-v1"
	maxIDLen   = 64
	maxEntries = 1000
	wrapTag    = "kontor kek v1\x00"
)

// Errors, matched with errors.Is.
var (
	// ErrUnknownKEK: a data key is wrapped by a KEK the provider does not
	// have (it was removed too early, or the new one of a rotation is not
	// there yet).
	ErrUnknownKEK = errors.New("keyring: key-encryption key not available")
	// ErrUnwrap: the wrapped key does not open (wrong key, wrong slot,
	// tampered bytes).
	ErrUnwrap = errors.New("keyring: wrapped key does not open")
	// ErrNoKeys: the key ring is empty.
	ErrNoKeys = errors.New("keyring: no key-encryption key")
)

// Provider wraps and unwraps data keys with KEKs it keeps to itself.
type Provider interface {
	// Current returns the id of the KEK that Wrap uses now.
	Current(ctx context.Context) (string, error)
	// Wrap encrypts a data key with the current KEK and returns that KEK's
	// id with the result.
	Wrap(ctx context.Context, key, ad []byte) (kekID string, wrapped []byte, err error)
	// Unwrap decrypts a data key wrapped by the KEK kekID.
	Unwrap(ctx context.Context, kekID string, wrapped, ad []byte) ([]byte, error)
}

// Key is one KEK.
type Key struct {
	ID     string
	secret []byte
	aead   cipher.AEAD
}

func newKey(id string, secret []byte) (Key, error) {
	if !validID(id) {
		return Key{}, fmt.Errorf("keyring: bad key id %q", id)
	}
	if len(secret) != KeySize {
		return Key{}, fmt.Errorf("keyring: key %s has %d bytes, want %d", id, len(secret), KeySize)
	}
	block, err := aes.NewCipher(secret)
	if err != nil {
		return Key{}, fmt.Errorf("keyring: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return Key{}, fmt.Errorf("keyring: %w", err)
	}
	return Key{ID: id, secret: bytes.Clone(secret), aead: aead}, nil
}

// String, GoString and LogValue show the id only.
func (k Key) String() string             { return "kek(" + k.ID + ")" }
func (k Key) GoString() string           { return k.String() }
func (k Key) LogValue() slog.Value       { return slog.StringValue(k.String()) }
func (k Key) Format(f fmt.State, _ rune) { fmt.Fprint(f, k.String()) }

func validID(id string) bool {
	if id == "" || len(id) > maxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// Ring is a set of KEKs, the last one primary. It is a Provider; it is
// immutable once built, so it is safe for concurrent use.
type Ring struct {
	keys []Key
}

var _ Provider = (*Ring)(nil)

// Parse reads a key ring (see the package documentation). It fails on any
// malformed entry, a duplicate id, or an empty ring.
func Parse(text []byte) (*Ring, error) {
	r := &Ring{}
	seen := map[string]bool{}
	var entries [][]byte
	for _, line := range bytes.Split(text, []byte("\n")) {
		if i := bytes.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		entries = append(entries, bytes.Split(line, []byte(";"))...)
	}
	n := 0
	for _, raw := range entries {
		fields := strings.Fields(string(raw))
		if len(fields) == 0 {
			continue
		}
		n++
		line := n
		if len(fields) != 3 || fields[0] != entryTag {
			return nil, fmt.Errorf("keyring: entry %d: want %q, an id and a base64 key", line, entryTag)
		}
		id := fields[1]
		if !validID(id) {
			return nil, fmt.Errorf("keyring: entry %d: bad key id (letters, digits, '.', '_', '-', at most %d)", line, maxIDLen)
		}
		if seen[id] {
			return nil, fmt.Errorf("keyring: entry %d: key id %s appears twice", line, id)
		}
		secret, err := base64.StdEncoding.Strict().DecodeString(fields[2])
		if err != nil || len(secret) != KeySize {
			return nil, fmt.Errorf("keyring: entry %d (%s): the key must be %d bytes in standard base64", line, id, KeySize)
		}
		k, err := newKey(id, secret)
		clear(secret)
		if err != nil {
			return nil, err
		}
		if len(r.keys) == maxEntries {
			return nil, fmt.Errorf("keyring: more than %d keys", maxEntries)
		}
		seen[id] = true
		r.keys = append(r.keys, k)
	}
	if len(r.keys) == 0 {
		return nil, ErrNoKeys
	}
	return r, nil
}

// Marshal writes the ring in the format Parse reads, with a header that
// says what the file is and how to treat it.
func (r *Ring) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString(Header)
	for _, k := range r.keys {
		fmt.Fprintf(&b, "%s %s %s\n", entryTag, k.ID, base64.StdEncoding.EncodeToString(k.secret))
	}
	return b.Bytes()
}

// Header is written at the top of every key file.
const Header = `# Kontor archive key-encryption keys (KEKs).
#
# Without this file the message archive cannot be read: not by you, not by
# anyone. Whoever has it and a copy of the database can read the archive.
# Back it up now, and keep the backup apart from the database backups
# (another system, another person, a safe). Never put it in the database,
# in the data directory, or in the same backup as either.
#
# The last key is the primary: new data keys are wrapped with it. Older keys
# stay until ` + "`kontor keys rotate`" + ` has rewrapped every data key, and as long
# as database backups made before the rotation must stay readable.
`

// IDs returns the key ids in order, the primary last.
func (r *Ring) IDs() []string {
	out := make([]string, len(r.keys))
	for i, k := range r.keys {
		out[i] = k.ID
	}
	return out
}

// Primary returns the id of the primary key.
func (r *Ring) Primary() string { return r.keys[len(r.keys)-1].ID }

// String shows the ids only.
func (r *Ring) String() string { return "keyring" + fmt.Sprint(r.IDs()) }

// LogValue shows the ids only.
func (r *Ring) LogValue() slog.Value { return slog.StringValue(r.String()) }

func (r *Ring) key(id string) (Key, bool) {
	for _, k := range r.keys {
		if k.ID == id {
			return k, true
		}
	}
	return Key{}, false
}

// With returns a ring with k added as the new primary.
func (r *Ring) With(k Key) (*Ring, error) {
	if _, dup := r.key(k.ID); dup {
		return nil, fmt.Errorf("keyring: key id %s exists", k.ID)
	}
	return &Ring{keys: append(append([]Key(nil), r.keys...), k)}, nil
}

// Without returns a ring without the key id; the primary cannot be removed.
func (r *Ring) Without(id string) (*Ring, error) {
	if _, ok := r.key(id); !ok {
		return nil, fmt.Errorf("keyring: %s: %w", id, ErrUnknownKEK)
	}
	if id == r.Primary() {
		return nil, fmt.Errorf("keyring: %s is the primary key and cannot be removed", id)
	}
	out := &Ring{}
	for _, k := range r.keys {
		if k.ID != id {
			out.keys = append(out.keys, k)
		}
	}
	return out, nil
}

// Generate makes a new random key with an id from the date and random
// bits, e.g. "k20250601-9f3a1c".
func Generate(now time.Time) (Key, error) {
	secret := make([]byte, KeySize)
	if _, err := rand.Read(secret); err != nil {
		return Key{}, fmt.Errorf("keyring: %w", err)
	}
	defer clear(secret)
	var suffix [3]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return Key{}, fmt.Errorf("keyring: %w", err)
	}
	return newKey("k"+now.UTC().Format("20060102")+"-"+hex.EncodeToString(suffix[:]), secret)
}

// NewRing returns a ring of the given keys, the last one primary.
func NewRing(keys ...Key) (*Ring, error) {
	if len(keys) == 0 {
		return nil, ErrNoKeys
	}
	r := &Ring{}
	for _, k := range keys {
		var err error
		if r, err = r.With(k); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func wrapAD(kekID string, ad []byte) []byte {
	b := make([]byte, 0, len(wrapTag)+len(kekID)+1+len(ad))
	b = append(b, wrapTag...)
	b = append(b, kekID...)
	b = append(b, 0)
	return append(b, ad...)
}

// Current returns the primary key's id.
func (r *Ring) Current(context.Context) (string, error) { return r.Primary(), nil }

// Wrap encrypts key with the primary KEK: a random nonce, then the
// ciphertext and tag.
func (r *Ring) Wrap(_ context.Context, key, ad []byte) (string, []byte, error) {
	k := r.keys[len(r.keys)-1]
	ns := k.aead.NonceSize()
	out := make([]byte, ns, ns+len(key)+k.aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return "", nil, fmt.Errorf("keyring: %w", err)
	}
	return k.ID, k.aead.Seal(out, out, key, wrapAD(k.ID, ad)), nil
}

// Unwrap decrypts a key wrapped by the KEK kekID.
func (r *Ring) Unwrap(_ context.Context, kekID string, wrapped, ad []byte) ([]byte, error) {
	k, ok := r.key(kekID)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownKEK, kekID)
	}
	ns := k.aead.NonceSize()
	if len(wrapped) < ns+k.aead.Overhead() {
		return nil, ErrUnwrap
	}
	key, err := k.aead.Open(nil, wrapped[:ns], wrapped[ns:], wrapAD(kekID, ad))
	if err != nil {
		return nil, ErrUnwrap
	}
	return key, nil
}

package sasl

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"

	"golang.org/x/text/secure/precis"
)

// Hash names a SCRAM hash function by its IANA "Hash Function Textual
// Names" spelling, as stored with a [Credential].
type Hash string

// The hashes Kontor supports.
const (
	SHA1   Hash = "SHA-1"
	SHA256 Hash = "SHA-256"
)

// Iteration bounds for [NewCredential]. RFC 7677 §4 asks for at least 4096;
// the upper bound stops a configuration typo from making every login cost
// minutes on the client.
const (
	MinIterations = 4096
	MaxIterations = 10_000_000
)

// saltLen is the length of a fresh salt in bytes (128 bits, NIST SP
// 800-132's minimum).
const saltLen = 16

// newFunc returns the hash constructor, or nil for an unknown Hash.
func (h Hash) newFunc() func() hash.Hash {
	switch h {
	case SHA1:
		return sha1.New
	case SHA256:
		return sha256.New
	}
	return nil
}

// size returns the output length of h in bytes, or 0 for an unknown Hash.
func (h Hash) size() int {
	switch h {
	case SHA1:
		return sha1.Size
	case SHA256:
		return sha256.Size
	}
	return 0
}

// Credential is what is stored per account per hash: never the password.
// StoredKey and ServerKey are as defined in RFC 5802 §3.
type Credential struct {
	Hash       Hash
	Salt       []byte
	Iterations int
	StoredKey  []byte
	ServerKey  []byte
}

// valid reports whether c is well-formed for hash h: the shape checks that
// stop a corrupt row from being used as if it were a credential.
func (c Credential) valid(h Hash) bool {
	n := h.size()
	return n > 0 && c.Hash == h && len(c.Salt) > 0 && c.Iterations > 0 &&
		len(c.StoredKey) == n && len(c.ServerKey) == n
}

// NewCredential derives a credential from a password, which it first
// prepares with the PRECIS OpaqueString profile (RFC 8265 §4.2), with a
// fresh random salt and the given iteration count, at least MinIterations
// and at most MaxIterations.
func NewCredential(h Hash, password string, iterations int) (Credential, error) {
	if h.newFunc() == nil {
		return Credential{}, fmt.Errorf("sasl: unsupported hash %q", h)
	}
	if iterations < MinIterations || iterations > MaxIterations {
		return Credential{}, fmt.Errorf("sasl: iteration count %d outside [%d, %d]", iterations, MinIterations, MaxIterations)
	}
	prepared, err := precis.OpaqueString.String(password)
	if err != nil {
		return Credential{}, fmt.Errorf("sasl: password is not a valid OpaqueString: %w", err)
	}
	salt := make([]byte, saltLen)
	rand.Read(salt) // never fails (crypto/rand.Read crashes the program instead)
	return deriveCredential(h, prepared, salt, iterations)
}

// deriveCredential computes StoredKey and ServerKey for an already prepared
// password.
func deriveCredential(h Hash, prepared string, salt []byte, iterations int) (Credential, error) {
	fn := h.newFunc()
	if fn == nil {
		return Credential{}, fmt.Errorf("sasl: unsupported hash %q", h)
	}
	if iterations < 1 {
		return Credential{}, errors.New("sasl: iteration count must be positive")
	}
	salted, err := pbkdf2.Key(fn, prepared, salt, iterations, h.size())
	if err != nil {
		return Credential{}, fmt.Errorf("sasl: deriving salted password: %w", err)
	}
	clientKey := hmacSum(fn, salted, "Client Key")
	storedKey := hashSum(fn, clientKey)
	serverKey := hmacSum(fn, salted, "Server Key")
	return Credential{
		Hash:       h,
		Salt:       append([]byte(nil), salt...),
		Iterations: iterations,
		StoredKey:  storedKey,
		ServerKey:  serverKey,
	}, nil
}

// VerifyPlainWithCredential reports whether password matches c. It is what
// local accounts use to implement [Authenticator.VerifyPlain]: it prepares
// the password with OpaqueString, derives the key with c's salt and
// iteration count and compares StoredKey in constant time. A malformed
// credential never matches.
func VerifyPlainWithCredential(c Credential, password string) bool {
	if !c.valid(c.Hash) {
		return false
	}
	prepared, err := precis.OpaqueString.String(password)
	if err != nil {
		return false
	}
	derived, err := deriveCredential(c.Hash, prepared, c.Salt, c.Iterations)
	if err != nil {
		return false
	}
	return hmac.Equal(derived.StoredKey, c.StoredKey)
}

// hmacSum returns HMAC(key, msg).
func hmacSum(fn func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(fn, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// hashSum returns H(b).
func hashSum(fn func() hash.Hash, b []byte) []byte {
	d := fn()
	d.Write(b)
	return d.Sum(nil)
}

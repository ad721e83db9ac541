package sasl

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// testAuth is an in-memory Authenticator: local accounts with SCRAM
// credentials, directory accounts that only do PLAIN, disabled accounts and
// a switch for backend failures.
type testAuth struct {
	mu        sync.Mutex
	creds     map[string]map[Hash]Credential
	directory map[string]string // username → password; PLAIN only
	disabled  map[string]bool
	err       error // returned by every call when set
	calls     int
}

// testSecret is the server secret the tests pass with WithSecret.
var testSecret = []byte("0123456789abcdef0123456789abcdef")

// credCache keeps PBKDF2 out of every test that needs the same account.
var credCache sync.Map // "hash\x00password" → Credential

// newTestAuth returns an Authenticator knowing "user"/"pencil" with both
// hashes, "dir"/"secret" as a directory account, and "off"/"pencil" as a
// disabled account.
func newTestAuth(tb testing.TB) *testAuth {
	tb.Helper()
	a := &testAuth{
		creds:     map[string]map[Hash]Credential{},
		directory: map[string]string{"dir": "secret"},
		disabled:  map[string]bool{"off": true},
	}
	a.add(tb, "user", "pencil")
	a.add(tb, "off", "pencil")
	return a
}

// add gives username a credential for both hashes.
func (a *testAuth) add(tb testing.TB, username, password string) {
	tb.Helper()
	m := map[Hash]Credential{}
	for _, h := range []Hash{SHA1, SHA256} {
		key := string(h) + "\x00" + password
		if c, ok := credCache.Load(key); ok {
			m[h] = c.(Credential)
			continue
		}
		c, err := NewCredential(h, password, MinIterations)
		if err != nil {
			tb.Fatalf("NewCredential(%s): %v", h, err)
		}
		credCache.Store(key, c)
		m[h] = c
	}
	a.mu.Lock()
	a.creds[username] = m
	a.mu.Unlock()
}

func (a *testAuth) Credential(ctx context.Context, username string, h Hash) (Credential, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	if a.err != nil {
		return Credential{}, a.err
	}
	if _, ok := a.directory[username]; ok {
		return Credential{}, ErrNoSCRAM
	}
	m, ok := a.creds[username]
	if !ok {
		return Credential{}, ErrUnknownUser
	}
	c, ok := m[h]
	if !ok {
		return Credential{}, ErrNoSCRAM
	}
	if a.disabled[username] {
		return c, ErrDisabled
	}
	return c, nil
}

func (a *testAuth) VerifyPlain(ctx context.Context, username, password string) error {
	a.mu.Lock()
	a.calls++
	err := a.err
	dirPass, isDir := a.directory[username]
	m, ok := a.creds[username]
	disabled := a.disabled[username]
	a.mu.Unlock()
	switch {
	case err != nil:
		return err
	case isDir:
		if subtle.ConstantTimeCompare([]byte(dirPass), []byte(password)) != 1 {
			return ErrBadPassword
		}
		return nil
	case !ok:
		return ErrUnknownUser
	case !VerifyPlainWithCredential(m[SHA256], password):
		return ErrBadPassword
	case disabled:
		return ErrDisabled
	}
	return nil
}

// pbkdf2Key is SaltedPassword := Hi(password, salt, i).
func pbkdf2Key(tb testing.TB, h Hash, password string, salt []byte, iter int) []byte {
	tb.Helper()
	k, err := pbkdf2.Key(h.newFunc(), password, salt, iter, h.size())
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// encodeSASLName escapes a username for a SCRAM message.
func encodeSASLName(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}

// testClient is a small independent SCRAM client, enough to produce valid
// messages and then break them on purpose.
type testClient struct {
	hash     Hash
	user     string // unescaped
	password string
	gs2      string // GS2 header as sent in the client-first-message
	cbGS2    string // GS2 header for c=; defaults to gs2
	cbData   []byte // channel binding data appended for c=
	cnonce   string
	firstExt string // appended to client-first-message-bare, e.g. ",x=1"
	finalExt string // appended to client-final-message-without-proof

	bare            string
	serverSignature []byte
}

func (c *testClient) first() []byte {
	if c.gs2 == "" {
		c.gs2 = "n,,"
	}
	if c.cnonce == "" {
		c.cnonce = "fyko+d2lbbFgONRv9qkxdawL"
	}
	c.bare = "n=" + encodeSASLName(c.user) + ",r=" + c.cnonce + c.firstExt
	return []byte(c.gs2 + c.bare)
}

// final computes the client-final-message for a server-first-message.
func (c *testClient) final(tb testing.TB, serverFirst []byte) []byte {
	tb.Helper()
	var nonce, salt64 string
	iter := 0
	for _, f := range strings.Split(string(serverFirst), ",") {
		switch {
		case strings.HasPrefix(f, "r="):
			nonce = f[2:]
		case strings.HasPrefix(f, "s="):
			salt64 = f[2:]
		case strings.HasPrefix(f, "i="):
			iter, _ = strconv.Atoi(f[2:])
		}
	}
	if !strings.HasPrefix(nonce, c.cnonce) || len(nonce) == len(c.cnonce) {
		tb.Fatalf("server nonce %q does not extend client nonce %q", nonce, c.cnonce)
	}
	salt, err := base64.StdEncoding.DecodeString(salt64)
	if err != nil || iter < 1 {
		tb.Fatalf("bad server-first-message %q", serverFirst)
	}
	cbGS2 := c.cbGS2
	if cbGS2 == "" {
		cbGS2 = c.gs2
	}
	cbind := append([]byte(cbGS2), c.cbData...)
	withoutProof := "c=" + base64.StdEncoding.EncodeToString(cbind) + ",r=" + nonce + c.finalExt
	authMessage := c.bare + "," + string(serverFirst) + "," + withoutProof

	fn := c.hash.newFunc()
	cred, err := deriveCredential(c.hash, c.password, salt, iter)
	if err != nil {
		tb.Fatal(err)
	}
	// ClientKey is not in the credential; recompute it from the password.
	salted := pbkdf2Key(tb, c.hash, c.password, salt, iter)
	clientKey := hmacSum(fn, salted, "Client Key")
	clientSignature := hmacSum(fn, cred.StoredKey, authMessage)
	proof := make([]byte, len(clientKey))
	subtle.XORBytes(proof, clientKey, clientSignature)
	c.serverSignature = hmacSum(fn, cred.ServerKey, authMessage)
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof))
}

// verifyServerFinal checks the server signature as a client must.
func (c *testClient) verifyServerFinal(tb testing.TB, serverFinal []byte) {
	tb.Helper()
	want := "v=" + base64.StdEncoding.EncodeToString(c.serverSignature)
	if !hmac.Equal([]byte(want), serverFinal) {
		tb.Fatalf("server-final-message = %q, want %q", serverFinal, want)
	}
}

// wantFailure checks that err is a *Failure with the given condition and
// SCRAM error value, and, if cause is not nil, that it wraps cause.
func wantFailure(tb testing.TB, err error, cond, scramErr string, cause error) *Failure {
	tb.Helper()
	var f *Failure
	if !errors.As(err, &f) {
		tb.Fatalf("error = %v (%T), want *Failure", err, err)
	}
	if f.Condition != cond {
		tb.Errorf("Condition = %q, want %q (%v)", f.Condition, cond, f)
	}
	if scramErr != "-" && f.SCRAMError != scramErr {
		tb.Errorf("SCRAMError = %q, want %q (%v)", f.SCRAMError, scramErr, f)
	}
	if cause != nil && !errors.Is(err, cause) {
		tb.Errorf("error %v does not wrap %v", err, cause)
	}
	return f
}

// newServer is NewServer for tests, with the test secret and a fixed
// server nonce when snonce is not "".
func newServer(tb testing.TB, mech string, auth Authenticator, cb ChannelBinding, offered []string, snonce string) *Server {
	tb.Helper()
	s, err := NewServer(mech, auth, cb, offered, WithSecret(testSecret))
	if err != nil {
		tb.Fatalf("NewServer(%s): %v", mech, err)
	}
	s.serverNonce = snonce
	return s
}

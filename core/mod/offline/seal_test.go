package offline

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/storage"
)

// gcmSealer is a real AES-256-GCM sealer with the owner and id as
// associated data, as the archive's will be, so that the tests can check
// what reaches the store.
type gcmSealer struct {
	aead cipher.AEAD
}

func newGCMSealer(t *testing.T) *gcmSealer {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return &gcmSealer{aead: aead}
}

func (s *gcmSealer) ad(owner string, id []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(owner)))
	b = append(b, owner...)
	return append(b, id...)
}

func (s *gcmSealer) Seal(owner string, id, plaintext []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, plaintext, s.ad(owner, id)), nil
}

func (s *gcmSealer) Open(owner string, id, sealed []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("gcm: too short")
	}
	return s.aead.Open(nil, sealed[:n], sealed[n:], s.ad(owner, id))
}

func TestRealSealer(t *testing.T) {
	sealer := newGCMSealer(t)
	srv, _ := newServer(t, modtest.Options{Sealer: sealer}, nil)
	srv.Account("carol")
	ctx := context.Background()
	const secret = "the-launch-code-is-0000"
	a := srv.Connect("alice@example.com/home")
	a.SendXML(`<message to='bob@example.com' type='chat'><body>` + secret + `</body></message>`)

	msgs := stored(t, srv, bob)
	if len(msgs) != 1 {
		t.Fatalf("%d stored", len(msgs))
	}
	m := msgs[0]
	for _, clear := range []string{secret, "<body>", "jabber:client"} {
		if bytes.Contains(m.Sealed, []byte(clear)) {
			t.Fatalf("%q is readable in the stored bytes", clear)
		}
	}

	// The seal binds the owner and the row's metadata.
	ad := associatedData(m.From, m.Stamp)
	if _, err := sealer.Open(bob, ad, m.Sealed); err != nil {
		t.Fatalf("does not open for its owner: %v", err)
	}
	if _, err := sealer.Open("carol@example.com", ad, m.Sealed); err == nil {
		t.Fatal("opens for another owner")
	}
	if _, err := sealer.Open(bob, associatedData("mallory@example.com/x", m.Stamp), m.Sealed); err == nil {
		t.Fatal("opens with another sender")
	}
	if _, err := sealer.Open(bob, associatedData(m.From, m.Stamp.Add(time.Microsecond)), m.Sealed); err == nil {
		t.Fatal("opens with another stamp")
	}

	// A copy of the row moved to carol is not delivered to her, and stays.
	if _, err := srv.Store.StoreOffline(ctx, storage.OfflineMessage{Owner: "carol@example.com", From: m.From, Stamp: m.Stamp, Sealed: m.Sealed}, 0); err != nil {
		t.Fatal(err)
	}
	c := srv.Connect("carol@example.com/desk")
	available(t, srv, c, 0)
	c.Nothing(50*time.Millisecond, isMessage)
	if n := len(stored(t, srv, "carol@example.com")); n != 1 {
		t.Fatalf("carol has %d, want the row that does not open kept", n)
	}

	// Bob gets his message, intact.
	b := srv.Connect("bob@example.com/balcony")
	available(t, srv, b, 0)
	if got := body(b.Next(isMessage)); got != secret {
		t.Fatalf("delivered %q", got)
	}
	if n := len(stored(t, srv, bob)); n != 0 {
		t.Fatalf("%d left", n)
	}
}

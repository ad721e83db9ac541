package archive

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/storage"
)

// ErrOpen is returned when sealed content does not open: its data key is
// gone, it was sealed for another owner or id, or it was tampered with.
var ErrOpen = errors.New("archive: sealed content does not open")

const (
	nonceSize = 12
	tagSize   = 16

	// sealVersion starts what Sealer.Seal returns; core/seal's format
	// starts with 1, so the two can be told apart.
	sealVersion byte = 2
	sealHeader       = 1 + 8 // version, data key ID

	messageTag = "kontor archive v1\x00"
	sealTag    = "kontor seal v1\x00"
)

// associatedData binds sealed content to what it belongs to: a domain tag
// (archive rows and Sealer blobs cannot stand in for each other), the
// owner, the id and the data key, each length-prefixed.
func associatedData(tag, owner string, id []byte, keyID int64) []byte {
	return appendAssociatedData(make([]byte, 0, len(tag)+4+len(owner)+4+len(id)+8), tag, owner, id, keyID)
}

// appendAssociatedData appends associatedData(tag, owner, id, keyID) to b.
func appendAssociatedData(b []byte, tag, owner string, id []byte, keyID int64) []byte {
	b = append(b, tag...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(owner)))
	b = append(b, owner...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(id)))
	b = append(b, id...)
	return binary.BigEndian.AppendUint64(b, uint64(keyID))
}

// seal appends a random nonce and the ciphertext with its tag to dst.
func (k *dataKey) seal(dst, plaintext, ad []byte) ([]byte, error) {
	n := len(dst)
	dst = append(dst, make([]byte, nonceSize)...)
	if _, err := rand.Read(dst[n:]); err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	return k.aead.Seal(dst, dst[n:n+nonceSize], plaintext, ad), nil
}

func (k *dataKey) open(sealed, ad []byte) ([]byte, error) {
	if len(sealed) < nonceSize+tagSize {
		return nil, ErrOpen
	}
	p, err := k.aead.Open(nil, sealed[:nonceSize], sealed[nonceSize:], ad)
	if err != nil {
		return nil, ErrOpen
	}
	return p, nil
}

// sealTimeout bounds the store lookups of one Seal or Open (the
// module.Sealer interface carries no context).
const sealTimeout = 10 * time.Second

// Sealer is the archive's envelope encryption for the other stores that
// hold message content (offline messages): the data key of the owner, the
// current month and the class "offline", the owner and id bound as
// associated data. Content sealed by the fallback sealer (core/seal's
// single server key, before the archive was enabled) still opens.
type Sealer struct {
	a        *Archive
	fallback module.Sealer
}

var _ module.Sealer = Sealer{}

// Sealer returns the envelope sealer; fallback, if not nil, opens what this
// sealer did not seal.
func (a *Archive) Sealer(fallback module.Sealer) Sealer { return Sealer{a: a, fallback: fallback} }

// Seal encrypts plaintext for owner and id: a version byte, the data key's
// ID, a nonce, the ciphertext and its tag.
func (s Sealer) Seal(owner string, id, plaintext []byte) ([]byte, error) {
	if err := checkJID("owner", owner, false); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), sealTimeout)
	defer cancel()
	slot := storage.ArchiveKeySlot{Owner: owner, Slice: sliceOf(s.a.now()), Class: offlineClass}
	keys, err := s.a.keys.forSlots(ctx, map[storage.ArchiveKeySlot]time.Time{slot: storage.ArchiveForever})
	if err != nil {
		return nil, fmt.Errorf("archive: seal: %w", err)
	}
	k := keys[slot]
	out := make([]byte, sealHeader, sealHeader+nonceSize+len(plaintext)+tagSize)
	out[0] = sealVersion
	binary.BigEndian.PutUint64(out[1:], uint64(k.id))
	return k.seal(out, plaintext, associatedData(sealTag, owner, id, k.id))
}

// Open decrypts what Seal (or the fallback) sealed for owner and id.
func (s Sealer) Open(owner string, id, sealed []byte) ([]byte, error) {
	if len(sealed) == 0 {
		return nil, ErrOpen
	}
	if sealed[0] != sealVersion {
		if s.fallback == nil {
			return nil, ErrOpen
		}
		return s.fallback.Open(owner, id, sealed)
	}
	if len(sealed) < sealHeader+nonceSize+tagSize {
		return nil, ErrOpen
	}
	keyID := int64(binary.BigEndian.Uint64(sealed[1:sealHeader]))
	ctx, cancel := context.WithTimeout(context.Background(), sealTimeout)
	defer cancel()
	keys, err := s.a.keys.forIDs(ctx, []int64{keyID})
	if err != nil {
		return nil, fmt.Errorf("archive: open: %w", err)
	}
	k := keys[keyID]
	if k == nil || k.slot.Owner != owner {
		return nil, ErrOpen
	}
	return k.open(sealed[sealHeader:], associatedData(sealTag, owner, id, keyID))
}

// sliceOf returns the UTC month of t as YYYYMM.
func sliceOf(t time.Time) int {
	t = t.UTC()
	return t.Year()*100 + int(t.Month())
}

// sliceBounds returns the first instant of a slice and of the next one.
func sliceBounds(slice int) (start, end time.Time) {
	start = time.Date(slice/100, time.Month(slice%100), 1, 0, 0, 0, 0, time.UTC)
	return start, start.AddDate(0, 1, 0)
}

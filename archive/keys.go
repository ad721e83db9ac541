package archive

import (
	"container/list"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"kontor.im/kontor/archive/keyring"
	"kontor.im/kontor/core/storage"
)

// dataKey is an unwrapped data key (DEK), ready to seal and open. It never
// formats its key material.
type dataKey struct {
	id        int64
	slot      storage.ArchiveKeySlot
	aead      cipher.AEAD
	keepUntil time.Time // as stored, raised by ingest
	loaded    time.Time
}

func (k *dataKey) String() string {
	return fmt.Sprintf("dek(%d %s %d %s)", k.id, k.slot.Owner, k.slot.Slice, k.slot.Class)
}

// LogValue shows the key's identity only.
func (k *dataKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// keyManager finds, creates and caches data keys. The cache is an LRU of
// at most max keys, each kept at most ttl, so that a key destroyed by
// another node leaves this one's memory too.
//
// Lock order: mu is a leaf; it is never held while calling the store or the
// key provider.
type keyManager struct {
	store storage.ArchiveStore
	kek   keyring.Provider
	now   func() time.Time
	max   int
	ttl   time.Duration

	mu     sync.Mutex
	lru    *list.List // of *dataKey, most recently used first
	byID   map[int64]*list.Element
	bySlot map[storage.ArchiveKeySlot]*list.Element
}

func newKeyManager(store storage.ArchiveStore, kek keyring.Provider, now func() time.Time, max int, ttl time.Duration) *keyManager {
	return &keyManager{store: store, kek: kek, now: now, max: max, ttl: ttl,
		lru: list.New(), byID: map[int64]*list.Element{}, bySlot: map[storage.ArchiveKeySlot]*list.Element{}}
}

// slotAD binds a wrapped key to its slot.
func slotAD(s storage.ArchiveKeySlot) []byte {
	b := make([]byte, 0, 16+len(s.Owner)+len(s.Class))
	b = append(b, "kontor dek v1\x00"...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(s.Owner)))
	b = append(b, s.Owner...)
	b = binary.BigEndian.AppendUint32(b, uint32(s.Slice))
	b = binary.BigEndian.AppendUint32(b, uint32(len(s.Class)))
	return append(b, s.Class...)
}

// cached returns a fresh cache entry, under mu.
func (m *keyManager) cachedLocked(e *list.Element) *dataKey {
	k := e.Value.(*dataKey)
	if m.now().Sub(k.loaded) > m.ttl {
		m.removeLocked(e)
		return nil
	}
	m.lru.MoveToFront(e)
	return k
}

func (m *keyManager) removeLocked(e *list.Element) {
	k := m.lru.Remove(e).(*dataKey)
	delete(m.byID, k.id)
	if m.bySlot[k.slot] == e {
		delete(m.bySlot, k.slot)
	}
}

func (m *keyManager) put(k *dataKey) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.byID[k.id]; ok {
		m.removeLocked(e)
	}
	if e, ok := m.bySlot[k.slot]; ok {
		m.removeLocked(e)
	}
	e := m.lru.PushFront(k)
	m.byID[k.id], m.bySlot[k.slot] = e, e
	for m.lru.Len() > m.max {
		m.removeLocked(m.lru.Back())
	}
}

// evict forgets keys (destroyed, or found missing).
func (m *keyManager) evict(ids ...int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		if e, ok := m.byID[id]; ok {
			m.removeLocked(e)
		}
	}
}

// raised records keep_until values that the store now has.
func (m *keyManager) raised(keep []storage.ArchiveKeepUntil) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keep {
		if e, ok := m.byID[k.KeyID]; ok {
			dk := e.Value.(*dataKey)
			if k.KeepUntil.After(dk.keepUntil) {
				dk.keepUntil = k.KeepUntil
			}
		}
	}
}

// len returns how many keys are cached.
func (m *keyManager) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lru.Len()
}

// unwrap turns a stored key into a usable one.
func (m *keyManager) unwrap(ctx context.Context, k storage.ArchiveKey) (*dataKey, error) {
	raw, err := m.kek.Unwrap(ctx, k.KEKID, k.Wrapped, slotAD(k.ArchiveKeySlot))
	if err != nil {
		return nil, fmt.Errorf("archive: data key %d: %w", k.ID, err)
	}
	defer clear(raw)
	if len(raw) != keyring.KeySize {
		return nil, fmt.Errorf("archive: data key %d has %d bytes", k.ID, len(raw))
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	return &dataKey{id: k.ID, slot: k.ArchiveKeySlot, aead: aead, keepUntil: k.KeepUntil, loaded: m.now()}, nil
}

// forSlots returns the data key of each slot, creating the missing ones
// with the KeepUntil given for their slot.
func (m *keyManager) forSlots(ctx context.Context, need map[storage.ArchiveKeySlot]time.Time) (map[storage.ArchiveKeySlot]*dataKey, error) {
	out := make(map[storage.ArchiveKeySlot]*dataKey, len(need))
	var missing []storage.ArchiveKeySlot
	m.mu.Lock()
	for s := range need {
		if e, ok := m.bySlot[s]; ok {
			if k := m.cachedLocked(e); k != nil {
				out[s] = k
				continue
			}
		}
		missing = append(missing, s)
	}
	m.mu.Unlock()
	if len(missing) == 0 {
		return out, nil
	}
	if err := m.load(ctx, missing, out); err != nil {
		return nil, err
	}
	var create []storage.ArchiveKey
	var still []storage.ArchiveKeySlot
	for _, s := range missing {
		if out[s] != nil {
			continue
		}
		still = append(still, s)
		k, err := m.newWrapped(ctx, s, need[s])
		if err != nil {
			return nil, err
		}
		create = append(create, k)
	}
	if len(create) == 0 {
		return out, nil
	}
	if err := m.store.CreateArchiveKeys(ctx, create); err != nil {
		return nil, err
	}
	// Read them back: another node may have created some first, and its
	// keys are the ones to use.
	if err := m.load(ctx, still, out); err != nil {
		return nil, err
	}
	for _, s := range still {
		if out[s] == nil {
			return nil, fmt.Errorf("archive: data key for %s %d %s vanished after it was created", s.Owner, s.Slice, s.Class)
		}
	}
	return out, nil
}

// load reads the stored keys of slots into out and the cache.
func (m *keyManager) load(ctx context.Context, slots []storage.ArchiveKeySlot, out map[storage.ArchiveKeySlot]*dataKey) error {
	stored, err := m.store.ArchiveKeys(ctx, slots)
	if err != nil {
		return err
	}
	for _, sk := range stored {
		k, err := m.unwrap(ctx, sk)
		if err != nil {
			return err
		}
		m.put(k)
		out[sk.ArchiveKeySlot] = k
	}
	return nil
}

// newWrapped makes a random data key for a slot, wrapped by the current KEK.
func (m *keyManager) newWrapped(ctx context.Context, s storage.ArchiveKeySlot, keepUntil time.Time) (storage.ArchiveKey, error) {
	raw := make([]byte, keyring.KeySize)
	defer clear(raw)
	if _, err := rand.Read(raw); err != nil {
		return storage.ArchiveKey{}, fmt.Errorf("archive: %w", err)
	}
	kekID, wrapped, err := m.kek.Wrap(ctx, raw, slotAD(s))
	if err != nil {
		return storage.ArchiveKey{}, fmt.Errorf("archive: wrap a new data key: %w", err)
	}
	return storage.ArchiveKey{ArchiveKeySlot: s, KEKID: kekID, Wrapped: wrapped, Created: m.now(), KeepUntil: keepUntil}, nil
}

// errKeyGone is a data key that no longer exists: its messages cannot be
// opened (they should have been purged with it).
var errKeyGone = errors.New("archive: data key destroyed")

// forIDs returns the data keys with these IDs; IDs of destroyed keys are
// absent from the result.
func (m *keyManager) forIDs(ctx context.Context, ids []int64) (map[int64]*dataKey, error) {
	out := make(map[int64]*dataKey, len(ids))
	var missing []int64
	m.mu.Lock()
	for _, id := range ids {
		if _, done := out[id]; done {
			continue
		}
		if e, ok := m.byID[id]; ok {
			if k := m.cachedLocked(e); k != nil {
				out[id] = k
				continue
			}
		}
		out[id] = nil
		missing = append(missing, id)
	}
	m.mu.Unlock()
	for _, id := range missing {
		delete(out, id)
	}
	if len(missing) == 0 {
		return out, nil
	}
	stored, err := m.store.ArchiveKeysByID(ctx, missing)
	if err != nil {
		return nil, err
	}
	for _, sk := range stored {
		k, err := m.unwrap(ctx, sk)
		if err != nil {
			return nil, err
		}
		m.put(k)
		out[sk.ID] = k
	}
	return out, nil
}

package storage

import (
	"context"
	"math"
	"time"
)

// ArchiveStore keeps the encrypted message archive: wrapped data keys, sealed
// messages with the clear metadata that queries need, archiving preferences,
// and the progress of key-encryption-key rotations. The archive package
// seals and opens; a store never sees message content or an unwrapped key.
//
// Both backends implement it (*sqlite.Store and *postgres.Store), in tables
// of their own migration track "archive"; it is not part of Store, so a
// caller gets it with a type assertion. Batches come in and rows go out:
// the driver's types never cross this interface.
//
// Message IDs are UUIDs as 16 bytes; the archive's order is the bytewise
// order of the IDs (UUIDv7: time order). Times are stored as UTC unix
// microseconds, like every time Kontor stores.
type ArchiveStore interface {
	// ArchiveKeys returns the keys of these slots that exist, in no
	// particular order.
	ArchiveKeys(ctx context.Context, slots []ArchiveKeySlot) ([]ArchiveKey, error)
	// ArchiveKeysByID returns the keys with these IDs that exist, in no
	// particular order.
	ArchiveKeysByID(ctx context.Context, ids []int64) ([]ArchiveKey, error)
	// CreateArchiveKeys inserts keys, assigning their IDs; a key whose slot
	// already has one is skipped (another process won the race), and the
	// caller reads the slot again.
	CreateArchiveKeys(ctx context.Context, keys []ArchiveKey) error

	// AppendArchive stores messages and raises the KeepUntil of their keys,
	// in one transaction. A message whose (Owner, ID) is already stored is
	// skipped: appending is idempotent, so a batch may be retried after an
	// ambiguous failure.
	AppendArchive(ctx context.Context, rows []ArchiveRow, keep []ArchiveKeepUntil) error
	// QueryArchive returns up to q.Limit messages of q.Owner matching q, in
	// ID order (descending if q.Backward).
	QueryArchive(ctx context.Context, q ArchiveRowQuery) ([]ArchiveRow, error)
	// CountArchive counts the messages matching q (ignoring Limit and
	// Backward), stopping at limit.
	CountArchive(ctx context.Context, q ArchiveRowQuery, limit int) (int, error)
	// QueryArchiveCounted is QueryArchive(page) and CountArchive(count,
	// limit) in one statement (a MAM page and its RSM count in one round
	// trip).
	QueryArchiveCounted(ctx context.Context, page, count ArchiveRowQuery, limit int) ([]ArchiveRow, int, error)

	// ArchivePrefs returns ErrNotFound when the owner never set any.
	ArchivePrefs(ctx context.Context, owner string) (ArchivePrefs, error)
	SetArchivePrefs(ctx context.Context, owner string, p ArchivePrefs) error

	// ExpiredArchive returns up to limit messages with Expires <= now,
	// oldest expiry first, skipping the owners in skip.
	ExpiredArchive(ctx context.Context, now time.Time, skip []string, limit int) ([]ArchiveRef, error)
	// DeleteArchive deletes these messages and returns how many it found.
	DeleteArchive(ctx context.Context, refs []ArchiveRef) (int, error)
	// ExpiredArchiveKeys returns up to limit keys with ID > after and
	// KeepUntil <= now, in ID order: candidates for destruction.
	ExpiredArchiveKeys(ctx context.Context, now time.Time, after int64, limit int) ([]ArchiveKey, error)
	// DestroyArchiveKeys deletes each key that no message in its range
	// still uses (checked in the same transaction) and returns the IDs of
	// those it deleted.
	DestroyArchiveKeys(ctx context.Context, keys []ArchiveKeyRange) ([]int64, error)

	// ArchiveKeysNotUnder returns up to limit keys with ID > after that are
	// not wrapped by the key-encryption key kekID, in ID order.
	ArchiveKeysNotUnder(ctx context.Context, kekID string, after int64, limit int) ([]ArchiveKey, error)
	// RewrapArchiveKeys replaces wrapped keys, each only if it is still
	// wrapped by OldKEKID (a compare-and-swap), adds the number replaced to
	// the running rotation's progress in the same transaction, and returns
	// that number.
	RewrapArchiveKeys(ctx context.Context, rw []ArchiveKeyRewrap) (int, error)
	// ArchiveKeyCounts returns how many keys each key-encryption key wraps.
	ArchiveKeyCounts(ctx context.Context) (map[string]int64, error)
	// StartArchiveRotation records a rotation to target, unless the latest
	// one is unfinished and has the same target, which is returned as is.
	StartArchiveRotation(ctx context.Context, target string, at time.Time) (ArchiveRotation, error)
	// FinishArchiveRotation marks the latest rotation finished.
	FinishArchiveRotation(ctx context.Context, at time.Time) error
	// LatestArchiveRotation returns ErrNotFound if there never was one.
	LatestArchiveRotation(ctx context.Context) (ArchiveRotation, error)
}

// ArchiveForever is the KeepUntil or Expires of what is kept without end.
var ArchiveForever = time.UnixMicro(math.MaxInt64).UTC()

// ArchiveKeySlot names the data key of one owner, month and retention
// class.
type ArchiveKeySlot struct {
	Owner string
	Slice int // the UTC month, as YYYYMM
	Class string
}

// ArchiveKey is a data key, wrapped by a key-encryption key.
type ArchiveKey struct {
	ID int64 // assigned by the store
	ArchiveKeySlot
	KEKID   string
	Wrapped []byte
	Created time.Time
	// KeepUntil is when every message sealed with this key has expired.
	KeepUntil time.Time
	// Retired is set for a key an erasure kept (see
	// GDPRStore.RetireArchiveKeys): it is no slot's key any more.
	Retired bool
}

// ArchiveKeepUntil raises a key's KeepUntil (it is never lowered).
type ArchiveKeepUntil struct {
	KeyID     int64
	KeepUntil time.Time
}

// ArchiveRow is one stored message.
type ArchiveRow struct {
	Owner        string
	ID           [16]byte
	Peer         string // the other party's bare JID
	PeerResource string // its resource, "" when unknown
	Outgoing     bool
	Encrypted    bool // end-to-end encrypted
	Time         time.Time
	Expires      time.Time
	KeyID        int64
	Sealed       []byte
	// Restricted marks a message an erasure had to keep (GDPR Art. 18,
	// see GDPRStore.RestrictArchive): only the DPO's tools read it.
	Restricted bool
}

// ArchiveRowQuery selects messages of one owner.
type ArchiveRowQuery struct {
	Owner string
	// Peer restricts to one bare JID ("" for all); PeerResource, with Peer,
	// to one of its resources.
	Peer, PeerResource string
	// MinID and MaxID bound the IDs, inclusive.
	MinID, MaxID [16]byte
	// Start and End bound Time, inclusive; zero for none.
	Start, End time.Time
	// IDs, when not nil, restricts to these IDs.
	IDs      [][16]byte
	Backward bool
	Limit    int
	// IncludeRestricted also matches the messages an erasure restricted
	// (Art. 18). Without it they match nothing: not the owner's MAM, not a
	// room's, not a new account that was given the erased JID. Only the
	// DPO's tools (export, eDiscovery) set it.
	IncludeRestricted bool
}

// ArchivePrefs are an owner's archiving preferences (XEP-0313 §6).
type ArchivePrefs struct {
	Default string
	Always  []string
	Never   []string
}

// ArchiveRef identifies a stored message.
type ArchiveRef struct {
	Owner string
	ID    [16]byte
	KeyID int64
}

// ArchiveKeyRange is a key and the IDs its owner's messages sealed with it
// can have.
type ArchiveKeyRange struct {
	KeyID        int64
	Owner        string
	MinID, MaxID [16]byte
}

// ArchiveKeyRewrap is a key wrapped anew.
type ArchiveKeyRewrap struct {
	ID       int64
	OldKEKID string
	NewKEKID string
	Wrapped  []byte
}

// ArchiveRotation is the record of a key-encryption-key rotation.
type ArchiveRotation struct {
	Target    string // the KEK every key is being rewrapped to
	Started   time.Time
	Finished  time.Time // zero while it runs (or was interrupted)
	Rewrapped int64
}

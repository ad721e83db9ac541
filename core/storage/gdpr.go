package storage

import (
	"context"
	"time"
)

// LegalHold is one legal hold on a user's or a room's data: while it is
// active (Released is zero), retention purge and erasure keep what it
// covers.
type LegalHold struct {
	ID      int64  // assigned by the store
	Subject string // bare JID of a user or a room
	Case    string // the case reference ("LIT-2026-017")
	Reason  string
	By      string // the operator who placed it
	Created time.Time
	// Released is when it was released; zero while it is active.
	Released   time.Time
	ReleasedBy string
}

// Active reports whether the hold still applies.
func (h LegalHold) Active() bool { return h.Released.IsZero() }

// Restriction marks data that an erasure had to keep (Art. 18 GDPR:
// restriction of processing): it stays stored but is shown to no one but the
// data protection officer, until Until (zero: while Case's hold lasts).
type Restriction struct {
	Subject  string // bare JID whose data it is
	Category string // "archive", "archive:CLASS", ...
	Until    time.Time
	Case     string // the legal hold that keeps it, "" for a retention duty
	Reason   string
	Created  time.Time
}

// ErasureTombstone remembers that a person was erased (Art. 17), so that
// directory sync does not create their account again. It holds keyed
// hashes (HMAC-SHA-256 under a key kept outside the database, see
// archive/gdpr), never the JID or the directory id itself: whoever reads
// the database cannot list who was erased.
type ErasureTombstone struct {
	ID         int64  // assigned by the store
	JIDHash    []byte // of the erased bare JID
	StableHash []byte // of the directory entry's stable id (objectGUID, entryUUID); empty when there was none
	Job        string // the erasure job
	Created    time.Time
	// Reinstated is when a DPO allowed the person's account to be created
	// again; zero while the tombstone applies.
	Reinstated   time.Time
	ReinstatedBy string
}

// Active reports whether the tombstone still stops re-creation.
func (t ErasureTombstone) Active() bool { return t.Reinstated.IsZero() }

// GDPRStore is what the data protection tooling (package archive/gdpr) needs
// beyond the other stores: legal holds, restrictions, the listings an export
// needs, and the deletions an erasure needs that no other store offers.
// Both backends implement it (*sqlite.Store and *postgres.Store), in tables
// of their own migration track "gdpr"; it is not part of Store, so a caller
// gets it with a type assertion.
//
// Every deletion is idempotent: an erasure that stopped half way is
// completed by running it again.
type GDPRStore interface {
	// CreateLegalHold stores an active hold and returns its ID.
	CreateLegalHold(ctx context.Context, h LegalHold) (int64, error)
	// ReleaseLegalHold releases an active hold; ErrNotFound if there is no
	// active hold with that ID.
	ReleaseLegalHold(ctx context.Context, id int64, by string, at time.Time) error
	// LegalHolds lists the holds on subject ("" for every subject), the
	// active ones only unless all, ordered by ID.
	LegalHolds(ctx context.Context, subject string, all bool) ([]LegalHold, error)

	// PutRestriction inserts or replaces the restriction of (Subject,
	// Category).
	PutRestriction(ctx context.Context, r Restriction) error
	// Restrictions lists the restrictions of subject ("" for all), ordered
	// by subject and category.
	Restrictions(ctx context.Context, subject string) ([]Restriction, error)

	// PutErasureTombstone stores t, unless an active tombstone with the
	// same hashes exists (an erasure run again).
	PutErasureTombstone(ctx context.Context, t ErasureTombstone) error
	// ErasureTombstones lists the tombstones, the active ones only unless
	// all, ordered by ID.
	ErasureTombstones(ctx context.Context, all bool) ([]ErasureTombstone, error)
	// ReinstateErasureTombstones marks the active tombstones of jidHash
	// reinstated and returns how many it marked.
	ReinstateErasureTombstones(ctx context.Context, jidHash []byte, by string, at time.Time) (int, error)

	// PrivateXMLKeys lists the keys under which owner has private XML,
	// ordered as bytes.
	PrivateXMLKeys(ctx context.Context, owner string) ([]string, error)
	// RosterReferences returns the owners whose roster has an item for
	// contact, and those with a pending subscription request from it, each
	// ordered as bytes.
	RosterReferences(ctx context.Context, contact string) (items, requests []string, err error)

	// ArchiveKeysOf returns every data key of owner (of every class,
	// offline included, retired ones marked), in ID order.
	ArchiveKeysOf(ctx context.Context, owner string) ([]ArchiveKey, error)
	// RetireArchiveKeys retires owner's live data keys and returns how
	// many: an erasure does so with the keys a legal hold or retention
	// duty keeps. A retired key still opens what it sealed
	// (ArchiveKeysByID), expires as before, and a later erasure of the
	// JID decides on it again (ArchiveKeysOf lists it, marked), but it is
	// no slot's key any more: ArchiveKeys skips it, and CreateArchiveKeys
	// gives the slot a new key. So a new account given the erased
	// person's address never writes under the erased person's key.
	RetireArchiveKeys(ctx context.Context, owner string) (int, error)
	// ShredArchiveKeys deletes owner's data keys with these IDs
	// (crypto-shredding: what they sealed can no longer be opened), making
	// sure the deleted bytes are overwritten where the backend allows it,
	// and returns how many it deleted.
	ShredArchiveKeys(ctx context.Context, owner string, ids []int64) (int, error)
	// DeleteUnkeyedArchive deletes up to limit of owner's archived messages
	// whose data key no longer exists, and returns how many; 0 when none is
	// left.
	DeleteUnkeyedArchive(ctx context.Context, owner string, limit int) (int, error)
	// RestrictArchive marks every archived message of owner as restricted
	// (Art. 18: see ArchiveRowQuery.IncludeRestricted) and returns how
	// many it marked that were not already. An erasure calls it for what
	// a legal hold or a retention duty keeps, so that a new account with
	// the same JID never sees it.
	RestrictArchive(ctx context.Context, owner string) (int, error)
	// DeleteArchivePrefs removes owner's archiving preferences; no error
	// when there are none.
	DeleteArchivePrefs(ctx context.Context, owner string) error
	// LDAPStableIDsOf returns the stable ids of the directory entries
	// linked to the account jid, in every source, ordered as bytes.
	LDAPStableIDsOf(ctx context.Context, jid string) ([]string, error)
	// DeleteLDAPLinksOf removes the directory links of the account jid and
	// the roster items directory sync manages in its roster, in every
	// source, and returns how many links it removed.
	DeleteLDAPLinksOf(ctx context.Context, jid string) (int, error)
	// EraseAccount is DeleteAccount overwriting the deleted bytes where
	// the backend allows it (SQLite: secure_delete); ErrNotFound if there
	// is no such account.
	EraseAccount(ctx context.Context, jid string) error
	// CompactAfterErasure asks the backend to drop what deleted rows leave
	// behind in its files (SQLite: a WAL checkpoint that truncates the WAL;
	// PostgreSQL: VACUUM FULL of the small tables that held erased rows
	// in the clear, VACUUM of the archive's). Best effort: the erased data
	// was sealed, and its keys are gone.
	CompactAfterErasure(ctx context.Context) error
}

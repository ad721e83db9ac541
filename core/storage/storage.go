// Package storage declares what Kontor keeps on disk, one small interface per
// concern (accounts, roster, offline messages, vCards, private XML, last
// activity), and the errors every backend returns.
//
// Two backends implement every interface: core/storage/sqlite (embedded, pure
// Go, the zero-config default) and core/storage/postgres (pgx/v5, what a
// company runs in production). core/storage/storagetest is the conformance
// suite that both must pass; there are no mocks in its place.
//
// Identities are bare JIDs in their canonical string form ("alice@example.com"),
// already validated and normalised by core/jid: the stores compare them as
// bytes and never re-parse them.
//
// Stores also keep the audit trail's entries (AuditStore, core/audit): an
// append-only table the backends refuse to update or delete from.
//
// Message content is never handed to a store in the clear: the offline store
// receives a sealed blob (see Offline) and does not know how to open it.
package storage

import (
	"context"
	"errors"
	"time"
)

// Errors every backend returns, matched with errors.Is.
var (
	ErrNotFound      = errors.New("storage: not found")
	ErrExists        = errors.New("storage: already exists")
	ErrQuotaExceeded = errors.New("storage: quota exceeded")
	// ErrSchemaTooNew means the database was migrated by a newer Kontor; the
	// server refuses to run on it rather than guess.
	ErrSchemaTooNew = errors.New("storage: database schema is newer than this binary")
)

// Store is everything a backend provides.
type Store interface {
	Accounts
	Roster
	Offline
	VCards
	PrivateXML
	LastActivity
	AuditStore
	// Backend names the implementation: "sqlite" or "postgres".
	Backend() string
	// SchemaVersion is the highest migration applied.
	SchemaVersion(ctx context.Context) (int, error)
	Close() error
}

// SCRAMCredential is what SCRAM needs to verify a password without knowing it
// (RFC 5802 §3): never the password, never a reversible form of it.
type SCRAMCredential struct {
	Hash       string // "SHA-1" or "SHA-256" (IANA hash names as used by SCRAM)
	Salt       []byte
	Iterations int
	StoredKey  []byte
	ServerKey  []byte
}

// Account is one local account.
type Account struct {
	JID         string // bare JID, e.g. "alice@example.com"
	Domain      string // the domainpart of JID, for listing per virtual host
	Disabled    bool
	Created     time.Time
	Credentials []SCRAMCredential // one per hash
}

// AccountChangeKind says what happened to an account.
type AccountChangeKind string

const (
	AccountCreated     AccountChangeKind = "created"
	AccountDisabled    AccountChangeKind = "disabled"
	AccountEnabled     AccountChangeKind = "enabled"
	AccountDeleted     AccountChangeKind = "deleted"
	AccountCredentials AccountChangeKind = "credentials"
)

// AccountChange is one entry of the account change log, which lets a running
// server (or every node of a cluster) notice what the CLI did to accounts.
type AccountChange struct {
	Seq  int64 // strictly increasing
	JID  string
	Kind AccountChangeKind
	At   time.Time
}

// Accounts stores local accounts. Every mutation also appends to the change
// log in the same transaction.
type Accounts interface {
	// CreateAccount returns ErrExists if the JID is taken.
	CreateAccount(ctx context.Context, a Account) error
	// Account returns ErrNotFound for an unknown JID.
	Account(ctx context.Context, jid string) (Account, error)
	// SetCredentials replaces all credentials (a password change).
	SetCredentials(ctx context.Context, jid string, creds []SCRAMCredential) error
	// AddCredential adds a credential for a hash the account has none
	// for, and reports whether it did: false (and no error) when the
	// account has one for c.Hash already, e.g. because a password change
	// came first. It is the upgrade of an imported account that has
	// SCRAM-SHA-1 hashes only, at a login that revealed the password
	// (PLAIN); it is no password change: FAST tokens stay and nothing is
	// logged. ErrNotFound for an unknown account.
	AddCredential(ctx context.Context, jid string, c SCRAMCredential) (bool, error)
	SetDisabled(ctx context.Context, jid string, disabled bool) error
	// DeleteAccount removes the account and everything it owns: roster
	// (its own items and pending requests), offline messages, vCard, private
	// XML, last activity. Other users' roster items that point to it stay
	// (as they would for a remote contact).
	DeleteAccount(ctx context.Context, jid string) error
	// ListAccounts lists the accounts of one domain ("" for all), ordered by
	// JID.
	ListAccounts(ctx context.Context, domain string) ([]Account, error)
	// AccountChanges returns up to limit changes with Seq > after, oldest
	// first.
	AccountChanges(ctx context.Context, after int64, limit int) ([]AccountChange, error)
	// LastAccountChange returns the highest Seq (0 when the log is empty), so a
	// starting server can begin watching from now.
	LastAccountChange(ctx context.Context) (int64, error)
	// PruneAccountChanges deletes the changes recorded before before and
	// returns how many. The log names accounts (personal data) and is
	// needed only until every running server has read it; Seq keeps
	// increasing after a prune (it is never reused).
	PruneAccountChanges(ctx context.Context, before time.Time) (int64, error)
}

// Subscription is the subscription part of a roster item's state (RFC 6121
// §2.1.2.5).
type Subscription string

const (
	SubNone Subscription = "none"
	SubTo   Subscription = "to"
	SubFrom Subscription = "from"
	SubBoth Subscription = "both"
)

// RosterItem is one contact in an owner's roster.
type RosterItem struct {
	Contact      string // bare JID
	Name         string
	Subscription Subscription
	// AskOut: the owner sent a subscribe that is not yet answered
	// ("pending out", shown as ask='subscribe').
	AskOut bool
	Groups []string // in the order the client gave them
}

// SubscriptionRequest is an inbound subscription request waiting for the
// owner's answer ("pending in", RFC 6121 §3.1.3). It is kept whether or not
// the contact is in the owner's roster, and resent at every login.
type SubscriptionRequest struct {
	From   string // bare JID of the requester
	Stanza []byte // the presence stanza as received (status text), serialised
	At     time.Time
}

// Roster stores rosters with a per-owner version (XEP-0237): every change to
// an owner's items increments it.
type Roster interface {
	// RosterItems returns all items ordered by contact, and the version.
	RosterItems(ctx context.Context, owner string) ([]RosterItem, int64, error)
	// RosterItem returns ErrNotFound if contact is not in owner's roster.
	RosterItem(ctx context.Context, owner, contact string) (RosterItem, error)
	// PutRosterItem inserts or replaces an item and returns the new version.
	PutRosterItem(ctx context.Context, owner string, item RosterItem) (int64, error)
	// DeleteRosterItem removes an item (ErrNotFound if absent) and returns the
	// new version.
	DeleteRosterItem(ctx context.Context, owner, contact string) (int64, error)
	// RosterVersion is 0 for an owner who never had a roster.
	RosterVersion(ctx context.Context, owner string) (int64, error)

	// PutSubscriptionRequest records (or replaces) a pending inbound request.
	PutSubscriptionRequest(ctx context.Context, owner string, req SubscriptionRequest) error
	// DeleteSubscriptionRequest removes it; no error when absent.
	DeleteSubscriptionRequest(ctx context.Context, owner, from string) error
	// SubscriptionRequests lists pending requests, oldest first.
	SubscriptionRequests(ctx context.Context, owner string) ([]SubscriptionRequest, error)
	// RosterWithRequests is RosterItems and SubscriptionRequests in one
	// statement: what an initial presence needs (the subscribers, the
	// contacts to probe, the requests to resend), in one round trip.
	RosterWithRequests(ctx context.Context, owner string) ([]RosterItem, int64, []SubscriptionRequest, error)
}

// OfflineMessage is a message kept for an owner who was not online
// (XEP-0160). Sealed is the stanza sealed by the caller (see core/seal): the
// store never sees message content in the clear.
type OfflineMessage struct {
	ID     int64 // assigned by the store, increasing per owner
	Owner  string
	From   string
	Stamp  time.Time
	Sealed []byte
}

// Offline stores messages for owners who were not online.
type Offline interface {
	// StoreOffline appends a message, assigning its ID. If the owner already
	// has limit messages (limit > 0), nothing is stored and ErrQuotaExceeded
	// is returned; the check and the insert are atomic.
	StoreOffline(ctx context.Context, msg OfflineMessage, limit int) (int64, error)
	// OfflineMessages returns up to limit of the owner's messages, oldest
	// first (limit <= 0: all).
	OfflineMessages(ctx context.Context, owner string, limit int) ([]OfflineMessage, error)
	// DeleteOffline removes the owner's messages with these IDs; IDs that are
	// not the owner's are ignored.
	DeleteOffline(ctx context.Context, owner string, ids []int64) error
	OfflineCount(ctx context.Context, owner string) (int, error)
}

// VCards stores one vcard-temp (XEP-0054) element per owner, serialised.
type VCards interface {
	// VCard returns ErrNotFound if none was set.
	VCard(ctx context.Context, owner string) ([]byte, error)
	// SetVCard replaces it; nil or empty deletes it.
	SetVCard(ctx context.Context, owner string, vcard []byte) error
}

// PrivateXML stores XEP-0049 private XML: one serialised element per owner and
// namespace ("name space" as "{ns}localname").
type PrivateXML interface {
	// Private returns ErrNotFound if nothing is stored under key.
	Private(ctx context.Context, owner, key string) ([]byte, error)
	// SetPrivate replaces it; nil or empty deletes it.
	SetPrivate(ctx context.Context, owner, key string, xml []byte) error
}

// LastActivity stores when an account last logged out and its last
// unavailable status (XEP-0012). A backend may defer the write briefly
// (PostgreSQL batches them, about a second): LastActivity of the same store
// sees it at once, other processes after the write, and a value for an
// account deleted in the meantime is not written.
type LastActivity interface {
	SetLastActivity(ctx context.Context, owner string, at time.Time, status string) error
	// LastActivity returns ErrNotFound if never recorded.
	LastActivity(ctx context.Context, owner string) (time.Time, string, error)
}

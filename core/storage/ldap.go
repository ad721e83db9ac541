package storage

import (
	"context"
	"time"
)

// LDAPLink ties a directory entry to the account that directory sync
// (ldapsync) created for it. The stable id, not the DN or the username, is
// what links them: a rename or a move in the directory changes DN and
// attributes but never which account the entry is.
type LDAPLink struct {
	// StableID is objectGUID in canonical string form (Active Directory)
	// or entryUUID (OpenLDAP).
	StableID string
	JID      string // bare JID of the account
	DN       string // the entry's DN as last read
	// Attrs are the mapped attributes as the sync last applied them,
	// serialised by ldapsync; the store keeps them as opaque bytes.
	Attrs []byte
	// Disabled says the sync disabled the account, so only the sync
	// enables it again: an account an operator disabled stays disabled.
	Disabled bool
	// GoneSince is when the entry was first found missing from the
	// directory; zero while it is there.
	GoneSince time.Time
	Updated   time.Time // set by the store on every write
}

// LDAPGroup is a directory group as the last sync read it: its direct
// members, as DNs (users and nested groups alike). Nesting is resolved by
// ldapsync, not stored.
type LDAPGroup struct {
	StableID string
	DN       string
	Name     string
	Members  []string // member DNs in the directory's order
	// Attrs are further attributes, serialised by ldapsync (opaque).
	Attrs []byte
}

// LDAPRosterItem is a roster item that directory sync put into an owner's
// roster for shared groups, as the sync last wrote it. Comparing it with the
// roster item now stored tells what the user changed since.
type LDAPRosterItem struct {
	Contact string
	Name    string
	Groups  []string // the shared group names, sorted
}

// LDAPState keeps what directory sync needs between runs: the links from
// stable ids to accounts, the group graph, the roster items it manages,
// high-water marks for incremental sync, and a lease so that only one sync
// runs at a time (across processes and cluster nodes).
//
// Source names one configured directory ("default"); every method is
// scoped to it.
type LDAPState interface {
	// LDAPLinks returns every link of source, ordered by StableID.
	LDAPLinks(ctx context.Context, source string) ([]LDAPLink, error)
	// LDAPLinkByJID returns the link of an account, ErrNotFound if the
	// account is not linked.
	LDAPLinkByJID(ctx context.Context, source, jid string) (LDAPLink, error)
	// PutLDAPLinks inserts or replaces links by StableID, all in one
	// transaction. It returns an error wrapping ErrExists, and writes
	// nothing, if a JID would be linked to two stable ids.
	PutLDAPLinks(ctx context.Context, source string, links []LDAPLink) error
	// DeleteLDAPLink removes a link; no error when absent.
	DeleteLDAPLink(ctx context.Context, source, stableID string) error

	// LDAPGroups returns every group of source, ordered by StableID.
	LDAPGroups(ctx context.Context, source string) ([]LDAPGroup, error)
	// PutLDAPGroups inserts or replaces groups by StableID, in one
	// transaction.
	PutLDAPGroups(ctx context.Context, source string, groups []LDAPGroup) error
	// DeleteLDAPGroup removes a group; no error when absent.
	DeleteLDAPGroup(ctx context.Context, source, stableID string) error

	// LDAPRosterItems returns the items the sync manages in owner's
	// roster, ordered by contact.
	LDAPRosterItems(ctx context.Context, source, owner string) ([]LDAPRosterItem, error)
	// AllLDAPRosterItems returns the managed items of every owner, by
	// owner, each list ordered by contact (a full sync reads them at once).
	AllLDAPRosterItems(ctx context.Context, source string) (map[string][]LDAPRosterItem, error)
	// PutLDAPRosterItems inserts or replaces managed items of owner, in
	// one transaction.
	PutLDAPRosterItems(ctx context.Context, source, owner string, items []LDAPRosterItem) error
	// DeleteLDAPRosterItems removes managed items of owner by contact, in
	// one transaction; contacts without one are ignored.
	DeleteLDAPRosterItems(ctx context.Context, source, owner string, contacts []string) error

	// LDAPMarks returns the named marks of source (high-water marks such
	// as the last uSNChanged or contextCSN, the server they belong to,
	// the time of the last full sync), empty when none are set.
	LDAPMarks(ctx context.Context, source string) (map[string]string, error)
	// SetLDAPMarks sets the given marks in one transaction; an empty value
	// deletes a mark. Marks not named are left alone.
	SetLDAPMarks(ctx context.Context, source string, marks map[string]string) error

	// AcquireLDAPLease takes or renews the lease of source for holder,
	// valid for ttl, and reports whether holder has it now. Another
	// holder's lease is taken over only once it has expired.
	AcquireLDAPLease(ctx context.Context, source, holder string, ttl time.Duration) (bool, error)
	// ReleaseLDAPLease gives the lease up if holder has it.
	ReleaseLDAPLease(ctx context.Context, source, holder string) error
}

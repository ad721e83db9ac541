// Package directory holds the people and groups that directory sync
// (ldapsync) reads from Active Directory or LDAP, in the form the rest of the
// server uses them: the policy engine takes them as data, the roster can
// show groups as shared contact groups. It has no behaviour of its own.
package directory

import (
	"context"
	"time"
)

// Kind is what sort of account a person has; policies decide by it.
type Kind string

const (
	Employee Kind = "employee"
	Guest    Kind = "guest"
	External Kind = "external"
)

// Person is one directory entry mapped to an account.
type Person struct {
	JID string // bare JID of the account
	// StableID survives renames: objectGUID (canonical string form) on
	// Active Directory, entryUUID on OpenLDAP.
	StableID    string
	Username    string
	DisplayName string
	Email       string
	Department  string
	Company     string
	Phone       string
	Kind        Kind
	// Groups are the IDs of every group the person belongs to, nesting
	// resolved (flattened), sorted.
	Groups []string
	// Sponsors are bare JIDs of employees responsible for a guest.
	Sponsors []string
	Disabled bool
}

// Group is one directory group.
type Group struct {
	ID   string // stable id (objectGUID / entryUUID)
	Name string // display name, e.g. "Sales"
	// Members are bare JIDs of every member, nesting resolved.
	Members []string
}

// Snapshot is the whole directory as of one sync.
type Snapshot struct {
	People map[string]Person // by bare JID
	Groups map[string]Group  // by ID
	// Revision changes whenever the content changes (e.g. a hash or the
	// highest USN); consumers use it to invalidate caches.
	Revision string
	At       time.Time
}

// Sink receives a new snapshot after every sync that changed something.
type Sink interface {
	UpdateDirectory(ctx context.Context, s Snapshot) error
}

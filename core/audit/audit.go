// Package audit declares Kontor's audit trail as the rest of the server
// sees it: an append-only, tamper-evident log of every admin and DPO action
// and every policy decision that denies or concerns access to an archive
// (DESIGN.md, "Audit trail"). Each entry carries the SHA-256 hash of the one
// before it, so a changed, removed or reordered entry is detected by
// verifying the chain.
//
// Entries are records, not log lines: they hold who, what, about whom, why
// and under which policy revision, and never message content, passwords or
// keys.
package audit

import (
	"context"
	"time"
)

// Entry is one audit record.
type Entry struct {
	Seq    int64     // assigned by the log, strictly increasing from 1
	At     time.Time // assigned by the log (UTC)
	Actor  string    // who: an operator name, "system", "ldapsync", or a user's bare JID
	Action string    // what, dotted: "policy.deny", "ldap.sync", "gdpr.export", ...
	// Subject is whom or what it concerns: a bare JID, a room, a policy
	// file; "" when nothing in particular.
	Subject string
	Reason  string // why: a case number, a policy reason code, free text
	// PolicyRevision is the hash of the policy in force, when a decision
	// was made by policy.
	PolicyRevision string
	// Details are further facts, as key/value text (counts, durations,
	// decision ids). Never message bodies or secrets.
	Details map[string]string
	// PrevHash and Hash chain the entries: Hash = SHA-256 over PrevHash and
	// the canonical encoding of the fields above.
	PrevHash, Hash []byte
}

// Log is the audit trail's write side, which the policy engine, directory
// sync and GDPR tools use.
type Log interface {
	// Append adds an entry, filling Seq, At, PrevHash and Hash, and returns
	// it. Appends are serialised: the chain never forks, also with several
	// server processes on one PostgreSQL database.
	Append(ctx context.Context, e Entry) (Entry, error)
}

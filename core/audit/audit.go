// Package audit is Kontor's audit trail: an append-only, tamper-evident log
// of every admin and DPO action and every policy decision that denies or
// concerns access to an archive (DESIGN.md, "Audit trail"). The rest of the
// server sees it as a Log; Trail implements it on a storage.AuditStore and
// adds Query, Verify and the saved head.
//
// Entries are records, not log lines: they hold who, what, about whom, why
// and under which policy revision, and never message content, passwords or
// keys.
//
// # The chain
//
// Each entry carries the SHA-256 hash of the one before it:
//
//	Hash = SHA-256(PrevHash || canonical encoding of Seq, At, Actor, Action,
//	                           Subject, Reason, PolicyRevision, Details)
//
// with 32 zero bytes as the first entry's PrevHash. The canonical encoding
// (AppendCanonical) is versioned, fixed-width for numbers and length-prefixed
// for text, with Details sorted by key, so no two entries encode alike. At is
// part of it as UTC unix microseconds. Seq, At and the hashes are assigned
// under the store's append lock (storage.AuditStore.AppendAudit), which
// serialises appends across goroutines, Trails and processes (SQLite's write
// lock; a PostgreSQL advisory lock), so the chain never forks; the tables
// also refuse a second entry after the same one (prev_hash is UNIQUE).
//
// Append refuses (ErrInvalidEntry) an entry without an actor, an action that
// is not dotted lowercase words ("policy.deny"), text that is not UTF-8 or
// holds a NUL byte (PostgreSQL cannot store it), a field over MaxFieldBytes
// or more than MaxDetails details.
//
// # Verification, and what it can and cannot tell
//
// Verify walks the trail from the first entry in batches (memory does not
// grow with the trail) and reports the first problem precisely, as a
// *Problem: an entry whose content no longer matches its hash (Changed),
// entries missing from the middle, with or without the later ones
// renumbered (Removed), intact entries at the wrong position (Reordered),
// and rows that cannot be decoded (Unreadable). Entries inserted in the
// middle break the chain the same way.
//
// The hash is not keyed: whoever can write the database can also recompute
// every hash after the entry they change, remove the newest entries, or
// append entries of their own, and the chain alone stays consistent. A saved
// head (an "anchor": a sequence number and hash kept outside the database)
// closes part of that gap. Given one, Verify also reports a trail that ends
// before it (Truncated) and one whose entry at its position is another
// (Replaced), which is what rewriting any entry up to the saved head
// produces. Kontor keeps one in a file beside its key files
// (DATA_DIR/keys/audit.head, see WithAnchor and SaveAnchor), updated at most
// every few seconds after appends and on shutdown, and only ever forward
// over entries it has verified; an operator can also record the head that
// `kontor audit verify` prints somewhere else and check against it later.
//
// Still not detected: changes to entries newer than the saved head made by
// someone who recomputes their hashes, and entries appended after it by
// someone other than Kontor; removal of the newest entries when no saved
// head is given (the head file was deleted too, or not consulted); and
// anything done by someone who can rewrite both the database and every copy
// of the saved head. Keeping a copy of the head off the machine, or signing
// heads, is what narrows this further.
//
// # Storage
//
// Details are stored as a JSON object (keys sorted), the rest as columns;
// the tables carry indexes for the queries by actor, subject, action prefix
// and time, each paged by sequence number (Query). The head file is written
// atomically (rename) under flock(2) from golang.org/x/sys/unix, which the
// module already uses, so the server and `kontor` commands on one machine
// never move it backwards.
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

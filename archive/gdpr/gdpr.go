// Package gdpr is the data protection officer's tooling over Kontor's
// stores and encrypted archive: legal holds, erasure (GDPR Art. 17) with
// restriction (Art. 18) of what must be kept, the export of a person's data
// (Art. 15 and 20), the import of XEP-0227 exports (Kontor's own,
// ejabberd's, Prosody's), and the eDiscovery export of several people's
// archives as RFC 5322 messages.
//
// The package decides nothing about who may do this: cmd/kontor asks the
// access policy first, and hands the package the operator's grant as the
// Actor and the case of each audit entry the package writes.
//
// # Legal holds
//
// A hold names a user or a room and a case. While it is active, retention
// purge skips the held owner (Holds implements archive.HoldChecker) and an
// erasure keeps the archive (restricted, see below). Holds are never
// deleted: releasing one records who released it and when.
//
// # Erasure
//
// Erase first destroys the person's archive data keys (crypto-shredding:
// what they sealed, in backups too, can no longer be opened), then deletes
// the rows: archive messages, archiving preferences, the account with its
// roster, offline messages, vCard, private XML, last activity, PEP nodes
// and items and blocklist, the person's items in other users' rosters and
// their pending subscription requests, and the directory link. What a legal
// hold or a retention duty keeps stays stored but restricted (Art. 18): a
// Restriction row says what, why and until when, and only the DPO sees it
// (`kontor gdpr restrictions`). The kept archive rows are marked restricted
// (GDPRStore.RestrictArchive) as soon as the shredded ones are deleted:
// from then on no ordinary query matches them (not MAM, not a new account
// given the same JID); only eDiscovery and an export with
// IncludeRestricted read them (archive.Archive.WalkRestricted). Data keys of classes named in DutyClasses
// that have not yet expired are such duties (for example business letters,
// kept six years under HGB § 257); the default class is not.
//
// Every step is idempotent, and the erasure is recorded in the erasure log
// (see ErasureLog) before the first deletion: an erasure that stops half
// way (a crash, a lost database connection) is completed by running it
// again, and `kontor gdpr erase --resume` completes every unfinished one.
// The result is a Certificate, written to the audit trail: per category,
// deleted (with a count), restricted until a date, or held by a case;
// never the erased data.
//
// # The erasure log
//
// The erasure log is a file of JSON lines kept beside the key-encryption
// key, outside the data directory, so that restoring an old backup of the
// database cannot bring an erased person back unnoticed: Missing compares
// the log with a restored database's audit trail, and Replay erases again
// everyone whose latest erasure the trail lacks (`kontor restore` does at
// its end, `kontor serve` at every start; see replay.go). `kontor gdpr
// erase --resume --replay` erases again everyone the log names. Each line
// is one object:
//
//	{"v":1,"event":"started","job":"e-…","subject":"alice@example.com","at":"2026-…Z","by":"dpo"}
//	{"v":1,"event":"completed","job":"e-…","subject":"alice@example.com","at":"2026-…Z","audit_seq":42}
//
// Lines are only appended (O_APPEND, fsync after each), never rewritten.
//
// # Erasure tombstones
//
// So that directory sync does not bring an erased person back, an erasure
// leaves keyed hashes of the JID and the directory ids (see Tombstones and
// tombstone.go); `kontor gdpr reinstate` lifts them.
//
// # Export
//
// See Export and the README for the layout of the zip file and the JSON
// schema (SchemaVersion).
package gdpr

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"kontor.im/kontor/archive"
	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/storage"
)

// Store is what the tooling reads and deletes: the core stores, the
// archive's tables and the GDPR tables (both backends implement all).
type Store interface {
	storage.Store
	storage.ArchiveStore
	storage.GDPRStore
	storage.PEPStore
	storage.Blocklist
}

// AsStore returns st as a Store, or an error naming what it lacks.
func AsStore(st storage.Store) (Store, error) {
	s, ok := st.(Store)
	if !ok {
		return nil, fmt.Errorf("gdpr: the %s store lacks the archive, PEP, blocklist or gdpr tables", st.Backend())
	}
	return s, nil
}

// Auditor writes one audit entry; the caller fills in Actor.
type Auditor func(ctx context.Context, e audit.Entry) error

// Tool is the data protection tooling over one store.
type Tool struct {
	Store Store
	// Archive opens the sealed archive and offline messages; nil when the
	// archive is off (then only what is stored in the clear is exported,
	// and erasure still shreds the keys).
	Archive *archive.Archive
	// OpenOffline opens a stored offline message (core/mod/offline's
	// OpenStored with the archive's sealer); nil: offline messages are
	// exported as metadata only.
	OpenOffline func(storage.OfflineMessage) ([]byte, error)
	// Seal stores an imported offline message, sealed as the offline
	// module seals it (cmd/kontor wires core/mod/offline in); nil: an
	// import refuses offline messages.
	Seal func(ctx context.Context, owner, from string, stamp time.Time, stanza []byte) error
	// ImportDomains are the domains an import may create accounts in
	// (this server's); empty: any.
	ImportDomains []string
	// Trail reads the audit entries about a person for the export.
	Trail *audit.Trail
	// Audit writes the tool's own entries.
	Audit Auditor
	// Retention explains which retention rules apply to a person.
	Retention RetentionExplainer
	// DutyClasses are the retention classes that carry a legal duty to
	// keep: an erasure restricts their unexpired messages instead of
	// deleting them.
	DutyClasses []string
	// Info is what the export's information sheet says about the
	// controller.
	Info Info
	// ErasureLog is the path of the erasure log ("" keeps none: tests
	// only).
	ErasureLog string
	// TombstoneKey is the key of the erasure tombstones that stop
	// directory sync from recreating an erased person (see Tombstones).
	// When it is nil, TombstoneKeyFile is read (an erasure creates it);
	// with neither, an erasure writes no tombstone (tests only).
	TombstoneKey     []byte
	TombstoneKeyFile string
	// Uploads are the person's uploaded files (XEP-0363), kept outside the
	// stores this package knows; nil when the upload module is off.
	// Erasure deletes them (they are sealed with the person's archive keys,
	// so shredding those already made them unreadable); a legal hold keeps
	// them. The export lists and includes them through UploadsSection.
	Uploads Uploads
	// UploadsSection adds the person's uploaded files to every export
	// (nil: none).
	UploadsSection Section
	// Progress receives progress lines (nil: none).
	Progress io.Writer
	Logger   *slog.Logger
	Now      func() time.Time
}

func (t *Tool) now() time.Time {
	if t.Now != nil {
		return t.Now().UTC()
	}
	return time.Now().UTC()
}

func (t *Tool) progress(format string, args ...any) {
	if t.Progress != nil {
		fmt.Fprintf(t.Progress, format+"\n", args...)
	}
}

// Grant is how the operator was allowed to act: it goes into every audit
// entry the tool writes.
type Grant struct {
	Operator   string
	CaseNumber string
	Purpose    string
	Request    string // the approved dual-control request, "" when none
	DecisionID string
	// DSR is the data subject request this action answers (recorded with
	// `kontor gdpr request add`), "" when none: the DPO's request report
	// matches them.
	DSR string
}

// Details adds the grant (case, purpose, request, decision) to d.
func (g Grant) Details(d map[string]string) map[string]string {
	if d == nil {
		d = map[string]string{}
	}
	set := func(k, v string) {
		if v != "" {
			d[k] = v
		}
	}
	set("case", g.CaseNumber)
	set("purpose", g.Purpose)
	set("request", g.Request)
	set("dsr", g.DSR)
	set("decision_id", g.DecisionID)
	return d
}

func (t *Tool) audit(ctx context.Context, g Grant, action, subject, reason string, details map[string]string) error {
	if t.Audit == nil {
		return fmt.Errorf("gdpr: no audit trail configured")
	}
	return t.Audit(ctx, audit.Entry{Actor: g.Operator, Action: action, Subject: subject, Reason: reason, Details: g.Details(details)})
}

// RetentionRule is one retention rule that applies to a person's messages,
// as the policy decided it for a representative message.
type RetentionRule struct {
	Situation  string    `json:"situation"` // which messages: "chat with a colleague", ...
	Archive    bool      `json:"archive"`
	Class      string    `json:"class"`
	Period     string    `json:"period"`
	Until      time.Time `json:"until,omitzero"`
	Reason     string    `json:"reason"`
	DecisionID string    `json:"decision_id"`
	Revision   string    `json:"policy_revision"`
}

// RetentionExplainer asks the retention policy what it decides for a
// person's typical messages (cmd/kontor wires the policy engine in).
type RetentionExplainer interface {
	ExplainRetention(ctx context.Context, owner string) ([]RetentionRule, error)
}

// Uploads is what erasure needs of the uploaded files: cmd/kontor adapts
// core/mod/upload's Files to it.
type Uploads interface {
	// CountOwner returns how many files owner has.
	CountOwner(ctx context.Context, owner string) (int, error)
	// DeleteOwner deletes every file of owner and returns how many.
	DeleteOwner(ctx context.Context, owner string) (int, error)
}

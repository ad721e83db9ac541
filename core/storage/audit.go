package storage

import (
	"context"
	"fmt"
	"time"
)

// AuditRecord is one stored entry of the audit trail (see core/audit, which
// owns the meaning of the fields and computes the hashes; a store only keeps
// them). Times are UTC, at microsecond precision.
type AuditRecord struct {
	Seq            int64
	At             time.Time
	Actor          string
	Action         string
	Subject        string
	Reason         string
	PolicyRevision string
	Details        map[string]string // nil when there are none
	PrevHash       []byte            // 32 bytes
	Hash           []byte            // 32 bytes
}

// AuditHead is the newest entry of the trail as an appender needs it: its
// sequence number, time and hash. The zero AuditHead (Seq 0, Hash nil) is
// an empty trail.
type AuditHead struct {
	Seq  int64
	At   time.Time
	Hash []byte
}

// AuditQuery selects audit records. Every condition that is set must hold.
// Records come back oldest first (ascending Seq).
type AuditQuery struct {
	Actor   string // exact match; "" for any
	Subject string // exact match; "" for any
	// Action matches the action itself and every action below it in the
	// dotted hierarchy: "policy" matches "policy", "policy.deny" and
	// "policy.reload.failed", not "policyx". "" for any.
	Action string
	Since  time.Time // At >= Since; zero for no bound
	Until  time.Time // At < Until; zero for no bound
	After  int64     // Seq > After; 0 for no bound
	Before int64     // Seq < Before; 0 for no bound
	// Newest selects the newest Limit matches instead of the oldest; they
	// are still returned oldest first.
	Newest bool
	// Limit is the most records returned: 1 to MaxAuditLimit.
	Limit int
}

// MaxAuditLimit bounds one AuditRecords call, so that no caller loads the
// whole trail into memory: walk it with After.
const MaxAuditLimit = 10000

// AuditStore keeps the audit trail: an append-only table whose rows are
// never updated or deleted by Kontor (both backends also refuse it with
// triggers, which stop mistakes, not someone with the database owner's
// rights: core/audit's hash chain is what detects that).
type AuditStore interface {
	// AppendAudit appends one record. Under a lock that serialises appends
	// across every connection and process using the database, it reads the
	// current head, calls seal with it and inserts the record seal returns,
	// which must have Seq = head.Seq+1 and PrevHash = the head's hash (32
	// zero bytes for the first). seal runs inside the transaction: it must
	// be quick and have no side effects; an error from it is returned
	// unchanged (wrapped) and nothing is written. Because the lock is held
	// from reading the head to committing, the chain never forks.
	AppendAudit(ctx context.Context, seal func(head AuditHead) (AuditRecord, error)) (AuditRecord, error)
	// AuditHead returns the newest record's head; the zero AuditHead when
	// the trail is empty.
	AuditHead(ctx context.Context) (AuditHead, error)
	// AuditRecords returns the records q selects, oldest first. A record
	// that cannot be decoded any more (its row was changed outside Kontor)
	// makes it fail with an *AuditCorruptError naming that record.
	AuditRecords(ctx context.Context, q AuditQuery) ([]AuditRecord, error)
	// AuditSuccessor returns the record whose PrevHash is prevHash, wherever
	// it is stored; ErrNotFound if there is none. The verifier uses it to
	// tell a moved entry from a removed one.
	AuditSuccessor(ctx context.Context, prevHash []byte) (AuditRecord, error)
}

// AuditCorruptError reports an audit record whose row cannot be decoded any
// more, such as details that are no longer a JSON object of strings.
type AuditCorruptError struct {
	Seq int64
	Err error
}

func (e *AuditCorruptError) Error() string {
	return fmt.Sprintf("storage: audit entry %d cannot be read: %v", e.Seq, e.Err)
}

func (e *AuditCorruptError) Unwrap() error { return e.Err }

// CheckAuditQuery returns an error for a query no backend should run.
func CheckAuditQuery(q AuditQuery) error {
	switch {
	case q.Limit < 1 || q.Limit > MaxAuditLimit:
		return fmt.Errorf("storage: audit query: limit %d is not between 1 and %d", q.Limit, MaxAuditLimit)
	case q.After < 0 || q.Before < 0:
		return fmt.Errorf("storage: audit query: negative sequence bound")
	}
	return nil
}

package storage

import (
	"context"
	"time"
)

// ReportStore answers the aggregate questions of the DPO reports (package
// reports) with SQL over the clear metadata: it never reads message content
// and never writes. Both backends implement it (*sqlite.Store and
// *postgres.Store); like ArchiveStore it is not part of Store, so a caller
// gets it with a type assertion.
type ReportStore interface {
	// ArchiveSliceStats returns, for every retention class and month
	// (the data key's slice) that holds archived messages, how many
	// messages and sealed bytes it holds, its oldest message's time, and
	// how many of its messages had expired at now (Expires <= now, that
	// is past due for purge). Ordered by class, then slice.
	ArchiveSliceStats(ctx context.Context, now time.Time) ([]ArchiveSliceStat, error)
	// AuditCounts counts the audit records whose action is action or
	// below it in the dotted hierarchy (as AuditQuery.Action) with
	// since <= At < until (zero: no bound), grouped by action, actor,
	// reason and the detail named detail ("" for none; "" in Detail when
	// a record lacks it). Ordered by action, actor, reason, detail.
	AuditCounts(ctx context.Context, action, detail string, since, until time.Time) ([]AuditCount, error)
}

// ArchiveSliceStat is what one retention class holds for one month.
type ArchiveSliceStat struct {
	Class    string
	Slice    int // the UTC month, as YYYYMM
	Messages int64
	Bytes    int64 // sealed (ciphertext) bytes
	Oldest   time.Time
	PastDue  int64 // messages with Expires <= now
}

// AuditCount is the number of audit records of one group.
type AuditCount struct {
	Action, Actor, Reason, Detail string
	Count                         int64
	First, Last                   time.Time
}

package storage

import (
	"context"
	"errors"
	"time"
)

// ErrUsed: an access request was already used (or refused) and cannot run
// another action.
var ErrUsed = errors.New("storage: already used")

// Operator is a person who administers Kontor: an admin, the data protection
// officer, an auditor, a member of the works council, the legal department.
// Operators are not XMPP accounts; they act through the CLI and the admin
// API, and the audit trail names them.
type Operator struct {
	// ID is the operator's name ("erika"): what --operator takes and what
	// the audit trail shows.
	ID          string
	DisplayName string
	// Roles are what the access policy sees ("admin", "dpo", "auditor",
	// "works_council", "legal"), in the order given.
	Roles []string
	// TokenHash is the SHA-256 of the operator's secret token (which is
	// random and shown once, so a fast hash suffices); nil: no token, the
	// operator cannot authenticate.
	TokenHash []byte
	Disabled  bool
	Created   time.Time
}

// AccessRequest is an action that the access policy allows only with the
// consent of further operators (dual control). The requester runs the
// command again with the request's id once it is approved; a request runs
// one action once.
type AccessRequest struct {
	ID         string // random, assigned by the caller
	Action     string
	Subject    string
	CaseNumber string
	Purpose    string
	Requester  string // operator ID
	Created    time.Time
	Expires    time.Time
	// Used is when the action ran under this request (zero: not yet).
	Used time.Time
	// Votes are the approvals and refusals, oldest first.
	Votes []RequestVote
}

// RequestVote is one operator's answer to a request.
type RequestVote struct {
	By      string
	Roles   []string // the operator's roles when they answered
	Approve bool     // false: denied
	Comment string
	At      time.Time
}

// Operators stores operators and their access requests (the "operators"
// migration track). Operator IDs compare as bytes.
type Operators interface {
	// CreateOperator returns ErrExists if the ID is taken.
	CreateOperator(ctx context.Context, o Operator) error
	// CreateFirstOperator creates o only while no operator exists (the
	// bootstrap), atomically: of concurrent calls on an empty store exactly
	// one succeeds, the others get ErrExists.
	CreateFirstOperator(ctx context.Context, o Operator) error
	// Operator returns ErrNotFound for an unknown ID.
	Operator(ctx context.Context, id string) (Operator, error)
	// OperatorByTokenHash finds the operator whose token hashes to hash;
	// ErrNotFound when none does.
	OperatorByTokenHash(ctx context.Context, hash []byte) (Operator, error)
	// ListOperators lists every operator ordered by ID.
	ListOperators(ctx context.Context) ([]Operator, error)
	SetOperatorDisabled(ctx context.Context, id string, disabled bool) error
	// SetOperatorToken replaces the token hash (nil: none).
	SetOperatorToken(ctx context.Context, id string, hash []byte) error

	// CreateAccessRequest stores a new request (without votes); ErrExists
	// if the ID is taken.
	CreateAccessRequest(ctx context.Context, r AccessRequest) error
	// AccessRequest returns the request with its votes; ErrNotFound.
	AccessRequest(ctx context.Context, id string) (AccessRequest, error)
	// AccessRequests returns up to limit requests (newest first) created at
	// or after since (zero: any).
	AccessRequests(ctx context.Context, since time.Time, limit int) ([]AccessRequest, error)
	// VoteAccessRequest records v; ErrNotFound for an unknown request,
	// ErrExists if v.By already answered it, ErrUsed if it was used.
	VoteAccessRequest(ctx context.Context, id string, v RequestVote) error
	// UseAccessRequest marks the request used at `at`, once: ErrUsed if it
	// was used already, ErrNotFound for an unknown request. The check and
	// the mark are atomic, so two runs of one request cannot both succeed.
	UseAccessRequest(ctx context.Context, id string, at time.Time) error
}

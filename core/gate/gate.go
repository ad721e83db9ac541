// Package gate declares what the core asks of a policy, as plain Go values:
// may one party contact another (contact), what is kept of a message and
// for how long (retention), may an operator look into or change someone's
// data (access), may a message be end-to-end encrypted here (e2ee), and may
// a new account register in band (registration).
//
// The core declares the questions; package policy answers them with an
// embedded OPA engine, and cmd/kontor wires the two together. The core never
// imports package policy (DESIGN.md, "Layers"), and no OPA type appears here.
//
// Every answer is a Decision: an id (to match the audit trail and what a
// user reports), allow, a machine-readable reason code, a human-readable
// message, obligations, and the revision of the policy that made it.
// Deciders fail closed: an evaluation error, a timeout or an undefined
// result is a Decision with Allow false and one of the Reason* codes below,
// never an error the caller could forget to check. Enforcement points turn
// a refusal into a policy-violation stanza error with StanzaError.
package gate

import (
	"context"
	"net/netip"
	"time"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/stanza"
)

// NS is the namespace of the application-specific error condition that
// carries a refusal's reason code and decision id to the client:
//
//	<decision xmlns='urn:kontor:policy:0' reason='guest_not_sponsored' id='d-…'/>
const NS = "urn:kontor:policy:0"

// Reason codes of decisions that failed (fail closed). Policies use their
// own codes for ordinary refusals.
const (
	// ReasonError: evaluating the policy failed.
	ReasonError = "policy_error"
	// ReasonTimeout: the policy did not answer within its deadline.
	ReasonTimeout = "policy_timeout"
	// ReasonUndefined: the policy has no answer for this input.
	ReasonUndefined = "policy_undefined"
	// ReasonInvalid: the policy answered with something that is not a
	// decision (a missing or mistyped field).
	ReasonInvalid = "policy_invalid_output"
	// ReasonUnavailable: no policy engine is wired in where one is needed.
	ReasonUnavailable = "policy_unavailable"
	// ReasonAuditUnavailable: an access decision could not be written to
	// the audit trail, so it is not granted.
	ReasonAuditUnavailable = "audit_unavailable"
)

// Decider answers every decision. Implementations are safe for concurrent
// use and never block longer than their own short deadline.
type Decider interface {
	Contact(ctx context.Context, in ContactInput) Decision
	Retention(ctx context.Context, in RetentionInput) RetentionDecision
	Access(ctx context.Context, in AccessInput) AccessDecision
	E2EE(ctx context.Context, in E2EEInput) Decision
	Registration(ctx context.Context, in RegistrationInput) Decision
}

// Decision is the answer every decision shares.
type Decision struct {
	// ID identifies the evaluation that made this decision: it is in the
	// error stanza a user sees and in the audit entry, so the two can be
	// matched. A decision served from a cache is the same decision applied
	// again and carries the same id.
	ID    string `json:"id"`
	Allow bool   `json:"allow"`
	// Reason is a short machine-readable code ("internal",
	// "guest_not_sponsored", "policy_timeout").
	Reason string `json:"reason"`
	// Message explains a refusal to the user, in plain language.
	Message string `json:"message,omitempty"`
	// Obligations are further instructions of the policy as text (JSON for
	// values that are not strings). Read-only: decisions may share them.
	Obligations map[string]string `json:"obligations,omitempty"`
	// Revision is the hash of the policy that decided.
	Revision string `json:"revision"`
	// Err is why a decision failed (Reason is one of the Reason* codes);
	// for the operator's log, never for the user.
	Err error `json:"-"`
}

// Failed returns the refusal for a decision that could not be made.
func Failed(reason, message string, err error) Decision {
	return Decision{Reason: reason, Message: message, Err: err}
}

// StanzaError is the error a sender gets for a refusal: policy-violation
// (RFC 6120 §8.3.3.12) with the message and reason code as text and the
// reason and decision id as an application condition. A timeout is of type
// wait (trying again may work); everything else cancel.
func (d Decision) StanzaError() stanza.Error {
	typ := stanza.Cancel
	if d.Reason == ReasonTimeout {
		typ = stanza.Wait
	}
	text := d.Message
	if text == "" {
		text = "The policy of this server does not allow this."
	}
	if d.Reason != "" {
		text += " (" + d.Reason + ")"
	}
	app := stanza.New(NS, "decision").Set("reason", d.Reason).Set("id", d.ID)
	return stanza.Error{Type: typ, Condition: stanza.PolicyViolation, Text: text, App: app}
}

// Party is one side of a conversation as the caller knows it. The policy
// looks up everything else (kind, department, groups, company, sponsors)
// in the directory data it holds.
type Party struct {
	// JID is the bare JID ("" when there is no such party, e.g. the
	// recipient of a groupchat message, which is the room).
	JID string
	// Local is true for accounts of a domain this server serves.
	Local bool
}

// Action is what one party wants to do to or with another.
type Action string

// Actions of the contact decision.
const (
	ActionMessage    Action = "message"    // send a message
	ActionRosterAdd  Action = "roster.add" // add to the roster (roster set)
	ActionSubscribe  Action = "subscribe"  // request a presence subscription
	ActionSubscribed Action = "subscribed" // approve or pre-approve one
	ActionPresence   Action = "presence"   // send directed presence
	ActionIQ         Action = "iq"         // send an IQ get or set to another user
	ActionMUCJoin    Action = "muc.join"   // join a room (From joins Room)
	ActionMUCInvite  Action = "muc.invite" // invite To into Room
)

// StanzaAction returns the contact action a stanza from one party to
// another asks about: a message (of any type) "message"; directed
// available presence and probes "presence"; subscription requests and
// approvals "subscribe" and "subscribed"; IQ requests "iq". Errors, IQ
// results, unavailable presence and withdrawals (unsubscribe,
// unsubscribed) ask nothing (false): refusing them would break the
// protocol or keep someone from ending a contact.
func StanzaAction(s *stanza.Stanza) (Action, bool) {
	if s.IsError() {
		return "", false
	}
	switch s.Kind {
	case stanza.KindMessage:
		return ActionMessage, true
	case stanza.KindPresence:
		switch s.Type {
		case "subscribe":
			return ActionSubscribe, true
		case "subscribed":
			return ActionSubscribed, true
		case "", "probe":
			return ActionPresence, true
		}
	case stanza.KindIQ:
		if s.Type == "get" || s.Type == "set" {
			return ActionIQ, true
		}
	}
	return "", false
}

// ContactInput asks whether From may do Action to To (or in Room).
type ContactInput struct {
	Action Action
	// StanzaType is the type attribute of the stanza ("chat", "set", ...).
	StanzaType string
	From, To   Party
	// Room is the bare JID of a room for the muc.* actions, else "".
	Room string
}

// RetentionInput asks what to keep of one message.
type RetentionInput struct {
	From, To   Party
	Room       string // bare JID of the room of a groupchat message, else ""
	StanzaType string
	// Encrypted: end-to-end encrypted (the archive cannot read it).
	Encrypted bool
	// LegalHold: a legal hold covers one of the parties or the room.
	LegalHold bool
	// At is when the message was sent: the retention period counts from
	// it. Zero means now.
	At time.Time
}

// RetentionDecision says whether and how long a message is archived.
// When the decision failed (Allow false), Archive is true and Until is
// zero: the message is kept without a deletion date until a later decision
// classifies it, because deleting too early cannot be undone and keeping
// too long can.
type RetentionDecision struct {
	Decision
	// Archive: keep the message in the archive at all.
	Archive bool `json:"archive"`
	// Class is the retention class that won ("internal",
	// "business_letter", "accounting_record", ...).
	Class string `json:"class"`
	// Period describes the winning rule ("90 days", "6 years after the
	// end of the year").
	Period string `json:"period"`
	// Until is when the message may be deleted (zero: no date).
	Until time.Time `json:"until"`
	// LegalHold: the message must not be deleted, whatever Until says.
	LegalHold bool `json:"legal_hold"`
}

// Operator is a person acting through the admin API or CLI.
type Operator struct {
	ID    string   // an operator name or a bare JID
	Roles []string // "admin", "dpo", "works_council", "auditor", "legal", ...
}

// Approval is one person's consent to an access request.
type Approval struct {
	By         string
	Roles      []string
	CaseNumber string
	At         time.Time
}

// Access actions.
const (
	AccessArchiveView      = "archive.view"       // read someone's archive
	AccessArchiveExport    = "archive.export"     // export it (GDPR Art. 15/20, eDiscovery)
	AccessArchiveErase     = "archive.erase"      // erase it (GDPR Art. 17)
	AccessReportView       = "report.view"        // view a DPO report
	AccessDSRRecord        = "dsr.record"         // record a data subject request and its completion
	AccessLegalHoldSet     = "legal_hold.set"     // place a legal hold
	AccessLegalHoldRelease = "legal_hold.release" // release one
	// AccessErasureReinstate lets directory sync recreate an erased person.
	AccessErasureReinstate = "erasure.reinstate"
	// AccessArchiveImport imports another server's data (XEP-0227).
	AccessArchiveImport = "archive.import"
	// Calls of the admin API and management of operators (admins only in
	// the default policy).
	AccessAdminPolicyReload = "admin.policy_reload" // POST /policy/reload
	AccessAdminLDAPSync     = "admin.ldap_sync"     // POST /ldap/sync
	AccessOperatorManage    = "operator.manage"     // kontor operator add|disable|token
	// Backups (admins only in the default policy): a backup holds
	// everyone's data (sealed) and its metadata; a restore rolls it back.
	AccessBackupCreate  = "backup.create"  // kontor backup
	AccessBackupRestore = "backup.restore" // kontor restore over a store that has operators
)

// AccessInput asks whether Operator may run Action on Subject.
type AccessInput struct {
	Operator   Operator
	Action     string
	Subject    string // bare JID whose data it is, or "" (reports)
	CaseNumber string
	Purpose    string
	Approvals  []Approval
	// SubjectLegalHold: a legal hold covers the subject.
	SubjectLegalHold bool
	// Remote is the caller's network address (host:port) when the
	// request came over the admin API; "" for the local CLI.
	Remote string
	// Now is the time of the request, against which approvals expire.
	// Zero means now.
	Now time.Time
}

// AccessDecision says whether an access may go ahead, and if not yet, what
// it still needs.
type AccessDecision struct {
	Decision
	// ApprovalsNeeded is how many more distinct approvers (other than the
	// requester) must consent.
	ApprovalsNeeded int `json:"approvals_needed"`
	// RolesNeeded are roles that no valid approval covers yet.
	RolesNeeded []string `json:"roles_needed,omitempty"`
}

// E2EEInput asks whether an end-to-end encrypted message may be sent
// between these parties (or in this room).
type E2EEInput struct {
	From, To   Party
	Room       string
	StanzaType string
}

// RegistrationInput asks whether a new account may register in band.
type RegistrationInput struct {
	Domain   string
	Username string
	// JID is Username@Domain, prepared.
	JID string
	// Remote is the client's address ("" when unknown).
	Remote string
}

// RegistrationGate adapts a Decider to core/mod/register's Gate, so that
// in-band registration asks the registration decision. A nil Decider
// refuses (fail closed).
type RegistrationGate struct{ Decider Decider }

// AllowRegistration asks the registration decision; the string is shown
// to the client when it refuses.
func (g RegistrationGate) AllowRegistration(ctx context.Context, domain, username string, remote netip.Addr) (bool, string) {
	if g.Decider == nil {
		return false, "registration is not possible: no policy engine is configured (" + ReasonUnavailable + ")"
	}
	in := RegistrationInput{Domain: domain, Username: username}
	if j, err := jid.New(username, domain, ""); err == nil {
		in.JID = j.String()
	}
	if remote.IsValid() {
		in.Remote = remote.String()
	}
	d := g.Decider.Registration(ctx, in)
	if d.Allow {
		return true, ""
	}
	return false, d.StanzaError().Text
}

// UploadInput asks whether From may upload a file (XEP-0363 slot request,
// decision upload.request) and how long the file is kept.
type UploadInput struct {
	From        Party
	Size        int64  // bytes
	ContentType string // lowercase type/subtype
	// At is when the slot is requested: the retention period counts from
	// it. Zero means now.
	At time.Time
}

// UploadDecision says whether a file may be uploaded, within which limits,
// and until when it is kept. The limits narrow the upload module's own;
// they never widen them.
type UploadDecision struct {
	Decision
	// MaxSize is the largest file the policy allows this uploader (0: the
	// module's limit only).
	MaxSize int64 `json:"max_size"`
	// ContentTypes the policy allows ("image/*" allows every image type);
	// empty: the module's list only.
	ContentTypes []string `json:"content_types,omitempty"`
	// Class, Period and Until are the file's retention, decided as for a
	// message: the longest applicable rule wins; Until zero keeps it
	// without a date.
	Class  string    `json:"class"`
	Period string    `json:"period"`
	Until  time.Time `json:"until"`
}

// PushInput asks whether the notifications of User's account may go to
// the app server Service (XEP-0357, decision push.notify), and what their
// summary may say. It is asked when a client enables the app server
// (Sender is then zero) and for every notification (Sender is the last
// message's sender).
type PushInput struct {
	User    Party
	Service string // the app server's JID
	// ServiceLocal is true when this server serves the app server's
	// domain (one of its domains, a component or a module's): the
	// notification does not leave the company.
	ServiceLocal bool
	Sender       Party
	// Encrypted is true for an end-to-end encrypted message (its body
	// is never included, whatever the policy says).
	Encrypted bool
}

// PushDecision says whether notifications may go to the app server, and
// whether the summary may carry the sender and the body. The push
// module's include_sender and include_body must allow them too: the
// policy narrows the module's options, never widens them.
type PushDecision struct {
	Decision
	IncludeSender bool `json:"include_sender"`
	IncludeBody   bool `json:"include_body"`
}

// PushDecider answers the push.notify decision; like UploadDecider, a
// separate interface.
type PushDecider interface {
	Push(ctx context.Context, in PushInput) PushDecision
}

// UploadDecider answers the upload.request decision. It is a separate
// interface so that deciders which need not answer it (test doubles of
// Decider) stay as they are; a module that needs it asserts it and fails
// closed without it.
type UploadDecider interface {
	Upload(ctx context.Context, in UploadInput) UploadDecision
}

package policy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"

	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/gate"
)

var (
	_ gate.Decider       = (*Engine)(nil)
	_ gate.UploadDecider = (*Engine)(nil)
)

// Keys of inputs and outputs, built once.
var (
	kAction           = ast.StringTerm("action")
	kStanzaType       = ast.StringTerm("stanza_type")
	kFrom             = ast.StringTerm("from")
	kTo               = ast.StringTerm("to")
	kRoom             = ast.StringTerm("room")
	kJID              = ast.StringTerm("jid")
	kLocal            = ast.StringTerm("local")
	kKnown            = ast.StringTerm("known")
	kKind             = ast.StringTerm("kind")
	kDepartment       = ast.StringTerm("department")
	kCompany          = ast.StringTerm("company")
	kGroups           = ast.StringTerm("groups")
	kGroupNames       = ast.StringTerm("group_names")
	kSponsors         = ast.StringTerm("sponsors")
	kDisabled         = ast.StringTerm("disabled")
	kEncrypted        = ast.StringTerm("encrypted")
	kLegalHold        = ast.StringTerm("legal_hold")
	kOperator         = ast.StringTerm("operator")
	kID               = ast.StringTerm("id")
	kRoles            = ast.StringTerm("roles")
	kSubject          = ast.StringTerm("subject")
	kCaseNumber       = ast.StringTerm("case_number")
	kPurpose          = ast.StringTerm("purpose")
	kSubjectLegalHold = ast.StringTerm("subject_legal_hold")
	kNow              = ast.StringTerm("now")
	kApprovals        = ast.StringTerm("approvals")
	kBy               = ast.StringTerm("by")
	kAt               = ast.StringTerm("at")
	kDomain           = ast.StringTerm("domain")
	kUsername         = ast.StringTerm("username")
	kRemote           = ast.StringTerm("remote")
	kSize             = ast.StringTerm("size")
	kContentType      = ast.StringTerm("content_type")

	kAllow           = ast.StringTerm("allow")
	kReason          = ast.StringTerm("reason")
	kMessage         = ast.StringTerm("message")
	kObligations     = ast.StringTerm("obligations")
	kArchive         = ast.StringTerm("archive")
	kRules           = ast.StringTerm("rules")
	kClass           = ast.StringTerm("class")
	kDays            = ast.StringTerm("days")
	kMonths          = ast.StringTerm("months")
	kYears           = ast.StringTerm("years")
	kYearsAfterEnd   = ast.StringTerm("years_after_year_end")
	kApprovalsNeeded = ast.StringTerm("approvals_needed")
	kRolesNeeded     = ast.StringTerm("roles_needed")
	kMaxSize         = ast.StringTerm("max_size")
	kUser            = ast.StringTerm("user")
	kService         = ast.StringTerm("service")
	kServiceLocal    = ast.StringTerm("service_local")
	kSender          = ast.StringTerm("sender")
	kIncludeSender   = ast.StringTerm("include_sender")
	kIncludeBody     = ast.StringTerm("include_body")
	kContentTypes    = ast.StringTerm("content_types")
)

// Input documents, exactly as the package documentation describes them.
// Parties come from the state's directory data: callers send only JIDs.

func (st *state) party(p gate.Party) *ast.Term {
	if t, ok := st.dir.parties[p.JID]; ok {
		if p.Local {
			return t[1]
		}
		return t[0]
	}
	st.standInMu.RLock()
	t, ok := st.standIns[p]
	st.standInMu.RUnlock()
	if ok {
		return t
	}
	t = standIn(p, st.unknownLocal)
	st.standInMu.Lock()
	if len(st.standIns) < maxStandIns {
		st.standIns[p] = t
	}
	st.standInMu.Unlock()
	return t
}

func (st *state) contactValue(in *gate.ContactInput) ast.Value {
	return ast.NewObject(
		ast.Item(kAction, ast.StringTerm(string(in.Action))),
		ast.Item(kStanzaType, ast.StringTerm(in.StanzaType)),
		ast.Item(kFrom, st.party(in.From)),
		ast.Item(kTo, st.party(in.To)),
		ast.Item(kRoom, ast.StringTerm(in.Room)),
	)
}

func (st *state) retentionValue(in *gate.RetentionInput) ast.Value {
	return ast.NewObject(
		ast.Item(kFrom, st.party(in.From)),
		ast.Item(kTo, st.party(in.To)),
		ast.Item(kRoom, ast.StringTerm(in.Room)),
		ast.Item(kStanzaType, ast.StringTerm(in.StanzaType)),
		ast.Item(kEncrypted, ast.InternedTerm(in.Encrypted)),
		ast.Item(kLegalHold, ast.InternedTerm(in.LegalHold)),
	)
}

func (st *state) e2eeValue(in *gate.E2EEInput) ast.Value {
	return ast.NewObject(
		ast.Item(kFrom, st.party(in.From)),
		ast.Item(kTo, st.party(in.To)),
		ast.Item(kRoom, ast.StringTerm(in.Room)),
		ast.Item(kStanzaType, ast.StringTerm(in.StanzaType)),
	)
}

func accessValue(in *gate.AccessInput, now time.Time) ast.Value {
	approvals := make([]*ast.Term, len(in.Approvals))
	for i, a := range in.Approvals {
		approvals[i] = ast.ObjectTerm(
			ast.Item(kBy, ast.StringTerm(a.By)),
			ast.Item(kRoles, stringsTerm(a.Roles)),
			ast.Item(kCaseNumber, ast.StringTerm(a.CaseNumber)),
			ast.Item(kAt, ast.IntNumberTerm(int(a.At.Unix()))),
		)
	}
	return ast.NewObject(
		ast.Item(kOperator, ast.ObjectTerm(ast.Item(kID, ast.StringTerm(in.Operator.ID)), ast.Item(kRoles, stringsTerm(in.Operator.Roles)))),
		ast.Item(kAction, ast.StringTerm(in.Action)),
		ast.Item(kSubject, ast.StringTerm(in.Subject)),
		ast.Item(kCaseNumber, ast.StringTerm(in.CaseNumber)),
		ast.Item(kPurpose, ast.StringTerm(in.Purpose)),
		ast.Item(kSubjectLegalHold, ast.InternedTerm(in.SubjectLegalHold)),
		ast.Item(kNow, ast.IntNumberTerm(int(now.Unix()))),
		ast.Item(kApprovals, ast.ArrayTerm(approvals...)),
		ast.Item(kRemote, ast.StringTerm(in.Remote)),
	)
}

func registrationValue(in *gate.RegistrationInput) ast.Value {
	return ast.NewObject(
		ast.Item(kDomain, ast.StringTerm(in.Domain)),
		ast.Item(kUsername, ast.StringTerm(in.Username)),
		ast.Item(kJID, ast.StringTerm(in.JID)),
		ast.Item(kRemote, ast.StringTerm(in.Remote)),
	)
}

func (st *state) uploadValue(in *gate.UploadInput) ast.Value {
	return ast.NewObject(
		ast.Item(kFrom, st.party(in.From)),
		ast.Item(kSize, ast.InternedTerm(int(in.Size))),
		ast.Item(kContentType, ast.StringTerm(in.ContentType)),
	)
}

func (st *state) pushValue(in *gate.PushInput) ast.Value {
	return ast.NewObject(
		ast.Item(kUser, st.party(in.User)),
		ast.Item(kService, ast.StringTerm(in.Service)),
		ast.Item(kServiceLocal, ast.BooleanTerm(in.ServiceLocal)),
		ast.Item(kSender, st.party(in.Sender)),
		ast.Item(kEncrypted, ast.BooleanTerm(in.Encrypted)),
	)
}

// outcome is what a policy answered, decoded and checked. It is immutable
// once made: the cache hands the same outcome to many decisions.
type outcome struct {
	allow           bool
	reason, message string
	obligations     map[string]string
	// retention
	archive, legalHold bool
	rules              []Rule
	// access
	approvalsNeeded int
	rolesNeeded     []string
	// upload (and rules)
	maxSize      int64
	contentTypes []string
	// push
	includeSender, includeBody bool
}

// Bounds on what a policy may answer; beyond them the answer is invalid.
const (
	maxReasonLen  = 64
	maxMessageLen = 1000
	maxRules      = 32
	maxTypes      = 64
)

// errInvalid marks answers that are not decisions.
var errInvalid = errors.New("policy: invalid decision")

func invalid(k kind, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", errInvalid, k, fmt.Sprintf(format, args...))
}

// decodeOutcome reads a decision object. Anything missing, mistyped or out
// of bounds is errInvalid: the caller denies.
func decodeOutcome(k kind, v ast.Value) (*outcome, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, invalid(k, "the decision is %s, not an object", ast.ValueName(v))
	}
	o := &outcome{}
	var err error
	if o.allow, err = getBool(k, obj, kAllow, true); err != nil {
		return nil, err
	}
	if o.reason, err = getString(k, obj, kReason, true); err != nil {
		return nil, err
	}
	if !validReason(o.reason) {
		return nil, invalid(k, "reason %q is not a code of at most %d letters, digits and _ . -", o.reason, maxReasonLen)
	}
	if o.message, err = getString(k, obj, kMessage, false); err != nil {
		return nil, err
	}
	if len(o.message) > maxMessageLen || !utf8.ValidString(o.message) {
		return nil, invalid(k, "message longer than %d bytes or not UTF-8", maxMessageLen)
	}
	if t := obj.Get(kObligations); t != nil {
		ob, ok := t.Value.(ast.Object)
		if !ok {
			return nil, invalid(k, "obligations is %s, not an object", ast.ValueName(t.Value))
		}
		if ob.Len() > 0 {
			o.obligations = make(map[string]string, ob.Len())
			err := ob.Iter(func(key, val *ast.Term) error {
				ks, ok := key.Value.(ast.String)
				if !ok {
					return invalid(k, "obligation key %s is not a string", key)
				}
				if s, ok := val.Value.(ast.String); ok {
					o.obligations[string(ks)] = string(s)
				} else {
					o.obligations[string(ks)] = val.String()
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	switch k {
	case kindRetention:
		if o.archive, err = getBool(k, obj, kArchive, true); err != nil {
			return nil, err
		}
		if o.legalHold, err = getBool(k, obj, kLegalHold, true); err != nil {
			return nil, err
		}
		if o.rules, err = decodeRules(obj.Get(kRules)); err != nil {
			return nil, fmt.Errorf("%w: retention: %v", errInvalid, err)
		}
	case kindUpload:
		if t := obj.Get(kMaxSize); t != nil {
			n, ok := t.Value.(ast.Number)
			i, iok := n.Int64()
			if !ok || !iok || i < 0 {
				return nil, invalid(k, "max_size is not a size in bytes")
			}
			o.maxSize = i
		}
		if t := obj.Get(kContentTypes); t != nil {
			if o.contentTypes, err = stringList(t.Value); err != nil || len(o.contentTypes) > maxTypes {
				return nil, invalid(k, "content_types is not a list of at most %d strings", maxTypes)
			}
		}
		if o.allow {
			if o.rules, err = decodeRules(obj.Get(kRules)); err != nil {
				return nil, fmt.Errorf("%w: upload: %v", errInvalid, err)
			}
		}
	case kindPush:
		if o.includeSender, err = getBool(k, obj, kIncludeSender, false); err != nil {
			return nil, err
		}
		if o.includeBody, err = getBool(k, obj, kIncludeBody, false); err != nil {
			return nil, err
		}
	case kindAccess:
		if t := obj.Get(kApprovalsNeeded); t != nil {
			n, ok := t.Value.(ast.Number)
			i, iok := n.Int()
			if !ok || !iok || i < 0 || i > 100 {
				return nil, invalid(k, "approvals_needed is not a count")
			}
			o.approvalsNeeded = i
		}
		if t := obj.Get(kRolesNeeded); t != nil {
			if o.rolesNeeded, err = stringList(t.Value); err != nil {
				return nil, invalid(k, "roles_needed: %v", err)
			}
		}
	}
	return o, nil
}

func getBool(k kind, obj ast.Object, key *ast.Term, required bool) (bool, error) {
	t := obj.Get(key)
	if t == nil {
		if required {
			return false, invalid(k, "no %s", key)
		}
		return false, nil
	}
	b, ok := t.Value.(ast.Boolean)
	if !ok {
		return false, invalid(k, "%s is %s, not a boolean", key, ast.ValueName(t.Value))
	}
	return bool(b), nil
}

func getString(k kind, obj ast.Object, key *ast.Term, required bool) (string, error) {
	t := obj.Get(key)
	if t == nil {
		if required {
			return "", invalid(k, "no %s", key)
		}
		return "", nil
	}
	s, ok := t.Value.(ast.String)
	if !ok {
		return "", invalid(k, "%s is %s, not a string", key, ast.ValueName(t.Value))
	}
	return string(s), nil
}

func validReason(s string) bool {
	if s == "" || len(s) > maxReasonLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// stringList reads an array or set of strings.
func stringList(v ast.Value) ([]string, error) {
	var out []string
	add := func(t *ast.Term) error {
		s, ok := t.Value.(ast.String)
		if !ok {
			return fmt.Errorf("%s is not a string", t)
		}
		out = append(out, string(s))
		return nil
	}
	switch x := v.(type) {
	case *ast.Array:
		if err := x.Iter(add); err != nil {
			return nil, err
		}
	case ast.Set:
		if err := x.Iter(add); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%s is not an array or set", ast.ValueName(v))
	}
	return out, nil
}

// decodeRules reads the retention rules: an array or set of objects, each
// with a class and one period.
func decodeRules(t *ast.Term) ([]Rule, error) {
	if t == nil {
		return nil, errors.New("no rules")
	}
	var terms []*ast.Term
	switch x := t.Value.(type) {
	case *ast.Array:
		_ = x.Iter(func(t *ast.Term) error { terms = append(terms, t); return nil })
	case ast.Set:
		_ = x.Sorted().Iter(func(t *ast.Term) error { terms = append(terms, t); return nil })
	default:
		return nil, fmt.Errorf("rules is %s, not an array or set", ast.ValueName(t.Value))
	}
	if len(terms) > maxRules {
		return nil, fmt.Errorf("more than %d rules", maxRules)
	}
	rules := make([]Rule, 0, len(terms))
	for _, t := range terms {
		obj, ok := t.Value.(ast.Object)
		if !ok {
			return nil, fmt.Errorf("rule %s is not an object", t)
		}
		var r Rule
		periods := 0
		var problem error
		_ = obj.Iter(func(key, val *ast.Term) error {
			if problem != nil {
				return nil
			}
			if key.Equal(kClass) {
				s, ok := val.Value.(ast.String)
				if !ok {
					problem = fmt.Errorf("rule class %s is not a string", val)
				}
				r.Class = string(s)
				return nil
			}
			var dst *int
			switch {
			case key.Equal(kDays):
				dst = &r.Days
			case key.Equal(kMonths):
				dst = &r.Months
			case key.Equal(kYears):
				dst = &r.Years
			case key.Equal(kYearsAfterEnd):
				dst = &r.YearsAfterYearEnd
				r.afterYearEnd = true
			default:
				problem = fmt.Errorf("rule has an unknown field %s", key)
				return nil
			}
			n, ok := val.Value.(ast.Number)
			i, iok := n.Int()
			if !ok || !iok {
				problem = fmt.Errorf("rule period %s=%s is not a whole number", key, val)
				return nil
			}
			*dst = i
			periods++
			return nil
		})
		if problem != nil {
			return nil, problem
		}
		if periods != 1 {
			return nil, fmt.Errorf("rule %s needs exactly one of days, months, years, years_after_year_end", t)
		}
		if err := r.validate(); err != nil {
			return nil, err
		}
		r.period = r.Period()
		rules = append(rules, r)
	}
	return rules, nil
}

// lookup returns the cached answer for key, or nil.
func (st *state) lookup(key *cacheKey) *cacheEntry {
	if st.cache == nil {
		return nil
	}
	return st.cache.get(key)
}

// evaluate evaluates and decodes k for input and, when key is not nil,
// caches the outcome under key with the decision id. Failures are not
// cached.
func (e *Engine) evaluate(ctx context.Context, st *state, k kind, key *cacheKey, id string, input ast.Value) (*outcome, error) {
	v, err := e.eval(ctx, st, k, input)
	if err != nil {
		return nil, err
	}
	o, err := decodeOutcome(k, v)
	if err != nil {
		return nil, err
	}
	if key != nil && st.cache != nil {
		st.cache.put(key, o, id)
	}
	return o, nil
}

// decision turns an outcome (or the error instead of one) into a Decision;
// errors fail closed.
func (e *Engine) decision(ctx context.Context, st *state, k kind, id string, o *outcome, err error) gate.Decision {
	if err != nil {
		d := failure(k, id, err)
		d.Revision = st.pol.revision
		e.log.ErrorContext(ctx, "policy decision failed; denied", "decision", k.String(), "decision_id", id,
			"reason", d.Reason, "revision", st.pol.revision, "err", err)
		return d
	}
	return gate.Decision{ID: id, Allow: o.allow, Reason: o.reason, Message: o.message,
		Obligations: o.obligations, Revision: st.pol.revision}
}

func failure(k kind, id string, err error) gate.Decision {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return gate.Decision{ID: id, Reason: gate.ReasonTimeout, Err: err,
			Message: "The policy check did not finish in time, so this was not allowed; try again in a moment."}
	case errors.Is(err, errUndefined):
		return gate.Decision{ID: id, Reason: gate.ReasonUndefined, Err: err,
			Message: "The policy has no answer for this, so it is not allowed. Your administrator can look up decision " + id + "."}
	case errors.Is(err, errInvalid):
		return gate.Decision{ID: id, Reason: gate.ReasonInvalid, Err: err,
			Message: "The policy gave an invalid answer, so this is not allowed. Your administrator can look up decision " + id + "."}
	}
	return gate.Decision{ID: id, Reason: gate.ReasonError, Err: err,
		Message: "The policy check failed, so this is not allowed. Your administrator can look up decision " + id + "."}
}

func partyFlags(from, to gate.Party) uint8 {
	var f uint8
	if from.Local {
		f |= 1
	}
	if to.Local {
		f |= 2
	}
	return f
}

// Contact decides whether in.From may do in.Action to in.To. Refusals go
// to the audit trail.
func (e *Engine) Contact(ctx context.Context, in gate.ContactInput) gate.Decision {
	st := e.state.Load()
	key := cacheKey{kind: kindContact, flags: partyFlags(in.From, in.To), a: string(in.Action), b: in.StanzaType,
		from: in.From.JID, to: in.To.JID, room: in.Room}
	var id string
	var o *outcome
	var err error
	if ce := st.lookup(&key); ce != nil {
		id, o = ce.id, ce.o
	} else {
		id = e.newID()
		o, err = e.evaluate(ctx, st, kindContact, &key, id, st.contactValue(&in))
	}
	d := e.decision(ctx, st, kindContact, id, o, err)
	if !d.Allow {
		e.auditDeny(ctx, kindContact, d, in.From.JID, in.To.JID, map[string]string{
			"action": string(in.Action), "stanza_type": in.StanzaType, "room": in.Room})
	}
	return d
}

// E2EE decides whether an end-to-end encrypted message may be sent.
// Refusals go to the audit trail.
func (e *Engine) E2EE(ctx context.Context, in gate.E2EEInput) gate.Decision {
	st := e.state.Load()
	key := cacheKey{kind: kindE2EE, flags: partyFlags(in.From, in.To), b: in.StanzaType,
		from: in.From.JID, to: in.To.JID, room: in.Room}
	var id string
	var o *outcome
	var err error
	if ce := st.lookup(&key); ce != nil {
		id, o = ce.id, ce.o
	} else {
		id = e.newID()
		o, err = e.evaluate(ctx, st, kindE2EE, &key, id, st.e2eeValue(&in))
	}
	d := e.decision(ctx, st, kindE2EE, id, o, err)
	if !d.Allow {
		e.auditDeny(ctx, kindE2EE, d, in.From.JID, in.To.JID, map[string]string{"stanza_type": in.StanzaType, "room": in.Room})
	}
	return d
}

// Retention decides whether and how long a message is kept; the policy
// names the applicable rules and the longest one wins, computed here in
// the engine's calendar.
func (e *Engine) Retention(ctx context.Context, in gate.RetentionInput) gate.RetentionDecision {
	st := e.state.Load()
	at := in.At
	if at.IsZero() {
		at = e.now()
	}
	flags := partyFlags(in.From, in.To)
	if in.Encrypted {
		flags |= 4
	}
	if in.LegalHold {
		flags |= 8
	}
	key := cacheKey{kind: kindRetention, flags: flags, b: in.StanzaType, from: in.From.JID, to: in.To.JID, room: in.Room}
	var id string
	var o *outcome
	var err error
	if ce := st.lookup(&key); ce != nil {
		id, o = ce.id, ce.o
	} else {
		id = e.newID()
		o, err = e.evaluate(ctx, st, kindRetention, &key, id, st.retentionValue(&in))
	}
	rd := gate.RetentionDecision{Decision: e.decision(ctx, st, kindRetention, id, o, err)}
	if err != nil || !o.allow {
		// Keep, without a deletion date, until a decision succeeds.
		rd.Archive, rd.LegalHold, rd.Class = true, in.LegalHold || (o != nil && o.legalHold), "unclassified"
		e.auditDeny(ctx, kindRetention, rd.Decision, in.From.JID, in.To.JID, map[string]string{"stanza_type": in.StanzaType, "room": in.Room})
		return rd
	}
	rd.Archive, rd.LegalHold = o.archive, o.legalHold
	if o.archive {
		if best, until, ok := longest(o.rules, at, e.loc); ok {
			rd.Class, rd.Period, rd.Until = best.Class, best.Period(), until
		}
	}
	return rd
}

// Access decides whether an operator may act on someone's data and which
// approvals are still missing. Every access decision goes to the audit
// trail; one that cannot be written there is refused.
func (e *Engine) Access(ctx context.Context, in gate.AccessInput) gate.AccessDecision {
	st := e.state.Load()
	now := in.Now
	if now.IsZero() {
		now = e.now()
	}
	id := e.newID()
	o, err := e.evaluate(ctx, st, kindAccess, nil, id, accessValue(&in, now))
	ad := gate.AccessDecision{Decision: e.decision(ctx, st, kindAccess, id, o, err)}
	if err == nil {
		ad.ApprovalsNeeded, ad.RolesNeeded = o.approvalsNeeded, o.rolesNeeded
	}
	details := map[string]string{
		"decision": kindAccess.String(), "decision_id": ad.ID, "action": in.Action,
		"allow": strconv.FormatBool(ad.Allow), "case_number": in.CaseNumber, "purpose": truncate(in.Purpose, 200),
		"approvals": strconv.Itoa(len(in.Approvals)), "approvals_needed": strconv.Itoa(ad.ApprovalsNeeded),
	}
	var approvers []string
	for _, a := range in.Approvals {
		approvers = append(approvers, a.By)
	}
	if len(approvers) > 0 {
		details["approvers"] = joinComma(approvers)
	}
	if in.Remote != "" {
		// An operator's address in full: unlike an employee's, it is
		// what the works council asks for (who looked, from where).
		details["remote"] = in.Remote
	}
	if e.audit != nil {
		_, aerr := e.audit.Append(context.WithoutCancel(ctx), audit.Entry{Actor: in.Operator.ID, Action: "policy.access",
			Subject: in.Subject, Reason: ad.Reason, PolicyRevision: ad.Revision, Details: details})
		if aerr != nil {
			e.log.ErrorContext(ctx, "policy: audit append failed; access refused", "decision_id", ad.ID, "err", aerr)
			if ad.Allow {
				ad.Allow, ad.Reason, ad.Err = false, gate.ReasonAuditUnavailable, aerr
				ad.Message = "The audit trail cannot record this access right now, so it is not allowed; try again later."
			}
		}
	}
	return ad
}

// Registration decides whether a new account may register in band.
// Refusals go to the audit trail, with the address shortened.
func (e *Engine) Registration(ctx context.Context, in gate.RegistrationInput) gate.Decision {
	st := e.state.Load()
	id := e.newID()
	o, err := e.evaluate(ctx, st, kindRegistration, nil, id, registrationValue(&in))
	d := e.decision(ctx, st, kindRegistration, id, o, err)
	if !d.Allow {
		e.auditDeny(ctx, kindRegistration, d, in.JID, in.JID, map[string]string{"domain": in.Domain, "remote_net": maskAddr(in.Remote)})
	}
	return d
}

// Upload decides whether someone may upload a file (upload.request),
// within which limits, and the file's retention: the policy names the
// applicable rules and the longest one wins, as for a message. Refusals go
// to the audit trail.
func (e *Engine) Upload(ctx context.Context, in gate.UploadInput) gate.UploadDecision {
	st := e.state.Load()
	at := in.At
	if at.IsZero() {
		at = e.now()
	}
	id := e.newID()
	o, err := e.evaluate(ctx, st, kindUpload, nil, id, st.uploadValue(&in))
	ud := gate.UploadDecision{Decision: e.decision(ctx, st, kindUpload, id, o, err)}
	if !ud.Allow {
		e.auditDeny(ctx, kindUpload, ud.Decision, in.From.JID, in.From.JID, map[string]string{
			"content_type": in.ContentType, "size": strconv.FormatInt(in.Size, 10)})
		return ud
	}
	ud.MaxSize, ud.ContentTypes = o.maxSize, o.contentTypes
	if best, until, ok := longest(o.rules, at, e.loc); ok {
		ud.Class, ud.Period, ud.Until = best.Class, best.Period(), until
	}
	return ud
}

// Push decides whether an account's push notifications may go to an app
// server, and whether their summary may name the sender and carry the
// body (push.notify). A body of an end-to-end encrypted message is never
// allowed. Refusals go to the audit trail.
func (e *Engine) Push(ctx context.Context, in gate.PushInput) gate.PushDecision {
	st := e.state.Load()
	id := e.newID()
	o, err := e.evaluate(ctx, st, kindPush, nil, id, st.pushValue(&in))
	pd := gate.PushDecision{Decision: e.decision(ctx, st, kindPush, id, o, err)}
	if !pd.Allow {
		e.auditDeny(ctx, kindPush, pd.Decision, in.User.JID, in.User.JID, map[string]string{"service": in.Service})
		return pd
	}
	pd.IncludeSender, pd.IncludeBody = o.includeSender, o.includeBody && !in.Encrypted
	return pd
}

// auditDeny writes a refusal to the audit trail. The details are a fixed
// selection of the input (the "masking"): JIDs, action and stanza type,
// never the whole input, and addresses shortened to their network.
func (e *Engine) auditDeny(ctx context.Context, k kind, d gate.Decision, actor, subject string, details map[string]string) {
	if e.audit == nil {
		return
	}
	details["decision"] = k.String()
	details["decision_id"] = d.ID
	for key, v := range details {
		if v == "" {
			delete(details, key)
		}
	}
	if actor == "" {
		actor = "unknown"
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := e.audit.Append(actx, audit.Entry{Actor: actor, Action: "policy.deny", Subject: subject,
		Reason: d.Reason, PolicyRevision: d.Revision, Details: details}); err != nil {
		e.log.ErrorContext(ctx, "policy: audit append failed", "decision", k.String(), "decision_id", d.ID, "err", err)
	}
}

// maskAddr keeps the network of an address (/24 for IPv4, /48 for IPv6).
func maskAddr(s string) string {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return ""
	}
	bits := 48
	if a.Unmap().Is4() {
		a, bits = a.Unmap(), 24
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return ""
	}
	return p.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func joinComma(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += ","
		}
		out += s
	}
	return out
}

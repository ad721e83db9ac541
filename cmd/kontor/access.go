package main

// Operators, dual control and the works council's safeguards.
//
// An operator is a person who administers Kontor (an admin, the data
// protection officer, an auditor, a member of the works council, the legal
// department). Commands that touch someone's data call authorizeAction: it
// identifies the operator, checks the works council's switches, asks the
// access policy (policy/bundle/access.rego) and, when the policy wants
// approvals by further operators, records an access request that others
// approve with `kontor request approve ID`. The requester then runs the
// command again with --request ID.
//
// How the CLI knows who runs it (in this order):
//
//  1. --operator NAME with the operator's secret token from
//     --operator-token-file FILE ("-": standard input), the environment
//     variable KONTOR_OPERATOR_TOKEN, or a prompt on a terminal. Tokens are 256-bit random strings shown
//     once (`kontor operator add`, `kontor operator token`); the store keeps
//     their SHA-256 only, and the comparison is constant-time.
//  2. Without --operator: operators.os_users maps the operating system user
//     the process runs as (its real uid, not $SUDO_USER, which anyone can
//     set) to an operator. root is never mapped: root can become anyone on
//     the machine, so it must name itself with --operator and a token.
//
// The first operator (bootstrap): while no operator exists, root on the
// machine may create one with `kontor operator add NAME --role admin`; the
// audit trail records it as operator.bootstrap with the OS user. From then
// on, managing operators is the access-policy action operator.manage.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"kontor.im/kontor/archive"
	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/gate"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/mod/offline"
	"kontor.im/kontor/core/seal"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/policy"
)

// OperatorsConfig is the "operators" section.
type OperatorsConfig struct {
	// OSUsers maps operating system users to operators, as "osuser=operator"
	// entries: such a user is that operator without --operator and token.
	OSUsers []string `mapstructure:"os_users"`
	// RequestTTL is how long an access request may wait for approvals.
	RequestTTL time.Duration `mapstructure:"request_ttl"`
}

// WorksCouncilConfig is the "works_council" section: each feature that
// could be used to monitor employees can be switched off, as a works
// agreement (BetrVG § 87(1) no. 6) may require.
type WorksCouncilConfig struct {
	// ArchiveView: operators may read someone else's archive.
	ArchiveView bool `mapstructure:"archive_view"`
	// ArchiveExport: operators may export someone else's data (GDPR
	// exports, eDiscovery).
	ArchiveExport bool `mapstructure:"archive_export"`
	// PersonReports: reports about one person (report.view with a subject).
	PersonReports bool `mapstructure:"person_reports"`
	// NotifySubject: after an approved access to someone's data, the person
	// gets a message from the server saying who did what, when and why.
	NotifySubject bool `mapstructure:"notify_subject"`
}

// osUsers parses operators.os_users.
func (c OperatorsConfig) osUsers() (map[string]string, []string) {
	m := map[string]string{}
	var problems []string
	for i, e := range c.OSUsers {
		osName, op, ok := strings.Cut(e, "=")
		osName, op = strings.TrimSpace(osName), strings.TrimSpace(op)
		switch {
		case !ok || osName == "" || op == "":
			problems = append(problems, fmt.Sprintf("operators.os_users[%d]: %q is not osuser=operator", i, e))
		case osName == "root":
			problems = append(problems, fmt.Sprintf("operators.os_users[%d]: root cannot be mapped to an operator (root can become anyone; use --operator and a token)", i))
		case m[osName] != "":
			problems = append(problems, fmt.Sprintf("operators.os_users[%d]: %s is mapped twice", i, osName))
		default:
			m[osName] = op
		}
	}
	return m, problems
}

func (c OperatorsConfig) validate() []string {
	_, p := c.osUsers()
	if c.RequestTTL < time.Minute || c.RequestTTL > 90*24*time.Hour {
		p = append(p, "operators.request_ttl: must be between 1m and 2160h (90 days)")
	}
	return p
}

// featureSwitch names the works_council switch that governs action on
// subject, and whether it is on. Actions no switch governs are on.
func (w WorksCouncilConfig) featureSwitch(action, subject string) (key string, on bool) {
	switch {
	case action == gate.AccessArchiveView:
		return "archive_view", w.ArchiveView
	case action == gate.AccessArchiveExport:
		return "archive_export", w.ArchiveExport
	case action == gate.AccessReportView && subject != "":
		return "person_reports", w.PersonReports
	}
	return "", true
}

// operatorGrant is an operator action the access policy allowed.
type operatorGrant struct {
	Operator   gate.Operator // who (ID and roles)
	Decision   gate.AccessDecision
	CaseNumber string
	Purpose    string
	Request    string // the approved request it runs under; "" when none was needed
}

// errAccessDenied is what every refusal of authorizeAction wraps.
var errAccessDenied = errors.New("access denied")

// approvalRequiredError: the action needs approvals that are not there yet;
// RequestID is the request recorded for them (or the one given).
type approvalRequiredError struct {
	RequestID       string
	Action, Subject string
	ApprovalsNeeded int
	RolesNeeded     []string
	New             bool // recorded by this call
}

func (e *approvalRequiredError) Error() string {
	roles := ""
	if len(e.RolesNeeded) > 0 {
		roles = " (among them the roles " + strings.Join(e.RolesNeeded, ", ") + ")"
	}
	what := e.Action
	if e.Subject != "" {
		what += " on " + e.Subject
	}
	if e.New {
		return fmt.Sprintf("dual control: %s needs %d more approval(s)%s. Request %s is recorded: other operators approve it with `kontor request approve %s`; then run this command again with --request %s",
			what, e.ApprovalsNeeded, roles, e.RequestID, e.RequestID, e.RequestID)
	}
	return fmt.Sprintf("dual control: request %s (%s) still needs %d more approval(s)%s: `kontor request approve %s`",
		e.RequestID, what, e.ApprovalsNeeded, roles, e.RequestID)
}

func (e *approvalRequiredError) Unwrap() error { return errAccessDenied }

// addOperatorFlags adds --operator and --operator-token-file to cmd.
func addOperatorFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.String("operator", "", "the operator running this (default: operators.os_users for the OS user); token from KONTOR_OPERATOR_TOKEN or --operator-token-file")
	f.String("operator-token-file", "", "file holding the operator's token ('-': standard input)")
}

// addAccessFlags adds --case, --purpose and --request to cmd (and the
// operator flags).
func addAccessFlags(cmd *cobra.Command) {
	addOperatorFlags(cmd)
	f := cmd.Flags()
	f.String("case", "", "the case number this action belongs to (required for access to someone's data)")
	f.String("purpose", "", "why this action is needed (required for access to someone's data)")
	f.String("request", "", "run under this approved access request (dual control)")
}

func flagString(cmd *cobra.Command, name string) string {
	if f := cmd.Flags().Lookup(name); f != nil {
		return f.Value.String()
	}
	return ""
}

// operatorStoreOf returns st's operator tables. Both backends have them.
func operatorStoreOf(st storage.Store) (storage.Operators, error) {
	ops, ok := st.(storage.Operators)
	if !ok {
		return nil, fmt.Errorf("operators: the %s store has no operator tables", st.Backend())
	}
	return ops, nil
}

// tokenPrefix marks operator tokens, so that secret scanners recognise a
// leaked one.
const tokenPrefix = "kontor_op_"

// newOperatorToken returns a fresh token and its hash.
func newOperatorToken() (token string, hash []byte) {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	token = tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return token, hashOperatorToken(token)
}

func hashOperatorToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// tokenMatches compares token with a stored hash in constant time; a
// missing hash (nil) never matches, after the same work.
func tokenMatches(token string, stored []byte) bool {
	got := hashOperatorToken(token)
	want := stored
	if len(want) != len(got) {
		want = make([]byte, len(got))
	}
	return subtle.ConstantTimeCompare(got, want) == 1 && len(stored) == len(got) && token != ""
}

// osIdentity returns the real uid and user name of this process; a
// variable so that tests can act as another OS user.
var osIdentity = func() (int, string, error) {
	uid := os.Getuid()
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return uid, "", err
	}
	return uid, u.Username, nil
}

// operatorKey is the context key under which an authenticated operator
// travels with a command, so that auditFromCLI names them.
type operatorKey struct{}

type cliOperator struct {
	storage.Operator
	How string // "token" or "os_user:NAME"
}

// operatorFrom returns the operator authenticated for cmd, if any.
func operatorFrom(ctx context.Context) (cliOperator, bool) {
	if ctx == nil {
		return cliOperator{}, false
	}
	o, ok := ctx.Value(operatorKey{}).(cliOperator)
	return o, ok
}

// readOperatorToken returns the token from --operator-token-file,
// KONTOR_OPERATOR_TOKEN, or a prompt (without echo) on a terminal.
func readOperatorToken(cmd *cobra.Command) (string, error) {
	if path := flagString(cmd, "operator-token-file"); path != "" {
		var data []byte
		var err error
		if path == "-" {
			data, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), 4096))
		} else {
			data, err = readLimited(path, 4096)
		}
		if err != nil {
			return "", fmt.Errorf("operator token: %w", err)
		}
		return strings.TrimSpace(string(data)), nil
	}
	if t := os.Getenv("KONTOR_OPERATOR_TOKEN"); t != "" {
		return strings.TrimSpace(t), nil
	}
	if f, ok := cmd.InOrStdin().(*os.File); ok && isTerminal(f) {
		t, err := promptNoEcho(f, cmd.ErrOrStderr(), "Operator token: ")
		return strings.TrimSpace(t), err
	}
	return "", errors.New("operator token: set KONTOR_OPERATOR_TOKEN, give --operator-token-file, or run on a terminal to be asked")
}

// authenticateOperator identifies the operator running cmd (see the file's
// comment), refuses disabled operators and bad tokens (audited as
// operator.auth_failed, with the OS user as actor), and attaches the
// operator to cmd's context.
func authenticateOperator(ctx context.Context, cfg *Config, st storage.Store, cmd *cobra.Command) (cliOperator, error) {
	if o, ok := operatorFrom(cmd.Context()); ok {
		return o, nil
	}
	ops, err := operatorStoreOf(st)
	if err != nil {
		return cliOperator{}, err
	}
	fail := func(claimed, why string) error {
		aerr := auditFromCLI(ctx, cfg, st, cmd, audit.Entry{Action: "operator.auth_failed", Subject: claimed, Reason: why})
		return errors.Join(fmt.Errorf("%w: operator %q not authenticated: %s", errAccessDenied, claimed, why), aerr)
	}
	name := flagString(cmd, "operator")
	var (
		o   storage.Operator
		how string
	)
	if name != "" {
		token, terr := readOperatorToken(cmd)
		if terr != nil {
			return cliOperator{}, terr
		}
		o, err = ops.Operator(ctx, name)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			tokenMatches(token, nil) // the same work as for a known name
			return cliOperator{}, fail(name, "bad operator name or token")
		case err != nil:
			return cliOperator{}, err
		}
		if !tokenMatches(token, o.TokenHash) {
			return cliOperator{}, fail(name, "bad operator name or token")
		}
		how = "token"
	} else {
		uid, osName, ierr := osIdentity()
		if ierr != nil {
			return cliOperator{}, fmt.Errorf("operator: who runs this: %w", ierr)
		}
		if uid == 0 {
			return cliOperator{}, fmt.Errorf("%w: root is not an operator: give --operator NAME and the token (KONTOR_OPERATOR_TOKEN)", errAccessDenied)
		}
		m, _ := cfg.Operators.osUsers()
		name = m[osName]
		if name == "" {
			return cliOperator{}, fmt.Errorf("%w: the OS user %s is not mapped to an operator (operators.os_users): give --operator NAME", errAccessDenied, osName)
		}
		if o, err = ops.Operator(ctx, name); errors.Is(err, storage.ErrNotFound) {
			return cliOperator{}, fail(name, "operators.os_users maps "+osName+" to an operator that does not exist")
		} else if err != nil {
			return cliOperator{}, err
		}
		how = "os_user:" + osName
	}
	if o.Disabled {
		return cliOperator{}, fail(name, "the operator is disabled")
	}
	co := cliOperator{Operator: o, How: how}
	base := cmd.Context()
	if base == nil {
		base = ctx
	}
	cmd.SetContext(context.WithValue(base, operatorKey{}, co))
	return co, nil
}

// cliTrail is the audit log a CLI command's policy decisions go to: the
// operator's entries with where and how the command ran.
type cliTrail struct {
	tr      *audit.Trail
	details map[string]string
}

func (c cliTrail) Append(ctx context.Context, e audit.Entry) (audit.Entry, error) {
	d := map[string]string{}
	for k, v := range c.details {
		d[k] = v
	}
	for k, v := range e.Details {
		d[k] = v
	}
	e.Details = d
	return c.tr.Append(ctx, e)
}

// cliDetails are the details every operator entry of a CLI command carries.
func cliDetails(cmd *cobra.Command, op cliOperator) map[string]string {
	d := map[string]string{"command": cmd.CommandPath(), "os_user": osActor(os.Getenv, user.Current), "authenticated_by": op.How}
	if h, err := os.Hostname(); err == nil && h != "" {
		d["host"] = h
	}
	return d
}

// accessEngine builds a policy engine for one CLI command; its access
// decisions go to log (nil: to none, for what-if questions).
func accessEngine(ctx context.Context, cfg *Config, log audit.Log) (*policy.Engine, error) {
	opts, err := cfg.policyOptions()
	if err != nil {
		return nil, err
	}
	if log != nil {
		opts.Audit = log
	}
	return policy.New(ctx, opts)
}

// openCLITrail opens the trail for a command's entries; close saves the head.
func openCLITrail(cfg *Config, st storage.Store, cmd *cobra.Command) (*audit.Trail, func(), error) {
	as, err := auditStoreOf(st)
	if err != nil {
		return nil, nil, err
	}
	tr := audit.New(as, audit.WithAnchor(cfg.Audit.anchorPath(cfg.DataDir), cfg.Audit.AnchorInterval))
	return tr, func() {
		if err := tr.Close(context.WithoutCancel(cmd.Context())); err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v\n", err)
		}
	}, nil
}

// approvalsOf turns a request's approving votes into the policy's input.
func approvalsOf(r storage.AccessRequest) []gate.Approval {
	var out []gate.Approval
	for _, v := range r.Votes {
		if v.Approve {
			out = append(out, gate.Approval{By: v.By, Roles: v.Roles, CaseNumber: r.CaseNumber, At: v.At})
		}
	}
	return out
}

// requestState says what a request can still do at now.
func requestState(r storage.AccessRequest, now time.Time) string {
	switch {
	case !r.Used.IsZero():
		return "used"
	case slices.ContainsFunc(r.Votes, func(v storage.RequestVote) bool { return !v.Approve }):
		return "denied"
	case !now.Before(r.Expires):
		return "expired"
	}
	return "pending"
}

// newRequestID returns a short random id that is easy to read out:
// "r-" and 10 base32 characters (50 bits).
func newRequestID() string {
	b := make([]byte, 7)
	rand.Read(b)
	return "r-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))[:10]
}

// authorizeAction identifies the operator running cmd, asks the access policy whether they may run action
// (a gate.Access* constant, e.g. gate.AccessArchiveExport) on subject (a bare JID, or "" for reports), and returns
// the grant; when approvals are missing it records a request and returns an error naming it. It writes the audit
// entry of the decision.
func authorizeAction(ctx context.Context, cfg *Config, st storage.Store, cmd *cobra.Command, action, subject string) (operatorGrant, error) {
	op, err := authenticateOperator(ctx, cfg, st, cmd)
	if err != nil {
		return operatorGrant{}, err
	}
	ops, err := operatorStoreOf(st)
	if err != nil {
		return operatorGrant{}, err
	}
	tr, closeTrail, err := openCLITrail(cfg, st, cmd)
	if err != nil {
		return operatorGrant{}, err
	}
	defer closeTrail()
	details := cliDetails(cmd, op)
	log := cliTrail{tr: tr, details: details}
	now := time.Now()
	caseNumber, purpose := strings.TrimSpace(flagString(cmd, "case")), strings.TrimSpace(flagString(cmd, "purpose"))
	reqID := strings.TrimSpace(flagString(cmd, "request"))

	// The works council's switches come before the policy: a feature that
	// is off is off for everyone.
	if key, on := cfg.WorksCouncil.featureSwitch(action, subject); !on {
		_, aerr := log.Append(ctx, audit.Entry{Actor: op.ID, Action: "access.disabled", Subject: subject, Reason: "feature_disabled",
			Details: map[string]string{"action": action, "switch": "works_council." + key, "case_number": caseNumber}})
		return operatorGrant{}, errors.Join(fmt.Errorf("%w: %s is switched off in this installation (works_council.%s is false; see `kontor catalogue`)",
			errAccessDenied, action, key), aerr)
	}

	var req *storage.AccessRequest
	if reqID != "" {
		r, err := ops.AccessRequest(ctx, reqID)
		if errors.Is(err, storage.ErrNotFound) {
			return operatorGrant{}, fmt.Errorf("%w: there is no access request %s", errAccessDenied, reqID)
		} else if err != nil {
			return operatorGrant{}, err
		}
		switch {
		case r.Requester != op.ID:
			return operatorGrant{}, fmt.Errorf("%w: request %s was made by %s; only they can use it", errAccessDenied, r.ID, r.Requester)
		case r.Action != action || r.Subject != subject:
			return operatorGrant{}, fmt.Errorf("%w: request %s is for %s on %q, not %s on %q", errAccessDenied, r.ID, r.Action, r.Subject, action, subject)
		case caseNumber != "" && caseNumber != r.CaseNumber, purpose != "" && purpose != r.Purpose:
			return operatorGrant{}, fmt.Errorf("%w: request %s is for case %s (%s); leave out --case and --purpose or give the same", errAccessDenied, r.ID, r.CaseNumber, r.Purpose)
		}
		if s := requestState(r, now); s != "pending" {
			return operatorGrant{}, fmt.Errorf("%w: request %s is %s", errAccessDenied, r.ID, s)
		}
		caseNumber, purpose = r.CaseNumber, r.Purpose
		details["request"] = r.ID
		req = &r
	}

	e, err := accessEngine(ctx, cfg, log)
	if err != nil {
		return operatorGrant{}, err
	}
	defer e.Close()
	in := gate.AccessInput{Operator: gate.Operator{ID: op.ID, Roles: op.Roles}, Action: action, Subject: subject,
		CaseNumber: caseNumber, Purpose: purpose, Now: now}
	if req != nil {
		in.Approvals = approvalsOf(*req)
	}
	// A legal hold on the subject (the policy refuses erasure under one),
	// from the store when it keeps holds (archive.HoldChecker).
	if hc, ok := st.(archive.HoldChecker); ok && subject != "" {
		held, err := hc.Held(ctx, subject)
		if err != nil {
			return operatorGrant{}, fmt.Errorf("access: legal hold of %s: %w", subject, err)
		}
		in.SubjectLegalHold = held
	}
	d := e.Access(ctx, in)
	grant := operatorGrant{Operator: in.Operator, Decision: d, CaseNumber: caseNumber, Purpose: purpose}
	if d.Allow {
		if req != nil {
			if err := ops.UseAccessRequest(ctx, req.ID, now); errors.Is(err, storage.ErrUsed) {
				return operatorGrant{}, fmt.Errorf("%w: request %s was used already", errAccessDenied, req.ID)
			} else if err != nil {
				return operatorGrant{}, err
			}
			grant.Request = req.ID
			var approvers []string
			for _, a := range in.Approvals {
				approvers = append(approvers, a.By)
			}
			if _, err := log.Append(ctx, audit.Entry{Actor: op.ID, Action: "access.request.use", Subject: subject, Reason: purpose,
				PolicyRevision: d.Revision, Details: map[string]string{"action": action, "case_number": caseNumber,
					"requester": req.Requester, "approvers": strings.Join(approvers, ","), "decision_id": d.ID}}); err != nil {
				return operatorGrant{}, err
			}
		}
		if cfg.WorksCouncil.NotifySubject && subject != "" && subject != op.ID && (action == gate.AccessArchiveView || action == gate.AccessArchiveExport) {
			if err := notifySubject(ctx, cfg, st, grant, action, subject, in.Approvals, log); err != nil {
				return operatorGrant{}, fmt.Errorf("access: the person concerned could not be notified (works_council.notify_subject), so the access does not go ahead: %w", err)
			}
		}
		return grant, nil
	}
	if d.Reason != "approval_required" {
		msg := d.Message
		if msg == "" {
			msg = "the access policy does not allow this"
		}
		return operatorGrant{}, fmt.Errorf("%w: %s (%s, decision %s)", errAccessDenied, msg, d.Reason, d.ID)
	}
	are := &approvalRequiredError{Action: action, Subject: subject, ApprovalsNeeded: d.ApprovalsNeeded, RolesNeeded: d.RolesNeeded}
	if req != nil {
		are.RequestID = req.ID
		return operatorGrant{}, are
	}
	r := storage.AccessRequest{ID: newRequestID(), Action: action, Subject: subject, CaseNumber: caseNumber, Purpose: purpose,
		Requester: op.ID, Created: now, Expires: now.Add(cfg.Operators.RequestTTL)}
	if err := ops.CreateAccessRequest(ctx, r); err != nil {
		return operatorGrant{}, err
	}
	if _, err := log.Append(ctx, audit.Entry{Actor: op.ID, Action: "access.request", Subject: subject, Reason: purpose, PolicyRevision: d.Revision,
		Details: map[string]string{"request": r.ID, "action": action, "case_number": caseNumber, "requester": op.ID,
			"approvals_needed": strconv.Itoa(d.ApprovalsNeeded), "roles_needed": strings.Join(d.RolesNeeded, ","),
			"expires": r.Expires.UTC().Format(time.RFC3339), "decision_id": d.ID}}); err != nil {
		return operatorGrant{}, err
	}
	are.RequestID, are.New = r.ID, true
	return operatorGrant{}, are
}

// notifySubject leaves the person whose data an operator was allowed to
// access a message from the server (an offline message, sealed like every
// other, delivered at their next login), and audits that it did.
func notifySubject(ctx context.Context, cfg *Config, st storage.Store, g operatorGrant, action, subject string, approvals []gate.Approval, log audit.Log) error {
	j, err := jid.Parse(subject)
	if err != nil {
		return fmt.Errorf("notify: %q: %w", subject, err)
	}
	domain := j.Domain()
	if !slices.Contains(cfg.Domains, domain) {
		return nil // not someone of this server
	}
	key, err := seal.LoadOrCreateKey(cfg.Seal.KeyFile)
	if err != nil {
		return err
	}
	sealer, err := seal.New(key)
	if err != nil {
		return err
	}
	var approvers []string
	for _, a := range approvals {
		approvers = append(approvers, a.By)
	}
	what := map[string]string{gate.AccessArchiveView: "read your message archive", gate.AccessArchiveExport: "export your data"}[action]
	text := fmt.Sprintf("Notice under the works agreement: the operator %s has been allowed to %s (case %s, purpose: %s).", g.Operator.ID, what, g.CaseNumber, g.Purpose)
	if len(approvers) > 0 {
		text += " Approved by: " + strings.Join(approvers, ", ") + "."
	}
	text += " Questions: ask your data protection officer or the works council."
	stamp := time.Now().UTC().Truncate(time.Microsecond)
	msg := stanza.New(stanza.NSClient, "message").Set("from", domain).Set("to", subject).Set("type", "normal").Set("id", "kontor-notice-"+newRequestID()[2:])
	msg.Append(stanza.New(stanza.NSClient, "subject").AppendText("Access to your data"))
	msg.Append(stanza.New(stanza.NSClient, "body").AppendText(text))
	msg.Append(stanza.New(stanza.NSDelay, "delay").Set("from", domain).Set("stamp", stamp.Format("2006-01-02T15:04:05.000Z")).AppendText("Offline Storage"))
	sealed, err := sealer.Seal(subject, offline.AssociatedData(domain, stamp), msg.AppendXML(nil, ""))
	if err != nil {
		return err
	}
	// No quota: a notice the works agreement promises must not be lost to
	// a full offline store.
	if _, err := st.StoreOffline(ctx, storage.OfflineMessage{Owner: subject, From: domain, Stamp: stamp, Sealed: sealed}, 0); err != nil {
		return err
	}
	_, err = log.Append(ctx, audit.Entry{Actor: g.Operator.ID, Action: "access.notify", Subject: subject,
		Details: map[string]string{"action": action, "case_number": g.CaseNumber, "request": g.Request}})
	return err
}

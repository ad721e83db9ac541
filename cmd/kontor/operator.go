package main

// The operator and request commands:
//
//	kontor operator add NAME --role R [--role R2] [--display-name TEXT]
//	kontor operator list
//	kontor operator disable|enable NAME
//	kontor operator token NAME        a new token (the old one stops working)
//	kontor operator recover NAME      break glass: a new admin token, locally (operator_recover.go)
//	kontor request list [--all]
//	kontor request show ID
//	kontor request approve|deny ID [--comment TEXT]
//
// See access.go for how operators are identified and how dual control works.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/gate"
	"kontor.im/kontor/core/storage"
)

func init() { featureCommands = append(featureCommands, operatorCmd, requestCmd) }

// operatorRoles are the roles Kontor knows; the access policy gives them
// their meaning.
var operatorRoles = []string{"admin", "dpo", "auditor", "works_council", "legal"}

var operatorName = regexp.MustCompile(`^[a-z][a-z0-9._-]{0,63}$`)

// withOperatorStore runs fn with the configuration and the store.
func withOperatorStore(flags *configFlags, fn func(ctx context.Context, cfg *Config, st storage.Store, ops storage.Operators, cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		cfg, err := loadConfig(*flags)
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		st, err := openStore(ctx, &cfg)
		if err != nil {
			return err
		}
		defer st.Close()
		ops, err := operatorStoreOf(st)
		if err != nil {
			return err
		}
		return fn(ctx, &cfg, st, ops, cmd, args)
	}
}

// authorizeManage lets an operator manage operators (operator.manage).
func authorizeManage(ctx context.Context, cfg *Config, st storage.Store, cmd *cobra.Command, subject string) (operatorGrant, error) {
	return authorizeAction(ctx, cfg, st, cmd, gate.AccessOperatorManage, subject)
}

func operatorCmd(flags *configFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "operator",
		Short: "Manage operators: the people who administer Kontor (admin, dpo, auditor, works_council, legal)",
		Long: `Operators run the commands that touch someone's data and call the admin API.
Each has roles and a secret token, shown once. While no operator exists, root
on this machine may add the first one (with the admin role); after that,
managing operators needs an admin (the access-policy action operator.manage).`,
	}
	var (
		roles       []string
		displayName string
	)
	add := &cobra.Command{
		Use:   "add NAME --role ROLE",
		Short: "Add an operator and print their token (shown once)",
		Args:  cobra.ExactArgs(1),
		RunE: withOperatorStore(flags, func(ctx context.Context, cfg *Config, st storage.Store, ops storage.Operators, cmd *cobra.Command, args []string) error {
			name := args[0]
			if !operatorName.MatchString(name) {
				return fmt.Errorf("%q is not an operator name (lowercase letters, digits, . _ -, starting with a letter)", name)
			}
			if len(roles) == 0 {
				return fmt.Errorf("give at least one --role (%s)", strings.Join(operatorRoles, ", "))
			}
			for _, r := range roles {
				if !slices.Contains(operatorRoles, r) {
					return fmt.Errorf("--role: %q is not one of %s", r, strings.Join(operatorRoles, ", "))
				}
			}
			existing, err := ops.ListOperators(ctx)
			if err != nil {
				return err
			}
			action := "operator.add"
			bootstrap := len(existing) == 0
			if bootstrap {
				// Bootstrap: the machine's root creates the first admin.
				uid, _, err := osIdentity()
				if err != nil {
					return err
				}
				if uid != 0 {
					return errors.New("there is no operator yet: the first one must be added by root on this machine")
				}
				if !slices.Contains(roles, "admin") {
					return errors.New("the first operator must have the admin role (--role admin), or nobody could add more")
				}
				action = "operator.bootstrap"
			} else if _, err := authorizeManage(ctx, cfg, st, cmd, name); err != nil {
				return err
			}
			token, hash := newOperatorToken()
			o := storage.Operator{ID: name, DisplayName: displayName, Roles: roles, TokenHash: hash}
			if bootstrap {
				// Atomic: of two bootstraps at once (two shells, two
				// machines on one PostgreSQL) only one gets in.
				if err := ops.CreateFirstOperator(ctx, o); errors.Is(err, storage.ErrExists) {
					return errors.New("another operator was added meanwhile (a concurrent bootstrap): add this one as an admin (--operator)")
				} else if err != nil {
					return err
				}
			} else if err := ops.CreateOperator(ctx, o); err != nil {
				if errors.Is(err, storage.ErrExists) {
					return fmt.Errorf("operator %s already exists", name)
				}
				return err
			}
			if err := auditFromCLI(ctx, cfg, st, cmd, audit.Entry{Action: action, Subject: name,
				Details: map[string]string{"roles": strings.Join(roles, ","), "display_name": displayName}}); err != nil {
				return fmt.Errorf("operator %s was added, but the audit entry could not be written: %w", name, err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "operator %s added (roles: %s)\n", name, strings.Join(roles, ", "))
			fmt.Fprintf(out, "token (shown once; give it to %s over a safe channel):\n%s\n", name, token)
			return nil
		}),
	}
	add.Flags().StringSliceVar(&roles, "role", nil, "a role: "+strings.Join(operatorRoles, ", ")+" (repeatable)")
	add.Flags().StringVar(&displayName, "display-name", "", "the person's name as shown in lists")
	addOperatorFlags(add)

	list := &cobra.Command{
		Use:   "list",
		Short: "List operators, their roles and whether they are disabled",
		Args:  cobra.NoArgs,
		RunE: withOperatorStore(flags, func(ctx context.Context, cfg *Config, st storage.Store, ops storage.Operators, cmd *cobra.Command, _ []string) error {
			all, err := ops.ListOperators(ctx)
			if err != nil {
				return err
			}
			if len(all) > 0 {
				if _, err := authenticateOperator(ctx, cfg, st, cmd); err != nil {
					return err
				}
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tDISPLAY NAME\tROLES\tSTATE\tTOKEN\tCREATED (UTC)")
			for _, o := range all {
				state, tok := "active", "set"
				if o.Disabled {
					state = "disabled"
				}
				if o.TokenHash == nil {
					tok = "none"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", o.ID, auditDash(auditText(o.DisplayName)), strings.Join(o.Roles, ","), state, tok, o.Created.Format("2006-01-02 15:04"))
			}
			return tw.Flush()
		}),
	}
	addOperatorFlags(list)

	setDisabled := func(disabled bool) *cobra.Command {
		use, action := "enable NAME", "operator.enable"
		if disabled {
			use, action = "disable NAME", "operator.disable"
		}
		c := &cobra.Command{
			Use:   use,
			Short: strings.ToUpper(use[:1]) + use[1:strings.Index(use, " ")] + " an operator",
			Args:  cobra.ExactArgs(1),
			RunE: withOperatorStore(flags, func(ctx context.Context, cfg *Config, st storage.Store, ops storage.Operators, cmd *cobra.Command, args []string) error {
				name := args[0]
				g, err := authorizeManage(ctx, cfg, st, cmd, name)
				if err != nil {
					return err
				}
				if disabled {
					if name == g.Operator.ID {
						return errors.New("an operator cannot disable themselves")
					}
					if err := keepsAnAdmin(ctx, ops, name); err != nil {
						return err
					}
				}
				if err := ops.SetOperatorDisabled(ctx, name, disabled); errors.Is(err, storage.ErrNotFound) {
					return fmt.Errorf("there is no operator %s", name)
				} else if err != nil {
					return err
				}
				if err := auditFromCLI(ctx, cfg, st, cmd, audit.Entry{Action: action, Subject: name}); err != nil {
					return fmt.Errorf("the change was made, but its audit entry could not be written: %w", err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "operator %s %sd\n", name, use[:strings.Index(use, " ")])
				return nil
			}),
		}
		addOperatorFlags(c)
		return c
	}

	token := &cobra.Command{
		Use:   "token NAME",
		Short: "Give an operator a new token (shown once); the old one stops working",
		Long: `An admin may renew anyone's token (operator.manage); an operator may renew
their own, authenticating with the old one.`,
		Args: cobra.ExactArgs(1),
		RunE: withOperatorStore(flags, func(ctx context.Context, cfg *Config, st storage.Store, ops storage.Operators, cmd *cobra.Command, args []string) error {
			name := args[0]
			op, err := authenticateOperator(ctx, cfg, st, cmd)
			if err != nil {
				return err
			}
			if op.ID != name {
				if _, err := authorizeManage(ctx, cfg, st, cmd, name); err != nil {
					return err
				}
			}
			tok, hash := newOperatorToken()
			if err := ops.SetOperatorToken(ctx, name, hash); errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("there is no operator %s", name)
			} else if err != nil {
				return err
			}
			if err := auditFromCLI(ctx, cfg, st, cmd, audit.Entry{Action: "operator.token", Subject: name}); err != nil {
				return fmt.Errorf("the token was changed, but its audit entry could not be written: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "new token for %s (shown once):\n%s\n", name, tok)
			return nil
		}),
	}
	addOperatorFlags(token)

	cmd.AddCommand(add, list, setDisabled(true), setDisabled(false), token, operatorRecoverCmd(flags))
	return cmd
}

// keepsAnAdmin refuses to disable the last enabled admin.
func keepsAnAdmin(ctx context.Context, ops storage.Operators, disabling string) error {
	all, err := ops.ListOperators(ctx)
	if err != nil {
		return err
	}
	for _, o := range all {
		if o.ID != disabling && !o.Disabled && slices.Contains(o.Roles, "admin") {
			return nil
		}
	}
	return fmt.Errorf("%s is the last enabled admin: add or enable another admin first", disabling)
}

func requestCmd(flags *configFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "request",
		Short: "Access requests (dual control): list, show, approve, deny",
		Long: `When the access policy wants further operators to consent to an action (for
example two approvers, one of them from the works council, before anyone
looks into someone else's archive), the command records an access request
and stops. Other operators approve or deny it here; the requester then runs
the command again with --request ID. A request runs once, and expires after
operators.request_ttl; each approval counts for as long as the policy says
(72 hours in the default policy). Nobody can approve their own request.`,
	}
	var all bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List pending access requests (--all: also used, denied and expired ones)",
		Args:  cobra.NoArgs,
		RunE: withOperatorStore(flags, func(ctx context.Context, cfg *Config, st storage.Store, ops storage.Operators, cmd *cobra.Command, _ []string) error {
			if _, err := authenticateOperator(ctx, cfg, st, cmd); err != nil {
				return err
			}
			reqs, err := ops.AccessRequests(ctx, time.Time{}, 500)
			if err != nil {
				return err
			}
			now := time.Now()
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATE\tACTION\tSUBJECT\tCASE\tREQUESTER\tAPPROVED BY\tEXPIRES (UTC)")
			for _, r := range reqs {
				state := requestState(r, now)
				if !all && state != "pending" {
					continue
				}
				var by []string
				for _, a := range approvalsOf(r) {
					by = append(by, a.By)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, state, r.Action, auditDash(r.Subject), auditText(r.CaseNumber),
					r.Requester, auditDash(strings.Join(by, ",")), r.Expires.Format("2006-01-02 15:04"))
			}
			return tw.Flush()
		}),
	}
	list.Flags().BoolVar(&all, "all", false, "also used, denied and expired requests")
	addOperatorFlags(list)

	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show one access request with its approvals and denials",
		Args:  cobra.ExactArgs(1),
		RunE: withOperatorStore(flags, func(ctx context.Context, cfg *Config, st storage.Store, ops storage.Operators, cmd *cobra.Command, args []string) error {
			if _, err := authenticateOperator(ctx, cfg, st, cmd); err != nil {
				return err
			}
			r, err := ops.AccessRequest(ctx, args[0])
			if errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("there is no access request %s", args[0])
			} else if err != nil {
				return err
			}
			writeRequest(cmd.OutOrStdout(), r, time.Now())
			return nil
		}),
	}
	addOperatorFlags(show)

	var comment string
	vote := func(approve bool) *cobra.Command {
		use, action := "deny ID", "access.request.deny"
		if approve {
			use, action = "approve ID", "access.request.approve"
		}
		c := &cobra.Command{
			Use:   use,
			Short: map[bool]string{true: "Approve an access request (you must not be its requester)", false: "Deny an access request: it can no longer run"}[approve],
			Args:  cobra.ExactArgs(1),
			RunE: withOperatorStore(flags, func(ctx context.Context, cfg *Config, st storage.Store, ops storage.Operators, cmd *cobra.Command, args []string) error {
				op, err := authenticateOperator(ctx, cfg, st, cmd)
				if err != nil {
					return err
				}
				r, err := ops.AccessRequest(ctx, args[0])
				if errors.Is(err, storage.ErrNotFound) {
					return fmt.Errorf("there is no access request %s", args[0])
				} else if err != nil {
					return err
				}
				now := time.Now()
				if r.Requester == op.ID {
					return fmt.Errorf("%w: %s requested %s and cannot approve or deny it: another operator must", errAccessDenied, op.ID, r.ID)
				}
				if s := requestState(r, now); s != "pending" {
					return fmt.Errorf("request %s is %s", r.ID, s)
				}
				if approve {
					if err := approvalCounts(ctx, cfg, ops, r, op, now); err != nil {
						return err
					}
				}
				err = ops.VoteAccessRequest(ctx, r.ID, storage.RequestVote{By: op.ID, Roles: op.Roles, Approve: approve, Comment: comment, At: now})
				switch {
				case errors.Is(err, storage.ErrExists):
					return fmt.Errorf("%s has already answered request %s", op.ID, r.ID)
				case errors.Is(err, storage.ErrUsed):
					return fmt.Errorf("request %s was used already", r.ID)
				case err != nil:
					return err
				}
				if err := auditFromCLI(ctx, cfg, st, cmd, audit.Entry{Action: action, Subject: r.Subject, Reason: comment,
					Details: map[string]string{"request": r.ID, "action": r.Action, "case_number": r.CaseNumber, "requester": r.Requester,
						"approver_roles": strings.Join(op.Roles, ",")}}); err != nil {
					return fmt.Errorf("the answer was recorded, but its audit entry could not be written: %w", err)
				}
				r, err = ops.AccessRequest(ctx, r.ID)
				if err != nil {
					return err
				}
				writeRequest(cmd.OutOrStdout(), r, now)
				return nil
			}),
		}
		c.Flags().StringVar(&comment, "comment", "", "a note for the audit trail")
		addOperatorFlags(c)
		return c
	}
	cmd.AddCommand(list, show, vote(true), vote(false))
	return cmd
}

// approvalCounts asks the access policy (a what-if question, not audited:
// the approval itself is) whether op's approval would bring request r any
// closer to being allowed, and refuses one that would not, so that nobody
// believes they approved when the policy ignores them (a wrong role, say).
func approvalCounts(ctx context.Context, cfg *Config, ops storage.Operators, r storage.AccessRequest, op cliOperator, now time.Time) error {
	requester, err := ops.Operator(ctx, r.Requester)
	if err != nil {
		return fmt.Errorf("request %s: its requester %s: %w", r.ID, r.Requester, err)
	}
	e, err := accessEngine(ctx, cfg, nil)
	if err != nil {
		return err
	}
	defer e.Close()
	in := gate.AccessInput{Operator: gate.Operator{ID: requester.ID, Roles: requester.Roles}, Action: r.Action, Subject: r.Subject,
		CaseNumber: r.CaseNumber, Purpose: r.Purpose, Approvals: approvalsOf(r), Now: now}
	before := e.Access(ctx, in)
	in.Approvals = append(in.Approvals, gate.Approval{By: op.ID, Roles: op.Roles, CaseNumber: r.CaseNumber, At: now})
	after := e.Access(ctx, in)
	if after.Allow || after.ApprovalsNeeded < before.ApprovalsNeeded || len(after.RolesNeeded) < len(before.RolesNeeded) {
		return nil
	}
	return fmt.Errorf("%w: the access policy would not count an approval by %s (roles %s) for request %s: it needs %d more approval(s)%s",
		errAccessDenied, op.ID, strings.Join(op.Roles, ","), r.ID, before.ApprovalsNeeded, rolesText(before.RolesNeeded))
}

func rolesText(roles []string) string {
	if len(roles) == 0 {
		return ""
	}
	return " with the roles " + strings.Join(roles, ", ")
}

func writeRequest(w io.Writer, r storage.AccessRequest, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "request\t%s\n", r.ID)
	fmt.Fprintf(tw, "state\t%s\n", requestState(r, now))
	fmt.Fprintf(tw, "action\t%s\n", r.Action)
	fmt.Fprintf(tw, "subject\t%s\n", auditDash(r.Subject))
	fmt.Fprintf(tw, "case\t%s\n", auditText(r.CaseNumber))
	fmt.Fprintf(tw, "purpose\t%s\n", auditText(r.Purpose))
	fmt.Fprintf(tw, "requester\t%s\n", r.Requester)
	fmt.Fprintf(tw, "created\t%s\n", r.Created.Format(time.RFC3339))
	fmt.Fprintf(tw, "expires\t%s\n", r.Expires.Format(time.RFC3339))
	if !r.Used.IsZero() {
		fmt.Fprintf(tw, "used\t%s\n", r.Used.Format(time.RFC3339))
	}
	for _, v := range r.Votes {
		verdict := "denied"
		if v.Approve {
			verdict = "approved"
		}
		note := ""
		if v.Comment != "" {
			note = ": " + auditText(v.Comment)
		}
		fmt.Fprintf(tw, "%s\tby %s (%s) at %s%s\n", verdict, v.By, strings.Join(v.Roles, ","), v.At.Format(time.RFC3339), note)
	}
	tw.Flush()
}

// PENDING: replaced by the operators branch
package main

// A provisional authorizeAction so that this branch builds and its commands
// go through the access policy; the operators branch provides the real one
// (operator identities, approvals) and this file is deleted at merge.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"

	"github.com/spf13/cobra"

	"kontor.im/kontor/core/gate"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/policy"
)

type operatorGrant struct {
	Operator                     gate.Operator
	Decision                     gate.AccessDecision
	CaseNumber, Purpose, Request string
}

// addAccessFlags adds the flags authorizeAction reads.
func addAccessFlags(cmd *cobra.Command) {
	cmd.Flags().StringSlice("role", nil, "the operator's roles (dpo, auditor, admin, legal, works_council); provisional until operator identities exist")
	cmd.Flags().String("case", "", "case number")
	cmd.Flags().String("purpose", "", "purpose of the access")
	cmd.Flags().String("request", "", "request id")
}

// authorizeAction asks the access policy whether the operator running cmd
// may run action on subject; the decision is written to the audit trail.
func authorizeAction(ctx context.Context, cfg *Config, st storage.Store, cmd *cobra.Command, action, subject string) (operatorGrant, error) {
	var g operatorGrant
	roles, _ := cmd.Flags().GetStringSlice("role")
	g.CaseNumber, _ = cmd.Flags().GetString("case")
	g.Purpose, _ = cmd.Flags().GetString("purpose")
	g.Request, _ = cmd.Flags().GetString("request")
	g.Operator = gate.Operator{ID: osActor(os.Getenv, user.Current), Roles: roles}
	tr, err := newServerTrail(cfg, st, newLogger(cfg, cmd.ErrOrStderr()))
	if err != nil {
		return g, err
	}
	defer tr.Close(context.WithoutCancel(ctx))
	opts, err := cfg.policyOptions()
	if err != nil {
		return g, err
	}
	opts.Audit, opts.Logger = tr, newLogger(cfg, cmd.ErrOrStderr())
	eng, err := policy.New(ctx, opts)
	if err != nil {
		return g, err
	}
	defer eng.Close()
	g.Decision = eng.Access(ctx, gate.AccessInput{Operator: g.Operator, Action: action, Subject: subject,
		CaseNumber: g.CaseNumber, Purpose: g.Purpose})
	if !g.Decision.Allow {
		msg := g.Decision.Message
		if msg == "" {
			msg = g.Decision.Reason
		}
		if g.Decision.Err != nil {
			return g, fmt.Errorf("access: %s is refused: %s: %w", action, msg, g.Decision.Err)
		}
		return g, errors.New("access: " + action + " is refused: " + msg)
	}
	return g, nil
}

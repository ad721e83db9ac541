package main

// kontor gdpr request add|done: data subject requests (Art. 15-22) as the
// DPO receives and completes them. Each is an audit entry (gdpr.request,
// gdpr.request.done); exports and erasures that answer one carry its id
// (--dsr), and the DPO's "requests" report shows each request with its
// deadline (one month, Art. 12(3)).

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/gate"
)

func init() { gdprMoreCommands = append(gdprMoreCommands, gdprRequestCmd) }

// dsrTypes are the kinds of data subject request.
var dsrTypes = []string{"access", "portability", "erasure", "rectification", "restriction", "objection"}

func gdprRequestCmd(flags *configFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "request", Short: "Record data subject requests and their completion (for the requests report)"}
	var typ, id, note string
	add := &cobra.Command{
		Use:   "add USER",
		Short: "Record a data subject request received today",
		Long: "Records that USER asked for access, portability, erasure, rectification, restriction or objection\n" +
			"(--type). The answer is due within one month (Art. 12(3)); give the request's id to the export or\n" +
			"erasure that answers it (--dsr ID), or mark it done with `kontor gdpr request done ID`.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			subject, err := bareJID(args[0])
			if err != nil {
				return err
			}
			if !slices.Contains(dsrTypes, typ) {
				return fmt.Errorf("--type must be one of %s", strings.Join(dsrTypes, ", "))
			}
			if id == "" {
				var b [4]byte
				_, _ = rand.Read(b[:])
				id = "DSR-" + time.Now().UTC().Format("20060102") + "-" + hex.EncodeToString(b[:])
			}
			return recordDSR(cmd, flags, audit.Entry{Action: "gdpr.request", Subject: subject, Reason: note,
				Details: map[string]string{"request": id, "type": typ}}, func() string {
				return fmt.Sprintf("request %s (%s) of %s recorded; due by %s (Art. 12(3))\n", id, typ, subject,
					time.Now().AddDate(0, 1, 0).Format(time.DateOnly))
			})
		},
	}
	add.Flags().StringVar(&typ, "type", "access", "the kind: "+strings.Join(dsrTypes, ", "))
	add.Flags().StringVar(&id, "id", "", "the request's id (default: a new DSR-DATE-XXXX)")
	add.Flags().StringVar(&note, "note", "", "how it was received, without personal data beyond the address")
	addAccessFlags(add)
	done := &cobra.Command{
		Use:   "done ID USER",
		Short: "Record that a request was completed by other means than an export or erasure",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			subject, err := bareJID(args[1])
			if err != nil {
				return err
			}
			return recordDSR(cmd, flags, audit.Entry{Action: "gdpr.request.done", Subject: subject, Reason: note,
				Details: map[string]string{"request": args[0]}}, func() string {
				return fmt.Sprintf("request %s of %s done\n", args[0], subject)
			})
		},
	}
	done.Flags().StringVar(&note, "note", "", "what was done (a rectification, an objection, a refusal with reasons)")
	addAccessFlags(done)
	cmd.AddCommand(add, done)
	return cmd
}

// recordDSR asks the access policy (dsr.record) and appends e for the
// operator.
func recordDSR(cmd *cobra.Command, flags *configFlags, e audit.Entry, said func() string) error {
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
	g, err := authorizeAction(ctx, &cfg, st, cmd, gate.AccessDSRRecord, e.Subject)
	if err != nil {
		return err
	}
	e.Actor = g.Operator.ID
	if err := auditAs(context.WithoutCancel(ctx), &cfg, st, cmd, e); err != nil {
		return err
	}
	fmt.Fprint(cmd.OutOrStdout(), said())
	return nil
}

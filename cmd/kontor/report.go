package main

// The DPO reports (package reports):
//
//	kontor report list                      the reports there are
//	kontor report NAME --format html|pdf|csv|json --from DATE --to DATE --out FILE
//
// A report reads the store and the audit trail and never writes to the
// message path; viewing one is an access the access policy decides
// (gate.AccessReportView), and that decision is audited.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"kontor.im/kontor/core/directory"
	"kontor.im/kontor/core/gate"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/ldapsync"
	"kontor.im/kontor/policy"
	"kontor.im/kontor/reports"
)

func init() { featureCommands = append(featureCommands, reportCmd) }

func reportCmd(flags *configFlags) *cobra.Command {
	var format, from, to, out string
	cmd := &cobra.Command{
		Use:   "report NAME",
		Short: "Reports for the data protection officer (run `kontor report list`)",
		Long: `Makes one report as HTML (self-contained, printable, with charts), PDF, CSV or
JSON. --from and --to bound the period (RFC 3339 times, dates in UTC, or ages
such as 30d; --to is exclusive; default: the last 30 days). Viewing a report is
an access the policy decides (report.view); the decision is audited.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] == "list" {
				return writeReportList(cmd.OutOrStdout())
			}
			cfg, err := loadConfig(*flags)
			if err != nil {
				return err
			}
			now := time.Now()
			p := reports.Period{From: now.AddDate(0, 0, -30), To: now}
			if from != "" {
				if p.From, err = parseAuditTime(from, now); err != nil {
					return fmt.Errorf("--from: %w", err)
				}
			}
			if to != "" {
				if p.To, err = parseAuditTime(to, now); err != nil {
					return fmt.Errorf("--to: %w", err)
				}
			}
			if format == "" {
				format = strings.TrimPrefix(filepath.Ext(out), ".")
				if format == "" {
					format = "html"
				}
			}
			return runReport(cmd, &cfg, args[0], format, p, out)
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "html, pdf, csv or json (default: from --out's extension, else html)")
	cmd.Flags().StringVar(&from, "from", "", "start of the period (default: 30 days ago)")
	cmd.Flags().StringVar(&to, "to", "", "end of the period, exclusive (default: now)")
	cmd.Flags().StringVar(&out, "out", "", "file to write (default: standard output)")
	addAccessFlags(cmd)
	cmd.AddCommand(&cobra.Command{Use: "list", Short: "List the reports", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return writeReportList(cmd.OutOrStdout()) }})
	return cmd
}

func writeReportList(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, d := range reports.Definitions {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", d.Name, d.Title, d.Description)
	}
	return tw.Flush()
}

func runReport(cmd *cobra.Command, cfg *Config, name, format string, p reports.Period, out string) error {
	if !validReport(name) {
		return fmt.Errorf("report: unknown report %q (see `kontor report list`)", name)
	}
	if !contains(reports.Formats, format) {
		return fmt.Errorf("report: unknown format %q (html, pdf, csv or json)", format)
	}
	ctx := cmd.Context()
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	if _, err := authorizeAction(ctx, cfg, st, cmd, gate.AccessReportView, ""); err != nil {
		return err
	}
	src, err := reportSource(ctx, cmd, cfg, st)
	if err != nil {
		return err
	}
	r, err := reports.Build(ctx, name, src, p)
	if err != nil {
		return err
	}
	var w io.Writer = cmd.OutOrStdout()
	if out != "" {
		f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
		if err := reports.Render(w, r, format); err != nil {
			return err
		}
		return f.Close()
	}
	return reports.Render(w, r, format)
}

func validReport(name string) bool {
	for _, d := range reports.Definitions {
		if d.Name == name {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// serverVersion is the module version and VCS revision of this binary.
func serverVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v
}

// configRevision is a short hash of the configuration in effect (after
// defaults, file and environment), so a report names what it was made from
// without printing settings such as DSNs.
func configRevision(cfg *Config) string {
	b, err := json.Marshal(cfg)
	if err != nil {
		return "unknown"
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:6])
}

// reportSource gathers what the reports read: the store, and a
// description of the processing from the configuration and the policy in
// force. The policy engine built here has no audit trail and no watcher:
// its probe decisions are not records of anything.
func reportSource(ctx context.Context, cmd *cobra.Command, cfg *Config, st storage.Store) (*reports.Source, error) {
	rs, ok := st.(storage.ReportStore)
	if !ok {
		return nil, fmt.Errorf("report: the %s store has no reporting queries", st.Backend())
	}
	as, err := auditStoreOf(st)
	if err != nil {
		return nil, err
	}
	opts, err := cfg.policyOptions()
	if err != nil {
		return nil, err
	}
	opts.Logger = newLogger(cfg, io.Discard)
	eng, err := policy.New(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	src := &reports.Source{Store: rs, Audit: as, Backend: st.Backend(), ServerVersion: serverVersion(),
		ConfigRevision: configRevision(cfg), PolicyRevision: eng.Revision()}
	src.Processing = processingOf(ctx, cfg, eng)
	if cfg.LDAP.Enabled {
		if dep, err := departments(ctx, cmd, cfg, st); err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "warning: departments unknown: %v\n", err)
		} else {
			src.Department = dep
		}
	}
	return src, nil
}

// departments reads the directory as the last sync stored it (no directory
// access).
func departments(ctx context.Context, cmd *cobra.Command, cfg *Config, st storage.Store) (func(string) string, error) {
	ls, err := ldapStoreOf(st)
	if err != nil {
		return nil, err
	}
	log := newLogger(cfg, cmd.ErrOrStderr())
	client, err := ldapsync.NewClient(cfg.LDAP, log)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	sy, err := ldapsync.NewSyncer(ldapsync.Options{Config: cfg.LDAP, Domain: cfg.ldapDomain(), Store: ls, Client: client, Log: log})
	if err != nil {
		return nil, err
	}
	snap, err := sy.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	return func(jid string) string { return snap.People[jid].Department }, nil
}

// processingOf describes the processing for the Art. 30 record: the fixed
// nature of a messaging service, the features the configuration enables,
// and what the policy in force decides (asked from the engine).
func processingOf(ctx context.Context, cfg *Config, eng *policy.Engine) reports.Processing {
	p := reports.Processing{Controller: "the operator of " + strings.Join(cfg.Domains, ", "), Domains: cfg.Domains}
	p.Purposes = []string{"Business communication between employees, and with business partners, by instant messaging"}
	p.DataCategories = []string{"Account data: address, credentials as SCRAM verifiers (no passwords), account state",
		"Contact lists, presence and profile data (vCard, avatars)", "Message content and its metadata (sender, recipient, time)"}
	p.SubjectCategories = []string{"Employees and other account holders", "Their contacts, including business partners outside the company"}
	p.Recipients = []string{"The recipients of each message, chosen by the sender",
		"Operators with a role the access policy requires (dpo, admin, auditor, legal), under dual control where it requires it"}
	if cfg.Archive.Enabled {
		p.Purposes = append(p.Purposes, "Archiving of business correspondence to meet retention duties (HGB § 257, AO § 147)")
		p.Recipients = append(p.Recipients, "Authorities and courts on a legal request, by an export under dual control")
	}
	if cfg.LDAP.Enabled {
		p.Purposes = append(p.Purposes, "Provisioning and deprovisioning of accounts from the company directory")
		p.DataCategories = append(p.DataCategories, "Directory attributes: name, department, company, groups")
	}
	p.Purposes = append(p.Purposes, "Accountability (Art. 5(2)): an audit trail of administrative and data protection actions and of policy refusals")
	p.DataCategories = append(p.DataCategories, "Audit records: who did what to whose data, when and why (no message content)")

	// Retention: ask the policy about typical conversations.
	now := time.Now()
	probe := func(applies string, in gate.RetentionInput, people []directory.Person) {
		in.At, in.StanzaType = now, "chat"
		v, err := eng.Eval(ctx, policy.Input{Decision: "retention", Value: in, People: people}, now)
		if err != nil {
			return
		}
		d, ok := v.(gate.RetentionDecision)
		if !ok || !d.Allow || !d.Archive {
			return
		}
		for i, r := range p.Retention {
			if r.Class == d.Class {
				p.Retention[i].AppliesTo += "; " + applies
				return
			}
		}
		p.Retention = append(p.Retention, reports.RetentionRule{Class: d.Class, Period: d.Period, AppliesTo: applies})
	}
	dom := "example.invalid"
	if len(cfg.Domains) > 0 {
		dom = cfg.Domains[0]
	}
	a, b := gate.Party{JID: "a@" + dom, Local: true}, gate.Party{JID: "b@" + dom, Local: true}
	emp := func(j string, groups ...string) directory.Person {
		return directory.Person{JID: j, Kind: directory.Employee, Groups: groups}
	}
	probe("chats between employees", gate.RetentionInput{From: a, To: b}, []directory.Person{emp(a.JID), emp(b.JID)})
	probe("chats with a party outside the company", gate.RetentionInput{From: a, To: gate.Party{JID: "x@partner.invalid"}}, []directory.Person{emp(a.JID)})
	for _, g := range cfg.Policy.BusinessLetterGroups {
		probe("chats of group "+g, gate.RetentionInput{From: a, To: b}, []directory.Person{emp(a.JID, g), emp(b.JID)})
	}
	for _, g := range cfg.Policy.AccountingGroups {
		probe("chats of group "+g, gate.RetentionInput{From: a, To: b}, []directory.Person{emp(a.JID, g), emp(b.JID)})
	}

	// Dual control: what each access action requires.
	roles := []string{"dpo", "admin", "auditor", "legal", "works_council"}
	for _, act := range []string{gate.AccessArchiveView, gate.AccessArchiveExport, gate.AccessArchiveErase,
		gate.AccessLegalHoldSet, gate.AccessLegalHoldRelease, gate.AccessReportView, gate.AccessArchiveImport, gate.AccessErasureReinstate} {
		rule := reports.AccessRule{Action: act}
		for _, r := range roles {
			d := eng.Access(ctx, gate.AccessInput{Operator: gate.Operator{ID: "probe", Roles: []string{r}}, Action: act,
				Subject: "someone@" + dom, CaseNumber: "probe", Purpose: "probe", Now: now})
			if d.Reason != "role_missing" && d.Reason != "unknown_action" {
				rule.Roles = append(rule.Roles, r)
				if d.ApprovalsNeeded > rule.ApprovalsNeeded {
					rule.ApprovalsNeeded = d.ApprovalsNeeded
				}
				if len(d.RolesNeeded) > len(rule.ApproverRoles) {
					rule.ApproverRoles = d.RolesNeeded
				}
			}
		}
		p.DualControl = append(p.DualControl, rule)
	}

	// Technical and organisational measures actually configured.
	tlsv := "TLS 1.2 and 1.3 (older versions refused)"
	p.Measures = append(p.Measures, reports.Fact{Label: "Transport encryption (client connections)", Value: tlsv})
	if cfg.Archive.Enabled {
		kp := "key file " + cfg.Archive.KEKFile
		if cfg.Archive.KEKEnv != "" {
			kp = "environment variable " + cfg.Archive.KEKEnv
		}
		p.Measures = append(p.Measures,
			reports.Fact{Label: "Encryption at rest (archive)", Value: "AES-256-GCM, a data key per person, month and retention class, wrapped by a key-encryption key"},
			reports.Fact{Label: "Key provider", Value: kp + " (outside the data directory)"},
			reports.Fact{Label: "Erasure", Value: "crypto-shredding: data keys destroyed first, then rows deleted"},
			reports.Fact{Label: "Default retention when the policy cannot decide", Value: fmt.Sprintf("%d days", cfg.Archive.DefaultRetentionDays)})
	} else {
		p.Measures = append(p.Measures, reports.Fact{Label: "Encryption at rest (archive)", Value: "archive disabled: no messages are archived"})
	}
	p.Measures = append(p.Measures,
		reports.Fact{Label: "Offline messages at rest", Value: "sealed with the server's sealing key (AES-256-GCM)"},
		reports.Fact{Label: "Passwords", Value: "stored only as SCRAM verifiers (SHA-1/SHA-256)"},
		reports.Fact{Label: "Dual control", Value: "access policy decides every access to archived data; approvals by other operators as required above"},
		reports.Fact{Label: "Audit trail", Value: "append-only, SHA-256 hash chain, saved head in " + cfg.Audit.anchorPath(cfg.DataDir)},
		reports.Fact{Label: "Storage", Value: cfg.Storage.Backend},
		reports.Fact{Label: "Policy", Value: policySource(cfg)})
	return p
}

func policySource(cfg *Config) string {
	if cfg.Policy.Dir != "" {
		return "default bundle extended by " + cfg.Policy.Dir
	}
	return "default bundle"
}

package main

// kontor catalogue: the list of every feature that could be used to
// monitor employees, for the works agreement (BetrVG § 87(1) no. 6). It is
// generated from the configuration in force and from the access policy
// itself (who may ask, whether a case and purpose are needed, how many
// approvers with which roles), so that it cannot drift from what the
// server does.

import (
	"context"
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"kontor.im/kontor/core/gate"
	"kontor.im/kontor/policy"
)

func init() { featureCommands = append(featureCommands, catalogueCmd) }

// catalogueFeature is one row of the catalogue.
type catalogueFeature struct {
	Name        string
	Description string
	On          bool
	Switch      string // the configuration key that turns it off
	LegalBasis  string // a hint, not legal advice
	WhoMay      string // roles that may ask for it (from the policy)
	Safeguards  []string
}

// noLiveMirroring is stated in the catalogue and README: Kontor has no way
// to watch someone's conversations as they happen.
const noLiveMirroring = "Kontor has no covert live-mirroring mode: no setting, command or API lets anyone read " +
	"someone else's conversations as they happen or receive copies of them. Operators reach stored data only " +
	"through the audited actions above."

// buildCatalogue describes the features under cfg and the policy e.
func buildCatalogue(ctx context.Context, cfg *Config, e *policy.Engine) []catalogueFeature {
	wc := cfg.WorksCouncil
	notify := "the person concerned is not notified (works_council.notify_subject is false)"
	if wc.NotifySubject {
		notify = "the person concerned is notified by a message from the server after an approved access"
	}
	archiveSafeguards := []string{"encrypted at rest with per-person keys", "retention periods from the policy; expired messages are deleted",
		"erasure destroys the keys (crypto-shredding)"}
	features := []catalogueFeature{{
		Name:        "Message archive",
		Description: "Messages are stored encrypted so that users can read their history on every device (XEP-0313) and so that retention duties can be met.",
		On:          cfg.Archive.Enabled, Switch: "archive.enabled",
		LegalBasis: "Art. 6(1)(b) GDPR (the service users ask for); Art. 6(1)(c) with HGB § 257 / AO § 147 for business letters",
		WhoMay:     "each user, for their own messages", Safeguards: archiveSafeguards,
	}}
	access := []struct {
		action, subject, name, desc, key, basis string
		on                                      bool
	}{
		{gate.AccessArchiveView, "someone@example.invalid", "Looking into someone else's archive",
			"An operator reads the stored messages of another person, e.g. for a court order or an internal investigation.",
			"works_council.archive_view", "Art. 6(1)(c) or (f) GDPR, § 26 BDSG; only with a documented case", wc.ArchiveView},
		{gate.AccessArchiveExport, "someone@example.invalid", "Exporting someone else's data",
			"An operator exports another person's data: a GDPR access or portability request (Art. 15, 20), or eDiscovery for a lawsuit.",
			"works_council.archive_export", "Art. 15/20 GDPR (the person's own request); Art. 6(1)(c) or (f) GDPR for eDiscovery", wc.ArchiveExport},
		{gate.AccessReportView, "someone@example.invalid", "Reports about one person",
			"A report that names one person (their activity, their audit entries).",
			"works_council.person_reports", "Art. 6(1)(c) or (f) GDPR, § 26 BDSG", wc.PersonReports},
		{gate.AccessArchiveImport, "", "Importing another server's data",
			"An operator imports accounts, rosters, vCards, offline messages and archives from another XMPP server's XEP-0227 export when moving to Kontor (kontor gdpr import).",
			"", "Art. 6(1)(b) GDPR (continuing the service users have), Art. 20 GDPR (portability)", true},
		{gate.AccessErasureReinstate, "", "Re-admitting an erased person",
			"After an erasure, directory sync does not recreate the person's account; the data protection officer may allow it again (kontor gdpr reinstate).",
			"", "Art. 17 GDPR (the erasure stays effective until the person is legitimately back)", true},
		{gate.AccessReportView, "", "Reports without names",
			"Aggregate reports for the data protection officer (counts, retention, policy refusals).",
			"", "Art. 5(2), 24 GDPR (accountability)", true},
	}
	for _, a := range access {
		f := catalogueFeature{Name: a.name, Description: a.desc, On: a.on, Switch: a.key, LegalBasis: a.basis}
		f.WhoMay, f.Safeguards = policySafeguards(ctx, e, a.action, a.subject)
		f.Safeguards = append(f.Safeguards, "every decision, request, approval and use is in the tamper-evident audit trail")
		if a.subject != "" && a.action != gate.AccessReportView {
			f.Safeguards = append(f.Safeguards, notify)
		}
		features = append(features, f)
	}
	features = append(features, catalogueFeature{
		Name: "Break-glass recovery of admin access",
		Description: "When every admin's token is lost, kontor operator recover issues a new admin token. It bypasses the access policy, " +
			"so it is limited to the server machine and to those who could change the database directly anyway.",
		On: true, LegalBasis: "Art. 32 GDPR (restoring availability and access)",
		WhoMay:     "root or the owner of the data directory, on the server itself (never over the network)",
		Safeguards: []string{"a reason is required", "every use is in the tamper-evident audit trail as operator.break_glass, refusals as operator.break_glass_denied"},
	})
	return features
}

// policySafeguards asks the policy, without auditing (these are what-if
// questions), which roles may request action and what it needs then.
func policySafeguards(ctx context.Context, e *policy.Engine, action, subject string) (string, []string) {
	now := time.Now()
	var who []string
	for _, r := range operatorRoles {
		d := e.Access(ctx, gate.AccessInput{Operator: gate.Operator{ID: "catalogue", Roles: []string{r}}, Action: action, Subject: subject,
			CaseNumber: "C-1", Purpose: "catalogue", Now: now})
		if d.Allow || d.Reason == "approval_required" {
			who = append(who, r)
		}
	}
	if len(who) == 0 {
		return "nobody (the policy allows it to no role)", nil
	}
	op := gate.Operator{ID: "catalogue", Roles: who}
	var out []string
	if d := e.Access(ctx, gate.AccessInput{Operator: op, Action: action, Subject: subject, Now: now}); d.Reason == "case_required" {
		out = append(out, "a case number and a purpose are required")
	}
	d := e.Access(ctx, gate.AccessInput{Operator: op, Action: action, Subject: subject, CaseNumber: "C-1", Purpose: "catalogue", Now: now})
	if d.Reason == "approval_required" {
		s := fmt.Sprintf("dual control: %d approver(s) other than the requester", d.ApprovalsNeeded)
		if len(d.RolesNeeded) > 0 {
			s += ", covering the roles " + strings.Join(d.RolesNeeded, " and ")
		}
		out = append(out, s+"; approvals expire, each request runs once")
	} else if d.Allow {
		out = append(out, "no approval needed")
	}
	return strings.Join(who, ", "), out
}

func catalogueCmd(flags *configFlags) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "catalogue",
		Short: "Print the catalogue of monitoring-capable features for the works agreement (Markdown or HTML)",
		Long: `Lists every feature that could be used to monitor employees: whether it is on
in this configuration, the switch that turns it off, who may use it and what
safeguards apply (taken from the access policy in force), and a hint at the
legal basis. Attach it to the works agreement; regenerate it after changing
the configuration or the policy.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "md" && format != "html" {
				return fmt.Errorf("--format: %q is not md or html", format)
			}
			cfg, err := loadConfig(*flags)
			if err != nil {
				return err
			}
			e, err := accessEngine(cmd.Context(), &cfg, nil)
			if err != nil {
				return err
			}
			defer e.Close()
			features := buildCatalogue(cmd.Context(), &cfg, e)
			if format == "html" {
				return writeCatalogueHTML(cmd.OutOrStdout(), features, e.Status().Revision)
			}
			writeCatalogueMarkdown(cmd.OutOrStdout(), features, e.Status().Revision)
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "md", "md or html")
	return cmd
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

func mdCell(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ") }

func writeCatalogueMarkdown(w io.Writer, fs []catalogueFeature, revision string) {
	fmt.Fprintf(w, "# Kontor: features that could be used to monitor employees\n\n")
	fmt.Fprintf(w, "For the works agreement (BetrVG § 87(1) no. 6). Generated from this installation's configuration and access policy (revision %s). The legal bases are hints, not legal advice.\n\n", revision)
	fmt.Fprintln(w, "| Feature | Status | Switch | Who may use it | Safeguards | Legal basis (hint) |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, f := range fs {
		sw := "-"
		if f.Switch != "" {
			sw = "`" + f.Switch + "`"
		}
		fmt.Fprintf(w, "| **%s**: %s | %s | %s | %s | %s | %s |\n", mdCell(f.Name), mdCell(f.Description), onOff(f.On), sw,
			mdCell(f.WhoMay), mdCell(strings.Join(f.Safeguards, "; ")), mdCell(f.LegalBasis))
	}
	fmt.Fprintf(w, "\n%s\n", noLiveMirroring)
}

var catalogueHTML = template.Must(template.New("catalogue").Funcs(template.FuncMap{"onOff": onOff}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Kontor: features that could be used to monitor employees</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #999;padding:.4em;vertical-align:top;text-align:left}</style></head>
<body><h1>Kontor: features that could be used to monitor employees</h1>
<p>For the works agreement (BetrVG § 87(1) no. 6). Generated from this installation's configuration and access policy (revision {{.Revision}}). The legal bases are hints, not legal advice.</p>
<table><thead><tr><th>Feature</th><th>Status</th><th>Switch</th><th>Who may use it</th><th>Safeguards</th><th>Legal basis (hint)</th></tr></thead><tbody>
{{range .Features}}<tr><td><strong>{{.Name}}</strong><br>{{.Description}}</td><td>{{onOff .On}}</td><td>{{if .Switch}}<code>{{.Switch}}</code>{{else}}-{{end}}</td><td>{{.WhoMay}}</td><td><ul>{{range .Safeguards}}<li>{{.}}</li>{{end}}</ul></td><td>{{.LegalBasis}}</td></tr>
{{end}}</tbody></table>
<p>{{.NoLiveMirroring}}</p>
</body></html>
`))

func writeCatalogueHTML(w io.Writer, fs []catalogueFeature, revision string) error {
	return catalogueHTML.Execute(w, struct {
		Features        []catalogueFeature
		Revision        string
		NoLiveMirroring string
	}{fs, revision, noLiveMirroring})
}

package main

// The data protection officer's commands (the logic is in archive/gdpr):
//
//	kontor gdpr export USER --out FILE       everything about a person, in one zip (Art. 15, 20)
//	kontor gdpr erase USER [--dry-run]       erase a person (Art. 17), restricting what must stay (Art. 18)
//	kontor gdpr erase --resume [--replay]    complete unfinished erasures; after a restore, erase again
//	kontor gdpr import FILE                  import an export's XEP-0227 file into this Kontor
//	kontor gdpr restrictions [USER]          what erasures had to keep, and until when
//	kontor hold add|remove|list              legal holds
//	kontor ediscovery export ...             several people's archives as EML files
//
// Every command asks the access policy first (authorizeAction) and names
// the operator, case and request in its audit entries.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"kontor.im/kontor/archive"
	"kontor.im/kontor/archive/gdpr"
	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/gate"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/mod/offline"
	"kontor.im/kontor/core/storage"
)

func init() { featureCommands = append(featureCommands, gdprCmd, holdCmd) }

// GDPRConfig is the `gdpr:` section.
type GDPRConfig struct {
	// ErasureLog records every erasure outside the database (see
	// archive/gdpr), so that a restored backup can be erased again.
	ErasureLog string `mapstructure:"erasure_log"`
	// DutyClasses are the retention classes that carry a legal duty to
	// keep: an erasure restricts their unexpired messages.
	DutyClasses []string `mapstructure:"duty_classes"`
	Controller  string   `mapstructure:"controller"`
	DPOContact  string   `mapstructure:"dpo_contact"`
}

func (c GDPRConfig) validate(dataDir string) []string {
	var p []string
	if c.ErasureLog != "" && dataDir != "" && inside(c.ErasureLog, dataDir) {
		p = append(p, fmt.Sprintf("gdpr.erasure_log: %s is inside data_dir: a restored backup of the data directory would roll it back", c.ErasureLog))
	}
	return p
}

// erasureLogPath is the erasure log in use: configured, else beside the
// key-encryption key file, else in DATA_DIR/keys.
func (c *Config) erasureLogPath() string {
	switch {
	case c.GDPR.ErasureLog != "":
		return c.GDPR.ErasureLog
	case c.Archive.KEKFile != "":
		return filepath.Join(filepath.Dir(c.Archive.KEKFile), "erasures.log")
	}
	return filepath.Join(c.DataDir, "keys", "erasures.log")
}

// gdprEnv is what a gdpr command works with.
type gdprEnv struct {
	cfg    Config
	st     storage.Store
	tool   *gdpr.Tool
	grant  gdpr.Grant
	policy io.Closer // the policy engine behind tool.Retention, nil if none
}

// Close closes the policy engine and the store.
func (e *gdprEnv) Close() error {
	if e.policy != nil {
		e.policy.Close()
	}
	return e.st.Close()
}

// openGDPR loads the configuration, opens the store, asks the access
// policy for action on subject and builds the tool. The caller closes st.
func openGDPR(cmd *cobra.Command, flags *configFlags, action, subject string) (*gdprEnv, error) {
	cfg, err := loadConfig(*flags)
	if err != nil {
		return nil, err
	}
	ctx := cmd.Context()
	st, err := openStore(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	env := &gdprEnv{cfg: cfg, st: st}
	g, err := authorizeAction(ctx, &cfg, st, cmd, action, subject)
	if err != nil {
		st.Close()
		return nil, err
	}
	env.grant = gdpr.Grant{Operator: g.Operator.ID, CaseNumber: g.CaseNumber, Purpose: g.Purpose, Request: g.Request, DecisionID: g.Decision.ID}
	if f := cmd.Flags().Lookup("dsr"); f != nil {
		env.grant.DSR = f.Value.String()
	}
	if env.tool, env.policy, err = newGDPRTool(&env.cfg, st, cmd); err != nil {
		st.Close()
		return nil, err
	}
	return env, nil
}

func newGDPRTool(cfg *Config, st storage.Store, cmd *cobra.Command) (*gdpr.Tool, io.Closer, error) {
	gs, err := gdpr.AsStore(st)
	if err != nil {
		return nil, nil, err
	}
	t := &gdpr.Tool{
		Store: gs, Trail: audit.New(gs), DutyClasses: cfg.GDPR.DutyClasses, ErasureLog: cfg.erasureLogPath(),
		Progress: cmd.ErrOrStderr(), Logger: newLogger(cfg, cmd.ErrOrStderr()),
		Audit: func(ctx context.Context, e audit.Entry) error { return auditAs(ctx, cfg, st, cmd, e) },
		Info:  gdpr.Info{Controller: cfg.GDPR.Controller, DPOContact: cfg.GDPR.DPOContact},
	}
	t.TombstoneKeyFile = cfg.tombstoneKeyPath()
	if cfg.Archive.KEKFile != "" || cfg.Archive.KEKEnv != "" {
		keys, err := cfg.Archive.kekProvider()
		if err != nil {
			return nil, nil, err
		}
		a, err := archive.New(archiveOptions(cfg, gs, keys, t.Logger))
		if err != nil {
			return nil, nil, err
		}
		t.Archive = a
		sealer := a.OfflineOpener()
		t.OpenOffline = func(m storage.OfflineMessage) ([]byte, error) { return offline.OpenStored(sealer, m) }
	}
	files, err := uploadFiles(cfg, st, t.Archive)
	if err != nil {
		return nil, nil, err
	}
	if files != nil {
		t.Uploads = gdprUploads{files}
		t.UploadsSection = gdpr.UploadsSection(exportUploads{files})
	}
	pe, err := newPolicyEngine(cmd.Context(), cfg, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: the retention policy cannot be asked: %v\n", err)
		return t, nil, nil
	}
	t.Retention = retentionExplainer{d: pe}
	return t, pe, nil
}

// auditAs appends e for the operator e.Actor names (auditFromCLI names the
// operating system user), with the same details of where it ran.
func auditAs(ctx context.Context, cfg *Config, st storage.Store, cmd *cobra.Command, e audit.Entry) error {
	as, err := auditStoreOf(st)
	if err != nil {
		return err
	}
	tr := audit.New(as, audit.WithAnchor(cfg.Audit.anchorPath(cfg.DataDir), cfg.Audit.AnchorInterval))
	details := map[string]string{"command": cmd.CommandPath(), "os_user": osActor(os.Getenv, user.Current)}
	if h, err := os.Hostname(); err == nil && h != "" {
		details["host"] = h
	}
	for k, v := range e.Details {
		details[k] = v
	}
	e.Details = details
	_, err = tr.Append(ctx, e)
	if cerr := tr.Close(ctx); cerr != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v\n", cerr)
	}
	return err
}

// bareJID parses and normalises a user or room argument.
func bareJID(s string) (string, error) {
	j, err := jid.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%q: %w", s, err)
	}
	if j.Resource() != "" || j.Local() == "" {
		return "", fmt.Errorf("%q: want a bare JID (user@domain)", s)
	}
	return j.Bare().String(), nil
}

// retentionExplainer asks the retention policy about a person's typical
// messages: with a colleague and with someone outside.
type retentionExplainer struct{ d gate.Decider }

func (r retentionExplainer) ExplainRetention(ctx context.Context, owner string) ([]gdpr.RetentionRule, error) {
	j, err := jid.Parse(owner)
	if err != nil {
		return nil, err
	}
	situations := []struct {
		what string
		peer gate.Party
		out  bool
	}{
		{"chats with colleagues (sent)", gate.Party{JID: "colleague@" + j.Domain(), Local: true}, true},
		{"chats with colleagues (received)", gate.Party{JID: "colleague@" + j.Domain(), Local: true}, false},
		{"chats with people outside the company", gate.Party{JID: "someone@external.invalid"}, true},
	}
	var out []gdpr.RetentionRule
	now := time.Now()
	for _, s := range situations {
		me := gate.Party{JID: owner, Local: true}
		in := gate.RetentionInput{From: s.peer, To: me, StanzaType: "chat", At: now}
		if s.out {
			in.From, in.To = me, s.peer
		}
		d := r.d.Retention(ctx, in)
		out = append(out, gdpr.RetentionRule{Situation: s.what, Archive: d.Archive, Class: d.Class, Period: d.Period,
			Until: d.Until, Reason: d.Reason, DecisionID: d.ID, Revision: d.Revision})
	}
	return out, nil
}

func gdprCmd(flags *configFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "gdpr", Short: "Data subject requests: export (Art. 15, 20), erasure (Art. 17), import"}

	var (
		dryRun, resume, replay bool
		reason                 string
		batch                  int
	)
	erase := &cobra.Command{
		Use:   "erase USER",
		Short: "Erase a person: shred their archive keys, delete their data, restrict what must stay",
		Long: `Destroys the person's archive data keys first (crypto-shredding), then deletes
their archive, uploaded files, account, roster (and their entries in other users' rosters),
vCard, PEP, private XML, offline messages, blocklist, archiving preferences
and directory link. What a legal hold or a retention duty (gdpr.duty_classes)
keeps stays stored but restricted: the command says what and until when. The
erasure certificate goes to the audit trail. --dry-run only lists what would
go. An erasure that stopped half way is completed by running it again, or by
--resume, which completes every unfinished erasure in the erasure log;
--resume --replay erases again everyone the log names (after restoring a
backup).`,
		Args: func(cmd *cobra.Command, args []string) error {
			if resume {
				return cobra.NoArgs(cmd, args)
			}
			return cobra.ExactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			var subjects []string
			if resume {
				cfg, err := loadConfig(*flags)
				if err != nil {
					return err
				}
				recs, err := gdpr.ReadErasureLog(cfg.erasureLogPath())
				if err != nil {
					return err
				}
				for _, r := range recs {
					if replay || !r.Completed {
						subjects = append(subjects, r.Subject)
					}
				}
				if len(subjects) == 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "nothing to resume in %s\n", cfg.erasureLogPath())
					return nil
				}
			} else {
				s, err := bareJID(args[0])
				if err != nil {
					return err
				}
				subjects = []string{s}
			}
			for _, subject := range subjects {
				env, err := openGDPR(cmd, flags, gate.AccessArchiveErase, subject)
				if err != nil {
					return err
				}
				cert, err := env.tool.Erase(ctx, env.grant, subject, gdpr.EraseOptions{DryRun: dryRun, Reason: reason, Batch: batch})
				env.Close()
				printCertificate(cmd, cert)
				if err != nil {
					return err
				}
			}
			return nil
		},
	}
	erase.Flags().BoolVar(&dryRun, "dry-run", false, "only list what would be erased and what kept")
	erase.Flags().BoolVar(&resume, "resume", false, "complete every unfinished erasure of the erasure log")
	erase.Flags().BoolVar(&replay, "replay", false, "with --resume: erase again everyone the log names (after a restore)")
	erase.Flags().StringVar(&reason, "reason", "", "why (goes into the audit entry)")
	erase.Flags().IntVar(&batch, "batch", 5000, "archived messages deleted per transaction")
	addAccessFlags(erase)
	erase.Flags().String("dsr", "", "the data subject request this erasure answers (kontor gdpr request add)")

	restrictions := &cobra.Command{
		Use:   "restrictions [USER]",
		Short: "List what erasures had to keep (restricted, Art. 18), and until when",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			subject := ""
			if len(args) == 1 {
				var err error
				if subject, err = bareJID(args[0]); err != nil {
					return err
				}
			}
			env, err := openGDPR(cmd, flags, gate.AccessArchiveView, subject)
			if err != nil {
				return err
			}
			defer env.Close()
			rs, err := env.tool.Store.Restrictions(cmd.Context(), subject)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SUBJECT\tCATEGORY\tUNTIL\tCASE\tREASON")
			for _, r := range rs {
				until := "while the hold lasts"
				if !r.Until.IsZero() {
					until = r.Until.Format(time.DateOnly)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Subject, r.Category, until, auditDash(r.Case), auditDash(r.Reason))
			}
			return tw.Flush()
		},
	}
	addAccessFlags(restrictions)
	cmd.AddCommand(erase, restrictions)
	for _, c := range gdprMoreCommands {
		cmd.AddCommand(c(flags))
	}
	return cmd
}

// gdprMoreCommands are further `kontor gdpr` subcommands (export, import).
var gdprMoreCommands []func(*configFlags) *cobra.Command

func printCertificate(cmd *cobra.Command, c gdpr.Certificate) {
	out := cmd.OutOrStdout()
	switch {
	case c.DryRun:
		fmt.Fprintf(out, "dry run: erasing %s would do this:\n", c.Subject)
	case c.Job == "":
		return
	default:
		fmt.Fprintf(out, "erased %s (job %s):\n", c.Subject, c.Job)
	}
	for _, x := range c.Categories {
		fmt.Fprintf(out, "  %s\n", x)
	}
	if kept := c.Kept(); len(kept) > 0 && !c.DryRun {
		fmt.Fprintf(out, "kept, restricted to the data protection officer:\n")
		for _, x := range kept {
			fmt.Fprintf(out, "  %s\n", x)
		}
	}
}

func holdCmd(flags *configFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "hold", Short: "Legal holds: what they cover is exempt from purge and erasure until released"}
	var reason string
	add := &cobra.Command{
		Use:   "add JID --case CASE",
		Short: "Place a legal hold on a user or room",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			subject, err := bareJID(args[0])
			if err != nil {
				return err
			}
			caseRef, _ := cmd.Flags().GetString("case")
			if caseRef == "" {
				return errors.New("--case is required: the case reference of the hold")
			}
			env, err := openGDPR(cmd, flags, gate.AccessLegalHoldSet, subject)
			if err != nil {
				return err
			}
			defer env.Close()
			h, err := env.tool.AddHold(cmd.Context(), env.grant, subject, caseRef, reason)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "hold %d placed on %s (case %s)\n", h.ID, h.Subject, h.Case)
			return nil
		},
	}
	add.Flags().StringVar(&reason, "reason", "", "why")
	addAccessFlags(add)
	remove := &cobra.Command{
		Use:   "remove ID",
		Short: "Release a legal hold",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("%q is not a hold id (see `kontor hold list`)", args[0])
			}
			cfg, err := loadConfig(*flags)
			if err != nil {
				return err
			}
			st, err := openStore(cmd.Context(), &cfg)
			if err != nil {
				return err
			}
			gs, err := gdpr.AsStore(st)
			if err != nil {
				st.Close()
				return err
			}
			holds, err := gs.LegalHolds(cmd.Context(), "", false)
			st.Close()
			if err != nil {
				return err
			}
			subject := ""
			for _, h := range holds {
				if h.ID == id {
					subject = h.Subject
				}
			}
			if subject == "" {
				return fmt.Errorf("no active hold %d", id)
			}
			env, err := openGDPR(cmd, flags, gate.AccessLegalHoldRelease, subject)
			if err != nil {
				return err
			}
			defer env.Close()
			h, err := env.tool.ReleaseHold(cmd.Context(), env.grant, id, reason)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "hold %d on %s (case %s) released\n", h.ID, h.Subject, h.Case)
			return nil
		},
	}
	remove.Flags().StringVar(&reason, "reason", "", "why")
	addAccessFlags(remove)
	var all bool
	list := &cobra.Command{
		Use:   "list [JID]",
		Short: "List legal holds (active ones, or --all)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			subject := ""
			if len(args) == 1 {
				var err error
				if subject, err = bareJID(args[0]); err != nil {
					return err
				}
			}
			env, err := openGDPR(cmd, flags, gate.AccessArchiveView, subject)
			if err != nil {
				return err
			}
			defer env.Close()
			holds, err := env.tool.Store.LegalHolds(cmd.Context(), subject, all)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSUBJECT\tCASE\tBY\tSINCE\tRELEASED\tREASON")
			for _, h := range holds {
				rel := "-"
				if !h.Active() {
					rel = h.Released.Format(time.DateTime) + " by " + h.ReleasedBy
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", h.ID, h.Subject, auditText(h.Case), auditText(h.By),
					h.Created.Format(time.DateTime), rel, auditDash(auditText(strings.TrimSpace(h.Reason))))
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&all, "all", false, "also released holds")
	addAccessFlags(list)
	cmd.AddCommand(add, remove, list)
	return cmd
}

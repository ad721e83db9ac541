package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"kontor.im/kontor/archive"
	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/directory"
	"kontor.im/kontor/core/gate"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/policy"
)

func init() { featureCommands = append(featureCommands, policyCmd) }

// PolicyConfig is the "policy" section: the policy engine (package policy)
// with the embedded bundle, a directory that adds to or replaces its
// files, and the settings policies read as data.kontor.config.
type PolicyConfig struct {
	// Dir holds .rego files added to the embedded bundle (same name:
	// replaced); watched and reloaded on change. "" for the bundle alone.
	Dir string `mapstructure:"dir"`
	// Timezone is the calendar of "end of the year" retention periods.
	Timezone string `mapstructure:"timezone"`
	// UnknownLocalKind is what a local account without directory data
	// counts as: employee, guest or external. "" means employee, or guest
	// while in-band registration is open (strangers must not become
	// employees by signing up).
	UnknownLocalKind string `mapstructure:"unknown_local_kind"`
	// BusinessLetterGroups and AccountingGroups are directory groups (id
	// or name) whose chats are business letters or accounting records.
	BusinessLetterGroups []string `mapstructure:"business_letter_groups"`
	AccountingGroups     []string `mapstructure:"accounting_groups"`
	// DecisionTimeout bounds one decision; past it, the answer is no.
	DecisionTimeout time.Duration `mapstructure:"decision_timeout"`
	// CacheSize is the number of decision cache slots; 0 turns it off.
	CacheSize int `mapstructure:"cache_size"`
}

// unknownLocalKind resolves the default of unknown_local_kind.
func (c *Config) unknownLocalKind() directory.Kind {
	if c.Policy.UnknownLocalKind != "" {
		return directory.Kind(c.Policy.UnknownLocalKind)
	}
	if c.Registration.Open {
		return directory.Guest
	}
	return directory.Employee
}

// policyOptions builds the engine's options from the configuration.
func (c *Config) policyOptions() (policy.Options, error) {
	loc, err := time.LoadLocation(c.Policy.Timezone)
	if err != nil {
		return policy.Options{}, fmt.Errorf("policy.timezone: %w", err)
	}
	size := c.Policy.CacheSize
	if size == 0 {
		size = -1 // off
	}
	return policy.Options{
		Dir:       c.Policy.Dir,
		Location:  loc,
		Timeout:   c.Policy.DecisionTimeout,
		CacheSize: size,
		Settings: policy.Settings{
			UnknownLocalKind:     c.unknownLocalKind(),
			BusinessLetterGroups: c.Policy.BusinessLetterGroups,
			AccountingGroups:     c.Policy.AccountingGroups,
		},
	}, nil
}

// validate checks the section and compiles the policy, so that `kontor
// config check` and a start report a broken policy file with file and
// line.
func (p *PolicyConfig) validate(c *Config) []string {
	var out []string
	add := func(path, format string, args ...any) { out = append(out, path+": "+fmt.Sprintf(format, args...)) }
	if _, err := time.LoadLocation(p.Timezone); err != nil || p.Timezone == "" {
		add("policy.timezone", "%q is not a time zone (e.g. Europe/Berlin)", p.Timezone)
	}
	switch directory.Kind(p.UnknownLocalKind) {
	case "", directory.Employee, directory.Guest, directory.External:
	default:
		add("policy.unknown_local_kind", "%q is not employee, guest or external", p.UnknownLocalKind)
	}
	if p.DecisionTimeout < time.Millisecond || p.DecisionTimeout > 10*time.Second {
		add("policy.decision_timeout", "must be between 1ms and 10s")
	}
	if p.CacheSize < 0 || p.CacheSize > 1<<24 {
		add("policy.cache_size", "must be between 0 (off) and %d", 1<<24)
	}
	if p.Dir != "" {
		if st, err := os.Stat(p.Dir); err != nil || !st.IsDir() {
			add("policy.dir", "%q is not a directory", p.Dir)
		}
	}
	if len(out) > 0 {
		return out
	}
	opts, err := c.policyOptions()
	if err != nil {
		return []string{err.Error()}
	}
	e, err := policy.New(context.Background(), opts)
	var le *policy.LoadError
	switch {
	case errors.As(err, &le):
		for _, pr := range le.Problems {
			add("policy", "%s", pr)
		}
	case err != nil:
		add("policy", "%v", err)
	default:
		e.Close()
	}
	return out
}

// newPolicyEngine starts the engine for a server: the policy directory is
// watched, refusals and access decisions go to the audit trail.
func newPolicyEngine(ctx context.Context, cfg *Config, trail *audit.Trail, log *slog.Logger) (*policy.Engine, error) {
	opts, err := cfg.policyOptions()
	if err != nil {
		return nil, err
	}
	opts.Watch = opts.Dir != ""
	opts.Logger = log
	if trail != nil {
		opts.Audit = trail
	}
	e, err := policy.New(ctx, opts)
	if err != nil {
		return nil, err
	}
	st := e.Status()
	log.Info("policy loaded", "revision", st.Revision, "files", len(st.Files), "dir", cfg.Policy.Dir, "cached", st.Cached)
	return e, nil
}

// policyRetention lets the archive ask the retention decision. The
// archive keeps a message for a duration from its time, so the date the
// policy computed becomes that duration; a refusal (a failed decision) is
// an error, for which the archive uses its default class.
type policyRetention struct {
	d       gate.Decider
	isLocal func(domain string) bool
	// isRoom reports whether a domain is a multi-user chat service: an
	// archive owner there is a room, whose messages are decided as
	// groupchat messages of that room (nil: none is).
	isRoom func(domain string) bool
}

var _ archive.RetentionDecider = policyRetention{}

func (r policyRetention) Retention(ctx context.Context, in archive.RetentionInput) (archive.RetentionClass, error) {
	party := func(s string) gate.Party {
		j, err := jid.Parse(s)
		if err != nil {
			return gate.Party{JID: s}
		}
		return gate.Party{JID: j.Bare().String(), Local: r.isLocal(j.Domain())}
	}
	owner, with := party(in.Owner), party(in.With)
	q := gate.RetentionInput{From: with, To: owner, StanzaType: "chat", Encrypted: in.Encrypted, At: in.Time}
	if in.Outgoing {
		q.From, q.To = owner, with
	}
	if j, err := jid.Parse(in.Owner); err == nil && r.isRoom != nil && r.isRoom(j.Domain()) {
		// A room's archive: the room decides (input.room); the sender
		// is an occupant JID (room/nick), not a person the directory
		// knows, so no party is given.
		q = gate.RetentionInput{Room: j.Bare().String(), StanzaType: "groupchat", Encrypted: in.Encrypted, At: in.Time}
	}
	d := r.d.Retention(ctx, q)
	if !d.Allow {
		return archive.RetentionClass{}, fmt.Errorf("policy: retention decision %s failed: %s: %w", d.ID, d.Reason, d.Err)
	}
	c := archive.RetentionClass{Name: d.Class}
	if !d.Until.IsZero() {
		c.Keep = max(d.Until.Sub(in.Time), time.Nanosecond)
	}
	return c, nil
}

func policyCmd(flags *configFlags) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Test, evaluate and show the policy (embedded bundle plus policy.dir)",
		Long: `The policy decides who may contact whom, what the archive keeps and for
how long, who may look into an archive, and where end-to-end encryption is
allowed. It is the embedded Rego bundle plus the files in policy.dir.`,
	}
	cmd.PersistentFlags().StringVar(&dir, "dir", "", "policy directory (overrides policy.dir)")
	// load reads the configuration; --dir replaces policy.dir, and the
	// policy section is checked again with it.
	load := func() (Config, error) {
		cfg, err := loadConfig(*flags)
		if err != nil || dir == "" {
			return cfg, err
		}
		cfg.Policy.Dir = dir
		if problems := cfg.Policy.validate(&cfg); len(problems) > 0 {
			return cfg, &ConfigError{Problems: problems}
		}
		return cfg, nil
	}

	var run string
	var verbose, explain bool
	test := &cobra.Command{
		Use:   "test",
		Short: "Run the Rego tests of the bundle and policy.dir (like opa test)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			opts, err := cfg.policyOptions()
			if err != nil {
				return err
			}
			rep, err := policy.RunTests(cmd.Context(), policy.TestOptions{Dir: opts.Dir, Settings: opts.Settings, Run: run, Explain: explain})
			if err != nil {
				return err
			}
			return writeTestReport(cmd.OutOrStdout(), rep, verbose)
		},
	}
	test.Flags().StringVar(&run, "run", "", "run only tests whose package.name matches this regular expression")
	test.Flags().BoolVarP(&verbose, "verbose", "v", false, "list every test, not only failures")
	test.Flags().BoolVar(&explain, "explain", false, "trace evaluation to show the expression each failed test stopped at")

	var decision, input, at string
	eval := &cobra.Command{
		Use:   "eval --decision NAME --input FILE",
		Short: "Evaluate one decision for an input file (JSON, '-' for stdin) and print the decision",
		Long: `Evaluate one decision (` + strings.Join(policy.Decisions(), ", ") + `) for an input in
the schema of README.md "Writing policies". Parties may carry their directory
attributes ("kind", "department", "groups", ...) so that a policy can be tried
without a directory. The decision is printed as JSON; a refusal is not an error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if decision == "" || input == "" {
				return errors.New("policy eval: --decision and --input are required")
			}
			cfg, err := load()
			if err != nil {
				return err
			}
			var data []byte
			if input == "-" {
				data, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), policy.MaxInputBytes+1))
			} else {
				data, err = readLimited(input, policy.MaxInputBytes)
			}
			if err != nil {
				return fmt.Errorf("policy eval: %w", err)
			}
			in, err := policy.ParseInput(decision, data)
			if err != nil {
				return err
			}
			when := time.Time{}
			if at != "" {
				if when, err = time.Parse(time.RFC3339, at); err != nil {
					return fmt.Errorf("policy eval: --at: %w", err)
				}
			}
			opts, err := cfg.policyOptions()
			if err != nil {
				return err
			}
			e, err := policy.New(cmd.Context(), opts)
			if err != nil {
				return err
			}
			defer e.Close()
			d, err := e.Eval(cmd.Context(), in, when)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(d)
		},
	}
	eval.Flags().StringVar(&decision, "decision", "", "the decision: "+strings.Join(policy.Decisions(), ", "))
	eval.Flags().StringVar(&input, "input", "", "the input file (JSON), '-' for stdin")
	eval.Flags().StringVar(&at, "at", "", "retention: the message's time, RFC 3339 (default: now)")

	var asJSON bool
	show := &cobra.Command{
		Use:   "show",
		Short: "Show the policy files in force, where each came from, and the revision",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			opts, err := cfg.policyOptions()
			if err != nil {
				return err
			}
			e, err := policy.New(cmd.Context(), opts)
			if err != nil {
				return err
			}
			defer e.Close()
			st := e.Status()
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			writeStatus(cmd.OutOrStdout(), st, &cfg)
			return nil
		},
	}
	show.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	cmd.AddCommand(test, eval, show)
	return cmd
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit+1))
}

// writeTestReport prints failures (every test with verbose) and the
// summary line, and fails when a test failed.
func writeTestReport(w io.Writer, rep policy.TestReport, verbose bool) error {
	for _, r := range rep.Results {
		switch {
		case r.Skip:
			if verbose {
				fmt.Fprintf(w, "SKIP %s.%s (%s:%d)\n", r.Package, r.Name, r.File, r.Line)
			}
		case r.Pass:
			if verbose {
				fmt.Fprintf(w, "PASS %s.%s (%s:%d) %v\n", r.Package, r.Name, r.File, r.Line, r.Duration.Round(time.Microsecond))
			}
		default:
			fmt.Fprintf(w, "FAIL %s.%s (%s:%d): %s\n", r.Package, r.Name, r.File, r.Line, r.Error)
		}
	}
	fmt.Fprintln(w, rep.Summary())
	if rep.Failed > 0 {
		return fmt.Errorf("policy: %d of %d tests failed", rep.Failed, rep.Failed+rep.Passed)
	}
	if rep.Passed == 0 {
		return errors.New("policy: no tests ran")
	}
	return nil
}

func writeStatus(w io.Writer, st policy.Status, cfg *Config) {
	fmt.Fprintf(w, "revision  %s\n", st.Revision)
	switch {
	case st.Cached:
		fmt.Fprintf(w, "cache     on (%d slots)\n", cfg.Policy.CacheSize)
	case len(st.NondeterministicBuiltins) > 0:
		fmt.Fprintf(w, "cache     off: the policy calls %s\n", strings.Join(st.NondeterministicBuiltins, ", "))
	default:
		fmt.Fprintln(w, "cache     off (policy.cache_size is 0)")
	}
	fmt.Fprintf(w, "settings  unknown_local_kind=%s business_letter_groups=%v accounting_groups=%v timezone=%s\n",
		cfg.unknownLocalKind(), cfg.Policy.BusinessLetterGroups, cfg.Policy.AccountingGroups, cfg.Policy.Timezone)
	fmt.Fprintln(w, "files")
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	for _, f := range st.Files {
		note := ""
		if f.Overrides {
			note = "\treplaces the embedded file"
		}
		fmt.Fprintf(tw, "  %s\t%s\tsha256:%s%s\n", f.Name, f.Origin, f.SHA256[:16], note)
	}
	tw.Flush()
}

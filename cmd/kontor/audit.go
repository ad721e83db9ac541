package main

// The audit trail's configuration and commands:
//
//	kontor audit verify   check the hash chain (and the saved head); exit 1 with the first problem
//	kontor audit list     show entries, as a table or JSON lines
//
// and what the rest of cmd/kontor uses to write entries: the server's Trail
// (newServerTrail) and auditFromCLI for commands run by an operator.

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/storage"
)

func init() { featureCommands = append(featureCommands, auditCmd) }

// AuditConfig configures the audit trail.
type AuditConfig struct {
	// AnchorFile keeps the trail's saved head outside the database, so
	// that `kontor audit verify` notices when the newest entries are
	// removed. Default: DATA_DIR/keys/audit.head.
	AnchorFile string `mapstructure:"anchor_file"`
	// AnchorInterval is how long the saved head may lag behind appends.
	AnchorInterval time.Duration `mapstructure:"anchor_interval"`
}

func (c AuditConfig) validate() []string {
	var p []string
	if c.AnchorInterval < time.Second || c.AnchorInterval > time.Hour {
		p = append(p, fmt.Sprintf("audit.anchor_interval: %v is not between 1s and 1h", c.AnchorInterval))
	}
	return p
}

// anchorPath is the head file in use.
func (c AuditConfig) anchorPath(dataDir string) string {
	if c.AnchorFile != "" {
		return c.AnchorFile
	}
	return filepath.Join(dataDir, "keys", "audit.head")
}

// auditStoreOf returns st's audit table. Both backends have one; the
// assertion stands until storage.Store embeds storage.AuditStore.
func auditStoreOf(st storage.Store) (storage.AuditStore, error) {
	as, ok := st.(storage.AuditStore)
	if !ok {
		return nil, fmt.Errorf("audit: the %s store has no audit trail", st.Backend())
	}
	return as, nil
}

// newServerTrail is the server's audit trail: it saves the head at most every
// audit.anchor_interval after appends, and on Close.
func newServerTrail(cfg *Config, st storage.Store, log *slog.Logger) (*audit.Trail, error) {
	as, err := auditStoreOf(st)
	if err != nil {
		return nil, err
	}
	return audit.New(as, audit.WithLogger(log),
		audit.WithAnchor(cfg.Audit.anchorPath(cfg.DataDir), cfg.Audit.AnchorInterval)), nil
}

// checkAuditTrail verifies what was appended since the saved head (the whole
// trail the first time) and moves the head forward; a server runs it once
// at start, so tampering shows in its log.
func checkAuditTrail(ctx context.Context, tr *audit.Trail, log *slog.Logger) {
	head, err := tr.SaveAnchor(ctx)
	switch {
	case errors.Is(err, audit.ErrTampered):
		log.Error("the audit trail was tampered with; run `kontor audit verify`", "err", err)
	case err != nil && ctx.Err() == nil:
		log.Error("audit trail not checked", "err", err)
	case err == nil:
		log.Debug("audit trail checked", "head_seq", head.Seq)
	}
}

// osActor names the operator of a CLI command until Kontor has operator
// identities: the user sudo was run by, else the operating system user. It
// is what the system says, not an authenticated identity.
func osActor(getenv func(string) string, current func() (*user.User, error)) string {
	if u := getenv("SUDO_USER"); u != "" {
		return u
	}
	if u, err := current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "uid:" + strconv.Itoa(os.Getuid())
}

// auditFromCLI appends e on behalf of the operator running a command (filling
// Actor and a few details about where it ran) and saves the head. The actor
// is the operator authenticated for cmd (see access.go), else the OS user. A failure
// to save the head is a warning on stderr: the entry is written.
func auditFromCLI(ctx context.Context, cfg *Config, st storage.Store, cmd *cobra.Command, e audit.Entry) error {
	as, err := auditStoreOf(st)
	if err != nil {
		return err
	}
	tr := audit.New(as, audit.WithAnchor(cfg.Audit.anchorPath(cfg.DataDir), cfg.Audit.AnchorInterval))
	e.Actor = osActor(os.Getenv, user.Current)
	details := map[string]string{"command": cmd.CommandPath(), "os_uid": strconv.Itoa(os.Getuid())}
	// An operator authenticated for this command (authorizeAction,
	// authenticateOperator) is the actor; the OS user stays in the details.
	op, ok := operatorFrom(cmd.Context())
	if !ok {
		op, ok = operatorFrom(ctx)
	}
	if ok {
		details["os_user"] = e.Actor
		details["authenticated_by"] = op.How
		e.Actor = op.ID
	}
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

func auditCmd(flags *configFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Verify and read the audit trail"}
	withTrail := func(fn func(ctx context.Context, cfg *Config, tr *audit.Trail, cmd *cobra.Command) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, _ []string) error {
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
			as, err := auditStoreOf(st)
			if err != nil {
				return err
			}
			return fn(ctx, &cfg, audit.New(as), cmd)
		}
	}

	var (
		anchorFile string
		heads      []string
		batch      int
	)
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Check the hash chain from the first entry, and the saved head; exit 1 with the first problem",
		Long: `Walks the whole trail and reports the first entry that was changed, removed or
reordered. It also checks that the trail still holds the head saved in
audit.anchor_file (and any --head given), which is how removal of the newest
entries is detected. On success it prints the number of entries verified and
the newest entry's head (SEQ:HASH): record it elsewhere and check against it
later with --head.`,
		Args: cobra.NoArgs,
		RunE: withTrail(func(ctx context.Context, cfg *Config, tr *audit.Trail, cmd *cobra.Command) error {
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			var opts audit.VerifyOptions
			opts.BatchSize = batch
			for _, h := range heads {
				head, err := audit.ParseHead(h)
				if err != nil {
					return fmt.Errorf("--head: %w", err)
				}
				opts.Anchors = append(opts.Anchors, head)
			}
			path := anchorFile
			if path == "" {
				path = cfg.Audit.anchorPath(cfg.DataDir)
			}
			saved, err := audit.ReadHeadFile(path)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				fmt.Fprintf(errOut, "warning: no saved head (%s does not exist): removal of the newest entries cannot be detected\n", path)
			case err != nil:
				return err
			default:
				opts.Anchors = append(opts.Anchors, saved)
			}
			rep, err := tr.Verify(ctx, opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "audit trail intact: %d entries verified\n", rep.Verified)
			if rep.Head.Seq == 0 {
				fmt.Fprintln(out, "head: none (the trail is empty)")
			} else {
				fmt.Fprintf(out, "head: %s (%s)\n", rep.Head, rep.HeadAt.UTC().Format(time.RFC3339))
			}
			if saved.Seq > 0 {
				fmt.Fprintf(out, "saved head %s in %s: held by the trail\n", saved, path)
			}
			for _, h := range heads {
				fmt.Fprintf(out, "given head %s: held by the trail\n", h)
			}
			return nil
		}),
	}
	verify.Flags().StringVar(&anchorFile, "anchor-file", "", "the saved head to check (default: audit.anchor_file)")
	verify.Flags().StringArrayVar(&heads, "head", nil, "a head recorded earlier (SEQ:HASH) that the trail must still hold; repeatable")
	verify.Flags().IntVar(&batch, "batch", 1000, "entries read at a time")

	var (
		q            audit.Query
		since, until string
		asJSON       bool
	)
	list := &cobra.Command{
		Use:   "list",
		Short: "Show audit entries (the newest --limit, or from --after on), as a table or JSON lines",
		Long: `Shows the entries that match every filter given. Without --after it shows the
newest --limit matches; with --after SEQ, the oldest matches after SEQ (to page
forward); --before SEQ pages back. --action matches the action and every
action below it: "policy" matches "policy.deny". --since and --until take
RFC 3339 times, dates (2006-01-02, UTC), or ages such as 36h or 7d; --until is
exclusive.`,
		Args: cobra.NoArgs,
		RunE: withTrail(func(ctx context.Context, _ *Config, tr *audit.Trail, cmd *cobra.Command) error {
			now := time.Now()
			var err error
			if q.Since, err = parseAuditTime(since, now); err != nil {
				return fmt.Errorf("--since: %w", err)
			}
			if q.Until, err = parseAuditTime(until, now); err != nil {
				return fmt.Errorf("--until: %w", err)
			}
			if q.Limit < 1 || q.Limit > storage.MaxAuditLimit {
				return fmt.Errorf("--limit: %d is not between 1 and %d", q.Limit, storage.MaxAuditLimit)
			}
			q.Newest = q.After == 0
			entries, err := tr.Query(ctx, q)
			if err != nil {
				return err
			}
			write := writeAuditTable
			if asJSON {
				write = writeAuditJSON
			}
			if err := write(cmd.OutOrStdout(), entries); err != nil {
				return err
			}
			if len(entries) == q.Limit { // a hint on stderr, apart from the data
				if q.Newest {
					fmt.Fprintf(cmd.ErrOrStderr(), "older entries: --before %d\n", entries[0].Seq)
				} else {
					fmt.Fprintf(cmd.ErrOrStderr(), "newer entries: --after %d\n", entries[len(entries)-1].Seq)
				}
			}
			return nil
		}),
	}
	f := list.Flags()
	f.StringVar(&q.Actor, "actor", "", "only entries by this actor (exact)")
	f.StringVar(&q.Subject, "subject", "", "only entries about this subject (exact)")
	f.StringVar(&q.Action, "action", "", `only this action and those below it ("account" matches "account.create")`)
	f.StringVar(&since, "since", "", "only entries at or after this time (RFC 3339, 2006-01-02, or an age: 36h, 7d)")
	f.StringVar(&until, "until", "", "only entries before this time (same forms)")
	f.IntVar(&q.Limit, "limit", 50, "at most this many entries")
	f.Int64Var(&q.After, "after", 0, "only entries after this sequence number (oldest first)")
	f.Int64Var(&q.Before, "before", 0, "only entries before this sequence number")
	f.BoolVar(&asJSON, "json", false, "one JSON object per line")

	cmd.AddCommand(verify, list)
	return cmd
}

// parseAuditTime reads a --since/--until value: "" (no bound), an RFC 3339
// time, a date or date and minute in UTC, or an age before now ("90m",
// "36h", "7d").
func parseAuditTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02", "2006-01-02T15:04", "2006-01-02 15:04"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	var age time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 16)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not a time, date or age", s)
		}
		age = time.Duration(n) * 24 * time.Hour
	} else {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return time.Time{}, fmt.Errorf("%q is not a time, date or age", s)
		}
		age = d
	}
	return now.Add(-age), nil
}

// auditJSON is the JSON form of an entry: one object per line.
type auditJSON struct {
	Seq            int64             `json:"seq"`
	At             string            `json:"at"`
	Actor          string            `json:"actor"`
	Action         string            `json:"action"`
	Subject        string            `json:"subject"`
	Reason         string            `json:"reason"`
	PolicyRevision string            `json:"policy_revision"`
	Details        map[string]string `json:"details"`
	PrevHash       string            `json:"prev_hash"`
	Hash           string            `json:"hash"`
}

func writeAuditJSON(w io.Writer, entries []audit.Entry) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, e := range entries {
		details := e.Details
		if details == nil {
			details = map[string]string{}
		}
		if err := enc.Encode(auditJSON{
			Seq: e.Seq, At: e.At.UTC().Format(time.RFC3339Nano), Actor: e.Actor, Action: e.Action,
			Subject: e.Subject, Reason: e.Reason, PolicyRevision: e.PolicyRevision, Details: details,
			PrevHash: hex.EncodeToString(e.PrevHash), Hash: hex.EncodeToString(e.Hash),
		}); err != nil {
			return err
		}
	}
	return nil
}

func writeAuditTable(w io.Writer, entries []audit.Entry) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME (UTC)\tACTOR\tACTION\tSUBJECT\tREASON\tDETAILS")
	for _, e := range entries {
		var details []string
		for _, k := range auditSortedKeys(e.Details) {
			details = append(details, auditText(k)+"="+auditText(e.Details[k]))
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.At.UTC().Format("2006-01-02 15:04:05"),
			auditText(e.Actor), auditText(e.Action), auditDash(auditText(e.Subject)), auditDash(auditText(e.Reason)),
			strings.Join(details, " "))
	}
	return tw.Flush()
}

func auditSortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// auditText quotes text that holds anything but auditText characters, so an
// entry cannot break the table or send escape sequences to the terminal.
func auditText(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) || r == '\t' {
			return strconv.Quote(s)
		}
	}
	return s
}

func auditDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

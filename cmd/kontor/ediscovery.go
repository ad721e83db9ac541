package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"kontor.im/kontor/archive/gdpr"
	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/gate"
)

func init() { featureCommands = append(featureCommands, ediscoveryCmd) }

func ediscoveryCmd(flags *configFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "ediscovery", Short: "Export archives for legal review"}
	var (
		people           []string
		from, to, out    string
		contains, reason string
		batch            int
	)
	export := &cobra.Command{
		Use:   "export --people JID,... --from DATE --to DATE --out DIR",
		Short: "Write the archives of several people (or rooms) as EML files with a CSV index and a manifest",
		Long: `Writes one RFC 5322 message (EML) per conversation and day under
DIR/messages/OWNER/PEER/DATE.eml, an index (index.csv) and the SHA-256 of every
file (manifest.json, manifest.sha256). --contains keeps only messages whose
decrypted body contains the text (case-insensitive). Each person is an
access decision (archive.export) of its own, so dual control applies. It
streams, and an interrupted export resumes when run again with the same
options and directory (progress.json).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(people) == 0 || out == "" {
				return fmt.Errorf("--people and --out are required")
			}
			opts := gdpr.DiscoveryOptions{Contains: contains, OutDir: out, Batch: batch}
			var err error
			if from != "" {
				if opts.From, err = time.Parse(time.DateOnly, from); err != nil {
					return fmt.Errorf("--from: want YYYY-MM-DD: %w", err)
				}
			}
			if to != "" {
				t, err := time.Parse(time.DateOnly, to)
				if err != nil {
					return fmt.Errorf("--to: want YYYY-MM-DD: %w", err)
				}
				opts.To = t.Add(24*time.Hour - time.Microsecond) // the whole day
			}
			for _, p := range people {
				j, err := bareJID(p)
				if err != nil {
					return err
				}
				opts.People = append(opts.People, j)
			}
			// One access decision per person, all before any data is read.
			var env *gdprEnv
			grants := map[string]gdpr.Grant{}
			for _, p := range opts.People {
				if env != nil {
					env.Close()
				}
				if env, err = openGDPR(cmd, flags, gate.AccessArchiveExport, p); err != nil {
					return err
				}
				grants[p] = env.grant
			}
			defer env.Close()
			res, err := env.tool.Discover(cmd.Context(), opts)
			if err != nil {
				return err
			}
			for _, p := range opts.People {
				g := grants[p]
				details := g.Details(map[string]string{"out": out, "from": from, "to": to,
					"filtered": strconv.FormatBool(contains != ""), "people": strconv.Itoa(len(opts.People))})
				if err := auditAs(cmd.Context(), &env.cfg, env.st, cmd, audit.Entry{Actor: g.Operator, Action: "ediscovery.export",
					Subject: p, Reason: reason, Details: details}); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %d files with %d messages to %s (index.csv, manifest.json)\n", res.Files, res.Messages, out)
			return nil
		},
	}
	f := export.Flags()
	f.StringSliceVar(&people, "people", nil, "bare JIDs of the people or rooms, comma-separated")
	f.StringVar(&from, "from", "", "first day (YYYY-MM-DD, UTC)")
	f.StringVar(&to, "to", "", "last day (YYYY-MM-DD, UTC, inclusive)")
	f.StringVar(&contains, "contains", "", "only messages whose body contains this text")
	f.StringVar(&out, "out", "", "the output directory (new, or the one of an interrupted export)")
	f.StringVar(&reason, "reason", "", "why (audited)")
	f.IntVar(&batch, "batch", 1000, "archived messages read at a time")
	addAccessFlags(export)
	cmd.AddCommand(export)
	return cmd
}

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"kontor.im/kontor/archive/gdpr"
	"kontor.im/kontor/core/gate"
	"kontor.im/kontor/core/mod/offline"
)

func init() { gdprMoreCommands = append(gdprMoreCommands, gdprExportCmd, gdprImportCmd) }

func gdprExportCmd(flags *configFlags) *cobra.Command {
	var (
		out           string
		thirdParties  bool
		restricted    bool
		justification string
		batch         int
	)
	cmd := &cobra.Command{
		Use:   "export USER --out FILE",
		Short: "Export everything Kontor keeps about a person into one zip file (Art. 15, 20)",
		Long: `Writes one zip file: the information sheet Art. 15(1) requires
(00-information.html), data.json (machine-readable; schema in the README),
conversations.html (readable in any browser), xep0227.xml (importable by
another XMPP server, and by ` + "`kontor gdpr import`" + `) and manifest.json (SHA-256 of
every file). Other people's addresses are pseudonymised unless
--include-third-parties is given with a --justification, which is audited.
Messages that an earlier erasure of this JID had to keep (restricted, GDPR
Art. 18) are another person's data and are left out unless
--include-restricted is given with a --justification.
The archive is read page by page: memory stays bounded whatever its size.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			subject, err := bareJID(args[0])
			if err != nil {
				return err
			}
			if out == "" {
				return fmt.Errorf("--out FILE is required")
			}
			if thirdParties && justification == "" {
				return fmt.Errorf("--include-third-parties needs --justification TEXT (it is audited)")
			}
			if restricted && justification == "" {
				return fmt.Errorf("--include-restricted needs --justification TEXT (it is audited)")
			}
			env, err := openGDPR(cmd, flags, gate.AccessArchiveExport, subject)
			if err != nil {
				return err
			}
			defer env.Close()
			// Written under a temporary name and renamed when complete: a
			// failed export leaves no file that looks finished.
			tmp, err := os.CreateTemp(filepath.Dir(out), ".kontor-export-*")
			if err != nil {
				return err
			}
			defer os.Remove(tmp.Name())
			start := time.Now()
			res, err := env.tool.Export(cmd.Context(), env.grant, subject, tmp, gdpr.ExportOptions{
				IncludeThirdParties: thirdParties, IncludeRestricted: restricted, Justification: justification, Batch: batch, TempDir: filepath.Dir(out)})
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			if err := os.Chmod(tmp.Name(), 0o600); err != nil {
				return err
			}
			if err := os.Rename(tmp.Name(), out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "exported %s to %s: %d archived messages, %d offline, %d files, in %s\n",
				subject, out, res.Messages, res.Offline, len(res.Manifest.Files)+1, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&out, "out", "", "the zip file to write")
	f.BoolVar(&thirdParties, "include-third-parties", false, "keep other people's addresses and full stanzas (needs --justification)")
	f.BoolVar(&restricted, "include-restricted", false, "add the messages an erasure of this JID kept restricted (Art. 18), marked; needs --justification")
	f.StringVar(&justification, "justification", "", "why third parties or restricted messages are included (audited)")
	f.IntVar(&batch, "batch", 1000, "archived messages read at a time")
	addAccessFlags(cmd)
	cmd.Flags().String("dsr", "", "the data subject request this export answers (kontor gdpr request add)")
	return cmd
}

func gdprImportCmd(flags *configFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import FILE|DIR",
		Short: "Import a XEP-0227 file (or an export's zip) into this Kontor",
		Long: `Creates the accounts the file names with their rosters, vCards, private XML,
blocklists, PEP items, offline messages and message archives (sealed as they
arrive). Reads Kontor's own exports and other servers' XEP-0227 files:
ejabberd's export_piefxis (give the main file or its directory; the host
files it includes must be beside it) and Prosody's xep0227 store (give the
directory: one file per user). Passwords come along when the file has
them (SCRAM-SHA-1/-256 hashes are kept as they are, a clear password becomes
hashes); otherwise set one with ` + "`kontor user passwd`" + `. What Kontor does not keep
(privacy lists, other password hashes, unknown elements) is listed after the
import. Only hosts that are among this server's domains are imported. An
account that exists already stops the import: import into a fresh Kontor.
Run it while the server is stopped. The access action is archive.import.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := openGDPR(cmd, flags, gate.AccessArchiveImport, "")
			if err != nil {
				return err
			}
			defer env.Close()
			t := env.tool
			if t.Archive != nil {
				if err := t.Archive.Start(cmd.Context()); err != nil {
					return err
				}
				defer t.Archive.Close(context.WithoutCancel(cmd.Context()))
				sealer := t.Archive.Sealer(nil)
				t.Seal = func(ctx context.Context, owner, from string, stamp time.Time, st []byte) error {
					m, err := offline.SealStored(sealer, owner, from, stamp, st)
					if err != nil {
						return err
					}
					_, err = t.Store.StoreOffline(ctx, m, 0)
					return err
				}
			}
			t.ImportDomains = env.cfg.Domains
			res, err := t.ImportFile(cmd.Context(), env.grant, args[0])
			fmt.Fprintf(cmd.OutOrStdout(), "imported %d users, %d contacts, %d archived messages, %d offline messages, %d PEP items; %d with their password\n",
				res.Users, res.Contacts, res.Messages, res.Offline, res.PEPItems, res.Credentials)
			for _, s := range res.Skipped {
				fmt.Fprintf(cmd.OutOrStdout(), "not imported: %s\n", s)
			}
			if res.SHA1Only > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "%d accounts have SCRAM-SHA-1 hashes only: clients that pick SCRAM-SHA-256 cannot log them in "+
					"until one PLAIN login adds it (set auth.mechanisms: [PLAIN] until they have logged in once; "+
					"the log says \"account upgraded to SCRAM-SHA-256\")\n", res.SHA1Only)
			}
			return err
		},
	}
	addAccessFlags(cmd)
	return cmd
}

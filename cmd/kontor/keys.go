package main

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"kontor.im/kontor/archive"
	"kontor.im/kontor/archive/keyring"
	"kontor.im/kontor/core/storage"
)

func init() { featureCommands = append(featureCommands, keysCmd) }

// backupWarning is printed whenever a key is created.
const backupWarning = `
IMPORTANT: back up this key now, and keep the backup apart from the database
backups (another system, another person, a safe).
  - Without it, the archive cannot be read: not by you, not by anyone.
  - With it and a copy of the database, anyone can read the archive.
Never put it in the database, in the data directory, or in the same backup.
`

func keysCmd(flags *configFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage the archive's key-encryption keys (KEKs)",
		Long: "The archive seals messages with data keys per user, month and retention class; the\n" +
			"data keys are wrapped by a key-encryption key (KEK) that is never stored in the\n" +
			"database. These commands create the KEK, rotate it, and show what uses which.",
	}
	cmd.AddCommand(keysInitCmd(flags), keysRotateCmd(flags), keysStatusCmd(flags), keysRetireCmd(flags))
	return cmd
}

func keysInitCmd(flags *configFlags) *cobra.Command {
	var file string
	var print bool
	c := &cobra.Command{
		Use:   "init",
		Short: "Create the key-encryption key file (archive.kek_file, or --file)",
		Long: "Creates a key file holding one new random key-encryption key (mode 0600). It refuses\n" +
			"to overwrite an existing file, and to create one inside the data directory.\n" +
			"With --print, writes a new key entry to standard output instead, for archive.kek_env\n" +
			"or a secret manager.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(*flags)
			if err != nil {
				return err
			}
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			if print {
				k, err := keyring.Generate(time.Now())
				if err != nil {
					return err
				}
				r, err := keyring.NewRing(k)
				if err != nil {
					return err
				}
				fmt.Fprint(out, entryOf(r))
				fmt.Fprintf(errOut, "A new key-encryption key, %s, was written to standard output.\n"+
					"Put it in the environment variable named by archive.kek_env (as its last entry, after\n"+
					"';', when rotating).\n%s", k.ID, backupWarning)
				return nil
			}
			if file == "" {
				file = cfg.Archive.KEKFile
			}
			if file == "" {
				return errors.New("keys: no file: pass --file PATH, or set archive.kek_file")
			}
			if inside(file, cfg.DataDir) {
				return fmt.Errorf("keys: %s is inside the data directory %s: keep the key apart from the data it protects", file, cfg.DataDir)
			}
			r, err := keyring.CreateFile(file, time.Now())
			if err != nil {
				return fmt.Errorf("keys: %w", err)
			}
			fmt.Fprintf(out, "Created %s with the key-encryption key %s.\n", file, r.Primary())
			fmt.Fprint(out, backupWarning)
			if cfg.Archive.KEKFile != file {
				fmt.Fprintf(out, "\nTo use it, set in the configuration:\n  archive:\n    enabled: true\n    kek_file: %s\n", file)
			}
			return nil
		},
	}
	c.Flags().StringVar(&file, "file", "", "where to create the key file (default: archive.kek_file)")
	c.Flags().BoolVar(&print, "print", false, "print a new key entry instead of creating a file")
	return c
}

// entryOf returns the key lines of a ring without the file header.
func entryOf(r *keyring.Ring) string {
	var b strings.Builder
	for _, line := range strings.Split(string(r.Marshal()), "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// openArchiveStore opens the configured store and its archive tables.
func openArchiveStore(cmd *cobra.Command, cfg *Config) (storage.Store, storage.ArchiveStore, error) {
	st, err := openStore(cmd.Context(), cfg)
	if err != nil {
		return nil, nil, err
	}
	as, err := archiveStore(st)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return st, as, nil
}

func keysRotateCmd(flags *configFlags) *cobra.Command {
	var batch int
	c := &cobra.Command{
		Use:   "rotate",
		Short: "Rewrap every data key with a new key-encryption key (no message is rewritten)",
		Long: "With archive.kek_file: adds a new key to the file as the primary (the old ones stay),\n" +
			"then rewraps every data key with it. Running servers pick up the new key by themselves.\n" +
			"The rotation records its progress: if it is interrupted, run it again and it resumes\n" +
			"(without adding another key) until every data key is wrapped by the primary.\n\n" +
			"With archive.kek_env: add a new entry (kontor keys init --print) at the end of the\n" +
			"variable, restart the servers with both keys, then run this command.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(*flags)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			st, as, err := openArchiveStore(cmd, &cfg)
			if err != nil {
				return err
			}
			defer st.Close()
			keys, err := cfg.Archive.kekProvider()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			primary, err := keys.Current(ctx)
			if err != nil {
				return err
			}
			pending, err := as.ArchiveKeysNotUnder(ctx, primary, 0, 1)
			if err != nil {
				return err
			}
			if len(pending) == 0 {
				// Everything is under the primary: a new rotation.
				f, ok := keys.(*keyring.File)
				if !ok {
					fmt.Fprintf(out, "Every data key is wrapped by %s, the last key in $%s. To rotate, add a new key\n"+
						"(kontor keys init --print) as the last entry, restart the servers with both, and run this again.\n",
						primary, cfg.Archive.KEKEnv)
					return nil
				}
				ring, err := f.Ring()
				if err != nil {
					return err
				}
				k, err := keyring.Generate(time.Now())
				if err != nil {
					return err
				}
				next, err := ring.With(k)
				if err != nil {
					return err
				}
				if err := keyring.ReplaceFile(f.Path(), next); err != nil {
					return err
				}
				fmt.Fprintf(out, "Added the key-encryption key %s to %s as the primary.\n", k.ID, f.Path())
				fmt.Fprint(out, backupWarning)
			} else {
				fmt.Fprintf(out, "Data keys not yet wrapped by %s remain: rewrapping them (resuming if a rotation was interrupted).\n", primary)
			}
			res, err := archive.Rotate(ctx, as, keys, archive.RotateOptions{Batch: batch, Logger: newLogger(&cfg, cmd.ErrOrStderr())})
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "Rotation to %s finished: %d data keys rewrapped now, %d in all; no message was rewritten.\n",
				res.Target, res.Rewrapped, res.Total)
			printKEKUse(out, keys, res.KeysByKEK)
			return nil
		},
	}
	c.Flags().IntVar(&batch, "batch", 500, "data keys per transaction")
	return c
}

// printKEKUse lists the KEKs of the provider and how many data keys each
// wraps, with advice about the unused ones.
func printKEKUse(w io.Writer, keys keyring.Provider, counts map[string]int64) {
	var ids []string
	var primary string
	switch k := keys.(type) {
	case *keyring.File:
		if r, err := k.Ring(); err == nil {
			ids, primary = r.IDs(), r.Primary()
		}
	case *keyring.Ring:
		ids, primary = k.IDs(), k.Primary()
	}
	fmt.Fprintln(w, "Key-encryption keys and the data keys each wraps:")
	known := map[string]bool{}
	for _, id := range ids {
		known[id] = true
		mark := ""
		if id == primary {
			mark = " (primary)"
		}
		fmt.Fprintf(w, "  %-24s %8d%s\n", id, counts[id], mark)
	}
	var missing []string
	for id := range counts {
		if !known[id] {
			missing = append(missing, id)
		}
	}
	sort.Strings(missing)
	for _, id := range missing {
		fmt.Fprintf(w, "  %-24s %8d  NOT AVAILABLE: these data keys cannot be opened\n", id, counts[id])
	}
	for _, id := range ids {
		if id != primary && counts[id] == 0 {
			fmt.Fprintf(w, "%s wraps no data key any more. Keep it as long as database backups made before the\n"+
				"rotation may have to be read; then remove it with `kontor keys retire %s`.\n", id, id)
		}
	}
}

func keysStatusCmd(flags *configFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the key-encryption keys, what they wrap, and the last rotation",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(*flags)
			if err != nil {
				return err
			}
			st, as, err := openArchiveStore(cmd, &cfg)
			if err != nil {
				return err
			}
			defer st.Close()
			keys, err := cfg.Archive.kekProvider()
			if err != nil {
				return err
			}
			counts, err := as.ArchiveKeyCounts(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			printKEKUse(out, keys, counts)
			rot, err := as.LatestArchiveRotation(cmd.Context())
			switch {
			case errors.Is(err, storage.ErrNotFound):
				fmt.Fprintln(out, "No rotation yet.")
			case err != nil:
				return err
			case rot.Finished.IsZero():
				fmt.Fprintf(out, "A rotation to %s started %s is unfinished (%d data keys rewrapped): run `kontor keys rotate` to resume it.\n",
					rot.Target, rot.Started.Format(time.RFC3339), rot.Rewrapped)
			default:
				fmt.Fprintf(out, "Last rotation: to %s, %s to %s, %d data keys rewrapped.\n",
					rot.Target, rot.Started.Format(time.RFC3339), rot.Finished.Format(time.RFC3339), rot.Rewrapped)
			}
			return nil
		},
	}
}

func keysRetireCmd(flags *configFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "retire KEK-ID",
		Short: "Remove an old key-encryption key that no data key uses from the key file",
		Long: "Removes a key from archive.kek_file once no data key in the database is wrapped by it.\n" +
			"Database backups made before the rotation that retired it can no longer be read with the\n" +
			"file afterwards: keep a backup of the old file as long as those backups are kept.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(*flags)
			if err != nil {
				return err
			}
			keys, err := cfg.Archive.kekProvider()
			if err != nil {
				return err
			}
			f, ok := keys.(*keyring.File)
			if !ok {
				return fmt.Errorf("keys: retire edits archive.kek_file; with archive.kek_env, remove the entry from $%s yourself", cfg.Archive.KEKEnv)
			}
			st, as, err := openArchiveStore(cmd, &cfg)
			if err != nil {
				return err
			}
			defer st.Close()
			counts, err := as.ArchiveKeyCounts(cmd.Context())
			if err != nil {
				return err
			}
			if n := counts[args[0]]; n > 0 {
				return fmt.Errorf("keys: %s still wraps %d data keys: run `kontor keys rotate` first", args[0], n)
			}
			ring, err := f.Ring()
			if err != nil {
				return err
			}
			next, err := ring.Without(args[0])
			if err != nil {
				return err
			}
			if err := keyring.ReplaceFile(f.Path(), next); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed %s from %s.\n", args[0], f.Path())
			return nil
		},
	}
}

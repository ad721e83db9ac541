package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"kontor.im/kontor/archive/gdpr"
	"kontor.im/kontor/core/gate"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/ldapsync"
)

// tombstoneKeyPath is the key of the erasure tombstones: beside the
// erasure log, outside the data directory.
func (c *Config) tombstoneKeyPath() string {
	return filepath.Join(filepath.Dir(c.erasureLogPath()), "erasure-tombstones.key")
}

// ldapErasures gives directory sync the erasure tombstones, so that it
// does not recreate an erased person (nil when the store lacks the gdpr
// tables: then there are none).
func ldapErasures(cfg *Config, st any) ldapsync.Erasures {
	gs, ok := st.(storage.GDPRStore)
	if !ok {
		return nil
	}
	return gdpr.Tombstones{Store: gs, KeyFile: cfg.tombstoneKeyPath()}
}

func init() { gdprMoreCommands = append(gdprMoreCommands, gdprReinstateCmd) }

// gdprReinstateCmd is `kontor gdpr reinstate USER`: lifts the erasure
// tombstones of USER, so that directory sync creates their account again.
func gdprReinstateCmd(flags *configFlags) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "reinstate USER --reason TEXT",
		Short: "Allow directory sync to create an erased person's account again",
		Long: `After an erasure, directory sync skips the person's directory entry (matched
by the erased JID, or by the entry's objectGUID/entryUUID) and reports it as
"erased, skipped". This lifts that: the next sync creates the account anew,
empty (what the erasure kept stays restricted and is not shown to it). It is
the access action erasure.reinstate (the DPO's in the default policy) and a
gdpr.reinstate audit entry.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			subject, err := bareJID(args[0])
			if err != nil {
				return err
			}
			if reason == "" {
				return fmt.Errorf("--reason TEXT is required (it is audited)")
			}
			env, err := openGDPR(cmd, flags, gate.AccessErasureReinstate, subject)
			if err != nil {
				return err
			}
			defer env.Close()
			n, err := env.tool.Reinstate(cmd.Context(), env.grant, subject, reason)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "reinstated %s: %d erasure tombstone(s) lifted; the next directory sync creates the account\n", subject, n)
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the person may come back (audited)")
	addAccessFlags(cmd)
	return cmd
}

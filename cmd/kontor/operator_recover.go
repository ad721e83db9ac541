package main

// Break-glass recovery: `kontor operator recover NAME --reason TEXT`.
//
// Trust model. When every admin's token is lost (or every admin is
// disabled), nobody can manage operators through the access policy. The
// recovery is local: it runs on the server machine, as root or as the
// operating-system user that owns the data directory (the service account
// Kontor runs as), and it must open the store with the configured
// credentials. Whoever is that user can already read the configuration
// (the PostgreSQL DSN), the SQLite file and the key files, and so could
// rewrite the operators table by hand; the command grants no power they do
// not have, it makes its use explicit: it takes a reason, is recorded as
// operator.break_glass (with the OS user, uid and host), and prints a
// warning. It is not reachable through the admin API. Anyone else is
// refused, and the refusal is recorded as operator.break_glass_denied.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/storage"
)

// dataDirOwner returns the uid owning dir (the service account).
var dataDirOwner = func(dir string) (int, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return -1, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return -1, errors.New("cannot tell the owner of the data directory on this system")
	}
	return int(st.Uid), nil
}

func operatorRecoverCmd(flags *configFlags) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "recover NAME --reason TEXT",
		Short: "Break glass: give admin NAME a new token (or create admin NAME) when every admin token is lost",
		Long: `Only on the server machine, as root or as the user that owns data_dir (the
account Kontor runs as): they can read the database and key files anyway, so
this gives them nothing new, but does it in the open. If NAME is an admin,
they get a new token (and are enabled if disabled); if there is no operator
NAME, an admin NAME is created. The new token is printed once. Every use is
recorded in the audit trail as operator.break_glass; refusals as
operator.break_glass_denied. Review it afterwards: kontor audit list
--action operator.break_glass.`,
		Args: cobra.ExactArgs(1),
		RunE: withOperatorStore(flags, func(ctx context.Context, cfg *Config, st storage.Store, ops storage.Operators, cmd *cobra.Command, args []string) error {
			name := args[0]
			if !operatorName.MatchString(name) {
				return fmt.Errorf("%q is not an operator name (lowercase letters, digits, . _ -, starting with a letter)", name)
			}
			if strings.TrimSpace(reason) == "" {
				return errors.New("--reason TEXT is required (it goes into the audit trail)")
			}
			uid, osName, err := osIdentity()
			if err != nil {
				return err
			}
			owner, err := dataDirOwner(cfg.DataDir)
			if err != nil {
				return fmt.Errorf("data directory: %w", err)
			}
			if uid != 0 && uid != owner {
				_ = auditFromCLI(ctx, cfg, st, cmd, audit.Entry{Action: "operator.break_glass_denied", Subject: name, Reason: reason,
					Details: map[string]string{"uid": strconv.Itoa(uid), "os_name": osName, "data_dir_owner": strconv.Itoa(owner)}})
				return fmt.Errorf("%w: recovery is for root or the owner of %s (uid %d), not uid %d", errAccessDenied, cfg.DataDir, owner, uid)
			}
			tok, hash := newOperatorToken()
			details := map[string]string{"uid": strconv.Itoa(uid), "os_name": osName, "data_dir_owner": strconv.Itoa(owner)}
			o, err := ops.Operator(ctx, name)
			switch {
			case errors.Is(err, storage.ErrNotFound):
				if err := ops.CreateOperator(ctx, storage.Operator{ID: name, Roles: []string{"admin"}, TokenHash: hash,
					DisplayName: "break-glass admin"}); err != nil {
					return err
				}
				details["outcome"] = "created admin"
			case err != nil:
				return err
			case !slices.Contains(o.Roles, "admin"):
				return fmt.Errorf("%s is not an admin (roles %s): recover an admin, or name a new operator to create one",
					name, strings.Join(o.Roles, ","))
			default:
				if o.Disabled {
					if err := ops.SetOperatorDisabled(ctx, name, false); err != nil {
						return err
					}
					details["enabled"] = "true"
				}
				if err := ops.SetOperatorToken(ctx, name, hash); err != nil {
					return err
				}
				details["outcome"] = "new token"
			}
			if err := auditFromCLI(ctx, cfg, st, cmd, audit.Entry{Action: "operator.break_glass", Subject: name, Reason: reason,
				Details: details}); err != nil {
				return fmt.Errorf("the token was issued, but the audit entry could not be written: %w", err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(cmd.ErrOrStderr(), "warning: break-glass recovery by %s (uid %d) recorded in the audit trail as operator.break_glass\n", osName, uid)
			fmt.Fprintf(out, "%s: %s\n", name, details["outcome"])
			fmt.Fprintf(out, "token (shown once):\n%s\n", tok)
			return nil
		}),
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the glass is broken (audited)")
	return cmd
}

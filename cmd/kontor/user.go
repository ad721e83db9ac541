package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"kontor.im/kontor/core/account"
	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/storage"
)

// userCmd manages local accounts. It writes to the store directly, so it
// works whether or not the server runs; a running server picks disabled and
// deleted accounts up from the change log within auth.account_watch_interval
// and closes their sessions.
func userCmd(flags *configFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Manage local accounts"}
	var passwordFile, reason string
	cmd.PersistentFlags().StringVar(&reason, "reason", "", "why (a ticket number, a request): recorded in the audit trail")
	parse := func(s string) (jid.JID, error) {
		j, err := jid.Parse(s)
		if err != nil || j.Local() == "" || !j.IsBare() {
			return j, fmt.Errorf("%q is not an account address (user@domain)", s)
		}
		return j, nil
	}
	// withStore runs fn on the configured store; when it succeeds and
	// action is set, it records action about the account args[0] in the
	// audit trail, with the operating system user as the actor.
	withStore := func(action string, fn func(ctx context.Context, st storage.Store, args []string, cmd *cobra.Command) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(*flags)
			if err != nil {
				return err
			}
			if action != "" {
				if err := audit.Validate(audit.Entry{Actor: "-", Action: action, Reason: reason}); err != nil {
					return fmt.Errorf("--reason: %w", err)
				}
			}
			ctx := cmd.Context()
			st, err := openStore(ctx, &cfg)
			if err != nil {
				return err
			}
			defer st.Close()
			if err := fn(ctx, st, args, cmd); err != nil || action == "" {
				return err
			}
			j, _ := parse(args[0]) // fn succeeded, so it parses
			if err := auditFromCLI(ctx, &cfg, st, cmd, audit.Entry{Action: action, Subject: j.String(), Reason: reason}); err != nil {
				return fmt.Errorf("the change was made, but its audit entry could not be written: %w", err)
			}
			return nil
		}
	}
	add := &cobra.Command{
		Use: "add JID", Short: "Add an account (asks for the password, or reads it from --password-file or standard input)",
		Args: cobra.ExactArgs(1),
		RunE: withStore("account.create", func(ctx context.Context, st storage.Store, args []string, cmd *cobra.Command) error {
			j, err := parse(args[0])
			if err != nil {
				return err
			}
			pw, err := readPassword(cmd, passwordFile)
			if err != nil {
				return err
			}
			if err := account.Create(ctx, st, j, pw); err != nil {
				if errors.Is(err, storage.ErrExists) {
					return fmt.Errorf("%s already exists", j)
				}
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "added %s\n", j)
			return nil
		}),
	}
	passwd := &cobra.Command{
		Use: "passwd JID", Short: "Set an account's password",
		Args: cobra.ExactArgs(1),
		RunE: withStore("account.password", func(ctx context.Context, st storage.Store, args []string, cmd *cobra.Command) error {
			j, err := parse(args[0])
			if err != nil {
				return err
			}
			pw, err := readPassword(cmd, passwordFile)
			if err != nil {
				return err
			}
			if err := account.SetPassword(ctx, st, j, pw); err != nil {
				return notFound(j, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "password of %s changed\n", j)
			return nil
		}),
	}
	for _, c := range []*cobra.Command{add, passwd} {
		c.Flags().StringVar(&passwordFile, "password-file", "", "read the password from this file (first line)")
	}
	setDisabled := func(disabled bool, verb string) func(context.Context, storage.Store, []string, *cobra.Command) error {
		return func(ctx context.Context, st storage.Store, args []string, cmd *cobra.Command) error {
			j, err := parse(args[0])
			if err != nil {
				return err
			}
			if err := st.SetDisabled(ctx, j.String(), disabled); err != nil {
				return notFound(j, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", verb, j)
			return nil
		}
	}
	disable := &cobra.Command{Use: "disable JID", Short: "Disable an account and close its sessions", Args: cobra.ExactArgs(1),
		RunE: withStore("account.disable", setDisabled(true, "disabled"))}
	enable := &cobra.Command{Use: "enable JID", Short: "Enable a disabled account", Args: cobra.ExactArgs(1),
		RunE: withStore("account.enable", setDisabled(false, "enabled"))}
	del := &cobra.Command{
		Use: "delete JID", Short: "Delete an account and everything it owns (roster, offline messages, vCard, private data)",
		Args: cobra.ExactArgs(1),
		RunE: withStore("account.delete", func(ctx context.Context, st storage.Store, args []string, cmd *cobra.Command) error {
			j, err := parse(args[0])
			if err != nil {
				return err
			}
			if err := st.DeleteAccount(ctx, j.String()); err != nil {
				return notFound(j, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted %s\n", j)
			return nil
		}),
	}
	var domain string
	list := &cobra.Command{
		Use: "list", Short: "List accounts", Args: cobra.NoArgs,
		RunE: withStore("", func(ctx context.Context, st storage.Store, _ []string, cmd *cobra.Command) error {
			accs, err := st.ListAccounts(ctx, domain)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ACCOUNT\tSTATUS\tCREATED")
			for _, a := range accs {
				status := "enabled"
				if a.Disabled {
					status = "disabled"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", a.JID, status, a.Created.UTC().Format("2006-01-02 15:04"))
			}
			return tw.Flush()
		}),
	}
	list.Flags().StringVar(&domain, "domain", "", "only accounts of this domain")
	cmd.AddCommand(add, passwd, disable, enable, del, list)
	return cmd
}

func notFound(j jid.JID, err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("no account %s", j)
	}
	return err
}

// readPassword reads from a file, from a terminal (without echo, twice), or
// from standard input (one line, for scripts).
func readPassword(cmd *cobra.Command, file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		return strings.TrimRight(strings.SplitN(string(b), "\n", 2)[0], "\r"), nil
	}
	in := cmd.InOrStdin()
	if f, ok := in.(*os.File); ok && isTerminal(f) {
		pw, err := promptNoEcho(f, cmd.ErrOrStderr(), "Password: ")
		if err != nil {
			return "", err
		}
		again, err := promptNoEcho(f, cmd.ErrOrStderr(), "Again: ")
		if err != nil {
			return "", err
		}
		if pw != again {
			return "", errors.New("the passwords differ")
		}
		return pw, nil
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", errors.New("no password given on standard input")
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func promptNoEcho(f *os.File, w io.Writer, prompt string) (string, error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", err
	}
	noEcho := *old
	noEcho.Lflag &^= unix.ECHO
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &noEcho); err != nil {
		return "", err
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
	fmt.Fprint(w, prompt)
	line, err := bufio.NewReader(f).ReadString('\n')
	fmt.Fprintln(w)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

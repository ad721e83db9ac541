package main

// Directory sync and login (ldapsync) in the server, and its commands:
//
//	kontor ldap sync [--dry-run] [--full]   sync now; a dry run prints the exact changes and changes nothing
//	kontor ldap check                       connect as the service account and count what the filters select
//	kontor ldap status                      what the last syncs left in the store
//	kontor ldap login USER                  check a directory password by a bind (reads it from stdin or a prompt)
//
// A sync run from the CLI works while the server runs: the store's lease lets
// one sync run at a time, and the account change log makes the server close
// the sessions of accounts the CLI's sync disabled.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/user"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/directory"
	"kontor.im/kontor/core/gate"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/limit"
	"kontor.im/kontor/core/rosterstate"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/sasl"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/ldapsync"
)

func init() { featureCommands = append(featureCommands, ldapCmd) }

// ldapDomain is the XMPP domain of directory accounts.
func (c *Config) ldapDomain() string {
	if c.LDAP.Domain != "" {
		return c.LDAP.Domain
	}
	return c.Domains[0]
}

// ldapStoreOf returns st as the store directory sync needs. Both backends
// implement storage.LDAPState.
func ldapStoreOf(st storage.Store) (ldapsync.Store, error) {
	ls, ok := st.(ldapsync.Store)
	if !ok {
		return nil, fmt.Errorf("ldap: the %s store keeps no directory sync state", st.Backend())
	}
	return ls, nil
}

// ldapRuntime is directory sync in a running server.
type ldapRuntime struct {
	domain string
	client *ldapsync.Client
	syncer *ldapsync.Syncer
	auth   *ldapsync.Authenticator // nil when login.enabled is off
}

// startLDAP builds directory sync for the server: the client, the syncer
// (the policy engine as its sink, the audit trail, roster pushes through
// the router) and the authenticator of the directory's domain, which
// consults the server's authentication guard before any bind.
func startLDAP(cfg *Config, st storage.Store, r *router.Router, guard *limit.Auth, sink directory.Sink, trail audit.Log, log *slog.Logger) (*ldapRuntime, error) {
	ls, err := ldapStoreOf(st)
	if err != nil {
		return nil, err
	}
	rt := &ldapRuntime{domain: cfg.ldapDomain()}
	if rt.client, err = ldapsync.NewClient(cfg.LDAP, log); err != nil {
		return nil, err
	}
	opts := ldapsync.Options{Config: cfg.LDAP, Domain: rt.domain, Store: ls, Client: rt.client, Log: log,
		Pusher: rosterPusher{r}, Erasures: ldapErasures(cfg, st)}
	if sink != nil {
		opts.Sink = sink
	}
	if trail != nil {
		opts.Audit = trail
	}
	if rt.syncer, err = ldapsync.NewSyncer(opts); err != nil {
		rt.client.Close()
		return nil, err
	}
	if cfg.LDAP.Login.Enabled {
		rt.auth, err = ldapsync.NewAuthenticator(ldapsync.AuthOptions{Config: cfg.LDAP, Domain: rt.domain, Store: ls,
			Client: rt.client, Log: log.With("component", "ldap-login"), Guard: guard})
		if err != nil {
			rt.client.Close()
			return nil, err
		}
	}
	return rt, nil
}

// authenticator returns the directory's authenticator for its domain, nil
// for others.
func (rt *ldapRuntime) authenticator(domain string) sasl.Authenticator {
	if rt == nil || rt.auth == nil || domain != rt.domain {
		return nil
	}
	return rt.auth
}

// rosterPusher pushes roster items the sync changed to the owner's online
// resources that asked for the roster.
type rosterPusher struct{ r *router.Router }

func (p rosterPusher) PushRosterItem(owner string, item storage.RosterItem, ver int64) {
	if j, err := jid.Parse(owner); err == nil {
		rosterstate.Push(p.r.Resources(j), rosterstate.Item(item), ver)
	}
}

func (p rosterPusher) PushRosterRemoval(owner, contact string, ver int64) {
	if j, err := jid.Parse(owner); err == nil {
		rosterstate.Push(p.r.Resources(j), rosterstate.Removed(contact), ver)
	}
}

// ldapAdminRoutes adds the admin API's sync trigger:
//
//	POST /ldap/sync          an incremental sync now
//	POST /ldap/sync?full=1   a full one
//
// The sync runs in the server's scheduler; the answer (202) does not wait
// for it. The audit trail records it. The caller is an operator with a
// bearer token whom the access policy allows admin.ldap_sync.
func (s *Server) ldapAdminRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /ldap/sync", s.adminOperator(gate.AccessAdminLDAPSync, func(w http.ResponseWriter, r *http.Request) {
		if s.ldap == nil {
			http.Error(w, "directory sync is not enabled (ldap.enabled)", http.StatusNotFound)
			return
		}
		full := r.URL.Query().Get("full")
		s.ldap.syncer.Trigger(full == "1" || full == "true")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "sync requested\n")
	}))
}

// cliAudit writes a CLI sync's summary to the audit trail with the
// operator who ran it, and saves the head when done.
type cliAudit struct {
	tr       *audit.Trail
	operator string
	command  string
}

func (a cliAudit) Append(ctx context.Context, e audit.Entry) (audit.Entry, error) {
	if e.Details == nil {
		e.Details = map[string]string{}
	}
	e.Details["operator"] = a.operator
	e.Details["command"] = a.command
	return a.tr.Append(ctx, e)
}

// ldapCLI is what the ldap commands share: configuration, store, client.
type ldapCLI struct {
	cfg    Config
	store  storage.Store
	ls     ldapsync.Store
	client *ldapsync.Client
	log    *slog.Logger
}

func openLDAPCLI(cmd *cobra.Command, flags *configFlags) (*ldapCLI, error) {
	cfg, err := loadConfig(*flags)
	if err != nil {
		return nil, err
	}
	if !cfg.LDAP.Enabled {
		return nil, errors.New("ldap: directory sync is not enabled (set ldap.enabled and the ldap section)")
	}
	c := &ldapCLI{cfg: cfg, log: newLogger(&cfg, cmd.ErrOrStderr())}
	if c.store, err = openStore(cmd.Context(), &cfg); err != nil {
		return nil, err
	}
	if c.ls, err = ldapStoreOf(c.store); err != nil {
		c.store.Close()
		return nil, err
	}
	if c.client, err = ldapsync.NewClient(cfg.LDAP, c.log); err != nil {
		c.store.Close()
		return nil, err
	}
	return c, nil
}

func (c *ldapCLI) close() {
	c.client.Close()
	c.store.Close()
}

func (c *ldapCLI) syncer(a audit.Log) (*ldapsync.Syncer, error) {
	opts := ldapsync.Options{Config: c.cfg.LDAP, Domain: c.cfg.ldapDomain(), Store: c.ls, Client: c.client, Log: c.log,
		Erasures: ldapErasures(&c.cfg, c.ls)}
	if a != nil {
		opts.Audit = a
	}
	return ldapsync.NewSyncer(opts)
}

func ldapCmd(flags *configFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "ldap", Short: "Directory sync and login (Active Directory, OpenLDAP)"}
	var dryRun, full, quiet bool
	syncCmd := &cobra.Command{
		Use:   "sync",
		Short: "Sync accounts, rosters and vCards with the directory now",
		Long: "Sync accounts, shared roster groups and vCards with the directory now: incremental, or full when " +
			"due (--full forces it). --dry-run prints the exact changes a sync would make and changes nothing. " +
			"Safe while the server runs: one sync runs at a time, and sessions of disabled accounts are closed.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := openLDAPCLI(cmd, flags)
			if err != nil {
				return err
			}
			defer c.close()
			var trail *audit.Trail
			var log audit.Log
			if !dryRun {
				as, err := auditStoreOf(c.store)
				if err != nil {
					return err
				}
				trail = audit.New(as, audit.WithAnchor(c.cfg.Audit.anchorPath(c.cfg.DataDir), c.cfg.Audit.AnchorInterval))
				log = cliAudit{tr: trail, operator: osActor(os.Getenv, user.Current), command: cmd.CommandPath()}
			}
			sy, err := c.syncer(log)
			if err != nil {
				return err
			}
			prog := newProgress(cmd.ErrOrStderr())
			rep, err := sy.Sync(cmd.Context(), ldapsync.SyncOptions{Full: full, DryRun: dryRun, Reason: "kontor ldap sync", Progress: prog.update})
			prog.done()
			if trail != nil {
				if cerr := trail.Close(context.WithoutCancel(cmd.Context())); cerr != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v\n", cerr)
				}
			}
			if err != nil {
				return err
			}
			if quiet {
				for _, e := range rep.Errors {
					fmt.Fprintf(cmd.OutOrStdout(), "error: %s\n", e)
				}
				fmt.Fprintln(cmd.OutOrStdout(), rep.Summary())
				return nil
			}
			_, err = rep.WriteTo(cmd.OutOrStdout())
			return err
		},
	}
	syncCmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the changes a sync would make; change nothing")
	syncCmd.Flags().BoolVar(&full, "full", false, "a full sync, whatever is due")
	syncCmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print errors and the summary only")

	checkCmd := &cobra.Command{
		Use:   "check",
		Short: "Connect as the service account and count what the filters select",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := openLDAPCLI(cmd, flags)
			if err != nil {
				return err
			}
			defer c.close()
			sy, err := c.syncer(nil)
			if err != nil {
				return err
			}
			r, err := sy.Check(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "server:          %s\n", strings.TrimSpace(r.Vendor+" ("+r.Identity+")"))
			fmt.Fprintf(out, "active directory: %v\n", r.ActiveDirectory)
			fmt.Fprintf(out, "users:           %d under %s\n", r.Users, c.cfg.LDAP.Resolved().Users.BaseDN)
			if !r.ActiveDirectory {
				fmt.Fprintf(out, "disabled users:  %d\n", r.Disabled)
			}
			fmt.Fprintf(out, "groups:          %d under %s\n", r.Groups, c.cfg.LDAP.Resolved().Groups.BaseDN)
			fmt.Fprintf(out, "change mark:     %s\n", r.Mark)
			fmt.Fprintf(out, "accounts go to:  %s\n", c.cfg.ldapDomain())
			return nil
		},
	}
	statusCmd := &cobra.Command{
		Use:   "status",
		Short: "Show what the last syncs left in the store",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := openLDAPCLI(cmd, flags)
			if err != nil {
				return err
			}
			defer c.close()
			sy, err := c.syncer(nil)
			if err != nil {
				return err
			}
			st, err := sy.Status(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			last := "never"
			if !st.LastFull.IsZero() {
				last = st.LastFull.Local().Format(time.RFC3339)
			}
			fmt.Fprintf(out, "accounts from the directory: %d (%d disabled by the directory)\n", st.Accounts, st.Disabled)
			fmt.Fprintf(out, "retired (gone, not yet deleted): %d\n", st.Gone)
			fmt.Fprintf(out, "groups: %d\n", st.Groups)
			fmt.Fprintf(out, "last full sync: %s\n", last)
			for _, k := range auditSortedKeys(st.Marks) {
				fmt.Fprintf(out, "mark %s: %s\n", k, st.Marks[k])
			}
			return nil
		},
	}
	var pwFile string
	loginCmd := &cobra.Command{
		Use:   "login USER",
		Short: "Check a user's directory password the way the server does (a bind)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := openLDAPCLI(cmd, flags)
			if err != nil {
				return err
			}
			defer c.close()
			a, err := ldapsync.NewAuthenticator(ldapsync.AuthOptions{Config: c.cfg.LDAP, Domain: c.cfg.ldapDomain(),
				Store: c.ls, Client: c.client, Log: c.log})
			if err != nil {
				return err
			}
			pw, err := readPassword(cmd, pwFile)
			if err != nil {
				return err
			}
			switch err := a.VerifyPlain(cmd.Context(), args[0], pw); {
			case err == nil:
				fmt.Fprintln(cmd.OutOrStdout(), "password accepted")
				return nil
			case errors.Is(err, sasl.ErrDisabled):
				return errors.New("the password is right, but the account is disabled")
			case errors.Is(err, sasl.ErrBadPassword), errors.Is(err, sasl.ErrUnknownUser):
				return errors.New("refused (the log above says why)")
			default:
				return err
			}
		},
	}
	loginCmd.Flags().StringVar(&pwFile, "password-file", "", "read the password from this file instead of standard input")
	cmd.AddCommand(syncCmd, checkCmd, statusCmd, loginCmd)
	return cmd
}

// progress shows a long sync's progress on a terminal: one line, rewritten
// at most ten times a second. It writes nothing when w is not a terminal.
type progress struct {
	w     io.Writer
	on    bool
	mu    sync.Mutex
	last  time.Time
	shown bool
}

func newProgress(w io.Writer) *progress {
	f, ok := w.(*os.File)
	return &progress{w: w, on: ok && isTerminal(f)}
}

func (p *progress) update(pr ldapsync.Progress) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.last) < 100*time.Millisecond && pr.Done != pr.Total {
		return
	}
	p.last = time.Now()
	line := fmt.Sprintf("%s: %d", pr.Phase, pr.Done)
	if pr.Total > 0 {
		line += fmt.Sprintf(" of %d (%d%%)", pr.Total, pr.Done*100/pr.Total)
	}
	fmt.Fprintf(p.w, "\r\033[K%s", line)
	p.shown = true
}

func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

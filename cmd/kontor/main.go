// Command kontor is the Kontor XMPP server and its administration tool.
//
//	kontor serve                 run the server (zero-config: localhost, embedded store, self-signed TLS)
//	kontor user add JID          add an account (also while the server runs)
//	kontor user passwd|disable|enable|delete JID, kontor user list
//	kontor config check          report every problem in the configuration
//	kontor modules [--markdown]  list the modules and the protocols they implement
//	kontor operator add|list|disable|enable|token   operators (admin, dpo, auditor, works_council, legal)
//	kontor request list|show|approve|deny           access requests (dual control)
//	kontor catalogue [--format md|html]             monitoring-capable features, for the works agreement
//
// Configuration comes from kontor.yaml (or --config), KONTOR_* environment
// variables and flags, in that order of precedence from low to high; see
// defaults.yaml for every key.
//
// The CLI uses cobra and viper because they are what Go operators already
// know (kubectl, hugo, docker's CLI): familiar flags, help and env handling
// beat a homegrown parser.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/storage/postgres"
	"kontor.im/kontor/core/storage/sqlite"
)

func main() {
	if err := newRootCmd(os.Stdout, os.Stderr).Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "kontor:", err)
		os.Exit(1)
	}
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	var flags configFlags
	root := &cobra.Command{
		Use:           "kontor",
		Short:         "Kontor: a self-hosted XMPP server with an encrypted, policy-governed archive",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	flags.register(root.PersistentFlags())
	root.AddCommand(serveCmd(&flags), userCmd(&flags), configCmd(&flags), modulesCmd())
	for _, c := range featureCommands {
		root.AddCommand(c(&flags))
	}
	return root
}

// featureCommands are the commands of features that live in files of their
// own (keys, policy, ldap, audit, ...), added from each file's init.
var featureCommands []func(*configFlags) *cobra.Command

func newLogger(cfg *Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// openStore opens the configured storage backend. On error the store is
// a nil interface (never a nil *postgres.Store or
// *sqlite.Store in a non-nil one, which callers would try to close).
func openStore(ctx context.Context, cfg *Config) (storage.Store, error) {
	switch cfg.Storage.Backend {
	case "postgres":
		st, err := postgres.Open(ctx, cfg.Storage.PostgresDSN)
		if err != nil {
			return nil, err
		}
		return st, nil
	default:
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, err
		}
		st, err := sqlite.Open(ctx, cfg.Storage.SQLitePath)
		if err != nil {
			return nil, err
		}
		return st, nil
	}
}

func serveCmd(flags *configFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(*flags)
			if err != nil {
				return err
			}
			log := newLogger(&cfg, cmd.ErrOrStderr())
			defer startGCFloor(cfg.GCMinHeap, log)()
			defer startProcTuner(cfg.AdaptiveProcs, log)()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			srv, err := startServer(ctx, cfg, log)
			if err != nil {
				return err
			}
			srv.banner(cmd.OutOrStdout(), flags.file)
			<-ctx.Done()
			log.Info("shutting down", "deadline", cfg.ShutdownTimeout)
			sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("shutdown: %w", err)
			}
			return nil
		},
	}
}

func configCmd(flags *configFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Inspect the configuration"}
	cmd.AddCommand(&cobra.Command{
		Use:   "check",
		Short: "Report every unknown key or bad value, with its path",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := loadConfig(*flags); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "configuration OK")
			return nil
		},
	}, &cobra.Command{
		Use:   "defaults",
		Short: "Print every configuration key with its default and a comment",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprint(cmd.OutOrStdout(), defaultYAML)
		},
	})
	return cmd
}

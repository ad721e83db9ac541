package ldapsync

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kontor.im/kontor/core/sasl"
	"kontor.im/kontor/ldapsync/slapdtest"
)

// deadURL is an ldap:// URL on a loopback port where nothing listens.
func deadURL(t *testing.T, scheme string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return scheme + "://" + addr + "/"
}

func TestConnections(t *testing.T) {
	t.Parallel()
	s := slapdtest.Start(t, slapdtest.Options{Seed: treeLDIF(treeUsers(t))})
	otherCA := filepath.Join(t.TempDir(), "other-ca.pem")
	caPEM, _, _, err := slapdtest.NewCA("other", []string{"localhost"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(otherCA, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		mutate  func(c *Config)
		wantErr string // "" = the sync works
	}{
		{"ldap:// with StartTLS", func(c *Config) {}, ""},
		{"ldaps://", func(c *Config) { c.URLs = []string{s.LDAPSURL} }, ""},
		{"fail-over past a dead server", func(c *Config) { c.URLs = []string{deadURL(t, "ldaps"), s.URL} }, ""},
		{"a name the certificate does not hold", func(c *Config) { c.TLSServerName = "dc.elsewhere.example" }, "certificate"},
		{"another CA", func(c *Config) { c.CAFile = otherCA }, "certificate"},
		{"wrong service password", func(c *Config) { c.BindPassword = "wrong" }, "Invalid Credentials"},
		{"every server dead", func(c *Config) { c.URLs = []string{deadURL(t, "ldap"), deadURL(t, "ldaps")} }, "no directory server is reachable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(s)
			tt.mutate(&cfg)
			c, err := NewClient(cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			sy, err := NewSyncer(Options{Config: cfg, Domain: testDomain, Store: openStore(t, "sqlite"), Client: c, Log: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			rep, err := sy.Sync(context.Background(), SyncOptions{DryRun: true})
			if tt.wantErr == "" {
				if err != nil || rep.Created != 50 {
					t.Fatalf("Sync = %v, %v; want 50 planned creations", rep, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Sync error = %v, want one containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), cfg.BindPassword) {
				t.Errorf("the error shows the service password: %v", err)
			}
		})
	}
}

// TestReconnect: the directory goes away and comes back; syncs and logins
// fail meanwhile (temporarily: the client is told to try later) and work
// again afterwards, on new connections.
func TestReconnect(t *testing.T) {
	t.Parallel()
	// A back-off long enough that a slow (-race, loaded) machine is
	// still inside it for the checks below.
	e := newEnv(t, "sqlite", treeLDIF(treeUsers(t)), func(c *Config) {
		c.Groups.Roster = false
		c.ReconnectBackoff, c.MaxReconnectBackoff = 2*time.Second, 2*time.Second
	})
	e.sync(t, SyncOptions{})
	a, err := NewAuthenticator(AuthOptions{Config: e.cfg, Domain: testDomain, Store: e.store, Client: e.client, Log: e.syncer.log})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := a.VerifyPlain(ctx, "s01", password("s01")); err != nil {
		t.Fatalf("login before: %v", err)
	}

	e.slapd.Stop()
	if _, err := e.syncer.Sync(ctx, SyncOptions{}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Sync while the directory is down = %v, want ErrUnavailable", err)
	}
	err = a.VerifyPlain(ctx, "s01", password("s01"))
	if err == nil || errors.Is(err, sasl.ErrBadPassword) || errors.Is(err, sasl.ErrUnknownUser) {
		t.Errorf("login while the directory is down = %v, want a temporary failure", err)
	}
	// In back-off, the server is not even dialled.
	start := time.Now()
	if _, err := e.syncer.Sync(ctx, SyncOptions{}); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "back-off") {
		t.Errorf("Sync during back-off = %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("a sync during back-off took %v", d)
	}

	e.slapd.Restart(t)
	time.Sleep(e.cfg.MaxReconnectBackoff + 50*time.Millisecond)
	if rep, err := e.syncer.Sync(ctx, SyncOptions{}); err != nil || len(rep.Errors) != 0 {
		t.Fatalf("Sync after the restart = %v, %v", rep, err)
	}
	if err := a.VerifyPlain(ctx, "s01", password("s01")); err != nil {
		t.Errorf("login after the restart: %v", err)
	}
	if !strings.Contains(e.log(), "directory server reachable again") {
		t.Error("the recovery was not logged")
	}
}

// TestSyncCancel: cancelling a sync's context ends it promptly.
func TestSyncCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite", treeLDIF(treeUsers(t)), func(c *Config) { c.PageSize = 1 })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := e.syncer.Sync(ctx, SyncOptions{Progress: func(p Progress) {
			if p.Phase == "users" && p.Done == 5 {
				cancel()
			}
		}})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Sync = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Sync did not return after its context was cancelled")
	}
	if accts, _ := e.store.ListAccounts(context.Background(), testDomain); len(accts) != 0 {
		t.Errorf("a cancelled sync created %d accounts", len(accts))
	}
}

package main

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

// TestBannerTellsTheClientPort: the first-run banner names the port the
// server really listens on for clients, not the standard one.
func TestBannerTellsTheClientPort(t *testing.T) {
	tcp := func(port int) net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port} }
	for _, tc := range []struct {
		addrs map[string]net.Addr
		want  string // "" : no port advice
	}{
		{map[string]net.Addr{"starttls": tcp(25222), "direct_tls": tcp(25223)}, "port 25222."},
		{map[string]net.Addr{"direct_tls": tcp(5223)}, "port 5223."},
		{map[string]net.Addr{"https": tcp(5443)}, ""},
	} {
		s := &Server{cfg: Config{Domains: []string{"example.com"}, DataDir: "kontor-data"}, Addrs: tc.addrs}
		s.cfg.Storage.Backend = "sqlite"
		var b strings.Builder
		s.banner(&b, "")
		out := b.String()
		if !strings.Contains(out, "user add alice@example.com") {
			t.Errorf("no advice to add a user:\n%s", out)
		}
		if tc.want == "" {
			if strings.Contains(out, "port ") {
				t.Errorf("port advice without a client listener:\n%s", out)
			}
		} else if !strings.Contains(out, tc.want) {
			t.Errorf("want %q in:\n%s", tc.want, out)
		}
	}
}

// TestStartServerReportsStoreError: a server whose database cannot be
// reached fails to start with that error (its cleanup used to panic
// closing a store that was never opened, hiding the error).
func TestStartServerReportsStoreError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	cfg := defaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Storage.Backend = "postgres"
	cfg.Storage.PostgresDSN = "postgres://kontor@" + addr + "/kontor?sslmode=disable&connect_timeout=2"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := startServer(ctx, cfg, slog.New(slog.DiscardHandler))
	if err == nil {
		s.Shutdown(context.Background())
		t.Fatal("the server started without its database")
	}
	if !strings.Contains(err.Error(), "postgres") {
		t.Errorf("error %q does not name the database", err)
	}
}

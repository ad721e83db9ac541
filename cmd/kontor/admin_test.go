package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAdminPolicyReload: POST /policy/reload swaps in a changed policy
// directory and refuses a broken one, keeping the running policy.
func TestAdminPolicyReload(t *testing.T) {
	cfg := defaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.C2S.StartTLSAddr = "127.0.0.1:0"
	cfg.C2S.DirectTLSAddr = ""
	cfg.Admin.Addr = "127.0.0.1:0"
	cfg.HTTP.Addr = "127.0.0.1:0"
	dir := t.TempDir()
	cfg.Policy.Dir = dir
	cfg.resolvePaths()
	srv, err := startServer(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	url := "http://" + srv.Addrs["admin"].String() + "/policy/reload"
	post := func() (int, string) {
		t.Helper()
		resp, err := http.Post(url, "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post(); code != http.StatusOK {
		t.Fatalf("reload of a good policy: %d %s", code, body)
	}
	if err := os.WriteFile(filepath.Join(dir, "broken.rego"), []byte("package kontor.contact\nallow contains if {\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, body := post()
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "broken.rego") {
		t.Fatalf("reload of a broken policy: %d %s", code, body)
	}
}

package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/storage"
)

// addTestOperator adds an operator with roles to st and returns their token.
func addTestOperator(t *testing.T, st storage.Store, name string, roles ...string) string {
	t.Helper()
	ops, err := operatorStoreOf(st)
	if err != nil {
		t.Fatal(err)
	}
	token, hash := newOperatorToken()
	if err := ops.CreateOperator(t.Context(), storage.Operator{ID: name, Roles: roles, TokenHash: hash}); err != nil {
		t.Fatal(err)
	}
	return token
}

// adminPost posts to the admin API with a bearer token ("" for none).
func adminPost(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAdminAPIOperators: the mutating endpoints want an operator's token
// and the admin role (the access policy's admin.* actions); the audit trail
// names the caller; /healthz and /metrics stay open.
func TestAdminAPIOperators(t *testing.T) {
	cfg := defaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.C2S.StartTLSAddr = "127.0.0.1:0"
	cfg.C2S.DirectTLSAddr = ""
	cfg.Admin.Addr = "127.0.0.1:0"
	cfg.HTTP.Addr = "" // not the default :5443, which another test or server may hold
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
	base := "http://" + srv.Addrs["admin"].String()
	admin := addTestOperator(t, srv.store, "ada", "admin")
	dpo := addTestOperator(t, srv.store, "erika", "dpo")
	gone := addTestOperator(t, srv.store, "gone", "admin")
	ops, _ := operatorStoreOf(srv.store)
	if err := ops.SetOperatorDisabled(t.Context(), "gone", true); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, path, token string
		want              int
	}{
		{"no token", "/policy/reload", "", http.StatusUnauthorized},
		{"unknown token", "/policy/reload", tokenPrefix + "AAAA", http.StatusUnauthorized},
		{"disabled operator", "/policy/reload", gone, http.StatusUnauthorized},
		{"not an admin", "/policy/reload", dpo, http.StatusForbidden},
		{"admin", "/policy/reload", admin, http.StatusOK},
		{"ldap sync without a token", "/ldap/sync", "", http.StatusUnauthorized},
		{"ldap sync by a dpo", "/ldap/sync", dpo, http.StatusForbidden},
		{"ldap sync by an admin (sync is off)", "/ldap/sync", admin, http.StatusNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if code, body := adminPost(t, base+tt.path, tt.token); code != tt.want {
				t.Errorf("POST %s: %d %s, want %d", tt.path, code, body, tt.want)
			}
		})
	}
	for _, path := range []string{"/healthz", "/metrics"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s without a token: %d", path, resp.StatusCode)
		}
	}
	es, err := srv.audit.Query(t.Context(), audit.Query{Action: "policy.access", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var byAda, byErika int
	for _, e := range es {
		if host, _, err := net.SplitHostPort(e.Details["remote"]); err != nil || host != "127.0.0.1" {
			t.Errorf("audit entry %d does not name the caller's address: remote=%q", e.Seq, e.Details["remote"])
		}
		switch {
		case e.Actor == "ada" && e.Details["allow"] == "true":
			byAda++
		case e.Actor == "erika" && e.Details["allow"] == "false":
			byErika++
		}
	}
	if byAda != 2 || byErika != 2 {
		t.Errorf("audit: %d allowed calls by ada (want 2), %d refused by erika (want 2): %+v", byAda, byErika, es)
	}
}

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
	token := addTestOperator(t, srv.store, "ada", "admin")
	post := func() (int, string) {
		t.Helper()
		return adminPost(t, url, token)
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

// TestAdminPProf: Go's profiles are on the admin listener only when
// admin.pprof is set.
func TestAdminPProf(t *testing.T) {
	for _, on := range []bool{false, true} {
		ts := startTestServer(t, "sqlite", func(c *Config) { c.Admin.PProf = on })
		resp, err := http.Get("http://" + ts.addr("admin") + "/debug/pprof/heap?debug=1")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := resp.StatusCode == http.StatusOK && strings.Contains(string(body), "heap profile"); got != on {
			t.Errorf("admin.pprof %v: GET /debug/pprof/heap: %d %.60q", on, resp.StatusCode, body)
		}
	}
}

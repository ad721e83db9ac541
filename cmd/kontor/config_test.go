package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kontor.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultConfigIsValid(t *testing.T) {
	t.Chdir(t.TempDir())
	cfg, err := loadConfig(configFlags{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Storage.Backend != "sqlite" || cfg.Domains[0] != "localhost" || cfg.C2S.MaxStanzaBytes != 256<<10 ||
		cfg.Storage.SQLitePath != filepath.Join("kontor-data", "kontor.db") || cfg.C2S.PingInterval != 5*time.Minute {
		t.Fatalf("defaults: %+v", cfg)
	}
}

func TestConfigProblems(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // each must appear as a line of the error
	}{
		{"unknown top-level key", "domainz: [a.example]\n", []string{"domainz: unknown key"}},
		{"unknown nested key", "c2s:\n  max_stanza_byte: 5\n", []string{"c2s.max_stanza_byte: unknown key"}},
		{"wrong type", "c2s:\n  queue_size: lots\n", []string{`c2s.queue_size: "lots" is not a whole number`}},
		{"bad duration", "c2s:\n  ping_timeout: soon\n", []string{"c2s.ping_timeout:"}},
		{"too small", "c2s:\n  max_stanza_bytes: 100\n", []string{"c2s.max_stanza_bytes: must be at least 10000"}},
		{"bad domain", "domains: [\"not a domain\"]\n", []string{`domains[0]: "not a domain" is not a valid domain`}},
		{"non-canonical domain", "domains: [Example.COM]\n", []string{`domains[0]: "Example.COM" is not in canonical form (write "example.com")`}},
		{"duplicate domain", "domains: [a.example, a.example]\n", []string{`domains[1]: "a.example" is listed twice`}},
		{"postgres without DSN", "storage:\n  backend: postgres\n", []string{"storage.postgres_dsn: required when storage.backend is postgres"}},
		{"unknown backend", "storage:\n  backend: mysql\n", []string{`storage.backend: "mysql" is not sqlite or postgres`}},
		{"half a certificate", "tls:\n  cert_file: /nonexistent.crt\n", []string{"tls: cert_file and key_file go together", "tls.cert_file:"}},
		{"bad address", "c2s:\n  starttls_addr: nowhere\n", []string{`c2s.starttls_addr: "nowhere" is not host:port`}},
		{"plain public URL", "http:\n  public_url: http://chat.example.com\n", []string{`http.public_url: "http://chat.example.com" must be an https:// URL`}},
		{"bad HTTPS address", "http:\n  addr: nowhere\n", []string{`http.addr: "nowhere" is not host:port`}},
		{"BOSH hold", "http:\n  bosh_max_hold: 0\n", []string{"http.bosh_max_hold"}},
		{"no listener", "c2s:\n  starttls_addr: \"\"\n  direct_tls_addr: \"\"\n", []string{"c2s: starttls_addr and direct_tls_addr are both empty"}},
		{"watch too slow", "auth:\n  account_watch_interval: 10s\n", []string{"auth.account_watch_interval: must be at most 5s"}},
		{"unknown mechanism", "auth:\n  mechanisms: [PLAIN, DIGEST-MD5]\n", []string{`auth.mechanisms: unknown mechanism "DIGEST-MD5"`}},
		{"unknown module", "modules:\n  enabled: [nope]\n", []string{`modules.enabled[0]: unknown module "nope"`}},
		{"options for an unknown module", "modules:\n  nope:\n    x: 1\n", []string{"modules.nope: unknown module"}},
		{"log level", "log:\n  level: loud\n", []string{`log.level: "loud" is not one of debug, info, warn, error`}},
		{"registration domain", "registration:\n  open: true\n  domains: [\"a@b\"]\n", []string{`registration: domains: "a@b" is not a domain`}},
		{"module option", "modules:\n  offline:\n    max_per_usr: 5\n", []string{"modules.offline: max_per_usr: unknown key"}},
		{"several at once", "c2s:\n  queue_size: 1\nlog:\n  format: xml\n", []string{"c2s.queue_size: must be at least 16", `log.format: "xml" is not text or json`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig(configFlags{file: writeConfig(t, tt.yaml)})
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error = %v, want a ConfigError", err)
			}
			for _, w := range tt.want {
				found := false
				for _, p := range ce.Problems {
					if strings.HasPrefix(p, w) {
						found = true
					}
				}
				if !found {
					t.Errorf("missing problem %q in:\n  %s", w, strings.Join(ce.Problems, "\n  "))
				}
			}
		})
	}
}

func TestConfigPrecedence(t *testing.T) {
	file := writeConfig(t, "domains: [file.example]\nc2s:\n  queue_size: 100\n  max_stanza_bytes: 20000\n")
	t.Setenv("KONTOR_C2S_QUEUE_SIZE", "200")
	t.Setenv("KONTOR_LOG_LEVEL", "debug")
	cfg, err := loadConfig(configFlags{file: file, domains: []string{"flag.example"}, dataDir: "/tmp/kontor-flag"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.C2S.QueueSize != 200 || cfg.C2S.MaxStanzaBytes != 20000 || cfg.Log.Level != "debug" {
		t.Fatalf("env did not override the file, or the file was lost: %+v", cfg.C2S)
	}
	if len(cfg.Domains) != 1 || cfg.Domains[0] != "flag.example" || cfg.DataDir != "/tmp/kontor-flag" {
		t.Fatalf("flags did not override: %v %s", cfg.Domains, cfg.DataDir)
	}
	t.Setenv("KONTOR_DOMAINS", "a.example,b.example")
	cfg, err = loadConfig(configFlags{file: file})
	if err != nil || len(cfg.Domains) != 2 || cfg.Domains[1] != "b.example" {
		t.Fatalf("list from env: %v %v", cfg.Domains, err)
	}
}

func TestConfigCheckCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	root := newRootCmd(&out, &errOut)
	root.SetArgs([]string{"config", "check", "--config", writeConfig(t, "c2s:\n  bogus: 1\n")})
	err := root.Execute()
	if err == nil || !strings.Contains(err.Error(), "c2s.bogus: unknown key") {
		t.Fatalf("config check = %v", err)
	}
	out.Reset()
	root = newRootCmd(&out, &errOut)
	root.SetArgs([]string{"config", "check", "--config", writeConfig(t, "domains: [ok.example]\n")})
	if err := root.Execute(); err != nil || !strings.Contains(out.String(), "configuration OK") {
		t.Fatalf("config check on a good file = %v, %q", err, out.String())
	}
	// The server refuses to start on the same bad configuration.
	root = newRootCmd(&out, &errOut)
	root.SetArgs([]string{"serve", "--config", writeConfig(t, "c2s:\n  bogus: 1\n")})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "c2s.bogus: unknown key") {
		t.Fatalf("serve started on a bad configuration: %v", err)
	}
}

// TestConfigAliasBomb: a file whose YAML aliases expand to millions of
// values, or an alias inside its own anchor, is refused with a clear error
// before anything decodes it; a file of ordinary anchors is fine.
func TestConfigAliasBomb(t *testing.T) {
	var bomb strings.Builder
	bomb.WriteString("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&bomb, "l%d: &l%d [*l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	for _, tt := range []struct{ name, yaml, want string }{
		{"billion laughs", bomb.String(), "more than 100000 values"},
		{"self reference", "a: &a [*a]\n", "inside its own anchor"},
		{"too big", "# " + strings.Repeat("x", maxConfigBytes) + "\n", "at most"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig(configFlags{file: writeConfig(t, tt.yaml)})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("loadConfig: %v, want an error saying %q", err, tt.want)
			}
		})
	}
	ok := "shutdown_timeout: &t 20s\nc2s:\n  write_timeout: *t\n"
	cfg, err := loadConfig(configFlags{file: writeConfig(t, ok)})
	if err != nil || cfg.C2S.WriteTimeout != 20*time.Second {
		t.Errorf("an ordinary alias: write_timeout %v, %v; want 20s", cfg.C2S.WriteTimeout, err)
	}
}

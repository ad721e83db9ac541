package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/storage/pgtest"
)

// auditEnv is a data directory and configuration file for `kontor`
// commands on one backend, and a way to tamper with its database directly.
type auditEnv struct {
	backend string
	dir     string
	cfgFile string
	dsn     string // postgres
	// operatorArgs authenticate an operator for the commands that ask the
	// access policy (gdpr, hold, ediscovery); see allowGDPROperator.
	operatorArgs []string
}

func newAuditEnv(t *testing.T, backend string) *auditEnv {
	t.Helper()
	e := &auditEnv{backend: backend, dir: t.TempDir()}
	e.cfgFile = filepath.Join(e.dir, "kontor.yaml")
	yaml := fmt.Sprintf("domains: [localhost]\ndata_dir: %q\nstorage:\n  backend: %s\n", e.dir, backend)
	if backend == "postgres" {
		e.dsn = pgtest.DSN(t)
		yaml += fmt.Sprintf("  postgres_dsn: %q\n", e.dsn)
	}
	if err := os.WriteFile(e.cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// run runs `kontor args...` with this environment's configuration.
func (e *auditEnv) run(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRootCmd(&out, &errOut)
	root.SetIn(strings.NewReader(stdin))
	if len(args) > 0 && len(e.operatorArgs) > 0 && slices.Contains([]string{"gdpr", "hold", "ediscovery", "report"}, args[0]) {
		args = append(slices.Clip(args), e.operatorArgs...)
	}
	root.SetArgs(append(args, "--config", e.cfgFile))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

// must runs a command that has to succeed.
func (e *auditEnv) must(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, errOut, err := e.run(t, stdin, args...)
	if err != nil {
		t.Fatalf("kontor %s: %v\nstderr: %s", strings.Join(args, " "), err, errOut)
	}
	return out
}

func (e *auditEnv) headFile() string { return filepath.Join(e.dir, "keys", "audit.head") }

// tamper runs SQL on the database the way its owner could, append-only
// triggers out of the way: database/sql for the SQLite file, psql for
// PostgreSQL.
func (e *auditEnv) tamper(t *testing.T, stmts ...string) {
	t.Helper()
	switch e.backend {
	case "sqlite":
		db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: filepath.Join(e.dir, "kontor.db")}).EscapedPath()+"?_busy_timeout=10000")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for _, s := range append([]string{`DROP TRIGGER audit_log_no_update`, `DROP TRIGGER audit_log_no_delete`}, stmts...) {
			if _, err := db.Exec(s); err != nil {
				t.Fatalf("tamper: %s: %v", s, err)
			}
		}
	case "postgres":
		args := []string{"-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", e.dsn, "-c", `ALTER TABLE audit_log DISABLE TRIGGER USER`}
		for _, s := range stmts {
			args = append(args, "-c", s)
		}
		out, err := exec.Command(psqlPath(t), args...).CombinedOutput()
		if err != nil {
			t.Fatalf("tamper: psql: %v\n%s", err, out)
		}
	}
}

// psqlPath finds psql, which comes with the PostgreSQL server pgtest runs.
func psqlPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("psql"); err == nil {
		return p
	}
	if ms, _ := filepath.Glob("/usr/lib/postgresql/*/bin/psql"); len(ms) > 0 {
		return ms[len(ms)-1]
	}
	t.Fatal("psql not found (it comes with the postgresql packages)")
	return ""
}

type auditLine struct {
	Seq            int64             `json:"seq"`
	At             string            `json:"at"`
	Actor          string            `json:"actor"`
	Action         string            `json:"action"`
	Subject        string            `json:"subject"`
	Reason         string            `json:"reason"`
	PolicyRevision string            `json:"policy_revision"`
	Details        map[string]string `json:"details"`
	PrevHash       string            `json:"prev_hash"`
	Hash           string            `json:"hash"`
}

func parseAuditLines(t *testing.T, out string) []auditLine {
	t.Helper()
	var lines []auditLine
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var a auditLine
		if err := json.Unmarshal([]byte(l), &a); err != nil {
			t.Fatalf("not a JSON line: %q: %v", l, err)
		}
		lines = append(lines, a)
	}
	return lines
}

const auditTestPassword = "correct horse battery staple"

// userLifecycle runs every audited `kontor user` command once on alice.
func userLifecycle(t *testing.T, e *auditEnv) {
	t.Helper()
	e.must(t, auditTestPassword+"\n", "user", "add", "alice@localhost", "--reason", "TICKET-7")
	e.must(t, auditTestPassword+"2\n", "user", "passwd", "alice@localhost", "--reason", "TICKET-7")
	e.must(t, "", "user", "disable", "alice@localhost", "--reason", "TICKET-7")
	e.must(t, "", "user", "enable", "alice@localhost", "--reason", "TICKET-7")
	e.must(t, "", "user", "delete", "alice@localhost", "--reason", "TICKET-7")
}

// TestAuditUserCommands: each `kontor user` change is an entry, with the
// sudo user as the actor, and `kontor audit list` finds them. Not parallel:
// it sets SUDO_USER.
func TestAuditUserCommands(t *testing.T) {
	t.Setenv("SUDO_USER", "operator-jane")
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			e := newAuditEnv(t, backend)
			userLifecycle(t, e)
			e.must(t, "", "user", "list") // not audited

			out := e.must(t, "", "audit", "list", "--json")
			if strings.Contains(out, auditTestPassword) {
				t.Fatal("the audit trail holds the password")
			}
			lines := parseAuditLines(t, out)
			wantActions := []string{"account.create", "account.password", "account.disable", "account.enable", "account.delete"}
			if len(lines) != len(wantActions) {
				t.Fatalf("%d entries, want %d:\n%s", len(lines), len(wantActions), out)
			}
			host, _ := os.Hostname()
			for i, l := range lines {
				if l.Seq != int64(i+1) || l.Action != wantActions[i] || l.Actor != "operator-jane" ||
					l.Subject != "alice@localhost" || l.Reason != "TICKET-7" {
					t.Errorf("entry %d = %+v, want %s by operator-jane on alice@localhost", i+1, l, wantActions[i])
				}
				wantCmd := map[string]string{"account.create": "kontor user add", "account.password": "kontor user passwd",
					"account.disable": "kontor user disable", "account.enable": "kontor user enable", "account.delete": "kontor user delete"}[l.Action]
				if l.Details["command"] != wantCmd || l.Details["host"] != host || l.Details["os_uid"] != fmt.Sprint(os.Getuid()) {
					t.Errorf("entry %d details = %v, want command %q, host %q", i+1, l.Details, wantCmd, host)
				}
				if len(l.Hash) != 64 || len(l.PrevHash) != 64 {
					t.Errorf("entry %d hashes %q %q", i+1, l.PrevHash, l.Hash)
				}
				if _, err := time.Parse(time.RFC3339Nano, l.At); err != nil {
					t.Errorf("entry %d at %q: %v", i+1, l.At, err)
				}
			}

			tests := []struct {
				name string
				args []string
				want []int64
				hint string // on stderr
			}{
				{"by actor", []string{"--actor", "operator-jane"}, []int64{1, 2, 3, 4, 5}, ""},
				{"unknown actor", []string{"--actor", "nobody"}, nil, ""},
				{"by subject", []string{"--subject", "alice@localhost"}, []int64{1, 2, 3, 4, 5}, ""},
				{"action prefix", []string{"--action", "account."}, []int64{1, 2, 3, 4, 5}, ""},
				{"one action", []string{"--action", "account.disable"}, []int64{3}, ""},
				{"not a word prefix", []string{"--action", "account.d"}, nil, ""},
				{"since an age", []string{"--since", "1h"}, []int64{1, 2, 3, 4, 5}, ""},
				{"until long ago", []string{"--until", "2000-01-01"}, nil, ""},
				{"newest two", []string{"--limit", "2"}, []int64{4, 5}, "older entries: --before 4"},
				{"page back", []string{"--limit", "2", "--before", "4"}, []int64{2, 3}, "older entries: --before 2"},
				{"page forward", []string{"--limit", "2", "--after", "1"}, []int64{2, 3}, "newer entries: --after 3"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					out, errOut, err := e.run(t, "", append([]string{"audit", "list", "--json"}, tt.args...)...)
					if err != nil {
						t.Fatal(err)
					}
					var seqs []int64
					for _, l := range parseAuditLines(t, out) {
						seqs = append(seqs, l.Seq)
					}
					if !slices.Equal(seqs, tt.want) {
						t.Errorf("seqs %v, want %v", seqs, tt.want)
					}
					if !strings.Contains(errOut, tt.hint) || (tt.hint == "" && errOut != "") {
						t.Errorf("stderr %q, want %q", errOut, tt.hint)
					}
				})
			}

			table := e.must(t, "", "audit", "list")
			for _, want := range []string{"SEQ", "ACTOR", "account.password", "operator-jane", "TICKET-7", "command=kontor user passwd"} {
				if !strings.Contains(table, want) {
					t.Errorf("table lacks %q:\n%s", want, table)
				}
			}

			out = e.must(t, "", "audit", "verify")
			head, err := audit.ReadHeadFile(e.headFile())
			if err != nil {
				t.Fatalf("the commands left no saved head: %v", err)
			}
			for _, want := range []string{"audit trail intact: 5 entries verified", "head: " + head.String(),
				"saved head " + head.String() + " in " + e.headFile() + ": held by the trail"} {
				if !strings.Contains(out, want) {
					t.Errorf("verify output lacks %q:\n%s", want, out)
				}
			}
			if head.String() != "5:"+lines[4].Hash {
				t.Errorf("saved head %v, want entry 5 (%s)", head, lines[4].Hash)
			}
		})
	}
}

// TestAuditVerifyCommand: `kontor audit verify` exits with an error that
// names the problem, for each kind of tampering, on both backends.
func TestAuditVerifyCommand(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, e *auditEnv)
		args   func(e *auditEnv) []string
		want   string // in the error; "" for success
		stderr string
	}{
		{"intact", func(*testing.T, *auditEnv) {}, nil, "", ""},
		{"changed reason", func(t *testing.T, e *auditEnv) {
			e.tamper(t, `UPDATE audit_log SET reason = 'routine' WHERE seq = 2`)
		}, nil, "audit: entry 2 was changed: its content does not match its hash (1 entry verified before it)", ""},
		{"middle row deleted", func(t *testing.T, e *auditEnv) {
			e.tamper(t, `DELETE FROM audit_log WHERE seq = 3`)
		}, nil, "audit: entry 3 was removed: entry 4 follows entry 2 (2 entries verified before it)", ""},
		{"two rows swapped", func(t *testing.T, e *auditEnv) {
			e.tamper(t, `UPDATE audit_log SET seq = 1000 WHERE seq = 2`, `UPDATE audit_log SET seq = 2 WHERE seq = 4`,
				`UPDATE audit_log SET seq = 4 WHERE seq = 1000`)
		}, nil, "audit: entries were reordered: entry 2 is stored at position 4, and position 2 holds the entry appended as 4", ""},
		{"newest removed", func(t *testing.T, e *auditEnv) {
			e.tamper(t, `DELETE FROM audit_log WHERE seq >= 4`)
		}, nil, "audit: the newest entries were removed: the trail ends at entry 3, but the saved head is entry 5", ""},
		{"newest removed, and the saved head too", func(t *testing.T, e *auditEnv) {
			e.tamper(t, `DELETE FROM audit_log WHERE seq >= 4`)
			if err := os.Remove(e.headFile()); err != nil {
				t.Fatal(err)
			}
		}, nil, "", "warning: no saved head"},
		{"newest removed, head given", func(t *testing.T, e *auditEnv) {
			// The head was recorded elsewhere; the file is gone.
			e.tamper(t, `DELETE FROM audit_log WHERE seq >= 4`)
			if err := os.Rename(e.headFile(), filepath.Join(e.dir, "head.copy")); err != nil {
				t.Fatal(err)
			}
		}, func(e *auditEnv) []string {
			head, _ := audit.ReadHeadFile(filepath.Join(e.dir, "head.copy"))
			return []string{"--head", head.String()}
		}, "audit: the newest entries were removed: the trail ends at entry 3, but the saved head is entry 5", "warning: no saved head"},
		{"saved head from elsewhere", func(t *testing.T, e *auditEnv) {
			if err := os.Rename(e.headFile(), filepath.Join(e.dir, "head.copy")); err != nil {
				t.Fatal(err)
			}
		}, func(e *auditEnv) []string {
			return []string{"--anchor-file", filepath.Join(e.dir, "head.copy"), "--batch", "2"}
		}, "", ""},
		{"unreadable saved head", func(t *testing.T, e *auditEnv) {
			if err := os.WriteFile(e.headFile(), []byte("5:xyz\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, nil, "audit: head file: head \"5:xyz\"", ""},
		{"bad --head", func(*testing.T, *auditEnv) {}, func(*auditEnv) []string { return []string{"--head", "five"} }, "--head: head \"five\": want SEQ:HASH", ""},
	}
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					t.Parallel()
					e := newAuditEnv(t, backend)
					userLifecycle(t, e)
					tt.tamper(t, e)
					args := []string{"audit", "verify"}
					if tt.args != nil {
						args = append(args, tt.args(e)...)
					}
					out, errOut, err := e.run(t, "", args...)
					if tt.want == "" {
						if err != nil {
							t.Fatalf("verify: %v", err)
						}
						if !strings.Contains(out, "audit trail intact") {
							t.Errorf("verify output: %q", out)
						}
					} else if err == nil || !strings.Contains(err.Error(), tt.want) {
						t.Fatalf("verify error = %v\nwant one containing %q\n(stdout %q)", err, tt.want, out)
					}
					if !strings.Contains(errOut, tt.stderr) {
						t.Errorf("stderr %q, want %q", errOut, tt.stderr)
					}
				})
			}
		})
	}
}

func TestAuditListFlags(t *testing.T) {
	e := newAuditEnv(t, "sqlite")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"bad since", []string{"--since", "yesterday"}, `--since: "yesterday" is not a time, date or age`},
		{"bad until", []string{"--until", "-5h"}, `--until: "-5h" is not a time, date or age`},
		{"zero limit", []string{"--limit", "0"}, "--limit: 0 is not between 1 and 10000"},
		{"huge limit", []string{"--limit", "10001"}, "--limit: 10001 is not between 1 and 10000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := e.run(t, "", append([]string{"audit", "list"}, tt.args...)...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want %q", err, tt.want)
			}
		})
	}
	out := e.must(t, "", "audit", "list")
	if strings.TrimSpace(out) != "SEQ  TIME (UTC)  ACTOR  ACTION  SUBJECT  REASON  DETAILS" {
		t.Errorf("empty trail table: %q", out)
	}
	out = e.must(t, "", "audit", "verify")
	if !strings.Contains(out, "audit trail intact: 0 entries verified") || !strings.Contains(out, "head: none") {
		t.Errorf("empty trail verify: %q", out)
	}
}

// TestAuditReasonRefusedBeforeTheChange: an unusable --reason stops the
// command before it changes anything.
func TestAuditReasonRefusedBeforeTheChange(t *testing.T) {
	e := newAuditEnv(t, "sqlite")
	_, _, err := e.run(t, auditTestPassword+"\n", "user", "add", "bob@localhost", "--reason", "bad\x00reason")
	if !errors.Is(err, audit.ErrInvalidEntry) {
		t.Fatalf("error = %v, want ErrInvalidEntry", err)
	}
	if out := e.must(t, "", "user", "list"); strings.Contains(out, "bob@localhost") {
		t.Errorf("the account was created anyway:\n%s", out)
	}
}

// TestAuditServer: the server has a trail, checks it at start (a tampered
// trail is logged) and saves the head on shutdown.
func TestAuditServer(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			e := newAuditEnv(t, backend)
			start := func(t *testing.T) (*Server, *auditLogBuffer) {
				t.Helper()
				cfg, err := loadConfig(configFlags{file: e.cfgFile})
				if err != nil {
					t.Fatal(err)
				}
				cfg.C2S.StartTLSAddr, cfg.C2S.DirectTLSAddr, cfg.Admin.Addr, cfg.HTTP.Addr = "127.0.0.1:0", "", "", ""
				logs := &auditLogBuffer{}
				srv, err := startServer(t.Context(), cfg, slog.New(slog.NewTextHandler(logs, nil)))
				if err != nil {
					t.Fatal(err)
				}
				return srv, logs
			}
			stop := func(t *testing.T, srv *Server) {
				t.Helper()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if err := srv.Shutdown(ctx); err != nil {
					t.Fatalf("Shutdown: %v", err)
				}
			}

			srv, _ := start(t)
			var log audit.Log = srv.audit // what features are given
			if _, err := log.Append(t.Context(), audit.Entry{Actor: "system", Action: "test.start"}); err != nil {
				t.Fatal(err)
			}
			stop(t, srv)
			head, err := audit.ReadHeadFile(e.headFile())
			if err != nil || head.Seq != 1 {
				t.Fatalf("saved head after shutdown: %v %v, want entry 1", head, err)
			}

			userLifecycle(t, e) // entries 2 to 6, head saved at 6
			e.tamper(t, `DELETE FROM audit_log WHERE seq >= 5`)
			srv, logs := start(t)
			// The check runs in the background at start.
			for deadline := time.Now().Add(20 * time.Second); !strings.Contains(logs.String(), "the audit trail was tampered with"); {
				if time.Now().After(deadline) {
					t.Fatalf("server log does not report the truncated trail:\n%s", logs)
				}
				time.Sleep(10 * time.Millisecond)
			}
			stop(t, srv)
			if !strings.Contains(logs.String(), "the newest entries were removed") {
				t.Errorf("server log does not say what happened:\n%s", logs)
			}
			if head, _ := audit.ReadHeadFile(e.headFile()); head.Seq != 6 {
				t.Errorf("saved head moved to %v over a truncated trail", head)
			}
		})
	}
}

// auditLogBuffer collects the server's log from its goroutines.
type auditLogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *auditLogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *auditLogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestOSActor(t *testing.T) {
	current := func(name string, err error) func() (*user.User, error) {
		return func() (*user.User, error) { return &user.User{Username: name}, err }
	}
	env := func(sudo string) func(string) string {
		return func(k string) string {
			if k == "SUDO_USER" {
				return sudo
			}
			return ""
		}
	}
	tests := []struct {
		name    string
		getenv  func(string) string
		current func() (*user.User, error)
		want    string
	}{
		{"sudo", env("jane"), current("root", nil), "jane"},
		{"no sudo", env(""), current("kontor", nil), "kontor"},
		{"no user name", env(""), current("", errors.New("no passwd entry")), fmt.Sprintf("uid:%d", os.Getuid())},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := osActor(tt.getenv, tt.current); got != tt.want {
				t.Errorf("osActor = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseAuditTime(t *testing.T) {
	now := time.Date(2024, 3, 10, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time // zero with ok: no bound
		ok   bool
	}{
		{"", time.Time{}, true},
		{"2024-03-01T10:00:00Z", time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC), true},
		{"2024-03-01T11:00:00.5+01:00", time.Date(2024, 3, 1, 10, 0, 0, 500e6, time.UTC), true},
		{"2024-03-01", time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), true},
		{"2024-03-01T10:30", time.Date(2024, 3, 1, 10, 30, 0, 0, time.UTC), true},
		{"2024-03-01 10:30", time.Date(2024, 3, 1, 10, 30, 0, 0, time.UTC), true},
		{"36h", now.Add(-36 * time.Hour), true},
		{"90m", now.Add(-90 * time.Minute), true},
		{"7d", now.Add(-7 * 24 * time.Hour), true},
		{"0d", now, true},
		{"-1h", time.Time{}, false},
		{"d", time.Time{}, false},
		{"99999d", time.Time{}, false},
		{"yesterday", time.Time{}, false},
		{"2024-13-01", time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseAuditTime(tt.in, now)
			if (err == nil) != tt.ok || !got.Equal(tt.want) {
				t.Errorf("parseAuditTime(%q) = %v, %v; want %v (ok %v)", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}

// FuzzParseAuditTime: no input panics, and only "" means no bound.
func FuzzParseAuditTime(f *testing.F) {
	for _, s := range []string{"", "7d", "36h", "2024-03-01", "2024-03-01T10:00:00Z", "9999999999h", "1e3d"} {
		f.Add(s)
	}
	now := time.Date(2024, 3, 10, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseAuditTime(s, now)
		if err == nil && got.IsZero() != (s == "") {
			t.Fatalf("parseAuditTime(%q) = %v", s, got)
		}
	})
}

func TestAuditText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"alice@example.com", "alice@example.com"},
		{"zoë «x»", "zoë «x»"},
		{"with space", "with space"},
		{"tab\there", `"tab\there"`},
		{"new\nline", `"new\nline"`},
		{"\x1b[31mred", `"\x1b[31mred"`},
		{"bidi\u202eevil", `"bidi\u202eevil"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := auditText(tt.in); got != tt.want {
				t.Errorf("auditText(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestAuditConfig(t *testing.T) {
	tests := []struct {
		name, yaml string
		problem    string
		path       string
	}{
		{"defaults", "", "", filepath.Join("kontor-data", "keys", "audit.head")},
		{"own file", "audit:\n  anchor_file: /srv/kontor-heads/audit.head\n", "", "/srv/kontor-heads/audit.head"},
		{"interval too short", "audit:\n  anchor_interval: 100ms\n", "audit.anchor_interval: 100ms is not between 1s and 1h", ""},
		{"interval too long", "audit:\n  anchor_interval: 2h\n", "audit.anchor_interval: 2h0m0s is not between 1s and 1h", ""},
		{"unknown key", "audit:\n  anchor: x\n", "audit.anchor: unknown key", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadConfig(configFlags{file: writeConfig(t, tt.yaml)})
			if tt.problem == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := cfg.Audit.anchorPath(cfg.DataDir); got != tt.path {
					t.Errorf("anchor path %q, want %q", got, tt.path)
				}
				return
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || !slices.Contains(ce.Problems, tt.problem) {
				t.Errorf("error = %v, want problem %q", err, tt.problem)
			}
		})
	}
}

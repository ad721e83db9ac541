package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"kontor.im/kontor/archive"
	"kontor.im/kontor/core/account"
	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/gate"
	"kontor.im/kontor/core/jid"
	policygate "kontor.im/kontor/core/mod/gate"
)

// noAliceToBob refuses messages from alice to bob: a policy that needs no
// directory, for tests of the wiring.
const noAliceToBob = `package kontor.contact

deny contains {"reason": "test_barrier", "message": "Alice may not write to Bob."} if {
	input.from.jid == "alice@localhost"
	input.to.jid == "bob@localhost"
}
`

func policyFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// kontor runs the CLI and returns stdout.
func kontor(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRootCmd(&out, &errOut)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

func TestPolicyTestCommand(t *testing.T) {
	failing := `package kontor.extra_test

import data.kontor.contact

test_expects_too_much if {
	contact.decision.allow with input as {"action": "message", "stanza_type": "chat", "room": "",
		"from": {"jid": "a@x", "kind": "guest", "sponsors": []}, "to": {"jid": "b@x", "kind": "employee", "disabled": false}}
}
`
	tests := []struct {
		name    string
		args    []string
		wantErr string
		want    []string
	}{
		{"embedded bundle passes", []string{"policy", "test"}, "", []string{" passed, 0 failed\n"}},
		{"verbose lists every test", []string{"policy", "test", "-v", "--run", "contact_test"}, "", []string{"PASS kontor.contact_test.test_employees_talk_to_each_other (bundle/contact_test.rego:", " passed, 0 failed"}},
		{"a failing test in --dir", []string{"policy", "test", "--explain", "--dir", policyFiles(t, map[string]string{"extra_test.rego": failing})},
			"1 of", []string{"FAIL kontor.extra_test.test_expects_too_much (", "extra_test.rego:5): failed at ", " passed, 1 failed\n"}},
		{"a broken file in --dir", []string{"policy", "test", "--dir", policyFiles(t, map[string]string{"bad.rego": "package kontor.contact\nallow contains {\n"})},
			"bad.rego:", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(t.TempDir()) // no kontor.yaml
			out, err := kontor(t, "", tt.args...)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("error %v; output:\n%s", err, out)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error %v, want one mentioning %q; output:\n%s", err, tt.wantErr, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestPolicyEvalCommand(t *testing.T) {
	barrierDir := policyFiles(t, map[string]string{"barrier.rego": `package kontor.contact

deny contains {"reason": "information_barrier", "message": "Trading and Research may not communicate."} if {
	{input.from.department, input.to.department} == {"Trading", "Research"}
}
`})
	input := func(s string) string {
		p := filepath.Join(t.TempDir(), "input.json")
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		args    []string
		stdin   string
		wantErr string
		check   func(t *testing.T, got map[string]any)
	}{
		{"contact allowed", []string{"--decision", "contact", "--input", input(`{"action": "message", "stanza_type": "chat", "from": {"jid": "a@example.com", "local": true}, "to": {"jid": "b@example.com", "local": true}}`)}, "", "",
			func(t *testing.T, got map[string]any) {
				if got["allow"] != true || got["reason"] != "internal" || got["id"] == "" || got["revision"] == "" {
					t.Errorf("got %v", got)
				}
			}},
		{"barrier from --dir, input on stdin", []string{"--dir", barrierDir, "--decision", "contact", "--input", "-"},
			`{"action": "message", "from": {"jid": "tom@example.com", "local": true, "kind": "employee", "department": "Trading"}, "to": {"jid": "ben@example.com", "local": true, "kind": "employee", "department": "Research"}}`, "",
			func(t *testing.T, got map[string]any) {
				if got["allow"] != false || got["reason"] != "information_barrier" {
					t.Errorf("got %v", got)
				}
			}},
		{"retention with --at", []string{"--decision", "retention", "--at", "2025-03-14T10:00:00+01:00", "--input", input(`{"from": {"jid": "anna@example.com", "local": true}, "to": {"jid": "cora@customer.example", "local": false}, "stanza_type": "chat"}`)}, "", "",
			func(t *testing.T, got map[string]any) {
				if got["class"] != "business_letter" || got["until"] != "2032-01-01T00:00:00+01:00" {
					t.Errorf("got %v", got)
				}
			}},
		{"unknown decision", []string{"--decision", "lunch", "--input", input(`{}`)}, "", "unknown decision", nil},
		{"invalid input", []string{"--decision", "contact", "--input", input(`{"action": "message", "form": 1}`)}, "", "unknown field", nil},
		{"missing flags", []string{"--decision", "contact"}, "", "--decision and --input are required", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(t.TempDir())
			out, err := kontor(t, tt.stdin, append([]string{"policy", "eval"}, tt.args...)...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, out)
			}
			tt.check(t, got)
		})
	}
}

func TestPolicyShowCommand(t *testing.T) {
	dir := policyFiles(t, map[string]string{
		"contact.rego": "package kontor.contact\n\ndecision := {\"allow\": true, \"reason\": \"open\"}\n",
		"extra.rego":   noAliceToBob,
	})
	t.Chdir(t.TempDir())
	out, err := kontor(t, "", "policy", "show", "--dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"revision  ", "cache     on (65536 slots)", "unknown_local_kind=employee",
		"access.rego", "embedded", filepath.Join(dir, "contact.rego"), "replaces the embedded file", filepath.Join(dir, "extra.rego")} {
		if !strings.Contains(out, w) {
			t.Errorf("show lacks %q:\n%s", w, out)
		}
	}
	out, err = kontor(t, "", "policy", "show", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Revision string
		Files    []struct{ Name, Origin string }
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Revision) != 64 || len(st.Files) < 5 {
		t.Fatalf("show --json: %v %+v", err, st)
	}
}

func TestPolicyConfig(t *testing.T) {
	broken := policyFiles(t, map[string]string{"bad.rego": "package kontor.contact\n\nallow contains x if {\n\tinput.from.kind == \"guest\"\n}\n"})
	tests := []struct {
		name string
		yaml string
		want string // "" for valid
	}{
		{"defaults", "", ""},
		{"policy dir", "policy:\n  dir: " + policyFiles(t, map[string]string{"a.rego": noAliceToBob}) + "\n", ""},
		{"broken policy file", "policy:\n  dir: " + broken + "\n", "policy: " + filepath.Join(broken, "bad.rego") + ":3:"},
		{"missing dir", "policy:\n  dir: /nonexistent/policy\n", "policy.dir: \"/nonexistent/policy\" is not a directory"},
		{"time zone", "policy:\n  timezone: Mars/Olympus\n", "policy.timezone"},
		{"kind", "policy:\n  unknown_local_kind: boss\n", "policy.unknown_local_kind"},
		{"timeout", "policy:\n  decision_timeout: 0s\n", "policy.decision_timeout"},
		{"cache", "policy:\n  cache_size: -1\n", "policy.cache_size"},
		{"unknown key", "policy:\n  bogus: 1\n", "policy.bogus: unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig(configFlags{file: writeConfig(t, tt.yaml)})
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestUnknownLocalKind(t *testing.T) {
	tests := []struct {
		name    string
		setting string
		open    bool
		want    string
	}{
		{"default", "", false, "employee"},
		{"open registration makes strangers guests", "", true, "guest"},
		{"explicit wins", "employee", true, "employee"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := defaultConfig()
			c.Policy.UnknownLocalKind, c.Registration.Open = tt.setting, tt.open
			if got := string(c.unknownLocalKind()); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// retentionStub answers every retention question with d and records it.
type retentionStub struct {
	gate.Decider
	d   gate.RetentionDecision
	got gate.RetentionInput
}

func (r *retentionStub) Retention(_ context.Context, in gate.RetentionInput) gate.RetentionDecision {
	r.got = in
	return r.d
}

func TestPolicyRetentionAdapter(t *testing.T) {
	at := time.Date(2025, 3, 14, 10, 0, 0, 0, time.UTC)
	local := func(d string) bool { return d == "example.com" }
	tests := []struct {
		name     string
		in       archive.RetentionInput
		d        gate.RetentionDecision
		from, to gate.Party
		want     archive.RetentionClass
		err      bool
	}{
		{"outgoing: owner writes", archive.RetentionInput{Owner: "anna@example.com", With: "cora@customer.example/x", Outgoing: true, Time: at},
			gate.RetentionDecision{Decision: gate.Decision{Allow: true}, Archive: true, Class: "business_letter", Until: at.Add(48 * time.Hour)},
			gate.Party{JID: "anna@example.com", Local: true}, gate.Party{JID: "cora@customer.example"},
			archive.RetentionClass{Name: "business_letter", Keep: 48 * time.Hour}, false},
		{"incoming: the other writes", archive.RetentionInput{Owner: "anna@example.com", With: "ben@example.com", Time: at},
			gate.RetentionDecision{Decision: gate.Decision{Allow: true}, Archive: true, Class: "internal", Until: at.Add(time.Hour)},
			gate.Party{JID: "ben@example.com", Local: true}, gate.Party{JID: "anna@example.com", Local: true},
			archive.RetentionClass{Name: "internal", Keep: time.Hour}, false},
		{"no date: forever", archive.RetentionInput{Owner: "anna@example.com", With: "ben@example.com", Time: at},
			gate.RetentionDecision{Decision: gate.Decision{Allow: true}, Archive: true, Class: "kept"},
			gate.Party{JID: "ben@example.com", Local: true}, gate.Party{JID: "anna@example.com", Local: true},
			archive.RetentionClass{Name: "kept"}, false},
		{"a failed decision is an error", archive.RetentionInput{Owner: "anna@example.com", With: "ben@example.com", Time: at},
			gate.RetentionDecision{Decision: gate.Decision{Reason: gate.ReasonTimeout, Err: context.DeadlineExceeded}},
			gate.Party{JID: "ben@example.com", Local: true}, gate.Party{JID: "anna@example.com", Local: true},
			archive.RetentionClass{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stub := &retentionStub{d: tt.d}
			got, err := policyRetention{d: stub, isLocal: local}.Retention(context.Background(), tt.in)
			if (err != nil) != tt.err || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v (error %v)", got, err, tt.want, tt.err)
			}
			if tt.err && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error %v does not wrap the cause", err)
			}
			if stub.got.From != tt.from || stub.got.To != tt.to || !stub.got.At.Equal(at) {
				t.Errorf("asked %+v", stub.got)
			}
		})
	}
}

// TestE2EPolicy runs the server with a policy directory: a refused message
// comes back to the sender as policy-violation over a real connection, is
// in the audit trail, and a policy file written while the server runs
// takes effect without a restart.
func TestE2EPolicy(t *testing.T) {
	dir := policyFiles(t, map[string]string{"barrier.rego": noAliceToBob})
	ts := startTestServer(t, "sqlite", func(c *Config) { c.Policy.Dir = dir })
	ts.addUser(t, "alice", "password-1")
	ts.addUser(t, "bob", "password-2")
	ts.addUser(t, "carol", "password-3")
	alice := ts.dial(t, "alice", "password-1", withResource("laptop"))
	bob := ts.dial(t, "bob", "password-2", withResource("phone"))
	carol := ts.dial(t, "carol", "password-3", withResource("desk"))

	alice.send(t, "<message type='chat' to='bob@localhost/phone' id='p1'><body>Hello Bob</body></message>")
	e := alice.Messages.expect(t, "alice's error", func(n xmlNode) bool { return n.attr("id") == "p1" && n.attr("type") == "error" })
	if typ, cond := e.stanzaError(); typ != "cancel" || cond != "policy-violation" {
		t.Errorf("error %s/%s, want cancel/policy-violation", typ, cond)
	}
	if text := e.child("", "error").childText("urn:ietf:params:xml:ns:xmpp-stanzas", "text"); !strings.Contains(text, "Alice may not write to Bob. (test_barrier)") {
		t.Errorf("error text %q", text)
	}
	d := e.child("", "error").child(gate.NS, "decision")
	if d == nil || d.attr("reason") != "test_barrier" || d.attr("id") == "" {
		t.Fatalf("no decision element: %+v", e)
	}
	// Bob never saw it; Carol may write to Bob.
	carol.chat(t, "bob@localhost/phone", "from carol")
	bob.Messages.expect(t, "carol's message", func(n xmlNode) bool { return n.body() == "from carol" })
	bob.Messages.none(t, "the refused message", func(n xmlNode) bool { return n.attr("id") == "p1" })

	entries, err := ts.srv.audit.Query(context.Background(), audit.Query{Action: "policy"})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, en := range entries {
		if en.Action == "policy.deny" && en.Actor == "alice@localhost" && en.Subject == "bob@localhost" &&
			en.Reason == "test_barrier" && en.PolicyRevision == ts.srv.policy.Revision() && en.Details["decision_id"] == d.attr("id") {
			found = true
		}
	}
	if !found {
		t.Errorf("no audit entry for decision %s in %+v", d.attr("id"), entries)
	}

	// Hot reload: Carol is walled off too, without a restart.
	before := ts.srv.policy.Revision()
	src := strings.ReplaceAll(noAliceToBob, "alice@localhost", "carol@localhost")
	src = strings.ReplaceAll(src, "test_barrier", "test_barrier_2")
	if err := os.WriteFile(filepath.Join(dir, "carol.rego"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(e2eWait)
	for ts.srv.policy.Revision() == before {
		if time.Now().After(deadline) {
			t.Fatal("the policy was not reloaded")
		}
		time.Sleep(20 * time.Millisecond)
	}
	carol.send(t, "<message type='chat' to='bob@localhost/phone' id='p2'><body>again</body></message>")
	carol.Messages.expect(t, "carol's error", func(n xmlNode) bool { return n.attr("id") == "p2" && n.attr("type") == "error" })
	loads, err := ts.srv.audit.Query(context.Background(), audit.Query{Action: "policy.load"})
	if err != nil || len(loads) == 0 || loads[len(loads)-1].PolicyRevision != ts.srv.policy.Revision() {
		t.Errorf("policy load not audited: %+v %v", loads, err)
	}
}

// BenchmarkPolicyEndToEnd is BenchmarkRouteEndToEnd with the policy gate
// off and on (the default, with the embedded policy): chat messages from
// alice to bob over direct TLS, parsed, decided, routed and serialised.
func BenchmarkPolicyEndToEnd(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "policy-off"
		if on {
			name = "policy-on"
		}
		b.Run(name, func(b *testing.B) {
			cfg := defaultConfig()
			cfg.DataDir = b.TempDir()
			cfg.C2S.StartTLSAddr = ""
			cfg.C2S.DirectTLSAddr = "127.0.0.1:0"
			cfg.Admin.Addr = ""
			cfg.HTTP.Addr = ""
			if !on {
				for _, id := range cfg.enabledModules() {
					if id != policygate.ID {
						cfg.Modules.Enabled = append(cfg.Modules.Enabled, id)
					}
				}
			}
			cfg.resolvePaths()
			srv, err := startServer(context.Background(), cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				srv.Shutdown(ctx)
			})
			for _, u := range []string{"alice", "bob"} {
				if err := account.Create(context.Background(), srv.store, jid.MustParse(u+"@localhost"), "benchmark-password"); err != nil {
					b.Fatal(err)
				}
			}
			addr := srv.Addrs["direct_tls"].String()
			alice := loadLogin(b, addr, "alice", "benchmark-password", "a")
			bob := loadLogin(b, addr, "bob", "benchmark-password", "b")
			const window = 512
			var received atomic.Int64
			done := make(chan error, 1)
			go func() {
				buf := make([]byte, 64<<10)
				need, tail := b.N, ""
				for need > 0 {
					_ = bob.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
					n, err := bob.r.Read(buf)
					if err != nil {
						done <- err
						return
					}
					s := tail + string(buf[:n])
					if strings.Contains(s, "policy-violation") {
						done <- errors.New("a message was refused")
						return
					}
					got := strings.Count(s, "</message>")
					need -= got
					received.Add(int64(got))
					if i := strings.LastIndex(s, "</message>"); i >= 0 {
						s = s[i+len("</message>"):] // counted: keep only what follows
					}
					tail = s[max(0, len(s)-16):]
				}
				done <- nil
			}()
			b.ReportAllocs()
			b.ResetTimer()
			var before, after syscall.Rusage
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
			w := bufio.NewWriterSize(alice.conn, 64<<10)
			for i := 0; i < b.N; i++ {
				fmt.Fprintf(w, "<message to='bob@localhost/b' type='chat' id='m%d'><body>Hello Bob, are we still on for lunch today?</body></message>", i)
				if i%64 == 63 {
					w.Flush()
					for int64(i+1)-received.Load() > window {
						select {
						case err := <-done:
							b.Fatalf("bob stopped reading after %d of %d messages: %v", received.Load(), i+1, err)
						default:
						}
						time.Sleep(50 * time.Microsecond)
					}
				}
			}
			w.Flush()
			if err := <-done; err != nil && !errors.Is(err, io.EOF) {
				b.Fatal(err)
			}
			// CPU time of the whole process (server and both clients) per
			// message: on a shared machine, wall-clock ns/op mostly measures
			// waiting for a CPU.
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
			cpu := after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano()
			b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

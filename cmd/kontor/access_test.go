package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/gate"
	"kontor.im/kontor/core/mod/offline"
	"kontor.im/kontor/core/seal"
	"kontor.im/kontor/core/storage"
)

// accessEnv is an auditEnv with operators: an admin made by the bootstrap,
// and the tokens of everyone added.
type accessEnv struct {
	*auditEnv
	cfg    Config
	tokens map[string]string
}

func newAccessEnv(t *testing.T, backend string) *accessEnv {
	t.Helper()
	x := &accessEnv{auditEnv: newAuditEnv(t, backend), tokens: map[string]string{}}
	cfg, err := loadConfig(configFlags{file: x.cfgFile})
	if err != nil {
		t.Fatal(err)
	}
	x.cfg = cfg
	// The bootstrap: root (these tests run as root) adds the first admin.
	x.tokens["ada"] = tokenFrom(t, x.must(t, "", "operator", "add", "ada", "--role", "admin", "--display-name", "Ada Admin"))
	for name, role := range map[string]string{"erika": "dpo", "dora": "dpo", "max": "works_council", "aud": "auditor"} {
		x.tokens[name] = tokenFrom(t, x.must(t, "", x.as(t, "ada", "operator", "add", name, "--role", role)...))
	}
	return x
}

// tokenFrom takes the token from the output of operator add or token.
func tokenFrom(t *testing.T, out string) string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	tok := lines[len(lines)-1]
	if !strings.HasPrefix(tok, tokenPrefix) {
		t.Fatalf("no token in:\n%s", out)
	}
	return tok
}

// tokenFile writes op's token to a file and returns its path.
func (x *accessEnv) tokenFile(t *testing.T, op string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), op+".token")
	if err := os.WriteFile(path, []byte(x.tokens[op]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// as returns args with the flags that authenticate op.
func (x *accessEnv) as(t *testing.T, op string, args ...string) []string {
	t.Helper()
	return append(args, "--operator", op, "--operator-token-file", x.tokenFile(t, op))
}

// authorize calls authorizeAction the way a command does, with op's token
// and flags (case, purpose, request), on its own store.
func (x *accessEnv) authorize(t *testing.T, cfg Config, op string, flags map[string]string, action, subject string) (operatorGrant, error) {
	t.Helper()
	cmd := &cobra.Command{Use: "probe"}
	addAccessFlags(cmd)
	cmd.SetContext(t.Context())
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	if op != "" {
		flags["operator"] = op
		flags["operator-token-file"] = x.tokenFile(t, op)
	}
	for k, v := range flags {
		if err := cmd.Flags().Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	st, err := openStore(t.Context(), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	return authorizeAction(t.Context(), &cfg, st, cmd, action, subject)
}

func (x *accessEnv) store(t *testing.T) storage.Store {
	t.Helper()
	st, err := openStore(t.Context(), &x.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// auditEntries returns the trail's entries with this action.
func (x *accessEnv) auditEntries(t *testing.T, action string) []audit.Entry {
	t.Helper()
	as, err := auditStoreOf(x.store(t))
	if err != nil {
		t.Fatal(err)
	}
	es, err := audit.New(as).Query(t.Context(), audit.Query{Action: action, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Entry
	for _, e := range es {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

func TestAuthorizeAction(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			x := newAccessEnv(t, backend)
			cfg := x.cfg
			const bob = "bob@localhost"
			caseFlags := func() map[string]string {
				return map[string]string{"case": "C-17", "purpose": "Art. 15 request of Bob"}
			}

			t.Run("allowed", func(t *testing.T) {
				g, err := x.authorize(t, cfg, "aud", map[string]string{}, gate.AccessReportView, "")
				if err != nil {
					t.Fatal(err)
				}
				if g.Operator.ID != "aud" || !g.Decision.Allow || g.Request != "" || g.Operator.Roles[0] != "auditor" {
					t.Errorf("grant = %+v", g)
				}
			})
			t.Run("denied for the wrong role", func(t *testing.T) {
				_, err := x.authorize(t, cfg, "aud", caseFlags(), gate.AccessArchiveExport, bob)
				if !errors.Is(err, errAccessDenied) || !strings.Contains(err.Error(), "role_missing") {
					t.Errorf("err = %v, want role_missing", err)
				}
			})
			t.Run("wrong token", func(t *testing.T) {
				saved := x.tokens["erika"]
				x.tokens["erika"] = x.tokens["dora"]
				_, err := x.authorize(t, cfg, "erika", caseFlags(), gate.AccessReportView, "")
				x.tokens["erika"] = saved
				if !errors.Is(err, errAccessDenied) || !strings.Contains(err.Error(), "not authenticated") {
					t.Errorf("err = %v, want not authenticated", err)
				}
				if _, err := x.authorize(t, cfg, "nobody", caseFlags(), gate.AccessReportView, ""); !errors.Is(err, errAccessDenied) {
					t.Errorf("unknown operator: err = %v", err)
				}
				if es := x.auditEntries(t, "operator.auth_failed"); len(es) < 2 || es[0].Subject != "erika" {
					t.Errorf("auth failures in the audit trail: %+v", es)
				}
			})
			t.Run("disabled feature", func(t *testing.T) {
				off := cfg
				off.WorksCouncil.ArchiveView = false
				_, err := x.authorize(t, off, "erika", caseFlags(), gate.AccessArchiveView, bob)
				if !errors.Is(err, errAccessDenied) || !strings.Contains(err.Error(), "works_council.archive_view") {
					t.Errorf("err = %v, want the switch named", err)
				}
				off = cfg
				off.WorksCouncil.PersonReports = false
				if _, err := x.authorize(t, off, "aud", map[string]string{}, gate.AccessReportView, bob); !errors.Is(err, errAccessDenied) {
					t.Errorf("person report with person_reports off: err = %v", err)
				}
				if _, err := x.authorize(t, off, "aud", map[string]string{}, gate.AccessReportView, ""); err != nil {
					t.Errorf("aggregate report with person_reports off: %v", err)
				}
				if es := x.auditEntries(t, "access.disabled"); len(es) != 2 || es[0].Actor != "erika" {
					t.Errorf("access.disabled entries: %+v", es)
				}
			})

			var reqID string
			t.Run("needs approval: a request is recorded", func(t *testing.T) {
				_, err := x.authorize(t, cfg, "erika", caseFlags(), gate.AccessArchiveExport, bob)
				var are *approvalRequiredError
				if !errors.As(err, &are) || !are.New || are.ApprovalsNeeded != 2 || strings.Join(are.RolesNeeded, ",") != "dpo,works_council" {
					t.Fatalf("err = %v, want a new request needing dpo and works_council", err)
				}
				if !errors.Is(err, errAccessDenied) || !strings.Contains(err.Error(), are.RequestID) {
					t.Errorf("the error does not name the request: %v", err)
				}
				reqID = are.RequestID
				out := x.must(t, "", x.as(t, "max", "request", "list")...)
				if !strings.Contains(out, reqID) || !strings.Contains(out, "pending") {
					t.Errorf("request list:\n%s", out)
				}
			})
			t.Run("not without the approvals", func(t *testing.T) {
				f := caseFlags()
				f["request"] = reqID
				_, err := x.authorize(t, cfg, "erika", f, gate.AccessArchiveExport, bob)
				var are *approvalRequiredError
				if !errors.As(err, &are) || are.New || are.RequestID != reqID {
					t.Errorf("err = %v, want still pending %s", err, reqID)
				}
			})
			t.Run("the requester cannot approve", func(t *testing.T) {
				_, _, err := x.run(t, "", x.as(t, "erika", "request", "approve", reqID)...)
				if err == nil || !strings.Contains(err.Error(), "cannot approve") {
					t.Errorf("self-approval: %v", err)
				}
			})
			t.Run("an approval the policy would not count is refused", func(t *testing.T) {
				_, _, err := x.run(t, "", x.as(t, "aud", "request", "approve", reqID)...)
				if err == nil || !strings.Contains(err.Error(), "would not count") {
					t.Errorf("approval by an auditor: %v", err)
				}
			})
			t.Run("approved by two others, it proceeds once", func(t *testing.T) {
				x.must(t, "", x.as(t, "dora", "request", "approve", reqID, "--comment", "checked the court order")...)
				// One of two approvals is not enough.
				f := caseFlags()
				f["request"] = reqID
				if _, err := x.authorize(t, cfg, "erika", f, gate.AccessArchiveExport, bob); err == nil {
					t.Fatal("ran with one of two approvals")
				}
				out := x.must(t, "", x.as(t, "max", "request", "approve", reqID)...)
				if !strings.Contains(out, "by max (works_council)") || !strings.Contains(out, "checked the court order") {
					t.Errorf("approve output:\n%s", out)
				}
				if _, _, err := x.run(t, "", x.as(t, "max", "request", "approve", reqID)...); err == nil {
					t.Error("max approved twice")
				}
				if _, err := x.authorize(t, cfg, "dora", map[string]string{"request": reqID}, gate.AccessArchiveExport, bob); err == nil {
					t.Error("someone other than the requester used the request")
				}
				g, err := x.authorize(t, cfg, "erika", map[string]string{"request": reqID}, gate.AccessArchiveExport, bob)
				if err != nil {
					t.Fatal(err)
				}
				if g.Request != reqID || g.CaseNumber != "C-17" || g.Purpose != "Art. 15 request of Bob" || g.Decision.Reason != "approved" {
					t.Errorf("grant = %+v", g)
				}
				_, err = x.authorize(t, cfg, "erika", map[string]string{"request": reqID}, gate.AccessArchiveExport, bob)
				if err == nil || !strings.Contains(err.Error(), "used") {
					t.Errorf("second use: %v", err)
				}
				uses := x.auditEntries(t, "access.request.use")
				if len(uses) != 1 || uses[0].Actor != "erika" || uses[0].Details["approvers"] != "dora,max" || uses[0].Details["requester"] != "erika" {
					t.Errorf("access.request.use entries: %+v", uses)
				}
				approvals := x.auditEntries(t, "access.request.approve")
				if len(approvals) != 2 || approvals[0].Actor != "dora" || approvals[1].Actor != "max" || approvals[0].Details["requester"] != "erika" {
					t.Errorf("approval entries: %+v", approvals)
				}
				var allowed bool
				for _, e := range x.auditEntries(t, "policy.access") {
					if e.Actor == "erika" && e.Details["allow"] == "true" && e.Details["request"] == reqID && e.Details["approvers"] == "dora,max" {
						allowed = true
					}
					if e.Actor == "root" {
						t.Errorf("an access decision names root: %+v", e)
					}
				}
				if !allowed {
					t.Error("no policy.access entry for the approved export naming erika, the request and the approvers")
				}
			})
			t.Run("denied requests cannot run", func(t *testing.T) {
				_, err := x.authorize(t, cfg, "erika", map[string]string{"case": "C-18", "purpose": "p"}, gate.AccessArchiveView, bob)
				var are *approvalRequiredError
				if !errors.As(err, &are) {
					t.Fatal(err)
				}
				x.must(t, "", x.as(t, "max", "request", "deny", are.RequestID, "--comment", "no grounds")...)
				if _, _, err := x.run(t, "", x.as(t, "dora", "request", "approve", are.RequestID)...); err == nil || !strings.Contains(err.Error(), "is denied") {
					t.Errorf("approval of a denied request: %v", err)
				}
				_, err = x.authorize(t, cfg, "erika", map[string]string{"request": are.RequestID}, gate.AccessArchiveView, bob)
				if err == nil || !strings.Contains(err.Error(), "denied") {
					t.Errorf("a denied request ran: %v", err)
				}
			})
			t.Run("expired approval", func(t *testing.T) {
				st := x.store(t)
				ops, _ := operatorStoreOf(st)
				now := time.Now()
				r := storage.AccessRequest{ID: "r-expired", Action: gate.AccessArchiveExport, Subject: bob, CaseNumber: "C-19", Purpose: "p",
					Requester: "erika", Created: now.Add(-80 * time.Hour), Expires: now.Add(time.Hour)}
				if err := ops.CreateAccessRequest(t.Context(), r); err != nil {
					t.Fatal(err)
				}
				for _, v := range []storage.RequestVote{{By: "dora", Roles: []string{"dpo"}, Approve: true, At: now.Add(-73 * time.Hour)},
					{By: "max", Roles: []string{"works_council"}, Approve: true, At: now.Add(-time.Hour)}} {
					if err := ops.VoteAccessRequest(t.Context(), r.ID, v); err != nil {
						t.Fatal(err)
					}
				}
				_, err := x.authorize(t, cfg, "erika", map[string]string{"request": r.ID}, gate.AccessArchiveExport, bob)
				var are *approvalRequiredError
				if !errors.As(err, &are) || are.ApprovalsNeeded != 1 || strings.Join(are.RolesNeeded, ",") != "dpo" {
					t.Errorf("err = %v, want dora's 73-hour-old approval to have expired", err)
				}
			})
			t.Run("notification of the person concerned", func(t *testing.T) {
				on := cfg
				on.WorksCouncil.NotifySubject = true
				_, err := x.authorize(t, on, "erika", map[string]string{"case": "C-20", "purpose": "audit of Bob's orders"}, gate.AccessArchiveView, bob)
				var are *approvalRequiredError
				if !errors.As(err, &are) {
					t.Fatal(err)
				}
				x.must(t, "", x.as(t, "dora", "request", "approve", are.RequestID)...)
				x.must(t, "", x.as(t, "max", "request", "approve", are.RequestID)...)
				if _, err := x.authorize(t, on, "erika", map[string]string{"request": are.RequestID}, gate.AccessArchiveView, bob); err != nil {
					t.Fatal(err)
				}
				st := x.store(t)
				msgs, err := st.OfflineMessages(t.Context(), bob, 0)
				if err != nil || len(msgs) != 1 {
					t.Fatalf("offline messages for bob: %d, %v", len(msgs), err)
				}
				key, err := seal.LoadOrCreateKey(on.Seal.KeyFile)
				if err != nil {
					t.Fatal(err)
				}
				sealer, _ := seal.New(key)
				m := msgs[0]
				plain, err := sealer.Open(bob, offline.AssociatedData(m.From, m.Stamp), m.Sealed)
				if err != nil {
					t.Fatalf("the notice does not open as an offline message: %v", err)
				}
				for _, want := range []string{"erika", "read your message archive", "C-20", "dora, max", "from='localhost'"} {
					if !strings.Contains(string(plain), want) {
						t.Errorf("notice %s lacks %q", plain, want)
					}
				}
				if strings.Contains(string(m.Sealed), "erika") {
					t.Error("the stored notice is not sealed")
				}
				if es := x.auditEntries(t, "access.notify"); len(es) != 1 || es[0].Subject != bob {
					t.Errorf("access.notify entries: %+v", es)
				}
			})
		})
	}
}

// TestOperatorIdentity: the OS user mapping, root's exclusion from it, the
// bootstrap by root only, and the audit trail naming the operator rather
// than the OS user. Not parallel: it replaces osIdentity.
func TestOperatorIdentity(t *testing.T) {
	x := newAuditEnv(t, "sqlite")
	saved := osIdentity
	t.Cleanup(func() { osIdentity = saved })

	osIdentity = func() (int, string, error) { return 1000, "eve", nil }
	if _, _, err := x.run(t, "", "operator", "add", "eve", "--role", "admin"); err == nil || !strings.Contains(err.Error(), "root") {
		t.Errorf("bootstrap by a non-root user: %v", err)
	}
	osIdentity = saved
	out := x.must(t, "", "operator", "add", "ada", "--role", "admin")
	tok := tokenFrom(t, out)
	if _, _, err := x.run(t, "", "operator", "add", "bob", "--role", "dpo"); err == nil {
		t.Error("a second operator was added without authentication")
	}
	tokFile := filepath.Join(t.TempDir(), "t")
	os.WriteFile(tokFile, []byte(tok), 0o600)
	x.must(t, "", "operator", "add", "erika", "--role", "dpo", "--operator", "ada", "--operator-token-file", tokFile)

	cfg, err := loadConfig(configFlags{file: x.cfgFile})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Operators.OSUsers = []string{"erika-os=erika"}
	st, err := openStore(t.Context(), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	probe := func() *cobra.Command {
		c := &cobra.Command{Use: "probe"}
		addAccessFlags(c)
		c.SetContext(t.Context())
		c.SetErr(io.Discard)
		return c
	}
	osIdentity = func() (int, string, error) { return 1001, "erika-os", nil }
	g, err := authorizeAction(t.Context(), &cfg, st, probe(), gate.AccessReportView, "")
	if err != nil || g.Operator.ID != "erika" {
		t.Errorf("mapped OS user: %+v, %v", g, err)
	}
	osIdentity = func() (int, string, error) { return 1002, "mallory", nil }
	if _, err := authorizeAction(t.Context(), &cfg, st, probe(), gate.AccessReportView, ""); !errors.Is(err, errAccessDenied) {
		t.Errorf("unmapped OS user: %v", err)
	}
	osIdentity = func() (int, string, error) { return 0, "root", nil }
	if _, err := authorizeAction(t.Context(), &cfg, st, probe(), gate.AccessReportView, ""); err == nil || !strings.Contains(err.Error(), "root is not an operator") {
		t.Errorf("root without --operator: %v", err)
	}
	bad := cfg
	bad.Operators.OSUsers = []string{"root=ada", "nonsense"}
	if p := bad.Operators.validate(); len(p) != 2 {
		t.Errorf("validate(root=ada, nonsense) = %q", p)
	}

	// auditFromCLI names the operator authenticated for the command.
	osIdentity = func() (int, string, error) { return 1001, "erika-os", nil }
	c := probe()
	if _, err := authenticateOperator(t.Context(), &cfg, st, c); err != nil {
		t.Fatal(err)
	}
	if err := auditFromCLI(t.Context(), &cfg, st, c, audit.Entry{Action: "gdpr.export", Subject: "bob@localhost"}); err != nil {
		t.Fatal(err)
	}
	osIdentity = saved
	var es []audit.Entry
	for _, action := range []string{"gdpr.export", "operator.bootstrap", "operator.add"} {
		got := x.newAccessQuery(t, st, action)
		if len(got) != 1 {
			t.Fatalf("%d %s entries", len(got), action)
		}
		es = append(es, got[0])
	}
	if es[0].Actor != "erika" || es[0].Details["os_user"] == "" || es[0].Details["authenticated_by"] != "os_user:erika-os" {
		t.Errorf("gdpr.export entry: %+v", es[0])
	}
	if es[1].Subject != "ada" || es[1].Actor == "ada" {
		t.Errorf("bootstrap entry (the OS user adds ada): %+v", es[1])
	}
	if es[2].Actor != "ada" || es[2].Subject != "erika" {
		t.Errorf("operator.add entry: %+v", es[2])
	}
}

func (e *auditEnv) newAccessQuery(t *testing.T, st storage.Store, action string) []audit.Entry {
	t.Helper()
	as, err := auditStoreOf(st)
	if err != nil {
		t.Fatal(err)
	}
	got, err := audit.New(as).Query(t.Context(), audit.Query{Action: action, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestOperatorCommands: list, disable (never the last admin, never
// oneself), enable and token renewal.
func TestOperatorCommands(t *testing.T) {
	x := newAccessEnv(t, "sqlite")
	out := x.must(t, "", x.as(t, "aud", "operator", "list")...)
	for _, want := range []string{"ada", "Ada Admin", "erika", "works_council", "active"} {
		if !strings.Contains(out, want) {
			t.Errorf("operator list lacks %q:\n%s", want, out)
		}
	}
	if _, _, err := x.run(t, "", "operator", "list"); err == nil {
		t.Error("operator list without authentication")
	}
	if _, _, err := x.run(t, "", x.as(t, "ada", "operator", "disable", "ada")...); err == nil {
		t.Error("ada disabled herself")
	}
	if _, _, err := x.run(t, "", x.as(t, "erika", "operator", "disable", "max")...); err == nil || !strings.Contains(err.Error(), "role_missing") {
		t.Errorf("a dpo disabled an operator: %v", err)
	}
	x.must(t, "", x.as(t, "ada", "operator", "disable", "max")...)
	if _, _, err := x.run(t, "", x.as(t, "max", "request", "list")...); err == nil || !strings.Contains(err.Error(), "disabled") {
		t.Errorf("a disabled operator authenticated: %v", err)
	}
	x.must(t, "", x.as(t, "ada", "operator", "enable", "max")...)
	x.must(t, "", x.as(t, "max", "request", "list")...)

	old := x.tokens["erika"]
	x.tokens["erika"] = tokenFrom(t, x.must(t, "", x.as(t, "erika", "operator", "token", "erika")...))
	x.must(t, "", x.as(t, "erika", "request", "list")...)
	saved := x.tokens["erika"]
	x.tokens["erika"] = old
	if _, _, err := x.run(t, "", x.as(t, "erika", "request", "list")...); err == nil {
		t.Error("the old token still works after renewal")
	}
	x.tokens["erika"] = saved
	// The other token sources: standard input and the environment.
	x.must(t, saved+"\n", "request", "list", "--operator", "erika", "--operator-token-file", "-")
	t.Setenv("KONTOR_OPERATOR_TOKEN", saved)
	x.must(t, "", "request", "list", "--operator", "erika")
	t.Setenv("KONTOR_OPERATOR_TOKEN", old)
	if _, _, err := x.run(t, "", "request", "list", "--operator", "erika"); err == nil {
		t.Error("an old token from the environment was accepted")
	}
	if _, _, err := x.run(t, "", x.as(t, "erika", "operator", "token", "max")...); err == nil {
		t.Error("a dpo renewed someone else's token")
	}
	// The last enabled admin cannot be disabled: a second admin tries.
	x.tokens["ben"] = tokenFrom(t, x.must(t, "", x.as(t, "ada", "operator", "add", "ben", "--role", "admin")...))
	x.must(t, "", x.as(t, "ben", "operator", "disable", "ada")...)
	x.must(t, "", x.as(t, "ben", "operator", "enable", "ada")...)
	x.must(t, "", x.as(t, "ada", "operator", "disable", "ben")...)
	st := x.store(t)
	ops, _ := operatorStoreOf(st)
	if err := keepsAnAdmin(t.Context(), ops, "ada"); err == nil {
		t.Error("keepsAnAdmin allows disabling the last enabled admin")
	}
}

// FuzzOSUsers: every entry of operators.os_users is either mapped or
// reported, never both; root and empty names are never mapped.
func FuzzOSUsers(f *testing.F) {
	for _, s := range []string{"erika=erika", "root=ada", "a=b\x00c=d", "=x", "x=", " eve = eve ", "a=b=c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		entries := strings.Split(s, "\x00")
		m, problems := OperatorsConfig{OSUsers: entries}.osUsers()
		if len(m)+len(problems) != len(entries) {
			t.Fatalf("%q: %d mapped, %d problems", entries, len(m), len(problems))
		}
		for k, v := range m {
			if k == "" || v == "" || k == "root" {
				t.Fatalf("%q maps %q to %q", entries, k, v)
			}
		}
	})
}

func TestOperatorsConfigLimits(t *testing.T) {
	c := defaultConfig().Operators
	if c.RequestTTL != 72*time.Hour || len(c.OSUsers) != 0 {
		t.Errorf("defaults: %+v", c)
	}
	for _, tt := range []struct {
		ttl time.Duration
		ok  bool
	}{{time.Minute, true}, {time.Minute - time.Second, false}, {90 * 24 * time.Hour, true}, {90*24*time.Hour + time.Second, false}} {
		c.RequestTTL = tt.ttl
		if p := c.validate(); (len(p) == 0) != tt.ok {
			t.Errorf("request_ttl %v: %q", tt.ttl, p)
		}
	}
	w := defaultConfig().WorksCouncil
	if !w.ArchiveView || !w.ArchiveExport || !w.PersonReports || w.NotifySubject {
		t.Errorf("works_council defaults: %+v", w)
	}
}

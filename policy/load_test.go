package policy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/format"

	"kontor.im/kontor/core/gate"
)

// barrier is the README's information barrier: Trading and Research may
// not talk (a Chinese wall).
const barrier = `package kontor.contact

walled := {"Trading", "Research"}

deny contains {
	"reason": "information_barrier",
	"message": "Trading and Research may not communicate (information barrier).",
} if {
	input.from.department in walled
	input.to.department in walled
	input.from.department != input.to.department
}
`

// TestBundleRegoTests runs every test_ rule of the shipped bundle, so that
// CI runs them with the Go tests.
func TestBundleRegoTests(t *testing.T) {
	rep, err := RunTests(context.Background(), TestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	perFile := map[string]int{}
	for _, r := range rep.Results {
		if !r.Pass {
			t.Errorf("%s.%s (%s:%d): %s", r.Package, r.Name, r.File, r.Line, r.Error)
		}
		perFile[r.File]++
	}
	if rep.Failed != 0 || rep.Skipped != 0 || rep.Passed < 40 {
		t.Errorf("summary %q", rep.Summary())
	}
	// Every shipped policy file has a test file with tests in it.
	entries, err := fs.ReadDir(bundleFS, "bundle")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, "_test.rego") {
			continue
		}
		test := "bundle/" + strings.TrimSuffix(name, ".rego") + "_test.rego"
		if perFile[test] == 0 {
			t.Errorf("%s has no tests in %s", name, test)
		}
	}
}

// TestBundleIsFormatted keeps the bundle and the README's examples in
// `opa fmt` form.
func TestBundleIsFormatted(t *testing.T) {
	check := func(name string, b []byte) {
		out, err := format.SourceWithOpts(name, b, format.Opts{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if string(out) != string(b) {
			t.Errorf("%s is not formatted as opa fmt would", name)
		}
	}
	entries, err := fs.ReadDir(bundleFS, "bundle")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := fs.ReadFile(bundleFS, "bundle/"+e.Name())
		if err != nil {
			t.Fatal(err)
		}
		check(e.Name(), b)
	}
	examples, err := filepath.Glob("testdata/examples/*.rego")
	if err != nil || len(examples) == 0 {
		t.Fatalf("examples: %v %v", examples, err)
	}
	for _, p := range examples {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		check(p, b)
	}
}

func TestRegoTestReport(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "barrier.rego", barrier)
	writeFile(t, dir, "barrier_test.rego", `package kontor.barrier_test

import data.kontor.contact
import data.kontor.lib

trader := object.union(lib.party("tom@example.com", "employee"), {"department": "Trading"})

research := object.union(lib.party("ben@example.com", "employee"), {"department": "Research"})

test_barrier_holds if {
	d := contact.decision with input as {"action": "message", "stanza_type": "chat", "from": trader, "to": research, "room": ""}
	d.reason == "information_barrier"
}

test_wrong_expectation if {
	d := contact.decision with input as {"action": "message", "stanza_type": "chat", "from": trader, "to": research, "room": ""}
	d.allow
}
`)
	rep, err := RunTests(context.Background(), TestOptions{Dir: dir, Explain: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed != 1 || rep.Passed < 41 {
		t.Fatalf("summary %q", rep.Summary())
	}
	want := fmt.Sprintf("%d passed, 1 failed", rep.Passed)
	if rep.Summary() != want {
		t.Errorf("summary %q, want %q", rep.Summary(), want)
	}
	var failed TestResult
	for _, r := range rep.Results {
		if !r.Pass {
			failed = r
		}
	}
	if failed.Name != "test_wrong_expectation" || failed.File != filepath.Join(dir, "barrier_test.rego") || failed.Line != 15 ||
		failed.Error != "failed at "+filepath.Join(dir, "barrier_test.rego")+":17: d.allow" {
		t.Errorf("failed result %+v", failed)
	}
	// -run selects.
	rep, err = RunTests(context.Background(), TestOptions{Dir: dir, Run: "barrier_holds"})
	if err != nil || rep.Passed != 1 || rep.Failed != 0 {
		t.Errorf("filtered run: %q, %v", rep.Summary(), err)
	}
}

func TestPolicyDirAddsAndOverrides(t *testing.T) {
	ctx := context.Background()
	tradingToResearch := msg(local("tom@example.com"), local("ben@example.com"))
	salesToResearch := msg(local("anna@example.com"), local("ben@example.com"))
	tests := []struct {
		name      string
		files     map[string]string
		in        gate.ContactInput
		allow     bool
		reason    string
		overrides []string
	}{
		{"added barrier refuses", map[string]string{"barrier.rego": barrier}, tradingToResearch, false, "information_barrier", nil},
		{"added barrier leaves others", map[string]string{"barrier.rego": barrier}, salesToResearch, true, "internal", nil},
		{"added allow widens", map[string]string{"guests.rego": `package kontor.contact

# Guests may also reach everyone in their sponsors' departments.
allow contains "sponsor_department" if {
	input.from.kind == "guest"
	some s in input.from.sponsors
	data.kontor.directory.people[s].department == input.to.department
}
`}, msg(local("gus@example.com"), local("dora@example.com")), false, "account_disabled", nil},
		{"override replaces the bundle file", map[string]string{"contact.rego": `package kontor.contact

decision := {"allow": false, "reason": "lockdown", "message": "Chat is closed today."}
`}, salesToResearch, false, "lockdown", []string{"contact.rego"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, src := range tt.files {
				writeFile(t, dir, name, src)
			}
			e := companyEngine(t, Options{Dir: dir})
			d := e.Contact(ctx, tt.in)
			if d.Allow != tt.allow || d.Reason != tt.reason {
				t.Fatalf("got %+v, want allow=%v reason=%q", d, tt.allow, tt.reason)
			}
			var overrides []string
			for _, f := range e.Status().Files {
				if f.Overrides {
					overrides = append(overrides, f.Name)
				}
				if _, added := tt.files[f.Name]; added && f.Origin != filepath.Join(dir, f.Name) {
					t.Errorf("%s comes from %s", f.Name, f.Origin)
				}
			}
			if !slices.Equal(overrides, tt.overrides) {
				t.Errorf("overrides %v, want %v", overrides, tt.overrides)
			}
		})
	}
}

func TestSponsorDepartmentExample(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "guests.rego", `package kontor.contact

allow contains "sponsor_department" if {
	input.from.kind == "guest"
	some s in input.from.sponsors
	data.kontor.directory.people[s].department == input.to.department
}
`)
	e := companyEngine(t, Options{Dir: dir})
	s := company()
	s.People["sam@example.com"] = s.People["ben@example.com"]
	sam := s.People["sam@example.com"]
	sam.JID, sam.Department = "sam@example.com", "Sales"
	s.People["sam@example.com"] = sam
	s.Revision = "rev-sam"
	if err := e.UpdateDirectory(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if d := e.Contact(context.Background(), msg(local("gus@example.com"), local("sam@example.com"))); !d.Allow || d.Reason != "sponsor_department" {
		t.Fatalf("guest to sponsor's department: %+v", d)
	}
	if d := e.Contact(context.Background(), msg(local("gus@example.com"), local("ben@example.com"))); d.Allow {
		t.Fatalf("guest to another department: %+v", d)
	}
}

func TestInvalidPolicyRefusesToLoad(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		src     string
		line    int
		message string
	}{
		{"syntax error", "broken.rego", "package kontor.contact\n\nallow contains \"x\" if {\n\tinput.from.kind ==\n}\n", 5, "rego_parse_error"},
		{"unsafe variable", "unsafe.rego", "package kontor.contact\n\nallow contains x if {\n\tinput.from.kind == \"guest\"\n}\n", 3, "unsafe"},
		{"forbidden builtin", "network.rego", "package kontor.contact\n\nallow contains \"x\" if {\n\thttp.send({\"method\": \"get\", \"url\": \"http://x\"})\n}\n", 4, "http.send"},
		{"no package", "empty.rego", "# nothing here\n", 0, "empty module"},
		{"decision missing", "contact.rego", "package kontor.contact\n\nallow contains \"x\"\n", 0, "data.kontor.contact.decision"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, tt.file, tt.src)
			_, err := New(context.Background(), Options{Dir: dir})
			var le *LoadError
			if !errors.As(err, &le) {
				t.Fatalf("got %v, want a *LoadError", err)
			}
			found := false
			for _, p := range le.Problems {
				if strings.Contains(p.Message, tt.message) && p.Line == tt.line {
					found = true
					if tt.line > 0 && p.File != filepath.Join(dir, tt.file) {
						t.Errorf("problem in %q, want %q", p.File, filepath.Join(dir, tt.file))
					}
				}
			}
			if !found {
				t.Fatalf("no problem at line %d mentioning %q in:\n%v", tt.line, tt.message, err)
			}
			if !strings.HasPrefix(err.Error(), "policy: invalid policy:") {
				t.Errorf("error %q", err)
			}
		})
	}
}

func TestReloadKeepsLastGoodPolicy(t *testing.T) {
	ctx := context.Background()
	rec := &recordingAudit{}
	dir := t.TempDir()
	writeFile(t, dir, "barrier.rego", barrier)
	e := companyEngine(t, Options{Dir: dir, Audit: rec})
	good := e.Revision()
	in := msg(local("tom@example.com"), local("ben@example.com"))

	writeFile(t, dir, "barrier.rego", barrier+"\nbroken := {\n")
	err := e.Reload(ctx, "operator")
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("broken reload: %v", err)
	}
	if e.Revision() != good {
		t.Error("a broken policy replaced the good one")
	}
	if d := e.Contact(ctx, in); d.Reason != "information_barrier" {
		t.Errorf("after a broken reload: %+v", d)
	}
	if st := e.Status(); !strings.Contains(st.LastError, filepath.Join(dir, "barrier.rego")+":") {
		t.Errorf("status last error %q lacks the file", st.LastError)
	}
	if entries := rec.take(); slices.ContainsFunc(entries, func(en auditEntry) bool { return en.Action == "policy.load" }) {
		t.Error("a failed reload was audited as a load")
	}

	if err := removeFile(dir, "barrier.rego"); err != nil {
		t.Fatal(err)
	}
	if err := e.Reload(ctx, "operator"); err != nil {
		t.Fatal(err)
	}
	if e.Revision() == good || e.Status().LastError != "" {
		t.Errorf("revision %s, last error %q after a good reload", e.Revision(), e.Status().LastError)
	}
	if d := e.Contact(ctx, in); !d.Allow {
		t.Errorf("barrier still active after removal: %+v", d)
	}
	loads := slices.DeleteFunc(rec.take(), func(en auditEntry) bool { return en.Action != "policy.load" })
	if len(loads) != 1 || loads[0].Actor != "operator" || loads[0].PolicyRevision != e.Revision() || loads[0].Details["previous_revision"] != good {
		t.Errorf("load audit %+v", loads)
	}
	// Reloading the same files changes nothing.
	st := e.state.Load()
	if err := e.Reload(ctx, "operator"); err != nil || e.state.Load() != st {
		t.Errorf("an unchanged reload swapped the state (%v)", err)
	}
}

func TestWatchReloads(t *testing.T) {
	dir := t.TempDir()
	e := companyEngine(t, Options{Dir: dir, Watch: true})
	before := e.Revision()
	writeFile(t, dir, "barrier.rego", barrier)
	deadline := time.Now().Add(5 * time.Second)
	for e.Revision() == before {
		if time.Now().After(deadline) {
			t.Fatal("no reload within 5s of writing a policy file")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d := e.Contact(context.Background(), msg(local("tom@example.com"), local("ben@example.com"))); d.Reason != "information_barrier" {
		t.Fatalf("after the watched reload: %+v", d)
	}
	// A broken save is reported and changes nothing.
	good := e.Revision()
	writeFile(t, dir, "barrier.rego", "package kontor.contact\nallow contains\n")
	deadline = time.Now().Add(5 * time.Second)
	for e.Status().LastError == "" {
		if time.Now().After(deadline) {
			t.Fatal("the broken save was not reported within 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if e.Revision() != good {
		t.Error("a broken save replaced the policy")
	}
}

// TestReloadUnderConcurrentDecisions swaps policies and directories while
// decisions run: no decision may fail, and each answers by one of the two
// policies.
func TestReloadUnderConcurrentDecisions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	// What is tested is that reloads never fail a decision or give a
	// wrong one; the timeout (tested elsewhere) is long, so that a busy
	// machine running -race does not fail it on time.
	e := companyEngine(t, Options{Dir: dir, Timeout: 10 * time.Second})
	pairs := []gate.ContactInput{
		msg(local("tom@example.com"), local("ben@example.com")),
		msg(local("ben@example.com"), local("tom@example.com")),
		msg(local("anna@example.com"), local("fritz@example.com")),
		msg(local("gus@example.com"), local("anna@example.com")),
	}
	var stop atomic.Bool
	var decisions atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for w := range 3 {
		wg.Go(func() {
			for i := w; !stop.Load(); i++ {
				if i%64 == 0 {
					time.Sleep(100 * time.Microsecond) // leave the reloader some CPU on a busy machine
				}
				in := pairs[i%len(pairs)]
				d := e.Contact(ctx, in)
				decisions.Add(1)
				switch {
				case d.Err != nil:
					select {
					case errs <- fmt.Sprintf("decision failed: %+v", d):
					default:
					}
				case d.Reason != "internal" && d.Reason != "information_barrier" && d.Reason != "sponsor":
					select {
					case errs <- fmt.Sprintf("unexpected decision %+v", d):
					default:
					}
				}
			}
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	reloads := 0
	for i := 0; i < 20 && time.Now().Before(deadline); i++ {
		reloads++
		if i%2 == 0 {
			writeFile(t, dir, "barrier.rego", barrier)
		} else if err := removeFile(dir, "barrier.rego"); err != nil {
			t.Fatal(err)
		}
		if err := e.Reload(ctx, "test"); err != nil {
			t.Fatal(err)
		}
		s := company()
		s.Revision = fmt.Sprintf("rev-%d", i)
		if err := e.UpdateDirectory(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Error(msg)
	}
	if decisions.Load() < 100 || reloads < 4 {
		t.Errorf("only %d decisions ran during %d reloads", decisions.Load(), reloads)
	}
}

func TestFailClosed(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		timeout time.Duration
		reason  string
	}{
		{"undefined", "package kontor.contact\n\ndecision := {\"allow\": true, \"reason\": \"ok\"} if input.action == \"never\"\n", 0, gate.ReasonUndefined},
		{"not an object", "package kontor.contact\n\ndecision := true\n", 0, gate.ReasonInvalid},
		{"allow is not a boolean", "package kontor.contact\n\ndecision := {\"allow\": \"yes\", \"reason\": \"ok\"}\n", 0, gate.ReasonInvalid},
		{"reason is not a code", "package kontor.contact\n\ndecision := {\"allow\": true, \"reason\": \"<b>ok</b>\"}\n", 0, gate.ReasonInvalid},
		{"conflicting answers", "package kontor.contact\n\ndecision := {\"allow\": true, \"reason\": \"a\"}\n\ndecision := {\"allow\": false, \"reason\": \"b\"} if input.action == \"message\"\n", 0, gate.ReasonError},
		{"too slow", "package kontor.contact\n\ndecision := {\"allow\": true, \"reason\": \"slow\"} if {\n\tcount([x | some i in numbers.range(1, 3000); some j in numbers.range(1, 3000); x := i * j; x < 0]) == 0\n}\n", 20 * time.Millisecond, gate.ReasonTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "contact.rego", tt.src)
			rec := &recordingAudit{}
			e := newEngine(t, Options{Dir: dir, Timeout: tt.timeout, Audit: rec})
			start := time.Now()
			d := e.Contact(context.Background(), msg(local("a@example.com"), local("b@example.com")))
			if d.Allow || d.Reason != tt.reason || d.Err == nil || d.Message == "" {
				t.Fatalf("got %+v, want a refusal with %s", d, tt.reason)
			}
			if tt.timeout > 0 && time.Since(start) > tt.timeout+2*time.Second {
				t.Errorf("the timeout took %v", time.Since(start))
			}
			if se := d.StanzaError(); !strings.Contains(se.Text, tt.reason) {
				t.Errorf("stanza error text %q", se.Text)
			}
			if entries := rec.take(); len(entries) != 1 || entries[0].Reason != tt.reason {
				t.Errorf("audit %+v", entries)
			}
			// Failures are not cached: the next decision asks again.
			if n := e.state.Load().cache.len(); n != 0 {
				t.Errorf("%d failed decisions cached", n)
			}
		})
	}
}

func TestNondeterministicPolicyIsNotCached(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "hours.rego", `package kontor.contact

# Guests only during office hours (UTC, for the test).
deny contains {"reason": "after_hours", "message": "Guests can chat 8:00 to 18:00."} if {
	input.from.kind == "guest"
	[h, _, _] := time.clock(time.now_ns())
	not h >= 8
}
`)
	e := newEngine(t, Options{Dir: dir})
	st := e.Status()
	if st.Cached || !slices.Contains(st.NondeterministicBuiltins, "time.now_ns") {
		t.Fatalf("status %+v: want no cache because of time.now_ns", st)
	}
	e.Contact(context.Background(), msg(local("a@example.com"), local("b@example.com")))
	if e.state.Load().cache != nil {
		t.Error("decisions cached")
	}
}

package policy

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// TestOptions configure RunTests.
type TestOptions struct {
	// Dir adds to or replaces files of the embedded bundle, tests
	// included, exactly as the server loads it.
	Dir      string
	Settings Settings
	// Run selects tests by a regular expression on package.rule ("" all).
	Run string
	// Timeout bounds each test (default 10s).
	Timeout time.Duration
	// Explain traces the evaluation, so that a failure names the
	// expression that failed (slower).
	Explain bool
}

// TestResult is the outcome of one Rego test rule.
type TestResult struct {
	Package  string        `json:"package"`
	Name     string        `json:"name"`
	File     string        `json:"file"`
	Line     int           `json:"line"`
	Pass     bool          `json:"pass"`
	Skip     bool          `json:"skip,omitempty"`
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration"`
}

// TestReport is the outcome of a test run.
type TestReport struct {
	Results                 []TestResult `json:"results"`
	Passed, Failed, Skipped int
}

// Summary is the line `kontor policy test` ends with.
func (r TestReport) Summary() string {
	s := fmt.Sprintf("%d passed, %d failed", r.Passed, r.Failed)
	if r.Skipped > 0 {
		s += fmt.Sprintf(", %d skipped", r.Skipped)
	}
	return s
}

// RunTests runs the test_ rules of the embedded bundle and of opts.Dir, as
// `opa test` would, with the same data document the server gives policies
// (the settings and an empty directory: tests bring their people with
// `with data.kontor.directory.people as ...`). A policy that does not
// compile is a *LoadError.
func RunTests(ctx context.Context, opts TestOptions) (TestReport, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	files, err := readSources(opts.Dir)
	if err != nil {
		return TestReport{}, err
	}
	// Compiling first gives the same problems, with file and line, as the
	// server would report, and checks that every decision is defined.
	if _, err := compilePolicy(files, true, opts.Settings.canonical()); err != nil {
		return TestReport{}, err
	}
	modules := map[string]*ast.Module{}
	for _, f := range files {
		m, err := ast.ParseModuleWithOpts(f.location(), f.src, ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true})
		if err != nil {
			return TestReport{}, &LoadError{Problems: astProblems(err, f.location())}
		}
		modules[f.location()] = m
	}
	store := inmem.NewFromASTObject(dataDocument(emptyDirectory(), opts.Settings))
	runner := tester.NewRunner().
		SetCompiler(ast.NewCompiler().WithCapabilities(capabilities()).WithDefaultRegoVersion(ast.RegoV1)).
		SetDefaultRegoVersion(ast.RegoV1).
		SetStore(store).
		SetModules(modules).
		SetTimeout(opts.Timeout).
		RaiseBuiltinErrors(true).
		EnableTracing(opts.Explain).
		Filter(opts.Run)
	ch, err := runner.RunTests(ctx, nil)
	if err != nil {
		return TestReport{}, &LoadError{Problems: astProblems(err, "")}
	}
	var rep TestReport
	for r := range ch {
		tr := TestResult{Package: strings.TrimPrefix(r.Package, "data."), Name: r.Name, Pass: r.Pass(), Skip: r.Skip, Duration: r.Duration}
		if r.Location != nil {
			tr.File, tr.Line = r.Location.File, r.Location.Row
		}
		switch {
		case r.Error != nil:
			tr.Error = r.Error.Error()
		case r.Fail:
			tr.Error = "failed"
			if loc := failedAt(r.Trace, tr.File, tr.Line); loc != nil {
				tr.Error = fmt.Sprintf("failed at %s:%d: %s", loc.File, loc.Row, loc.Text)
			}
		}
		switch {
		case tr.Skip:
			rep.Skipped++
		case tr.Pass:
			rep.Passed++
		default:
			rep.Failed++
		}
		rep.Results = append(rep.Results, tr)
	}
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("policy: tests: %w", err)
	}
	sort.Slice(rep.Results, func(i, j int) bool {
		a, b := rep.Results[i], rep.Results[j]
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Line < b.Line
	})
	return rep, nil
}

// failedAt finds, in a trace, the last expression of the test's own file
// (below the test's first line) that failed.
func failedAt(trace []*topdown.Event, file string, line int) *ast.Location {
	var loc *ast.Location
	for _, ev := range trace {
		if ev.Op != topdown.FailOp || ev.Location == nil || ev.Location.File != file || ev.Location.Row <= line {
			continue
		}
		if _, ok := ev.Node.(*ast.Expr); ok {
			loc = ev.Location
		}
	}
	return loc
}

package policy

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

//go:embed bundle/*.rego
var bundleFS embed.FS

// MaxFileBytes bounds one policy file: a policy is a page of rules, not a
// data dump, and a runaway file must not take the server's memory.
const MaxFileBytes = 1 << 20

// File is one policy file and where it came from.
type File struct {
	// Name is the file's base name ("contact.rego"); a file in policy.dir
	// with the name of an embedded file replaces it.
	Name string `json:"name"`
	// Origin is "embedded" or the file's path in policy.dir.
	Origin string `json:"origin"`
	// Overrides is true for a policy.dir file that replaced an embedded
	// file of the same name.
	Overrides bool `json:"overrides,omitempty"`
	// Test is true for *_test.rego files: loaded by `kontor policy test`,
	// not by the server.
	Test   bool   `json:"test,omitempty"`
	SHA256 string `json:"sha256"`
	src    string
}

// location is the name that errors and test results use for the file.
func (f File) location() string {
	if f.Origin == "embedded" {
		return "bundle/" + f.Name
	}
	return f.Origin
}

// Problem is one reason a policy did not load.
type Problem struct {
	File    string `json:"file"` // "" when no file is to blame
	Line    int    `json:"line"`
	Col     int    `json:"col"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	switch {
	case p.File == "":
		return p.Message
	case p.Line == 0:
		return p.File + ": " + p.Message
	}
	return fmt.Sprintf("%s:%d:%d: %s", p.File, p.Line, p.Col, p.Message)
}

// LoadError lists every problem of a policy that refused to load.
type LoadError struct{ Problems []Problem }

func (e *LoadError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return "policy: invalid policy:\n  " + strings.Join(lines, "\n  ")
}

// readSources returns the embedded bundle with the files of dir ("" for
// none) added or replacing embedded ones, sorted by name. Only *.rego
// files directly in dir count; others are ignored.
func readSources(dir string) ([]File, error) {
	byName := map[string]File{}
	entries, err := fs.ReadDir(bundleFS, "bundle")
	if err != nil {
		return nil, fmt.Errorf("policy: embedded bundle: %w", err)
	}
	for _, e := range entries {
		b, err := fs.ReadFile(bundleFS, path.Join("bundle", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("policy: embedded bundle: %w", err)
		}
		byName[e.Name()] = newFile(e.Name(), "embedded", b)
	}
	if dir != "" {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("policy: dir: %w", err)
		}
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".rego") || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			p := filepath.Join(dir, e.Name())
			info, err := os.Stat(p) // follows symlinks (ConfigMaps mount them)
			if err != nil {
				return nil, fmt.Errorf("policy: dir: %w", err)
			}
			if !info.Mode().IsRegular() {
				continue
			}
			if info.Size() > MaxFileBytes {
				return nil, &LoadError{Problems: []Problem{{File: p, Message: fmt.Sprintf("larger than %d bytes", MaxFileBytes)}}}
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("policy: dir: %w", err)
			}
			f := newFile(e.Name(), p, b)
			_, f.Overrides = byName[e.Name()]
			byName[e.Name()] = f
		}
	}
	files := make([]File, 0, len(byName))
	for _, f := range byName {
		files = append(files, f)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	return files, nil
}

func newFile(name, origin string, b []byte) File {
	sum := sha256.Sum256(b)
	return File{Name: name, Origin: origin, Test: strings.HasSuffix(name, "_test.rego"),
		SHA256: hex.EncodeToString(sum[:]), src: string(b)}
}

// forbiddenBuiltins are left out of the capabilities policies compile
// against: decisions sit in the stanza path and must not wait for the
// network, and opa.runtime would show policies the server's environment.
var forbiddenBuiltins = []string{"http.send", "net.lookup_ip_addr", "opa.runtime"}

func capabilities() *ast.Capabilities {
	c := ast.CapabilitiesForThisVersion()
	c.Builtins = slices.DeleteFunc(c.Builtins, func(b *ast.Builtin) bool {
		return slices.Contains(forbiddenBuiltins, b.Name)
	})
	return c
}

// compiled is a parsed and compiled set of policy files.
type compiled struct {
	files    []File // every file, tests included
	compiler *ast.Compiler
	// revision is the SHA-256 over the served files and the settings.
	revision string
	// nondeterministic names the builtins whose results change between
	// calls with the same input (time.now_ns, rand.intn, ...); when any
	// is used, decisions are not cached.
	nondeterministic []string
}

// compilePolicy parses and compiles files (tests only when withTests), and
// checks that every decision has a rule. settings is part of the revision.
func compilePolicy(files []File, withTests bool, settings []byte) (*compiled, error) {
	var problems []Problem
	modules := map[string]*ast.Module{}
	h := sha256.New()
	for _, f := range files {
		if f.Test && !withTests {
			continue
		}
		if !f.Test {
			fmt.Fprintf(h, "%s\x00%s\n", f.Name, f.SHA256)
		}
		m, err := ast.ParseModuleWithOpts(f.location(), f.src, ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true})
		if err != nil {
			problems = append(problems, astProblems(err, f.location())...)
			continue
		}
		if m == nil {
			problems = append(problems, Problem{File: f.location(), Message: "empty policy file: it needs at least a package"})
			continue
		}
		modules[f.location()] = m
	}
	if len(problems) > 0 {
		return nil, &LoadError{Problems: problems}
	}
	h.Write(settings)
	c := ast.NewCompiler().WithCapabilities(capabilities()).WithDefaultRegoVersion(ast.RegoV1)
	if c.Compile(modules); c.Failed() {
		return nil, &LoadError{Problems: astProblems(c.Errors, "")}
	}
	for _, k := range kinds {
		if len(c.GetRulesForVirtualDocument(k.ref)) == 0 {
			problems = append(problems, Problem{Message: "no rule defines " + k.query + " (the " + k.name + " decision)"})
		}
	}
	if len(problems) > 0 {
		return nil, &LoadError{Problems: problems}
	}
	return &compiled{files: files, compiler: c, revision: hex.EncodeToString(h.Sum(nil)),
		nondeterministic: nondeterministicCalls(c)}, nil
}

// astProblems turns OPA's errors into Problems with file and line.
func astProblems(err error, file string) []Problem {
	var one *ast.Error
	if errors.As(err, &one) {
		err = ast.Errors{one}
	}
	var errs ast.Errors
	if errors.As(err, &errs) {
		out := make([]Problem, 0, len(errs))
		for _, e := range errs {
			p := Problem{File: file, Message: e.Code + ": " + e.Message}
			if e.Location != nil {
				if e.Location.File != "" {
					p.File = e.Location.File
				}
				p.Line, p.Col = e.Location.Row, e.Location.Col
			}
			out = append(out, p)
		}
		return out
	}
	return []Problem{{File: file, Message: err.Error()}}
}

// nondeterministicCalls lists the nondeterministic builtins the compiled
// policies call.
func nondeterministicCalls(c *ast.Compiler) []string {
	seen := map[string]bool{}
	check := func(op ast.Ref) {
		if b, ok := ast.BuiltinMap[op.String()]; ok && b.Nondeterministic {
			seen[b.Name] = true
		}
	}
	for _, m := range c.Modules {
		ast.NewGenericVisitor(func(x any) bool {
			switch x := x.(type) {
			case *ast.Expr:
				if x.IsCall() {
					check(x.Operator())
				}
			case ast.Call:
				if len(x) > 0 {
					if r, ok := x[0].Value.(ast.Ref); ok {
						check(r)
					}
				}
			}
			return false
		}).Walk(m)
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

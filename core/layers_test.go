// Package core_test holds the test that keeps Kontor's dependency rules
// (DESIGN.md, CONVENTIONS.md) true: it reads `go list -deps` for every
// package and fails on an import that breaks a rule.
package core_test

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

const mod = "kontor.im/kontor/"

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "kontor.im/kontor/...")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(out)
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("go list: %v", err)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

func rel(path string) string { return strings.TrimPrefix(path, mod) }

func under(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

func TestLayers(t *testing.T) {
	pkgs := listPackages(t)
	rules := []struct {
		name  string
		from  func(string) bool // which packages the rule applies to
		deny  func(dep string) bool
		which string
	}{
		{
			name: "core never depends on policy, archive, ldapsync or reports",
			from: func(p string) bool { return under(p, "core") },
			deny: func(d string) bool {
				return under(d, "policy") || under(d, "archive") || under(d, "ldapsync") || under(d, "reports")
			},
			which: "deps",
		},
		{
			name: "modules never import another module or the session layer",
			from: func(p string) bool { return under(p, "core/mod") },
			deny: func(d string) bool {
				return under(d, "core/session") || under(d, "core/router") || under(d, "cmd")
			},
			which: "deps",
		},
		{
			name:  "reports never writes: it does not depend on the session or router",
			from:  func(p string) bool { return under(p, "reports") },
			deny:  func(d string) bool { return under(d, "core/session") || under(d, "core/router") },
			which: "deps",
		},
		{
			name:  "nothing outside cmd depends on cmd",
			from:  func(p string) bool { return !under(p, "cmd") },
			deny:  func(d string) bool { return under(d, "cmd") },
			which: "deps",
		},
	}
	for _, p := range pkgs {
		from := rel(p.ImportPath)
		for _, r := range rules {
			if !r.from(from) {
				continue
			}
			for _, d := range p.Deps {
				if strings.HasPrefix(d, mod) && r.deny(rel(d)) {
					t.Errorf("%s: %s depends on %s", r.name, from, rel(d))
				}
			}
		}
		// A module imports no other module directly.
		if under(from, "core/mod") {
			me := strings.SplitN(strings.TrimPrefix(from, "core/mod/"), "/", 2)[0]
			for _, d := range p.Imports {
				if r := rel(d); strings.HasPrefix(d, mod) && under(r, "core/mod") && !under(r, "core/mod/"+me) {
					t.Errorf("module %s imports module %s", from, r)
				}
			}
		}
	}
}

// TestAdapterTypesStayInside: pgx, OPA and go-ldap are used only by the
// packages that adapt them.
func TestAdapterTypesStayInside(t *testing.T) {
	owners := map[string][]string{
		"github.com/jackc/pgx":             {"core/storage/postgres", "core/storage/pgtest", "archive", "reports"},
		"github.com/open-policy-agent/opa": {"policy"},
		"github.com/go-ldap/ldap":          {"ldapsync"},
		"modernc.org/sqlite":               {"core/storage/sqlite", "archive", "reports"},
	}
	for _, p := range listPackages(t) {
		from := rel(p.ImportPath)
		for _, imp := range p.Imports {
			for lib, allowed := range owners {
				if !strings.HasPrefix(imp, lib) {
					continue
				}
				ok := false
				for _, a := range allowed {
					if under(from, a) {
						ok = true
					}
				}
				if !ok {
					t.Errorf("%s imports %s, which only %v may use", from, imp, allowed)
				}
			}
		}
	}
}

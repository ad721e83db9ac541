package main

import (
	"bytes"
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated sections of README.md")

// readmeSection replaces or checks the text between <!-- name:start --> and
// <!-- name:end --> in README.md.
func readmeSection(t *testing.T, name, want string) {
	t.Helper()
	const path = "../../README.md"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?s)(<!-- ` + name + `:start -->\n).*?(<!-- ` + name + `:end -->)`)
	m := re.FindSubmatchIndex(b)
	if m == nil {
		t.Fatalf("README.md has no %s section markers", name)
	}
	got := string(b[m[3]:m[4]])
	if got == want {
		return
	}
	if *update {
		out := append([]byte{}, b[:m[3]]...)
		out = append(out, want...)
		out = append(out, b[m[4]:]...)
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md's %s section is out of date; run: go test ./cmd/kontor -run TestReadme -update", name)
}

func TestReadmeProtocols(t *testing.T) {
	var b bytes.Buffer
	writeProtocolTable(&b)
	if !strings.Contains(b.String(), "| RFC 6120 |") {
		t.Fatalf("protocol table lacks RFC 6120:\n%s", b.String())
	}
	readmeSection(t, "protocols", b.String())
}

func TestReadmeConfig(t *testing.T) {
	readmeSection(t, "config", "```yaml\n"+defaultYAML+"```\n")
}

func TestReadmeCompliance(t *testing.T) {
	var b bytes.Buffer
	writeCompliance(&b)
	readmeSection(t, "compliance", b.String())
}

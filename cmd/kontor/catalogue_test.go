package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCatalogue: the catalogue reflects the switches and the policy in
// force, in Markdown and in HTML, and states that there is no live
// mirroring.
func TestCatalogue(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "kontor.yaml")
	yaml := "data_dir: " + dir + "\nworks_council:\n  archive_view: false\n  notify_subject: true\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(format string) string {
		t.Helper()
		var out, errOut strings.Builder
		root := newRootCmd(&out, &errOut)
		root.SetArgs([]string{"catalogue", "--format", format, "--config", file})
		if err := root.Execute(); err != nil {
			t.Fatalf("catalogue --format %s: %v %s", format, err, errOut.String())
		}
		return out.String()
	}
	md := run("md")
	for _, want := range []string{
		"| **Looking into someone else's archive**: An operator reads the stored messages of another person, e.g. for a court order or an internal investigation. | off | `works_council.archive_view` | admin, dpo |",
		"dual control: 2 approver(s) other than the requester, covering the roles dpo and works_council",
		"| **Exporting someone else's data**",
		"the person concerned is notified by a message from the server after an approved access",
		"no covert live-mirroring mode",
		"| **Importing another server's data**", "| **Re-admitting an erased person**", "| **Break-glass recovery of admin access**",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown catalogue lacks %q:\n%s", want, md)
		}
	}
	html := run("html")
	for _, want := range []string{"<td>off</td><td><code>works_council.archive_view</code></td>", "<li>a case number and a purpose are required</li>",
		"someone else&#39;s archive", "no covert live-mirroring mode"} {
		if !strings.Contains(html, want) {
			t.Errorf("HTML catalogue lacks %q:\n%s", want, html)
		}
	}
	var out, errOut strings.Builder
	root := newRootCmd(&out, &errOut)
	root.SetArgs([]string{"catalogue", "--format", "pdf", "--config", file})
	if err := root.Execute(); err == nil {
		t.Error("--format pdf was accepted")
	}
}

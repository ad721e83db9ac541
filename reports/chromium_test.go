package reports_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kontor.im/kontor/core/testenv"

	"kontor.im/kontor/reports"
)

var screenshots = flag.Bool("screenshots", false, "write a screenshot of each HTML report to docs/")

// chromium returns Debian's chromium (core/testenv installs it as root
// when missing; under CI=true a missing browser fails the test).
func chromium(t *testing.T) string { return testenv.Program(t, "chromium", "chromium") }

// TestHTMLInChromium renders each report's HTML in headless Chromium and
// checks that it loads without console errors and that the DOM holds the
// title, the tables and (where there is one) the chart. With -screenshots
// it also writes docs/NAME.png.
func TestHTMLInChromium(t *testing.T) {
	bin := chromium(t)
	st := backends[0].open(t)
	defer st.Close()
	src := fixture(t, st)
	dir := t.TempDir()
	for _, d := range reports.Definitions {
		t.Run(d.Name, func(t *testing.T) {
			r, err := reports.Build(t.Context(), d.Name, src, per)
			if err != nil {
				t.Fatal(err)
			}
			page := filepath.Join(dir, d.Name+".html")
			var b bytes.Buffer
			if err := reports.RenderHTML(&b, r); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(page, b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			shot := filepath.Join(dir, d.Name+".png")
			if *screenshots {
				shot, _ = filepath.Abs(filepath.Join("docs", d.Name+".png"))
			}
			dom, logs := runChromium(t, bin, "--dump-dom", "file://"+page)
			for _, want := range []string{"<h1>" + r.Title + "</h1>", "<table>", "<footer>"} {
				if !strings.Contains(dom, strings.ReplaceAll(want, "&", "&amp;")) {
					t.Errorf("DOM lacks %q", want)
				}
			}
			if len(r.Charts) > 0 && !strings.Contains(dom, "<rect") {
				t.Error("DOM lacks the chart's bars")
			}
			for _, l := range strings.Split(logs, "\n") {
				if strings.Contains(l, "CONSOLE") || strings.Contains(l, "Uncaught") || strings.Contains(l, "Failed to load") {
					t.Errorf("chromium: %s", l)
				}
			}
			_, _ = runChromium(t, bin, "--screenshot="+shot, "--window-size=1100,1500", "--hide-scrollbars", "file://"+page)
			fi, err := os.Stat(shot)
			if err != nil || fi.Size() < 5000 {
				t.Fatalf("screenshot %s: %v (size %v)", shot, err, fi)
			}
		})
	}
}

func runChromium(t *testing.T, bin string, args ...string) (stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	all := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--user-data-dir=" + t.TempDir(),
		"--enable-logging=stderr", "--v=0"}, args...)
	cmd := exec.CommandContext(ctx, bin, all...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, e.String())
	}
	return o.String(), e.String()
}

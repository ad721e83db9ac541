package main

// The browser test: headless Chromium (Debian's chromium package) loads a
// page that uses a real XMPP JavaScript client (Strophe.js from npm,
// pinned by testdata/browser/package-lock.json) to log in over WebSocket,
// and over BOSH, and exchange messages with a mellium client on TCP. The page reports
// what it received with a POST to the test's own page server; the test
// checks both directions.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"kontor.im/kontor/core/testenv"
)

// browserClient installs the pinned npm packages of testdata/browser into
// a cache directory (once per lock file) and returns its node_modules.
func browserClient(t *testing.T) string {
	t.Helper()
	npm := testenv.Program(t, "npm", "npm")
	lock, err := os.ReadFile("testdata/browser/package-lock.json")
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := os.ReadFile("testdata/browser/package.json")
	if err != nil {
		t.Fatal(err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "kontor-test", fmt.Sprintf("browser-%x", hashBytes(append(pkg, lock...))))
	mods := filepath.Join(dir, "node_modules")
	if _, err := os.Stat(filepath.Join(mods, "strophe.js", "dist", "strophe.umd.min.js")); err == nil {
		return mods
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "npm-")
	if err != nil {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			t.Fatal(err)
		}
		if tmp, err = os.MkdirTemp(filepath.Dir(dir), "npm-"); err != nil {
			t.Fatal(err)
		}
	}
	for name, b := range map[string][]byte{"package.json": pkg, "package-lock.json": lock} {
		if err := os.WriteFile(filepath.Join(tmp, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts")
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(tmp)
		if os.Getenv("CI") == "true" {
			t.Fatalf("npm ci: %v\n%s", err, out)
		}
		t.Skipf("npm ci failed (offline?): %v\n%s", err, out)
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp) // another test binary was first
	}
	return mods
}

func hashBytes(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return h
}

// pageResult is what the page reports.
type pageResult struct {
	OK        bool   `json:"ok"`
	Error     string `json:"error"`
	JID       string `json:"jid"`
	Reply     string `json:"reply"`
	Mechanism string `json:"mechanism"`
}

// pageServer serves the test page and the client library on loopback and
// receives the page's result.
func pageServer(t *testing.T, mods string) (origin string, results <-chan pageResult) {
	t.Helper()
	ch := make(chan pageResult, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("/page.html", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, "testdata/browser/page.html")
	})
	mux.HandleFunc("/strophe.umd.min.js", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(mods, "strophe.js", "dist", "strophe.umd.min.js"))
	})
	mux.HandleFunc("/result", func(w http.ResponseWriter, r *http.Request) {
		var res pageResult
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		if err := json.Unmarshal(b, &res); err != nil {
			res = pageResult{Error: "bad result " + string(b)}
		}
		select {
		case ch <- res:
		default:
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String(), ch
}

// runChromium opens url in headless Chromium until the test ends.
func runChromium(t *testing.T, chromium, url string) {
	t.Helper()
	profile := t.TempDir()
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
		// The server's certificate is the generated self-signed one.
		"--ignore-certificate-errors",
		"--user-data-dir="+profile, url)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		// Chromium's own processes are in its group.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			s := out.String()
			t.Logf("chromium output (tail):\n%s", s[max(0, len(s)-4000):])
		}
	})
}

func TestBrowser(t *testing.T) {
	chromium := testenv.Program(t, "chromium", "chromium")
	mods := browserClient(t)
	for _, transport := range []string{"websocket", "bosh"} {
		t.Run(transport, func(t *testing.T) {
			testBrowser(t, chromium, mods, transport)
		})
	}
}

// testBrowser: Strophe.js in Chromium logs in as alice over the transport
// and exchanges messages with bob, a mellium client on TCP.
func testBrowser(t *testing.T, chromium, mods, transport string) {
	origin, results := pageServer(t, mods)
	u, _ := url.Parse(origin)
	ts := startTestServer(t, "sqlite", func(c *Config) { c.HTTP.AllowedOrigins = []string{u.Host} })
	ts.addUser(t, "alice", "alice-secret")
	ts.addUser(t, "bob", "bob-secret")
	bob := ts.dial(t, "bob", "bob-secret", withResource("tcp"))

	q := url.Values{}
	if transport == "bosh" {
		q.Set("service", ts.httpsOrigin()+boshPath)
	} else {
		q.Set("service", ts.wsURL())
	}
	q.Set("jid", bare("alice")+"/browser")
	q.Set("password", "alice-secret")
	q.Set("peer", bob.JID().String())
	body := "hello from the browser over " + transport
	q.Set("body", body)
	runChromium(t, chromium, origin+"/page.html?"+q.Encode())

	// Chromium's first start takes a while on a busy machine.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	m, err := bob.Messages.take(ctx, func(n xmlNode) bool { return n.body() == body })
	if err != nil {
		select {
		case res := <-results:
			t.Fatalf("bob got nothing; the page reports %+v", res)
		default:
			t.Fatalf("bob got nothing from the browser within 90s; server log:\n%s", ts.logs)
		}
	}
	from := m.attr("from")
	if !strings.HasPrefix(from, bare("alice")+"/") {
		t.Fatalf("message from %q", from)
	}
	reply := "hello back from TCP to " + transport
	bob.chat(t, from, reply)
	select {
	case res := <-results:
		if !res.OK || res.Reply != reply {
			t.Fatalf("the page reports %+v", res)
		}
		t.Logf("browser session %s (SASL %s) got the reply", res.JID, res.Mechanism)
	case <-time.After(30 * time.Second):
		t.Fatalf("the page reported nothing; server log:\n%s", ts.logs)
	}
}

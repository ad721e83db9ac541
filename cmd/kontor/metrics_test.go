package main

import (
	"bufio"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrape reads the admin listener's /metrics and checks its form: every
// sample has its HELP and TYPE lines before it, once.
func scrape(t *testing.T, ts *testServer) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + ts.addr("admin") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("GET /metrics: %s, %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	b, _ := io.ReadAll(resp.Body)
	out := map[string]float64{}
	help, typ := map[string]bool{}, map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "# HELP ") && len(f) > 3:
			help[f[2]] = true
		case strings.HasPrefix(line, "# TYPE ") && len(f) == 4:
			if f[3] != "gauge" && f[3] != "counter" {
				t.Errorf("type of %s: %q", f[2], f[3])
			}
			typ[f[2]] = f[3]
		case len(f) == 2:
			if !help[f[0]] || typ[f[0]] == "" {
				t.Errorf("sample %s without HELP and TYPE before it", f[0])
			}
			if _, dup := out[f[0]]; dup {
				t.Errorf("sample %s twice", f[0])
			}
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				t.Errorf("sample %q: %v", line, err)
			}
			if typ[f[0]] == "counter" && !strings.HasSuffix(f[0], "_total") {
				t.Errorf("counter %s does not end in _total", f[0])
			}
			out[f[0]] = v
		default:
			t.Errorf("unexpected line %q", line)
		}
	}
	return out
}

// TestMetrics: the gauges follow sessions and the archive's counters
// follow messages.
func TestMetrics(t *testing.T) {
	ts := startTestServer(t, "sqlite", enableArchive(t))
	ts.addUser(t, "alice", "alice-password")
	ts.addUser(t, "bob", "bob-password")
	m := scrape(t, ts)
	for _, name := range []string{"kontor_c2s_connections", "kontor_sessions", "kontor_sessions_detached",
		"kontor_archive_appended_total", "kontor_archive_stored_total", "kontor_archive_queue_messages", "kontor_archive_lost_total"} {
		if _, ok := m[name]; !ok {
			t.Errorf("no %s", name)
		}
	}
	if m["kontor_sessions"] != 0 || m["kontor_archive_appended_total"] != 0 {
		t.Errorf("before anyone logged in: %v", m)
	}
	alice := ts.dial(t, "alice", "alice-password")
	bob := ts.dial(t, "bob", "bob-password")
	// settled waits until everything appended is stored.
	settled := func(want float64) map[string]float64 {
		t.Helper()
		deadline := time.Now().Add(e2eWait)
		for {
			m := scrape(t, ts)
			if m["kontor_archive_stored_total"] == m["kontor_archive_appended_total"] && m["kontor_archive_stored_total"] == want {
				return m
			}
			if time.Now().After(deadline) {
				t.Fatalf("the archive counters did not settle at %v stored: %v", want, m)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// bob's barrier is a message to himself, archived once; the archive
	// may count it a moment after bob has it, so wait for the number.
	bob.barrier(t)
	settled(1)
	alice.chat(t, "bob@localhost", "counted")
	bob.barrier(t)
	// One message, archived for each party, and bob's second barrier.
	m = settled(4)
	if m["kontor_sessions"] != 2 || m["kontor_c2s_connections"] != 2 || m["kontor_sessions_detached"] != 0 || m["kontor_archive_queue_messages"] != 0 {
		t.Errorf("with two users and one message: %v", m)
	}
}

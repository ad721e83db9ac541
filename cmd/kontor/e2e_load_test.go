package main

// Smoke test of kontor-load (cmd/kontor-load/load) against a Kontor
// started in this process: every scenario runs for about a second against
// the PostgreSQL backend with the archive on, and must lose nothing. The
// side-by-side comparison with Prosody and ejabberd (compare.sh) is slow
// and is not part of the test run.

import (
	"context"
	"os"
	"testing"
	"time"

	"kontor.im/kontor/cmd/kontor-load/load"
)

func TestE2ELoadScenarios(t *testing.T) {
	ts := startTestServer(t, "postgres", func(c *Config) {
		enableArchive(t)(c)
		c.Log.Level = "warn"
		c.Registration.Open = true
		c.Registration.MaxPerIPPerHour = 0
		c.C2S.MaxConnectionsPerIP = 0
		c.Policy.UnknownLocalKind = "employee"
	})
	base := load.Config{
		Addr: ts.addr("starttls"), Domain: e2eDomain, Users: 12, Concurrency: 4, Pairs: 2,
		Duration: time.Second, Settle: 100 * time.Millisecond, Timeout: 10 * time.Second,
		ServerPID: os.Getpid(), Seed: 60, Page: 25,
	}
	run := func(t *testing.T, scenario string, change func(*load.Config)) *load.Result {
		t.Helper()
		cfg := base
		cfg.Scenario = scenario
		if change != nil {
			change(&cfg)
		}
		r, err := load.Run(context.Background(), &cfg)
		if err != nil {
			t.Fatalf("%s: %v", scenario, err)
		}
		if r.Errors != 0 || r.Ops == 0 {
			t.Fatalf("%s: %d errors (%s), %d operations", scenario, r.Errors, r.FirstError, r.Ops)
		}
		return r
	}
	if r := run(t, "register", nil); r.Ops != 12 {
		t.Fatalf("registered %d of 12", r.Ops)
	}
	// Again: provisioning is idempotent.
	run(t, "register", nil)
	if r := run(t, "login", nil); r.Ops != 12 || r.P50ms <= 0 {
		t.Errorf("login: %+v", r)
	}
	if r := run(t, "idle", nil); r.Ops != 12 || r.RSSAfterKiB <= 0 {
		t.Errorf("idle: %+v", r)
	}
	for _, rate := range []float64{0, 50} {
		r := run(t, "chat", func(c *load.Config) { c.Rate = rate })
		if r.Lost != 0 || r.Sent != r.Ops {
			t.Errorf("chat at rate %v: sent %d, delivered %d, lost %d", rate, r.Sent, r.Ops, r.Lost)
		}
		if r.ServerCPUms <= 0 || r.CPUPer1000MS <= 0 || r.P99ms <= 0 {
			t.Errorf("chat at rate %v: no CPU or latency measured: %+v", rate, r)
		}
		if rate > 0 && (r.Sent < 30 || r.Sent > 60) {
			t.Errorf("chat at 50/s for 1s sent %d", r.Sent)
		}
	}
	// With stream management (XEP-0198): every message delivered, and
	// acknowledged to its sender (after the archive stored it).
	for _, rate := range []float64{0, 50} {
		r := run(t, "chat", func(c *load.Config) { c.Rate, c.SM = rate, true })
		if r.Lost != 0 || r.Sent != r.Ops || r.Unacked != 0 || r.Sent == 0 {
			t.Errorf("chat with sm at rate %v: sent %d, delivered %d, lost %d, unacknowledged %d", rate, r.Sent, r.Ops, r.Lost, r.Unacked)
		}
	}
	if r := run(t, "mam", nil); r.MessagesPerPage < 20 || r.MessagesPerPage > 25 {
		t.Errorf("mam: %.1f messages per page, want (mostly) full pages of 25: %+v", r.MessagesPerPage, r)
	}
}

// TestLoadRefusesRemote: the tool only loads local servers.
func TestLoadRefusesRemote(t *testing.T) {
	_, err := load.Run(context.Background(), &load.Config{Scenario: "login", Addr: "192.0.2.1:5222"})
	if err == nil {
		t.Fatal("a non-loopback address was accepted")
	}
}

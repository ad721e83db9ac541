package main

// Smoke test of kontor-load's muc scenario against a Kontor started in
// this process (PostgreSQL, archive on): a dozen occupants, ten room
// messages, every one reaching every occupant.

import (
	"context"
	"os"
	"testing"
	"time"

	"kontor.im/kontor/cmd/kontor-load/load"
)

func TestE2ELoadMUC(t *testing.T) {
	ts := startTestServer(t, "postgres", func(c *Config) {
		enableArchive(t)(c)
		c.Log.Level = "warn"
		c.Registration.Open = true
		c.Registration.MaxPerIPPerHour = 0
		c.C2S.MaxConnectionsPerIP = 0
		c.Policy.UnknownLocalKind = "employee"
	})
	cfg := load.Config{Scenario: "register", Addr: ts.addr("starttls"), Domain: e2eDomain, Users: 12, Concurrency: 4,
		Settle: 100 * time.Millisecond, Timeout: 10 * time.Second, ServerPID: os.Getpid()}
	if r, err := load.Run(context.Background(), &cfg); err != nil || r.Ops != 12 {
		t.Fatalf("register: %+v, %v", r, err)
	}
	cfg.Scenario = "muc"
	cfg.MUC = load.MUCConfig{Occupants: 12, Messages: 10}
	r, err := load.Run(context.Background(), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := r.MUC
	if r.Errors != 0 || r.Ops != 10 || r.Lost != 0 || m == nil || m.Deliveries != 120 {
		t.Fatalf("muc: %d errors (%s), %d of 10 room messages fanned out, %+v", r.Errors, r.FirstError, r.Ops, m)
	}
	if m.FirstP50ms <= 0 || m.LastP99ms < m.LastP50ms || m.LastP50ms < m.FirstP50ms || m.CPUPerMessageMS <= 0 || m.CPUPerDeliveryUS <= 0 {
		t.Fatalf("muc figures: %+v", m)
	}
	if cfg.MUC.Room != "loadroom@conference."+e2eDomain {
		t.Fatalf("room %q", cfg.MUC.Room)
	}
}

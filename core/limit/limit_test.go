package limit

import (
	"net/netip"
	"testing"
	"time"
)

func TestConns(t *testing.T) {
	c := NewConns(2)
	ip := netip.MustParseAddr("127.0.0.1")
	other := netip.MustParseAddr("127.0.0.2")
	if !c.Acquire(ip) || !c.Acquire(ip) {
		t.Fatal("first two connections refused")
	}
	if c.Acquire(ip) {
		t.Fatal("third connection from one address allowed")
	}
	if !c.Acquire(other) {
		t.Fatal("another address was affected by the limit")
	}
	c.Release(ip)
	c.Release(ip)
	if !c.Acquire(ip) {
		t.Fatal("connection refused after others closed")
	}
}

func TestAuthBackoff(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	a := NewAuth(AuthConfig{MaxPerIP: 10, MaxPerAccount: 3, Window: time.Minute, Backoff: time.Second, MaxBackoff: 8 * time.Second})
	a.now = func() time.Time { return now }
	ip := netip.MustParseAddr("127.0.0.1")
	ip2 := netip.MustParseAddr("127.0.0.2")
	tests := []struct {
		name     string
		fails    int
		wantWait time.Duration
	}{
		{"below the limit", 2, 0},
		{"at the limit", 1, time.Second},
		{"doubles", 1, 2 * time.Second},
		{"doubles again", 1, 4 * time.Second},
		{"capped", 3, 8 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range tt.fails {
				a.Fail(ip, "alice@example.com")
			}
			if got := a.Wait(ip2, "alice@example.com"); got != tt.wantWait {
				t.Fatalf("account wait from another address = %v, want %v", got, tt.wantWait)
			}
		})
	}
	if got := a.Wait(ip2, "bob@example.com"); got != 0 {
		t.Fatalf("another account waits %v", got)
	}
	now = now.Add(9 * time.Second)
	if got := a.Wait(ip, "alice@example.com"); got != 0 {
		t.Fatalf("still blocked after the back-off: %v", got)
	}
	a.Success("alice@example.com")
	a.Fail(ip, "alice@example.com")
	if got := a.Wait(ip2, "alice@example.com"); got != 0 {
		t.Fatalf("success did not reset the account: %v", got)
	}
}

func TestAuthPerIP(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	a := NewAuth(AuthConfig{MaxPerIP: 3, MaxPerAccount: 100, Window: time.Minute, Backoff: time.Second, MaxBackoff: time.Minute})
	a.now = func() time.Time { return now }
	ip := netip.MustParseAddr("127.0.0.9")
	for i := range 3 {
		a.Fail(ip, "user"+string(rune('a'+i))+"@example.com")
	}
	if a.Wait(ip, "") == 0 {
		t.Fatal("an address guessing many accounts is not slowed down")
	}
	if a.Wait(netip.MustParseAddr("127.0.0.8"), "") != 0 {
		t.Fatal("another address is slowed down")
	}
	// Records expire after the window and the sweep.
	now = now.Add(2 * time.Minute)
	a.Fail(netip.MustParseAddr("127.0.0.7"), "")
	a.mu.Lock()
	_, kept := a.ips[ip]
	a.mu.Unlock()
	if kept {
		t.Fatal("expired record kept")
	}
}

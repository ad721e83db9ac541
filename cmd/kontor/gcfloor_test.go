package main

import (
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercentFor(t *testing.T) {
	const mib = 1 << 20
	for _, tt := range []struct {
		live, min  uint64
		base, want int
	}{
		{3 * mib, 32 * mib, 100, 966},   // goal 3*(1+9.66) = 32 MiB
		{16 * mib, 32 * mib, 100, 100},  // twice the live heap is the floor already
		{100 * mib, 32 * mib, 100, 100}, // a large server: GOGC's
		{20 * mib, 32 * mib, 200, 200},  // a base above the floor's need
		{1, 32 * mib, 100, maxGCPercent},
		{12 * mib, 32 * mib, 100, 166},
	} {
		got := percentFor(tt.live, tt.min, tt.base)
		if got != tt.want {
			t.Errorf("percentFor(%d, %d, %d) = %d, want %d", tt.live, tt.min, tt.base, got, tt.want)
		}
		if goal := tt.live * uint64(100+got) / 100; got < maxGCPercent && got > tt.base && goal > tt.min {
			t.Errorf("percentFor(%d, %d, %d): goal %d above the floor", tt.live, tt.min, tt.base, goal)
		}
	}
}

// TestGCFloor runs the floor in this process (whose live heap is small):
// after a collection the percentage is raised, and stop restores it.
func TestGCFloor(t *testing.T) {
	if os.Getenv("GOGC") != "" {
		t.Skip("GOGC is set: the floor is off by design")
	}
	base := debug.SetGCPercent(100)
	defer debug.SetGCPercent(base)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	stop := startGCFloor(1<<40, log) // far above any live heap here
	percent := func() int { p := debug.SetGCPercent(-1); debug.SetGCPercent(p); return p }
	deadline := time.Now().Add(10 * time.Second)
	for percent() == 100 && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond) // the cleanup runs on its own goroutine
	}
	if p := percent(); p != maxGCPercent {
		t.Fatalf("GC percent %d after collections with a floor far above the live heap, want %d", p, maxGCPercent)
	}
	stop()
	if p := percent(); p != 100 {
		t.Errorf("GC percent %d after stop, want 100", p)
	}
	// Stopped: later collections leave the percentage alone.
	runtime.GC()
	time.Sleep(20 * time.Millisecond)
	if p := percent(); p != 100 {
		t.Errorf("GC percent %d after a collection once stopped, want 100", p)
	}
	// Off: 0, or GOGC set.
	if stop := startGCFloor(0, log); percent() != 100 {
		t.Error("gc_min_heap 0 changed the GC percent")
	} else {
		stop()
	}
	t.Setenv("GOGC", "100")
	stop = startGCFloor(1<<40, log)
	runtime.GC()
	time.Sleep(20 * time.Millisecond)
	if p := percent(); p != 100 {
		t.Errorf("GC percent %d with GOGC set, want 100 (floor off)", p)
	}
	stop()
}

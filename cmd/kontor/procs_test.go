package main

import (
	"io"
	"log/slog"
	"testing"
	"time"
)

// fakeCPU is a process whose CPU use the test dictates.
type fakeCPU struct {
	total time.Duration
	sets  []int
}

func (f *fakeCPU) cpu() time.Duration { return f.total }
func (f *fakeCPU) set(n int)          { f.sets = append(f.sets, n) }

func newFakeTuner(f *fakeCPU) *procTuner {
	return newProcTuner(4, f.cpu, f.set, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// run takes n samples, each with used CPU time.
func (f *fakeCPU) run(t *procTuner, n int, used time.Duration) {
	for range n {
		f.total += used
		t.step()
	}
}

// TestProcTuner: the tuner starts with every processor, drops to one only
// after a whole window (2 s) under a fifth of a core, and gives them back
// after one sample (0.1 s) with the core 80 % busy or more; it does not
// flap in between.
func TestProcTuner(t *testing.T) {
	f := &fakeCPU{}
	tu := newFakeTuner(f)
	samples := int(tu.downWindow / tu.sample) // 20
	busy := time.Duration(tu.up * float64(tu.sample))

	// Light load, but not yet for a whole window.
	f.run(tu, samples-1, 5*time.Millisecond)
	if len(f.sets) != 0 {
		t.Fatalf("switched after %d samples: %v", samples-1, f.sets)
	}
	f.run(tu, 1, 5*time.Millisecond)
	if len(f.sets) != 1 || f.sets[0] != 1 {
		t.Fatalf("after a window at 5 %% of a core: %v, want one processor", f.sets)
	}
	// Load that one processor handles (just under 80 % busy): stays.
	f.run(tu, 100, busy-time.Millisecond)
	if len(f.sets) != 1 {
		t.Fatalf("a load one processor handles switched: %v", f.sets)
	}
	// 80 % busy in one sample: every processor back at once.
	f.run(tu, 1, busy)
	if len(f.sets) != 2 || f.sets[1] != 4 {
		t.Fatalf("at 80 %% of a core: %v, want 4 processors", f.sets)
	}
	// Load that drops at once does not take them away before a window.
	f.run(tu, samples-1, 0)
	if len(f.sets) != 2 {
		t.Fatalf("dropped before a whole window: %v", f.sets)
	}
	f.run(tu, 1, 0)
	if len(f.sets) != 3 || f.sets[2] != 1 {
		t.Fatalf("after an idle window: %v", f.sets)
	}
	// Moderate load with every processor (a fifth of a core or more on
	// average, with bursts): stays.
	f.run(tu, 1, 100*time.Millisecond)
	for range 4 {
		f.run(tu, 4, 10*time.Millisecond)
		f.run(tu, 1, 90*time.Millisecond) // 26 ms a sample on average
	}
	f.run(tu, samples, 20*time.Millisecond)
	if got := f.sets[len(f.sets)-1]; got != 4 || len(f.sets) != 4 {
		t.Fatalf("under moderate load: %v, want to stay at 4", f.sets)
	}
}

// TestProcessCPU: the CPU time the tuner reads grows with work done.
func TestProcessCPU(t *testing.T) {
	before := processCPU()
	deadline := time.Now().Add(50 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++
	}
	if got := processCPU() - before; got < 20*time.Millisecond {
		t.Fatalf("50 ms of work read as %v of CPU (%d)", got, x)
	}
}

// TestStartProcTunerOff: GOMAXPROCS in the environment, or the key off,
// leaves the scheduler alone.
func TestStartProcTunerOff(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	stop := startProcTuner(false, log)
	stop()
	t.Setenv("GOMAXPROCS", "2")
	stop = startProcTuner(true, log)
	stop()
}

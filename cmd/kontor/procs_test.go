package main

import (
	"io"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"
)

// fakeProc is a process whose CPU use and clock the test dictates; the
// tuner's switches are recorded as "1" (one processor) and "d" (the
// default).
type fakeProc struct {
	total time.Duration
	clock time.Time
	fail  bool
	sets  []string
}

func (f *fakeProc) cpu() (time.Duration, bool) { return f.total, !f.fail }
func (f *fakeProc) now() time.Time             { return f.clock }

func newFakeTuner(f *fakeProc) *procTuner {
	f.clock = time.Unix(1e9, 0)
	return newProcTuner(f.cpu, f.now, func() { f.sets = append(f.sets, "1") }, func() { f.sets = append(f.sets, "d") },
		slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// run takes n samples of the tuner's period, each with used CPU time.
func (f *fakeProc) run(t *procTuner, n int, used time.Duration) bool {
	for range n {
		f.total += used
		f.clock = f.clock.Add(t.sample)
		if !t.step() {
			return false
		}
	}
	return true
}

func (f *fakeProc) switches() string { return strings.Join(f.sets, ",") }

// TestProcTuner: the tuner starts on the default, goes to one processor
// only after a whole window (2 s) under a fifth of a core, and back to the
// default after one sample (0.1 s) in which the process used 80 % of a
// core; it does not switch in between.
func TestProcTuner(t *testing.T) {
	f := &fakeProc{}
	tu := newFakeTuner(f)
	samples := int(tu.downWindow / tu.sample) // 20
	busy := time.Duration(tu.up * float64(tu.sample))

	// Light load, but not yet for a whole window.
	f.run(tu, samples-1, 5*time.Millisecond)
	if f.switches() != "" {
		t.Fatalf("switched after %d samples: %v", samples-1, f.sets)
	}
	f.run(tu, 1, 5*time.Millisecond)
	if f.switches() != "1" {
		t.Fatalf("after a window at 5 %% of a core: %v, want one processor", f.sets)
	}
	// Load that one processor handles (just under 80 %): stays.
	f.run(tu, 100, busy-time.Millisecond)
	if f.switches() != "1" {
		t.Fatalf("a load one processor handles switched: %v", f.sets)
	}
	// A late tick: 80 ms of CPU over 200 ms is 40 % of a core.
	f.total += busy
	f.clock = f.clock.Add(2 * tu.sample)
	tu.step()
	if f.switches() != "1" {
		t.Fatalf("a late tick read as a busy one: %v", f.sets)
	}
	// 80 % of a core in one sample: the default at once.
	f.run(tu, 1, busy)
	if f.switches() != "1,d" {
		t.Fatalf("at 80 %% of a core: %v, want the default", f.sets)
	}
	// Load that drops at once does not go back before a window.
	f.run(tu, samples-1, 0)
	if f.switches() != "1,d" {
		t.Fatalf("dropped before a whole window: %v", f.sets)
	}
	f.run(tu, 1, 0)
	if f.switches() != "1,d,1" {
		t.Fatalf("after an idle window: %v", f.sets)
	}
	// A calm spell on one processor, then load: back to the default
	// (not a flap: the window stays 2 s).
	f.run(tu, 100, 5*time.Millisecond)
	f.run(tu, 1, 100*time.Millisecond)
	// Light load with bursts that lift the window's average over a
	// fifth of a core (22 ms a sample): stays on the default, where the
	// same light load without the bursts goes to one processor.
	for range samples / 5 {
		f.run(tu, 4, 10*time.Millisecond)
		f.run(tu, 1, 70*time.Millisecond)
	}
	if f.switches() != "1,d,1,d" {
		t.Fatalf("under light load with bursts: %v, want to stay on the default", f.sets)
	}
	f.run(tu, samples, 10*time.Millisecond)
	if f.switches() != "1,d,1,d,1" {
		t.Fatalf("the same load without bursts: %v, want one processor", f.sets)
	}
}

// TestProcTunerFlapping: load that comes back soon after the tuner went to
// one processor doubles the window it waits before going down again, up
// to a minute; a calm spell of four windows on one processor brings it
// back to 2 s.
func TestProcTunerFlapping(t *testing.T) {
	f := &fakeProc{}
	tu := newFakeTuner(f)
	base := int(tu.downWindow / tu.sample) // 20 samples
	// samplesToDown counts the idle samples until the tuner goes down.
	samplesToDown := func() int {
		t.Helper()
		n0 := len(f.sets)
		for i := 1; i <= 10*len(tu.history); i++ {
			f.run(tu, 1, 0)
			if len(f.sets) > n0 {
				return i
			}
		}
		t.Fatalf("never went to one processor: %v", f.sets)
		return 0
	}
	spike := func() {
		t.Helper()
		n0 := len(f.sets)
		f.run(tu, 1, 100*time.Millisecond)
		if len(f.sets) != n0+1 || f.sets[n0] != "d" {
			t.Fatalf("a busy sample did not bring the default back: %v", f.sets)
		}
	}
	if n := samplesToDown(); n != base {
		t.Fatalf("first window: %d samples, want %d", n, base)
	}
	max := int(tu.maxWindow / tu.sample)
	for _, want := range []int{2 * base, 4 * base, 8 * base, 16 * base, max, max} {
		spike() // right after going down: a flap
		if n := samplesToDown(); n != min(want, max) {
			t.Fatalf("window after a flap: %d samples, want %d", n, min(want, max))
		}
	}
	// Calm on one processor for four windows: a later load is no flap.
	f.run(tu, 4*max, 5*time.Millisecond)
	spike()
	if n := samplesToDown(); n != base {
		t.Fatalf("window after a calm spell: %d samples, want %d", n, base)
	}
}

// TestProcTunerReadFailures: a failed or backwards read of the CPU time is
// skipped (it neither looks idle nor busy); after ten in a row the tuner
// gives up on the default number of processors.
func TestProcTunerReadFailures(t *testing.T) {
	f := &fakeProc{}
	tu := newFakeTuner(f)
	f.run(tu, 20, time.Millisecond)
	if f.switches() != "1" {
		t.Fatalf("%v, want one processor", f.sets)
	}
	// Three failures, then a read: the CPU used meanwhile counts over the
	// whole time, 60 ms in 400 ms is light.
	f.fail = true
	if !f.run(tu, 3, 20*time.Millisecond) {
		t.Fatal("gave up after three failures")
	}
	f.fail = false
	f.run(tu, 1, 0)
	if f.switches() != "1" {
		t.Fatalf("after failed reads: %v", f.sets)
	}
	// A counter that goes backwards is a failed read too.
	f.total -= time.Second
	f.clock = f.clock.Add(tu.sample)
	if !tu.step() || f.switches() != "1" {
		t.Fatalf("a backwards read: %v", f.sets)
	}
	f.total += time.Second
	// Ten in a row: back to the default, for good.
	f.fail = true
	if f.run(tu, 10, 0) {
		t.Fatal("still tuning after ten failed reads")
	}
	if f.switches() != "1,d" {
		t.Fatalf("after giving up: %v, want the default", f.sets)
	}
}

// TestProcessCPU: the CPU time the tuner reads grows with work done.
func TestProcessCPU(t *testing.T) {
	before, ok := processCPU()
	if !ok {
		t.Fatal("getrusage failed")
	}
	deadline := time.Now().Add(10 * time.Second)
	x := 0
	for {
		for range 1_000_000 {
			x++
		}
		now, ok := processCPU()
		if !ok {
			t.Fatal("getrusage failed")
		}
		if now-before >= 20*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 s of work read as %v of CPU (%d)", now-before, x)
		}
	}
}

// TestStartProcTuner: with the key off, or GOMAXPROCS in the environment,
// the tuner does not start; started and stopped at once it leaves the
// default in place.
func TestStartProcTuner(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	want := runtime.GOMAXPROCS(0)
	startProcTuner(false, log)()
	t.Setenv("GOMAXPROCS", "1")
	startProcTuner(true, log)()
	if got := runtime.GOMAXPROCS(0); got != want {
		t.Fatalf("GOMAXPROCS %d after a tuner that should not have run, want %d", got, want)
	}
	t.Setenv("GOMAXPROCS", "")
	startProcTuner(true, log)()
	if got := runtime.GOMAXPROCS(0); got != want {
		t.Fatalf("GOMAXPROCS %d after start and stop, want %d", got, want)
	}
}

package main

import (
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// procTuner runs Go's scheduler on one processor (GOMAXPROCS=1) while the
// server is lightly loaded, and on the runtime's default number (which
// follows the machine's CPUs and the container's CPU limit) as soon as it
// is not: the adaptive_procs key.
//
// Why: at a few hundred messages a second, most of a server's CPU is not
// the work on a message but the scheduler's hand-offs around it. Each
// time a goroutine is made runnable (a client's reader by the network
// poller, a session's writer by the message that reader routed) while
// another processor is idle, the runtime wakes a second thread that spins
// looking for work, mostly finds none, and goes back to sleep. On one
// processor there is no idle one to wake. Measured with kontor-load chat
// at 100 messages/s: about a fifth less server CPU per message, and
// cheaper logins (README, Performance).
//
// Under load one processor would cap the server at one core, so the
// tuner reads the process's CPU time (all its threads, user and system)
// every 100 ms: once the process used 80 % of one core over a sample, the
// default comes back at once; it goes to one processor again only after
// the process used less than a fifth of a core over a whole window (2 s;
// longer, up to a minute, while it flaps: load in bursts a few seconds
// apart would otherwise switch it down and up again each time).
// A process that cannot get 80 % of a core (a CPU quota below that, a
// busy host) stays on one processor, where more would not give it more
// CPU either. What a single processor costs is latency: work that arrives
// while other work runs waits for it (at most the runtime's 10 ms
// preemption quantum for long computations such as a PLAIN login's key
// derivation).
//
// GOMAXPROCS in the environment turns it off (the operator decides), as
// does a runtime default of one processor. Going back to the default
// (runtime.SetDefaultGOMAXPROCS) also gives the runtime back its own
// updates of the default when the container's CPU limit changes, which
// setting one processor suspends.
type procTuner struct {
	up         float64       // share of one core over a sample that brings the default back
	down       float64       // share of one core over the window under which one processor does
	sample     time.Duration // how often the CPU time is read
	downWindow time.Duration // the window, unless the tuner flaps
	maxWindow  time.Duration // the longest window after flapping

	cpu  func() (time.Duration, bool) // the process's CPU time so far
	now  func() time.Time
	one  func() // sets one processor
	dflt func() // sets the runtime's default
	log  *slog.Logger

	single   bool            // on one processor
	last     time.Duration   // CPU time at the last sample
	lastAt   time.Time       // when it was read
	history  []time.Duration // CPU used in each sample, a ring of maxWindow
	next     int             // where the next sample goes in history
	filled   int             // samples in history since the last switch
	window   int             // samples the current window spans
	singleAt time.Time       // when the tuner last went to one processor
	failures int             // CPU time reads that failed in a row
}

// maxReadFailures: after this many failed reads of the CPU time in a
// row, the tuner gives up, on the default.
const maxReadFailures = 10

// procSwitches counts the tuner's switches (kontor_gomaxprocs_switches_total).
var procSwitches atomic.Int64

// newProcTuner returns a tuner on the default number of processors.
func newProcTuner(cpu func() (time.Duration, bool), now func() time.Time, one, dflt func(), log *slog.Logger) *procTuner {
	t := &procTuner{up: 0.8, down: 0.2, sample: 100 * time.Millisecond, downWindow: 2 * time.Second,
		maxWindow: time.Minute, cpu: cpu, now: now, one: one, dflt: dflt, log: log}
	t.history = make([]time.Duration, int(t.maxWindow/t.sample))
	t.window = int(t.downWindow / t.sample)
	t.last, _ = cpu()
	t.lastAt = now()
	return t
}

// step takes one sample and switches if it is time to. It returns false
// once the tuner has given up (the CPU time cannot be read).
func (t *procTuner) step() bool {
	cpu, ok := t.cpu()
	at := t.now()
	if !ok || cpu < t.last {
		t.failures++
		if t.failures >= maxReadFailures {
			if t.single {
				t.switchTo(false, 0)
			}
			t.log.Warn("adaptive_procs: the process's CPU time cannot be read; staying on the default number of processors")
			return false
		}
		return true // skip the sample; last stays
	}
	t.failures = 0
	used, elapsed := cpu-t.last, at.Sub(t.lastAt)
	t.last, t.lastAt = cpu, at
	if elapsed <= 0 {
		return true
	}
	if t.single {
		if float64(used) >= t.up*float64(elapsed) {
			// Back up soon after going down: the load comes in bursts
			// farther apart than the window. Each such flap doubles the
			// window (up to maxWindow); a calm spell of four windows
			// on one processor brings it back to downWindow.
			if at.Sub(t.singleAt) < 4*time.Duration(t.window)*t.sample {
				t.window = min(2*t.window, len(t.history))
			} else {
				t.window = int(t.downWindow / t.sample)
			}
			t.switchTo(false, used)
		}
		return true
	}
	// The window counts samples of nominal length; a late tick (a busy
	// process) only makes the average look higher, which keeps the
	// default.
	t.history[t.next] = used
	t.next = (t.next + 1) % len(t.history)
	if t.filled < t.window {
		t.filled++
	}
	if t.filled < t.window {
		return true // not a whole window since the last switch
	}
	var sum time.Duration
	for i := 1; i <= t.window; i++ {
		sum += t.history[(t.next-i+len(t.history))%len(t.history)]
	}
	if float64(sum) < t.down*float64(time.Duration(t.window)*t.sample) {
		t.singleAt = at
		t.switchTo(true, sum)
	}
	return true
}

func (t *procTuner) switchTo(single bool, used time.Duration) {
	if single {
		t.one()
	} else {
		t.dflt()
	}
	t.single = single
	t.filled = 0
	procSwitches.Add(1)
	t.log.Debug("scheduler processors changed", "single", single, "gomaxprocs", runtime.GOMAXPROCS(0), "cpu_in_window", used,
		"next_window", time.Duration(t.window)*t.sample)
}

// startProcTuner starts the tuner when enabled and useful; stop ends it
// and gives the scheduler the default number of processors back.
func startProcTuner(enabled bool, log *slog.Logger) (stop func()) {
	if !enabled || os.Getenv("GOMAXPROCS") != "" || runtime.GOMAXPROCS(0) < 2 {
		return func() {}
	}
	t := newProcTuner(processCPU, time.Now, func() { runtime.GOMAXPROCS(1) }, runtime.SetDefaultGOMAXPROCS, log)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(t.sample)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if !t.step() {
					return
				}
			}
		}
	}()
	log.Debug("adaptive scheduler processors on", "default", runtime.GOMAXPROCS(0))
	return func() {
		close(done)
		wg.Wait()
		if t.single {
			runtime.SetDefaultGOMAXPROCS()
		}
	}
}

// processCPU is the CPU time (user and system, all threads) the process
// has used. On Linux syscall.Getrusage is a raw system call (it cannot
// block), so reading it does not wake the runtime's monitor thread.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}

package main

import (
	"log/slog"
	"os"
	"runtime"
	"sync"
	"time"
)

// procTuner runs Go's scheduler on one processor (GOMAXPROCS=1) while the
// server is lightly loaded, and on all of them (the runtime's default,
// which follows the CPU limit of the container at start) as soon as it is
// not: the adaptive_procs key.
//
// Why: at a few hundred messages a second, most of a server's CPU is not
// the work on a message but the scheduler's hand-offs around it. Each
// time a goroutine is made runnable (a client's reader by the network
// poller, a session's writer by the message that reader routed) while
// another processor is idle, the runtime wakes a second thread that spins
// looking for work, mostly finds none, and goes back to sleep. On one
// processor there is no idle one to wake. Measured with kontor-load chat
// at 100 messages/s: about a fifth less server CPU per message
// (README, Performance). Under load a single processor would cap the
// server at one core, so the tuner watches the process's CPU time and
// gives the scheduler every processor back within one sample (100 ms)
// once the one processor is 80 % busy, and takes them away again only
// after the server used less than a fifth of a core for a whole window
// (2 s).
//
// GOMAXPROCS in the environment turns it off (the operator decides), as
// does a machine or container with one CPU.
type procTuner struct {
	max        int           // processors under load
	up         float64       // share of one core in one sample that brings max back
	down       float64       // share of one core over downWindow under which one processor does
	sample     time.Duration // how often the CPU time is read
	downWindow time.Duration

	cpu func() time.Duration // the process's CPU time so far
	set func(int)            // sets GOMAXPROCS
	log *slog.Logger

	cur     int
	last    time.Duration   // CPU time at the last sample
	history []time.Duration // CPU used in each of the last samples, a ring
	next    int             // where the next sample goes in history
	filled  int             // samples in history since the last switch
}

// newProcTuner returns a tuner that switches between one and max
// processors, starting at max.
func newProcTuner(max int, cpu func() time.Duration, set func(int), log *slog.Logger) *procTuner {
	t := &procTuner{max: max, up: 0.8, down: 0.2, sample: 100 * time.Millisecond, downWindow: 2 * time.Second,
		cpu: cpu, set: set, log: log, cur: max}
	t.history = make([]time.Duration, int(t.downWindow/t.sample))
	t.last = cpu()
	return t
}

// step takes one sample and switches if it is time to.
func (t *procTuner) step() {
	now := t.cpu()
	used := now - t.last
	t.last = now
	switch t.cur {
	case 1:
		if float64(used) >= t.up*float64(t.sample) {
			t.switchTo(t.max, used)
		}
	default:
		t.history[t.next] = used
		t.next = (t.next + 1) % len(t.history)
		if t.filled < len(t.history) {
			t.filled++
		}
		if t.filled < len(t.history) {
			return // not a whole window since the last switch
		}
		var sum time.Duration
		for _, u := range t.history {
			sum += u
		}
		if float64(sum) < t.down*float64(t.downWindow) {
			t.switchTo(1, sum)
		}
	}
}

func (t *procTuner) switchTo(n int, used time.Duration) {
	t.set(n)
	t.cur = n
	t.filled = 0
	t.log.Debug("scheduler processors changed", "gomaxprocs", n, "cpu_in_window", used)
}

// startProcTuner starts the tuner when enabled and useful; stop ends it
// and gives the scheduler every processor back.
func startProcTuner(enabled bool, log *slog.Logger) (stop func()) {
	max := runtime.GOMAXPROCS(0)
	if !enabled || os.Getenv("GOMAXPROCS") != "" || max < 2 {
		return func() {}
	}
	t := newProcTuner(max, processCPU, func(n int) { runtime.GOMAXPROCS(n) }, log)
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
				t.step()
			}
		}
	}()
	log.Debug("adaptive scheduler processors on", "max", max)
	return func() {
		close(done)
		wg.Wait()
		runtime.GOMAXPROCS(max)
	}
}

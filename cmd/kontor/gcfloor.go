package main

import (
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// gcFloor keeps the garbage collector's heap goal at least minHeap bytes
// (the gc_min_heap key). Go's default (GOGC=100) sets the goal to twice
// the live heap, at least 4 MiB. A small server (a few dozen sessions:
// about 3 MiB live) therefore collected every 3 MiB allocated, every two
// or three seconds at 100 messages/s, and each cycle costs its fixed
// part (mark setup, idle mark workers waking the other cores, sweeping)
// over and over: about a fifth of the server's CPU at that rate. After
// each cycle gcFloor raises the GC percentage just enough that the next
// goal is minHeap, and back to the base (GOGC's) once the live heap is
// past minHeap / 2, so a large server behaves exactly as with GOGC and
// the floor costs at most minHeap of memory. An operator who sets GOGC
// in the environment decides alone: the floor is off then.
type gcFloor struct {
	minHeap uint64
	base    int // the GC percentage outside the floor

	mu      sync.Mutex
	cur     int  // guarded by mu: the percentage set last
	stopped bool // guarded by mu
	sample  []metrics.Sample
}

// maxGCPercent bounds the floor's percentage: with a live heap under
// minHeap/100 (an empty server) the goal stays below minHeap.
const maxGCPercent = 10_000

// startGCFloor starts the floor; stop ends it and restores the base
// percentage. It does nothing (and stop is a no-op) when minHeap is 0,
// GOGC is set or the collector is off.
func startGCFloor(minHeap int64, log *slog.Logger) (stop func()) {
	if minHeap <= 0 || os.Getenv("GOGC") != "" {
		return func() {}
	}
	base := debug.SetGCPercent(100)
	debug.SetGCPercent(base)
	if base <= 0 {
		return func() {}
	}
	f := &gcFloor{minHeap: uint64(minHeap), base: base, cur: base,
		sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	// The first adjust follows the first collection: before it there is
	// no live heap to go by.
	f.arm()
	log.Debug("gc floor on", "min_heap", minHeap)
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if !f.stopped {
			f.stopped = true
			debug.SetGCPercent(f.base)
		}
	}
}

// gcSentinel is garbage from birth: its cleanup runs after the next
// collection. The pointer keeps it out of the tiny allocator, whose
// blocks are freed together with their neighbours.
type gcSentinel struct {
	_ *int
	_ [16]byte
}

// arm makes adjust run after the next collection, and again after each.
func (f *gcFloor) arm() {
	runtime.AddCleanup(new(gcSentinel), func(f *gcFloor) {
		if f.adjust() {
			f.arm()
		}
	}, f)
}

// adjust sets the percentage for the live heap of the last cycle; it
// reports false once the floor is stopped.
func (f *gcFloor) adjust() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return false
	}
	metrics.Read(f.sample)
	live := uint64(1)
	if f.sample[0].Value.Kind() == metrics.KindUint64 {
		live = max(1, f.sample[0].Value.Uint64())
	}
	p := percentFor(live, f.minHeap, f.base)
	// Small changes are not worth a call: the goal moves with the live
	// heap anyway.
	if p != f.cur && (p == f.base || p > f.cur*11/10 || p < f.cur*9/10) {
		debug.SetGCPercent(p)
		f.cur = p
	}
	return true
}

// percentFor is the GC percentage that puts the heap goal,
// live*(1+p/100), at minHeap, never under base nor over maxGCPercent.
func percentFor(live, minHeap uint64, base int) int {
	if live*uint64(100+base)/100 >= minHeap {
		return base
	}
	p := (minHeap - live) * 100 / live
	return int(min(max(p, uint64(base)), maxGCPercent))
}

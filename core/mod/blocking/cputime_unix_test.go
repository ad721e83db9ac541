//go:build unix

package blocking_test

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time the process used so far (user and system), which
// unlike wall time does not grow when other processes share the machine.
func cpuTime() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}

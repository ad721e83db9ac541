package main

import (
	"syscall"
	"time"
	"unsafe"
)

// processCPU is the CPU time (user and system) the process has used.
// getrusage never blocks, so it is made as a raw system call: through
// syscall.Syscall, the scheduler would wake its monitor thread from its
// idle sleep ten times a second, each time for a burst of polling
// (core/session/recordconn_linux.go has the measurements).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if _, _, e := syscall.RawSyscall(syscall.SYS_GETRUSAGE, uintptr(syscall.RUSAGE_SELF), uintptr(unsafe.Pointer(&ru)), 0); e != 0 {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

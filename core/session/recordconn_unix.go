//go:build unix

package session

import "syscall"

const canPeek = true

// peekReady reports whether a read from fd would not block: input, the
// end of the stream or an error is there (a non-blocking peek).
func peekReady(fd uintptr) bool {
	var b [1]byte
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err != syscall.EAGAIN && err != syscall.EWOULDBLOCK
}

//go:build unix

package session

import (
	"io"
	"syscall"
)

const canPeek = true

// peekReady reports whether a read from fd would not block: input, the
// end of the stream or an error is there (a non-blocking peek).
func peekReady(fd uintptr) bool {
	var b [1]byte
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err != syscall.EAGAIN && err != syscall.EWOULDBLOCK
}

// writeSome writes w.p until it is written, the socket would block or
// an error comes (RawConn.Write's callback: it never asks to wait).
func (w *nbWriter) writeSome(fd uintptr) bool {
	for w.n < len(w.p) {
		n, err := syscall.Write(int(fd), w.p[w.n:])
		if n > 0 {
			w.n += n
		}
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
			return true
		case err != nil:
			w.err = err
			return true
		case n == 0:
			w.err = io.ErrUnexpectedEOF
			return true
		}
	}
	return true
}

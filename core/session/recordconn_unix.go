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

// writeSome writes r.wp until it is written, the socket would block or
// an error comes (RawConn.Write's callback: it never asks to wait).
func (r *recordConn) writeSome(fd uintptr) bool {
	for r.wn < len(r.wp) {
		n, err := syscall.Write(int(fd), r.wp[r.wn:])
		if n > 0 {
			r.wn += n
		}
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
			return true
		case err != nil:
			r.werr = err
			return true
		case n == 0:
			r.werr = io.ErrUnexpectedEOF
			return true
		}
	}
	return true
}

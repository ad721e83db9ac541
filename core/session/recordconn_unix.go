//go:build unix && (!linux || 386)

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

// Elsewhere than on Linux, and on linux/386 (whose socket calls go through
// socketcall), the socket is read and written through net.Conn (see
// recordconn_linux.go for why Linux does not).
func (r *recordConn) readSocket(p []byte) (int, error) { return r.Conn.Read(p) }

type sockIO struct{}

func (r *recordConn) initIO() {}

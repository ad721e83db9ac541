//go:build linux && !386

package session

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

const canPeek = true

// sockio: the socket is non-blocking (Go's poller put it so), so a read,
// write or peek returns at once, and recordConn makes them with
// syscall.RawSyscall, inside the RawConn's Read and Write, which wait for
// the poller (and honour the deadlines) when the socket is not ready. A
// system call through the syscall package's Syscall tells the scheduler
// that the goroutine may block, and the first one after the process went
// idle wakes the runtime's monitor thread (sysmon), which then polls
// every 20 µs until everything is idle again: for a message that arrives
// alone, with the socket read and write of every message, about 7 % of the
// server's CPU (kontor-load chat at 100 msg/s, perf). A raw call skips
// both; nothing here can block.

// sockIO is what the raw reads and writes work on: the functions given to
// the RawConn are bound once (initIO), and their arguments and results are
// kept here, one set for the reader's goroutine, one for the writer's
// (crypto/tls makes one write at a time).
type sockIO struct {
	readFn, writeFn func(uintptr) bool
	rp, wp          []byte
	rn, wn          int
	rerr, werr      error
}

func (r *recordConn) initIO() { r.readFn, r.writeFn = r.readOnce, r.writeOnce }

// peekReady reports whether a read from fd would not block: input, the
// end of the stream or an error is there (a non-blocking peek).
func peekReady(fd uintptr) bool {
	var b [1]byte
	_, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return e != syscall.EAGAIN && e != syscall.EWOULDBLOCK && e != syscall.EINTR
}

// readSocket reads once from the socket into p, waiting until it is
// readable: io.EOF at the end of the stream.
func (r *recordConn) readSocket(p []byte) (int, error) {
	if r.raw == nil {
		return r.Conn.Read(p)
	}
	r.rp, r.rn, r.rerr = p, 0, nil
	err := r.raw.Read(r.readFn)
	n, rerr := r.rn, r.rerr
	r.rp, r.rerr = nil, nil
	switch {
	case err != nil:
		return 0, err // a deadline, a close: already a *net.OpError
	case rerr != nil:
		return 0, r.opError("read", rerr)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// readOnce is the RawConn's read function: false asks it to wait.
func (r *recordConn) readOnce(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&r.rp[0])), uintptr(len(r.rp)))
		switch e {
		case 0:
			r.rn = int(n)
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		r.rerr = os.NewSyscallError("read", e)
		return true
	}
}

// Write writes all of p to the socket, waiting while it is full (and
// failing at the write deadline). send with MSG_NOSIGNAL: a peer that
// went away gives EPIPE without a signal.
func (r *recordConn) Write(p []byte) (int, error) {
	if r.raw == nil {
		return r.Conn.Write(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	r.wp, r.wn, r.werr = p, 0, nil
	err := r.raw.Write(r.writeFn)
	n, werr := r.wn, r.werr
	r.wp, r.werr = nil, nil
	switch {
	case werr != nil:
		return n, r.opError("write", werr)
	case err != nil:
		return n, err
	}
	return n, nil
}

// writeOnce is the RawConn's write function: false asks it to wait until
// the socket is writable.
func (r *recordConn) writeOnce(fd uintptr) bool {
	for r.wn < len(r.wp) {
		b := r.wp[r.wn:]
		n, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
			syscall.MSG_NOSIGNAL, 0, 0)
		switch e {
		case 0:
			r.wn += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			r.werr = os.NewSyscallError("write", e)
			return true
		}
	}
	return true
}

// opError wraps err as net.Conn's methods do.
func (r *recordConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: r.LocalAddr(), Addr: r.RemoteAddr(), Err: err}
}

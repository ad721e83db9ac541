package session

import (
	"net"
	"sync"
	"syscall"
)

// recordConn sits between crypto/tls and a TCP connection and hands
// crypto/tls no more than it asked for: never past the end of the TLS
// record (header or body) it is reading. Whatever the socket read brought
// beyond that waits here, in a buffer taken from a pool while bytes are
// buffered. So when crypto/tls has given out all the plaintext it
// decrypted, and nothing waits here (drained), the connection has nothing
// buffered above the socket, and the reader can wait for the socket to
// become readable (waitReadable) instead of blocking in a Read through
// crypto/tls and the XML tokenizer: an idle session's reader then waits on
// the smallest goroutine stack (see conn.await).
type recordConn struct {
	net.Conn
	raw  syscall.RawConn
	buf  *[recordBufSize]byte // from recordBufPool while b is not empty
	b    []byte               // read from the socket, not yet handed out
	hdr  [recordHeaderLen]byte
	hn   int // bytes of the current record's header handed out
	left int // bytes of the current record's body not yet handed out

	// peekFn is peekOnce bound to this conn (made once, not per wait);
	// peeked tells it that the poller has reported the socket readable.
	peekFn func(uintptr) bool
	peeked bool

	sockIO // how the socket is read and written (per platform)
}

const (
	recordHeaderLen = 5
	recordBufSize   = 8 << 10
)

var recordBufPool = sync.Pool{New: func() any { return new([recordBufSize]byte) }}

// newRecordConn wraps a connection that has a file descriptor to wait on;
// others are returned as they are.
func newRecordConn(nc net.Conn) net.Conn {
	sc, ok := nc.(syscall.Conn)
	if !ok || !canPeek {
		return nc
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nc
	}
	r := &recordConn{Conn: nc, raw: raw}
	r.peekFn = r.peekOnce
	r.initIO()
	return r
}

func (r *recordConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(r.b) == 0 {
		if r.buf == nil {
			r.buf = recordBufPool.Get().(*[recordBufSize]byte)
		}
		n, err := r.readSocket(r.buf[:])
		if n <= 0 {
			r.release()
			return 0, err
		}
		// An error with data comes again from the next read.
		r.b = r.buf[:n]
	}
	var n int
	if r.hn < recordHeaderLen {
		n = copy(p[:min(len(p), recordHeaderLen-r.hn)], r.b)
		copy(r.hdr[r.hn:], r.b[:n])
		r.hn += n
		if r.hn == recordHeaderLen {
			r.left = int(r.hdr[3])<<8 | int(r.hdr[4])
			if r.left == 0 {
				r.hn = 0
			}
		}
	} else {
		n = copy(p[:min(len(p), r.left)], r.b)
		r.left -= n
		if r.left == 0 {
			r.hn = 0
		}
	}
	r.b = r.b[n:]
	if len(r.b) == 0 {
		r.release()
	}
	return n, nil
}

func (r *recordConn) release() {
	if r.buf != nil {
		recordBufPool.Put(r.buf)
		r.buf = nil
	}
	r.b = nil
}

// drained reports whether nothing is buffered here and crypto/tls has
// every record it was given whole. Only the reader's goroutine calls it.
func (r *recordConn) drained() bool { return len(r.b) == 0 && r.hn == 0 }

// waitReadable waits until the socket has input (or an end, an error, or
// a passed read deadline), without reading it. It peeks once: when that
// finds nothing, it waits for the poller and then trusts it rather than
// peeking again (a spurious wake-up only means that the read which
// follows waits in the usual way). That saves one system call per burst.
func (r *recordConn) waitReadable() error {
	r.peeked = false
	return r.raw.Read(r.peekFn)
}

func (r *recordConn) peekOnce(fd uintptr) bool {
	if r.peeked {
		return true
	}
	r.peeked = true
	return peekReady(fd)
}

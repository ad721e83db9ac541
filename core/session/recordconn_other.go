//go:build !unix

package session

// Without a non-blocking peek the reader waits in a Read (see conn.await),
// and newRecordConn returns the connection as it is.
const canPeek = false

func peekReady(uintptr) bool { return true }

func (r *recordConn) readSocket(p []byte) (int, error) { return r.Conn.Read(p) }

type sockIO struct{}

func (r *recordConn) initIO() {}

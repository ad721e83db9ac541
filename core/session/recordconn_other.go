//go:build !unix

package session

import "errors"

// Without a non-blocking peek the reader waits in a Read (see conn.await).
const canPeek = false

func peekReady(uintptr) bool { return true }

// writeSome is never called: without canPeek there is no recordConn.
func (r *recordConn) writeSome(uintptr) bool {
	r.werr = errors.ErrUnsupported
	return true
}

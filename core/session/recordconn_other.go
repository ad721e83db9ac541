//go:build !unix

package session

import "errors"

// Without a non-blocking peek the reader waits in a Read (see conn.await).
const canPeek = false

func peekReady(uintptr) bool { return true }

// writeSome is never called: without canPeek there is no recordConn.
func (w *nbWriter) writeSome(uintptr) bool {
	w.err = errors.ErrUnsupported
	return true
}

//go:build !unix

package session

// Without a non-blocking peek the reader waits in a Read (see conn.await).
const canPeek = false

func peekReady(uintptr) bool { return true }

// Package listen is the accept loop of every listener of the server (client
// streams, server streams, components, the SOCKS5 proxy), so that each
// survives a failure to accept the same way.
package listen

import (
	"errors"
	"log/slog"
	"net"
	"time"
)

// Back-off between failed accepts, as net/http does it.
const (
	minDelay = 5 * time.Millisecond
	maxDelay = time.Second
)

// Accept returns the next connection of ln. A failure other than ln being
// closed (out of file descriptors, a connection reset before it was
// accepted, ...) is logged and retried after a back-off that doubles from
// 5 ms to 1 s, so that a listener outlives a moment of exhaustion instead
// of stopping for good. It returns an error only once ln is closed
// (net.ErrClosed).
func Accept(ln net.Listener, log *slog.Logger) (net.Conn, error) {
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err == nil {
			return nc, nil
		}
		if errors.Is(err, net.ErrClosed) {
			return nil, err
		}
		delay = min(max(2*delay, minDelay), maxDelay)
		log.Warn("accept failed", "addr", ln.Addr().String(), "err", err, "retry_in", delay)
		time.Sleep(delay)
	}
}

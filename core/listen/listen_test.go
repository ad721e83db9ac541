package listen

import (
	"errors"
	"log/slog"
	"net"
	"syscall"
	"testing"
)

// flaky fails to accept a number of times (out of file descriptors), then
// hands out one connection, then reports itself closed.
type flaky struct {
	net.Listener
	failures int
	conn     net.Conn
}

func (f *flaky) Accept() (net.Conn, error) {
	if f.failures > 0 {
		f.failures--
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	if c := f.conn; c != nil {
		f.conn = nil
		return c, nil
	}
	return nil, net.ErrClosed
}

func (f *flaky) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5222} }

func TestAcceptSurvivesExhaustion(t *testing.T) {
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	ln := &flaky{failures: 3, conn: c1}
	got, err := Accept(ln, slog.New(slog.DiscardHandler))
	if err != nil || got != c1 {
		t.Fatalf("Accept after three EMFILE = %v, %v; want the connection", got, err)
	}
	if _, err := Accept(ln, slog.New(slog.DiscardHandler)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept on a closed listener = %v, want net.ErrClosed", err)
	}
}

//go:build linux && !386

package session

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// loopbackPair returns the two ends of a TCP connection on loopback, the
// server's wrapped in a recordConn.
func loopbackPair(t *testing.T) (*recordConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	r, ok := newRecordConn(server).(*recordConn)
	if !ok || r.raw == nil {
		t.Fatal("no recordConn on a TCP connection")
	}
	t.Cleanup(func() { r.Close(); client.Close() })
	return r, client
}

// The raw socket reads and writes (recordconn_linux.go) behave as
// net.Conn's: every byte in order both ways, waiting while the socket is
// empty or full, deadlines as timeouts, io.EOF at the end, and an error
// (not a signal) when writing to a peer that has gone.
func TestRecordConnRawIO(t *testing.T) {
	r, client := loopbackPair(t)

	// Far more than the socket buffers hold: Write waits for the poller.
	big := make([]byte, 8<<20)
	_, _ = rand.Read(big)
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(client, int64(len(big))))
		got <- b
	}()
	if n, err := r.Write(big); n != len(big) || err != nil {
		t.Fatalf("Write: %d, %v", n, err)
	}
	if b := <-got; !bytes.Equal(b, big) {
		t.Fatalf("peer read %d bytes, not what was written", len(b))
	}

	// Records from the peer, in pieces with pauses: Read waits.
	recs := bytes.Join([][]byte{record("hello"), record(string(bytes.Repeat([]byte("y"), 5000)))}, nil)
	go func() {
		for i := 0; i < len(recs); i += 700 {
			_, _ = client.Write(recs[i:min(i+700, len(recs))])
			time.Sleep(time.Millisecond)
		}
	}()
	var in []byte
	buf := make([]byte, 1024)
	for len(in) < len(recs) {
		n, err := r.Read(buf)
		if err != nil {
			t.Fatalf("Read after %d bytes: %v", len(in), err)
		}
		in = append(in, buf[:n]...)
	}
	if !bytes.Equal(in, recs) {
		t.Fatal("records read differ from those written")
	}
	if !r.drained() {
		t.Fatal("not drained after whole records")
	}

	// A read deadline: a timeout, as net.Conn gives.
	_ = r.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := r.Read(buf); !isTimeout(err) {
		t.Fatalf("Read past its deadline: %v", err)
	}
	_ = r.SetReadDeadline(time.Time{})

	// A write deadline while the peer does not read. The socket buffers
	// grew during the 8 MiB above, up to the maxima of tcp_wmem and
	// tcp_rmem (4 and 32 MiB on the CI machine), so another 8 MiB may
	// still fit: write until they are full, at most 128 MiB.
	_ = r.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	var err error
	for i := 0; i < 16 && err == nil; i++ {
		_, err = r.Write(big)
	}
	if !isTimeout(err) {
		t.Fatalf("Write past its deadline: %v", err)
	}
}

func TestRecordConnRawEnd(t *testing.T) {
	r, client := loopbackPair(t)
	client.Close()
	buf := make([]byte, 64)
	if _, err := r.Read(buf); err != io.EOF {
		t.Fatalf("Read after the peer closed: %v, want io.EOF", err)
	}
	// Writing to a closed peer fails (EPIPE or ECONNRESET), without
	// SIGPIPE; the second write at the latest.
	var err error
	for i := 0; i < 3 && err == nil; i++ {
		_, err = r.Write(make([]byte, 1024))
		time.Sleep(10 * time.Millisecond)
	}
	var op *net.OpError
	if !errors.As(err, &op) || !(errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)) {
		t.Fatalf("Write to a closed peer: %v", err)
	}
	// After Close: net.ErrClosed.
	r.Close()
	if _, err := r.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	if _, err := r.Read(buf); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
}

package session

import (
	"bytes"
	"io"
	"net"
	"testing"
)

// chunkConn is a net.Conn whose reads return the given chunks, one per
// read, then io.EOF.
type chunkConn struct {
	net.Conn
	chunks [][]byte
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	if len(c.chunks[0]) == 0 {
		c.chunks = c.chunks[1:]
	}
	return n, nil
}

func record(body string) []byte {
	return append([]byte{23, 3, 3, byte(len(body) >> 8), byte(len(body))}, body...)
}

// TestRecordConnBoundaries checks that a recordConn never hands out bytes
// past the end of the current record's header or body, whatever the reads
// from the socket brought together, and that it passes every byte on in
// order.
func TestRecordConnBoundaries(t *testing.T) {
	r1, r2, r3, empty := record("first record"), record("2nd"), record(string(bytes.Repeat([]byte("x"), 300))), record("")
	all := bytes.Join([][]byte{r1, r2, empty, r3}, nil)
	// The socket returns records run together and split mid-header.
	c := &chunkConn{chunks: [][]byte{all[:len(r1)+len(r2)+2], all[len(r1)+len(r2)+2:]}}
	r := &recordConn{Conn: c}
	var got []byte
	var sizes []int
	buf := make([]byte, 1024)
	for {
		n, err := r.Read(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
		sizes = append(sizes, n)
		if r.drained() != (len(r.b) == 0 && r.hn == 0) {
			t.Fatal("drained disagrees with the state")
		}
	}
	if !bytes.Equal(got, all) {
		t.Fatalf("got %q, want %q", got, all)
	}
	// Header, body, header, body, header (the empty record), header, body;
	// the third read is split by the socket (2 bytes of the header, then 3).
	want := []int{5, len(r1) - 5, 5, len(r2) - 5, 2, 3, 5, len(r3) - 5}
	if !equalInts(sizes, want) {
		t.Fatalf("read sizes %v, want %v", sizes, want)
	}
	if !r.drained() || r.buf != nil {
		t.Fatal("a drained recordConn keeps a buffer")
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

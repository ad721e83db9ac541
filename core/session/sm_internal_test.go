package session

import "testing"

// TestPendingAcksStayShort: requests that one storage barrier will
// release are kept as one pending answer with the latest h, so a client
// that keeps asking while the archive cannot store (a database outage)
// does not grow the list; a request behind another barrier is kept apart.
func TestPendingAcksStayShort(t *testing.T) {
	barrier := make(chan struct{})
	stored := func() <-chan struct{} { return barrier }
	srv := NewServer(Config{Stored: stored})
	c := &conn{srv: srv, log: srv.log, nc: discardConn{}, fr: newTCPFraming(discardConn{}), closing: make(chan struct{}), smIn: true}
	s := &session{srv: srv, log: srv.log, t: c, sm: true}
	c.sess = s
	for i := range 10000 {
		s.handling.Lock()
		s.inbound = uint32(i)
		c.answerR()
		s.handling.Unlock()
	}
	s.ackMu.Lock()
	n, h := len(s.acks), s.acks[len(s.acks)-1].h
	s.ackMu.Unlock()
	if n != 1 || h != 9999 {
		t.Fatalf("10000 requests behind one barrier: %d pending answers, last h %d; want 1, 9999", n, h)
	}
	first := barrier
	barrier = make(chan struct{})
	s.handling.Lock()
	s.inbound = 10000
	c.answerR()
	s.handling.Unlock()
	s.ackMu.Lock()
	n = len(s.acks)
	s.ackMu.Unlock()
	if n != 2 {
		t.Fatalf("a request behind a second barrier: %d pending answers, want 2", n)
	}
	close(first)
	close(barrier)
}

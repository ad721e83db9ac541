package session

import (
	"net"
	"runtime"
	"testing"
	"time"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/stanza"
)

// discardConn is a net.Conn that accepts every write.
type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error)      { return len(p), nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }
func (discardConn) SetReadDeadline(time.Time) error  { return nil }
func (discardConn) Close() error                     { return nil }

// BenchmarkSessionPath measures what the session layer adds per message,
// without the network, parsing or routing: Send, the writer taking a batch
// of 8 and serialising it, and (with stream management) keeping the
// stanzas and dropping them on the client's <a/> after every batch. The
// difference between the two is what stream management costs per
// message in this package.
func BenchmarkSessionPath(b *testing.B) {
	msg := stanza.NewMessage(jid.MustParse("bob@example.com/r"), jid.MustParse("alice@example.com/phone"), "chat", "m1")
	msg.El.Append(stanza.New(stanza.NSClient, "body").AppendText("Hello Bob, are we still on for lunch today?"))
	for _, tt := range []struct {
		name string
		sm   bool
	}{{"sm=off", false}, {"sm=on", true}} {
		b.Run(tt.name, func(b *testing.B) {
			srv := NewServer(Config{})
			c := &conn{srv: srv, log: srv.log, nc: discardConn{}, fr: newTCPFraming(discardConn{}),
				closing: make(chan struct{})}
			s := &session{srv: srv, log: srv.log, full: msg.To, t: c, sm: tt.sm, smID: ""}
			c.sess = s
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				s.Send(msg)
				if i%8 == 7 {
					c.wmu.Lock()
					c.wWork = 0
					c.wmu.Unlock()
					if _, ok := c.writeQueued(); !ok {
						b.Fatal("write failed")
					}
					if tt.sm {
						s.mu.Lock()
						if _, ok := s.ackLocked(s.acked + uint32(s.unacked.len())); !ok {
							b.Fatal("bad ack")
						}
						s.rOut = false
						s.mu.Unlock()
					}
				}
			}
			if tt.sm && s.acked == 0 {
				b.Fatal("nothing was acknowledged")
			}
		})
	}
}

// BenchmarkWriterWake measures a message's way through a live session's
// writer, which runs only while there is something to write: Send, a
// writer goroutine started for it (kick), writing and flushing, and the
// writer's exit. "one" waits for the writer to exit after every message
// (the idle-session case: a goroutine start per message); "burst" sends
// 8 at once, so one writer (or a few) takes them.
func BenchmarkWriterWake(b *testing.B) {
	msg := stanza.NewMessage(jid.MustParse("bob@example.com/r"), jid.MustParse("alice@example.com/phone"), "chat", "m1")
	msg.El.Append(stanza.New(stanza.NSClient, "body").AppendText("Hello Bob, are we still on for lunch today?"))
	idle := func(c *conn) bool {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		return !c.wRun
	}
	for _, tt := range []struct {
		name  string
		burst int
	}{{"one", 1}, {"burst", 8}} {
		b.Run(tt.name, func(b *testing.B) {
			srv := NewServer(Config{})
			c := &conn{srv: srv, log: srv.log, nc: discardConn{}, fr: newTCPFraming(discardConn{}),
				closing: make(chan struct{}), wdone: make(chan struct{}), wLive: true}
			s := &session{srv: srv, log: srv.log, full: msg.To, t: c}
			c.sess = s
			b.ReportAllocs()
			for b.Loop() {
				for range tt.burst {
					s.Send(msg)
				}
				for !idle(c) {
					runtime.Gosched()
				}
			}
			s.mu.Lock()
			left := len(s.queue)
			s.mu.Unlock()
			if left != 0 {
				b.Fatalf("%d messages left in the queue", left)
			}
		})
	}
}

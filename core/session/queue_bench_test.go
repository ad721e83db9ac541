package session

import (
	"bytes"
	"net"
	"runtime"
	"strconv"
	"sync/atomic"
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

// answerCounter is a net.Conn that counts the <a/> written to it and the
// writes, and keeps the last h.
type answerCounter struct {
	discardConn
	answers, writes, lastH atomic.Int64
}

func (w *answerCounter) Write(p []byte) (int, error) {
	w.answers.Add(int64(bytes.Count(p, []byte("<a xmlns"))))
	w.writes.Add(1)
	if i := bytes.LastIndex(p, []byte("h='")); i >= 0 {
		v := p[i+3:]
		if j := bytes.IndexByte(v, '\''); j > 0 {
			h, _ := strconv.ParseInt(string(v[:j]), 10, 64)
			w.lastH.Store(h)
		}
	}
	return len(p), nil
}

// BenchmarkAckPath measures the server's side of answering <r/> (without
// the network and parsing): answerR, the wait for storage, and the writer
// writing the <a/>. "stored": nothing waits in the archive, the answer is
// queued at once; "commit=16": the archive's group commit releases the
// answers of 16 requests at once (one barrier channel for all, as
// archive.Stored gives out), and ackLoop answers them with one <a/>.
// writes/request is the writes (flushes) to the connection per <r/>: each
// is a system call and a TLS record on a real connection.
func BenchmarkAckPath(b *testing.B) {
	for _, tt := range []struct {
		name      string
		perCommit int
	}{{"stored", 0}, {"commit=16", 16}} {
		b.Run(tt.name, func(b *testing.B) {
			var barrier chan struct{}
			stored := func() <-chan struct{} {
				if tt.perCommit == 0 {
					return nil
				}
				if barrier == nil {
					barrier = make(chan struct{})
				}
				return barrier
			}
			srv := NewServer(Config{Stored: stored})
			w := &answerCounter{}
			// wLive false: kicks record work (taken below) and start no
			// writer goroutine, so the benchmark writes by itself.
			c := &conn{srv: srv, log: srv.log, nc: discardConn{}, fr: newTCPFraming(w),
				closing: make(chan struct{}), smIn: true}
			kicked := func() bool {
				c.wmu.Lock()
				defer c.wmu.Unlock()
				k := c.wWork&wWrite != 0
				c.wWork &^= wWrite
				return k
			}
			s := &session{srv: srv, log: srv.log, t: c, sm: true}
			c.sess = s
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				s.handling.Lock()
				s.inbound++
				ok := c.answerR()
				s.handling.Unlock()
				if !ok {
					b.Fatal("answerR failed")
				}
				if tt.perCommit == 0 {
					if !kicked() {
						b.Fatal("an answer that needs no barrier did not wake the writer")
					}
					if _, ok := c.writeQueued(); !ok {
						b.Fatal("write failed")
					}
					continue
				}
				if i%tt.perCommit != tt.perCommit-1 {
					continue
				}
				close(barrier)
				barrier = nil
				for w.lastH.Load() < int64(i+1) {
					for !kicked() {
						runtime.Gosched() // ackLoop hands the answer over
					}
					if _, ok := c.writeQueued(); !ok {
						b.Fatal("write failed")
					}
				}
			}
			b.ReportMetric(float64(w.writes.Load())/float64(s.inbound), "writes/request")
			b.ReportMetric(float64(w.answers.Load())/float64(s.inbound), "answers/request")
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

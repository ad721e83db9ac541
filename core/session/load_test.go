package session_test

// The measurements here run their clients in a child process (this test
// binary, started again with KONTOR_SESSION_CLIENTS set), so that what the
// parent process spends, CPU and memory, is the server's alone.

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"kontor.im/kontor/core/session"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv("KONTOR_SESSION_CLIENTS"); mode != "" {
		if err := clientMain(os.Getenv("KONTOR_SESSION_ADDR"), mode); err != nil {
			fmt.Fprintln(os.Stderr, "clients:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// clients is a child process running load clients.
type clients struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

// startClients starts the child and waits until its clients are logged in.
func startClients(tb testing.TB, addr, mode string) *clients {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "KONTOR_SESSION_CLIENTS="+mode, "KONTOR_SESSION_ADDR="+addr)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	c := &clients{cmd: cmd, in: in, out: bufio.NewReader(out)}
	tb.Cleanup(func() {
		in.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	c.expect(tb, "READY")
	return c
}

// expect reads a line that starts with want and returns the rest.
func (c *clients) expect(tb testing.TB, want string) string {
	tb.Helper()
	line, err := c.out.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, want) {
		tb.Fatalf("clients: want %s, got %q (%v)", want, line, err)
	}
	return strings.TrimSpace(strings.TrimPrefix(line, want))
}

// clientMain runs in the child. Modes:
//
//	idle:N:sm|plain   N sessions of alice that stay idle until stdin closes
//	load:sm|plain     alice sends bob chat messages; each line "GO n" on
//	                  stdin sends n of them and answers "DONE" once bob has
//	                  read them all
func clientMain(addr, mode string) error {
	parts := strings.Split(mode, ":")
	switch parts[0] {
	case "idle":
		n, _ := strconv.Atoi(parts[1])
		sm := parts[2] == "sm"
		var conns []net.Conn
		for i := range n {
			c, err := loadLogin(addr, "alice", "idle"+strconv.Itoa(i), sm)
			if err != nil {
				return err
			}
			conns = append(conns, c.conn)
		}
		fmt.Println("READY")
		io.Copy(io.Discard, os.Stdin)
		for _, c := range conns {
			c.Close()
		}
		return nil
	case "load":
		sm := parts[1] == "sm"
		alice, err := loadLogin(addr, "alice", "a", sm)
		if err != nil {
			return err
		}
		bob, err := loadLogin(addr, "bob", "b", sm)
		if err != nil {
			return err
		}
		// received counts what bob read: the window is on it, in both
		// modes, so that the server sees the same traffic. With stream
		// management, what bob read but has not acknowledged is also
		// capped (the server keeps it, within a bound).
		var received, acked, answers atomic.Int64
		errs := make(chan error, 1)
		go func() { errs <- bob.receive(&received, &acked, &answers) }()
		fmt.Println("READY")
		in := bufio.NewScanner(os.Stdin)
		sent := int64(0)
		w := bufio.NewWriterSize(alice.conn, 64<<10)
		for in.Scan() {
			n, _ := strconv.Atoi(strings.TrimPrefix(in.Text(), "GO "))
			// At most window messages in flight, as a real client keeps:
			// flooding would fill bob's bounded queue.
			const inFlight = 256
			for i := range n {
				fmt.Fprintf(w, "<message to='bob@example.com/b' type='chat' id='m%d'><body>Hello Bob, are we still on for lunch today?</body></message>", sent)
				sent++
				if i%32 == 31 {
					w.Flush()
					for sent-received.Load() > inFlight || sm && sent-acked.Load() > 3*inFlight {
						select {
						case err := <-errs:
							return err
						default:
						}
						time.Sleep(20 * time.Microsecond)
					}
				}
			}
			w.Flush()
			for received.Load() < sent {
				select {
				case err := <-errs:
					return err
				default:
				}
				time.Sleep(50 * time.Microsecond)
			}
			fmt.Println("DONE", answers.Swap(0))
		}
		return nil
	}
	return fmt.Errorf("unknown mode %q", mode)
}

// loadClient is a minimal client for load: STARTTLS, PLAIN, bind,
// optionally stream management, then raw stanzas.
type loadClient struct {
	conn net.Conn
	r    *bufio.Reader
	sm   bool
}

func loadLogin(addr, user, resource string, sm bool) (*loadClient, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &loadClient{conn: conn, r: bufio.NewReaderSize(conn, 64<<10), sm: sm}
	steps := []struct{ send, until string }{
		{header, "</stream:features>"},
		{"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", "<proceed"},
	}
	if err := c.steps(steps); err != nil {
		return nil, err
	}
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true}) // load test against our own throwaway certificate
	if err := tc.Handshake(); err != nil {
		return nil, err
	}
	c.conn, c.r = tc, bufio.NewReaderSize(tc, 64<<10)
	auth := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00secret-password"))
	steps = []struct{ send, until string }{
		{header, "</stream:features>"},
		{"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + auth + "</auth>", "<success"},
		{header, "</stream:features>"},
		{"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>" + resource + "</resource></bind></iq>", "</iq>"},
	}
	if sm {
		steps = append(steps, struct{ send, until string }{"<enable xmlns='urn:xmpp:sm:3' resume='true'/>", "<enabled"})
	}
	return c, c.steps(steps)
}

func (c *loadClient) steps(steps []struct{ send, until string }) error {
	for _, s := range steps {
		if _, err := io.WriteString(c.conn, s.send); err != nil {
			return err
		}
		var seen []byte
		_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		for !bytes.Contains(seen, []byte(s.until)) {
			b, err := c.r.ReadByte()
			if err != nil {
				return fmt.Errorf("waiting for %q: %w (read %q)", s.until, err, seen)
			}
			seen = append(seen, b)
		}
		_ = c.conn.SetReadDeadline(time.Time{})
	}
	return nil
}

// receive counts the messages that arrive and answers <r/> with <a h/>.
func (c *loadClient) receive(received, acked, answers *atomic.Int64) error {
	buf := make([]byte, 64<<10)
	var tail []byte
	end, req := []byte("</message>"), []byte("<r xmlns='urn:xmpp:sm:3'/>")
	var h uint32
	var last []byte
	for {
		n, err := c.r.Read(buf)
		if err != nil {
			return fmt.Errorf("receiver: %w after %q", err, last)
		}
		chunk := append(tail, buf[:n]...)
		last = append(last[:0], chunk[max(0, len(chunk)-300):]...)
		got := bytes.Count(chunk, end)
		h += uint32(got)
		received.Add(int64(got))
		if c.sm && bytes.Contains(chunk, req) {
			if _, err := fmt.Fprintf(c.conn, "<a xmlns='urn:xmpp:sm:3' h='%d'/>", h); err != nil {
				return err
			}
			acked.Store(received.Load())
			answers.Add(1)
		}
		// Keep a tail that cannot hold a whole marker, so nothing counts
		// twice.
		k := max(0, len(chunk)-len(req)+1)
		if i := bytes.LastIndex(chunk, end); i >= 0 {
			k = max(k, i+len(end))
		}
		if i := bytes.LastIndex(chunk, req); i >= 0 {
			k = max(k, i+len(req))
		}
		tail = append(tail[:0], chunk[k:]...)
	}
}

// cpuTime is the process's user plus system CPU time.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkMessageCPU measures the server's CPU per chat message routed
// from one client to another over STARTTLS, with stream management off and
// on (both clients; the receiver answers every <r/>). The clients run in
// another process: server-cpu-ns/msg and the allocations are the server's
// alone; ns/op is wall time per message.
func BenchmarkMessageCPU(b *testing.B) {
	for _, mode := range []string{"plain", "sm"} {
		b.Run("sm="+map[string]string{"plain": "off", "sm": "on"}[mode], func(b *testing.B) {
			e := startSM(b, nil, nil)
			c := startClients(b, e.addr, "load:"+mode)
			// Warm up the connections and buffers.
			fmt.Fprintln(c.in, "GO 1000")
			c.expect(b, "DONE")
			b.ReportAllocs()
			runtime.GC()
			cpu0 := cpuTime(b)
			b.ResetTimer()
			fmt.Fprintf(c.in, "GO %d\n", b.N)
			answers, _ := strconv.Atoi(c.expect(b, "DONE"))
			b.StopTimer()
			cpu := cpuTime(b) - cpu0
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "server-cpu-ns/msg")
			b.ReportMetric(float64(answers)/float64(b.N), "acks/msg")
		})
	}
}

// TestIdleSessionMemory measures what an idle bound TLS session costs the
// server (heap and goroutine stacks), without and with stream management,
// and keeps it under a bound (about 13 KiB measured, of which the reader's
// stack is 2 KiB; 19 KiB with a writer goroutine per session and the
// reader waiting in a Read). With
// KONTOR_IDLE_HEAPPROF=file it writes a heap profile of the idle sessions
// to file.plain and file.sm.
func TestIdleSessionMemory(t *testing.T) {
	const n = 200
	if os.Getenv("KONTOR_IDLE_HEAPPROF") != "" {
		// Every allocation, for an exact profile of the idle sessions.
		runtime.MemProfileRate = 1
	}
	tests := []struct {
		name  string
		mode  string
		bound int // bytes per session
	}{
		{"plain", "plain", 16 << 10},
		{"stream management", "sm", 16 << 10},
	}
	base := runtime.NumGoroutine()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The sessions of the previous subtest end for up to a second
			// after it (lingerClose): they must not count as before.
			waitFor(t, "the previous subtest's goroutines to end", func() bool { return runtime.NumGoroutine() <= base+5 })
			e := startSM(t, nil, nil)
			before, beforeStack := liveMemory()
			c := startClients(t, e.addr, fmt.Sprintf("idle:%d:%s", n, tt.mode))
			waitFor(t, "every session to be bound", func() bool { return e.srv.ConnCount() == n })
			// Let the writers finish their first flush, and the readers
			// that handled the last input hand over after their warm wait
			// (awaitWarm): an idle session is one past it.
			time.Sleep(max(*session.WarmWait, *session.WriterLinger) + 300*time.Millisecond)
			after, afterStack := liveMemory()
			per := (after - before) / n
			if f := os.Getenv("KONTOR_IDLE_HEAPPROF"); f != "" {
				writeHeapProfile(t, f+"."+tt.mode)
			}
			t.Logf("%s: %d idle TLS sessions: %d bytes each (heap and stacks; stacks %d)", tt.name, n, per, (afterStack-beforeStack)/n)
			if per > int64(tt.bound) {
				t.Errorf("%d bytes per idle session, bound %d", per, tt.bound)
			}
			_ = c
		})
	}
}

// liveMemory is the live heap plus goroutine stacks, after collection,
// and the stacks alone.
func liveMemory() (total, stacks int64) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc + ms.StackInuse), int64(ms.StackInuse)
}

// writeHeapProfile writes the heap profile to file.
func writeHeapProfile(t *testing.T, file string) {
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		t.Fatal(err)
	}
}

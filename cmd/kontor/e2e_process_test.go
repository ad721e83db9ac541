package main

// Helpers of the end-to-end tests that run the real `kontor` binary as a
// process of its own (built from this package into a temporary directory),
// so that it can be killed with SIGKILL or stopped with SIGTERM like a
// deployed server. Clients reach it with the helpers of e2e_helpers_test.go
// through a testServer that holds only its addresses and certificate.

import (
	"context"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"mellium.im/sasl"

	"kontor.im/kontor/archive/keyring"
	"kontor.im/kontor/core/account"
	kjid "kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/storage/pgtest"
	"kontor.im/kontor/core/storage/postgres"
)

// buildKontor builds the kontor binary into a temporary directory.
func buildKontor(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kontor")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// procServer is a kontor binary run as a process, on PostgreSQL with the
// archive on, started and stopped any number of times on the same data.
type procServer struct {
	t       *testing.T
	bin     string
	dir     string
	dsn     string
	cfgFile string
	addrs   map[string]string // starttls, direct_tls, admin
	logs    *syncBuffer       // every run's output

	cmd    *exec.Cmd
	exited chan struct{}
	err    error // Wait's result, after exited

	ts *testServer // for the client helpers; set after the first start
}

// newProcServer writes a configuration (PostgreSQL from pgtest, the
// archive with a new key outside the data directory, loopback ports
// chosen now), with c2sExtra (indented lines) added to the c2s section and
// extra YAML appended (the archive section comes last: indented lines at
// the start of extra add to it), and builds the binary.
func newProcServer(t *testing.T, c2sExtra, extra string) *procServer {
	t.Helper()
	return newProcServerOn(t, pgtest.DSN(t), c2sExtra, extra)
}

// newProcServerOn is newProcServer on the database dsn.
func newProcServerOn(t *testing.T, dsn, c2sExtra, extra string) *procServer {
	t.Helper()
	p := &procServer{t: t, bin: buildKontor(t), dir: t.TempDir(), dsn: dsn, logs: &syncBuffer{},
		addrs: map[string]string{}}
	kek := filepath.Join(t.TempDir(), "archive.kek")
	if _, err := keyring.CreateFile(kek, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"starttls", "direct_tls", "admin"} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p.addrs[name] = l.Addr().String()
		l.Close()
	}
	yaml := fmt.Sprintf(`domains: [%s]
data_dir: %q
log:
  level: info
storage:
  backend: postgres
  postgres_dsn: %q
c2s:
  starttls_addr: %q
  direct_tls_addr: %q
%sadmin:
  addr: %q
http:
  addr: ""
archive:
  enabled: true
  kek_file: %q
`, e2eDomain, p.dir, p.dsn, p.addrs["starttls"], p.addrs["direct_tls"], c2sExtra, p.addrs["admin"], kek) + extra
	p.cfgFile = filepath.Join(p.dir, "kontor.yaml")
	if err := os.WriteFile(p.cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			p.dumpGoroutines()
		}
		p.kill()
		if t.Failed() {
			t.Logf("server output (every run):\n%s", p.logs)
		}
	})
	return p
}

// start runs `kontor serve` and waits until it answers /healthz.
func (p *procServer) start() {
	t := p.t
	t.Helper()
	fmt.Fprintf(p.logs, "===== start %s\n", time.Now().Format(time.RFC3339Nano))
	p.cmd = exec.Command(p.bin, "serve", "--config", p.cfgFile)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start kontor: %v", err)
	}
	p.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) {
		p.err = cmd.Wait()
		close(exited)
	}(p.cmd, p.exited)
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.exited:
			t.Fatalf("kontor exited while starting: %v\n%s", p.err, p.logs)
		default:
		}
		if p.healthy() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kontor did not become healthy within 30s\n%s", p.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if p.ts == nil {
		pem, err := os.ReadFile(filepath.Join(p.dir, "tls", "selfsigned.crt"))
		if err != nil {
			t.Fatalf("reading the generated certificate: %v", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			t.Fatal("the generated certificate is not PEM")
		}
		addrs := map[string]net.Addr{}
		for name, a := range p.addrs {
			ta, err := net.ResolveTCPAddr("tcp", a)
			if err != nil {
				t.Fatal(err)
			}
			addrs[name] = ta
		}
		// Only what the client helpers read: the addresses and the
		// certificate. The server is the process.
		p.ts = &testServer{srv: &Server{Addrs: addrs}, roots: roots, logs: p.logs}
	}
}

// healthy reports whether /healthz answers ok (the listeners are bound
// before the admin listener).
func (p *procServer) healthy() bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + p.addrs["admin"] + "/healthz")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

// running reports whether the process runs.
func (p *procServer) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *procServer) kill() {
	if !p.running() {
		return
	}
	fmt.Fprintf(p.logs, "===== SIGKILL %s\n", time.Now().Format(time.RFC3339Nano))
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// dumpGoroutines makes a running server print every goroutine's stack
// into the logs and exit (Go's SIGQUIT handling), so that a failed test
// shows where the server was stuck.
func (p *procServer) dumpGoroutines() {
	if !p.running() {
		return
	}
	fmt.Fprintf(p.logs, "===== SIGQUIT %s\n", time.Now().Format(time.RFC3339Nano))
	_ = p.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
	}
}

// terminate sends SIGTERM and returns how long the process took to exit
// and its exit error (nil: status 0); it fails the test after limit.
func (p *procServer) terminate(limit time.Duration) (time.Duration, error) {
	p.t.Helper()
	fmt.Fprintf(p.logs, "===== SIGTERM %s\n", time.Now().Format(time.RFC3339Nano))
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-p.exited:
		return time.Since(start), p.err
	case <-time.After(limit):
		p.kill()
		p.t.Fatalf("kontor did not exit within %v of SIGTERM", limit)
		return 0, nil
	}
}

// addUsers creates accounts directly in the database.
func (p *procServer) addUsers(t *testing.T, password string, users ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := postgres.Open(ctx, p.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, u := range users {
		if err := account.Create(ctx, st, kjid.MustParse(bare(u)), password); err != nil {
			t.Fatalf("account.Create(%s): %v", u, err)
		}
	}
}

// ---------------------------------------------------------------------------
// smSender: a minimal client with stream management, for the ack
// bookkeeping that mellium.im/xmpp v0.22.0 does not do (it has no
// XEP-0198). It logs in with the raw client of e2e_helpers_test.go
// (STARTTLS, SCRAM-SHA-256 with mellium.im/sasl, bind), enables stream
// management, and then sends messages from one goroutine while another
// reads the server's <a/> and <r/>.

type smSender struct {
	name string
	r    *rawClient
	tcp  net.Conn // under TLS, to cut
	smID string   // for resumption

	wmu sync.Mutex // serialises writes

	mu       sync.Mutex
	sent     []string // message ids, in the order sent since <enable/>
	to       []string // their recipients
	acked    uint32   // the server's latest h
	received uint32   // stanzas received since <enabled/>
	errors   []string // error stanzas received
	ended    error    // why the reader stopped
	done     chan struct{}
}

// dialSMSender logs in as user with resource res and enables stream
// management.
func dialSMSender(t *testing.T, ts *testServer, user, password, res string) *smSender {
	t.Helper()
	r := ts.rawDial(t, "starttls")
	tcp := r.conn
	r.login(user, password, res, "")
	r.mustWrite("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	n := r.mustNext("enable")
	if !n.is(nsSM, "enabled") || n.attr("id") == "" {
		t.Fatalf("%s: enable: %s", user, n)
	}
	_ = r.conn.SetReadDeadline(time.Time{})
	s := &smSender{name: user, r: r, tcp: tcp, smID: n.attr("id"), done: make(chan struct{})}
	go s.read(r, s.done)
	return s
}

// cutAndResume sends a burst and at once drops the TCP connection without
// closing the stream (the caller stopped the sending goroutine), waits
// for the reader to see it, resumes the session on a new connection
// (XEP-0198 §5) and sends again what the server's <resumed h/> says it did
// not handle. It returns how many messages were sent again.
func (s *smSender) cutAndResume(t *testing.T, ts *testServer, password string, burst func()) int {
	t.Helper()
	burst() // some of it may be handled, some not when the cut comes
	s.tcp.Close()
	<-s.done
	r := ts.rawDial(t, "starttls")
	tcp := r.conn
	r.open()
	if err := r.startTLS(ts.tlsConfig()); err != nil {
		t.Fatalf("%s: TLS handshake: %v", s.name, err)
	}
	f := r.open()
	if res := r.auth(sasl.ScramSha256, s.name, password, mechanisms(f)); !res.is(nsSASLFeature, "success") {
		t.Fatalf("%s: authentication: %s", s.name, res)
	}
	r.dec = xml.NewDecoder(r.conn)
	r.open()
	s.mu.Lock()
	h := s.received
	s.mu.Unlock()
	r.mustWrite(fmt.Sprintf("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='%d'/>", s.smID, h))
	n := r.mustNext("resume")
	if !n.is(nsSM, "resumed") {
		t.Fatalf("%s: resume: %s", s.name, n)
	}
	handled, err := strconv.ParseUint(n.attr("h"), 10, 32)
	if err != nil {
		t.Fatalf("%s: resumed without a valid h: %s", s.name, n)
	}
	_ = r.conn.SetReadDeadline(time.Time{})
	s.mu.Lock()
	if int(handled) > len(s.sent) {
		s.mu.Unlock()
		t.Fatalf("%s: resumed with h=%d, but only %d messages were sent", s.name, handled, len(s.sent))
	}
	s.acked = uint32(handled)
	again := append([]string(nil), s.sent[handled:]...)
	s.mu.Unlock()
	s.wmu.Lock()
	s.r, s.tcp = r, tcp
	s.wmu.Unlock()
	s.done = make(chan struct{})
	go s.read(r, s.done)
	var b strings.Builder
	for _, id := range again {
		b.WriteString(s.message(id))
	}
	b.WriteString("<r xmlns='urn:xmpp:sm:3'/>")
	if err := s.write(b.String()); err != nil {
		t.Fatalf("%s: sending again after resumption: %v", s.name, err)
	}
	return len(again)
}

func (s *smSender) write(x string) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.r.conn.SetWriteDeadline(time.Now().Add(e2eWait))
	_, err := io.WriteString(s.r.conn, x)
	return err
}

// read handles what the server sends on r until the connection ends.
func (s *smSender) read(r *rawClient, done chan struct{}) {
	defer close(done)
	for {
		tok, err := r.dec.Token()
		if err != nil {
			s.mu.Lock()
			s.ended = err
			s.mu.Unlock()
			return
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		var n xmlNode
		if err := r.dec.DecodeElement(&n, &start); err != nil {
			s.mu.Lock()
			s.ended = err
			s.mu.Unlock()
			return
		}
		switch {
		case n.is(nsSM, "a"):
			h, err := strconv.ParseUint(n.attr("h"), 10, 32)
			s.mu.Lock()
			if err == nil && uint32(h) > s.acked {
				s.acked = uint32(h)
			}
			s.mu.Unlock()
		case n.is(nsSM, "r"):
			s.mu.Lock()
			h := s.received
			s.mu.Unlock()
			_ = s.write(fmt.Sprintf("<a xmlns='urn:xmpp:sm:3' h='%d'/>", h))
		case n.XMLName.Space == "jabber:client":
			s.mu.Lock()
			s.received++
			if n.attr("type") == "error" {
				s.errors = append(s.errors, n.String())
			}
			s.mu.Unlock()
		}
	}
}

// send sends a chat message with id as its id and body, and asks for an
// acknowledgement after every ackEvery messages.
func (s *smSender) send(to, id string, ackEvery int) error {
	s.mu.Lock()
	s.sent = append(s.sent, id)
	s.to = append(s.to, to)
	n := len(s.sent)
	s.mu.Unlock()
	x := s.message(id)
	if n%ackEvery == 0 {
		x += "<r xmlns='urn:xmpp:sm:3'/>"
	}
	return s.write(x)
}

// message is the message with this id, to the recipient it was first sent
// to.
func (s *smSender) message(id string) string {
	s.mu.Lock()
	to := ""
	for i := len(s.sent) - 1; i >= 0; i-- {
		if s.sent[i] == id {
			to = s.to[i]
			break
		}
	}
	s.mu.Unlock()
	return fmt.Sprintf("<message to='%s' id='%s' type='chat'><body>%s</body></message>", to, id, id)
}

// result waits for the reader to end and returns the ids the server
// acknowledged, those it did not, and the error stanzas received.
func (s *smSender) result(t *testing.T) (acked, unacked, errs []string) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: the connection did not end", s.name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if int(s.acked) > len(s.sent) {
		t.Fatalf("%s: h=%d acknowledges more than the %d messages sent", s.name, s.acked, len(s.sent))
	}
	return s.sent[:s.acked], s.sent[s.acked:], s.errors
}

// isClosedErr reports whether err is the end of a connection.
func isClosedErr(err error) bool {
	return err == nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isConnReset(err) ||
		strings.Contains(err.Error(), "use of closed")
}

package main

// End-to-end tests of stream management (XEP-0198) on the whole server:
// alice uses a raw socket (mellium.im/xmpp v0.22.0 has no stream
// management) or slixmpp (Debian's python3-slixmpp, which has), bob a
// mellium session.

import (
	"bufio"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/sasl"
)

const nsSM = "urn:xmpp:sm:3"

// smClient is a raw client with stream management: it counts the stanzas
// it receives and answers the server's <r/>.
type smClient struct {
	*rawClient
	tcp net.Conn // the socket under TLS, to cut it
	h   uint32
}

// smDial connects to the STARTTLS port and authenticates, without
// binding; it returns the features of the authenticated stream.
func (ts *testServer) smDial(t *testing.T, user, password string) (*smClient, xmlNode) {
	t.Helper()
	r := ts.rawDial(t, "starttls")
	c := &smClient{rawClient: r, tcp: r.conn}
	r.open()
	if err := r.startTLS(ts.tlsConfig()); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	f := r.open()
	if res := r.auth(sasl.ScramSha256, user, password, mechanisms(f)); !res.is(nsSASLFeature, "success") {
		t.Fatalf("authentication as %s: %s", user, res)
	}
	r.dec = xml.NewDecoder(r.conn)
	return c, r.open()
}

// nextCounted reads the next element; stanzas are counted and <r/> is
// answered.
func (c *smClient) nextCounted(what string) xmlNode {
	c.t.Helper()
	for {
		n := c.mustNext(what)
		if n.is(nsSM, "r") {
			c.mustWrite(fmt.Sprintf("<a xmlns='urn:xmpp:sm:3' h='%d'/>", c.h))
			continue
		}
		if n.XMLName.Space == "jabber:client" {
			c.h++
		}
		return n
	}
}

// messagesUntil collects the bodies of chat messages until one with the
// body stop arrives (not included).
func (c *smClient) messagesUntil(stop string) []string {
	c.t.Helper()
	var bodies []string
	for {
		n := c.nextCounted("waiting for messages")
		if !n.is("jabber:client", "message") {
			continue
		}
		if n.body() == stop {
			return bodies
		}
		bodies = append(bodies, n.body())
	}
}

// cut drops the TCP connection under TLS without closing the stream.
func (c *smClient) cut() { c.tcp.Close() }

// TestE2EStreamManagementResume: a message sent while the recipient's TCP
// connection is cut is delivered exactly once after resumption, together
// with the one it had not acknowledged; nothing goes to offline storage.
func TestE2EStreamManagementResume(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		ts := startTestServer(t, backend, nil)
		ts.addUser(t, "alice", "alice-password")
		ts.addUser(t, "bob", "bob-password")

		alice, f := ts.smDial(t, "alice", "alice-password")
		if f.child(nsSM, "sm") == nil || f.child("urn:xmpp:csi:0", "csi") == nil {
			t.Fatalf("stream management and client state indication not offered: %s", f)
		}
		alice.mustWrite("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>phone</resource></bind></iq>")
		if n := alice.mustNext("bind"); n.attr("type") != "result" {
			t.Fatalf("bind: %s", n)
		}
		alice.mustWrite("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
		enabled := alice.mustNext("enable")
		id := enabled.attr("id")
		if !enabled.is(nsSM, "enabled") || id == "" || enabled.attr("max") != "300" {
			t.Fatalf("enable: %s", enabled)
		}
		alice.mustWrite("<presence/><message to='alice@localhost/phone' type='chat'><body>ready</body></message>")
		alice.messagesUntil("ready")

		bob := ts.dial(t, "bob", "bob-password")
		bob.chat(t, "alice@localhost/phone", "unacknowledged")
		if got := alice.messagesUntil("unacknowledged"); len(got) != 0 {
			t.Fatalf("before the cut: %v", got)
		}
		// The last message is not acknowledged: everything before is.
		acked := alice.h - 1
		alice.mustWrite(fmt.Sprintf("<a xmlns='urn:xmpp:sm:3' h='%d'/>", acked))
		// Drop the connection once the server has handled the <a/>.
		alice.mustWrite("<r xmlns='urn:xmpp:sm:3'/>")
		if n := alice.mustNext("the answer to <r/>"); !n.is(nsSM, "a") {
			t.Fatalf("want <a/>, got %s", n)
		}
		alice.cut()
		waitUntil(t, "alice's session to be detached", func() bool { return ts.srv.c2s.DetachedCount() == 1 })

		bob.chat(t, "alice@localhost/phone", "while away")
		bob.chat(t, "alice@localhost", "to the bare JID while away")
		bob.barrier(t)

		again, _ := ts.smDial(t, "alice", "alice-password")
		again.mustWrite(fmt.Sprintf("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='%d'/>", id, acked))
		resumed := again.mustNext("resume")
		// Alice had sent her presence and one message.
		if !resumed.is(nsSM, "resumed") || resumed.attr("previd") != id || resumed.attr("h") != "2" {
			t.Fatalf("want <resumed h='2' previd='%s'/>, got %s", id, resumed)
		}
		again.h = acked
		// A barrier after resumption: everything retransmitted or queued
		// comes before it.
		again.mustWrite("<message to='alice@localhost/phone' type='chat'><body>barrier</body></message>")
		got := again.messagesUntil("barrier")
		if want := []string{"unacknowledged", "while away", "to the bare JID while away"}; !slices.Equal(got, want) {
			t.Fatalf("after resumption alice got %q, want each of %q exactly once", got, want)
		}
		if ts.srv.c2s.DetachedCount() != 0 {
			t.Fatal("the session is still detached after resumption")
		}

		// She acknowledges everything and leaves: nothing is stored.
		again.mustWrite(fmt.Sprintf("<a xmlns='urn:xmpp:sm:3' h='%d'/></stream:stream>", again.h))
		for {
			if _, err := again.next(); err != nil {
				break
			}
		}
		waitUntil(t, "alice to be unbound", func() bool { return ts.srv.router.SessionCount() == 1 })
		ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
		defer cancel()
		stored, err := ts.srv.store.OfflineMessages(ctx, "alice@localhost", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(stored) != 0 {
			t.Fatalf("%d messages in offline storage after a resumption", len(stored))
		}
	})
}

// TestE2EStreamManagementExpiry: when the client does not come back in
// time, what it had not acknowledged and what came while it was away goes
// to offline storage, and reaches it exactly once at its next login.
func TestE2EStreamManagementExpiry(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		ts := startTestServer(t, backend, func(c *Config) { c.C2S.SMResumeTimeout = time.Second })
		ts.addUser(t, "alice", "alice-password")
		ts.addUser(t, "bob", "bob-password")

		alice, _ := ts.smDial(t, "alice", "alice-password")
		alice.mustWrite("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>phone</resource></bind></iq>")
		alice.mustNext("bind")
		alice.mustWrite("<enable xmlns='urn:xmpp:sm:3' resume='true' max='1'/>")
		if n := alice.mustNext("enable"); n.attr("max") != "1" {
			t.Fatalf("enable: %s", n)
		}
		alice.mustWrite("<presence/>")
		bob := ts.dial(t, "bob", "bob-password")
		bob.chat(t, "alice@localhost/phone", "unacknowledged")
		alice.messagesUntil("unacknowledged")
		alice.cut()
		waitUntil(t, "alice's session to be detached", func() bool { return ts.srv.c2s.DetachedCount() == 1 })
		bob.chat(t, "alice@localhost", "while away")
		bob.barrier(t)
		waitUntil(t, "alice's session to expire", func() bool { return ts.srv.router.SessionCount() == 1 })
		waitUntil(t, "both messages to be in offline storage", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
			defer cancel()
			stored, err := ts.srv.store.OfflineMessages(ctx, "alice@localhost", 10)
			if err != nil {
				t.Fatal(err)
			}
			return len(stored) == 2
		})

		desk := ts.dial(t, "alice", "alice-password", withResource("desk"))
		desk.send(t, "<presence/>")
		var got []string
		for range 2 {
			n := desk.Messages.expect(t, "an offline message", func(n xmlNode) bool { return n.body() != "" })
			if n.child(nsDelay, "delay") == nil {
				t.Errorf("offline message without a delay stamp: %s", n)
			}
			got = append(got, n.body())
		}
		if want := []string{"unacknowledged", "while away"}; !slices.Equal(got, want) {
			t.Fatalf("desk got %q, want %q", got, want)
		}
		desk.barrier(t)
		desk.Messages.none(t, "a duplicate", func(n xmlNode) bool {
			return strings.Contains(n.body(), "unacknowledged") || strings.Contains(n.body(), "while away")
		})
	})
}

// TestConfigStreamManagement: the stream management and CSI settings are
// checked.
func TestConfigStreamManagement(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*C2SConfig)
		want   string // a problem that must be reported; "" for none
	}{
		{"defaults", func(*C2SConfig) {}, ""},
		{"resume timeout too short", func(c *C2SConfig) { c.SMResumeTimeout = 0 }, "c2s.sm_resume_timeout: must be at least 1s"},
		{"resume timeout too long", func(c *C2SConfig) { c.SMResumeTimeout = 2 * time.Hour }, "c2s.sm_resume_timeout: must be at most 1h"},
		{"ack every zero", func(c *C2SConfig) { c.SMAckEvery = 0 }, "c2s.sm_ack_every: must be at least 1"},
		{"ack every above half the queue", func(c *C2SConfig) { c.QueueSize = 100; c.SMAckEvery = 60 }, "c2s.sm_ack_every: must be at most half of queue_size (50)"},
		{"ack idle too short", func(c *C2SConfig) { c.SMAckIdle = time.Millisecond }, "c2s.sm_ack_idle: must be at least 100ms"},
		{"ack interval none", func(c *C2SConfig) { c.SMAckInterval = 0 }, ""},
		{"ack interval negative", func(c *C2SConfig) { c.SMAckInterval = -time.Second }, "c2s.sm_ack_interval: must be at least 0s"},
		{"ack interval too long", func(c *C2SConfig) { c.SMAckInterval = 2 * time.Minute }, "c2s.sm_ack_interval: must be at most 1m"},
		{"no held presences", func(c *C2SConfig) { c.CSIMaxHeldPresences = 0 }, "c2s.csi_max_held_presences: must be at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaultConfig()
			if cfg.C2S.SMResumeTimeout != 5*time.Minute || cfg.C2S.SMAckEvery != 5 || cfg.C2S.SMAckIdle != 5*time.Second || cfg.C2S.SMAckInterval != 5*time.Second || cfg.C2S.CSIMaxHeldPresences != 100 {
				t.Fatalf("defaults: %+v", cfg.C2S)
			}
			tt.mutate(&cfg.C2S)
			problems := strings.Join(cfg.validate(), "\n")
			if tt.want == "" {
				if strings.Contains(problems, "c2s.") {
					t.Fatalf("unexpected problems: %s", problems)
				}
				return
			}
			if !strings.Contains(problems, tt.want) {
				t.Fatalf("problems %q, want %q", problems, tt.want)
			}
		})
	}
}

// waitUntil polls cond until it holds or e2eWait passes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(e2eWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// smResumeScript is a slixmpp client (Debian's python3-slixmpp 1.8) with
// stream management: it reports its state and the bodies it receives on
// stdout, and reconnects (resuming) whenever its connection drops.
const smResumeScript = `
import asyncio, logging, sys
import slixmpp

jid, password, port, ca = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
logging.basicConfig(level=logging.ERROR)

class Client(slixmpp.ClientXMPP):
    def __init__(self):
        super().__init__(jid, password)
        self.ca_certs = ca
        self.register_plugin('xep_0198')
        self.add_event_handler('session_start', self.on_start)
        self.add_event_handler('sm_enabled', lambda e: print('ENABLED ' + str(e['id']), flush=True))
        self.add_event_handler('session_resumed', lambda e: print('RESUMED', flush=True))
        self.add_event_handler('disconnected', self.on_disconnected)
        self.add_event_handler('message', self.on_message)

    async def on_start(self, _):
        self.send_presence()
        print('READY', flush=True)

    def on_disconnected(self, _):
        print('DISCONNECTED', flush=True)
        self.connect(address=('127.0.0.1', port), use_ssl=False, force_starttls=True)

    def on_message(self, m):
        if m['type'] in ('chat', 'normal') and m['body']:
            print('BODY ' + m['body'], flush=True)

c = Client()
c.connect(address=('127.0.0.1', port), use_ssl=False, force_starttls=True)
c.process(forever=True)
`

// cutProxy forwards TCP connections to a server; the test can cut every
// forwarded connection and hold new ones back.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	gate   chan struct{} // nil: forward at once; otherwise wait until closed
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	t.Cleanup(func() {
		ln.Close()
		p.cut()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
	return p
}

func (p *cutProxy) forward(c net.Conn) {
	p.mu.Lock()
	gate := p.gate
	p.conns = append(p.conns, c)
	p.mu.Unlock()
	if gate != nil {
		<-gate
	}
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, s)
	p.mu.Unlock()
	go func() { io.Copy(s, c); s.Close() }()
	io.Copy(c, s)
	c.Close()
}

// hold makes new connections wait; release lets them through.
func (p *cutProxy) hold() {
	p.mu.Lock()
	p.gate = make(chan struct{})
	p.mu.Unlock()
}

func (p *cutProxy) release() {
	p.mu.Lock()
	close(p.gate)
	p.gate = nil
	p.mu.Unlock()
}

// cut closes every forwarded connection, both sides, without a word.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestE2EStreamManagementSlixmpp: slixmpp (its own XEP-0198
// implementation) loses its TCP connection, a message is sent to it while
// it is away, and after it resumes it has every message exactly once.
func TestE2EStreamManagementSlixmpp(t *testing.T) {
	if err := exec.Command("/usr/bin/python3", "-c", "import slixmpp").Run(); err != nil {
		t.Fatalf("python3-slixmpp is required (apt-get install -y python3-slixmpp): %v", err)
	}
	forBackends(t, func(t *testing.T, backend string) {
		ts := startTestServer(t, backend, nil)
		ts.addUser(t, "alice", "alice-password")
		ts.addUser(t, "bob", "bob-password")
		proxy := newCutProxy(t, ts.addr("starttls"))
		script := filepath.Join(t.TempDir(), "sm_resume.py")
		if err := os.WriteFile(script, []byte(smResumeScript), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := exec.CommandContext(ctx, "/usr/bin/python3", script, "alice@localhost/phone", "alice-password",
			fmt.Sprint(proxy.ln.Addr().(*net.TCPAddr).Port), filepath.Join(ts.dir, "tls", "selfsigned.crt"))
		cmd.WaitDelay = 5 * time.Second
		var stderr syncBuffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cancel()
			cmd.Wait()
			if t.Failed() {
				t.Logf("slixmpp stderr:\n%s", stderr.String())
			}
		})
		lines := make(chan string, 100)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		var bodies, unread []string
		// expect returns the first line, read now or earlier and not
		// returned yet, that starts with prefix.
		expect := func(prefix string) string {
			t.Helper()
			for i, l := range unread {
				if strings.HasPrefix(l, prefix) {
					unread = slices.Delete(unread, i, i+1)
					return l
				}
			}
			timeout := time.After(20 * time.Second)
			for {
				select {
				case l, ok := <-lines:
					if !ok {
						t.Fatalf("slixmpp ended while waiting for %s", prefix)
					}
					if strings.HasPrefix(l, "BODY ") {
						bodies = append(bodies, strings.TrimPrefix(l, "BODY "))
					}
					if strings.HasPrefix(l, prefix) {
						return l
					}
					unread = append(unread, l)
				case <-timeout:
					t.Fatalf("slixmpp: no %s (bodies %q)", prefix, bodies)
				}
			}
		}
		if l := expect("ENABLED "); len(l) < len("ENABLED ")+20 {
			t.Fatalf("slixmpp did not get a resumption id: %q", l)
		}
		expect("READY")
		bob := ts.dial(t, "bob", "bob-password")
		bob.chat(t, "alice@localhost/phone", "before the cut")
		expect("BODY before the cut")

		proxy.hold()
		proxy.cut()
		expect("DISCONNECTED")
		waitUntil(t, "alice's session to be detached", func() bool { return ts.srv.c2s.DetachedCount() == 1 })
		bob.chat(t, "alice@localhost/phone", "while away")
		bob.barrier(t)
		proxy.release()
		expect("RESUMED")
		bob.chat(t, "alice@localhost/phone", "after")
		expect("BODY after")
		if want := []string{"before the cut", "while away", "after"}; !slices.Equal(bodies, want) {
			t.Fatalf("slixmpp got %q, want each of %q exactly once", bodies, want)
		}
		if ts.srv.c2s.DetachedCount() != 0 || ts.srv.router.SessionCount() != 2 {
			t.Fatalf("after resumption: %d detached, %d sessions", ts.srv.c2s.DetachedCount(), ts.srv.router.SessionCount())
		}
	})
}

package main

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/sasl"
)

// dialFrom opens a TCP connection to the STARTTLS port from a loopback
// address of the test's choice, so that per-address limits hit the
// attacker and not the users who keep chatting (they connect from
// 127.0.0.1).
func dialFrom(t *testing.T, p *procServer, from string) (net.Conn, error) {
	t.Helper()
	d := net.Dialer{Timeout: e2eWait, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	return d.Dial("tcp", p.addrs["starttls"])
}

// rawFrom is a rawClient on a connection from a chosen address.
func rawFrom(t *testing.T, p *procServer, from string) *rawClient {
	t.Helper()
	conn, err := dialFrom(t, p, from)
	if err != nil {
		t.Fatalf("dial from %s: %v", from, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawClient{t: t, ts: p.ts, conn: conn, dec: xml.NewDecoder(conn)}
}

const streamHeader = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"

// closedWithin reads until the server closes the connection and returns
// how long that took and the stream error condition it sent, if any.
func closedWithin(conn net.Conn, limit time.Duration) (time.Duration, string, bool) {
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(limit))
	b, err := io.ReadAll(conn)
	cond := ""
	if i := strings.Index(string(b), "urn:ietf:params:xml:ns:xmpp-streams"); i >= 0 {
		// The condition is the element before the namespace declaration.
		s := string(b)
		j := strings.LastIndex(s[:i], "<")
		if j >= 0 {
			cond = strings.Fields(s[j+1:])[0]
		}
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return time.Since(start), cond, false
	}
	return time.Since(start), cond, true
}

// metric reads one gauge from the admin listener's /metrics.
func (p *procServer) metric(t *testing.T, name string) int {
	t.Helper()
	resp, err := http.Get("http://" + p.addrs["admin"] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == name {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// rssKiB is the resident memory of the server process.
func (p *procServer) rssKiB(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			n, _ := strconv.Atoi(strings.Fields(l)[1])
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestE2EHostileInput attacks the running binary with an XML bomb, deep
// nesting, a huge attribute, slowloris connections, an unauthenticated
// connection flood and SASL password guessing, each from its own loopback
// address, while alice and bob keep chatting: the attacks are cut off, the
// chat goes on within the usual wait during each, the process survives, and
// afterwards its connections are back to the two users' and its memory near
// where it started.
func TestE2EHostileInput(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server binary")
	}
	const handshake = 2 * time.Second
	p := newProcServer(t, fmt.Sprintf("  handshake_timeout: %s\n  max_connections_per_ip: 50\n", handshake),
		"auth:\n  max_failures_per_account: 3\n  backoff: 30s\n")
	p.start()
	const password = "hostile-password"
	p.addUsers(t, password, "alice", "bob", "victim")
	alice := p.ts.dial(t, "alice", password)
	bob := p.ts.dial(t, "bob", password)
	bob.send(t, "<presence/>")
	n := 0
	chat := func(during string) {
		t.Helper()
		n++
		id := fmt.Sprintf("chat-%d", n)
		start := time.Now()
		alice.send(t, fmt.Sprintf("<message to='bob@localhost' id='%s' type='chat'><body>%s</body></message>", id, id))
		bob.Messages.expect(t, "chat during "+during, func(m xmlNode) bool { return m.attr("id") == id })
		t.Logf("chat during %s: %v", during, time.Since(start).Round(time.Millisecond))
	}
	chat("nothing")
	baseConns := p.metric(t, "kontor_c2s_connections")
	baseRSS := p.rssKiB(t)

	t.Run("xml bomb", func(t *testing.T) {
		c, err := dialFrom(t, p, "127.0.0.2")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		bomb := "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>" +
			"<!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>" +
			"<!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>]>" +
			"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>&lol3;"
		_, _ = io.WriteString(c, bomb)
		chat("an XML bomb")
		if d, cond, closed := closedWithin(c, e2eWait); !closed {
			t.Errorf("the connection with a DTD is still open after %v", d)
		} else {
			t.Logf("DTD: closed after %v with %q", d.Round(time.Millisecond), cond)
		}
	})

	t.Run("deep nesting", func(t *testing.T) {
		c, err := dialFrom(t, p, "127.0.0.2")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = io.WriteString(c, streamHeader+strings.Repeat("<a>", 100000))
		chat("deep nesting")
		if d, cond, closed := closedWithin(c, e2eWait); !closed || cond == "" {
			t.Errorf("100000 nested elements: closed %v after %v, stream error %q", closed, d, cond)
		}
	})

	t.Run("huge attribute", func(t *testing.T) {
		c, err := dialFrom(t, p, "127.0.0.2")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		go func() {
			_, _ = io.WriteString(c, streamHeader+"<message to='bob@localhost' x='"+strings.Repeat("A", 4<<20)+"'/>")
		}()
		chat("a 4 MiB attribute")
		if d, cond, closed := closedWithin(c, e2eWait); !closed || cond == "" {
			t.Errorf("a 4 MiB attribute: closed %v after %v, stream error %q", closed, d, cond)
		}
	})

	t.Run("slowloris", func(t *testing.T) {
		const count = 40
		var wg sync.WaitGroup
		conns := make([]net.Conn, 0, count)
		for range count {
			c, err := dialFrom(t, p, "127.0.0.3")
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		stop := make(chan struct{})
		for _, c := range conns {
			wg.Add(1)
			go func() { // one byte of the header every 200ms
				defer wg.Done()
				for i := 0; i < len(streamHeader); i++ {
					select {
					case <-stop:
						return
					case <-time.After(200 * time.Millisecond):
					}
					if _, err := c.Write([]byte{streamHeader[i]}); err != nil {
						return
					}
				}
			}()
		}
		chat("slowloris")
		start := time.Now()
		for i, c := range conns {
			if d, _, closed := closedWithin(c, handshake+5*time.Second-time.Since(start)); !closed {
				t.Errorf("slow connection %d still open after %v (handshake_timeout %v)", i, d, handshake)
				break
			}
		}
		close(stop)
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	})

	t.Run("unauthenticated flood", func(t *testing.T) {
		var conns []net.Conn
		refused := 0
		for range 120 {
			c, err := dialFrom(t, p, "127.0.0.4")
			if err != nil {
				refused++
				continue
			}
			_, _ = io.WriteString(c, streamHeader)
			conns = append(conns, c)
		}
		chat("a flood of 120 connections")
		// Beyond max_connections_per_ip (50) the server closes at once.
		closedEarly := 0
		for _, c := range conns {
			if _, _, closed := closedWithin(c, 300*time.Millisecond); closed {
				closedEarly++
			}
		}
		if closedEarly+refused < 120-50 {
			t.Errorf("%d of 120 connections from one address closed or refused at once, want at least 70 (limit 50)", closedEarly+refused)
		}
		for _, c := range conns {
			c.Close()
		}
	})

	t.Run("password guessing", func(t *testing.T) {
		attempt := func(pw string) string {
			r := rawFrom(t, p, "127.0.0.5")
			r.open()
			if err := r.startTLS(p.ts.tlsConfig()); err != nil {
				t.Fatal(err)
			}
			f := r.open()
			return r.auth(sasl.Plain, "victim", pw, mechanisms(f)).firstChildName()
		}
		for i := range 3 {
			if got := attempt(fmt.Sprintf("guess-%d", i)); got != "not-authorized" {
				t.Fatalf("wrong password %d: %s, want not-authorized", i, got)
			}
		}
		chat("password guessing")
		// The account is in back-off now: even the right password is
		// refused, so guessing does not pay off.
		if got := attempt(password); got != "temporary-auth-failure" {
			t.Errorf("the right password during back-off: %s, want temporary-auth-failure", got)
		}
	})

	chat("the aftermath")
	deadline := time.Now().Add(10 * time.Second)
	for p.metric(t, "kontor_c2s_connections") > baseConns && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if got := p.metric(t, "kontor_c2s_connections"); got != baseConns {
		t.Errorf("%d client connections after the attacks, %d before", got, baseConns)
	}
	rss := p.rssKiB(t)
	t.Logf("resident memory: %d KiB before, %d KiB after the attacks", baseRSS, rss)
	if rss > baseRSS+64<<10 {
		t.Errorf("resident memory grew from %d KiB to %d KiB", baseRSS, rss)
	}
	if !p.running() {
		t.Fatal("the server died")
	}
}

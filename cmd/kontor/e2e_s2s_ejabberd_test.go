package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"kontor.im/kontor/core/testenv"
)

// TestFederationEjabberd federates Kontor (k.test) with Debian's ejabberd
// (e.test): a mellium client on each server, messages both ways, and an
// IQ from ejabberd's user to Kontor's server. ejabberd finds k.test
// through a DNS server the test runs (SRV _xmpp-server._tcp.k.test →
// Kontor's s2s port); Kontor reaches e.test through a static route. Both
// certificates are self-signed, so both directions use dialback.
func TestFederationEjabberd(t *testing.T) {
	t.Parallel()
	ctlPath := testenv.Program(t, "ejabberdctl", "ejabberd")
	kontorS2S, ejS2S, ejC2S, ejDist := freePort(t), freePort(t), freePort(t), freePort(t)
	dnsAddr := startTestDNS(t, "k.test", kontorS2S)

	k := startTestServer(t, "sqlite", func(c *Config) {
		c.Domains = []string{"k.test"}
		c.S2S.Enabled, c.S2S.Addr, c.S2S.Routes = true, kontorS2S, []string{"e.test=" + ejS2S}
		c.S2S.ConnectTimeout = 20 * time.Second
	})
	ctl := startEjabberd(t, ctlPath, "e.test", ejC2S, ejS2S, ejDist, dnsAddr)
	if out, err := ctl("register", "erin", "e.test", "password-e"); err != nil {
		t.Fatalf("ejabberdctl register: %v\n%s", err, out)
	}
	checkFederation(t, k, "ejabberd", "erin@e.test", "password-e", ejC2S)
}

// checkFederation has kim@k.test (on Kontor, k) and user (a client of
// the peer server whose c2s listener is at c2s, logged in with mellium
// over SCRAM-SHA-1 or PLAIN) exchange messages both ways; user pings
// k.test, and kim writes to a user the peer does not have, which comes
// back as the peer's error through the inbound stream.
func checkFederation(t *testing.T, k *testServer, peer, user, password, c2s string) {
	t.Helper()
	k.addUser(t, "kim@k.test", "password-k")
	kim := k.dial(t, "kim@k.test", "password-k", withResource("desk"))
	kim.send(t, "<presence/>")
	kim.barrier(t)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", c2s)
	if err != nil {
		t.Fatal(err)
	}
	origin := jid.MustParse(user + "/phone")
	sess, err := xmpp.NewClientSession(ctx, origin, conn,
		xmpp.StartTLS(&tls.Config{ServerName: origin.Domain().String(), InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}), // the peer's throw-away certificate
		xmpp.SASL("", password, sasl.ScramSha1, sasl.Plain), bindRequested())
	if err != nil {
		t.Fatalf("login to %s: %v", peer, err)
	}
	remote := k.serve(t, origin.Localpart(), sess, conn)
	remote.send(t, "<presence/>")

	kim.chat(t, origin.String(), "hello "+peer)
	m := remote.Messages.expect(t, user+": kim's message", func(n xmlNode) bool { return n.body() == "hello "+peer })
	if m.attr("from") != "kim@k.test/desk" {
		t.Errorf("%s got %s", user, m)
	}
	remote.chat(t, "kim@k.test/desk", "hello kontor")
	m = kim.Messages.expect(t, "kim: "+user+"'s message", func(n xmlNode) bool { return n.body() == "hello kontor" })
	if m.attr("from") != origin.String() {
		t.Errorf("kim got %s", m)
	}
	r := remote.iq(t, "<iq type='get' to='k.test' id='ping-k'><ping xmlns='urn:xmpp:ping'/></iq>")
	if r.attr("type") != "result" || r.attr("from") != "k.test" {
		t.Errorf("%s's ping of k.test: %s", user, r)
	}
	nobody := "nobody@" + origin.Domain().String()
	kim.send(t, "<message to='"+nobody+"' id='to-nobody' type='chat'><body>?</body></message>")
	e := kim.Messages.expect(t, "kim: "+peer+"'s error", func(n xmlNode) bool { return n.attr("id") == "to-nobody" })
	if e.attr("type") != "error" || e.attr("from") != nobody {
		t.Errorf("kim got %s", e)
	}
}

// startTestDNS answers SRV _xmpp-server._tcp.DOMAIN with addr (its IP as
// the target), and A DOMAIN with addr's IP, over UDP on loopback; every
// other name does not exist.
func startTestDNS(t *testing.T, domain, addr string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveTestDNS(t, pc, domain, addr, false)
}

// serveTestDNS answers as startTestDNS does, on pc. With byName the SRV
// target is DOMAIN itself (answered with an A record) rather than the
// address literal, for resolvers that look a target up even when it is an
// address (Prosody's).
func serveTestDNS(t *testing.T, pc net.PacketConn, domain, addr string, byName bool) string {
	t.Helper()
	host, portStr, _ := net.SplitHostPort(addr)
	var port uint16
	fmt.Sscan(portStr, &port)
	ip := net.ParseIP(host).To4()
	t.Cleanup(func() { pc.Close() })
	// The SRV target is the address itself: ejabberd resolves an
	// address literal without asking DNS again.
	target := dnsmessage.MustNewName(host + ".")
	if byName {
		target = dnsmessage.MustNewName(domain + ".")
	}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			name := strings.ToLower(q.Name.String())
			resp := dnsmessage.Message{Header: dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true,
				RecursionDesired: h.RecursionDesired, RecursionAvailable: h.RecursionDesired, RCode: dnsmessage.RCodeNameError},
				Questions: []dnsmessage.Question{q}}
			rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 1}
			switch {
			case name == "_xmpp-server._tcp."+domain+"." && q.Type == dnsmessage.TypeSRV:
				resp.RCode = dnsmessage.RCodeSuccess
				resp.Answers = append(resp.Answers, dnsmessage.Resource{Header: rh, Body: &dnsmessage.SRVResource{Port: port, Target: target}})
			case name == domain+".":
				resp.RCode = dnsmessage.RCodeSuccess
				if q.Type == dnsmessage.TypeA {
					var a [4]byte
					copy(a[:], ip)
					resp.Answers = append(resp.Answers, dnsmessage.Resource{Header: rh, Body: &dnsmessage.AResource{A: a}})
				}
			}
			out, err := resp.Pack()
			if err == nil {
				_, _ = pc.WriteTo(out, from)
			}
		}
	}()
	return pc.LocalAddr().String()
}

// startEjabberd runs ejabberd for domain in the foreground with mnesia in
// a temporary spool, c2s and s2s listeners on loopback, and the test's DNS
// server as its only name server. It returns a function that runs
// ejabberdctl commands against it.
func startEjabberd(t *testing.T, ctlPath, domain, c2s, s2s, dist, dnsAddr string) func(args ...string) (string, error) {
	t.Helper()
	dir, err := os.MkdirTemp("", "kontor-ejabberd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := ensureSelfSigned(certFile, keyFile, []string{domain}); err != nil {
		t.Fatal(err)
	}
	cert, _ := os.ReadFile(certFile)
	key, _ := os.ReadFile(keyFile)
	combined := filepath.Join(dir, "combined.pem")
	if err := os.WriteFile(combined, append(cert, key...), 0o600); err != nil {
		t.Fatal(err)
	}
	port := func(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }
	dnsHost, dnsPort, _ := net.SplitHostPort(dnsAddr)
	inetrc := fmt.Sprintf("{resolv_conf, \"\"}.\n{nameserver, {%s}, %s}.\n{lookup, [file, dns]}.\n", strings.ReplaceAll(dnsHost, ".", ","), dnsPort)
	yml := fmt.Sprintf(`hosts: [%q]
loglevel: info
certfiles: [%q]
listen:
  - port: %s
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls: true
    starttls_required: true
  - port: %s
    ip: "127.0.0.1"
    module: ejabberd_s2s_in
s2s_use_starttls: required
s2s_dns_timeout: 2
s2s_dns_retries: 1
acl:
  local: {user_regexp: ""}
access_rules:
  c2s: {allow: all}
  s2s: {allow: all}
modules:
  mod_roster: {}
  mod_disco: {}
  mod_ping: {}
  mod_s2s_dialback: {}
`, domain, combined, port(c2s), port(s2s))
	for name, body := range map[string]string{"ejabberd.yml": yml, "inetrc": inetrc} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"spool", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("chown", "-R", "ejabberd", dir).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v %s", err, out)
	}
	node := "kontor_s2s_" + port(dist) + "@localhost"
	args := func(more ...string) *exec.Cmd {
		cmd := exec.Command(ctlPath, append([]string{"--config-dir", dir, "--config", filepath.Join(dir, "ejabberd.yml"),
			"--logs", filepath.Join(dir, "log"), "--spool", filepath.Join(dir, "spool"), "--node", node}, more...)...)
		cmd.Env = append(os.Environ(), "ERL_DIST_PORT="+port(dist))
		return cmd
	}
	fg := args("foreground")
	fg.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logFile, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	fg.Stdout, fg.Stderr = logFile, logFile
	if err := fg.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = fg.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = args("stop").Run()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-fg.Process.Pid, syscall.SIGKILL)
			<-done
		}
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "log", "ejabberd.log"))
			t.Logf("ejabberd log:\n%s", b)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", c2s, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-done:
			b, _ := os.ReadFile(filepath.Join(dir, "stdout"))
			t.Fatalf("ejabberd ended at start:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("ejabberd did not start listening within 60 s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	return func(a ...string) (string, error) {
		out, err := args(a...).CombinedOutput()
		return string(out), err
	}
}

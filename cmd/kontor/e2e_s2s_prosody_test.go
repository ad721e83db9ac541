package main

import (
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"kontor.im/kontor/core/testenv"
)

// TestFederationProsody federates Kontor (k.test) with Debian's Prosody
// 0.12 (p.test): a mellium client on each server, messages both ways, and
// an IQ from Prosody's user to Kontor's server. Kontor reaches p.test
// through a static route. Prosody resolves names with its own resolver,
// which asks the name servers of /etc/resolv.conf on port 53: it runs in a
// mount namespace of its own (unshare) where /etc/resolv.conf names the
// test's DNS server on a loopback address of its own, port 53, which
// answers SRV _xmpp-server._tcp.k.test with Kontor's s2s port. Both
// certificates are self-signed, so both directions use dialback. Needs
// root (port 53, the mount namespace).
func TestFederationProsody(t *testing.T) {
	t.Parallel()
	prosody := testenv.Program(t, "prosody", "prosody")
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("TestFederationProsody needs root (a mount namespace and DNS on port 53) and CI=true")
		}
		t.Skip("needs root: a mount namespace and DNS on port 53")
	}
	kontorS2S, pS2S, pC2S := freePort(t), freePort(t), freePort(t)

	// A loopback address of this test's own for the DNS server on port
	// 53 (several tests may run at once).
	var b [2]byte
	_, _ = rand.Read(b[:])
	dnsIP := fmt.Sprintf("127.53.%d.%d", b[0], 1+b[1]%250)
	pc, err := net.ListenPacket("udp", dnsIP+":53")
	if err != nil {
		t.Fatalf("DNS on %s:53: %v", dnsIP, err)
	}
	t.Cleanup(func() { pc.Close() })
	serveTestDNS(t, pc, "k.test", kontorS2S, true)

	k := startTestServer(t, "sqlite", func(c *Config) {
		c.Domains = []string{"k.test"}
		c.S2S.Enabled, c.S2S.Addr, c.S2S.Routes = true, kontorS2S, []string{"p.test=" + pS2S}
		c.S2S.ConnectTimeout = 20 * time.Second
	})
	dir := startProsody(t, prosody, "p.test", pC2S, pS2S, dnsIP)
	ctl := exec.Command("prosodyctl", "--config", filepath.Join(dir, "prosody.cfg.lua"), "register", "petra", "p.test", "password-p")
	if out, err := ctl.CombinedOutput(); err != nil {
		t.Fatalf("prosodyctl register: %v\n%s", err, out)
	}
	checkFederation(t, k, "prosody", "petra@p.test", "password-p", pC2S)
}

// startProsody runs Prosody for domain in the foreground with its data in
// a temporary directory, c2s and s2s listeners on loopback, in a mount
// namespace whose /etc/resolv.conf names only dnsIP. It returns the
// directory (prosody.cfg.lua is there).
func startProsody(t *testing.T, prosody, domain, c2s, s2s, dnsIP string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "kontor-prosody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := ensureSelfSigned(certFile, keyFile, []string{domain}); err != nil {
		t.Fatal(err)
	}
	port := func(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }
	cfg := fmt.Sprintf(`pidfile = %q
data_path = %q
run_as_root = true
daemonize = false
log = { debug = %q }
interfaces = { "127.0.0.1" }
c2s_ports = { %s }
c2s_interfaces = { "127.0.0.1" }
s2s_ports = { %s }
s2s_interfaces = { "127.0.0.1" }
http_ports = { }
https_ports = { }
modules_enabled = { "roster", "saslauth", "tls", "dialback", "disco", "ping" }
c2s_require_encryption = true
s2s_require_encryption = true
s2s_secure_auth = false
authentication = "internal_hashed"
ssl = { certificate = %q, key = %q }
VirtualHost %q
`, filepath.Join(dir, "prosody.pid"), filepath.Join(dir, "data"), filepath.Join(dir, "prosody.log"),
		port(c2s), port(s2s), certFile, keyFile, domain)
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"prosody.cfg.lua": cfg, "resolv.conf": "nameserver " + dnsIP + "\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	script := fmt.Sprintf("mount --bind %q /etc/resolv.conf && exec %q --config %q -F",
		filepath.Join(dir, "resolv.conf"), prosody, filepath.Join(dir, "prosody.cfg.lua"))
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		out.Close()
		if t.Failed() {
			for _, f := range []string{"stdout", "prosody.log"} {
				b, _ := os.ReadFile(filepath.Join(dir, f))
				t.Logf("prosody %s:\n%s", f, b)
			}
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", c2s, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-done:
			b, _ := os.ReadFile(filepath.Join(dir, "stdout"))
			t.Fatalf("Prosody ended at start:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("Prosody did not start listening within 30 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.HasPrefix(dnsIP, "127.") {
		t.Fatalf("DNS address %s is not loopback", dnsIP)
	}
	return dir
}

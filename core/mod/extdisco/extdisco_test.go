package extdisco

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/testenv"
)

var now = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func configured(t *testing.T, o Options) router.Enabled {
	t.Helper()
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	info, _ := module.Lookup("extdisco")
	return router.Enabled{Info: info, Module: &extdisco{opts: o, now: func() time.Time { return now }}}
}

func testOptions() Options {
	return Options{
		Services: []Service{
			{Type: "stun", Host: "turn.example.com"},
			{Type: "turn", Host: "turn.example.com", Name: "Office TURN"},
			{Type: "turns", Host: "turn.example.com", Port: 443},
		},
		Secret: "s3cret",
		TTL:    time.Hour,
	}
}

func services(t *testing.T, srv *modtest.Server, payload string) *stanza.Stanza {
	t.Helper()
	c := srv.Connect("alice@example.com/phone")
	c.SendXML("<iq type='get' id='q' to='example.com'>" + payload + "</iq>")
	return c.NextIQ("q")
}

func TestServices(t *testing.T) {
	srv := modtest.New(t, modtest.Options{}, configured(t, testOptions()))
	srv.Account("alice")
	r := services(t, srv, "<services xmlns='urn:xmpp:extdisco:2'/>")
	if r.Type != "result" {
		t.Fatalf("reply %s", r.El)
	}
	var got []*stanza.Element
	r.Payload().Children(func(e *stanza.Element) bool { got = append(got, e); return true })
	if len(got) != 3 {
		t.Fatalf("%d services: %s", len(got), r.El)
	}
	stun, turn, turns := got[0], got[1], got[2]
	if stun.Get("type") != "stun" || stun.Get("port") != "3478" || stun.Get("transport") != "udp" || stun.Has("username") || stun.Has("restricted") {
		t.Errorf("stun: %s", stun)
	}
	if turn.Get("port") != "3478" || turn.Get("transport") != "udp" || turn.Get("restricted") != "1" || turn.Get("name") != "Office TURN" {
		t.Errorf("turn: %s", turn)
	}
	if turns.Get("port") != "443" || turns.Get("transport") != "tcp" {
		t.Errorf("turns: %s", turns)
	}
	exp := now.Add(time.Hour)
	if turn.Get("expires") != exp.Format(time.RFC3339) {
		t.Errorf("expires %q", turn.Get("expires"))
	}
	// coturn's check, written out: HMAC-SHA1 over the username, base64.
	user := turn.Get("username")
	if want := "1795698000:alice@example.com"; user != want || exp.Unix() != 1795698000 {
		t.Errorf("username %q, want %q", user, want)
	}
	m := hmac.New(sha1.New, []byte("s3cret"))
	m.Write([]byte(user))
	if turn.Get("password") != base64.StdEncoding.EncodeToString(m.Sum(nil)) {
		t.Errorf("password %q does not verify", turn.Get("password"))
	}
	if strings.Contains(r.El.String(), "s3cret") {
		t.Error("the secret is in the reply")
	}
}

func TestServicesOfType(t *testing.T) {
	srv := modtest.New(t, modtest.Options{}, configured(t, testOptions()))
	srv.Account("alice")
	r := services(t, srv, "<services xmlns='urn:xmpp:extdisco:2' type='stun'/>")
	n := 0
	r.Payload().Children(func(e *stanza.Element) bool {
		n++
		if e.Get("type") != "stun" {
			t.Errorf("service of type %q", e.Get("type"))
		}
		return true
	})
	if n != 1 || r.Payload().Get("type") != "stun" {
		t.Errorf("%d services: %s", n, r.El)
	}
	r = services(t, srv, "<services xmlns='urn:xmpp:extdisco:2' type='nat-pmp'/>")
	if r.Type != "result" || r.Payload().FirstChild() != nil {
		t.Errorf("unknown type: %s", r.El)
	}
}

func TestCredentials(t *testing.T) {
	srv := modtest.New(t, modtest.Options{}, configured(t, testOptions()))
	srv.Account("alice")
	tests := []struct {
		name, payload, cond string
	}{
		{"turn", "<service host='turn.example.com' type='turn'/>", ""},
		{"turns by port", "<service host='turn.example.com' type='turns' port='443'/>", ""},
		{"wrong port", "<service host='turn.example.com' type='turns' port='5349'/>", stanza.ItemNotFound},
		{"unknown host", "<service host='other.example.com' type='turn'/>", stanza.ItemNotFound},
		{"stun needs none", "<service host='turn.example.com' type='stun'/>", stanza.ItemNotFound},
		{"no service", "", stanza.BadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := services(t, srv, "<credentials xmlns='urn:xmpp:extdisco:2'>"+tt.payload+"</credentials>")
			if tt.cond != "" {
				if c := modtest.ErrorCondition(r); c != tt.cond {
					t.Errorf("condition %q, want %q: %s", c, tt.cond, r.El)
				}
				return
			}
			s := r.Payload().Child(NS, "service")
			if r.Type != "result" || s == nil || s.Get("username") == "" || s.Get("password") == "" {
				t.Errorf("reply %s", r.El)
			}
		})
	}
}

func TestDisco(t *testing.T) {
	srv := modtest.New(t, modtest.Options{}, configured(t, testOptions()))
	found := false
	for _, f := range srv.Host.DiscoInfo(module.ToHost).Features {
		found = found || f == NS
	}
	if !found {
		t.Error("the host does not advertise " + NS)
	}
}

func TestSecretFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "turn.secret")
	if err := os.WriteFile(f, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := testOptions()
	o.Secret, o.SecretFile = "", f
	srv := modtest.New(t, modtest.Options{}, configured(t, o))
	srv.Account("alice")
	r := services(t, srv, "<services xmlns='urn:xmpp:extdisco:2' type='turn'/>")
	s := r.Payload().FirstChild()
	if s == nil {
		t.Fatalf("reply %s", r.El)
	}
	if _, want := Credentials([]byte("from-file"), "alice@example.com", now.Add(time.Hour)); s.Get("password") != want {
		t.Errorf("password %q, want one made with the file's secret", s.Get("password"))
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Options)
		want string // substring of the error; "" for none
	}{
		{"valid", func(*Options) {}, ""},
		{"no services", func(o *Options) { o.Services = nil }, "at least one"},
		{"bad type", func(o *Options) { o.Services[0].Type = "turnx" }, `services[0].type: "turnx"`},
		{"bad transport", func(o *Options) { o.Services[1].Transport = "sctp" }, `services[1].transport`},
		{"bad host", func(o *Options) { o.Services[1].Host = "a b" }, `services[1].host`},
		{"no host", func(o *Options) { o.Services[1].Host = "" }, `services[1].host`},
		{"IPv6 host", func(o *Options) { o.Services[1].Host = "2001:db8::1" }, ""},
		{"bad port", func(o *Options) { o.Services[1].Port = 70000 }, `services[1].port`},
		{"TURN without secret", func(o *Options) { o.Secret = "" }, "secret or secret_file"},
		{"STUN only needs no secret", func(o *Options) { o.Secret = ""; o.Services = o.Services[:1] }, ""},
		{"both secrets", func(o *Options) { o.SecretFile = "/x" }, "not both"},
		{"short ttl", func(o *Options) { o.TTL = time.Second }, "ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := testOptions()
			tt.edit(&o)
			err := o.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want one with %q", err, tt.want)
			}
		})
	}
}

func TestMissingSecretFile(t *testing.T) {
	o := testOptions()
	o.Secret, o.SecretFile = "", filepath.Join(t.TempDir(), "absent")
	info, _ := module.Lookup("extdisco")
	r := router.New(router.Config{})
	if _, err := r.AddHost(modtest.Parse(t, "<message to='example.com'/>").To, []router.Enabled{{Info: info, Module: &extdisco{opts: o, now: time.Now}}}); err == nil {
		t.Error("a missing secret file does not stop the start")
	}
}

// TestCoturnAcceptsCredentials checks the credentials against a real TURN
// server: Debian's coturn, with the shared secret, on loopback. A relay
// allocation succeeds with them, and fails with a changed password and
// with credentials that have expired.
func TestCoturnAcceptsCredentials(t *testing.T) {
	server := testenv.Program(t, "turnserver", "coturn")
	client := testenv.Program(t, "turnutils_uclient", "coturn")
	port := freeUDPPort(t)
	const secret = "correct horse battery staple"
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	srvCmd := exec.CommandContext(ctx, server, "-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
		"--listening-port="+strconv.Itoa(port), "--use-auth-secret", "--static-auth-secret="+secret,
		"--realm=example.com", "--no-tls", "--no-dtls", "--no-cli", "--allow-loopback-peers",
		"--min-port=49152", "--max-port=65535", "--pidfile="+filepath.Join(dir, "turn.pid"),
		"--log-file=stdout", "--simple-log", "--no-stdout-log")
	logFile, err := os.Create(filepath.Join(dir, "turn.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	srvCmd.Stdout, srvCmd.Stderr = logFile, logFile
	serverLog := func() string { b, _ := os.ReadFile(logFile.Name()); return string(b) }
	if err := srvCmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = srvCmd.Wait() })

	o := testOptions()
	o.Secret = secret
	o.Services = []Service{{Type: "turn", Host: "127.0.0.1", Port: port}}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	info, _ := module.Lookup("extdisco")
	srv := modtest.New(t, modtest.Options{}, router.Enabled{Info: info, Module: &extdisco{opts: o, now: time.Now}})
	srv.Account("alice")
	s := services(t, srv, "<services xmlns='urn:xmpp:extdisco:2' type='turn'/>").Payload().FirstChild()
	if s == nil {
		t.Fatal("no TURN service")
	}
	allocate := func(user, pass string) (string, error) {
		var out []byte
		var err error
		// The server may need a moment to bind its port.
		for range 20 {
			c, ccancel := context.WithTimeout(ctx, 10*time.Second)
			out, err = exec.CommandContext(c, client, "-p", strconv.Itoa(port), "-u", user, "-w", pass,
				"-e", "127.0.0.1", "-n", "1", "-m", "1", "-l", "100", "-y", "127.0.0.1").CombinedOutput()
			ccancel()
			if err == nil || !strings.Contains(string(out), "Connection refused") {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		return string(out), err
	}
	if out, err := allocate(s.Get("username"), s.Get("password")); err != nil || !strings.Contains(out, "Total lost packets 0") {
		t.Fatalf("coturn refused the credentials (%v):\n%s\nserver log:\n%s", err, out, serverLog())
	}
	if out, err := allocate(s.Get("username"), s.Get("password")[1:]+"A"); err == nil || !strings.Contains(out, "Cannot complete Allocation") {
		t.Errorf("coturn took a wrong password (%v):\n%s", err, out)
	}
	user, pass := Credentials([]byte(secret), "alice@example.com", time.Now().Add(-time.Minute))
	if out, err := allocate(user, pass); err == nil || !strings.Contains(out, "Cannot complete Allocation") {
		t.Errorf("coturn took expired credentials (%v):\n%s", err, out)
	}
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

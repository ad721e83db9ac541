package proxy65

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	contract "kontor.im/kontor/core/gate"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/stanza"
)

// decider allows contact unless the target is in deny.
type decider struct{ deny map[string]bool }

func (d decider) Contact(_ context.Context, in contract.ContactInput) contract.Decision {
	if d.deny[in.To.JID] {
		return contract.Decision{ID: "d-1", Reason: "external_blocked", Message: "not allowed"}
	}
	return contract.Decision{ID: "d-2", Allow: true, Reason: "internal"}
}
func (decider) Retention(context.Context, contract.RetentionInput) contract.RetentionDecision {
	return contract.RetentionDecision{}
}
func (decider) Access(context.Context, contract.AccessInput) contract.AccessDecision {
	return contract.AccessDecision{}
}
func (decider) E2EE(context.Context, contract.E2EEInput) contract.Decision {
	return contract.Decision{}
}
func (decider) Registration(context.Context, contract.RegistrationInput) contract.Decision {
	return contract.Decision{}
}

type env struct {
	t     *testing.T
	m     *Module
	srv   *modtest.Server
	alice *modtest.Client
	seq   int
}

func newEnv(t *testing.T, d contract.Decider, configure func(*Options)) *env {
	t.Helper()
	info, _ := module.Lookup(ID)
	m := info.New().(*Module)
	o := m.Options().(*Options)
	o.Listen = "127.0.0.1:0"
	if configure != nil {
		configure(o)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if d != nil {
		m.SetDecider(d)
	}
	e := &env{t: t, m: m}
	e.srv = modtest.New(t, modtest.Options{}, router.Enabled{Info: info, Module: m})
	e.srv.Account("alice")
	e.srv.Account("bob")
	e.alice = e.srv.Connect("alice@example.com/laptop")
	return e
}

func (e *env) iq(c *modtest.Client, typ, payload string) *stanza.Stanza {
	e.t.Helper()
	e.seq++
	id := fmt.Sprintf("p%d", e.seq)
	c.SendXML(fmt.Sprintf(`<iq type='%s' id='%s' to='example.com'>%s</iq>`, typ, id, payload))
	return c.NextIQ(id)
}

func (e *env) activate(sid, target string) *stanza.Stanza {
	e.t.Helper()
	return e.iq(e.alice, "set", fmt.Sprintf(`<query xmlns='%s' sid='%s'><activate>%s</activate></query>`, NS, sid, target))
}

// dial connects to the proxy and runs the client side of the SOCKS5
// handshake (RFC 1928) with the XEP-0065 destination.
func dial(t *testing.T, addr net.Addr, hash string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	// Greeting: version 5, two methods: username/password and none.
	c.Write([]byte{5, 2, 2, 0})
	var sel [2]byte
	if _, err := io.ReadFull(c, sel[:]); err != nil || sel != [2]byte{5, 0} {
		t.Fatalf("method selection %v, %v", sel, err)
	}
	req := append([]byte{5, 1, 0, 3, byte(len(hash))}, hash...)
	c.Write(append(req, 0, 0))
	rep := make([]byte, 5+len(hash)+2)
	if _, err := io.ReadFull(c, rep); err != nil {
		t.Fatalf("reply: %v", err)
	}
	if rep[1] != 0 || string(rep[5:5+len(hash)]) != hash {
		t.Fatalf("reply %v", rep)
	}
	c.SetDeadline(time.Time{})
	return c
}

func TestStreamhostAndDisco(t *testing.T) {
	e := newEnv(t, decider{}, func(o *Options) { o.PublicHost = "files.example.com"; o.PublicPort = 7777 })
	r := e.iq(e.alice, "get", `<query xmlns='`+NS+`'/>`)
	want := `<streamhost jid='example.com' host='files.example.com' port='7777'/>`
	if r.Type != "result" || !strings.Contains(r.El.String(), want) {
		t.Fatalf("streamhost: %s, want %s", r.El, want)
	}
	d := e.srv.Host.DiscoInfo(module.ToHost)
	found := false
	for _, id := range d.Identities {
		found = found || id.Category == "proxy" && id.Type == "bytestreams"
	}
	if !found {
		t.Errorf("identities %+v", d.Identities)
	}
}

func TestRelay(t *testing.T) {
	e := newEnv(t, decider{}, nil)
	requester := jid.MustParse("alice@example.com/laptop")
	target := jid.MustParse("bob@example.com/phone")
	hash := Hash("sid1", requester, target)
	tc := dial(t, e.m.Addr(), hash) // the target connects first (XEP-0065 §5.3.2)
	rc := dial(t, e.m.Addr(), hash)
	if r := e.activate("sid1", target.String()); r.Type != "result" {
		t.Fatalf("activate: %s", r.El)
	}
	data := make([]byte, 1<<20)
	rand.Read(data)
	go func() { rc.Write(data); rc.Write([]byte("<end>")) }()
	got := make([]byte, len(data)+5)
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(tc, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:len(data)], data) {
		t.Fatal("relayed bytes differ")
	}
	tc.Write([]byte("ack")) // the other direction
	var ack [3]byte
	rc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(rc, ack[:]); err != nil || string(ack[:]) != "ack" {
		t.Fatalf("back: %q %v", ack, err)
	}
	rc.Close()
	if _, err := tc.Read(make([]byte, 1)); err == nil {
		t.Error("the other side stays open after one side closed")
	}
}

func TestActivationRefused(t *testing.T) {
	e := newEnv(t, decider{deny: map[string]bool{"eve@evil.example": true}}, nil)
	cases := []struct {
		name, sid, target, condition string
	}{
		{"policy", "s1", "eve@evil.example/x", stanza.PolicyViolation},
		{"nobody connected", "s2", "bob@example.com/phone", stanza.ItemNotFound},
		{"no target", "s3", "", stanza.JIDMalformed},
		{"no sid", "", "bob@example.com/phone", stanza.BadRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.activate(c.sid, c.target)
			if got := modtest.ErrorCondition(r); got != c.condition {
				t.Errorf("condition %q, want %q: %s", got, c.condition, r.El)
			}
		})
	}
	t.Run("no policy engine", func(t *testing.T) {
		e := newEnv(t, nil, nil)
		if got := modtest.ErrorCondition(e.activate("s", "bob@example.com/phone")); got != stanza.PolicyViolation {
			t.Errorf("condition %q, want policy-violation", got)
		}
	})
}

func TestLimits(t *testing.T) {
	requester := jid.MustParse("alice@example.com/laptop")
	bob := jid.MustParse("bob@example.com/phone")
	t.Run("max_bytes", func(t *testing.T) {
		e := newEnv(t, decider{}, func(o *Options) { o.MaxBytes = 1000 })
		h := Hash("s", requester, bob)
		tc, rc := dial(t, e.m.Addr(), h), dial(t, e.m.Addr(), h)
		if r := e.activate("s", bob.String()); r.Type != "result" {
			t.Fatal(r.El)
		}
		go rc.Write(make([]byte, 5000))
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		n, err := io.Copy(io.Discard, tc)
		if n > 1000 || err != nil {
			t.Errorf("relayed %d bytes with max_bytes 1000 (%v)", n, err)
		}
	})
	t.Run("max_duration", func(t *testing.T) {
		e := newEnv(t, decider{}, func(o *Options) { o.MaxDuration = 200 * time.Millisecond })
		h := Hash("s", requester, bob)
		tc := dial(t, e.m.Addr(), h)
		dial(t, e.m.Addr(), h)
		if r := e.activate("s", bob.String()); r.Type != "result" {
			t.Fatal(r.El)
		}
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := tc.Read(make([]byte, 1)); err == nil || isTimeout(err) {
			t.Errorf("an idle transfer was not cut after max_duration: %v", err)
		}
	})
	t.Run("max_transfers", func(t *testing.T) {
		e := newEnv(t, decider{}, func(o *Options) { o.MaxTransfers = 1 })
		h1, h2 := Hash("s1", requester, bob), Hash("s2", requester, bob)
		dial(t, e.m.Addr(), h1)
		dial(t, e.m.Addr(), h1)
		dial(t, e.m.Addr(), h2)
		dial(t, e.m.Addr(), h2)
		if r := e.activate("s1", bob.String()); r.Type != "result" {
			t.Fatal(r.El)
		}
		if got := modtest.ErrorCondition(e.activate("s2", bob.String())); got != stanza.ResourceConstraint {
			t.Errorf("second transfer: %q, want resource-constraint", got)
		}
	})
	t.Run("pending_timeout", func(t *testing.T) {
		e := newEnv(t, decider{}, func(o *Options) { o.PendingTimeout = time.Second })
		c := dial(t, e.m.Addr(), Hash("s", requester, bob))
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
			t.Errorf("a connection never activated stays open: %v", err)
		}
	})
	t.Run("third connection", func(t *testing.T) {
		e := newEnv(t, decider{}, nil)
		h := Hash("s", requester, bob)
		dial(t, e.m.Addr(), h)
		dial(t, e.m.Addr(), h)
		c, err := net.Dial("tcp", e.m.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte{5, 1, 0})
		io.ReadFull(c, make([]byte, 2))
		c.Write(append(append([]byte{5, 1, 0, 3, 40}, h...), 0, 0))
		if n, _ := io.ReadFull(c, make([]byte, 47)); n == 47 {
			t.Error("a third connection for one hash was accepted")
		}
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return err != nil && errors.As(err, &ne) && ne.Timeout()
}

func TestHandshakeRefused(t *testing.T) {
	e := newEnv(t, decider{}, nil)
	cases := []struct {
		name  string
		send  []byte
		reply []byte // what the proxy answers before it closes
	}{
		{"socks4", []byte{4, 1, 0, 80}, nil},
		{"no acceptable method", []byte{5, 1, 2}, []byte{5, 0xFF}},
		{"bind command", []byte{5, 1, 0, 5, 2, 0, 3, 1, 'x', 0, 0}, []byte{5, 0, 5, 7}},
		{"ipv4 address", []byte{5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 80}, []byte{5, 0, 5, 8}},
		{"port not 0", append(append([]byte{5, 1, 0, 5, 1, 0, 3, 40}, strings.Repeat("a", 40)...), 0, 80), []byte{5, 0, 5, 2}},
		{"not a hash", append(append([]byte{5, 1, 0, 5, 1, 0, 3, 5}, "hello"...), 0, 0), []byte{5, 0, 5, 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", e.m.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			conn.Write(c.send)
			got, err := io.ReadAll(conn)
			if err != nil {
				t.Fatalf("not closed: %v", err)
			}
			if !bytes.HasPrefix(got, c.reply) || len(got) > len(c.reply)+7 {
				t.Errorf("reply %v, want %v then close", got, c.reply)
			}
		})
	}
}

package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"kontor.im/kontor/core/module"
)

// TestE2EProxy65 runs a XEP-0065 transfer through the proxy between two
// clients logged in over TLS with mellium.im/xmpp: the requester asks the
// server for its streamhost, both sides connect with a SOCKS5 handshake
// (RFC 1928, the XEP-0065 hash as destination), the requester activates
// the stream and a megabyte travels through the relay.
func TestE2EProxy65(t *testing.T) {
	ts := startTestServer(t, "sqlite", func(c *Config) {
		c.Modules.Enabled = append(defaultModuleIDs(), "proxy65")
		c.Modules.Options = map[string]any{"proxy65": map[string]any{"listen": "127.0.0.1:0", "public_host": "127.0.0.1"}}
	})
	ts.addUser(t, "alice", "password-alice")
	ts.addUser(t, "bob", "password-bob")
	alice := ts.dial(t, "alice", "password-alice")
	bob := ts.dial(t, "bob", "password-bob")

	const ns = "http://jabber.org/protocol/bytestreams"
	r := alice.iq(t, "<iq type='get' to='"+e2eDomain+"'><query xmlns='"+ns+"'/></iq>")
	sh := r.child(ns, "query").child(ns, "streamhost")
	if sh == nil || sh.attr("jid") != e2eDomain {
		t.Fatalf("no streamhost in %+v", r)
	}
	addr := net.JoinHostPort(sh.attr("host"), sh.attr("port"))

	sid := "e2e-sid-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	sum := sha1.Sum([]byte(sid + alice.JID().String() + bob.JID().String()))
	hash := hex.EncodeToString(sum[:])
	target := socks5Connect(t, addr, hash) // the target connects first
	requester := socks5Connect(t, addr, hash)

	r = alice.iq(t, "<iq type='set' to='"+e2eDomain+"'><query xmlns='"+ns+"' sid='"+sid+"'><activate>"+
		bob.JID().String()+"</activate></query></iq>")
	if r.attr("type") != "result" {
		t.Fatalf("activation: %+v", r)
	}
	data := make([]byte, 1<<20)
	rand.Read(data)
	go requester.Write(data)
	got := make([]byte, len(data))
	target.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadFull(target, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the relayed bytes differ")
	}
}

// defaultModuleIDs lists the modules enabled when none are configured.
func defaultModuleIDs() []string {
	var ids []string
	for _, info := range module.All() {
		if info.Default {
			ids = append(ids, info.ID)
		}
	}
	return ids
}

// socks5Connect is the client side of RFC 1928 as XEP-0065 uses it: no
// authentication, CONNECT to the hash as a domain name, port 0.
func socks5Connect(t *testing.T, addr, hash string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(e2eWait))
	if _, err := c.Write([]byte{5, 1, 0}); err != nil {
		t.Fatal(err)
	}
	var sel [2]byte
	if _, err := io.ReadFull(c, sel[:]); err != nil || sel != [2]byte{5, 0} {
		t.Fatalf("SOCKS5 method selection: %v %v", sel, err)
	}
	req := append([]byte{5, 1, 0, 3, byte(len(hash))}, hash...)
	if _, err := c.Write(append(req, 0, 0)); err != nil {
		t.Fatal(err)
	}
	rep := make([]byte, 7+len(hash))
	if _, err := io.ReadFull(c, rep); err != nil || rep[1] != 0 {
		t.Fatalf("SOCKS5 reply: %v %v", rep, err)
	}
	c.SetDeadline(time.Time{})
	return c
}

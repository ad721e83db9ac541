package main

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cws "github.com/coder/websocket"

	"kontor.im/kontor/core/account"
	"kontor.im/kontor/core/jid"
)

// wsLoadClient is a minimal WebSocket client for load: PLAIN, bind, then
// one stanza per message (RFC 7395). Not a conformance client.
type wsLoadClient struct{ c *cws.Conn }

func wsLoadLogin(tb testing.TB, url, user, pass, resource string) *wsLoadClient {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // benchmark only: our server on loopback
	c, _, err := cws.Dial(ctx, url, &cws.DialOptions{HTTPClient: hc, Subprotocols: []string{"xmpp"}})
	if err != nil {
		tb.Fatal(err)
	}
	c.SetReadLimit(1 << 20)
	w := &wsLoadClient{c: c}
	open := "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>"
	w.send(tb, open)
	w.until(tb, "features")
	w.send(tb, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"+base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pass))+"</auth>")
	w.until(tb, "<success")
	w.send(tb, open)
	w.until(tb, "features")
	w.send(tb, "<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>"+resource+"</resource></bind></iq>")
	w.until(tb, "<iq")
	return w
}

func (w *wsLoadClient) send(tb testing.TB, s string) {
	if err := w.c.Write(context.Background(), cws.MessageText, []byte(s)); err != nil {
		tb.Fatal(err)
	}
}

func (w *wsLoadClient) until(tb testing.TB, marker string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, b, err := w.c.Read(ctx)
		if err != nil {
			tb.Fatalf("waiting for %q: %v", marker, err)
		}
		if strings.Contains(string(b), marker) {
			return
		}
	}
}

// BenchmarkMessageTransport: alice sends chat messages to bob, both on the
// same transport, one stanza per write (per WebSocket message), at most
// window in flight. ns/op and allocs/op are per delivered message (the
// whole process: clients, TLS, server). The difference between the
// sub-benchmarks is what WebSocket framing costs over a TCP stream.
func BenchmarkMessageTransport(b *testing.B) {
	cfg := defaultConfig()
	cfg.DataDir = b.TempDir()
	cfg.C2S.StartTLSAddr = ""
	cfg.C2S.DirectTLSAddr = "127.0.0.1:0"
	cfg.Admin.Addr = ""
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.resolvePaths()
	srv, err := startServer(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	for _, u := range []string{"alice", "bob"} {
		if err := account.Create(context.Background(), srv.store, jid.MustParse(u+"@localhost"), "benchmark-password"); err != nil {
			b.Fatal(err)
		}
	}
	const window = 256
	const msg = "<message xmlns='jabber:client' to='bob@localhost/%s' type='chat' id='m%d'><body>Hello Bob, are we still on for lunch today?</body></message>"

	b.Run("tcp", func(b *testing.B) {
		addr := srv.Addrs["direct_tls"].String()
		alice := loadLogin(b, addr, "alice", "benchmark-password", "tcp-a")
		bob := loadLogin(b, addr, "bob", "benchmark-password", "tcp-b")
		defer alice.conn.Close()
		defer bob.conn.Close()
		var received atomic.Int64
		done := make(chan error, 1)
		go func() {
			buf := make([]byte, 64<<10)
			tail := ""
			for need := b.N; need > 0; {
				_ = bob.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
				n, err := bob.r.Read(buf)
				if err != nil {
					done <- err
					return
				}
				s := tail + string(buf[:n])
				got := strings.Count(s, "</message>")
				need -= got
				received.Add(int64(got))
				if i := strings.LastIndex(s, "</message>"); i >= 0 {
					s = s[i+len("</message>"):]
				}
				tail = s[max(0, len(s)-16):]
			}
			done <- nil
		}()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			alice.send(b, fmt.Sprintf(msg, "tcp-b", i))
			for int64(i+1)-received.Load() > window {
				time.Sleep(20 * time.Microsecond)
			}
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	})
	b.Run("websocket", func(b *testing.B) {
		url := "wss://" + srv.Addrs["https"].String() + webSocketPath
		alice := wsLoadLogin(b, url, "alice", "benchmark-password", "ws-a")
		bob := wsLoadLogin(b, url, "bob", "benchmark-password", "ws-b")
		defer alice.c.CloseNow()
		defer bob.c.CloseNow()
		var received atomic.Int64
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			for need := b.N; need > 0; {
				_, m, err := bob.c.Read(ctx)
				if err != nil {
					done <- err
					return
				}
				if strings.HasPrefix(string(m), "<message") {
					need--
					received.Add(1)
				}
			}
			done <- nil
		}()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			alice.send(b, fmt.Sprintf(msg, "ws-b", i))
			for int64(i+1)-received.Load() > window {
				time.Sleep(20 * time.Microsecond)
			}
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	})
}

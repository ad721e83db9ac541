package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"kontor.im/kontor/core/account"
	"kontor.im/kontor/core/jid"
)

// benchServer starts a server on loopback with the embedded store.
func benchServer(tb testing.TB) (*Server, Config) {
	tb.Helper()
	cfg := defaultConfig()
	cfg.DataDir = tb.TempDir()
	cfg.C2S.StartTLSAddr = ""
	cfg.C2S.DirectTLSAddr = "127.0.0.1:0"
	cfg.Admin.Addr = ""
	cfg.HTTP.Addr = ""
	cfg.resolvePaths()
	srv, err := startServer(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return srv, cfg
}

// loadClient is a minimal direct-TLS client for load: PLAIN, bind, then raw
// stanzas. It is not a conformance client (the e2e tests use mellium).
type loadClient struct {
	conn net.Conn
	r    *bufio.Reader
}

func loadLogin(tb testing.TB, addr, user, pass, resource string) *loadClient {
	tb.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"}) // benchmark only: the server is ours, on loopback
	if err != nil {
		tb.Fatal(err)
	}
	c := &loadClient{conn: conn, r: bufio.NewReaderSize(conn, 64<<10)}
	header := "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"
	auth := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
	c.send(tb, header)
	c.until(tb, "</stream:features>")
	c.send(tb, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"+auth+"</auth>")
	c.until(tb, "<success")
	c.send(tb, header)
	c.until(tb, "</stream:features>")
	c.send(tb, "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>"+resource+"</resource></bind></iq>")
	c.until(tb, "</iq>")
	return c
}

func (c *loadClient) send(tb testing.TB, s string) {
	if _, err := io.WriteString(c.conn, s); err != nil {
		tb.Fatal(err)
	}
}

// until reads until the marker has been seen.
func (c *loadClient) until(tb testing.TB, marker string) {
	var seen strings.Builder
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for !strings.Contains(seen.String(), marker) {
		b, err := c.r.ReadByte()
		if err != nil {
			tb.Fatalf("waiting for %q: %v (read %q)", marker, err, seen.String())
		}
		seen.WriteByte(b)
	}
}

// BenchmarkRouteEndToEnd: alice sends chat messages to bob's full JID over
// direct TLS; the server parses, routes and serialises each one, and bob
// reads it. ns/op is per delivered message with both clients on the same
// machine; allocs are the whole process's.
func BenchmarkRouteEndToEnd(b *testing.B) {
	srv, cfg := benchServer(b)
	st, err := openStore(context.Background(), &cfg)
	if err != nil {
		b.Fatal(err)
	}
	for _, u := range []string{"alice", "bob"} {
		if err := account.Create(context.Background(), st, jid.MustParse(u+"@localhost"), "benchmark-password"); err != nil {
			b.Fatal(err)
		}
	}
	st.Close()
	addr := srv.Addrs["direct_tls"].String()
	alice := loadLogin(b, addr, "alice", "benchmark-password", "a")
	bob := loadLogin(b, addr, "bob", "benchmark-password", "b")
	// The sender keeps at most window messages in flight, as a real client
	// does: flooding would fill bob's bounded queue, and the server would
	// rightly cut him off with resource-constraint.
	const window = 512
	var received atomic.Int64
	done := make(chan error, 1)
	go func() {
		// Count closing tags of messages.
		buf := make([]byte, 64<<10)
		need := b.N
		tail := ""
		for need > 0 {
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
	w := bufio.NewWriterSize(alice.conn, 64<<10)
	for i := 0; i < b.N; i++ {
		fmt.Fprintf(w, "<message to='bob@localhost/b' type='chat' id='m%d'><body>Hello Bob, are we still on for lunch today?</body></message>", i)
		if i%64 == 63 {
			w.Flush()
			for int64(i+1)-received.Load() > window {
				time.Sleep(50 * time.Microsecond)
			}
		}
	}
	w.Flush()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"kontor.im/kontor/archive/keyring"
	"kontor.im/kontor/core/account"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage/pgtest"
)

// countConn is a router.Conn that counts what it is sent: the recipient's
// session queue, without a socket.
type countConn struct{ n atomic.Int64 }

func (c *countConn) Send(*stanza.Stanza)       { c.n.Add(1) }
func (c *countConn) Close(*stanza.StreamError) {}

// BenchmarkMessagePathServer is the per-message work between a session's
// reader having parsed a chat message and the stanza being queued for the
// recipient's session and handed to the archive, on a real server
// (startServer with the default configuration: every default module, the
// policy gate with the embedded policy, mam and the encrypted archive on
// PostgreSQL, as the load tool measures it): alice's bound resource sends a chat message
// to bob's bare JID, as the load tool does; bob is available. Each
// iteration routes a fresh copy of the parsed message (the reader hands
// the router a new stanza each time). cpu-ns/op is the process's CPU time
// per message (getrusage), so it includes the archive's flusher sealing
// and writing the copies in the background, which ns/op only partly sees.
func BenchmarkMessagePathServer(b *testing.B) {
	ctx := context.Background()
	cfg := defaultConfig()
	cfg.DataDir = b.TempDir()
	cfg.C2S.StartTLSAddr, cfg.C2S.DirectTLSAddr = "", "127.0.0.1:0"
	cfg.Admin.Addr, cfg.HTTP.Addr = "", ""
	cfg.Archive.Enabled, cfg.Archive.KEKFile = true, filepath.Join(b.TempDir(), "archive.kek")
	if _, err := keyring.CreateFile(cfg.Archive.KEKFile, time.Now()); err != nil {
		b.Fatal(err)
	}
	cfg.Storage.Backend, cfg.Storage.PostgresDSN = "postgres", pgtest.DSN(b)
	cfg.resolvePaths()
	srv, err := startServer(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	for _, u := range []string{"alice", "bob"} {
		if err := account.Create(ctx, srv.store, jid.MustParse(u+"@localhost"), "benchmark-password"); err != nil {
			b.Fatal(err)
		}
	}
	h := srv.router.Host("localhost")
	aj, bj := jid.MustParse("alice@localhost/a"), jid.MustParse("bob@localhost/b")
	ac, bc := &countConn{}, &countConn{}
	ares, err := srv.router.Bind(ctx, aj, ac)
	if err != nil {
		b.Fatal(err)
	}
	bres, err := srv.router.Bind(ctx, bj, bc)
	if err != nil {
		b.Fatal(err)
	}
	h.SetPresence(ctx, ares, stanza.NewPresence(aj, jid.JID{}, ""))
	h.SetPresence(ctx, bres, stanza.NewPresence(bj, jid.JID{}, ""))
	msg := modtest.Parse(b, "<message type='chat' to='bob@localhost' id='m1'><body>load 1795665600000000000 1</body></message>")
	msg.SetFrom(aj)
	fresh := func() *stanza.Stanza {
		c := *msg
		c.El = msg.El.Clone()
		return &c
	}
	// Warm up: the policy's decision for the pair, the preferences cache.
	srv.router.RouteFrom(ctx, ares, fresh())
	before := bc.n.Load()
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		srv.router.RouteFrom(ctx, ares, fresh())
	}
	// Let the flusher seal and store what it was handed, inside the
	// measured CPU time.
	if err := srv.archive.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
	if got := bc.n.Load() - before; got != int64(b.N) {
		b.Fatalf("bob got %d of %d messages (alice got %d stanzas)", got, b.N, ac.n.Load())
	}
}

// cpuTime is the CPU time (user and system) the process has used: on a
// shared machine it leaves out the time spent waiting to be scheduled,
// which wall-clock ns/op includes.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

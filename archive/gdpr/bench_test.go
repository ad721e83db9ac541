package gdpr

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"kontor.im/kontor/archive"
	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/storage"
)

// BenchmarkExport exports one user with KONTOR_BENCH_MESSAGES archived
// messages (default 10,000) on each backend (KONTOR_BENCH_BACKENDS,
// default "sqlite,postgres"), and reports messages per second and the
// peak Go heap during the export. The README's figures for 1,000,000
// messages come from:
//
//	KONTOR_BENCH_MESSAGES=1000000 go test ./archive/gdpr -run '^$' -bench BenchmarkExport -benchtime 1x -benchmem
//
// The messages are generated through the archive's own ingest (sealed,
// 5,000 per transaction) before the timer starts.
func BenchmarkExport(b *testing.B) {
	n := 10_000
	if s := os.Getenv("KONTOR_BENCH_MESSAGES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	backends := []string{"sqlite", "postgres"}
	if s := os.Getenv("KONTOR_BENCH_BACKENDS"); s != "" {
		backends = splitComma(s)
	}
	for _, name := range backends {
		b.Run(fmt.Sprintf("%s/%d", name, n), func(b *testing.B) {
			be := openBackend(b, name)
			ring := testRing(b)
			a, err := archive.New(archive.Config{Store: be.st, Keys: ring, BatchSize: 5000, QueueSize: 200_000,
				FlushInterval: 50 * time.Millisecond})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			ok(b, a.Start(ctx))
			seedStart := time.Now()
			base := time.Now().Add(-time.Duration(n) * time.Second)
			for i := range n {
				at := base.Add(time.Duration(i) * time.Second)
				peer := "peer" + strconv.Itoa(i%50) + "@example.com"
				m := module.ArchivedMessage{ID: archive.NewIDAt(at), Owner: alice, With: peer, Outgoing: i%2 == 0, Time: at,
					Stanza: fmt.Appendf(nil, "<message xmlns='jabber:client' from='%s' to='%s' type='chat'><body>message number %d with some ordinary text of a typical length</body></message>", alice, peer, i)}
				if err := a.Append(ctx, m); err != nil {
					b.Fatal(err)
				}
			}
			ok(b, a.Close(ctx))
			ok(b, be.st.CreateAccount(ctx, storage.Account{JID: alice, Domain: "example.com", Created: time.Now()}))
			b.Logf("%s: %d messages ingested in %s", name, n, time.Since(seedStart).Round(time.Millisecond))
			// The export reads through an archive of its own (not started:
			// reading needs no ingest), so that the ingest's queue is not
			// counted in the heap.
			a = nil
			ea, err := archive.New(archive.Config{Store: be.st, Keys: ring})
			if err != nil {
				b.Fatal(err)
			}
			tool := &Tool{Store: be.st, Archive: ea, Trail: audit.New(be.st), Audit: func(context.Context, audit.Entry) error { return nil }}

			var peak atomic.Uint64
			stop := make(chan struct{})
			done := make(chan struct{})
			runtime.GC()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			go func() {
				defer close(done)
				var ms runtime.MemStats
				t := time.NewTicker(20 * time.Millisecond)
				defer t.Stop()
				for {
					runtime.ReadMemStats(&ms)
					if ms.HeapAlloc > peak.Load() {
						peak.Store(ms.HeapAlloc)
					}
					select {
					case <-stop:
						return
					case <-t.C:
					}
				}
			}()
			b.ResetTimer()
			for range b.N {
				res, err := tool.Export(ctx, Grant{Operator: "bench"}, alice, io.Discard, ExportOptions{TempDir: b.TempDir()})
				ok(b, err)
				if res.Messages != n {
					b.Fatalf("exported %d of %d", res.Messages, n)
				}
			}
			b.StopTimer()
			close(stop)
			<-done
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
			b.ReportMetric(float64(before.HeapAlloc)/(1<<20), "heap-before-MiB")
		})
	}
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}

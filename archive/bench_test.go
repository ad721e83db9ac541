package archive

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/storage/postgres"
)

// stanzaOf builds a realistic chat message of about 300 bytes.
func stanzaOf(from, to string, i int) []byte {
	return fmt.Appendf(nil, "<message xmlns='jabber:client' from='%s/laptop' to='%s' type='chat' id='m%08d'>"+
		"<body>Hi, about the quarterly report: could you send me the figures for region %d before Friday?</body>"+
		"<active xmlns='http://jabber.org/protocol/chatstates'/><markable xmlns='urn:xmpp:chat-markers:0'/></message>", from, to, i, i%97)
}

// BenchmarkAppend is the cost Append adds to routing: validation and a
// queue insert. No flusher runs, so the database is not measured.
func BenchmarkAppend(b *testing.B) {
	be := openBackend(b, "sqlite")
	a, err := New(Config{Store: be.store(), Keys: testRing(b), QueueSize: 1 << 30, QueueBytes: 1 << 62})
	if err != nil {
		b.Fatal(err)
	}
	m := msg(alice, bob, true, time.Now(), "x")
	m.Stanza = stanzaOf(alice, bob, 1)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		m.ID = NewID()
		m.Time = time.Time{}
		if err := a.Append(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSealOpen(b *testing.B) {
	be := openBackend(b, "sqlite")
	a := newArchive(b, be.store(), testRing(b), nil)
	keys, err := a.keys.forSlots(context.Background(), map[storage.ArchiveKeySlot]time.Time{{Owner: alice, Slice: 202506, Class: "standard"}: storage.ArchiveForever})
	if err != nil {
		b.Fatal(err)
	}
	k := keys[storage.ArchiveKeySlot{Owner: alice, Slice: 202506, Class: "standard"}]
	plain := stanzaOf(alice, bob, 1)
	id := newID(time.Now())
	buf := make([]byte, 0, 1024)
	b.SetBytes(int64(len(plain)))
	b.ReportAllocs()
	for b.Loop() {
		ad := associatedData(messageTag, alice, id[:], k.id)
		sealed, err := k.seal(buf[:0], plain, ad)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := k.open(sealed, ad); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIngestSQLite stores batches of 10,000 messages of 100 users
// through the whole pipeline into an SQLite file.
func BenchmarkIngestSQLite(b *testing.B) {
	be := openBackend(b, "sqlite")
	a := newArchive(b, be.store(), testRing(b), nil)
	const per, users = 10_000, 100
	start := time.Now().Add(-30 * 24 * time.Hour)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		for range per {
			owner, peer := fmt.Sprintf("u%03d@example.com", i%users), fmt.Sprintf("u%03d@example.com", (i*7+3)%users)
			m := module.ArchivedMessage{ID: FormatID(idAt(start.Add(time.Duration(i) * time.Millisecond))), Owner: owner, With: peer,
				Stanza: stanzaOf(owner, peer, i)}
			if err := a.Append(context.Background(), m); err != nil {
				b.Fatal(err)
			}
			i++
		}
		mustFlush(b, a)
	}
	b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "msgs/s")
	var size int64
	for _, f := range []string{be.path, be.path + "-wal"} {
		if fi, err := os.Stat(f); err == nil {
			size += fi.Size()
		}
	}
	b.ReportMetric(float64(size)/float64(i), "file-bytes/msg")
}

// BenchmarkQueryPage is the MAM query of a last page of 50 on SQLite,
// with 20,000 messages of 100 users.
func BenchmarkQueryPage(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			be := openBackend(b, backend)
			a := newArchive(b, be.store(), testRing(b), func(c *Config) { c.BatchSize = 2000 })
			start := time.Now().Add(-30 * 24 * time.Hour)
			const n, users = 20000, 100
			for i := range n {
				owner, peer := fmt.Sprintf("u%03d@example.com", i%users), fmt.Sprintf("u%03d@example.com", (i*7+3)%users)
				m := msg(owner, peer, i%2 == 0, start.Add(time.Duration(i)*time.Second), "")
				m.Stanza = stanzaOf(owner, peer, i)
				mustAppend(b, a, m)
			}
			mustFlush(b, a)
			ctx := context.Background()
			// The second page of each owner's archive: paging after an id
			// (the anchor and the count come with the page).
			after := make([]string, users)
			for u := range users {
				p, err := a.Query(ctx, module.ArchiveQuery{Owner: fmt.Sprintf("u%03d@example.com", u), Max: 50})
				if err != nil || len(p.Messages) != 50 {
					b.Fatalf("%d messages, %v", len(p.Messages), err)
				}
				after[u] = p.Messages[49].ID
			}
			for _, kind := range []string{"last", "after"} {
				b.Run(kind, func(b *testing.B) {
					i := 0
					b.ReportAllocs()
					for b.Loop() {
						i++
						q := module.ArchiveQuery{Owner: fmt.Sprintf("u%03d@example.com", i%users), Last: true, Max: 50}
						if kind == "after" {
							q.Last, q.AfterID = false, after[i%users]
						}
						p, err := a.Query(ctx, q)
						if err != nil || len(p.Messages) != 50 {
							b.Fatalf("%d messages, %v", len(p.Messages), err)
						}
					}
				})
			}
		})
	}
}

// BenchmarkIngest1M ingests a large archive into PostgreSQL through the
// whole pipeline (Append, queue, retention, sealing, COPY) and then
// measures MAM page latency at that size. It is heavy, so it runs only
// when named: go test -run='^$' -bench=Ingest1M -benchtime=1x ./archive/
//
// KONTOR_BENCH_MESSAGES (default 1000000) and KONTOR_BENCH_USERS (default
// 1000) set the size. It reports messages/s, bytes on disk per message
// (pg_total_relation_size of the message table: heap, indexes and TOAST)
// and the p50/p99 latency of a page of 50.
func BenchmarkIngest1M(b *testing.B) {
	if f := flag.Lookup("test.bench"); f == nil || !strings.Contains(f.Value.String(), "Ingest1M") {
		b.Skip("heavy: runs only with -bench=Ingest1M")
	}
	n := envInt(b, "KONTOR_BENCH_MESSAGES", 1_000_000)
	users := envInt(b, "KONTOR_BENCH_USERS", 1000)
	be := openBackend(b, "postgres")
	a := newArchive(b, be.store(), testRing(b), func(c *Config) { c.FlushInterval = 50 * time.Millisecond })
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	names := make([]string, users)
	for i := range names {
		names[i] = fmt.Sprintf("user%05d@corp.example.com", i)
	}
	// Spread over the last 60 days, in time order, as a live server would
	// archive them: about two months of data keys per user.
	span := 60 * 24 * time.Hour
	first := time.Now().Add(-span)
	step := span / time.Duration(n)

	b.ReportAllocs()
	b.ResetTimer()
	began := time.Now()
	var stanzaBytes int64
	for i := range n {
		owner := names[rng.IntN(users)]
		peer := names[rng.IntN(users)]
		at := first.Add(time.Duration(i) * step)
		st := stanzaOf(owner, peer, i)
		stanzaBytes += int64(len(st))
		m := module.ArchivedMessage{ID: FormatID(idAt(at)), Owner: owner, With: peer + "/laptop", Outgoing: i%2 == 0, Time: at, Stanza: st}
		if err := a.Append(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	mustFlush(b, a)
	took := time.Since(began)
	b.StopTimer()
	if st := a.Stats(); st.Stored != uint64(n) {
		b.Fatalf("stored %d of %d", st.Stored, n)
	}

	conn, err := pgx.Connect(ctx, be.dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "VACUUM ANALYZE archive_messages"); err != nil {
		b.Fatal(err)
	}
	var total, heap, indexes int64
	if err := conn.QueryRow(ctx, `SELECT pg_total_relation_size('archive_messages'), pg_relation_size('archive_messages'),
		pg_indexes_size('archive_messages')`).Scan(&total, &heap, &indexes); err != nil {
		b.Fatal(err)
	}

	// MAM pages at that size: a new archive (cold key cache) on a new pool.
	st2, err := postgres.Open(ctx, be.dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer st2.Close()
	timed := &timedStore{ArchiveStore: st2}
	q := newArchive(b, timed, a.cfg.Keys, nil)
	const queries = 2000
	lat := make([]time.Duration, 0, queries)
	kinds := []string{"last page", "page after an id", "with a peer, last page", "time range"}
	for i := range queries {
		owner := names[rng.IntN(users)]
		qq := module.ArchiveQuery{Owner: owner, Max: 50}
		switch kinds[i%len(kinds)] {
		case "last page":
			qq.Last = true
		case "page after an id":
			p, err := q.Query(ctx, module.ArchiveQuery{Owner: owner, Start: first.Add(time.Duration(rng.Int64N(int64(span)))), Max: 1})
			if err != nil || len(p.Messages) == 0 {
				qq.Last = true
				break
			}
			qq.AfterID = p.Messages[0].ID
		case "with a peer, last page":
			qq.With, qq.Last = names[rng.IntN(users)], true
		case "time range":
			qq.Start = first.Add(time.Duration(rng.Int64N(int64(span))))
			qq.End = qq.Start.Add(7 * 24 * time.Hour)
		}
		s := time.Now()
		p, err := q.Query(ctx, qq)
		lat = append(lat, time.Since(s))
		if err != nil {
			b.Fatal(err)
		}
		if len(p.Messages) > 50 {
			b.Fatalf("%d messages in a page of 50", len(p.Messages))
		}
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }

	b.ReportMetric(float64(n)/took.Seconds(), "msgs/s")
	b.ReportMetric(float64(total)/float64(n), "disk-bytes/msg")
	b.ReportMetric(float64(heap)/float64(n), "heap-bytes/msg")
	b.ReportMetric(float64(indexes)/float64(n), "index-bytes/msg")
	b.ReportMetric(float64(stanzaBytes)/float64(n), "stanza-bytes/msg")
	b.ReportMetric(pct(0.50), "page-p50-ms")
	b.ReportMetric(pct(0.99), "page-p99-ms")
	rows, counts := timed.rows.percentiles(), timed.counts.percentiles()
	b.Logf("store time per call: rows p50 %.2f ms p99 %.2f ms (%d calls); count p50 %.2f ms p99 %.2f ms (%d calls)",
		rows[0], rows[1], len(timed.rows.d), counts[0], counts[1], len(timed.counts.d))
	b.Logf("%d messages for %d users in %v; table %d MB (heap %d MB, indexes %d MB)", n, users, took.Round(time.Millisecond),
		total>>20, heap>>20, indexes>>20)
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// timedStore measures the store calls behind queries.
type timedStore struct {
	storage.ArchiveStore
	rows, counts durations
}

type durations struct {
	mu sync.Mutex
	d  []time.Duration
}

func (d *durations) add(since time.Time) {
	d.mu.Lock()
	d.d = append(d.d, time.Since(since))
	d.mu.Unlock()
}

// percentiles returns p50 and p99 in milliseconds.
func (d *durations) percentiles() [2]float64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.d) == 0 {
		return [2]float64{}
	}
	s := slices.Clone(d.d)
	slices.Sort(s)
	at := func(p float64) float64 { return float64(s[int(p*float64(len(s)-1))].Microseconds()) / 1000 }
	return [2]float64{at(0.5), at(0.99)}
}

func (t *timedStore) QueryArchive(ctx context.Context, q storage.ArchiveRowQuery) ([]storage.ArchiveRow, error) {
	defer t.rows.add(time.Now())
	return t.ArchiveStore.QueryArchive(ctx, q)
}

// QueryArchiveCounted (a page after an id, with its count) is timed as a
// rows call.
func (t *timedStore) QueryArchiveCounted(ctx context.Context, page, count storage.ArchiveRowQuery, limit int) ([]storage.ArchiveRow, int, error) {
	defer t.rows.add(time.Now())
	return t.ArchiveStore.QueryArchiveCounted(ctx, page, count, limit)
}

func (t *timedStore) CountArchive(ctx context.Context, q storage.ArchiveRowQuery, limit int) (int, error) {
	defer t.counts.add(time.Now())
	return t.ArchiveStore.CountArchive(ctx, q, limit)
}

// BenchmarkQueuePushLingering is Append's queue insert while the flusher
// lingers to fill a batch, as at a low message rate: a push that does not
// fill the batch must not wake the flusher (queue.want). wakes/push is the
// flusher's wake-ups per push (each a goroutine switch and a timer reset,
// often a futex to wake an idle thread); ns/op includes a pause after each
// push that gives a woken flusher time to run.
func BenchmarkQueuePushLingering(b *testing.B) {
	q := newQueue(1<<30, 1<<62)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			batch := q.take(1<<20, time.Hour, 0)
			if batch == nil {
				return
			}
			q.done(batch)
		}
	}()
	m := msg(alice, bob, true, time.Now(), "x")
	m.Stanza = stanzaOf(alice, bob, 1)
	ctx := context.Background()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if err := q.push(ctx, item{m: m, size: len(m.Stanza)}, true); err != nil {
			b.Fatal(err)
		}
		n++
		time.Sleep(20 * time.Microsecond)
	}
	b.StopTimer()
	q.mu.Lock()
	woken := q.woken
	q.mu.Unlock()
	q.close()
	<-done
	b.ReportMetric(float64(woken)/float64(n), "wakes/push")
}

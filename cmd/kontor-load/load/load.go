// Package load is an XMPP load generator: it drives any XMPP server
// (Kontor, Prosody, ejabberd) through the protocol only, over STARTTLS
// with SCRAM, and reads the server's and its database's CPU time and the
// server's memory from /proc, so that every figure is also given per
// operation. cmd/kontor-load is its command line; compare.sh there runs it
// against Kontor, Prosody and ejabberd side by side.
//
// The client is hand-written (encoding/xml, no XMPP library) so that the
// generator costs little next to the servers it measures: they share the
// machine's cores. Every loop is bounded by a count and by Config.Duration
// or Config.Timeout; it dials only the address it is given, which Run
// requires to be a loopback address.
//
// Scenarios:
//   - register: create Users accounts in band (XEP-0077), idempotent.
//   - login: Users logins, Concurrency at a time: TLS, SCRAM, bind, roster,
//     presence, close. Per login: CPU and latency.
//   - idle: hold Users sessions, then the server's resident memory growth
//     per session.
//   - chat: Pairs pairs exchange messages (at Rate messages/s in total, or
//     as fast as a window of Window messages in flight per pair allows) for
//     Duration; delivered/s, latency percentiles, loss, CPU per 1,000.
//     With SM, both sides enable stream management (XEP-0198): they answer
//     the server's <r/>, and a sender asks for an ack (<r/>) after each
//     message, as mobile clients do; what the server has not acknowledged
//     by the end is reported as unacked.
//   - mam: the first pair's archive is filled with Seed messages, then
//     pages of Page messages are fetched (XEP-0313 with RSM) for Duration;
//     CPU and latency per page.
//   - muc: Occupants users join one room, then one of them posts Messages
//     groupchat messages one at a time; fan-out time to the first and the
//     last occupant (p50, p99) and CPU per room message (muc.go).
package load

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"
)

// Config is one run.
type Config struct {
	Scenario    string        `json:"scenario"`
	Server      string        `json:"server,omitempty"` // a label for the output
	Addr        string        `json:"addr"`             // host:port of the STARTTLS listener (loopback)
	Domain      string        `json:"domain"`
	UserPrefix  string        `json:"-"`
	Password    string        `json:"-"`
	Users       int           `json:"users,omitempty"`
	Concurrency int           `json:"concurrency,omitempty"`
	Pairs       int           `json:"pairs,omitempty"`
	Rate        float64       `json:"rate,omitempty"` // messages/s in total; 0: as fast as Window allows
	Window      int           `json:"window,omitempty"`
	SM          bool          `json:"sm,omitempty"` // chat: clients enable stream management (XEP-0198) and ask for an ack after each message
	Duration    time.Duration `json:"-"`
	Seed        int           `json:"seed,omitempty"` // mam: messages in the archive
	Page        int           `json:"page,omitempty"` // mam: messages per page
	Settle      time.Duration `json:"-"`              // wait before reading CPU and memory at the end
	// Quiet bounds the wait, before the CPU window opens, until the
	// server and its database are idle (see quiesce); 0 does not wait.
	Quiet     time.Duration `json:"-"`
	Timeout   time.Duration `json:"-"` // per network step, and the bound on draining
	ServerPID int           `json:"server_pid,omitempty"`
	DBPID     int           `json:"db_pid,omitempty"` // the database's main process (postmaster): it and its children
	MUC       MUCConfig     `json:"muc,omitzero"`     // muc scenario (muc.go)

	salts *saltCache // shared by copies of a Config
}

// saltCache holds PBKDF2 results (see Config.saltedPassword).
type saltCache struct {
	mu sync.Mutex
	m  map[string][]byte
}

// Result is one run's JSON line.
type Result struct {
	Scenario string  `json:"scenario"`
	Server   string  `json:"server,omitempty"`
	Ops      int64   `json:"ops"`            // logins, sessions, messages delivered, pages
	Errors   int64   `json:"errors"`         // failed operations
	Seconds  float64 `json:"seconds"`        // wall time of the measured part
	OpsPerS  float64 `json:"ops_per_second"` // Ops/Seconds
	// QuietSeconds is how long the run waited for the server and its
	// database to be idle before measuring; QuietTimedOut that they never
	// were within Config.Quiet (the figures then include earlier work).
	QuietSeconds  float64 `json:"quiet_seconds,omitempty"`
	QuietTimedOut bool    `json:"quiet_timed_out,omitempty"`
	// CPU of the measured part (settle time included), in milliseconds.
	ServerCPUms float64 `json:"server_cpu_ms"`
	DBCPUms     float64 `json:"db_cpu_ms"`
	// Server+database CPU per operation (ms); for chat, per 1,000 messages.
	CPUPerOpMS   float64 `json:"cpu_per_op_ms,omitempty"`
	CPUPer1000MS float64 `json:"cpu_per_1000_ms,omitempty"`
	// Latency of one operation (ms).
	P50ms  float64 `json:"p50_ms"`
	P99ms  float64 `json:"p99_ms"`
	P999ms float64 `json:"p999_ms"`
	// chat
	Sent int64 `json:"sent,omitempty"`
	Lost int64 `json:"lost"`
	// chat with SM: messages the server had not acknowledged (<a h/>) when
	// the run ended.
	Unacked int64 `json:"unacked,omitempty"`
	// idle: server memory growth per session.
	RSSBeforeKiB    int64   `json:"rss_before_kib,omitempty"`
	RSSAfterKiB     int64   `json:"rss_after_kib,omitempty"`
	KiBPerSession   float64 `json:"kib_per_session,omitempty"`
	Config          *Config `json:"config"`
	FirstError      string  `json:"first_error,omitempty"`
	MeasuredPIDs    []int   `json:"measured_pids,omitempty"`
	MessagesPerPage float64 `json:"messages_per_page,omitempty"` // mam: the last page of a pass may be partial

	// muc scenario (muc.go)
	MUC *MUCResult `json:"muc,omitempty"`
}

func (c *Config) defaults() {
	if c.Domain == "" {
		c.Domain = "localhost"
	}
	if c.UserPrefix == "" {
		c.UserPrefix = "load"
	}
	if c.Password == "" {
		c.Password = "load-password-1"
	}
	if c.Users <= 0 {
		c.Users = 100
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 10
	}
	if c.Pairs <= 0 {
		c.Pairs = 10
	}
	if c.Window <= 0 {
		c.Window = 16
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.Page <= 0 {
		c.Page = 50
	}
	if c.Seed <= 0 {
		c.Seed = 500
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.Settle < 0 {
		c.Settle = 0
	}
	if c.salts == nil {
		c.salts = &saltCache{m: map[string][]byte{}}
	}
}

func (c *Config) user(i int) string { return fmt.Sprintf("%s%d", c.UserPrefix, i) }

// Run runs one scenario.
func Run(ctx context.Context, cfg *Config) (*Result, error) {
	cfg.defaults()
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("load: %s is not a loopback address: this tool only loads local servers", host)
	}
	// Hard bound on the whole run.
	ctx, cancel := context.WithTimeout(ctx, cfg.Quiet+cfg.Duration+cfg.Settle+10*cfg.Timeout)
	defer cancel()
	switch cfg.Scenario {
	case "register":
		return runRegister(ctx, cfg)
	case "login":
		return runLogin(ctx, cfg)
	case "idle":
		return runIdle(ctx, cfg)
	case "chat":
		return runChat(ctx, cfg)
	case "mam":
		return runMAM(ctx, cfg)
	case "muc":
		return runMUC(ctx, cfg)
	}
	return nil, fmt.Errorf("load: unknown scenario %q (register, login, idle, chat, mam, muc)", cfg.Scenario)
}

// meter reads server and database CPU at the start and end of a run.
type meter struct {
	cfg       *Config
	start     time.Time
	srv0, db0 time.Duration
}

func startMeter(ctx context.Context, cfg *Config, r *Result) *meter {
	quiesce(ctx, cfg, r)
	m := &meter{cfg: cfg, start: time.Now()}
	if cfg.ServerPID > 0 {
		m.srv0, _ = treeCPU(cfg.ServerPID)
	}
	if cfg.DBPID > 0 {
		m.db0, _ = treeCPU(cfg.DBPID)
	}
	return m
}

// quietShare is the CPU share (of one core, server and database
// together) under which they count as idle.
const quietShare = 0.05

// quiesce waits, at most cfg.Quiet, until the server and its database
// spend less than quietShare of a core over 250 ms: work left over from
// an earlier run (a previous scenario's logouts, an autovacuum after a
// burst of writes) would otherwise be charged to this one. The wait is
// recorded in r.
func quiesce(ctx context.Context, cfg *Config, r *Result) {
	if cfg.Quiet <= 0 || (cfg.ServerPID <= 0 && cfg.DBPID <= 0) {
		return
	}
	const step = 250 * time.Millisecond
	cpu := func() time.Duration {
		var d time.Duration
		if cfg.ServerPID > 0 {
			v, _ := treeCPU(cfg.ServerPID)
			d += v
		}
		if cfg.DBPID > 0 {
			v, _ := treeCPU(cfg.DBPID)
			d += v
		}
		return d
	}
	t0 := time.Now()
	prev := cpu()
	for {
		select {
		case <-time.After(step):
		case <-ctx.Done():
			r.QuietTimedOut = true
			return
		}
		now := cpu()
		busy := now - prev
		prev = now
		if float64(busy) < quietShare*float64(step) {
			r.QuietSeconds = time.Since(t0).Seconds()
			return
		}
		if time.Since(t0) >= cfg.Quiet {
			r.QuietSeconds = time.Since(t0).Seconds()
			r.QuietTimedOut = true
			return
		}
	}
}

// stop fills the CPU fields of r; ops is the operation count for the
// per-operation figure. The settle time is inside the CPU window (work a
// server defers, such as batched archive writes, is counted) but not the
// wall time.
func (m *meter) stop(ctx context.Context, r *Result) {
	r.Seconds = time.Since(m.start).Seconds()
	if r.Seconds > 0 {
		r.OpsPerS = float64(r.Ops) / r.Seconds
	}
	select {
	case <-time.After(m.cfg.Settle):
	case <-ctx.Done():
	}
	if m.cfg.ServerPID > 0 {
		if d, err := treeCPU(m.cfg.ServerPID); err == nil {
			r.ServerCPUms = ms(d - m.srv0)
		}
		r.MeasuredPIDs = append(r.MeasuredPIDs, m.cfg.ServerPID)
	}
	if m.cfg.DBPID > 0 {
		if d, err := treeCPU(m.cfg.DBPID); err == nil {
			r.DBCPUms = ms(d - m.db0)
		}
		r.MeasuredPIDs = append(r.MeasuredPIDs, m.cfg.DBPID)
	}
	if r.Ops > 0 {
		r.CPUPerOpMS = (r.ServerCPUms + r.DBCPUms) / float64(r.Ops)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// latencies collects samples; bounded by the scenarios' bounded loops.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) fill(r *Result) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return
	}
	slices.Sort(l.d)
	q := func(p float64) float64 {
		i := int(p * float64(len(l.d)-1))
		return ms(l.d[i])
	}
	r.P50ms, r.P99ms, r.P999ms = q(0.50), q(0.99), q(0.999)
}

// errs counts failures and keeps the first.
type errs struct {
	mu    sync.Mutex
	n     int64
	first error
}

func (e *errs) add(err error) {
	e.mu.Lock()
	e.n++
	if e.first == nil {
		e.first = err
	}
	e.mu.Unlock()
}

func (e *errs) fill(r *Result) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r.Errors = e.n
	if e.first != nil {
		r.FirstError = e.first.Error()
	}
}

// parallel runs fn(i) for i in [0,n), c at a time, until ctx ends.
func parallel(ctx context.Context, n, c int, fn func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < c && w < n; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := 0; i < n; i++ {
		select {
		case next <- i:
		case <-ctx.Done():
			i = n
		}
	}
	close(next)
	wg.Wait()
}

func runRegister(ctx context.Context, cfg *Config) (*Result, error) {
	r := &Result{Scenario: cfg.Scenario, Server: cfg.Server, Config: cfg}
	var e errs
	m := startMeter(ctx, cfg, r)
	var mu sync.Mutex
	parallel(ctx, cfg.Users, cfg.Concurrency, func(i int) {
		if err := register(ctx, cfg, cfg.user(i)); err != nil {
			e.add(err)
			return
		}
		mu.Lock()
		r.Ops++
		mu.Unlock()
	})
	m.stop(ctx, r)
	e.fill(r)
	if r.Errors > 0 {
		return r, fmt.Errorf("load: %d of %d registrations failed: %s", r.Errors, cfg.Users, r.FirstError)
	}
	return r, nil
}

func runLogin(ctx context.Context, cfg *Config) (*Result, error) {
	r := &Result{Scenario: cfg.Scenario, Server: cfg.Server, Config: cfg}
	var e errs
	var lat latencies
	var mu sync.Mutex
	m := startMeter(ctx, cfg, r)
	parallel(ctx, cfg.Users, cfg.Concurrency, func(i int) {
		t0 := time.Now()
		c, err := login(ctx, cfg, cfg.user(i))
		if err != nil {
			e.add(err)
			return
		}
		lat.add(time.Since(t0))
		c.close()
		mu.Lock()
		r.Ops++
		mu.Unlock()
	})
	m.stop(ctx, r)
	lat.fill(r)
	e.fill(r)
	return r, nil
}

func runIdle(ctx context.Context, cfg *Config) (*Result, error) {
	r := &Result{Scenario: cfg.Scenario, Server: cfg.Server, Config: cfg}
	if cfg.ServerPID <= 0 {
		return nil, errors.New("load: idle needs the server's pid (memory per session)")
	}
	m := startMeter(ctx, cfg, r)
	before, err := procRSS(cfg.ServerPID)
	if err != nil {
		return nil, err
	}
	var e errs
	var lat latencies
	var mu sync.Mutex
	conns := make([]*conn, 0, cfg.Users)
	parallel(ctx, cfg.Users, cfg.Concurrency, func(i int) {
		t0 := time.Now()
		c, err := login(ctx, cfg, cfg.user(i))
		if err != nil {
			e.add(err)
			return
		}
		lat.add(time.Since(t0))
		mu.Lock()
		conns = append(conns, c)
		r.Ops++
		mu.Unlock()
		// Drain what the server sends (presence, pings) so that its
		// writes never block; answer pings as a client must.
		go idleReader(c)
	})
	m.stop(ctx, r) // includes Settle: the server's memory settles
	after, err := procRSS(cfg.ServerPID)
	if err == nil {
		r.RSSBeforeKiB, r.RSSAfterKiB = before>>10, after>>10
		if r.Ops > 0 {
			r.KiBPerSession = float64(after-before) / 1024 / float64(r.Ops)
		}
	}
	for _, c := range conns {
		c.close()
	}
	lat.fill(r)
	e.fill(r)
	return r, nil
}

func idleReader(c *conn) {
	for {
		el, err := c.next()
		if err != nil {
			return
		}
		if el.local == "iq" && el.attr("type") == "get" && el.child("urn:xmpp:ping", "ping") != nil {
			c.send("<iq type='result' id='" + xmlEscape(el.attr("id")) + "' to='" + xmlEscape(el.attr("from")) + "'/>")
		}
	}
}

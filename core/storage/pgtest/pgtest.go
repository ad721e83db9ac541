// Package pgtest gives tests a real PostgreSQL server without Docker: one
// throwaway cluster per test binary, started on first use, and one fresh,
// empty database per test.
//
// Use it from a package's tests:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		dsn := pgtest.DSN(t) // a new database, dropped when t ends
//		...
//	}
//
// Where the server comes from:
//
//   - If KONTOR_TEST_PG_DSN is set, that server is used: DSN creates and drops
//     databases on it (the role needs CREATEDB). Nothing is started.
//   - Otherwise initdb, pg_ctl and postgres are taken from the newest
//     /usr/lib/postgresql/*/bin (Debian's layout) or from PATH, and a cluster
//     is created in a temporary directory: trust authentication on 127.0.0.1
//     only, a free port, its socket in the same directory. PostgreSQL refuses
//     to run as root, so when the tests run as root the directory is handed to
//     the postgres user and initdb and pg_ctl run through `runuser -u postgres`.
//   - If PostgreSQL is not installed and the tests run as root, it is installed
//     with apt-get (serialised between test binaries by a lock on
//     /tmp/kontor-apt.lock). Otherwise the tests that need it are skipped, or,
//     with CI=true, fail: CI must not silently skip the PostgreSQL backend.
//
// The cluster is stopped and its directory removed by Main after the tests
// have run. So that nothing is left behind when a test binary panics, times
// out or is killed (even with SIGKILL), a small reaper process (sh) is started
// beside the cluster: it waits for the test binary to exit (end of file on a
// pipe only the test binary holds) and then stops the cluster with
// `pg_ctl -m immediate stop` and removes the directory. Main's normal
// shutdown is the same path: it closes the pipe and waits for the reaper.
//
// Each database is created from template0 (STRATEGY FILE_COPY on PostgreSQL
// 15 and later) and dropped WITH (FORCE), which needs PostgreSQL 13 or later.
//
// It uses pgx (already the PostgreSQL backend's driver) to create and drop the
// databases.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDSN names the environment variable that points the tests at an existing
// server instead of starting one.
const EnvDSN = "KONTOR_TEST_PG_DSN"

// aptLock serialises apt-get between concurrently running test binaries.
const aptLock = "/tmp/kontor-apt.lock"

// server is the PostgreSQL server of this test binary.
type server struct {
	adminDSN string // a database where CREATE DATABASE can run
	dataDir  string // "" for an external server
	baseDir  string
	version  int // server_version_num, e.g. 150004

	reaper     *exec.Cmd
	reaperPipe *os.File // write end; the reaper acts when it closes

	// pgctl runs pg_ctl (as the postgres user when root) with the data
	// directory; port is the cluster's. Set for a cluster started here.
	pgctl func(ctx context.Context, args ...string) error
	port  int
}

// One server per test binary: a test binary is one process, and Main is the
// only place that can stop what DSN started.
var (
	setupOnce sync.Once
	mu        sync.Mutex // guards srv, setupErr, missing
	srv       *server
	setupErr  error
	missing   bool // PostgreSQL is not installed and could not be
)

// Main runs the tests and then stops the server, if one was started. Call it
// from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	stop()
	os.Exit(code)
}

// DataDir returns the data directory of the running test cluster, "" if none
// is running or an external server (KONTOR_TEST_PG_DSN) is in use.
func DataDir() string {
	mu.Lock()
	defer mu.Unlock()
	if srv == nil {
		return ""
	}
	return srv.dataDir
}

// DSN returns a connection string for a new, empty database created for this
// test (or benchmark) and dropped when it ends. The first call starts the
// server. If PostgreSQL is unavailable the test is skipped, or fails when
// CI=true.
func DSN(t testing.TB) string {
	t.Helper()
	setupOnce.Do(setup)
	mu.Lock()
	s, err, miss := srv, setupErr, missing
	mu.Unlock()
	if err != nil {
		if miss && os.Getenv("CI") != "true" {
			t.Skipf("pgtest: skipping, PostgreSQL is not available: %v. Install it (apt-get install postgresql) "+
				"or set %s to a server where this user may create databases.", err, EnvDSN)
		}
		t.Fatalf("pgtest: %v", err)
	}

	return s.createDB(t)
}

// createDB creates a database for t on s, dropped when t ends.
func (s *server) createDB(t testing.TB) string {
	t.Helper()
	name := dbName(t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	create := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize() + " TEMPLATE template0 ENCODING 'UTF8'"
	if s.version >= 150000 {
		// Copying files is faster than WAL-logging them (PostgreSQL 15's
		// default) when there is nothing to copy but template0.
		create += " STRATEGY FILE_COPY"
	}
	if err := s.admin(ctx, create); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		// FORCE ends connections a test forgot to close.
		if err := s.admin(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database: %v", err)
		}
	})
	dsn, err := withDatabase(s.adminDSN, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return dsn
}

// admin runs one statement on the server's admin database.
func (s *server) admin(ctx context.Context, stmt string) error {
	conn, err := pgx.Connect(ctx, s.adminDSN)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, stmt)
	return err
}

// connect checks that the server answers and learns its version.
func (s *server) connect(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, s.adminDSN)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var v string
	if err := conn.QueryRow(ctx, "SHOW server_version_num").Scan(&v); err != nil {
		return err
	}
	s.version, _ = strconv.Atoi(v)
	return nil
}

// dbName makes a database name from a test name: recognisable, unique, and a
// valid identifier of at most 63 bytes.
func dbName(testName string) string {
	var b strings.Builder
	b.WriteString("kt_")
	for _, r := range strings.ToLower(testName) {
		if b.Len() >= 40 {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	var rnd [5]byte
	_, _ = rand.Read(rnd[:])
	b.WriteByte('_')
	b.WriteString(hex.EncodeToString(rnd[:]))
	return b.String()
}

// withDatabase returns dsn (a URL or keyword/value string) with its database
// replaced by name.
func withDatabase(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("parse %s: %w", EnvDSN, err)
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	// In keyword/value form a later keyword overrides an earlier one.
	return strings.TrimSpace(dsn + " dbname=" + name), nil
}

// setup finds or starts the server; it runs once per test binary.
func setup() {
	s, miss, err := start()
	mu.Lock()
	defer mu.Unlock()
	srv, missing, setupErr = s, miss, err
}

func start() (s *server, missing bool, err error) {
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s := &server{adminDSN: dsn}
		if err := s.connect(ctx); err != nil {
			return nil, false, fmt.Errorf("%s: %w", EnvDSN, err)
		}
		return s, false, nil
	}

	bin, err := findBinaries()
	if err != nil {
		if os.Geteuid() != 0 {
			return nil, true, fmt.Errorf("%w (not root, so not installing it)", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		if ierr := install(ctx); ierr != nil {
			return nil, true, fmt.Errorf("%w, and installing it failed: %w", err, ierr)
		}
		if bin, err = findBinaries(); err != nil {
			return nil, true, fmt.Errorf("installed postgresql, but still: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err = startCluster(ctx, bin)
	return s, false, err
}

// binaries are the PostgreSQL programs pgtest runs.
type binaries struct{ initdb, pgctl, postgres string }

// findBinaries looks in the newest /usr/lib/postgresql/*/bin, then in PATH.
func findBinaries() (binaries, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { // newest first: "16" > "15" > "9.6"
		return versionLess(filepath.Base(filepath.Dir(dirs[j])), filepath.Base(filepath.Dir(dirs[i])))
	})
	for _, d := range dirs {
		b := binaries{filepath.Join(d, "initdb"), filepath.Join(d, "pg_ctl"), filepath.Join(d, "postgres")}
		if isExecutable(b.initdb) && isExecutable(b.pgctl) && isExecutable(b.postgres) {
			return b, nil
		}
	}
	var (
		b   binaries
		err error
	)
	if b.initdb, err = exec.LookPath("initdb"); err == nil {
		if b.pgctl, err = exec.LookPath("pg_ctl"); err == nil {
			if b.postgres, err = exec.LookPath("postgres"); err == nil {
				return b, nil
			}
		}
	}
	return binaries{}, errors.New("initdb, pg_ctl and postgres not found in /usr/lib/postgresql/*/bin or PATH")
}

func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, _ := strconv.Atoi(as[i])
		y, _ := strconv.Atoi(bs[i])
		if x != y {
			return x < y
		}
	}
	return len(as) < len(bs)
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// install installs Debian's postgresql package. Only one test binary at a
// time runs apt-get; the others wait for the lock and then find it installed.
func install(ctx context.Context) error {
	f, err := os.OpenFile(aptLock, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer f.Close() // releases the lock
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", aptLock, err)
	}
	if _, err := findBinaries(); err == nil {
		return nil // another test binary installed it while we waited
	}
	apt := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), err, tail(out, 2000))
		}
		return nil
	}
	// Wait for dpkg's own lock rather than fail if something else runs apt.
	installArgs := []string{"-o", "DPkg::Lock::Timeout=300", "install", "-y", "postgresql"}
	if err := apt(installArgs...); err != nil {
		if uerr := apt("-o", "DPkg::Lock::Timeout=300", "update"); uerr != nil {
			return errors.Join(err, uerr)
		}
		return apt(installArgs...)
	}
	return nil
}

// startCluster creates and starts a throwaway cluster.
func startCluster(ctx context.Context, bin binaries) (s *server, err error) {
	base, err := os.MkdirTemp("", "kontor-pgtest-")
	if err != nil {
		return nil, err
	}
	s = &server{baseDir: base, dataDir: filepath.Join(base, "data")}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()

	// As root, everything of PostgreSQL's runs as the postgres user.
	var (
		prefix   []string // command prefix: runuser, when root
		uid, gid = -1, -1
	)
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return s, fmt.Errorf("running as root, and PostgreSQL must not: %w", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		if err := os.Chown(base, uid, gid); err != nil {
			return s, err
		}
		runuser, err := exec.LookPath("runuser")
		if err != nil {
			return s, fmt.Errorf("running as root: %w", err)
		}
		prefix = []string{runuser, "-u", "postgres", "--"}
	}
	run := func(name string, args ...string) error {
		argv := append(append(append([]string{}, prefix...), name), args...)
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Dir = base // initdb fails if it cannot read its working directory
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w\n%s", filepath.Base(name), err, tail(out, 2000))
		}
		return nil
	}

	// The reaper first, so that even a cluster that is still starting when
	// the test binary dies is stopped.
	if err := s.startReaper(append(append([]string{}, prefix...),
		bin.pgctl, "-D", s.dataDir, "-m", "immediate", "-w", "-t", "30", "stop")); err != nil {
		return s, fmt.Errorf("start reaper: %w", err)
	}

	if err := run(bin.initdb, "-D", s.dataDir, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--no-locale", "--no-sync"); err != nil {
		return s, err
	}
	// Only 127.0.0.1, without a password; no socket or remote logins.
	if err := os.WriteFile(filepath.Join(s.dataDir, "pg_hba.conf"),
		[]byte("host all all 127.0.0.1/32 trust\n"), 0o600); err != nil {
		return s, err
	}
	// A test server: durability is worth nothing here, speed is. fsync,
	// synchronous_commit and full_page_writes off make initdb's cluster and
	// every CREATE DATABASE fast; a crash may corrupt it, and it is thrown
	// away anyway. Never copy these settings to a real server.
	conf := fmt.Sprintf(`
# pgtest
listen_addresses = '127.0.0.1'
unix_socket_directories = '%s'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 500
shared_buffers = 32MB
log_min_messages = warning
`, base)
	if err := appendFile(filepath.Join(s.dataDir, "postgresql.conf"), conf); err != nil {
		return s, err
	}
	if uid >= 0 {
		if err := os.Chown(filepath.Join(s.dataDir, "pg_hba.conf"), uid, gid); err != nil {
			return s, err
		}
	}

	// Pick a free port; another process may take it before the server does,
	// so retry with another one when binding fails.
	logFile := filepath.Join(base, "postgres.log")
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return s, err
		}
		err = run(bin.pgctl, "-D", s.dataDir, "-l", logFile, "-w", "-t", "60",
			"-o", "-p "+strconv.Itoa(port), "start")
		if err == nil {
			s.adminDSN = fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", port)
			s.port = port
			s.pgctl = func(ctx context.Context, args ...string) error {
				argv := append(append(append([]string{}, prefix...), bin.pgctl, "-D", s.dataDir, "-l", logFile), args...)
				cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
				cmd.Dir = base
				out, err := cmd.CombinedOutput()
				if err != nil {
					return fmt.Errorf("pg_ctl %s: %w\n%s", strings.Join(args, " "), err, tail(out, 2000))
				}
				return nil
			}
			break
		}
		log, _ := os.ReadFile(logFile)
		if attempt < 5 && strings.Contains(string(log), "could not bind") {
			continue
		}
		return s, fmt.Errorf("%w\npostgres.log:\n%s", err, tail(log, 2000))
	}
	if err := s.connect(ctx); err != nil {
		return s, fmt.Errorf("connect to test cluster: %w", err)
	}
	return s, nil
}

// startReaper starts `sh` waiting for end of file on its stdin, a pipe whose
// only write end this process holds (close-on-exec, so no other child
// inherits it). When this process exits, however it exits, the reaper runs
// stopCmd and removes the base directory. It has its own process group, so a
// Ctrl-C at the terminal does not kill it before it has cleaned up.
func (s *server) startReaper(stopCmd []string) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	const script = `cat >/dev/null; base=$1; shift; "$@" >/dev/null 2>&1; rm -rf -- "$base"`
	cmd := exec.Command("/bin/sh", append([]string{"-c", script, "kontor-pgtest-reaper", s.baseDir}, stopCmd...)...)
	cmd.Stdin = r
	// Stdout and Stderr stay nil (/dev/null): holding the test binary's
	// output would keep `go test` waiting after the binary exits.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return err
	}
	r.Close()
	s.reaper, s.reaperPipe = cmd, w
	return nil
}

// stop stops the cluster and removes its directory, through the reaper.
func (s *server) stop() {
	if s.reaper == nil {
		if s.baseDir != "" {
			_ = os.RemoveAll(s.baseDir)
		}
		return
	}
	s.reaperPipe.Close()
	done := make(chan error, 1)
	go func() { done <- s.reaper.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		fmt.Fprintf(os.Stderr, "pgtest: the test cluster in %s did not stop within 60 s\n", s.baseDir)
	}
	s.reaper = nil
}

// stop stops this test binary's server, if it started one.
func stop() {
	mu.Lock()
	defer mu.Unlock()
	if srv != nil {
		srv.stop()
		srv = nil
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// tail returns the last n bytes of b, for error messages.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

// Cluster is a PostgreSQL cluster of its own for one test, which the test
// may stop and start again on the same port (database faults: a restart,
// an outage). It is stopped and removed when the test ends, and, like the
// shared cluster, by its reaper if the test binary dies. An external server
// (KONTOR_TEST_PG_DSN) cannot be stopped, so with it NewCluster skips (or
// fails with CI=true).
type Cluster struct{ s *server }

// NewCluster starts a cluster for t.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	if os.Getenv(EnvDSN) != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("pgtest: a cluster to stop and start is needed, and %s points at an external server", EnvDSN)
		}
		t.Skipf("pgtest: a cluster to stop and start is needed, and %s points at an external server", EnvDSN)
	}
	bin, err := findBinaries()
	if err != nil {
		// DSN installs PostgreSQL (or skips) as it does for every test.
		DSN(t)
		if bin, err = findBinaries(); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := startCluster(ctx, bin)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(s.stop)
	// A fault test counts on committed transactions surviving an
	// immediate stop: unlike the shared cluster, this one is durable.
	for _, stmt := range []string{"ALTER SYSTEM SET fsync = on", "ALTER SYSTEM SET synchronous_commit = on",
		"ALTER SYSTEM SET full_page_writes = on", "SELECT pg_reload_conf()"} {
		if err := s.admin(ctx, stmt); err != nil {
			t.Fatalf("pgtest: %s: %v", stmt, err)
		}
	}
	return &Cluster{s: s}
}

// DSN creates a new, empty database on the cluster for t.
func (c *Cluster) DSN(t testing.TB) string {
	t.Helper()
	return c.s.createDB(t)
}

// Stop stops the server at once (pg_ctl -m immediate: connections break
// as in a crash or a lost network).
func (c *Cluster) Stop(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.s.pgctl(ctx, "-m", "immediate", "-w", "-t", "30", "stop"); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// Start starts the stopped server again on the same port.
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.s.pgctl(ctx, "-w", "-t", "60", "-o", "-p "+strconv.Itoa(c.s.port), "start"); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

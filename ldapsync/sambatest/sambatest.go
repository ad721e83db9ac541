// Package sambatest provisions a real Active Directory domain controller
// for tests: Samba's AD DC, provisioned with samba-tool in a temporary
// directory (--use-rfc2307), serving only LDAP on a loopback address of its
// own (127.0.0.2, or the next free one: `interfaces` and `bind interfaces
// only`, so the machine's standard ports on 127.0.0.1 stay free), with TLS
// from a test CA whose server certificate carries subject alternative names
// (Samba refuses simple binds without TLS, Go refuses Common-Name-only
// certificates).
//
// Provisioning takes 10 to 20 seconds, so one domain controller serves the
// whole test binary: Start provisions it on first use; tests share it and
// keep to users and groups of their own. It is stopped, and its directory
// removed, when the test binary exits however it exits: a reaper process
// (sh) kills samba's process group when a pipe only the test binary holds
// reaches end of file, as core/storage/pgtest does for PostgreSQL.
//
// Where Samba comes from: Debian's samba packages. If they are missing and
// the tests run as root, they are installed with apt-get (under a lock on
// /tmp/kontor-apt.lock). Otherwise the test is skipped, or fails when
// CI=true.
package sambatest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"kontor.im/kontor/ldapsync/slapdtest"
)

// The domain every DC has.
const (
	Realm         = "KONTOR.TEST"
	Domain        = "KONTOR"
	BaseDN        = "DC=kontor,DC=test"
	HostName      = "kontordc"
	AdminDN       = "CN=Administrator,CN=Users," + BaseDN
	AdminPassword = "Admin-Passw0rd!"
)

// DC is a running Samba AD DC.
type DC struct {
	Addr     string // the loopback address it listens on
	LDAPSURL string // ldaps://ADDR/
	URL      string // ldap://ADDR/ (StartTLS)
	CAFile   string
	Dir      string
	conf     string // smb.conf
	roots    *x509.CertPool

	reaper *exec.Cmd
	pipe   *os.File
}

var (
	once    sync.Once
	shared  *DC
	setup   error
	missing bool
)

const aptLock = "/tmp/kontor-apt.lock"

// Packages are the Debian packages an AD DC needs.
var Packages = []string{"samba", "samba-ad-dc", "samba-ad-provision", "samba-dsdb-modules", "winbind", "krb5-user", "smbclient"}

// Start returns the test binary's domain controller, provisioning it on
// first use.
func Start(t testing.TB) *DC {
	t.Helper()
	once.Do(func() { shared, missing, setup = start(t) })
	if setup != nil {
		if missing && os.Getenv("CI") != "true" && os.Geteuid() != 0 {
			t.Skipf("sambatest: skipping, Samba is not available: %v (apt-get install %s)", setup, strings.Join(Packages, " "))
		}
		t.Fatalf("sambatest: %v", setup)
	}
	return shared
}

func start(t testing.TB) (*DC, bool, error) {
	if _, err := findTools(); err != nil {
		if os.Geteuid() != 0 {
			return nil, true, err
		}
		t.Logf("sambatest: installing %s with apt-get", strings.Join(Packages, " "))
		if ierr := aptInstall(Packages...); ierr != nil {
			return nil, true, fmt.Errorf("%w, and installing it failed: %w", err, ierr)
		}
		if _, err := findTools(); err != nil {
			return nil, true, fmt.Errorf("installed samba, but still: %w", err)
		}
	}
	dir, err := os.MkdirTemp("", "kontor-samba-")
	if err != nil {
		return nil, false, err
	}
	d := &DC{Dir: dir}
	if err := d.startReaper(); err != nil {
		os.RemoveAll(dir)
		return nil, false, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := d.provision(ctx); err != nil {
		d.stop()
		return nil, false, err
	}
	if err := d.run(ctx); err != nil {
		d.stop()
		return nil, false, err
	}
	return d, false, nil
}

type tools struct{ samba, sambaTool string }

func findTools() (tools, error) {
	var tl tools
	var err error
	if tl.samba, err = exec.LookPath("samba"); err != nil {
		if _, serr := os.Stat("/usr/sbin/samba"); serr != nil {
			return tl, errors.New("samba not found")
		}
		tl.samba = "/usr/sbin/samba"
	}
	if tl.sambaTool, err = exec.LookPath("samba-tool"); err != nil {
		return tl, errors.New("samba-tool not found")
	}
	// The AD DC's database modules (samba-dsdb-modules) must be there.
	if m, _ := filepath.Glob("/usr/lib/*/samba/ldb/samba_dsdb.so"); len(m) == 0 {
		return tl, errors.New("samba's AD database modules (samba-dsdb-modules) are not installed")
	}
	return tl, nil
}

func aptInstall(pkgs ...string) error {
	f, err := os.OpenFile(aptLock, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", aptLock, err)
	}
	if _, err := findTools(); err == nil {
		return nil // installed by another test binary meanwhile
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	apt := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "apt-get", append([]string{"-o", "DPkg::Lock::Timeout=300"}, args...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			if len(out) > 2000 {
				out = out[len(out)-2000:]
			}
			return fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	args := append([]string{"install", "-y"}, pkgs...)
	if err := apt(args...); err != nil {
		if uerr := apt("update"); uerr != nil {
			return errors.Join(err, uerr)
		}
		return apt(args...)
	}
	return nil
}

// freeAddr finds a loopback address whose LDAP ports nobody uses and
// claims it for this process: an exclusive lock on a file named after it,
// held (the file left open) until the process exits, so that two test
// binaries never pick the same one.
func freeAddr() (string, error) {
	for i := 2; i < 50; i++ {
		addr := fmt.Sprintf("127.0.0.%d", i)
		f, err := os.OpenFile("/tmp/kontor-samba-"+addr+".lock", os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return "", err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue // another test binary's DC
		}
		ok := true
		for _, port := range []string{"389", "636"} {
			l, err := net.Listen("tcp", net.JoinHostPort(addr, port))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			addrLocks = append(addrLocks, f) // held until exit
			return addr, nil
		}
		f.Close()
	}
	return "", errors.New("no loopback address in 127.0.0.2-49 has ports 389 and 636 free")
}

// addrLocks keeps the claimed addresses' lock files open.
var addrLocks []*os.File

func (d *DC) path(p ...string) string { return filepath.Join(append([]string{d.Dir}, p...)...) }

// provision writes the test CA and runs samba-tool domain provision.
func (d *DC) provision(ctx context.Context) error {
	var err error
	if d.Addr, err = freeAddr(); err != nil {
		return err
	}
	d.LDAPSURL, d.URL = "ldaps://"+d.Addr+"/", "ldap://"+d.Addr+"/"
	caPEM, certPEM, keyPEM, err := slapdtest.NewCA("sambatest",
		[]string{HostName + "." + strings.ToLower(Realm), HostName, "localhost"}, []net.IP{net.ParseIP(d.Addr)})
	if err != nil {
		return err
	}
	tlsDir := d.path("tls")
	if err := os.MkdirAll(tlsDir, 0o700); err != nil {
		return err
	}
	d.CAFile = filepath.Join(tlsDir, "ca.pem")
	for name, b := range map[string][]byte{"ca.pem": caPEM, "cert.pem": certPEM, "key.pem": keyPEM} {
		if err := os.WriteFile(filepath.Join(tlsDir, name), b, 0o600); err != nil {
			return err
		}
	}
	d.roots = x509.NewCertPool()
	d.roots.AppendCertsFromPEM(caPEM)
	tl, err := findTools()
	if err != nil {
		return err
	}
	opts := []string{
		"interfaces = " + d.Addr + "/8",
		"bind interfaces only = yes",
		// Only LDAP: no DNS, Kerberos, SMB or RPC ports taken on the
		// machine, and a faster start.
		"server services = ldap",
		"tls enabled = yes",
		"tls keyfile = " + filepath.Join(tlsDir, "key.pem"),
		"tls certfile = " + filepath.Join(tlsDir, "cert.pem"),
		"tls cafile = " + filepath.Join(tlsDir, "ca.pem"),
		"log level = 1",
		// Not the system's /run/samba: a pid file there would stop the
		// next test binary's samba.
		"pid directory = " + d.path("run"),
	}
	args := []string{"domain", "provision", "--realm=" + Realm, "--domain=" + Domain, "--server-role=dc",
		"--dns-backend=SAMBA_INTERNAL", "--use-rfc2307", "--targetdir=" + d.Dir, "--adminpass=" + AdminPassword,
		"--host-name=" + HostName, "--host-ip=" + d.Addr}
	for _, o := range opts {
		args = append(args, "--option="+o)
	}
	cmd := exec.CommandContext(ctx, tl.sambaTool, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("samba-tool domain provision: %w\n%s", err, tail(out))
	}
	d.conf = d.path("etc", "smb.conf")
	return nil
}

// run starts samba in the foreground, as a child of the reaper (which
// reaps it: a child of the test binary would be left a zombie when the
// binary exits), and waits until LDAPS answers.
func (d *DC) run(ctx context.Context) error {
	tl, err := findTools()
	if err != nil {
		return err
	}
	// The reaper reads one command line: the samba to start.
	if _, err := fmt.Fprintf(d.pipe, "%s -i -s %s\n", tl.samba, d.conf); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("samba did not answer on %s: %w\n%s", d.LDAPSURL, ctx.Err(), d.Log())
		case <-time.After(200 * time.Millisecond):
		}
		if log := d.Log(); strings.Contains(log, "samba_terminate") {
			return fmt.Errorf("samba stopped:\n%s", log)
		}
		conn, err := ldap.DialURL(d.LDAPSURL, ldap.DialWithTLSConfig(d.TLSConfig()))
		if err != nil {
			continue
		}
		err = conn.Bind(AdminDN, AdminPassword)
		conn.Close()
		if err == nil {
			return nil
		}
	}
}

// Log returns what samba wrote.
func (d *DC) Log() string {
	b, _ := os.ReadFile(d.path("samba.log"))
	return tail(b)
}

// stop ends samba and removes the directory, through the reaper (only on
// a failed start: otherwise the test binary's exit does it).
func (d *DC) stop() {
	if d.pipe != nil {
		d.pipe.Close()
		_ = d.reaper.Wait()
	}
}

// startReaper starts sh with a pipe only this process holds as its input.
// It reads the command that starts samba, starts it in a process group of
// its own (setsid), and at end of file (this process exited, however) kills
// that group, waits for samba and removes the directory.
func (d *DC) startReaper() error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	// dash's kill takes a negative pid for a group, but no "--".
	const script = `dir=$1; pid=; ` +
		`if read -r line; then setsid $line >"$dir/samba.log" 2>&1 </dev/null & pid=$!; fi; ` +
		`cat >/dev/null; [ -n "$pid" ] && kill -9 "-$pid" 2>/dev/null; wait; rm -rf -- "$dir"`
	cmd := exec.Command("/bin/sh", "-c", script, "kontor-sambatest-reaper", d.Dir)
	cmd.Stdin = r
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return err
	}
	r.Close()
	d.reaper, d.pipe = cmd, w
	return nil
}

// TLSConfig trusts the test CA.
func (d *DC) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: d.roots, ServerName: d.Addr, MinVersion: tls.VersionTLS12}
}

// Tool runs samba-tool on the DC's database and returns its output.
func (d *DC) Tool(t testing.TB, args ...string) string {
	t.Helper()
	tl, err := findTools()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, tl.sambaTool, append(args, "-s", d.conf)...).CombinedOutput()
	if err != nil {
		t.Fatalf("samba-tool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Admin returns an LDAPS connection bound as Administrator, closed when t
// ends.
func (d *DC) Admin(t testing.TB) *ldap.Conn {
	t.Helper()
	conn, err := ldap.DialURL(d.LDAPSURL, ldap.DialWithTLSConfig(d.TLSConfig()))
	if err != nil {
		t.Fatalf("sambatest: dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.Bind(AdminDN, AdminPassword); err != nil {
		t.Fatalf("sambatest: bind as Administrator: %v", err)
	}
	return conn
}

func tail(b []byte) string {
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Package slapdtest starts a real OpenLDAP server (slapd) for tests: one per
// call, in a temporary directory, on free loopback ports, with a generated
// cn=config (mdb backend; memberof, refint, syncprov and ppolicy overlays),
// TLS from a test CA (StartTLS on ldap://, and ldaps://), a read-only
// service account whose searches are limited to 500 entries unless paged,
// and a default password policy that locks an account after five failed
// binds (so tests can see whether anything locks one).
//
// Where slapd comes from: Debian's slapd package. If it is missing and the
// tests run as root, it is installed with apt-get (one test binary at a
// time, under a lock on /tmp/kontor-apt.lock). Otherwise the test is
// skipped, or fails when CI=true: CI must not skip the directory tests.
//
// slapd runs in the foreground as a child of the test binary; a small
// reaper process (sh) kills it and removes its directory when the test
// binary exits however it exits, even by SIGKILL, as core/storage/pgtest
// does for PostgreSQL.
package slapdtest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Names every server has.
const (
	BaseDN          = "dc=kontor,dc=test"
	AdminDN         = "cn=admin," + BaseDN // the rootdn: no limits, no ACLs
	AdminPassword   = "admin-secret"
	ServiceDN       = "cn=kontor,ou=Services," + BaseDN
	ServicePassword = "service-secret"
	PolicyDN        = "cn=default,ou=Policies," + BaseDN
	// SizeLimit is what one unpaged search of the service account returns
	// at most; paged searches have no total limit (size.prtotal).
	SizeLimit = 500
	// MaxFailures is the default policy's pwdMaxFailure: after this many
	// failed binds in a row an account is locked.
	MaxFailures = 5
)

// Options configure a server.
type Options struct {
	// Seed is LDIF loaded with slapadd before the server starts (fast for
	// large trees), after the base entries (base, ou=Services with the
	// service account, ou=Policies with the default policy).
	Seed []byte
}

// Server is a running slapd.
type Server struct {
	URL      string // ldap://127.0.0.1:port/ (StartTLS)
	LDAPSURL string // ldaps://127.0.0.1:port/
	CAFile   string // the test CA, PEM
	Dir      string

	confDir string
	ports   [2]int
	roots   *x509.CertPool

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	log    bytes.Buffer // slapd's output
	reaper *exec.Cmd
	pipe   *os.File
}

const aptLock = "/tmp/kontor-apt.lock"

var (
	installOnce sync.Once
	installErr  error
)

// Start starts a server for t and stops it when t ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	slapd, err := findOrInstall(t)
	if err != nil {
		if os.Getenv("CI") != "true" && os.Geteuid() != 0 {
			t.Skipf("slapdtest: skipping, slapd is not available: %v (apt-get install slapd ldap-utils)", err)
		}
		t.Fatalf("slapdtest: %v", err)
	}
	dir, err := os.MkdirTemp("", "kontor-slapd-")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Dir: dir, confDir: filepath.Join(dir, "conf")}
	t.Cleanup(func() { s.stop() })
	if err := s.startReaper(); err != nil {
		t.Fatalf("slapdtest: reaper: %v", err)
	}
	if err := s.writeTLS(); err != nil {
		t.Fatalf("slapdtest: TLS: %v", err)
	}
	if err := s.configure(slapd, opts); err != nil {
		t.Fatalf("slapdtest: %v", err)
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		if s.ports[0], err = freePort(); err != nil {
			t.Fatal(err)
		}
		if s.ports[1], err = freePort(); err != nil {
			t.Fatal(err)
		}
		if lastErr = s.run(slapd); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("slapdtest: starting slapd: %v", lastErr)
	}
	return s
}

// findOrInstall returns the path of slapd, installing it if needed (root).
func findOrInstall(t testing.TB) (string, error) {
	find := func() (string, error) {
		for _, p := range []string{"/usr/sbin/slapd"} {
			if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
				if _, err := exec.LookPath("slapadd"); err == nil || fileExists("/usr/sbin/slapadd") {
					return p, nil
				}
			}
		}
		if p, err := exec.LookPath("slapd"); err == nil {
			return p, nil
		}
		return "", errors.New("slapd not found in /usr/sbin or PATH")
	}
	p, err := find()
	if err == nil {
		return p, nil
	}
	if os.Geteuid() != 0 {
		return "", err
	}
	installOnce.Do(func() {
		t.Logf("slapdtest: installing slapd and ldap-utils with apt-get")
		installErr = aptInstall("slapd", "ldap-utils")
	})
	if installErr != nil {
		return "", fmt.Errorf("%w, and installing it failed: %w", err, installErr)
	}
	return find()
}

// aptInstall installs Debian packages, one test binary at a time.
func aptInstall(pkgs ...string) error {
	f, err := os.OpenFile(aptLock, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", aptLock, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	apt := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "apt-get", append([]string{"-o", "DPkg::Lock::Timeout=300"}, args...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), err, tail(out, 2000))
		}
		return nil
	}
	args := append([]string{"install", "-y", "--no-install-recommends"}, pkgs...)
	if err := apt(args...); err != nil {
		if uerr := apt("update"); uerr != nil {
			return errors.Join(err, uerr)
		}
		return apt(args...)
	}
	return nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func (s *Server) path(name string) string { return filepath.Join(s.Dir, name) }

// writeTLS writes a test CA and a server certificate for 127.0.0.1 and
// localhost (subject alternative names: Go ignores the Common Name).
func (s *Server) writeTLS() error {
	caPEM, certPEM, keyPEM, err := NewCA("slapdtest", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return err
	}
	s.CAFile = s.path("ca.pem")
	s.roots = x509.NewCertPool()
	s.roots.AppendCertsFromPEM(caPEM)
	for name, b := range map[string][]byte{"ca.pem": caPEM, "server.pem": certPEM, "server.key": keyPEM} {
		if err := os.WriteFile(s.path(name), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// NewCA makes a throwaway CA and a server certificate it signs, for the
// given names and addresses, all PEM. Other test helpers (sambatest) use
// it too.
func NewCA(name string, dnsNames []string, ips []net.IP) (caPEM, certPEM, keyPEM []byte, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: dnsNames[0]},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(48 * time.Hour),
		DNSNames: dnsNames, IPAddresses: ips,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// configure writes cn=config and the base entries with slapadd.
func (s *Server) configure(slapd string, opts Options) error {
	slapadd := filepath.Join(filepath.Dir(slapd), "slapadd")
	if !fileExists(slapadd) {
		var err error
		if slapadd, err = exec.LookPath("slapadd"); err != nil {
			return errors.New("slapadd not found")
		}
	}
	dbDir := s.path("db")
	for _, d := range []string{s.confDir, dbDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	conf := fmt.Sprintf(configLDIF, s.path("slapd.pid"), s.path("ca.pem"), s.path("server.pem"), s.path("server.key"),
		BaseDN, AdminDN, AdminPassword, dbDir, ServiceDN, SizeLimit, SizeLimit, ServiceDN, PolicyDN)
	if err := os.WriteFile(s.path("config.ldif"), []byte(conf), 0o600); err != nil {
		return err
	}
	if out, err := exec.Command(slapadd, "-n", "0", "-F", s.confDir, "-l", s.path("config.ldif")).CombinedOutput(); err != nil {
		return fmt.Errorf("slapadd cn=config: %w\n%s", err, out)
	}
	data := append([]byte(fmt.Sprintf(baseLDIF, ServicePassword, MaxFailures)), '\n')
	data = append(data, opts.Seed...)
	if err := os.WriteFile(s.path("data.ldif"), data, 0o600); err != nil {
		return err
	}
	// -q: no consistency checks, much faster for a large seed.
	// -w: write the contextCSN, as a running server with syncprov would.
	if out, err := exec.Command(slapadd, "-q", "-w", "-F", s.confDir, "-b", BaseDN, "-l", s.path("data.ldif")).CombinedOutput(); err != nil {
		return fmt.Errorf("slapadd data: %w\n%s", err, out)
	}
	return nil
}

// run starts slapd on s.ports and waits until it answers.
func (s *Server) run(slapd string) error {
	s.URL = fmt.Sprintf("ldap://127.0.0.1:%d/", s.ports[0])
	s.LDAPSURL = fmt.Sprintf("ldaps://127.0.0.1:%d/", s.ports[1])
	s.mu.Lock()
	s.log.Reset()
	cmd := exec.Command(slapd, "-h", s.URL+" "+s.LDAPSURL, "-F", s.confDir, "-d", "0")
	cmd.Stdout, cmd.Stderr = &lockedWriter{s}, &lockedWriter{s}
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		return err
	}
	s.cmd, s.exited = cmd, make(chan struct{})
	exited := s.exited
	s.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	// Tell the reaper which process to kill.
	if _, err := fmt.Fprintf(s.pipe, "%d\n", cmd.Process.Pid); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("slapd exited: %s", s.Log())
		default:
		}
		conn, err := ldap.DialURL(s.URL)
		if err == nil {
			_, err = conn.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
				"(objectClass=*)", []string{"namingContexts"}, nil))
			conn.Close()
			if err == nil {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("slapd did not answer within 10 s: %s", s.Log())
}

type lockedWriter struct{ s *Server }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if w.s.log.Len() < 1<<20 {
		w.s.log.Write(p)
	}
	return len(p), nil
}

// Log returns what slapd wrote.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// Stop stops slapd (SIGTERM, then SIGKILL); the directory stays, so
// Restart can start it again on the same ports.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
	if s.pipe != nil {
		_, _ = fmt.Fprintln(s.pipe, "-")
	}
}

// Restart starts a stopped server again on the same ports.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	slapd, err := findOrInstall(t)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.run(slapd); err != nil {
		t.Fatalf("slapdtest: restart: %v", err)
	}
}

// stop stops slapd for good and lets the reaper remove the directory.
func (s *Server) stop() {
	s.Stop()
	if s.pipe != nil {
		s.pipe.Close()
		done := make(chan struct{})
		go func() { _ = s.reaper.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
		}
		s.pipe = nil
	} else {
		_ = os.RemoveAll(s.Dir)
	}
}

// startReaper starts `sh` reading pids from a pipe only this process
// holds; at end of file (this process exited, however) it kills the last
// pid it read and removes the directory. Its own process group keeps a
// Ctrl-C from killing it before it has cleaned up.
func (s *Server) startReaper() error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	// "-" means no process is running (stopped normally): a pid that
	// exited must not be killed, it may belong to someone else by now.
	const script = `dir=$1; pid=; while read -r p; do pid=$p; done; ` +
		`[ -n "$pid" ] && [ "$pid" != "-" ] && kill -9 "$pid" 2>/dev/null; rm -rf -- "$dir"`
	cmd := exec.Command("/bin/sh", "-c", script, "kontor-slapdtest-reaper", s.Dir)
	cmd.Stdin = r
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return err
	}
	r.Close()
	s.reaper, s.pipe = cmd, w
	return nil
}

// TLSConfig trusts the test CA.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// Admin returns a connection bound as the rootdn over StartTLS, closed
// when t ends: for tests to change the directory.
func (s *Server) Admin(t testing.TB) *ldap.Conn {
	t.Helper()
	conn, err := ldap.DialURL(s.URL)
	if err != nil {
		t.Fatalf("slapdtest: dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.StartTLS(s.TLSConfig()); err != nil {
		t.Fatalf("slapdtest: StartTLS: %v", err)
	}
	if err := conn.Bind(AdminDN, AdminPassword); err != nil {
		t.Fatalf("slapdtest: bind as admin: %v", err)
	}
	return conn
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// Itoa is strconv.Itoa, for seed generators.
func Itoa(n int) string { return strconv.Itoa(n) }

// configLDIF is cn=config: modules, schema, the frontend, the config
// database (no access), and the mdb database with its overlays. The
// service account reads everything; users may bind (auth) and change their
// password; nobody else reads anything.
const configLDIF = `dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: %s
olcTLSCACertificateFile: %s
olcTLSCertificateFile: %s
olcTLSCertificateKeyFile: %s

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb
olcModuleLoad: memberof
olcModuleLoad: refint
olcModuleLoad: syncprov
olcModuleLoad: ppolicy

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file:///etc/ldap/schema/core.ldif
include: file:///etc/ldap/schema/cosine.ldif
include: file:///etc/ldap/schema/inetorgperson.ldif

dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by * none

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: %s
olcRootDN: %s
olcRootPW: %s
olcDbDirectory: %s
olcDbMaxSize: 4294967296
olcDbNoSync: TRUE
olcDbIndex: objectClass eq
olcDbIndex: entryUUID eq
olcDbIndex: entryCSN eq
olcDbIndex: uid eq
olcDbIndex: member eq
olcDbIndex: modifyTimestamp eq
olcLimits: dn.exact="%s" size.soft=%d size.hard=%d size.prtotal=unlimited
olcAccess: {0}to attrs=userPassword by self =xw by anonymous auth by * none
olcAccess: {1}to * by dn.exact="%s" read by self read by * none

dn: olcOverlay={0}memberof,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcMemberOf
olcOverlay: {0}memberof
olcMemberOfRefInt: TRUE
olcMemberOfGroupOC: groupOfNames
olcMemberOfMemberAD: member
olcMemberOfMemberOfAD: memberOf

dn: olcOverlay={1}refint,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcRefintConfig
olcOverlay: {1}refint
olcRefintAttribute: member

dn: olcOverlay={2}syncprov,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcSyncProvConfig
olcOverlay: {2}syncprov

dn: olcOverlay={3}ppolicy,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcPPolicyConfig
olcOverlay: {3}ppolicy
olcPPolicyDefault: %s
`

// baseLDIF are the entries every server has.
const baseLDIF = `dn: dc=kontor,dc=test
objectClass: dcObject
objectClass: organization
dc: kontor
o: Kontor Test

dn: ou=Services,dc=kontor,dc=test
objectClass: organizationalUnit
ou: Services

dn: cn=kontor,ou=Services,dc=kontor,dc=test
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: kontor
userPassword: %s

dn: ou=Policies,dc=kontor,dc=test
objectClass: organizationalUnit
ou: Policies

dn: cn=default,ou=Policies,dc=kontor,dc=test
objectClass: device
objectClass: pwdPolicy
cn: default
pwdAttribute: userPassword
pwdLockout: TRUE
pwdMaxFailure: %d
pwdLockoutDuration: 0
pwdFailureCountInterval: 0
`

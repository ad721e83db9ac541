package main

// Backup and restore with the real binary (README, "Backup and restore"):
// a backup taken while the server runs, an erasure after it, and the older
// backup restored into a fresh instance on another database, which then
// serves bob his whole archive (opened with the key) and knows nothing of
// alice.

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"kontor.im/kontor/core/storage/pgtest"
)

// kontorCLI runs the binary with the configuration of p and returns its
// standard output; the error carries standard error.
func (p *procServer) kontorCLI(args ...string) (string, error) {
	var out, errOut bytes.Buffer
	c := exec.Command(p.bin, append(args, "--config", p.cfgFile)...)
	c.Stdout, c.Stderr = &out, &errOut
	err := c.Run()
	if err != nil {
		err = fmt.Errorf("kontor %s: %w\n%s%s", strings.Join(args, " "), err, errOut.String(), out.String())
	}
	return out.String(), err
}

// sibling is a second instance with p's binary and key file (and so its
// erasure log), on the database dsn, a new data directory and new ports.
func (p *procServer) sibling(t *testing.T, dsn string) *procServer {
	t.Helper()
	q := &procServer{t: t, bin: p.bin, dir: t.TempDir(), dsn: dsn, logs: &syncBuffer{}, addrs: map[string]string{}}
	yaml, err := os.ReadFile(p.cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(yaml), fmt.Sprintf("%q", p.dir), fmt.Sprintf("%q", q.dir))
	s = strings.ReplaceAll(s, fmt.Sprintf("%q", p.dsn), fmt.Sprintf("%q", dsn))
	for name, a := range p.addrs {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		q.addrs[name] = l.Addr().String()
		l.Close()
		s = strings.ReplaceAll(s, fmt.Sprintf("%q", a), fmt.Sprintf("%q", q.addrs[name]))
	}
	q.cfgFile = filepath.Join(q.dir, "kontor.yaml")
	if err := os.WriteFile(q.cfgFile, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		q.kill()
		if t.Failed() {
			t.Logf("restored server output:\n%s", q.logs)
		}
	})
	return q
}

func TestE2EBackupRestore(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	p := newProcServer(t, "", "")
	p.start()
	const password = "backup-password"
	p.addUsers(t, password, "alice", "bob")

	// Two admins: the default access policy lets one erase with the
	// other's approval.
	tokens := map[string]string{}
	for i, name := range []string{"ada", "otto"} {
		args := []string{"operator", "add", name, "--role", "admin"}
		if i > 0 {
			args = append(args, "--operator", "ada", "--operator-token-file", tokens["ada"])
		}
		out, err := p.kontorCLI(args...)
		if err != nil {
			t.Fatal(err)
		}
		tokens[name] = filepath.Join(t.TempDir(), name+".token")
		if err := os.WriteFile(tokens[name], []byte(tokenFrom(t, out)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	as := func(op string, args ...string) []string {
		return append(args, "--operator", op, "--operator-token-file", tokens[op])
	}

	alice := p.ts.dial(t, "alice", password, withResource("laptop"))
	bob := dialRecipient(t, p.ts, "bob", password)
	want := map[string]int{}
	for i := range 20 {
		body := fmt.Sprintf("alice to bob %d", i)
		alice.chat(t, "bob@localhost", body)
		want[body] = 1
	}
	alice.barrier(t)
	deadline := time.Now().Add(20 * time.Second)
	for !sameCounts(bob.archive(t), want) {
		if time.Now().After(deadline) {
			t.Fatalf("bob's archive before the backup: %v, want %v", bob.archive(t), want)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The backup, while the server runs and clients are connected.
	file := filepath.Join(t.TempDir(), "kontor.kbak")
	if out, err := p.kontorCLI(as("ada", "backup", "--out", file)...); err != nil || !strings.Contains(out, "backup written") {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	// alice is erased after it (dual control: otto approves).
	_, err := p.kontorCLI(as("ada", "gdpr", "erase", "alice@localhost", "--case", "DSR-1", "--purpose", "Art. 17")...)
	m := regexp.MustCompile(`Request (r-[a-z0-9]+) is recorded`).FindStringSubmatch(fmt.Sprint(err))
	if m == nil {
		t.Fatalf("erase without approval: %v", err)
	}
	if _, err := p.kontorCLI(as("otto", "request", "approve", m[1])...); err != nil {
		t.Fatal(err)
	}
	if out, err := p.kontorCLI(as("ada", "gdpr", "erase", "alice@localhost", "--request", m[1])...); err != nil || !strings.Contains(out, "erased alice@localhost") {
		t.Fatalf("erase: %v\n%s", err, out)
	}
	alice.close()
	bob.s.close()
	if _, err := p.terminate(20 * time.Second); err != nil {
		t.Fatalf("kontor exited with %v", err)
	}

	// The older backup into a fresh instance on another database.
	q := p.sibling(t, pgtest.DSN(t))
	out, err := q.kontorCLI("restore", "--from", file)
	if err != nil || !strings.Contains(out, "erasures re-applied: 1") {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	q.start()
	bob2 := dialRecipient(t, q.ts, "bob", password)
	if got := bob2.archive(t); !sameCounts(got, want) {
		t.Errorf("bob's archive after the restore: %v, want %v", got, want)
	}
	if s, conn, err := q.ts.connect(t.Context(), "alice", password); err == nil {
		s.Close()
		conn.Close()
		t.Error("alice logged in after the restore")
	}
	out, err = q.kontorCLI("audit", "list", "--action", "gdpr.erase")
	if err != nil || !strings.Contains(out, "alice@localhost") {
		t.Errorf("the erasure certificate is not in the restored trail: %v\n%s", err, out)
	}
	if out, err := q.kontorCLI("audit", "verify"); err != nil || !strings.Contains(out, "audit trail intact") {
		t.Errorf("audit verify: %v\n%s", err, out)
	}
}

// sameCounts reports whether got has exactly the bodies of want, with
// their counts, ignoring the barriers' probes.
func sameCounts(got, want map[string]int) bool {
	n := 0
	for body, c := range got {
		if strings.HasPrefix(body, "barrier-") {
			continue
		}
		if want[body] != c {
			return false
		}
		n++
	}
	return n == len(want)
}

// Package testenv gives tests the programs from Debian's packages that they
// drive (TURN servers, browsers, XMPP clients): a test asks for a program
// by name and package, and gets its path.
//
// When the program is missing and the test runs as root, the package is
// installed with apt-get, serialised between concurrently running test
// binaries by a lock on /tmp/kontor-apt.lock (the lock core/storage/pgtest
// and ldapsync/slapdtest take too) and waiting for dpkg's own lock. When
// it cannot be installed, the test is skipped with a loud message, or,
// with CI=true, fails: CI must never skip silently.
package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// AptLock serialises apt-get between test binaries.
const AptLock = "/tmp/kontor-apt.lock"

// Program returns the path of program, installing the Debian package pkg
// when it is missing (see the package documentation).
func Program(t testing.TB, program, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(program); err == nil {
		return p
	}
	if os.Geteuid() == 0 {
		err := install(pkg, func() bool { _, err := exec.LookPath(program); return err == nil })
		if p, lerr := exec.LookPath(program); lerr == nil {
			return p
		}
		Missing(t, fmt.Sprintf("%s (Debian package %s) could not be installed: %v", program, pkg, err))
		return ""
	}
	Missing(t, fmt.Sprintf("%s is not installed and the tests do not run as root to install it: apt-get install -y %s", program, pkg))
	return ""
}

// Missing skips the test because something it needs is missing, or fails
// it under CI=true.
func Missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and %s", why)
	}
	t.Skipf("\n\n*** SKIPPED: %s\n*** (With CI=true this is a failure.)\n\n", why)
}

func install(pkg string, present func() bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	f, err := os.OpenFile(AptLock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer f.Close() // releases the lock
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", AptLock, err)
	}
	if present() {
		return nil // another test binary installed it while this one waited
	}
	apt := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "apt-get", append([]string{"-o", "DPkg::Lock::Timeout=300"}, args...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			s := string(out)
			if len(s) > 2000 {
				s = s[len(s)-2000:]
			}
			return fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), err, s)
		}
		return nil
	}
	if err := apt("install", "-y", "--no-install-recommends", pkg); err != nil {
		if uerr := apt("update"); uerr != nil {
			return errors.Join(err, uerr)
		}
		return apt("install", "-y", "--no-install-recommends", pkg)
	}
	return nil
}

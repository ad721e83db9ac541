package account_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"kontor.im/kontor/core/account"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/sasl"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/storage/sqlite"
)

func open(t *testing.T) storage.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestCreateAndAuthenticate(t *testing.T) {
	ctx := context.Background()
	st := open(t)
	alice := jid.MustParse("alice@example.com")
	if err := account.Create(ctx, st, alice, "short"); !errors.Is(err, account.ErrWeakPassword) {
		t.Fatalf("short password: %v", err)
	}
	if err := account.Create(ctx, st, jid.MustParse("example.com"), "long enough"); err == nil {
		t.Fatal("a domain was accepted as an account")
	}
	if err := account.Create(ctx, st, alice, "correct horse"); err != nil {
		t.Fatal(err)
	}
	if err := account.Create(ctx, st, alice, "correct horse"); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("duplicate: %v", err)
	}
	acc, err := st.Account(ctx, "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range acc.Credentials {
		if c.Iterations != account.Iterations || len(c.Salt) < 16 || string(c.StoredKey) == "correct horse" {
			t.Fatalf("credential %+v", c)
		}
	}
	auth := account.Authenticator{Store: st, Domain: "example.com"}
	tests := []struct {
		name, user, pass string
		want             error
	}{
		{"right password", "alice", "correct horse", nil},
		{"case-insensitive username", "Alice", "correct horse", nil},
		{"wrong password", "alice", "wrong horse", sasl.ErrBadPassword},
		{"unknown user", "bob", "correct horse", sasl.ErrUnknownUser},
		{"invalid username", "a@b", "correct horse", sasl.ErrUnknownUser},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := auth.VerifyPlain(ctx, tt.user, tt.pass); !errors.Is(err, tt.want) {
				t.Fatalf("VerifyPlain = %v, want %v", err, tt.want)
			}
		})
	}
	for _, h := range []sasl.Hash{sasl.SHA1, sasl.SHA256} {
		c, err := auth.Credential(ctx, "alice", h)
		if err != nil || c.Hash != h || !sasl.VerifyPlainWithCredential(c, "correct horse") {
			t.Fatalf("%s credential: %v", h, err)
		}
	}
	if err := account.SetPassword(ctx, st, alice, "battery staple"); err != nil {
		t.Fatal(err)
	}
	if err := auth.VerifyPlain(ctx, "alice", "correct horse"); !errors.Is(err, sasl.ErrBadPassword) {
		t.Fatalf("old password after change: %v", err)
	}
	if err := st.SetDisabled(ctx, "alice@example.com", true); err != nil {
		t.Fatal(err)
	}
	// A disabled account is reported only with the right password.
	if err := auth.VerifyPlain(ctx, "alice", "battery staple"); !errors.Is(err, sasl.ErrDisabled) {
		t.Fatalf("disabled, right password: %v", err)
	}
	if err := auth.VerifyPlain(ctx, "alice", "wrong"); !errors.Is(err, sasl.ErrBadPassword) {
		t.Fatalf("disabled, wrong password: %v", err)
	}
	if _, err := auth.Credential(ctx, "alice", sasl.SHA256); !errors.Is(err, sasl.ErrDisabled) {
		t.Fatalf("disabled credential: %v", err)
	}
}

type closer struct {
	mu     sync.Mutex
	closed []string
	how    map[string][2]time.Time // before, incarnation
}

func (c *closer) CloseAccount(bare jid.JID, before, incarnation time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = append(c.closed, bare.String())
	if c.how == nil {
		c.how = map[string][2]time.Time{}
	}
	c.how[bare.String()] = [2]time.Time{before, incarnation}
	return 1
}

// howOf returns how the sessions of bare were closed.
func (c *closer) howOf(bare string) (before, incarnation time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.how[bare]
	return h[0], h[1]
}

func (c *closer) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.closed...)
}

// TestWatch: accounts disabled or deleted after the watcher started, by
// another store instance as the CLI would, have their sessions closed;
// earlier changes and other kinds of change are left alone.
func TestWatch(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	path := filepath.Join(t.TempDir(), "k.db")
	server, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	for _, u := range []string{"old", "alice", "bob", "carol"} {
		if err := account.Create(ctx, server, jid.MustParse(u+"@example.com"), "long password"); err != nil {
			t.Fatal(err)
		}
	}
	if err := server.SetDisabled(ctx, "old@example.com", true); err != nil {
		t.Fatal(err)
	}
	c := &closer{}
	done := make(chan error, 1)
	go func() {
		done <- account.Watch(ctx, server, c, 20*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	time.Sleep(100 * time.Millisecond) // the watcher starts from the end of the log
	cli, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if err := cli.SetDisabled(ctx, "alice@example.com", true); err != nil {
		t.Fatal(err)
	}
	if err := cli.DeleteAccount(ctx, "bob@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := account.SetPassword(ctx, cli, jid.MustParse("carol@example.com"), "another password"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for len(c.list()) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	got := c.list()
	if len(got) != 2 || got[0] != "alice@example.com" || got[1] != "bob@example.com" {
		t.Fatalf("closed %v, want alice then bob", got)
	}
	for _, a := range got {
		if b, inc := c.howOf(a); b.IsZero() || !inc.IsZero() {
			t.Errorf("%s: closed sessions from before %v, of incarnations other than %v; want all (still disabled or gone)", a, b, inc)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Watch = %v", err)
	}
}

// gatedAccounts holds the watcher's reads of the change log until open is
// closed, so that a test can make several changes before the watcher sees
// the first; reading the account named failFor fails.
type gatedAccounts struct {
	storage.Accounts
	started chan struct{} // closed once the watcher has its starting point
	open    chan struct{}
	once    sync.Once
	failFor string
}

func (g *gatedAccounts) LastAccountChange(ctx context.Context) (int64, error) {
	seq, err := g.Accounts.LastAccountChange(ctx)
	g.once.Do(func() { close(g.started) })
	return seq, err
}

func (g *gatedAccounts) AccountChanges(ctx context.Context, after int64, limit int) ([]storage.AccountChange, error) {
	select {
	case <-g.open:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.Accounts.AccountChanges(ctx, after, limit)
}

func (g *gatedAccounts) Account(ctx context.Context, j string) (storage.Account, error) {
	if j == g.failFor {
		return storage.Account{}, errors.New("the database is away")
	}
	return g.Accounts.Account(ctx, j)
}

// TestWatchAccountRecreated: by the time the watcher reads that an account
// was deleted, the address may have been given to someone else (an erased
// person's), who may have logged in. Then only the sessions of the
// deleted account (another incarnation: its creation time) are closed,
// so that the new owner's stay. An account still disabled or gone, or
// disabled and enabled again, or one that cannot be read, loses every
// session that began to authenticate before the watcher read the change.
func TestWatchAccountRecreated(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	users := []string{"dave", "erin", "frank", "gina", "hank"}
	for _, u := range users {
		if err := account.Create(ctx, st, jid.MustParse(u+"@example.com"), "long password"); err != nil {
			t.Fatal(err)
		}
	}
	g := &gatedAccounts{Accounts: st, started: make(chan struct{}), open: make(chan struct{}), failFor: "hank@example.com"}
	c := &closer{}
	done := make(chan error, 1)
	go func() {
		done <- account.Watch(ctx, g, c, 10*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	<-g.started
	// dave and hank: deleted, and the address given to a new person.
	for _, u := range []string{"dave@example.com", "hank@example.com"} {
		if err := st.DeleteAccount(ctx, u); err != nil {
			t.Fatal(err)
		}
		if err := account.Create(ctx, st, jid.MustParse(u), "a new password"); err != nil {
			t.Fatal(err)
		}
	}
	dave, err := st.Account(ctx, "dave@example.com")
	if err != nil {
		t.Fatal(err)
	}
	// erin: disabled and enabled again; frank: disabled; gina: deleted.
	for _, step := range []func() error{
		func() error { return st.SetDisabled(ctx, "erin@example.com", true) },
		func() error { return st.SetDisabled(ctx, "erin@example.com", false) },
		func() error { return st.SetDisabled(ctx, "frank@example.com", true) },
		func() error { return st.DeleteAccount(ctx, "gina@example.com") },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	opened := time.Now()
	close(g.open)
	deadline := time.Now().Add(3 * time.Second)
	for len(c.list()) < 5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := c.list(); len(got) != 5 {
		t.Fatalf("closed %v, want the sessions of all five", got)
	}
	if b, inc := c.howOf("dave@example.com"); !b.IsZero() || !inc.Equal(dave.Created) || inc.IsZero() {
		t.Errorf("dave (created anew): closed sessions from before %v, of incarnations other than %v; want only those of incarnations other than %v",
			b, inc, dave.Created)
	}
	for _, u := range []string{"erin@example.com", "frank@example.com", "gina@example.com", "hank@example.com"} {
		if b, inc := c.howOf(u); b.Before(opened) || !inc.IsZero() {
			t.Errorf("%s: closed sessions from before %v, of incarnations other than %v; want all from before the watcher read the change", u, b, inc)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Watch = %v", err)
	}
}

// TestWatchPrunes: the watcher deletes changes older than ChangeLogKeep,
// and follows the log as before afterwards.
func TestWatchPrunes(t *testing.T) {
	keep, every := account.ChangeLogKeep, account.ChangeLogPruneInterval
	account.ChangeLogKeep, account.ChangeLogPruneInterval = 50*time.Millisecond, 20*time.Millisecond
	t.Cleanup(func() { account.ChangeLogKeep, account.ChangeLogPruneInterval = keep, every })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, u := range []string{"alice", "bob"} {
		if err := account.Create(ctx, st, jid.MustParse(u+"@example.com"), "long password"); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.DeleteAccount(ctx, "bob@example.com"); err != nil {
		t.Fatal(err)
	}
	c := &closer{}
	done := make(chan error, 1)
	go func() {
		done <- account.Watch(ctx, st, c, 10*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	deadline := time.Now().Add(3 * time.Second)
	for {
		left, err := st.AccountChanges(ctx, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the change log still holds %+v", left)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := st.SetDisabled(ctx, "alice@example.com", true); err != nil {
		t.Fatal(err)
	}
	for len(c.list()) < 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := c.list(); len(got) != 1 || got[0] != "alice@example.com" {
		t.Errorf("closed %v after the log was pruned, want alice", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestVerifyPlainSHA1Only: an account that has only a SCRAM-SHA-1
// credential (imported from another server) logs in with PLAIN too, and
// that login adds the SCRAM-SHA-256 credential (a wrong password adds
// nothing), after which SCRAM-SHA-256 works with the same password and the
// SCRAM-SHA-1 credential is unchanged.
func TestVerifyPlainSHA1Only(t *testing.T) {
	ctx := context.Background()
	st := open(t)
	c, err := sasl.NewCredential(sasl.SHA1, "old server password", 4096)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAccount(ctx, storage.Account{JID: "imp@example.com", Domain: "example.com", Created: time.Now(),
		Credentials: []storage.SCRAMCredential{{Hash: string(c.Hash), Salt: c.Salt, Iterations: c.Iterations, StoredKey: c.StoredKey, ServerKey: c.ServerKey}}}); err != nil {
		t.Fatal(err)
	}
	auth := account.Authenticator{Store: st, Domain: "example.com"}
	if _, err := auth.Credential(ctx, "imp", sasl.SHA256); !errors.Is(err, sasl.ErrNoSCRAM) {
		t.Fatalf("SCRAM-SHA-256 credential before any PLAIN login: %v, want ErrNoSCRAM", err)
	}
	if err := auth.VerifyPlain(ctx, "imp", "wrong"); !errors.Is(err, sasl.ErrBadPassword) {
		t.Errorf("wrong password: %v", err)
	}
	if _, err := auth.Credential(ctx, "imp", sasl.SHA256); !errors.Is(err, sasl.ErrNoSCRAM) {
		t.Fatalf("a wrong password added a SCRAM-SHA-256 credential: %v", err)
	}
	if err := auth.VerifyPlain(ctx, "imp", "old server password"); err != nil {
		t.Errorf("right password: %v", err)
	}
	c256, err := auth.Credential(ctx, "imp", sasl.SHA256)
	if err != nil {
		t.Fatalf("no SCRAM-SHA-256 credential after a PLAIN login: %v", err)
	}
	if !sasl.VerifyPlainWithCredential(c256, "old server password") || sasl.VerifyPlainWithCredential(c256, "wrong") {
		t.Error("the added SCRAM-SHA-256 credential is not the password's")
	}
	c1, err := auth.Credential(ctx, "imp", sasl.SHA1)
	if err != nil || string(c1.StoredKey) != string(c.StoredKey) {
		t.Errorf("the SCRAM-SHA-1 credential changed: %v", err)
	}
	if err := auth.VerifyPlain(ctx, "imp", "old server password"); err != nil {
		t.Errorf("right password after the upgrade: %v", err)
	}
}

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestOperatorBootstrapRace: several `kontor operator add` at once on an
// empty store (each with its own connection, as separate processes would
// have): exactly one becomes the first admin, on both backends.
func TestOperatorBootstrapRace(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			x := newAuditEnv(t, backend)
			cfg, err := loadConfig(configFlags{file: x.cfgFile})
			if err != nil {
				t.Fatal(err)
			}
			st, err := openStore(t.Context(), &cfg) // migrated once, before the race
			if err != nil {
				t.Fatal(err)
			}
			st.Close()
			const n = 6
			var (
				wg    sync.WaitGroup
				mu    sync.Mutex
				wins  []string
				start = make(chan struct{})
			)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					name := fmt.Sprintf("admin%d", i)
					_, _, err := x.run(t, "", "operator", "add", name, "--role", "admin")
					mu.Lock()
					defer mu.Unlock()
					if err == nil {
						wins = append(wins, name)
					}
				}()
			}
			close(start)
			wg.Wait()
			st, err = openStore(t.Context(), &cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			ops, err := operatorStoreOf(st)
			if err != nil {
				t.Fatal(err)
			}
			all, err := ops.ListOperators(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if len(wins) != 1 || len(all) != 1 || all[0].ID != wins[0] {
				t.Fatalf("%d of %d concurrent bootstraps succeeded (%v); %d operators stored", len(wins), n, wins, len(all))
			}
			if out := x.must(t, "", "audit", "list", "--action", "operator.bootstrap"); strings.Count(out, "operator.bootstrap") != 1 {
				t.Errorf("bootstrap audit entries:\n%s", out)
			}
		})
	}
}

// TestOperatorBreakGlass: with every admin token lost, root or the owner
// of the data directory gets a new admin token, audited as
// operator.break_glass; anyone else is refused and that is audited too.
// Not parallel: it replaces osIdentity and dataDirOwner.
func TestOperatorBreakGlass(t *testing.T) {
	x := newAuditEnv(t, "sqlite")
	savedID, savedOwner := osIdentity, dataDirOwner
	t.Cleanup(func() { osIdentity, dataDirOwner = savedID, savedOwner })
	tokenOf := func(out string) string { return tokenFrom(t, out) }
	x.must(t, "", "operator", "add", "ada", "--role", "admin") // its token is "lost"
	lost := filepath.Join(t.TempDir(), "wrong")
	os.WriteFile(lost, []byte("kontor_op_wrong\n"), 0o600)
	if _, _, err := x.run(t, "", "operator", "list", "--operator", "ada", "--operator-token-file", lost); err == nil {
		t.Fatal("a wrong token works")
	}

	if _, _, err := x.run(t, "", "operator", "recover", "ada"); err == nil || !strings.Contains(err.Error(), "--reason") {
		t.Errorf("recover without a reason: %v", err)
	}
	// Someone who is neither root nor the data directory's owner.
	osIdentity = func() (int, string, error) { return 1000, "eve", nil }
	dataDirOwner = func(string) (int, error) { return 999, nil }
	if _, _, err := x.run(t, "", "operator", "recover", "ada", "--reason", "lost"); err == nil || !strings.Contains(err.Error(), "access denied") {
		t.Errorf("recover by eve: %v", err)
	}
	// The service account that owns the data directory.
	dataDirOwner = func(string) (int, error) { return 1000, nil }
	out := x.must(t, "", "operator", "recover", "ada", "--reason", "every admin token lost (ticket 42)")
	tok := tokenOf(out)
	osIdentity, dataDirOwner = savedID, savedOwner
	tf := filepath.Join(t.TempDir(), "ada")
	os.WriteFile(tf, []byte(tok+"\n"), 0o600)
	if out := x.must(t, "", "operator", "list", "--operator", "ada", "--operator-token-file", tf); !strings.Contains(out, "ada") {
		t.Errorf("list with the recovered token: %s", out)
	}
	// Root: a new admin; a non-admin cannot be recovered.
	x.must(t, "", "operator", "add", "erika", "--role", "dpo", "--operator", "ada", "--operator-token-file", tf)
	if _, _, err := x.run(t, "", "operator", "recover", "erika", "--reason", "x"); err == nil || !strings.Contains(err.Error(), "not an admin") {
		t.Errorf("recover a dpo: %v", err)
	}
	out = x.must(t, "", "operator", "recover", "rescue", "--reason", "ada is on leave")
	if !strings.Contains(out, "rescue: created admin") {
		t.Errorf("recover a new admin: %s", out)
	}
	out = x.must(t, "", "audit", "list", "--action", "operator.break_glass")
	if strings.Count(out, "operator.break_glass") != 2 || !strings.Contains(out, "ticket 42") || !strings.Contains(out, "outcome=created admin") {
		t.Errorf("audit:\n%s", out)
	}
	if out := x.must(t, "", "audit", "list", "--action", "operator.break_glass_denied"); !strings.Contains(out, "uid=1000") {
		t.Errorf("audit of the refusal:\n%s", out)
	}
	x.must(t, "", "audit", "verify")
}

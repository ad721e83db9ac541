package account_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"kontor.im/kontor/core/account"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/sasl"
	"kontor.im/kontor/core/storage/sqlite"
)

// proof is what a client holding token sends for HT-SHA-256-NONE.
func proof(token string) []byte { return sasl.HTInitiator([]byte(token), nil) }

// verifier checks p against a candidate token as the session layer does.
func verifier(p []byte) func([]byte) bool {
	return func(tok []byte) bool { return sasl.VerifyHT(tok, nil, p) }
}

func TestFAST(t *testing.T) {
	ctx := context.Background()
	st := open(t)
	fs := st.(account.FASTStore)
	alice := jid.MustParse("alice@example.com")
	if err := account.Create(ctx, st, alice, "correct horse"); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	f := &account.FAST{Store: fs, Key: bytes.Repeat([]byte{7}, 32), Lifetime: 10 * time.Hour, Now: func() time.Time { return now }}
	const ua, mech = "d4c5a0b2-1f6e-4c1a-9b3e-2a7f8c9d0e1f", sasl.HTSHA256None

	tok, exp, err := f.Issue(ctx, alice, ua, mech)
	if err != nil || len(tok) < 40 || !exp.Equal(now.Add(10*time.Hour)) {
		t.Fatalf("Issue = %q, %v, %v", tok, exp, err)
	}
	// The store is keyed by a hash of the user-agent id, never the id.
	if r, _ := fs.FASTTokens(ctx, alice.String(), ua); len(r) != 0 {
		t.Fatal("tokens are keyed by the plain user-agent id")
	}

	got, rotate, err := f.Verify(ctx, alice, ua, mech, 0, verifier(proof(tok)))
	if err != nil || string(got) != tok || rotate {
		t.Fatalf("Verify = %q, %v, %v", got, rotate, err)
	}
	tests := []struct {
		name  string
		acct  jid.JID
		ua    string
		mech  string
		proof []byte
		want  error
	}{
		{"wrong token", alice, ua, mech, proof("not the token"), sasl.ErrBadPassword},
		{"other client", alice, "another-client", mech, proof(tok), sasl.ErrBadPassword},
		{"other mechanism", alice, ua, sasl.HTSHA256Expr, proof(tok), sasl.ErrBadPassword},
		{"unknown account", jid.MustParse("nobody@example.com"), ua, mech, proof(tok), sasl.ErrUnknownUser},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := f.Verify(ctx, tt.acct, tt.ua, tt.mech, 0, verifier(tt.proof)); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}

	// Replay protection with count.
	if _, _, err := f.Verify(ctx, alice, ua, mech, 3, verifier(proof(tok))); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.Verify(ctx, alice, ua, mech, 3, verifier(proof(tok))); !errors.Is(err, sasl.ErrReplayed) {
		t.Fatalf("replayed count: %v", err)
	}

	// Past half its lifetime the token is due for rotation; the new one
	// does not retire the old until it is used.
	now = now.Add(6 * time.Hour)
	if _, rotate, err := f.Verify(ctx, alice, ua, mech, 0, verifier(proof(tok))); err != nil || !rotate {
		t.Fatalf("rotate = %v, %v", rotate, err)
	}
	tok2, _, err := f.Issue(ctx, alice, ua, mech)
	if err != nil || tok2 == tok {
		t.Fatal("no new token", err)
	}
	if _, _, err := f.Verify(ctx, alice, ua, mech, 0, verifier(proof(tok))); err != nil {
		t.Fatalf("old token before the new one is used: %v", err)
	}
	if _, _, err := f.Verify(ctx, alice, ua, mech, 0, verifier(proof(tok2))); err != nil {
		t.Fatalf("new token: %v", err)
	}
	if _, _, err := f.Verify(ctx, alice, ua, mech, 0, verifier(proof(tok))); !errors.Is(err, sasl.ErrBadPassword) {
		t.Fatalf("old token after the new one was used: %v", err)
	}

	// Expiry.
	now = now.Add(11 * time.Hour)
	if _, _, err := f.Verify(ctx, alice, ua, mech, 0, verifier(proof(tok2))); !errors.Is(err, sasl.ErrExpired) {
		t.Fatalf("expired token: %v", err)
	}

	// A disabled account fails once the token matched; a password change
	// invalidates every token.
	tok3, _, _ := f.Issue(ctx, alice, ua, mech)
	if err := st.SetDisabled(ctx, alice.String(), true); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.Verify(ctx, alice, ua, mech, 0, verifier(proof(tok3))); !errors.Is(err, sasl.ErrDisabled) {
		t.Fatalf("disabled: %v", err)
	}
	if err := st.SetDisabled(ctx, alice.String(), false); err != nil {
		t.Fatal(err)
	}
	tok4, _, _ := f.Issue(ctx, alice, ua, mech)
	if err := account.SetPassword(ctx, st, alice, "battery staple"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.Verify(ctx, alice, ua, mech, 0, verifier(proof(tok4))); !errors.Is(err, sasl.ErrBadPassword) {
		t.Fatalf("after a password change: %v", err)
	}

	// Invalidate (log out).
	tok5, _, _ := f.Issue(ctx, alice, ua, mech)
	if err := f.Invalidate(ctx, alice, ua); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.Verify(ctx, alice, ua, mech, 0, verifier(proof(tok5))); !errors.Is(err, sasl.ErrBadPassword) {
		t.Fatalf("after Invalidate: %v", err)
	}

	// A different key derives different tokens from the same rows.
	tok6, _, _ := f.Issue(ctx, alice, ua, mech)
	other := *f
	other.Key = bytes.Repeat([]byte{8}, 32)
	if _, _, err := other.Verify(ctx, alice, ua, mech, 0, verifier(proof(tok6))); !errors.Is(err, sasl.ErrBadPassword) {
		t.Fatalf("another key: %v", err)
	}
}

// BenchmarkFASTVerify is a FAST login's token check on SQLite: the
// account and token reads, the proof check and the slot update.
func BenchmarkFASTVerify(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "k.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	alice := jid.MustParse("alice@example.com")
	if err := account.Create(ctx, st, alice, "correct horse"); err != nil {
		b.Fatal(err)
	}
	f := &account.FAST{Store: st, Key: bytes.Repeat([]byte{7}, 32)}
	tok, _, err := f.Issue(ctx, alice, "ua", sasl.HTSHA256None)
	if err != nil {
		b.Fatal(err)
	}
	p := proof(tok)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := f.Verify(ctx, alice, "ua", sasl.HTSHA256None, 0, verifier(p)); err != nil {
			b.Fatal(err)
		}
	}
}

// TestFASTIncarnation: Verify and the authenticators note the incarnation
// of the account they checked (its creation time), and Issue stores a
// token only for that incarnation: a password login of the former owner
// of an address that was deleted and created anew meanwhile gets no token
// for the new account.
func TestFASTIncarnation(t *testing.T) {
	ctx := context.Background()
	st := open(t)
	fs := st.(account.FASTStore)
	alice := jid.MustParse("alice@example.com")
	if err := account.Create(ctx, st, alice, "correct horse"); err != nil {
		t.Fatal(err)
	}
	f := &account.FAST{Store: fs, Key: bytes.Repeat([]byte{7}, 32)}
	const ua, mech = "ua", sasl.HTSHA256None

	// The password login notes the incarnation.
	lctx, inc := sasl.WithIncarnation(ctx)
	if err := (account.Authenticator{Store: st, Domain: "example.com"}).VerifyPlain(lctx, "alice", "correct horse"); err != nil {
		t.Fatal(err)
	}
	first, ok := inc.Get()
	acc, err := st.Account(ctx, alice.String())
	if err != nil {
		t.Fatal(err)
	}
	if !ok || !first.Equal(acc.Created) {
		t.Fatalf("incarnation noted %v (%v), want the account's creation time %v", first, ok, acc.Created)
	}
	// Its token, issued for that incarnation, works, and a FAST login
	// notes the incarnation too.
	tok, _, err := f.Issue(lctx, alice, ua, mech)
	if err != nil {
		t.Fatal(err)
	}
	vctx, vinc := sasl.WithIncarnation(ctx)
	if _, _, err := f.Verify(vctx, alice, ua, mech, 0, verifier(proof(tok))); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got, ok := vinc.Get(); !ok || !got.Equal(first) {
		t.Fatalf("FAST login noted %v (%v), want %v", got, ok, first)
	}

	// The address is given to someone else before the token is issued.
	if err := st.DeleteAccount(ctx, alice.String()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Millisecond) // another creation time, to the microsecond
	if err := account.Create(ctx, st, alice, "another password"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.Issue(lctx, alice, ua, mech); err == nil {
		t.Fatal("a token was issued for the address's new account on the former owner's login")
	}
	// Without an incarnation (an authenticator that notes none), as before.
	if _, _, err := f.Issue(ctx, alice, ua, mech); err != nil {
		t.Fatalf("Issue without an incarnation: %v", err)
	}
}

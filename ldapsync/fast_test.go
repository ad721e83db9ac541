package ldapsync

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"kontor.im/kontor/core/storage"
)

// TestPasswordChangeRevokesFAST: a directory account's FAST tokens
// (XEP-0484) stand in for a password that Kontor never sees, so when the
// directory changes the password (OpenLDAP's ppolicy records
// pwdChangedTime), the next sync revokes them, says so in the plan, and
// leaves other accounts' tokens alone. The first sync only records the
// time: a stamp seen for the first time is no change.
func TestPasswordChangeRevokesFAST(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			users := treeUsers(t)
			e := newEnv(t, backend, treeLDIF(users), nil)
			ctx := context.Background()
			rep := e.sync(t, SyncOptions{Reason: "first"})
			if rep.Created != len(users) {
				t.Fatalf("first sync created %d of %d", rep.Created, len(users))
			}
			byUID := map[string]testUser{}
			for _, u := range users {
				byUID[u.uid] = u
			}
			changed, other := byUID["e01"], byUID["e02"]
			l, err := e.store.LDAPLinkByJID(ctx, Source, changed.jid())
			if err != nil {
				t.Fatal(err)
			}
			// The seed is loaded offline (slapadd, without overlays), so
			// these entries have no pwdChangedTime yet: the password change
			// below gives them one, as in a directory that had no ppolicy
			// when its users were created.
			if a := decodeAttrs(l.Attrs); !a.PasswordTracked || a.PasswordStamp != "" {
				t.Fatalf("the link of %s: %s; want password changes tracked, no stamp yet", changed.jid(), l.Attrs)
			}
			for _, u := range []testUser{changed, other} {
				if err := e.store.PutFASTToken(ctx, u.jid(), storage.FASTToken{Client: "phone", Mechanism: "HT-SHA-256-NONE",
					Secret: []byte(strings.Repeat("s", 32)), Expires: time.Now().Add(time.Hour)}); err != nil {
					t.Fatal(err)
				}
			}

			// Nothing changed: the tokens stay.
			e.sync(t, SyncOptions{})
			if tok, _ := e.store.FASTTokens(ctx, changed.jid(), "phone"); len(tok) != 1 {
				t.Fatalf("an idle sync left %d tokens, want 1", len(tok))
			}

			req := ldap.NewModifyRequest(changed.dn(), nil)
			req.Replace("userPassword", []string{"a-new-Passw0rd"})
			if err := e.slapd.Admin(t).Modify(req); err != nil {
				t.Fatal(err)
			}
			rep = e.sync(t, SyncOptions{})
			var detail string
			for _, c := range rep.Changes {
				if c.JID == changed.jid() && c.Op == OpUpdate {
					detail = c.Detail
				}
			}
			if !strings.Contains(detail, "password changed") {
				t.Errorf("the plan says %q for %s, want a password change\n%s", detail, changed.jid(), reportText(rep))
			}
			if tok, err := e.store.FASTTokens(ctx, changed.jid(), "phone"); err != nil || len(tok) != 0 {
				t.Errorf("after the password change %s has %d tokens (%v), want none", changed.jid(), len(tok), err)
			}
			if tok, err := e.store.FASTTokens(ctx, other.jid(), "phone"); err != nil || len(tok) != 1 {
				t.Errorf("%s, whose password did not change, has %d tokens (%v), want 1", other.jid(), len(tok), err)
			}
			if !strings.Contains(e.log(), "FAST tokens revoked") {
				t.Error("the revocation is not logged")
			}
			if a := decodeAttrs(mustLink(t, e.store, changed.jid()).Attrs); a.PasswordStamp == "" {
				t.Errorf("no pwdChangedTime recorded after the change: %+v", a)
			}

			// A second change (pwdChangedTime has a resolution of a
			// second) after a new token: revoked again.
			if err := e.store.PutFASTToken(ctx, changed.jid(), storage.FASTToken{Client: "phone", Mechanism: "HT-SHA-256-NONE",
				Secret: []byte(strings.Repeat("t", 32)), Expires: time.Now().Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(1100 * time.Millisecond)
			req = ldap.NewModifyRequest(changed.dn(), nil)
			req.Replace("userPassword", []string{"another-Passw0rd"})
			if err := e.slapd.Admin(t).Modify(req); err != nil {
				t.Fatal(err)
			}
			e.sync(t, SyncOptions{})
			if tok, err := e.store.FASTTokens(ctx, changed.jid(), "phone"); err != nil || len(tok) != 0 {
				t.Errorf("after the second password change %s has %d tokens (%v), want none", changed.jid(), len(tok), err)
			}
		})
	}
}

func mustLink(t *testing.T, st Store, j string) storage.LDAPLink {
	t.Helper()
	l, err := st.LDAPLinkByJID(context.Background(), Source, j)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestPasswordStampUpgrade: a link written before password changes were
// tracked records its first stamp without revoking anything.
func TestPasswordStampUpgrade(t *testing.T) {
	old := attrs{Username: "a"}
	now := attrs{Username: "a", PasswordStamp: "133500000000000000", PasswordTracked: true}
	if old.passwordChanged(now) {
		t.Error("a first stamp after an upgrade counts as a password change")
	}
	if d := old.diff(now); len(d) != 1 || d[0] != "password changes tracked from now on" {
		t.Errorf("diff = %q", d)
	}
	later := now
	later.PasswordStamp = "133600000000000000"
	if !now.passwordChanged(later) || now.passwordChanged(now) {
		t.Error("passwordChanged does not tell a changed stamp from the same one")
	}
	reset := now
	reset.PasswordStamp = "0" // pwdLastSet=0: must change at next logon
	if !now.passwordChanged(reset) {
		t.Error("pwdLastSet reset to 0 is no change")
	}
}

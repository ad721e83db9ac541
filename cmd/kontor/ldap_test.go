package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/ldapsync"
	"kontor.im/kontor/ldapsync/slapdtest"
)

const (
	ldapPeople = "ou=People," + slapdtest.BaseDN
	ldapGroups = "ou=Groups," + slapdtest.BaseDN
)

// ldapSeed is a small directory: three people, one locked, and a team.
func ldapSeed() []byte {
	var b strings.Builder
	b.WriteString("dn: " + ldapPeople + "\nobjectClass: organizationalUnit\nou: People\n\n")
	b.WriteString("dn: " + ldapGroups + "\nobjectClass: organizationalUnit\nou: Groups\n\n")
	for _, u := range []struct{ uid, name string }{{"alice", "Alice Adler"}, {"bob", "Bob Bauer"}, {"carol", "Carol Conrad"}} {
		fmt.Fprintf(&b, "dn: uid=%s,%s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: %s\ndisplayName: %s\nmail: %s@corp.example\nuserPassword: %s\n\n",
			u.uid, ldapPeople, u.uid, u.name, u.name, u.name, u.uid, ldapPassword(u.uid))
	}
	fmt.Fprintf(&b, "dn: cn=Team,%s\nobjectClass: groupOfNames\ncn: Team\nmember: uid=alice,%s\nmember: uid=bob,%s\n\n", ldapGroups, ldapPeople, ldapPeople)
	return []byte(b.String())
}

func ldapPassword(uid string) string { return "Directory-" + uid + "-1" }

// ldapYAML is the ldap section for a slapdtest server, for the CLI.
func ldapYAML(s *slapdtest.Server) string {
	return fmt.Sprintf(`ldap:
  enabled: true
  flavor: openldap
  urls: [%q]
  ca_file: %q
  bind_dn: %q
  bind_password: %q
  users:
    base_dn: %q
  groups:
    base_dn: %q
  sync:
    interval: 1h
`, s.URL, s.CAFile, slapdtest.ServiceDN, slapdtest.ServicePassword, ldapPeople, ldapGroups)
}

// startLDAPServer starts Kontor with directory sync against a new slapd;
// the scheduler's first sync has run when it returns.
func startLDAPServer(t *testing.T, backend string) (*testServer, *slapdtest.Server) {
	t.Helper()
	s := slapdtest.Start(t, slapdtest.Options{Seed: ldapSeed()})
	ts := startTestServer(t, backend, func(c *Config) {
		c.LDAP.Enabled = true
		c.LDAP.Flavor = ldapsync.OpenLDAP
		c.LDAP.URLs = []string{s.URL}
		c.LDAP.CAFile = s.CAFile
		c.LDAP.BindDN, c.LDAP.BindPassword = slapdtest.ServiceDN, slapdtest.ServicePassword
		c.LDAP.Users.BaseDN, c.LDAP.Groups.BaseDN = ldapPeople, ldapGroups
		c.LDAP.Sync.Interval = time.Hour
	})
	f, err := os.OpenFile(ts.cfgFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(ldapYAML(s)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := ts.srv.store.Account(context.Background(), "carol@"+e2eDomain); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first sync did not create the directory's accounts within 30 s\n%s", ts.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return ts, s
}

// TestLDAPEndToEnd: a directory user logs in with the directory password
// through a real client library (mellium.im/xmpp, SASL PLAIN over TLS),
// sees the shared group in the roster; a guest with a local password logs
// in too; once the user is disabled in the directory and a sync runs (from
// the CLI, a separate process's work), the live session is closed and the
// login fails.
func TestLDAPEndToEnd(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		ts, slapd := startLDAPServer(t, backend)
		ts.addUser(t, "visitor", "guest-password-1")

		t.Run("only PLAIN is offered over TLS", func(t *testing.T) {
			r := ts.rawDial(t, "starttls")
			r.open()
			if err := r.startTLS(ts.tlsConfig()); err != nil {
				t.Fatal(err)
			}
			if got := mechanisms(r.open()); !slices.Equal(got, []string{"PLAIN"}) {
				t.Errorf("mechanisms = %v, want [PLAIN]", got)
			}
		})

		alice := ts.dial(t, "alice", ldapPassword("alice"))
		t.Run("the shared group is in the roster", func(t *testing.T) {
			res := alice.iq(t, `<iq type='get'><query xmlns='jabber:iq:roster'/></iq>`)
			q := res.child(nsRoster, "query")
			if q == nil {
				t.Fatalf("roster result: %s", res)
			}
			var found bool
			for _, it := range q.Nodes {
				if it.attr("jid") == "bob@"+e2eDomain {
					found = it.attr("subscription") == "both" && it.attr("name") == "Bob Bauer" && it.childText(nsRoster, "group") == "Team"
				}
			}
			if !found {
				t.Errorf("alice's roster lacks bob in Team (both, named): %s", res)
			}
		})
		t.Run("a change of the group is pushed live", func(t *testing.T) {
			mod := ldap.NewModifyRequest("cn=Team,"+ldapGroups, nil)
			mod.Add("member", []string{"uid=carol," + ldapPeople})
			if err := slapd.Admin(t).Modify(mod); err != nil {
				t.Fatal(err)
			}
			ts.srv.ldap.syncer.Trigger(false) // what the scheduler does every sync.interval
			alice.RosterPushes.expect(t, "a roster push of carol", func(n xmlNode) bool {
				q := n.child(nsRoster, "query")
				if q == nil {
					return false
				}
				for _, it := range q.Nodes {
					if it.attr("jid") == "carol@"+e2eDomain && it.attr("subscription") == "both" && it.childText(nsRoster, "group") == "Team" {
						return true
					}
				}
				return false
			})
		})
		t.Run("a guest with a local password logs in", func(t *testing.T) {
			v := ts.dial(t, "visitor", "guest-password-1")
			v.close()
		})
		t.Run("a wrong directory password is not-authorized", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			_, _, err := ts.connect(ctx, "bob", "not-the-password")
			if cond := saslCondition(err); cond != "not-authorized" {
				t.Errorf("login with a wrong password: %v (condition %q), want not-authorized", err, cond)
			}
		})

		t.Run("a dry run prints the changes and changes nothing", func(t *testing.T) {
			add := ldap.NewAddRequest("uid=dave,"+ldapPeople, nil)
			for k, v := range map[string]string{"objectClass": "inetOrgPerson", "uid": "dave", "cn": "Dave", "sn": "D", "userPassword": "x"} {
				add.Attribute(k, []string{v})
			}
			if err := slapd.Admin(t).Add(add); err != nil {
				t.Fatal(err)
			}
			out, err := ts.cli(t, "", "ldap", "sync", "--dry-run")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, "create        dave@"+e2eDomain) || !strings.Contains(out, "dry run: nothing was changed") {
				t.Errorf("dry run output:\n%s", out)
			}
			if _, err := ts.srv.store.Account(context.Background(), "dave@"+e2eDomain); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("the dry run created dave: %v", err)
			}
		})

		// Disabled in the directory; a sync from the CLI.
		mod := ldap.NewModifyRequest("uid=alice,"+ldapPeople, nil)
		mod.Replace("pwdAccountLockedTime", []string{"000001010000Z"})
		if err := slapd.Admin(t).Modify(mod); err != nil {
			t.Fatal(err)
		}
		out, err := ts.cli(t, "", "ldap", "sync")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "disable       alice@"+e2eDomain) || !strings.Contains(out, "create        dave@"+e2eDomain) {
			t.Errorf("sync output:\n%s", out)
		}
		err = alice.ended(t, 5*time.Second)
		if cond := streamCondition(err); cond != "not-authorized" {
			t.Errorf("alice's session ended with %v (stream error %q), want not-authorized", err, cond)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if _, _, err := ts.connect(ctx, "alice", ldapPassword("alice")); saslCondition(err) != "not-authorized" {
			t.Errorf("alice's login after she was disabled: %v, want not-authorized", err)
		}

		t.Run("the CLI sync is in the audit trail", func(t *testing.T) {
			out, err := ts.cli(t, "", "audit", "list")
			if err != nil {
				t.Fatal(err)
			}
			if strings.Count(out, "ldap.sync") < 2 { // the server's first sync and the CLI's
				t.Errorf("audit list:\n%s", out)
			}
		})
		t.Run("status and check", func(t *testing.T) {
			out, err := ts.cli(t, "", "ldap", "status")
			if err != nil || !strings.Contains(out, "accounts from the directory: 4 (1 disabled by the directory)") {
				t.Errorf("status: %v\n%s", err, out)
			}
			out, err = ts.cli(t, "", "ldap", "check")
			if err != nil || !strings.Contains(out, "users:           4") || !strings.Contains(out, "disabled users:  1") {
				t.Errorf("check: %v\n%s", err, out)
			}
		})
		t.Run("login command", func(t *testing.T) {
			if out, err := ts.cli(t, ldapPassword("bob")+"\n", "ldap", "login", "bob"); err != nil || !strings.Contains(out, "password accepted") {
				t.Errorf("kontor ldap login bob: %v\n%s", err, out)
			}
			if _, err := ts.cli(t, "wrong\n", "ldap", "login", "bob"); err == nil {
				t.Error("kontor ldap login with a wrong password succeeded")
			}
		})
		t.Run("admin API trigger", func(t *testing.T) {
			mux := http.NewServeMux()
			ts.srv.ldapAdminRoutes(mux)
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest("POST", "/ldap/sync?full=1", nil))
			if rec.Code != http.StatusUnauthorized {
				t.Errorf("POST /ldap/sync without a token: %d %s", rec.Code, rec.Body)
			}
			req := httptest.NewRequest("POST", "/ldap/sync?full=1", nil)
			req.Header.Set("Authorization", "Bearer "+addTestOperator(t, ts.srv.store, "ldap-admin", "admin"))
			rec = httptest.NewRecorder()
			mux.ServeHTTP(rec, req)
			if rec.Code != http.StatusAccepted {
				t.Errorf("POST /ldap/sync: %d %s", rec.Code, rec.Body)
			}
		})
	})
}

func TestLDAPConfig(t *testing.T) {
	d := defaultConfig()
	if d.LDAP.Enabled || d.LDAP.Flavor != ldapsync.ActiveDirectory || d.LDAP.PageSize != 500 || !d.LDAP.StartTLS ||
		!d.LDAP.Login.Enabled || d.LDAP.Sync.DeleteAfter != 720*time.Hour || d.LDAP.Groups.MaxRosterSize != 500 {
		t.Errorf("defaults = %+v", d.LDAP)
	}
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"unknown key", "ldap:\n  enabled: true\n  urlz: []\n", "ldap.urlz: unknown key"},
		{"enabled without URLs and base DN", "ldap:\n  enabled: true\n  bind_dn: cn=x\n  bind_password: y\n", "ldap.urls"},
		{"bad filter", "ldap:\n  enabled: true\n  urls: [ldaps://dc1]\n  bind_dn: cn=x\n  bind_password: y\n  users:\n    base_dn: dc=x\n    filter: \"(uid=\"\n", "ldap.users.filter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := t.TempDir() + "/kontor.yaml"
			if err := os.WriteFile(file, []byte("data_dir: "+t.TempDir()+"\n"+tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := loadConfig(configFlags{file: file})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("loadConfig = %v, want a problem with %q", err, tt.want)
			}
		})
	}
}

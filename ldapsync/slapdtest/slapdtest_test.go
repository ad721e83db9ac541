package slapdtest_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"kontor.im/kontor/ldapsync/slapdtest"
)

func TestStart(t *testing.T) {
	var seed strings.Builder
	seed.WriteString("dn: ou=People,dc=kontor,dc=test\nobjectClass: organizationalUnit\nou: People\n\n")
	for i := range slapdtest.SizeLimit + 20 {
		n := slapdtest.Itoa(i)
		seed.WriteString("dn: uid=u" + n + ",ou=People,dc=kontor,dc=test\nobjectClass: inetOrgPerson\nuid: u" + n +
			"\ncn: User " + n + "\nsn: " + n + "\nuserPassword: pw" + n + "\n\n")
	}
	s := slapdtest.Start(t, slapdtest.Options{Seed: []byte(seed.String())})
	admin := s.Admin(t)
	res, err := admin.Search(ldap.NewSearchRequest(slapdtest.BaseDN, ldap.ScopeBaseObject, 0, 0, 0, false,
		"(objectClass=*)", []string{"contextCSN"}, nil))
	if err != nil || len(res.Entries) != 1 || res.Entries[0].GetAttributeValue("contextCSN") == "" {
		t.Fatalf("the base has no contextCSN (syncprov, slapadd -w): %v %v", res, err)
	}

	svc := func(t *testing.T, url string) *ldap.Conn {
		conn, err := ldap.DialURL(url, ldap.DialWithTLSConfig(s.TLSConfig()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		if strings.HasPrefix(url, "ldap://") {
			if err := conn.StartTLS(s.TLSConfig()); err != nil {
				t.Fatal(err)
			}
		}
		if err := conn.Bind(slapdtest.ServiceDN, slapdtest.ServicePassword); err != nil {
			t.Fatal(err)
		}
		return conn
	}
	tests := []struct {
		name  string
		url   string
		paged bool
		want  int
		err   uint16
	}{
		{"StartTLS, unpaged search stops at the size limit", s.URL, false, 0, ldap.LDAPResultSizeLimitExceeded},
		{"StartTLS, paged search reads all", s.URL, true, slapdtest.SizeLimit + 20, 0},
		{"ldaps, paged search reads all", s.LDAPSURL, true, slapdtest.SizeLimit + 20, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := svc(t, tt.url)
			req := ldap.NewSearchRequest("ou=People,"+slapdtest.BaseDN, ldap.ScopeWholeSubtree, 0, 0, 0, false,
				"(objectClass=inetOrgPerson)", []string{"uid"}, nil)
			var res *ldap.SearchResult
			var err error
			if tt.paged {
				res, err = conn.SearchWithPaging(req, 100)
			} else {
				res, err = conn.Search(req)
			}
			if tt.err != 0 {
				if !ldap.IsErrorWithCode(err, tt.err) {
					t.Fatalf("err = %v, want result code %d", err, tt.err)
				}
				return
			}
			if err != nil || len(res.Entries) != tt.want {
				t.Fatalf("got %d entries, %v; want %d", len(res.Entries), err, tt.want)
			}
		})
	}

	t.Run("the policy locks after MaxFailures", func(t *testing.T) {
		conn, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(s.TLSConfig()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		dn := "uid=u1,ou=People," + slapdtest.BaseDN
		for range slapdtest.MaxFailures {
			if err := conn.Bind(dn, "wrong"); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
				t.Fatalf("bind with a wrong password: %v", err)
			}
		}
		var le *ldap.Error
		if err := conn.Bind(dn, "pw1"); !errors.As(err, &le) {
			t.Fatalf("bind with the right password after %d failures succeeded, want the account locked", slapdtest.MaxFailures)
		}
	})

	t.Run("stop and restart on the same ports", func(t *testing.T) {
		s.Stop()
		if _, err := ldap.DialURL(s.URL); err == nil {
			t.Fatal("dial succeeded while stopped")
		}
		s.Restart(t)
		svc(t, s.URL)
	})
}

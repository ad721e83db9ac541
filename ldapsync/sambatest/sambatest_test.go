//go:build samba

package sambatest_test

import (
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"kontor.im/kontor/ldapsync/sambatest"
)

// TestStart provisions the DC and checks what tests rely on: LDAPS and
// StartTLS with the test CA, a simple bind refused without TLS, the root
// DSE of Active Directory, samba-tool on the same database.
func TestStart(t *testing.T) {
	dc := sambatest.Start(t)
	admin := dc.Admin(t)
	res, err := admin.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)",
		[]string{"defaultNamingContext", "dsServiceName", "highestCommittedUSN", "supportedCapabilities"}, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("root DSE: %v", err)
	}
	root := res.Entries[0]
	if !strings.EqualFold(root.GetAttributeValue("defaultNamingContext"), sambatest.BaseDN) || root.GetAttributeValue("highestCommittedUSN") == "" {
		t.Errorf("root DSE: %v %v", root.GetAttributeValue("defaultNamingContext"), root.GetAttributeValue("highestCommittedUSN"))
	}
	tests := []struct {
		name     string
		url      string
		startTLS bool
		wantBind bool
	}{
		{"LDAPS", dc.LDAPSURL, false, true},
		{"StartTLS", dc.URL, true, true},
		{"plain LDAP: a simple bind needs TLS", dc.URL, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := ldap.DialURL(tt.url, ldap.DialWithTLSConfig(dc.TLSConfig()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if tt.startTLS {
				if err := conn.StartTLS(dc.TLSConfig()); err != nil {
					t.Fatal(err)
				}
			}
			if err := conn.Bind(sambatest.AdminDN, sambatest.AdminPassword); (err == nil) != tt.wantBind {
				t.Errorf("bind: %v, want success %v", err, tt.wantBind)
			}
		})
	}
	if out := dc.Tool(t, "user", "list"); !strings.Contains(out, "Administrator") {
		t.Errorf("samba-tool user list: %s", out)
	}
}

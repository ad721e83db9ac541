package ldapsync

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Flavors of directory: they choose the defaults of every attribute and
// filter left empty, how disabled accounts are recognised and how
// incremental sync finds changes.
const (
	ActiveDirectory = "active_directory"
	OpenLDAP        = "openldap"
)

// Config is the `ldap` section of the configuration. Empty attribute and
// filter keys take the flavor's defaults (see Resolved).
type Config struct {
	Enabled bool   `mapstructure:"enabled"`
	Flavor  string `mapstructure:"flavor"`
	// Domain is the XMPP domain of directory accounts ("" = the server's
	// first domain).
	Domain string `mapstructure:"domain"`

	URLs                []string      `mapstructure:"urls"`
	StartTLS            bool          `mapstructure:"start_tls"`
	CAFile              string        `mapstructure:"ca_file"`
	TLSServerName       string        `mapstructure:"tls_server_name"`
	BindDN              string        `mapstructure:"bind_dn"`
	BindPassword        string        `mapstructure:"bind_password"`
	BindPasswordFile    string        `mapstructure:"bind_password_file"`
	DialTimeout         time.Duration `mapstructure:"dial_timeout"`
	RequestTimeout      time.Duration `mapstructure:"request_timeout"`
	ReconnectBackoff    time.Duration `mapstructure:"reconnect_backoff"`
	MaxReconnectBackoff time.Duration `mapstructure:"max_reconnect_backoff"`
	PageSize            int           `mapstructure:"page_size"`

	Users  UsersConfig  `mapstructure:"users"`
	Groups GroupsConfig `mapstructure:"groups"`
	Sync   SyncConfig   `mapstructure:"sync"`
	Login  LoginConfig  `mapstructure:"login"`
}

// UsersConfig selects and maps user entries.
type UsersConfig struct {
	BaseDN         string `mapstructure:"base_dn"`
	Filter         string `mapstructure:"filter"`
	DisabledFilter string `mapstructure:"disabled_filter"`
	IDAttribute    string `mapstructure:"id_attribute"`
	// UsernameAttribute gives the JID's localpart; for userPrincipalName
	// and mail the part before the '@' is taken.
	UsernameAttribute    string   `mapstructure:"username_attribute"`
	DisplayNameAttribute string   `mapstructure:"display_name_attribute"`
	EmailAttribute       string   `mapstructure:"email_attribute"`
	DepartmentAttribute  string   `mapstructure:"department_attribute"`
	CompanyAttribute     string   `mapstructure:"company_attribute"`
	PhoneAttribute       string   `mapstructure:"phone_attribute"`
	PhotoAttribute       string   `mapstructure:"photo_attribute"`
	SponsorAttribute     string   `mapstructure:"sponsor_attribute"`
	KindAttribute        string   `mapstructure:"kind_attribute"`
	GuestValues          []string `mapstructure:"guest_values"`
	ExternalValues       []string `mapstructure:"external_values"`
}

// GroupsConfig selects groups and says what becomes of them.
type GroupsConfig struct {
	BaseDN          string `mapstructure:"base_dn"`
	Filter          string `mapstructure:"filter"`
	NameAttribute   string `mapstructure:"name_attribute"`
	MemberAttribute string `mapstructure:"member_attribute"`
	// Roster shows groups as shared contact groups in members' rosters.
	Roster bool `mapstructure:"roster"`
	// MaxRosterSize: larger groups go to the policy engine only. A shared
	// group of n people is n×(n-1) roster items.
	MaxRosterSize int `mapstructure:"max_roster_size"`
}

// SyncConfig schedules syncs and bounds what one sync may do.
type SyncConfig struct {
	Interval     time.Duration `mapstructure:"interval"`
	FullInterval time.Duration `mapstructure:"full_interval"`
	// DeleteAfter: an entry gone from the directory disables its account
	// at once and deletes it after this grace period.
	DeleteAfter time.Duration `mapstructure:"delete_after"`
	// MaxGonePercent refuses to retire more than this share of the
	// accounts (and more than ten) in one sync, which is what a wrong
	// filter or base DN looks like.
	MaxGonePercent int `mapstructure:"max_gone_percent"`
}

// LoginConfig configures login by LDAP bind.
type LoginConfig struct {
	Enabled bool `mapstructure:"enabled"`
	// DNTemplate, when set, is bound to directly, with {username}
	// replaced by the escaped username ("{username}@corp.example.com" or
	// "uid={username},ou=People,dc=example,dc=com"). Otherwise the entry
	// is found by its stable id, which no rename breaks.
	DNTemplate string `mapstructure:"dn_template"`
	PoolSize   int    `mapstructure:"pool_size"`
	// BadPasswordCache refuses a wrong password that was just refused,
	// without another bind, for this long (0: off). A phone with a stale
	// password then costs the directory one failed bind, not one per
	// retry, so it cannot lock the account.
	BadPasswordCache time.Duration `mapstructure:"bad_password_cache"`
}

// Source is the name of the configured directory in the sync state.
const Source = "default"

// MaxPageSize is the largest page requested: Active Directory returns at
// most 1000 entries per page (MaxPageSize in its LDAP policy) and fails
// larger requests with sizeLimitExceeded.
const MaxPageSize = 1000

// Resolved returns the configuration with the flavor's defaults filled in
// for every empty attribute and filter.
func (c Config) Resolved() Config {
	set := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	u, g := &c.Users, &c.Groups
	switch c.Flavor {
	case OpenLDAP:
		set(&u.Filter, "(objectClass=inetOrgPerson)")
		set(&u.DisabledFilter, "(pwdAccountLockedTime=*)")
		set(&u.IDAttribute, "entryUUID")
		set(&u.UsernameAttribute, "uid")
		set(&u.DepartmentAttribute, "departmentNumber")
		set(&u.CompanyAttribute, "o")
		set(&u.PhotoAttribute, "jpegPhoto")
		set(&g.Filter, "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))")
	default:
		// Computers are users too: objectCategory=person leaves them out;
		// built-in accounts (Administrator, Guest, krbtgt) are critical
		// system objects.
		set(&u.Filter, "(&(objectCategory=person)(objectClass=user)(!(isCriticalSystemObject=TRUE)))")
		set(&u.IDAttribute, "objectGUID")
		set(&u.UsernameAttribute, "sAMAccountName")
		set(&u.DepartmentAttribute, "department")
		set(&u.CompanyAttribute, "company")
		set(&u.PhotoAttribute, "thumbnailPhoto")
		set(&g.Filter, "(objectClass=group)")
	}
	set(&u.DisplayNameAttribute, "displayName")
	set(&u.EmailAttribute, "mail")
	set(&u.PhoneAttribute, "telephoneNumber")
	set(&g.BaseDN, u.BaseDN)
	set(&g.NameAttribute, "cn")
	set(&g.MemberAttribute, "member")
	return c
}

// Validate reports every problem, each as "ldap.key: problem". domains are
// the server's domains; Domain must be one of them.
func (c Config) Validate(domains []string) []string {
	var p []string
	add := func(path, format string, args ...any) {
		p = append(p, "ldap."+path+": "+fmt.Sprintf(format, args...))
	}
	if c.Flavor != ActiveDirectory && c.Flavor != OpenLDAP {
		add("flavor", "%q is not %s or %s", c.Flavor, ActiveDirectory, OpenLDAP)
	}
	if !c.Enabled {
		return p
	}
	if c.Domain != "" {
		found := false
		for _, d := range domains {
			found = found || d == c.Domain
		}
		if !found {
			add("domain", "%q is not one of the served domains %v", c.Domain, domains)
		}
	}
	if len(c.URLs) == 0 {
		add("urls", "at least one ldap:// or ldaps:// URL is required")
	}
	for i, raw := range c.URLs {
		u, err := url.Parse(raw)
		switch {
		case err != nil:
			add(fmt.Sprintf("urls[%d]", i), "%v", err)
		case u.Scheme != "ldap" && u.Scheme != "ldaps":
			add(fmt.Sprintf("urls[%d]", i), "%q: the scheme must be ldap or ldaps", raw)
		case u.Hostname() == "":
			add(fmt.Sprintf("urls[%d]", i), "%q has no host", raw)
		case u.Scheme == "ldap" && !c.StartTLS && !isLoopback(u.Hostname()):
			add(fmt.Sprintf("urls[%d]", i), "%q without start_tls would send passwords in the clear; "+
				"use ldaps:// or start_tls (plain ldap:// is allowed to loopback addresses only)", raw)
		}
	}
	if c.CAFile != "" {
		if _, err := os.Stat(c.CAFile); err != nil {
			add("ca_file", "%v", err)
		}
	}
	if c.BindDN == "" {
		add("bind_dn", "required (the service account that reads the directory)")
	} else if _, err := ldap.ParseDN(c.BindDN); err != nil && !strings.Contains(c.BindDN, "@") && !strings.Contains(c.BindDN, `\`) {
		add("bind_dn", "%q is not a DN (nor a user@domain or DOMAIN\\user name): %v", c.BindDN, err)
	}
	switch {
	case c.BindPassword != "" && c.BindPasswordFile != "":
		add("bind_password_file", "set bind_password or bind_password_file, not both")
	case c.BindPassword == "" && c.BindPasswordFile == "":
		add("bind_password", "required (or bind_password_file)")
	case c.BindPasswordFile != "":
		if _, err := os.Stat(c.BindPasswordFile); err != nil {
			add("bind_password_file", "%v", err)
		}
	}
	for _, d := range []struct {
		path string
		v    time.Duration
		min  time.Duration
	}{
		{"dial_timeout", c.DialTimeout, 100 * time.Millisecond},
		{"request_timeout", c.RequestTimeout, 100 * time.Millisecond},
		{"reconnect_backoff", c.ReconnectBackoff, 10 * time.Millisecond},
		{"max_reconnect_backoff", c.MaxReconnectBackoff, c.ReconnectBackoff},
		{"sync.interval", c.Sync.Interval, time.Second},
		{"sync.full_interval", c.Sync.FullInterval, c.Sync.Interval},
	} {
		if d.v < d.min {
			add(d.path, "must be at least %v", d.min)
		}
	}
	if c.Sync.DeleteAfter < 0 {
		add("sync.delete_after", "must not be negative")
	}
	if c.Sync.MaxGonePercent < 1 || c.Sync.MaxGonePercent > 100 {
		add("sync.max_gone_percent", "must be between 1 and 100")
	}
	if c.PageSize < 1 || c.PageSize > MaxPageSize {
		add("page_size", "must be between 1 and %d (Active Directory returns at most %d entries per page)", MaxPageSize, MaxPageSize)
	}
	r := c.Resolved()
	if r.Users.BaseDN == "" {
		add("users.base_dn", "required")
	}
	for _, dn := range []struct{ path, v string }{{"users.base_dn", r.Users.BaseDN}, {"groups.base_dn", r.Groups.BaseDN}} {
		if dn.v == "" {
			continue
		}
		if _, err := ldap.ParseDN(dn.v); err != nil {
			add(dn.path, "%q is not a DN: %v", dn.v, err)
		}
	}
	for _, f := range []struct{ path, v string }{
		{"users.filter", r.Users.Filter}, {"users.disabled_filter", r.Users.DisabledFilter}, {"groups.filter", r.Groups.Filter},
	} {
		if f.v == "" {
			continue
		}
		if _, err := ldap.CompileFilter(f.v); err != nil {
			add(f.path, "%q is not an LDAP filter: %v", f.v, err)
		}
	}
	if c.Groups.MaxRosterSize < 0 {
		add("groups.max_roster_size", "must not be negative")
	}
	if c.Login.PoolSize < 1 || c.Login.PoolSize > 64 {
		add("login.pool_size", "must be between 1 and 64")
	}
	if c.Login.BadPasswordCache < 0 {
		add("login.bad_password_cache", "must not be negative")
	}
	if c.Login.DNTemplate != "" && !strings.Contains(c.Login.DNTemplate, "{username}") {
		add("login.dn_template", "%q does not contain {username}", c.Login.DNTemplate)
	}
	return p
}

// bindPassword returns the service account's password from the
// configuration or its file.
func (c Config) bindPassword() (string, error) {
	if c.BindPasswordFile == "" {
		return c.BindPassword, nil
	}
	b, err := os.ReadFile(c.BindPasswordFile)
	if err != nil {
		return "", fmt.Errorf("ldapsync: bind password: %w", err)
	}
	pw := strings.TrimRight(string(b), "\r\n")
	if pw == "" {
		return "", fmt.Errorf("ldapsync: bind password file %s is empty", c.BindPasswordFile)
	}
	return pw, nil
}

// isLoopback reports whether host is a loopback address or "localhost".
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

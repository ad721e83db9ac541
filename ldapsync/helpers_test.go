package ldapsync

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/directory"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/storage/pgtest"
	"kontor.im/kontor/core/storage/postgres"
	"kontor.im/kontor/core/storage/sqlite"
	"kontor.im/kontor/ldapsync/slapdtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const testDomain = "example.com"

// The AD-like tree the integration tests seed slapd with: OUs per
// department, 50 users (one with a non-ASCII name and a photo, one
// disabled, a guest with a sponsor, one whose DN needs escaping), nested
// groups, a cycle, and an account outside the users' base DN.
const (
	corpDN   = "ou=Corp," + slapdtest.BaseDN
	peopleDN = "ou=People," + corpDN
	groupsDN = "ou=Groups," + corpDN
)

type testUser struct {
	uid, ou, cn, display string
	dept, phone, kind    string
	photo                []byte
	locked               bool
	manager              string // uid
	rdn                  string // "" = uid=<uid>
}

func (u testUser) dn() string {
	rdn := u.rdn
	if rdn == "" {
		rdn = "uid=" + u.uid
	}
	return rdn + ",ou=" + u.ou + "," + peopleDN
}

func (u testUser) jid() string { return strings.ToLower(u.uid) + "@" + testDomain }

// password is every test user's directory password.
func password(uid string) string { return "pw-" + uid + "-Geheim" }

// testPhoto is a small real JPEG.
func testPhoto(t testing.TB, shade uint8) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	for x := range 8 {
		for y := range 8 {
			img.Set(x, y, color.RGBA{shade, uint8(x * 30), uint8(y * 30), 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func treeUsers(t testing.TB) []testUser {
	var users []testUser
	add := func(prefix, ou, dept string, n int) {
		for i := 1; i <= n; i++ {
			uid := fmt.Sprintf("%s%02d", prefix, i)
			users = append(users, testUser{uid: uid, ou: ou, cn: strings.ToUpper(uid[:1]) + uid[1:] + " Person",
				display: fmt.Sprintf("%s %s Person", dept, uid), dept: dept, phone: "+49 30 1234 " + uid})
		}
	}
	add("s", "Sales", "Sales", 15)
	add("e", "Engineering", "Engineering", 20)
	add("m", "Management", "Management", 5)
	add("p", "Support", "Support", 6)
	users = append(users,
		testUser{uid: "jürgen.groß", ou: "Engineering", cn: "Jürgen Groß", display: "Jürgen Groß", dept: "Engineering",
			phone: "+49 30 5555", photo: testPhoto(t, 200)},
		testUser{uid: "dora", ou: "Sales", cn: "Dora Disabled", display: "Dora Disabled", dept: "Sales", locked: true},
		testUser{uid: "gustav", ou: "Guests", cn: "Gustav Gast", display: "Gustav Gast", kind: "Guest", manager: "m01"},
		testUser{uid: "jane.doe", ou: "Sales", cn: "Doe, Jane", display: "Jane Doe", dept: "Sales", rdn: `cn=Doe\, Jane`},
	)
	return users
}

// ldifAttr writes one attribute line, base64 for values that are not
// plain ASCII (RFC 2849 SAFE-STRING).
func ldifAttr(b *strings.Builder, name string, value []byte) {
	safe := utf8.Valid(value)
	for i, c := range value {
		if c < 0x20 || c > 0x7e || (i == 0 && (c == ' ' || c == ':' || c == '<')) {
			safe = false
		}
	}
	if safe && len(value) > 0 && value[len(value)-1] != ' ' {
		fmt.Fprintf(b, "%s: %s\n", name, value)
	} else {
		fmt.Fprintf(b, "%s:: %s\n", name, base64.StdEncoding.EncodeToString(value))
	}
}

func entryLDIF(b *strings.Builder, dn string, attrs ...[2]string) {
	ldifAttr(b, "dn", []byte(dn))
	for _, a := range attrs {
		ldifAttr(b, a[0], []byte(a[1]))
	}
	b.WriteString("\n")
}

func userLDIF(b *strings.Builder, u testUser, byUID map[string]testUser) {
	attrs := [][2]string{{"objectClass", "inetOrgPerson"}, {"uid", u.uid}, {"cn", u.cn}, {"sn", "Person"},
		{"displayName", u.display}, {"mail", u.uid + "@corp.example.com"}, {"userPassword", password(u.uid)}}
	if u.dept != "" {
		attrs = append(attrs, [2]string{"departmentNumber", u.dept})
	}
	if u.phone != "" {
		attrs = append(attrs, [2]string{"telephoneNumber", u.phone})
	}
	if u.kind != "" {
		attrs = append(attrs, [2]string{"employeeType", u.kind})
	}
	if u.manager != "" {
		attrs = append(attrs, [2]string{"manager", byUID[u.manager].dn()})
	}
	if u.locked {
		attrs = append(attrs, [2]string{"pwdAccountLockedTime", "000001010000Z"})
	}
	if len(u.photo) > 0 {
		attrs = append(attrs, [2]string{"jpegPhoto", string(u.photo)})
	}
	attrs = append(attrs, [2]string{"o", "Kontor GmbH"})
	entryLDIF(b, u.dn(), attrs...)
}

// treeLDIF is the seed: the tree above.
func treeLDIF(users []testUser) []byte {
	var b strings.Builder
	byUID := map[string]testUser{}
	for _, u := range users {
		byUID[u.uid] = u
	}
	entryLDIF(&b, corpDN, [2]string{"objectClass", "organizationalUnit"}, [2]string{"ou", "Corp"})
	entryLDIF(&b, peopleDN, [2]string{"objectClass", "organizationalUnit"}, [2]string{"ou", "People"})
	entryLDIF(&b, groupsDN, [2]string{"objectClass", "organizationalUnit"}, [2]string{"ou", "Groups"})
	for _, ou := range []string{"Sales", "Engineering", "Management", "Support", "Guests"} {
		entryLDIF(&b, "ou="+ou+","+peopleDN, [2]string{"objectClass", "organizationalUnit"}, [2]string{"ou", ou})
	}
	for _, u := range users {
		userLDIF(&b, u, byUID)
	}
	// Outside the users' base DN: never synced, even as a group member.
	entryLDIF(&b, "uid=backup,"+corpDN, [2]string{"objectClass", "inetOrgPerson"}, [2]string{"uid", "backup"},
		[2]string{"cn", "Backup"}, [2]string{"sn", "Service"})
	member := func(uids ...string) [][2]string {
		var out [][2]string
		for _, uid := range uids {
			out = append(out, [2]string{"member", byUID[uid].dn()})
		}
		return out
	}
	ofPrefix := func(prefix string) []string {
		var out []string
		for _, u := range users {
			if strings.HasPrefix(u.uid, prefix) && len(u.uid) == 3 {
				out = append(out, u.uid)
			}
		}
		return out
	}
	grp := func(cn string, members [][2]string) {
		attrs := append([][2]string{{"objectClass", "groupOfNames"}, {"cn", cn}}, members...)
		entryLDIF(&b, "cn="+cn+","+groupsDN, attrs...)
	}
	sales := append(member(append(ofPrefix("s"), "dora")...), [2]string{"member", "cn=Sales EU," + groupsDN})
	grp("Sales", sales)
	// Jane's DN spelled differently: upper case, the comma as \2C.
	grp("Sales EU", append(member("s01", "s02", "s03"),
		[2]string{"member", `CN=Doe\2C Jane,OU=Sales,OU=People,OU=Corp,DC=KONTOR,DC=test`}))
	grp("Engineering", append(member(append(ofPrefix("e"), "jürgen.groß")...), [2]string{"member", "uid=backup," + corpDN}))
	grp("Management", member(ofPrefix("m")...))
	grp("Support", member(ofPrefix("p")...))
	grp("Everyone", [][2]string{{"member", "cn=Sales," + groupsDN}, {"member", "cn=Engineering," + groupsDN},
		{"member", "cn=Management," + groupsDN}, {"member", "cn=Support," + groupsDN}})
	grp("Cycle A", append(member("p01"), [2]string{"member", "cn=Cycle B," + groupsDN}))
	grp("Cycle B", append(member("p02"), [2]string{"member", "cn=Cycle A," + groupsDN}))
	return []byte(b.String())
}

// testConfig is a configuration for a slapdtest server.
func testConfig(s *slapdtest.Server) Config {
	return Config{
		Enabled: true, Flavor: OpenLDAP, URLs: []string{s.URL}, StartTLS: true, CAFile: s.CAFile,
		BindDN: slapdtest.ServiceDN, BindPassword: slapdtest.ServicePassword,
		DialTimeout: 2 * time.Second, RequestTimeout: 10 * time.Second,
		ReconnectBackoff: 50 * time.Millisecond, MaxReconnectBackoff: 200 * time.Millisecond, PageSize: 100,
		Users: UsersConfig{BaseDN: peopleDN, KindAttribute: "employeeType", GuestValues: []string{"guest"},
			SponsorAttribute: "manager"},
		Groups: GroupsConfig{BaseDN: groupsDN, Roster: true, MaxRosterSize: 500},
		Sync:   SyncConfig{Interval: time.Minute, FullInterval: 24 * time.Hour, DeleteAfter: time.Hour, MaxGonePercent: 20},
		Login:  LoginConfig{Enabled: true, PoolSize: 2, BadPasswordCache: time.Minute},
	}
}

// openStore opens a fresh store of a backend for t.
func openStore(t testing.TB, backend string) Store {
	t.Helper()
	var (
		st  storage.Store
		err error
	)
	switch backend {
	case "sqlite":
		st, err = sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "kontor.db"))
	case "postgres":
		st, err = postgres.Open(context.Background(), pgtest.DSN(t))
	default:
		t.Fatalf("unknown backend %q", backend)
	}
	if err != nil {
		t.Fatalf("open %s store: %v", backend, err)
	}
	t.Cleanup(func() { st.Close() })
	return st.(Store)
}

// clock is a test clock that starts now and moves when told.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

// recordingSink is a directory.Sink that keeps what it was handed.
type recordingSink struct {
	mu    sync.Mutex
	snaps []directory.Snapshot
}

func (r *recordingSink) UpdateDirectory(_ context.Context, s directory.Snapshot) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snaps = append(r.snaps, s)
	return nil
}

func (r *recordingSink) last(t testing.TB) directory.Snapshot {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.snaps) == 0 {
		t.Fatal("no snapshot was handed to the sink")
	}
	return r.snaps[len(r.snaps)-1]
}

func (r *recordingSink) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.snaps)
}

// memAudit is an audit.Log kept in memory, chained like the real one.
type memAudit struct {
	mu      sync.Mutex
	entries []audit.Entry
}

func (m *memAudit) Append(_ context.Context, e audit.Entry) (audit.Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e.Seq, e.At = int64(len(m.entries)+1), time.Now().UTC()
	m.entries = append(m.entries, e)
	return e, nil
}

func (m *memAudit) all() []audit.Entry {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]audit.Entry(nil), m.entries...)
}

// env is a slapd, a store and a syncer for one test.
type env struct {
	slapd  *slapdtest.Server
	store  Store
	client *Client
	syncer *Syncer
	sink   *recordingSink
	audit  *memAudit
	clock  *clock
	cfg    Config
	logs   *bytes.Buffer
	logMu  *sync.Mutex
}

type lockedBuffer struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (l lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func newEnv(t testing.TB, backend string, seed []byte, mutate func(*Config)) *env {
	t.Helper()
	s := slapdtest.Start(t, slapdtest.Options{Seed: seed})
	cfg := testConfig(s)
	if mutate != nil {
		mutate(&cfg)
	}
	e := newEnvFor(t, backend, cfg)
	e.slapd = s
	return e
}

// newEnvFor builds store, client and syncer for a configuration.
func newEnvFor(t testing.TB, backend string, cfg Config) *env {
	t.Helper()
	e := &env{store: openStore(t, backend), sink: &recordingSink{}, audit: &memAudit{}, clock: &clock{},
		logs: &bytes.Buffer{}, logMu: &sync.Mutex{}, cfg: cfg}
	if p := e.cfg.Validate([]string{testDomain}); len(p) > 0 {
		t.Fatalf("test config is invalid: %v", p)
	}
	log := slog.New(slog.NewTextHandler(lockedBuffer{e.logMu, e.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var err error
	if e.client, err = NewClient(e.cfg, log); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.client.Close() })
	e.syncer, err = NewSyncer(Options{Config: e.cfg, Domain: testDomain, Store: e.store, Client: e.client, Log: log,
		Sink: e.sink, Audit: e.audit, Now: e.clock.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", e.log())
		}
	})
	return e
}

func (e *env) log() string {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	return e.logs.String()
}

// sync runs a sync and fails the test on an error.
func (e *env) sync(t testing.TB, o SyncOptions) *Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := e.syncer.Sync(ctx, o)
	if err != nil {
		t.Fatalf("Sync(%+v): %v", o, err)
	}
	return rep
}

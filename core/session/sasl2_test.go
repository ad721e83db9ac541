package session_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"kontor.im/kontor/core/account"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/limit"
	"kontor.im/kontor/core/sasl"
	"kontor.im/kontor/core/session"
)

const (
	nsSASL2   = "urn:xmpp:sasl:2"
	nsBind2   = "urn:xmpp:bind:0"
	nsFAST    = "urn:xmpp:fast:0"
	nsSASL    = "urn:ietf:params:xml:ns:xmpp-sasl"
	uaID      = "3f6b1a2c-9d4e-4f50-8a61-7b2c3d4e5f60"
	uaElement = "<user-agent id='" + uaID + "'><software>TestClient</software><device>laptop</device></user-agent>"
)

// lazyFAST lets a test wire FAST to the store startSM creates.
type lazyFAST struct {
	mu sync.Mutex
	f  *account.FAST
}

func (l *lazyFAST) get() *account.FAST { l.mu.Lock(); defer l.mu.Unlock(); return l.f }

func (l *lazyFAST) Issue(ctx context.Context, a jid.JID, client, mech string) (string, time.Time, error) {
	return l.get().Issue(ctx, a, client, mech)
}

func (l *lazyFAST) Verify(ctx context.Context, a jid.JID, client, mech string, count int64, p func([]byte) bool) ([]byte, bool, error) {
	return l.get().Verify(ctx, a, client, mech, count, p)
}

func (l *lazyFAST) Invalidate(ctx context.Context, a jid.JID, client string) error {
	return l.get().Invalidate(ctx, a, client)
}

// fastEnv is a server with the carbons module and FAST on a clock the
// test controls.
type fastEnv struct {
	*smEnv
	mu  sync.Mutex
	now time.Time
}

func (e *fastEnv) advance(d time.Duration) { e.mu.Lock(); e.now = e.now.Add(d); e.mu.Unlock() }

func startFAST(t *testing.T, mutate func(*session.Config)) *fastEnv {
	t.Helper()
	lf := &lazyFAST{}
	fe := &fastEnv{now: time.Now()}
	e := startSM(t, []string{"presence", "carbons"}, func(c *session.Config) {
		c.FAST = lf
		if mutate != nil {
			mutate(c)
		}
	})
	fe.smEnv = e
	lf.mu.Lock()
	lf.f = &account.FAST{Store: e.store.(account.FASTStore), Key: bytes.Repeat([]byte{0x42}, 32), Lifetime: time.Hour,
		Now: func() time.Time { fe.mu.Lock(); defer fe.mu.Unlock(); return fe.now }}
	lf.mu.Unlock()
	return fe
}

// tlsFeatures runs STARTTLS and returns the features of the TLS stream.
func (c *xc) tlsFeatures() node {
	c.t.Helper()
	c.open()
	c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	if n := c.must(); n.XMLName.Local != "proceed" {
		c.t.Fatalf("%s: starttls: %s", c.name, n)
	}
	tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true}) // test server with a throwaway certificate
	if err := tc.Handshake(); err != nil {
		c.t.Fatal(err)
	}
	c.conn = tc
	return c.open()
}

func plain(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
}

// authenticate sends a SASL2 <authenticate/> with a PLAIN initial response
// and the given extra children, and returns the answer.
func (c *xc) authenticate(mech, initial, extra string) node {
	c.t.Helper()
	c.send("<authenticate xmlns='urn:xmpp:sasl:2' mechanism='" + mech + "'><initial-response>" + initial +
		"</initial-response>" + extra + "</authenticate>")
	return c.must()
}

func texts(n node, space, local string) []string {
	var out []string
	for _, ch := range n.Nodes {
		if ch.is(space, local) {
			out = append(out, ch.Text)
		}
	}
	return out
}

func TestSASL2Features(t *testing.T) {
	e := startFAST(t, nil)
	c := dialX(t, e.smEnv, "alice")
	f := c.tlsFeatures()
	auth, ok := f.child(nsSASL2, "authentication")
	if !ok {
		t.Fatalf("no SASL2 feature: %s", f)
	}
	if got := strings.Join(texts(auth, nsSASL2, "mechanism"), " "); got != "SCRAM-SHA-256-PLUS SCRAM-SHA-1-PLUS SCRAM-SHA-256 SCRAM-SHA-1 PLAIN" {
		t.Errorf("SASL2 mechanisms: %s", got)
	}
	inline, _ := auth.child(nsSASL2, "inline")
	bind, ok := inline.child(nsBind2, "bind")
	if !ok {
		t.Fatalf("no Bind 2: %s", auth)
	}
	bi, _ := bind.child(nsBind2, "inline")
	var vars []string
	for _, ft := range bi.Nodes {
		vars = append(vars, ft.attr("var"))
	}
	if got := strings.Join(vars, " "); got != "urn:xmpp:carbons:2 urn:xmpp:csi:0 urn:xmpp:sm:3" {
		t.Errorf("Bind 2 inline features: %s", got)
	}
	if _, ok := inline.child(nsSM, "sm"); !ok {
		t.Errorf("no inline SM resumption: %s", inline)
	}
	fast, ok := inline.child(nsFAST, "fast")
	if got := strings.Join(texts(fast, nsFAST, "mechanism"), " "); !ok || got != "HT-SHA-256-EXPR HT-SHA-256-NONE" {
		t.Errorf("FAST mechanisms: %q (%s)", got, inline)
	}
	if _, ok := fast.child(nsFAST, "tls-0rtt"); ok || fast.attr("tls-0rtt") != "" {
		t.Errorf("0-RTT must not be offered: %s", fast)
	}
	// The classic features are still there.
	if _, ok := f.child(nsSASL, "mechanisms"); !ok {
		t.Errorf("RFC 6120 SASL missing: %s", f)
	}

	// Without FAST, and with SASL2 off.
	c2 := dialX(t, startSM(t, nil, nil), "bob")
	auth, _ = c2.tlsFeatures().child(nsSASL2, "authentication")
	inline, _ = auth.child(nsSASL2, "inline")
	if _, ok := inline.child(nsFAST, "fast"); ok {
		t.Errorf("FAST offered without token storage: %s", auth)
	}
	bind, _ = inline.child(nsBind2, "bind")
	bi, _ = bind.child(nsBind2, "inline")
	for _, ft := range bi.Nodes {
		if ft.attr("var") == "urn:xmpp:carbons:2" {
			t.Errorf("carbons offered inline without the carbons module")
		}
	}
	c3 := dialX(t, startSM(t, nil, func(c *session.Config) { c.DisableSASL2 = true }), "carol")
	if f := c3.tlsFeatures(); func() bool { _, ok := f.child(nsSASL2, "authentication"); return ok }() {
		t.Errorf("SASL2 offered though disabled: %s", f)
	}
	// Not before TLS.
	c4 := dialX(t, e.smEnv, "plain")
	if f := c4.open(); func() bool { _, ok := f.child(nsSASL2, "authentication"); return ok }() {
		t.Errorf("SASL2 offered before TLS: %s", f)
	}
}

// bind2Login logs in with SASL2 PLAIN and Bind 2, asks for a FAST token
// and enables stream management and carbons inline; it returns <success/>.
func bind2Login(t *testing.T, c *xc, user string) node {
	t.Helper()
	c.tlsFeatures()
	succ := c.authenticate("PLAIN", plain(user, "secret-password"), uaElement+
		"<bind xmlns='urn:xmpp:bind:0'><tag>TestClient</tag><enable xmlns='urn:xmpp:sm:3' resume='true'/>"+
		"<enable xmlns='urn:xmpp:carbons:2'/><inactive xmlns='urn:xmpp:csi:0'/></bind>"+
		"<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/>")
	if !succ.is(nsSASL2, "success") {
		t.Fatalf("%s: SASL2 login: %s", c.name, succ)
	}
	return succ
}

func TestSASL2Bind2(t *testing.T) {
	e := startFAST(t, nil)
	alice := dialX(t, e.smEnv, "alice")
	succ := bind2Login(t, alice, "alice")
	id, _ := succ.child(nsSASL2, "authorization-identifier")
	if !strings.HasPrefix(id.Text, "alice@example.com/TestClient/") || strings.Contains(id.Text, uaID) {
		t.Fatalf("authorization-identifier %q", id.Text)
	}
	bound, ok := succ.child(nsBind2, "bound")
	if !ok {
		t.Fatalf("no <bound/>: %s", succ)
	}
	enabled, ok := bound.child(nsSM, "enabled")
	if !ok || enabled.attr("resume") != "true" || enabled.attr("id") == "" {
		t.Fatalf("no <enabled/> in <bound/>: %s", bound)
	}
	tok, ok := succ.child(nsFAST, "token")
	if !ok || len(tok.attr("token")) < 40 {
		t.Fatalf("no FAST token: %s", succ)
	}
	if exp, err := time.Parse(time.RFC3339, tok.attr("expiry")); err != nil || exp.Before(time.Now().Add(50*time.Minute)) {
		t.Errorf("token expiry %q", tok.attr("expiry"))
	}
	// New features, no stream restart, no resource binding.
	f := alice.must()
	if !f.is("http://etherx.jabber.org/streams", "features") {
		t.Fatalf("want features after success, got %s", f)
	}
	if _, ok := f.child("urn:ietf:params:xml:ns:xmpp-bind", "bind"); ok {
		t.Errorf("resource binding offered to a bound stream: %s", f)
	}
	if _, ok := f.child(nsSM, "sm"); ok {
		t.Errorf("SM offered though enabled inline: %s", f)
	}
	alice.jid, alice.counts = id.Text, true
	// Stream management is on: <r/> is answered.
	alice.send("<r xmlns='urn:xmpp:sm:3'/>")
	if a := alice.must(); !a.is(nsSM, "a") || a.attr("h") != "0" {
		t.Fatalf("want <a h='0'/>, got %s", a)
	}
	alice.send("<presence/>")

	// Carbons were enabled inline: a message bob sends to alice's other
	// resource reaches this one as a carbon.
	other := dialX(t, e.smEnv, "alice-2")
	other.login("alice", "phone")
	other.send("<presence/>")
	bob := dialX(t, e.smEnv, "bob")
	bob.login("bob", "desk")
	// The inline CSI state holds presences; become active to see them.
	alice.send("<active xmlns='urn:xmpp:csi:0'/>")
	bob.send("<message to='alice@example.com/phone' type='chat' id='m1'><body>hi</body></message>")
	for {
		n := alice.must()
		if n.is("jabber:client", "message") {
			if _, ok := n.child("urn:xmpp:carbons:2", "received"); !ok {
				t.Fatalf("want a carbon, got %s", n)
			}
			break
		}
	}

	// The same installation binding again gets the same resource and
	// replaces the earlier session.
	again := dialX(t, e.smEnv, "alice-again")
	succ2 := bind2Login(t, again, "alice")
	id2, _ := succ2.child(nsSASL2, "authorization-identifier")
	if id2.Text != id.Text {
		t.Errorf("resource not stable: %q, then %q", id.Text, id2.Text)
	}
	if se := alice.ended(wait); !strings.Contains(se.String(), "conflict") {
		t.Errorf("earlier session ended with %s, want conflict", se)
	}
	// Another installation gets another resource.
	c3 := dialX(t, e.smEnv, "alice-3")
	c3.tlsFeatures()
	succ3 := c3.authenticate("PLAIN", plain("alice", "secret-password"),
		"<user-agent id='another-install'/><bind xmlns='urn:xmpp:bind:0'><tag>TestClient</tag></bind>")
	id3, _ := succ3.child(nsSASL2, "authorization-identifier")
	if id3.Text == id.Text || !strings.HasPrefix(id3.Text, "alice@example.com/TestClient/") {
		t.Errorf("another installation got %q (first: %q)", id3.Text, id.Text)
	}
}

// TestSASL2WithoutBind: SASL2 alone saves the restart; the client binds
// as before.
func TestSASL2WithoutBind(t *testing.T) {
	e := startSM(t, nil, nil)
	c := dialX(t, e, "alice")
	c.tlsFeatures()
	succ := c.authenticate("PLAIN", plain("alice", "secret-password"), "")
	id, _ := succ.child(nsSASL2, "authorization-identifier")
	if !succ.is(nsSASL2, "success") || id.Text != "alice@example.com" {
		t.Fatalf("success: %s", succ)
	}
	f := c.must()
	if _, ok := f.child("urn:ietf:params:xml:ns:xmpp-bind", "bind"); !ok {
		t.Fatalf("no resource binding offered: %s", f)
	}
	c.bind("laptop")
	if c.jid != "alice@example.com/laptop" {
		t.Errorf("bound %q", c.jid)
	}
}

func TestSASL2SCRAM(t *testing.T) {
	e := startSM(t, nil, nil)
	c := dialX(t, e, "alice")
	c.tlsFeatures()
	const cnonce = "fyko+d2lbbFgONRv9qkxdawL"
	ch := c.authenticate("SCRAM-SHA-256", base64.StdEncoding.EncodeToString([]byte("n,,n=alice,r="+cnonce)), "")
	if !ch.is(nsSASL2, "challenge") {
		t.Fatalf("want a SASL2 challenge, got %s", ch)
	}
	first, _ := base64.StdEncoding.DecodeString(ch.Text)
	final := scramFinal(t, "secret-password", "n=alice,r="+cnonce, string(first))
	c.send("<response xmlns='urn:xmpp:sasl:2'>" + base64.StdEncoding.EncodeToString([]byte(final)) + "</response>")
	succ := c.must()
	if !succ.is(nsSASL2, "success") {
		t.Fatalf("SCRAM over SASL2: %s", succ)
	}
	ad, _ := succ.child(nsSASL2, "additional-data")
	if v, _ := base64.StdEncoding.DecodeString(ad.Text); !strings.HasPrefix(string(v), "v=") {
		t.Errorf("additional data %q", v)
	}
}

func TestSASL2Failures(t *testing.T) {
	e := startSM(t, nil, func(c *session.Config) {
		c.AuthGuard = limit.NewAuth(limit.AuthConfig{MaxPerIP: 100, MaxPerAccount: 2, Backoff: time.Minute})
		c.MaxAuthAttempts = 10
	})
	c := dialX(t, e, "alice")
	c.tlsFeatures()
	tests := []struct {
		name, mech, initial, extra, cond string
	}{
		{"wrong password", "PLAIN", plain("alice", "wrong"), "", "not-authorized"},
		{"unknown mechanism", "DIGEST-MD5", "", "", "invalid-mechanism"},
		{"upgrade not offered", "PLAIN' upgrade='SCRAM-SHA-512", plain("alice", "secret-password"), "", "malformed-request"},
		{"bad base64", "PLAIN", "!!!", "", "malformed-request"},
		{"FAST not offered", "HT-SHA-256-NONE", "", "", "invalid-mechanism"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := c.authenticate(tt.mech, tt.initial, tt.extra)
			if !f.is(nsSASL2, "failure") {
				t.Fatalf("want a SASL2 failure, got %s", f)
			}
			if _, ok := f.child(nsSASL, tt.cond); !ok {
				t.Errorf("want %s, got %s", tt.cond, f)
			}
		})
	}
	// The second wrong password puts the account in back-off: even the
	// right one is refused now, as with RFC 6120 SASL.
	c.authenticate("PLAIN", plain("alice", "wrong"), "")
	f := c.authenticate("PLAIN", plain("alice", "secret-password"), "")
	if _, ok := f.child(nsSASL, "temporary-auth-failure"); !ok {
		t.Fatalf("back-off: %s", f)
	}
}

// TestSASL2ThenClassic: after a failed SASL2 attempt, RFC 6120 SASL works
// as before (its own namespace, and a stream restart).
func TestSASL2ThenClassic(t *testing.T) {
	e := startSM(t, nil, nil)
	c := dialX(t, e, "alice")
	c.tlsFeatures()
	if f := c.authenticate("PLAIN", plain("alice", "wrong"), ""); !f.is(nsSASL2, "failure") {
		t.Fatalf("want a SASL2 failure, got %s", f)
	}
	c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + plain("alice", "wrong") + "</auth>")
	if f := c.must(); !f.is(nsSASL, "failure") {
		t.Fatalf("RFC 6120 failure after a SASL2 one: %s", f)
	}
	c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + plain("alice", "secret-password") + "</auth>")
	if n := c.must(); !n.is(nsSASL, "success") {
		t.Fatalf("RFC 6120 login after a SASL2 failure: %s", n)
	}
	f := c.open()
	if _, ok := f.child("urn:ietf:params:xml:ns:xmpp-bind", "bind"); !ok {
		t.Fatalf("features after the restart: %s", f)
	}
	c.bind("desk")
}

// fastLogin logs in with a token and HT-SHA-256-NONE.
func fastLogin(t *testing.T, c *xc, user, token, fast, extra string) node {
	t.Helper()
	proof := sasl.HTInitiator([]byte(token), nil)
	ir := base64.StdEncoding.EncodeToString(append([]byte(user+"\x00"), proof...))
	return c.authenticate("HT-SHA-256-NONE", ir, uaElement+fast+extra)
}

func TestFASTLogin(t *testing.T) {
	e := startFAST(t, nil)
	first := dialX(t, e.smEnv, "first")
	succ := bind2Login(t, first, "alice")
	tokEl, _ := succ.child(nsFAST, "token")
	token := tokEl.attr("token")
	first.must() // features

	// One round trip with the token: <success/> straight away, with the
	// server's proof.
	c := dialX(t, e.smEnv, "fast")
	c.tlsFeatures()
	succ = fastLogin(t, c, "alice", token, "<fast xmlns='urn:xmpp:fast:0' count='1'/>",
		"<bind xmlns='urn:xmpp:bind:0'><tag>TestClient</tag></bind>")
	if !succ.is(nsSASL2, "success") {
		t.Fatalf("FAST login: %s", succ)
	}
	ad, _ := succ.child(nsSASL2, "additional-data")
	if got, _ := base64.StdEncoding.DecodeString(ad.Text); !bytes.Equal(got, sasl.HTResponder([]byte(token), nil)) {
		t.Errorf("server proof %x", got)
	}
	if _, ok := succ.child(nsFAST, "token"); ok {
		t.Errorf("a fresh token was rotated: %s", succ)
	}
	if _, ok := succ.child(nsBind2, "bound"); !ok {
		t.Errorf("no Bind 2 with FAST: %s", succ)
	}

	fail := func(name, user, token, fast string, cond string) {
		t.Helper()
		c := dialX(t, e.smEnv, name)
		c.tlsFeatures()
		f := fastLogin(t, c, user, token, fast, "")
		if _, ok := f.child(nsSASL, cond); !f.is(nsSASL2, "failure") || !ok {
			t.Errorf("%s: want %s, got %s", name, cond, f)
		}
	}
	noUA := dialX(t, e.smEnv, "no user agent")
	noUA.tlsFeatures()
	if f := noUA.authenticate("HT-SHA-256-NONE", "", "<fast xmlns='urn:xmpp:fast:0'/>"); !strings.Contains(f.String(), "malformed-request") {
		t.Errorf("FAST without a user-agent id: %s", f)
	}
	fail("wrong token", "alice", "not-the-token", "<fast xmlns='urn:xmpp:fast:0'/>", "not-authorized")
	fail("other account", "bob", token, "<fast xmlns='urn:xmpp:fast:0'/>", "not-authorized")
	fail("replayed count", "alice", token, "<fast xmlns='urn:xmpp:fast:0' count='1'/>", "not-authorized")

	// Past half its lifetime the token is rotated; the new one works.
	e.advance(40 * time.Minute)
	c2 := dialX(t, e.smEnv, "rotate")
	c2.tlsFeatures()
	succ = fastLogin(t, c2, "alice", token, "<fast xmlns='urn:xmpp:fast:0' count='2'/>", "")
	newTok, ok := succ.child(nsFAST, "token")
	if !succ.is(nsSASL2, "success") || !ok || newTok.attr("token") == token {
		t.Fatalf("rotation: %s", succ)
	}
	c3 := dialX(t, e.smEnv, "new token")
	c3.tlsFeatures()
	if succ := fastLogin(t, c3, "alice", newTok.attr("token"), "<fast xmlns='urn:xmpp:fast:0'/>", ""); !succ.is(nsSASL2, "success") {
		t.Fatalf("rotated token: %s", succ)
	}
	// Using the new token retired the old one.
	fail("retired token", "alice", token, "<fast xmlns='urn:xmpp:fast:0'/>", "not-authorized")
	// Expired.
	e.advance(2 * time.Hour)
	fail("expired token", "alice", newTok.attr("token"), "<fast xmlns='urn:xmpp:fast:0'/>", "credentials-expired")
}

func TestFASTInvalidateAndBackoff(t *testing.T) {
	e := startFAST(t, func(c *session.Config) {
		c.AuthGuard = limit.NewAuth(limit.AuthConfig{MaxPerIP: 100, MaxPerAccount: 2, Backoff: time.Minute})
	})
	first := dialX(t, e.smEnv, "first")
	succ := bind2Login(t, first, "alice")
	tokEl, _ := succ.child(nsFAST, "token")
	token := tokEl.attr("token")

	c := dialX(t, e.smEnv, "logout")
	c.tlsFeatures()
	if succ := fastLogin(t, c, "alice", token, "<fast xmlns='urn:xmpp:fast:0' invalidate='true'/>", ""); !succ.is(nsSASL2, "success") {
		t.Fatalf("invalidating login: %s", succ)
	}
	c2 := dialX(t, e.smEnv, "after logout")
	c2.tlsFeatures()
	if f := fastLogin(t, c2, "alice", token, "<fast xmlns='urn:xmpp:fast:0'/>", ""); !f.is(nsSASL2, "failure") {
		t.Fatalf("invalidated token accepted: %s", f)
	}
	// That was the first failure; one more puts alice in back-off, and
	// then a password login is refused too.
	if f := fastLogin(t, c2, "alice", "guess", "<fast xmlns='urn:xmpp:fast:0'/>", ""); !f.is(nsSASL2, "failure") {
		t.Fatalf("guess accepted: %s", f)
	}
	f := c2.authenticate("PLAIN", plain("alice", "secret-password"), "")
	if _, ok := f.child(nsSASL, "temporary-auth-failure"); !ok {
		t.Fatalf("token guesses do not count towards back-off: %s", f)
	}
}

// TestSASL2Resume: a resumable session is resumed inside <authenticate/>.
func TestSASL2Resume(t *testing.T) {
	e := startFAST(t, nil)
	alice := dialX(t, e.smEnv, "alice")
	succ := bind2Login(t, alice, "alice")
	alice.must() // features
	bound, _ := succ.child(nsBind2, "bound")
	enabled, _ := bound.child(nsSM, "enabled")
	id, _ := succ.child(nsSASL2, "authorization-identifier")
	alice.cut()
	deadline := time.Now().Add(wait)
	for e.srv.DetachedCount() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the session did not detach")
		}
		time.Sleep(10 * time.Millisecond)
	}
	bob := dialX(t, e.smEnv, "bob")
	bob.login("bob", "desk")
	bob.send("<message to='" + id.Text + "' type='chat' id='m1'><body>while away</body></message>")

	c := dialX(t, e.smEnv, "alice-back")
	c.tlsFeatures()
	succ = c.authenticate("PLAIN", plain("alice", "secret-password"), uaElement+
		fmt.Sprintf("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='0'/>", enabled.attr("id"))+
		"<bind xmlns='urn:xmpp:bind:0'><tag>TestClient</tag></bind>")
	resumed, ok := succ.child(nsSM, "resumed")
	if !ok || resumed.attr("previd") != enabled.attr("id") {
		t.Fatalf("no <resumed/> in success: %s", succ)
	}
	if _, ok := succ.child(nsBind2, "bound"); ok {
		t.Errorf("bound again after a resumption: %s", succ)
	}
	if got, _ := succ.child(nsSASL2, "authorization-identifier"); got.Text != id.Text {
		t.Errorf("authorization-identifier %q, want %q", got.Text, id.Text)
	}
	c.must() // features
	for {
		n := c.must()
		if n.is("jabber:client", "message") {
			if b, _ := n.child("jabber:client", "body"); b.Text != "while away" {
				t.Fatalf("resent %s", n)
			}
			break
		}
	}

	// An unknown id: <failed/> in the success, and the bind goes ahead.
	c2 := dialX(t, e.smEnv, "alice-fail")
	c2.tlsFeatures()
	succ = c2.authenticate("PLAIN", plain("alice", "secret-password"),
		"<resume xmlns='urn:xmpp:sm:3' previd='nope' h='0'/><bind xmlns='urn:xmpp:bind:0'/>")
	if _, ok := succ.child(nsSM, "failed"); !ok {
		t.Errorf("no <failed/>: %s", succ)
	}
	if _, ok := succ.child(nsBind2, "bound"); !ok {
		t.Errorf("no <bound/> after a failed resumption: %s", succ)
	}
}

// scramFinal computes the SCRAM-SHA-256 client-final-message (RFC 5802 §3)
// for a password, the client-first-message-bare and the server-first-
// message.
func scramFinal(t *testing.T, password, bare, serverFirst string) string {
	t.Helper()
	var nonce, salt string
	var iter int
	for _, kv := range strings.Split(serverFirst, ",") {
		switch {
		case strings.HasPrefix(kv, "r="):
			nonce = kv[2:]
		case strings.HasPrefix(kv, "s="):
			salt = kv[2:]
		case strings.HasPrefix(kv, "i="):
			fmt.Sscan(kv[2:], &iter)
		}
	}
	s, err := base64.StdEncoding.DecodeString(salt)
	if err != nil || iter == 0 {
		t.Fatalf("server-first-message %q", serverFirst)
	}
	salted, err := pbkdf2.Key(sha256.New, password, s, iter, sha256.Size)
	if err != nil {
		t.Fatal(err)
	}
	mac := func(key []byte, msg string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	withoutProof := "c=biws,r=" + nonce
	sig := mac(stored[:], bare+","+serverFirst+","+withoutProof)
	for i := range clientKey {
		clientKey[i] ^= sig[i]
	}
	return withoutProof + ",p=" + base64.StdEncoding.EncodeToString(clientKey)
}

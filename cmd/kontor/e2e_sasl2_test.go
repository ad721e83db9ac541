package main

// End-to-end test of SASL2 (XEP-0388), Bind 2 (XEP-0386) and FAST
// (XEP-0484) with a client library that is not ours: github.com/xmppo/go-xmpp
// v0.4.1 (the library go-sendxmpp is built on) logs in with SASL2 and Bind
// 2, takes a FAST token and logs in again with it, without the password.
// bob uses mellium.im/xmpp, which knows only RFC 6120 SASL and resource
// binding: the classic path, unchanged.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	cws "github.com/coder/websocket"
	goxmpp "github.com/xmppo/go-xmpp"

	"kontor.im/kontor/core/account"
	kjid "kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/storage"
)

// goxmppOptions are the options of a go-xmpp client of the test server
// over direct TLS, with SASL2, Bind 2 and FAST.
func (ts *testServer) goxmppOptions(user, password, uaID string) goxmpp.Options {
	return goxmpp.Options{
		Host:        ts.addr("direct_tls"),
		User:        bare(user),
		Password:    password,
		TLSConfig:   ts.tlsConfig(),
		UserAgentSW: "kontor-e2e",
		UserAgentID: uaID,
		Fast:        true,
		NoPLAIN:     true,
		DialTimeout: e2eWait,
	}
}

// goxmppClient is a go-xmpp client whose close may be called more than
// once (go-xmpp's Close blocks when called twice).
type goxmppClient struct {
	*goxmpp.Client
	once sync.Once
}

func (c *goxmppClient) close() { c.once.Do(func() { c.Close() }) }

// goxmppLogin logs in; the client is closed when the test ends.
func goxmppLogin(t *testing.T, o goxmpp.Options) (*goxmppClient, error) {
	t.Helper()
	type result struct {
		c   *goxmpp.Client
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := o.NewClient()
		done <- result{c, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, r.err
		}
		c := &goxmppClient{Client: r.c}
		t.Cleanup(c.close)
		return c, nil
	case <-time.After(15 * time.Second):
		t.Fatal("go-xmpp login did not finish")
		return nil, nil
	}
}

func TestE2ESASL2FAST(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		ts := startTestServer(t, backend, nil)
		ts.addUser(t, "alice", "alice-password-1")
		ts.addUser(t, "bob", "bob-password-1")
		const uaID = "0b6c3f0e-5d1a-4c7e-9f2b-8a4d6e1c3b57"

		// The classic path: mellium.im/xmpp, RFC 6120 SASL and binding.
		bob := ts.dial(t, "bob", "bob-password-1")

		// SASL2 with SCRAM (channel-bound over TLS 1.3) and Bind 2, asking
		// for a FAST token.
		alice, err := goxmppLogin(t, ts.goxmppOptions("alice", "alice-password-1", uaID))
		if err != nil {
			t.Fatalf("SASL2 login: %v", err)
		}
		if !strings.HasPrefix(alice.JID(), "alice@localhost/kontor-e2e/") {
			t.Fatalf("Bind 2 resource: %q", alice.JID())
		}
		if alice.Mechanism != "SCRAM-SHA-256-PLUS" {
			t.Errorf("mechanism %q, want SCRAM-SHA-256-PLUS", alice.Mechanism)
		}
		fast := alice.Fast
		if fast.Token == "" || fast.Mechanism != "HT-SHA-256-EXPR" {
			t.Fatalf("no FAST token: %+v", fast)
		}
		if d := time.Until(fast.Expiry); d < 13*24*time.Hour || d > 15*24*time.Hour {
			t.Errorf("token expires in %v, want about auth.fast_token_lifetime (14 days)", d)
		}
		if !strings.Contains(ts.logs.String(), "profile=sasl2") {
			t.Error("the server did not log a SASL2 login")
		}
		if strings.Contains(ts.logs.String(), fast.Token) {
			t.Error("the token is in the server log")
		}
		// The session works: a message reaches bob's classic session.
		if _, _, err := alice.Send(goxmpp.Chat{Remote: bob.JID().String(), Type: "chat", Text: "over sasl2"}); err != nil {
			t.Fatal(err)
		}
		bob.Messages.expect(t, "alice's message", func(n xmlNode) bool {
			return strings.HasPrefix(n.attr("from"), "alice@localhost/kontor-e2e/") && strings.Contains(n.String(), "over sasl2")
		})
		alice.close()

		// FAST: a second connection with the token and no password.
		withToken := func(token string) goxmpp.Options {
			o := ts.goxmppOptions("alice", "", uaID)
			o.FastToken, o.FastMechanism = token, fast.Mechanism
			return o
		}
		again, err := goxmppLogin(t, withToken(fast.Token))
		if err != nil {
			t.Fatalf("FAST login: %v", err)
		}
		if again.Mechanism != "HT-SHA-256-EXPR" {
			t.Errorf("mechanism %q, want HT-SHA-256-EXPR", again.Mechanism)
		}
		if again.JID() == "" || !strings.HasPrefix(again.JID(), "alice@localhost/kontor-e2e/") {
			t.Errorf("JID after FAST login %q", again.JID())
		}
		if _, _, err := again.Send(goxmpp.Chat{Remote: bob.JID().String(), Type: "chat", Text: "over fast"}); err != nil {
			t.Fatal(err)
		}
		bob.Messages.expect(t, "the FAST session's message", func(n xmlNode) bool { return strings.Contains(n.String(), "over fast") })
		again.close()

		// A wrong token fails; so does the right one from another
		// installation.
		if _, err := goxmppLogin(t, withToken(fast.Token+"x")); err == nil || !strings.Contains(err.Error(), "not-authorized") {
			t.Errorf("wrong token: %v", err)
		}
		other := withToken(fast.Token)
		other.UserAgentID = "5e0f2a9b-1c3d-4e5f-8a6b-7c8d9e0f1a2b"
		if _, err := goxmppLogin(t, other); err == nil {
			t.Error("another installation logged in with alice's token")
		}

		// An expired token fails: the expiry sweep at the next issue
		// removes it (a token that is still stored past its expiry gets
		// credentials-expired, see core/session TestFASTLogin).
		st := ts.srv.store.(storage.FASTTokens)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if n, err := st.DeleteExpiredFASTTokens(ctx, fast.Expiry.Add(time.Second)); err != nil || n == 0 {
			t.Fatalf("expiring the token: %d, %v", n, err)
		}
		if _, err := goxmppLogin(t, withToken(fast.Token)); err == nil {
			t.Error("an expired token was accepted")
		}

		// A password change invalidates a fresh token.
		fresh, err := goxmppLogin(t, ts.goxmppOptions("alice", "alice-password-1", uaID))
		if err != nil || fresh.Fast.Token == "" {
			t.Fatalf("password login for a new token: %v", err)
		}
		fresh.close()
		if err := account.SetPassword(ctx, ts.srv.store, kjid.MustParse("alice@localhost"), "alice-password-2"); err != nil {
			t.Fatal(err)
		}
		if _, err := goxmppLogin(t, withToken(fresh.Fast.Token)); err == nil {
			t.Error("a token survived a password change")
		}
		// The classic path still works for alice too.
		ts.dial(t, "alice", "alice-password-2").barrier(t)
	})
}

// TestWebSocketSASL2: the same negotiation serves WebSocket (RFC 7395):
// SASL2 with Bind 2 and a FAST token, then a FAST login with
// HT-SHA-256-EXPR bound to the HTTPS connection's TLS.
func TestWebSocketSASL2(t *testing.T) {
	ts := startTestServer(t, "sqlite", nil)
	ts.addUser(t, "alice", "alice-secret")
	const ua = "<user-agent id='7d2e4c1a-3b5f-4a6e-9c8d-0e1f2a3b4c5d'/>"
	open := func(c *cws.Conn) string {
		writeMsg(t, c, "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>")
		readMsg(t, c)
		return readMsg(t, c)
	}
	var success struct {
		ID    string `xml:"authorization-identifier"`
		Data  string `xml:"additional-data"`
		Token struct {
			Token string `xml:"token,attr"`
		} `xml:"urn:xmpp:fast:0 token"`
		Enabled struct {
			ID string `xml:"id,attr"`
		} `xml:"urn:xmpp:bind:0 bound>enabled"`
	}
	c, _ := ts.wsPlus(t)
	if f := open(c); !strings.Contains(f, "urn:xmpp:sasl:2") || !strings.Contains(f, "HT-SHA-256-EXPR") {
		t.Fatalf("features over WebSocket: %s", f)
	}
	writeMsg(t, c, "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>"+
		b64([]byte("\x00alice\x00alice-secret"))+"</initial-response>"+ua+
		"<bind xmlns='urn:xmpp:bind:0'><tag>web</tag><enable xmlns='urn:xmpp:sm:3'/></bind>"+
		"<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-EXPR'/></authenticate>")
	m := readMsg(t, c)
	if err := xml.Unmarshal([]byte(m), &success); err != nil || !strings.HasPrefix(success.ID, "alice@localhost/web/") || success.Token.Token == "" {
		t.Fatalf("SASL2 over WebSocket: %s (%v)", m, err)
	}
	if f := readMsg(t, c); !strings.Contains(f, "features") || strings.Contains(f, "xmpp-bind") {
		t.Fatalf("features after SASL2: %s", f)
	}
	writeMsg(t, c, "<message to='"+success.ID+"' id='self'><body>hi</body></message>")
	for m := readMsg(t, c); !strings.Contains(m, "id='self'") && !strings.Contains(m, `id="self"`); m = readMsg(t, c) {
	}

	// FAST, channel-bound to this HTTPS connection.
	c2, tc2 := ts.wsPlus(t)
	open(c2)
	st := tc2.ConnectionState()
	cb, err := st.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
	if err != nil {
		t.Fatal(err)
	}
	token := success.Token.Token
	proof := hmac.New(sha256.New, []byte(token))
	proof.Write(append([]byte("Initiator"), cb...))
	writeMsg(t, c2, "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='HT-SHA-256-EXPR'><initial-response>"+
		b64(append([]byte("alice\x00"), proof.Sum(nil)...))+"</initial-response>"+ua+
		"<fast xmlns='urn:xmpp:fast:0' count='1'/><bind xmlns='urn:xmpp:bind:0'><tag>web</tag></bind></authenticate>")
	m = readMsg(t, c2)
	success.Data = ""
	if err := xml.Unmarshal([]byte(m), &success); err != nil || !strings.HasPrefix(m, "<success") {
		t.Fatalf("FAST over WebSocket: %s (%v)", m, err)
	}
	responder := hmac.New(sha256.New, []byte(token))
	responder.Write(append([]byte("Responder"), cb...))
	if got, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(success.Data)); !hmac.Equal(got, responder.Sum(nil)) {
		t.Errorf("the server's FAST proof does not verify: %s", m)
	}
}

// TestBOSHSASL2: SASL2 with Bind 2 over BOSH (XEP-0206), where there is no
// stream restart to request: the success and the new features arrive in
// the next responses, and the session is bound.
func TestBOSHSASL2(t *testing.T) {
	ts := startTestServer(t, "sqlite", nil)
	ts.addUser(t, "alice", "alice-secret")
	cl := ts.httpsClient()
	url := ts.httpsOrigin() + boshPath
	rid := 1000
	post := func(payload string, attrs string) string {
		t.Helper()
		rid++
		body := fmt.Sprintf("<body xmlns='http://jabber.org/protocol/httpbind' rid='%d' %s>%s</body>", rid, attrs, payload)
		resp, err := cl.Post(url, "text/xml; charset=utf-8", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("BOSH %d: %s", resp.StatusCode, b)
		}
		return string(b)
	}
	first := post("", "to='localhost' xml:lang='en' ver='1.11' wait='2' hold='1' xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'")
	m := regexp.MustCompile(`sid=['"]([^'"]+)['"]`).FindStringSubmatch(first)
	if m == nil {
		t.Fatalf("no sid: %s", first)
	}
	sid := "sid='" + m[1] + "'"
	// collect posts (empty bodies poll) until marker appears.
	collect := func(payload, marker string) string {
		t.Helper()
		var all strings.Builder
		deadline := time.Now().Add(e2eWait)
		for p := payload; !strings.Contains(all.String(), marker); p = "" {
			if time.Now().After(deadline) {
				t.Fatalf("no %s over BOSH: %s", marker, all.String())
			}
			all.WriteString(post(p, sid))
		}
		return all.String()
	}
	features := first
	if !strings.Contains(features, "urn:xmpp:sasl:2") {
		features += collect("", "urn:xmpp:sasl:2")
	}
	if !strings.Contains(features, "urn:xmpp:bind:0") {
		t.Fatalf("no Bind 2 over BOSH: %s", features)
	}
	got := collect("<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>"+
		b64([]byte("\x00alice\x00alice-secret"))+"</initial-response><user-agent id='b05a1e2d-0c3f-4e6a-8b7d-9f1e2c3d4a5b'/>"+
		"<bind xmlns='urn:xmpp:bind:0'><tag>bosh</tag></bind></authenticate>", "features")
	id := regexp.MustCompile(`<authorization-identifier>([^<]+)</authorization-identifier>`).FindStringSubmatch(got)
	if id == nil || !strings.HasPrefix(id[1], "alice@localhost/bosh/") {
		t.Fatalf("SASL2 over BOSH: %s", got)
	}
	got = collect("<message xmlns='jabber:client' to='"+id[1]+"' id='self'><body>hi</body></message>", "id='self'")
	if !strings.Contains(got, "<body>hi</body>") {
		t.Fatalf("message to self over BOSH: %s", got)
	}
}

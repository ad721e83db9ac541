package main

// End-to-end tests of the HTTPS listener: XMPP over WebSocket (RFC 7395)
// with mellium.im/xmpp's websocket package as the client, XEP-0156
// discovery, origins and the connection limit.

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	cws "github.com/coder/websocket"
	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	xws "mellium.im/xmpp/websocket"
)

// wsURL is the WebSocket endpoint of the test server.
func (ts *testServer) wsURL() string {
	_, port, _ := net.SplitHostPort(ts.addr("https"))
	return "wss://" + net.JoinHostPort(e2eDomain, port) + webSocketPath
}

// httpsOrigin is the listener's own origin.
func (ts *testServer) httpsOrigin() string {
	_, port, _ := net.SplitHostPort(ts.addr("https"))
	return "https://" + net.JoinHostPort(e2eDomain, port)
}

// httpsClient trusts the server's certificate and dials the listener
// for any host name.
func (ts *testServer) httpsClient() *http.Client {
	addr := ts.addr("https")
	return &http.Client{Timeout: e2eWait, Transport: &http.Transport{
		TLSClientConfig: ts.tlsConfig(),
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}}
}

// melliumDialer is mellium's WebSocket dialer for the test server.
// mellium v0.22.0 takes a session as encrypted (and offers SASL) only when
// the Origin's scheme is wss (websocket.NewSession looks at the client
// connection's LocalAddr, which x/net/websocket sets to the Origin), so the
// origin is the listener's own host with that scheme.
func (ts *testServer) melliumDialer(cl *http.Client) *xws.Dialer {
	_, port, _ := net.SplitHostPort(ts.addr("https"))
	return &xws.Dialer{Origin: "wss://" + net.JoinHostPort(e2eDomain, port), TLSConfig: ts.tlsConfig(), Client: cl}
}

// dialWS logs in over WebSocket with mellium and serves the session.
func (ts *testServer) dialWS(t *testing.T, user, password string, mechs ...sasl.Mechanism) *testClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	conn, err := ts.melliumDialer(nil).DialDirect(ctx, ts.wsURL())
	if err != nil {
		t.Fatalf("websocket dial: %v", err)
	}
	if len(mechs) == 0 {
		mechs = allMechanisms
	}
	s, err := xws.NewSession(ctx, jid.MustParse(bare(user)), conn, xmpp.SASL("", password, mechs...), xmpp.BindResource())
	if err != nil {
		conn.Close()
		t.Fatalf("login over websocket as %s: %v\nserver log:\n%s", bare(user), err, ts.logs)
	}
	return ts.serve(t, user+" (websocket)", s, conn)
}

func TestWebSocketE2E(t *testing.T) {
	ts := startTestServer(t, "sqlite", nil)
	ts.addUser(t, "alice", "alice-secret")
	ts.addUser(t, "bob", "bob-secret")

	for _, tc := range []struct {
		name string
		mech sasl.Mechanism
	}{
		// mellium's WebSocket client (x/net/websocket) cannot reach its
		// TLS connection, so it cannot do -PLUS; TestWebSocketChannelBinding
		// does.
		{"SCRAM-SHA-256", sasl.ScramSha256}, {"SCRAM-SHA-1", sasl.ScramSha1}, {"PLAIN", sasl.Plain},
	} {
		t.Run(tc.name, func(t *testing.T) {
			alice := ts.dialWS(t, "alice", "alice-secret", tc.mech)
			bob := ts.dial(t, "bob", "bob-secret")
			if got := alice.JID().Bare().String(); got != bare("alice") {
				t.Fatalf("bound JID %s", got)
			}
			body := "over the web with " + tc.name
			alice.chat(t, bob.JID().String(), body)
			m := bob.Messages.expect(t, "bob gets alice's message", func(n xmlNode) bool { return n.body() == body })
			if from := m.attr("from"); from != alice.JID().String() {
				t.Errorf("from = %q, want %q", from, alice.JID())
			}
			reply := "and back over TCP " + tc.name
			bob.chat(t, alice.JID().String(), reply)
			alice.Messages.expect(t, "alice gets bob's reply", func(n xmlNode) bool { return n.body() == reply })
			alice.close()
			bob.close()
		})
	}
}

func TestWebSocketWrongPassword(t *testing.T) {
	ts := startTestServer(t, "sqlite", nil)
	ts.addUser(t, "alice", "alice-secret")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	conn, err := ts.melliumDialer(nil).DialDirect(ctx, ts.wsURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := xws.NewSession(ctx, jid.MustParse(bare("alice")), conn, xmpp.SASL("", "wrong", sasl.ScramSha256), xmpp.BindResource()); err == nil {
		t.Fatal("login with a wrong password succeeded")
	}
}

// rawWS is a WebSocket for checks below what a client library does.
func (ts *testServer) rawWS(t *testing.T, origin string) (*cws.Conn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	return cws.Dial(ctx, ts.wsURL(), &cws.DialOptions{HTTPClient: ts.httpsClient(), HTTPHeader: h, Subprotocols: []string{"xmpp"}})
}

func readMsg(t *testing.T, c *cws.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("websocket read: %v", err)
	}
	return string(b)
}

func writeMsg(t *testing.T, c *cws.Conn, s string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	if err := c.Write(ctx, cws.MessageText, []byte(s)); err != nil {
		t.Fatalf("websocket write: %v", err)
	}
}

// TestWebSocketFraming checks RFC 7395's framing on the wire: <open/>,
// standalone features without STARTTLS, <close/>, and the stanza size
// limit.
func TestWebSocketFraming(t *testing.T) {
	ts := startTestServer(t, "sqlite", func(c *Config) { c.C2S.MaxStanzaBytes = 10000 })
	c, _, err := ts.rawWS(t, ts.httpsOrigin())
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	writeMsg(t, c, "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>")
	open := readMsg(t, c)
	if !strings.HasPrefix(open, "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'") || !strings.Contains(open, "from='localhost'") {
		t.Fatalf("open = %s", open)
	}
	features := readMsg(t, c)
	var f struct {
		XMLName    xml.Name
		StartTLS   *struct{} `xml:"urn:ietf:params:xml:ns:xmpp-tls starttls"`
		Mechanisms []string  `xml:"urn:ietf:params:xml:ns:xmpp-sasl mechanisms>mechanism"`
	}
	if err := xml.Unmarshal([]byte(features), &f); err != nil {
		t.Fatalf("features %s are not a standalone document: %v", features, err)
	}
	if f.XMLName.Space != nsStreams || f.XMLName.Local != "features" || f.StartTLS != nil || len(f.Mechanisms) == 0 {
		t.Fatalf("features = %s", features)
	}
	plus := false
	for _, m := range f.Mechanisms {
		plus = plus || strings.HasSuffix(m, "-PLUS")
	}
	if !plus {
		t.Errorf("no channel binding offered over the HTTPS connection: %v", f.Mechanisms)
	}
	// A stanza over the limit ends the stream with policy-violation.
	writeMsg(t, c, "<iq xmlns='jabber:client' type='get' id='big'><query xmlns='x'>"+strings.Repeat("a", 12000)+"</query></iq>")
	errMsg := readMsg(t, c)
	if !strings.Contains(errMsg, "policy-violation") || !strings.Contains(errMsg, "xmlns:stream=") {
		t.Fatalf("after an oversized stanza: %s", errMsg)
	}
	if got := readMsg(t, c); got != "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>" {
		t.Fatalf("after the error: %s", got)
	}

	// A message beyond the limit and the room for an <open/> closes the
	// WebSocket with 1009 (message too big).
	c3, _, err := ts.rawWS(t, ts.httpsOrigin())
	if err != nil {
		t.Fatal(err)
	}
	defer c3.CloseNow()
	writeMsg(t, c3, "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>")
	readMsg(t, c3)
	readMsg(t, c3)
	writeMsg(t, c3, "<iq xmlns='jabber:client' type='get' id='huge'><query xmlns='x'>"+strings.Repeat("a", 20000)+"</query></iq>")
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	for {
		_, _, err := c3.Read(ctx)
		if err != nil {
			if st := cws.CloseStatus(err); st != cws.StatusMessageTooBig {
				t.Fatalf("after a huge message: %v (status %v)", err, st)
			}
			break
		}
	}

	// A clean close is answered with <close/>.
	c2, _, err := ts.rawWS(t, ts.httpsOrigin())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.CloseNow()
	writeMsg(t, c2, "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>")
	readMsg(t, c2)
	readMsg(t, c2)
	writeMsg(t, c2, "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
	if got := readMsg(t, c2); !strings.HasPrefix(got, "<close ") {
		t.Fatalf("answer to <close/>: %s", got)
	}
}

func TestWebSocketOrigin(t *testing.T) {
	ts := startTestServer(t, "sqlite", func(c *Config) { c.HTTP.AllowedOrigins = []string{"chat.example.com"} })
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{ts.httpsOrigin(), true},
		{"", true}, // not a browser
		{"https://chat.example.com", true},
		{"https://evil.example.net", false},
	} {
		c, resp, err := ts.rawWS(t, tc.origin)
		if tc.ok != (err == nil) {
			t.Errorf("origin %q: err = %v, want ok = %v", tc.origin, err, tc.ok)
		}
		if err == nil {
			c.CloseNow()
		} else if resp != nil && resp.StatusCode != http.StatusForbidden {
			t.Errorf("origin %q: status %d, want 403", tc.origin, resp.StatusCode)
		}
	}
}

func TestWebSocketLimit(t *testing.T) {
	ts := startTestServer(t, "sqlite", func(c *Config) { c.HTTP.MaxWebSockets = 2 })
	var open []*cws.Conn
	for range 2 {
		c, _, err := ts.rawWS(t, "")
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, c)
	}
	resp, err := http.Get("http://" + ts.addr("admin") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), "\nkontor_websocket_connections 2\n") || !strings.Contains(string(metrics), "\nkontor_bosh_sessions 0\n") {
		t.Errorf("metrics:\n%s", metrics)
	}
	_, resp, err = ts.rawWS(t, "")
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("third connection: err = %v, resp = %v; want 503", err, resp)
	}
	open[0].Close(cws.StatusNormalClosure, "")
	deadline := time.Now().Add(e2eWait)
	for {
		c, _, err := ts.rawWS(t, "")
		if err == nil {
			c.CloseNow()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a slot did not free up: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	open[1].CloseNow()
}

func TestHostMeta(t *testing.T) {
	ts := startTestServer(t, "sqlite", nil)
	cl := ts.httpsClient()
	resp, err := cl.Get("https://localhost/.well-known/host-meta")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var xrd struct {
		Links []struct {
			Rel  string `xml:"rel,attr"`
			Href string `xml:"href,attr"`
		} `xml:"http://docs.oasis-open.org/ns/xri/xrd-1.0 Link"`
	}
	if err := xml.Unmarshal(body, &xrd); err != nil || len(xrd.Links) != 2 {
		t.Fatalf("host-meta %s: %v", body, err)
	}
	if xrd.Links[0].Rel != "urn:xmpp:alt-connections:websocket" || xrd.Links[0].Href != ts.wsURL() {
		t.Errorf("host-meta link = %+v, want %s", xrd.Links[0], ts.wsURL())
	}
	if xrd.Links[1].Rel != "urn:xmpp:alt-connections:xbosh" || xrd.Links[1].Href != ts.httpsOrigin()+boshPath {
		t.Errorf("host-meta link = %+v, want %s", xrd.Links[1], ts.httpsOrigin()+boshPath)
	}
	resp, err = cl.Get("https://localhost/.well-known/host-meta.json")
	if err != nil {
		t.Fatal(err)
	}
	var js struct {
		Links []struct{ Rel, Href string } `json:"links"`
	}
	err = json.NewDecoder(resp.Body).Decode(&js)
	resp.Body.Close()
	if err != nil || len(js.Links) != 2 || js.Links[0].Href != ts.wsURL() || js.Links[1].Href != ts.httpsOrigin()+boshPath {
		t.Fatalf("host-meta.json: %+v, %v", js, err)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("CORS header = %q", got)
	}
	// mellium discovers the endpoint through it and logs in.
	ts.addUser(t, "alice", "alice-secret")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	d := ts.melliumDialer(cl)
	conn, err := d.Dial(ctx, jid.MustParse(bare("alice")))
	if err != nil {
		t.Fatalf("dial by discovery: %v", err)
	}
	defer conn.Close()
	s, err := xws.NewSession(ctx, jid.MustParse(bare("alice")), conn, xmpp.SASL("", "alice-secret", sasl.ScramSha256), xmpp.BindResource())
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	s.Close()
}

// wsPlus dials the WebSocket endpoint and keeps the client's TLS
// connection, for channel binding.
func (ts *testServer) wsPlus(t *testing.T) (*cws.Conn, *tls.Conn) {
	t.Helper()
	var tc *tls.Conn
	addr := ts.addr("https")
	hc := &http.Client{Transport: &http.Transport{
		DialTLSContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			d := tls.Dialer{Config: ts.tlsConfig()}
			c, err := d.DialContext(ctx, network, addr)
			if err == nil {
				tc = c.(*tls.Conn)
			}
			return c, err
		},
	}}
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	c, _, err := cws.Dial(ctx, ts.wsURL(), &cws.DialOptions{HTTPClient: hc, Subprotocols: []string{"xmpp"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c, tc
}

// scramOverWS runs one SCRAM exchange over a WebSocket with the given TLS
// state for channel binding and returns the server's last message.
func scramOverWS(t *testing.T, c *cws.Conn, mech sasl.Mechanism, state tls.ConnectionState, offered []string) string {
	t.Helper()
	cl := sasl.NewClient(mech, sasl.Credentials(func() ([]byte, []byte, []byte) { return []byte("alice"), []byte("alice-secret"), nil }),
		sasl.RemoteMechanisms(offered...), sasl.TLSState(state))
	_, resp, err := cl.Step(nil)
	if err != nil {
		t.Fatal(err)
	}
	writeMsg(t, c, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='"+mech.Name+"'>"+b64(resp)+"</auth>")
	for {
		m := readMsg(t, c)
		var el struct {
			XMLName xml.Name
			Text    string `xml:",chardata"`
		}
		if err := xml.Unmarshal([]byte(m), &el); err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		if el.XMLName.Local != "challenge" {
			if el.XMLName.Local == "success" {
				data, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(el.Text))
				if _, _, err := cl.Step(data); err != nil {
					t.Fatalf("the server's final SCRAM message does not verify: %v", err)
				}
			}
			return m
		}
		data, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(el.Text))
		_, resp, err := cl.Step(data)
		if err != nil {
			t.Fatal(err)
		}
		writeMsg(t, c, "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"+b64(resp)+"</response>")
	}
}

// TestWebSocketChannelBinding: SCRAM-SHA-256-PLUS over a WebSocket binds
// to the HTTPS connection's TLS (tls-exporter): it succeeds with this
// connection's binding and fails with another connection's.
func TestWebSocketChannelBinding(t *testing.T) {
	ts := startTestServer(t, "sqlite", nil)
	ts.addUser(t, "alice", "alice-secret")
	open := func(c *cws.Conn) []string {
		writeMsg(t, c, "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>")
		readMsg(t, c)
		var f struct {
			Mechanisms []string `xml:"urn:ietf:params:xml:ns:xmpp-sasl mechanisms>mechanism"`
		}
		if err := xml.Unmarshal([]byte(readMsg(t, c)), &f); err != nil {
			t.Fatal(err)
		}
		return f.Mechanisms
	}
	c1, tc1 := ts.wsPlus(t)
	offered := open(c1)
	if got := scramOverWS(t, c1, sasl.ScramSha256Plus, tc1.ConnectionState(), offered); !strings.HasPrefix(got, "<success") {
		t.Fatalf("SCRAM-SHA-256-PLUS with this connection's binding: %s", got)
	}
	c2, _ := ts.wsPlus(t)
	offered = open(c2)
	if got := scramOverWS(t, c2, sasl.ScramSha256Plus, tc1.ConnectionState(), offered); !strings.HasPrefix(got, "<failure") {
		t.Fatalf("SCRAM-SHA-256-PLUS with another connection's binding: %s", got)
	}
}

// TestWebSocketShutdown: a bound WebSocket session gets system-shutdown
// and <close/> when the server stops.
func TestWebSocketShutdown(t *testing.T) {
	ts := startTestServer(t, "sqlite", nil)
	ts.addUser(t, "alice", "alice-secret")
	c, _, err := ts.rawWS(t, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	open := "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>"
	writeMsg(t, c, open)
	readMsg(t, c)
	readMsg(t, c)
	writeMsg(t, c, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"+b64([]byte("\x00alice\x00alice-secret"))+"</auth>")
	if got := readMsg(t, c); !strings.HasPrefix(got, "<success") {
		t.Fatalf("auth: %s", got)
	}
	writeMsg(t, c, open)
	readMsg(t, c)
	readMsg(t, c)
	writeMsg(t, c, "<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
	if got := readMsg(t, c); !strings.Contains(got, "<jid>alice@localhost/") {
		t.Fatalf("bind: %s", got)
	}
	done := make(chan error, 1)
	go func() { done <- ts.shutdown() }()
	for {
		got := readMsg(t, c)
		if strings.Contains(got, "<presence") || strings.Contains(got, "<iq") {
			continue
		}
		if !strings.Contains(got, "system-shutdown") {
			t.Fatalf("on shutdown: %s", got)
		}
		break
	}
	if got := readMsg(t, c); !strings.HasPrefix(got, "<close ") {
		t.Fatalf("after the error: %s", got)
	}
	writeMsg(t, c, "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

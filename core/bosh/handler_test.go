package bosh

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"kontor.im/kontor/core/session"
	"kontor.im/kontor/core/stanza"
)

func newTestHandler(t *testing.T, cfg Config) (*Handler, chan *boshSession) {
	t.Helper()
	h := NewHandler(cfg)
	started := make(chan *boshSession, 16)
	h.serve = func(tr session.Transport) error {
		s := tr.(*boshSession)
		started <- s
		<-s.closed
		return nil
	}
	t.Cleanup(func() {
		h.mu.Lock()
		var all []*boshSession
		for _, s := range h.sessions {
			all = append(all, s)
		}
		h.mu.Unlock()
		for _, s := range all {
			s.Close()
		}
	})
	return h, started
}

// post sends a body and returns the status and response.
func post(h *Handler, b string) (int, string) {
	r := httptest.NewRequest(http.MethodPost, "https://example.com/http-bind", strings.NewReader(b))
	r.TLS = &tls.ConnectionState{}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

// async posts in the background.
func async(h *Handler, b string) <-chan string {
	ch := make(chan string, 1)
	go func() {
		_, resp := post(h, b)
		ch <- resp
	}()
	return ch
}

func recv(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no response")
		return ""
	}
}

func noResponse(t *testing.T, ch <-chan string) {
	t.Helper()
	select {
	case s := <-ch:
		t.Fatalf("unexpected response %s", s)
	case <-time.After(50 * time.Millisecond):
	}
}

// readStream reads what the transport yields, up to n bytes.
func readStream(t *testing.T, s *boshSession, want string) {
	t.Helper()
	_ = s.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, len(want))
	if _, err := io.ReadFull(s, buf); err != nil {
		t.Fatalf("reading %q: %v", want, err)
	}
	if string(buf) != want {
		t.Fatalf("stream = %q, want %q", buf, want)
	}
}

var sidRE = regexp.MustCompile(`sid='([^']+)'`)

func msg(body string) *stanza.Element {
	return stanza.New(stanza.NSClient, "message").Append(stanza.New(stanza.NSClient, "body").AppendText(body))
}

// create starts a session with rid 100 and answers it with features.
func create(t *testing.T, h *Handler, started chan *boshSession, attrs string) (*boshSession, string) {
	t.Helper()
	ch := async(h, "<body xmlns='http://jabber.org/protocol/httpbind' rid='100' to='example.com' xml:lang='en' ver='1.11' "+attrs+" xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'/>")
	s := <-started
	readStream(t, s, "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' to='example.com' xml:lang='en'>")
	_ = s.WriteHeader("example.com", "", "stream-1")
	_ = s.Flush()
	noResponse(t, ch) // a header alone is no answer
	_ = s.WriteElement(stanza.New(stanza.NSStream, "features"))
	_ = s.Flush()
	resp := recv(t, ch)
	m := sidRE.FindStringSubmatch(resp)
	if m == nil {
		t.Fatalf("creation response without sid: %s", resp)
	}
	return s, resp
}

func TestCreate(t *testing.T) {
	h, started := newTestHandler(t, Config{MaxWait: 30 * time.Second, MaxHold: 1, Inactivity: 20 * time.Second})
	_, resp := create(t, h, started, "wait='60' hold='1'")
	for _, want := range []string{"wait='30'", "hold='1'", "requests='2'", "inactivity='20'", "ver='1.11'", "xmpp:version='1.0'", "authid='stream-1'", "from='example.com'", "<stream:features/></body>"} {
		if !strings.Contains(resp, want) {
			t.Errorf("creation response lacks %s: %s", want, resp)
		}
	}
}

func TestRequests(t *testing.T) {
	h, started := newTestHandler(t, Config{MaxWait: 2 * time.Second})
	s, resp := create(t, h, started, "wait='2' hold='1'")
	sid := sidRE.FindStringSubmatch(resp)[1]
	req := func(rid, inner string) string {
		return "<body xmlns='http://jabber.org/protocol/httpbind' sid='" + sid + "' rid='" + rid + "'>" + inner + "</body>"
	}

	t.Run("stanzas reach the stream", func(t *testing.T) {
		ch := async(h, req("101", "<message xmlns='jabber:client' to='a@b'><body>1</body></message>"))
		readStream(t, s, "<message xmlns='jabber:client' to='a@b'><body>1</body></message>")
		_ = s.WriteElement(msg("answer"))
		_ = s.Flush()
		if got := recv(t, ch); !strings.Contains(got, "<message xmlns='jabber:client'><body>answer</body></message></body>") {
			t.Fatalf("response %s", got)
		}
	})
	t.Run("retransmission", func(t *testing.T) {
		_, again := post(h, req("101", "<message xmlns='jabber:client' to='a@b'><body>1</body></message>"))
		if !strings.Contains(again, "answer") {
			t.Fatalf("retransmitted response %s", again)
		}
	})
	t.Run("rid order", func(t *testing.T) {
		second := async(h, req("103", "<iq xmlns='jabber:client' id='second'/>"))
		noResponse(t, second)
		first := async(h, req("102", "<iq xmlns='jabber:client' id='first'/>"))
		readStream(t, s, "<iq xmlns='jabber:client' id='first'/><iq xmlns='jabber:client' id='second'/>")
		// hold=1: the second request held answers the first, empty.
		if got := recv(t, first); !strings.HasSuffix(got, "/>") || strings.Contains(got, "terminate") {
			t.Fatalf("released request: %s", got)
		}
		_ = s.WriteElement(msg("for 103"))
		_ = s.Flush()
		if got := recv(t, second); !strings.Contains(got, "for 103") {
			t.Fatalf("response %s", got)
		}
	})
	t.Run("wait", func(t *testing.T) {
		start := time.Now()
		got := recv(t, async(h, req("104", "")))
		if d := time.Since(start); d < time.Second || strings.Contains(got, "terminate") {
			t.Fatalf("empty poll answered after %v with %s", d, got)
		}
	})
	t.Run("rid out of window ends the session", func(t *testing.T) {
		_, got := post(h, req("110", ""))
		if !strings.Contains(got, "condition='item-not-found'") {
			t.Fatalf("response %s", got)
		}
		if _, err := s.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("stream after the session ended: %v", err)
		}
		_, got = post(h, req("105", ""))
		if !strings.Contains(got, "condition='item-not-found'") {
			t.Fatalf("request to an ended session: %s", got)
		}
	})
}

func TestTerminate(t *testing.T) {
	h, started := newTestHandler(t, Config{MaxWait: 2 * time.Second})
	s, resp := create(t, h, started, "")
	sid := sidRE.FindStringSubmatch(resp)[1]
	ch := async(h, "<body xmlns='http://jabber.org/protocol/httpbind' sid='"+sid+"' rid='101' type='terminate'><presence xmlns='jabber:client' type='unavailable'/></body>")
	readStream(t, s, "<presence xmlns='jabber:client' type='unavailable'/></stream:stream>")
	_ = s.WriteClose(nil)
	if got := recv(t, ch); !strings.Contains(got, "type='terminate'") || strings.Contains(got, "condition") {
		t.Fatalf("response %s", got)
	}
}

func TestStreamError(t *testing.T) {
	h, started := newTestHandler(t, Config{MaxWait: 2 * time.Second})
	s, resp := create(t, h, started, "")
	sid := sidRE.FindStringSubmatch(resp)[1]
	ch := async(h, "<body xmlns='http://jabber.org/protocol/httpbind' sid='"+sid+"' rid='101'/>")
	_ = s.WriteClose((&stanza.StreamError{Condition: stanza.StreamPolicyViolation}).Element())
	got := recv(t, ch)
	if !strings.Contains(got, "condition='remote-stream-error'") || !strings.Contains(got, "<stream:error>") {
		t.Fatalf("response %s", got)
	}
}

func TestReadRestart(t *testing.T) {
	h, started := newTestHandler(t, Config{MaxWait: 2 * time.Second})
	s, resp := create(t, h, started, "")
	sid := sidRE.FindStringSubmatch(resp)[1]
	async(h, "<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' sid='"+sid+"' rid='101' xmpp:restart='true'/>")
	readStream(t, s, "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' to='example.com' xml:lang='en'>")
}

func TestInactivity(t *testing.T) {
	h, started := newTestHandler(t, Config{MaxWait: time.Second, Inactivity: 200 * time.Millisecond})
	s, _ := create(t, h, started, "")
	select {
	case <-s.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("an inactive session stayed open")
	}
	// The session leaves the handler's table just after its transport
	// closed.
	deadline := time.Now().Add(5 * time.Second)
	for h.Open() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if h.Open() != 0 {
		t.Errorf("Open() = %d after the session ended", h.Open())
	}
}

func TestLimits(t *testing.T) {
	h, started := newTestHandler(t, Config{MaxWait: time.Second, MaxSessions: 1, MaxBodyBytes: 200})
	if code, _ := post(h, "<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='x'>"+strings.Repeat(" ", 200)+"</body>"); code != http.StatusRequestEntityTooLarge {
		t.Errorf("large body: status %d", code)
	}
	create(t, h, started, "")
	if code, _ := post(h, "<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='x'/>"); code != http.StatusServiceUnavailable {
		t.Errorf("second session: status %d", code)
	}
	if _, got := post(h, "<body rid='1'/>"); !strings.Contains(got, "bad-request") {
		t.Errorf("body in no namespace: %s", got)
	}
	if _, got := post(h, "<body xmlns='http://jabber.org/protocol/httpbind' rid='1'/>"); !strings.Contains(got, "improper-addressing") {
		t.Errorf("creation without to: %s", got)
	}
	r := httptest.NewRequest(http.MethodPost, "http://example.com/http-bind", strings.NewReader("<body/>"))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusForbidden {
		t.Errorf("plain HTTP: status %d", w.Code)
	}
}

func TestCORS(t *testing.T) {
	h, _ := newTestHandler(t, Config{AllowedOrigins: []string{"chat.example.net"}})
	for _, tc := range []struct {
		origin string
		ok     bool
	}{{"https://example.com", true}, {"https://chat.example.net", true}, {"https://evil.example.org", false}} {
		r := httptest.NewRequest(http.MethodOptions, "https://example.com/http-bind", nil)
		r.Header.Set("Origin", tc.origin)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if got := w.Header().Get("Access-Control-Allow-Origin"); (got == tc.origin) != tc.ok {
			t.Errorf("origin %s: Allow-Origin %q", tc.origin, got)
		}
	}
}

package upload

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"kontor.im/kontor/core/gate"
	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/seal"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage/sqlite"
)

// env is one server with the upload module behind an httptest server.
type env struct {
	t     *testing.T
	srv   *modtest.Server
	m     *Module
	http  *httptest.Server
	dir   string
	alice *modtest.Client
	seq   int
	pol   *uploadPolicy

	clockMu sync.Mutex
	clock   time.Time
}

// newEnv starts a server; configure changes the options before Provision.
func newEnv(t *testing.T, configure func(*Options)) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), clock: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	var hostHandler http.Handler
	e.http = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hostHandler.ServeHTTP(w, r)
	}))
	t.Cleanup(e.http.Close)
	info, _ := module.Lookup(ID)
	e.m = info.New().(*Module)
	e.m.now = e.now
	e.pol = &uploadPolicy{deny: map[string]bool{}}
	e.m.SetDecider(e.pol)
	o := e.m.Options().(*Options)
	o.Dir = filepath.Join(e.dir, "files")
	o.SecretFile = filepath.Join(e.dir, "keys", "upload.key")
	o.ChunkSize = 1024
	if configure != nil {
		configure(o)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, seal.KeySize)
	rand.Read(key)
	sealer, err := seal.New(key)
	if err != nil {
		t.Fatal(err)
	}
	// The database is under e.dir, where TestPlaintextNotStored looks.
	st, err := sqlite.Open(t.Context(), filepath.Join(e.dir, "kontor.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.srv = modtest.New(t, modtest.Options{HTTPBaseURL: e.http.URL, Sealer: sealer, Store: st},
		router.Enabled{Info: info, Module: e.m})
	hostHandler = e.srv.Host.HTTPHandler()
	e.srv.Account("alice")
	e.srv.Account("bob")
	e.alice = e.srv.Connect("alice@example.com/phone")
	return e
}

// uploadPolicy is the policy as these tests need it: it refuses the JIDs
// in deny, narrows the limits to maxSize and types, and keeps files for
// keep under class (no rule when class is ""); it records what it was
// asked.
type uploadPolicy struct {
	mu      sync.Mutex
	deny    map[string]bool
	maxSize int64
	types   []string
	class   string
	keep    time.Duration
	asked   []gate.UploadInput
}

func (p *uploadPolicy) Upload(_ context.Context, in gate.UploadInput) gate.UploadDecision {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.asked = append(p.asked, in)
	if p.deny[in.From.JID] {
		return gate.UploadDecision{Decision: gate.Decision{ID: "d-up", Reason: "no_uploads", Message: "You may not upload files."}}
	}
	d := gate.UploadDecision{Decision: gate.Decision{ID: "d-ok", Allow: true, Reason: "upload"}, MaxSize: p.maxSize, ContentTypes: p.types}
	if p.class != "" {
		d.Class, d.Until = p.class, in.At.Add(p.keep)
	}
	return d
}

func (p *uploadPolicy) Contact(context.Context, gate.ContactInput) gate.Decision {
	return gate.Decision{}
}
func (p *uploadPolicy) Retention(context.Context, gate.RetentionInput) gate.RetentionDecision {
	return gate.RetentionDecision{}
}
func (p *uploadPolicy) Access(context.Context, gate.AccessInput) gate.AccessDecision {
	return gate.AccessDecision{}
}
func (p *uploadPolicy) E2EE(context.Context, gate.E2EEInput) gate.Decision { return gate.Decision{} }
func (p *uploadPolicy) Registration(context.Context, gate.RegistrationInput) gate.Decision {
	return gate.Decision{}
}

func (e *env) now() time.Time {
	e.clockMu.Lock()
	defer e.clockMu.Unlock()
	return e.clock
}

func (e *env) advance(d time.Duration) {
	e.clockMu.Lock()
	defer e.clockMu.Unlock()
	e.clock = e.clock.Add(d)
}

// request asks for a slot as c and returns the reply.
func (e *env) request(c *modtest.Client, name string, size int64, ct string) *stanza.Stanza {
	e.t.Helper()
	e.seq++
	id := fmt.Sprintf("up%d", e.seq)
	ctAttr := ""
	if ct != "" {
		ctAttr = fmt.Sprintf(" content-type='%s'", ct)
	}
	c.SendXML(fmt.Sprintf(`<iq type='get' id='%s' to='example.com'><request xmlns='%s' filename='%s' size='%d'%s/></iq>`,
		id, NS, name, size, ctAttr))
	return c.NextIQ(id)
}

// slot asks for a slot and returns its PUT and GET URLs.
func (e *env) slot(c *modtest.Client, name string, size int64, ct string) (put, get string) {
	e.t.Helper()
	r := e.request(c, name, size, ct)
	if r.Type != "result" {
		e.t.Fatalf("slot request failed: %s", r.El)
	}
	s := r.Payload()
	if s == nil || s.Name.Space != NS || s.Name.Local != "slot" {
		e.t.Fatalf("no slot in %s", r.El)
	}
	return s.Child(NS, "put").Get("url"), s.Child(NS, "get").Get("url")
}

func do(t *testing.T, method, url string, body []byte, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// upload asks for a slot and PUTs content; it returns the GET URL.
func (e *env) upload(c *modtest.Client, name string, content []byte, ct string) string {
	e.t.Helper()
	put, get := e.slot(c, name, int64(len(content)), ct)
	resp, _ := do(e.t, http.MethodPut, put, content, map[string]string{"Content-Type": ct})
	if resp.StatusCode != http.StatusCreated {
		e.t.Fatalf("PUT: %s", resp.Status)
	}
	return get
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

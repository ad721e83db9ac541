package bosh

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"sync"
	"time"

	"kontor.im/kontor/core/session"
	"kontor.im/kontor/core/stanza"
)

// Config bounds BOSH sessions.
type Config struct {
	Server *session.Server
	Logger *slog.Logger
	// MaxWait is the longest a request is held (the client's wait is
	// lowered to it); default 60s.
	MaxWait time.Duration
	// MaxHold is the most requests held at once; default 1.
	MaxHold int
	// Requests is how many requests a client may have open (hold+1 by
	// XEP-0124); default MaxHold+1.
	Requests int
	// Inactivity: a session without a request for this long is lost;
	// default 60s.
	Inactivity time.Duration
	// MaxSessions bounds open sessions (0: unlimited).
	MaxSessions int
	// MaxBodyBytes bounds a request body; default 256 KiB + 4 KiB.
	MaxBodyBytes int
	// MaxPendingBytes bounds what waits for a client that does not poll;
	// default 4 MiB.
	MaxPendingBytes int
	// AllowedOrigins are host patterns (path.Match) of origins, besides
	// the request's own host, that may read responses (CORS).
	AllowedOrigins []string
}

// Handler serves BOSH on its path of the HTTPS listener.
type Handler struct {
	cfg Config
	// serve runs a session's stream (Server.ServeTransport).
	serve func(session.Transport) error

	mu       sync.Mutex
	sessions map[string]*boshSession
}

// NewHandler returns a handler.
func NewHandler(cfg Config) *Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 60 * time.Second
	}
	if cfg.MaxHold <= 0 {
		cfg.MaxHold = 1
	}
	if cfg.Requests <= cfg.MaxHold {
		cfg.Requests = cfg.MaxHold + 1
	}
	if cfg.Inactivity <= 0 {
		cfg.Inactivity = 60 * time.Second
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 256<<10 + 4096
	}
	if cfg.MaxPendingBytes <= 0 {
		cfg.MaxPendingBytes = 4 << 20
	}
	h := &Handler{cfg: cfg, sessions: map[string]*boshSession{}}
	if cfg.Server != nil {
		h.serve = cfg.Server.ServeTransport
	}
	return h
}

// Open is the number of open BOSH sessions.
func (h *Handler) Open() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sessions)
}

func (h *Handler) allowed(r *http.Request, origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if u.Host == r.Host {
		return true
	}
	for _, p := range h.cfg.AllowedOrigins {
		if ok, _ := path.Match(p, u.Host); ok {
			return true
		}
	}
	return false
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if o := r.Header.Get("Origin"); o != "" && h.allowed(r, o) {
		w.Header().Set("Access-Control-Allow-Origin", o)
		w.Header().Set("Vary", "Origin")
		w.Header().Set("Access-Control-Allow-Methods", "POST, OPTIONS")
		w.Header().Set("Access-Control-Allow-Headers", "Content-Type")
		w.Header().Set("Access-Control-Max-Age", "86400")
	}
	switch r.Method {
	case http.MethodOptions:
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "POST, OPTIONS")
		http.Error(w, "BOSH takes POST", http.StatusMethodNotAllowed)
		return
	}
	if r.TLS == nil {
		http.Error(w, "XMPP over BOSH needs HTTPS", http.StatusForbidden)
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, int64(h.cfg.MaxBodyBytes)+1))
	if err != nil {
		return
	}
	if len(raw) > h.cfg.MaxBodyBytes {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	b, err := parseBody(raw)
	if err != nil {
		writeBody(w, terminate("bad-request"))
		return
	}
	if b.sid == "" {
		h.create(w, r, b)
		return
	}
	h.mu.Lock()
	s := h.sessions[b.sid]
	h.mu.Unlock()
	if s == nil {
		writeBody(w, terminate("item-not-found"))
		return
	}
	writeBody(w, s.request(r, b))
}

func writeBody(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}

func terminate(cond string) []byte {
	return []byte("<body xmlns='" + NSHTTPBind + "' type='terminate' condition='" + cond + "'/>")
}

// create starts a session (XEP-0124 §7.1, XEP-0206 §4).
func (h *Handler) create(w http.ResponseWriter, r *http.Request, b *body) {
	if b.to == "" {
		writeBody(w, terminate("improper-addressing"))
		return
	}
	wait := h.cfg.MaxWait
	if b.wait > 0 && time.Duration(b.wait)*time.Second < wait {
		wait = time.Duration(b.wait) * time.Second
	}
	hold := h.cfg.MaxHold
	if b.hold >= 0 && b.hold < hold && b.hold > 0 {
		hold = b.hold
	}
	var id [18]byte
	_, _ = rand.Read(id[:])
	s := &boshSession{h: h, sid: base64.RawURLEncoding.EncodeToString(id[:]), wait: wait, hold: hold,
		to: b.to, lang: b.lang, lastRID: b.rid, state: r.TLS, remote: addr(r.RemoteAddr),
		inWake: make(chan struct{}, 1), outReady: make(chan struct{}), closed: make(chan struct{}),
		cache: map[int64][]byte{}}
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		s.local = a
	} else {
		s.local = addr("")
	}
	s.in = streamHeader(b.to, b.lang)
	h.mu.Lock()
	if h.cfg.MaxSessions > 0 && len(h.sessions) >= h.cfg.MaxSessions {
		h.mu.Unlock()
		w.Header().Set("Retry-After", "30")
		http.Error(w, "too many sessions", http.StatusServiceUnavailable)
		return
	}
	h.sessions[s.sid] = s
	h.mu.Unlock()
	go func() {
		if err := h.serve(s); err != nil {
			h.cfg.Logger.Debug("bosh session not served", "err", err)
		}
		s.Close()
	}()
	writeBody(w, s.respond(r, b.rid, true))
}

// boshSession is one BOSH session as a session.Transport.
type boshSession struct {
	h      *Handler
	sid    string
	wait   time.Duration
	hold   int
	to     string
	lang   string
	state  *tls.ConnectionState
	local  net.Addr
	remote net.Addr

	closeOnce sync.Once
	closed    chan struct{}
	inWake    chan struct{} // the reader has input (or a new deadline)

	// The writer's own (see session.Framing): written, not yet flushed.
	wbuf []byte

	mu sync.Mutex
	// in is what the session's reader has not read yet.
	in []byte
	// out is what was flushed and waits for a request; outReady is
	// closed (and replaced) on each flush.
	out        []byte
	outReady   chan struct{}
	terminated string // set when the server ended the stream: "" or the condition
	ended      bool
	headerFrom string
	headerID   string
	created    bool // the creation response was sent
	lastRID    int64
	held       []chan struct{} // held requests, oldest first: closed to release one
	cache      map[int64][]byte
	idle       *time.Timer
	rdl        time.Time
}

// addr is a remote address as net/http gives it.
type addr string

func (a addr) Network() string { return "tcp" }
func (a addr) String() string  { return string(a) }

// request handles one request of a session and returns its response.
func (s *boshSession) request(r *http.Request, b *body) []byte {
	s.mu.Lock()
	if s.ended && len(s.out) == 0 {
		s.mu.Unlock()
		return terminate("item-not-found")
	}
	if resp, ok := s.cache[b.rid]; ok {
		s.mu.Unlock()
		return resp // a retransmission
	}
	switch {
	case b.rid <= s.lastRID, b.rid > s.lastRID+int64(s.h.cfg.Requests):
		s.mu.Unlock()
		s.Close()
		return terminate("item-not-found")
	}
	// Requests are handled in rid order: wait for the ones before.
	deadline := time.Now().Add(s.wait)
	for b.rid != s.lastRID+1 {
		ready := s.outReady
		s.mu.Unlock()
		select {
		case <-ready:
		case <-s.closed:
			return terminate("item-not-found")
		case <-time.After(time.Until(deadline)):
			s.Close()
			return terminate("item-not-found")
		case <-r.Context().Done():
			return nil
		}
		s.mu.Lock()
	}
	s.lastRID = b.rid
	if s.idle != nil {
		s.idle.Stop()
	}
	switch {
	case b.restart:
		s.in = append(s.in, streamHeader(s.to, s.lang)...)
	default:
		s.in = append(s.in, b.inner...)
	}
	if b.typ == "terminate" {
		s.in = append(s.in, "</stream:stream>"...)
	}
	// Wake requests waiting for their turn.
	close(s.outReady)
	s.outReady = make(chan struct{})
	s.mu.Unlock()
	select {
	case s.inWake <- struct{}{}:
	default:
	}
	return s.respond(r, b.rid, false)
}

// respond holds the request until there is something to send, wait has
// passed, or a newer request releases it.
func (s *boshSession) respond(r *http.Request, rid int64, creation bool) []byte {
	release := make(chan struct{})
	s.mu.Lock()
	s.held = append(s.held, release)
	if len(s.held) > s.hold && !creation {
		close(s.held[0])
		s.held = s.held[1:]
	}
	timer := time.NewTimer(s.wait)
	defer timer.Stop()
	released := false
	for !released && (len(s.out) == 0 || !s.created && !creation) && s.terminated == "" && !s.ended {
		ready := s.outReady
		s.mu.Unlock()
		select {
		case <-ready:
		case <-release:
			released = true
		case <-timer.C:
			released = true
		case <-s.closed:
		case <-r.Context().Done():
			released = true
		}
		s.mu.Lock()
	}
	for i, c := range s.held {
		if c == release {
			s.held = append(s.held[:i], s.held[i+1:]...)
			break
		}
	}
	resp := []byte("<body xmlns='" + NSHTTPBind + "' xmlns:xmpp='" + NSXBOSH + "' xmlns:stream='http://etherx.jabber.org/streams'")
	if creation {
		s.created = true
		resp = append(resp, " sid='"+s.sid+"' wait='"+strconv.Itoa(int(s.wait/time.Second))+"' hold='"+strconv.Itoa(s.hold)+
			"' requests='"+strconv.Itoa(s.h.cfg.Requests)+"' inactivity='"+strconv.Itoa(int(s.h.cfg.Inactivity/time.Second))+
			"' polling='1' ver='1.11' xmpp:version='1.0' authid='"...)
		resp = appendEscaped(resp, s.headerID)
		resp = append(resp, "' from='"...)
		resp = appendEscaped(resp, s.headerFrom)
		resp = append(resp, '\'')
	}
	if s.terminated != "" || s.ended && len(s.out) == 0 {
		cond := s.terminated
		if cond == "" {
			cond = "item-not-found"
		}
		if cond != "-" {
			resp = append(resp, " condition='"+cond+"'"...)
		}
		resp = append(resp, " type='terminate'"...)
	}
	if len(s.out) == 0 {
		resp = append(resp, "/>"...)
	} else {
		resp = append(resp, '>')
		resp = append(resp, s.out...)
		resp = append(resp, "</body>"...)
		s.out = nil
	}
	s.cache[rid] = resp
	delete(s.cache, rid-int64(s.h.cfg.Requests))
	if len(s.held) == 0 && !s.ended {
		if s.idle == nil {
			s.idle = time.AfterFunc(s.h.cfg.Inactivity, s.inactive)
		} else {
			s.idle.Reset(s.h.cfg.Inactivity)
		}
	}
	s.mu.Unlock()
	return resp
}

// inactive ends a session whose client stopped polling.
func (s *boshSession) inactive() {
	s.mu.Lock()
	busy := len(s.held) > 0
	s.mu.Unlock()
	if !busy {
		s.h.cfg.Logger.Debug("bosh session inactive", "remote", s.remote.String())
		s.Close()
	}
}

// Read yields the client's side as stream XML.
func (s *boshSession) Read(p []byte) (int, error) {
	for {
		s.mu.Lock()
		if len(s.in) > 0 {
			n := copy(p, s.in)
			s.in = s.in[n:]
			if len(s.in) == 0 {
				s.in = nil
			}
			s.mu.Unlock()
			return n, nil
		}
		dl := s.rdl
		s.mu.Unlock()
		var timeout <-chan time.Time
		var t *time.Timer
		if !dl.IsZero() {
			d := time.Until(dl)
			if d <= 0 {
				return 0, os.ErrDeadlineExceeded
			}
			t = time.NewTimer(d)
			timeout = t.C
		}
		var err error
		select {
		case <-s.inWake:
		case <-timeout:
			err = os.ErrDeadlineExceeded
		case <-s.closed:
			err = net.ErrClosed
		}
		if t != nil {
			t.Stop()
		}
		if err != nil {
			return 0, err
		}
	}
}

func (s *boshSession) Write(p []byte) (int, error) {
	return 0, errors.New("bosh: write through the framing")
}

func (s *boshSession) WriteHeader(from, to, id string) error {
	s.mu.Lock()
	if s.headerID == "" {
		s.headerFrom, s.headerID = from, id
	}
	s.mu.Unlock()
	return nil
}

func (s *boshSession) WriteElement(el *stanza.Element) error {
	s.wbuf = el.AppendXML(s.wbuf, "")
	return nil
}

func (s *boshSession) WriteClose(errEl *stanza.Element) error {
	cond := "-"
	if errEl != nil {
		s.wbuf = errEl.AppendXML(s.wbuf, "")
		cond = "remote-stream-error"
	}
	s.mu.Lock()
	s.terminated = cond
	s.mu.Unlock()
	return s.Flush()
}

func (s *boshSession) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.out)+len(s.wbuf) > s.h.cfg.MaxPendingBytes {
		s.wbuf = s.wbuf[:0]
		return errors.New("bosh: the client does not collect what is sent")
	}
	s.out = append(s.out, s.wbuf...)
	s.wbuf = s.wbuf[:0]
	if cap(s.wbuf) > 64<<10 {
		s.wbuf = nil
	}
	close(s.outReady)
	s.outReady = make(chan struct{})
	return nil
}

func (s *boshSession) TLS() *tls.ConnectionState { return s.state }

// Close ends the session: held requests are answered (with what is left
// and type='terminate'), later ones get item-not-found.
func (s *boshSession) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.ended = true
		if s.idle != nil {
			s.idle.Stop()
		}
		s.mu.Unlock()
		close(s.closed)
		s.h.mu.Lock()
		delete(s.h.sessions, s.sid)
		s.h.mu.Unlock()
	})
	return nil
}

func (s *boshSession) LocalAddr() net.Addr  { return s.local }
func (s *boshSession) RemoteAddr() net.Addr { return s.remote }

func (s *boshSession) SetDeadline(t time.Time) error {
	return s.SetReadDeadline(t)
}

func (s *boshSession) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	s.rdl = t
	s.mu.Unlock()
	select {
	case s.inWake <- struct{}{}:
	default:
	}
	return nil
}

// SetWriteDeadline has nothing to bound: writes go to memory.
func (s *boshSession) SetWriteDeadline(time.Time) error { return nil }

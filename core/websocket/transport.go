package websocket

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	cws "github.com/coder/websocket"

	"kontor.im/kontor/core/session"
	"kontor.im/kontor/core/stanza"
)

// Handler serves XMPP over WebSocket on its path of the HTTPS listener.
type Handler struct {
	Server *session.Server
	Logger *slog.Logger
	// MaxStanzaBytes is the session's stanza size limit; messages are
	// limited to it plus room for an <open/>.
	MaxStanzaBytes int
	// MaxConns bounds open WebSocket connections (0: unlimited); more are
	// refused with 503.
	MaxConns int
	// AllowedOrigins are the origins, besides the listener's own host,
	// whose pages may connect (host patterns as path.Match takes them).
	AllowedOrigins []string

	open atomic.Int64
}

// Open is the number of open WebSocket connections.
func (h *Handler) Open() int { return int(h.open.Load()) }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil {
		http.Error(w, "XMPP over WebSocket needs HTTPS", http.StatusForbidden)
		return
	}
	if n := h.open.Add(1); h.MaxConns > 0 && n > int64(h.MaxConns) {
		h.open.Add(-1)
		w.Header().Set("Retry-After", "30")
		http.Error(w, "too many connections", http.StatusServiceUnavailable)
		return
	}
	defer h.open.Add(-1)
	ws, err := cws.Accept(w, r, &cws.AcceptOptions{Subprotocols: []string{Subprotocol}, OriginPatterns: h.AllowedOrigins})
	if err != nil {
		// Accept has answered (a bad handshake or a foreign origin).
		return
	}
	if ws.Subprotocol() != Subprotocol {
		// RFC 7395 §3.2: without the xmpp subprotocol there is no XMPP.
		ws.Close(cws.StatusPolicyViolation, "the xmpp subprotocol is required")
		return
	}
	limit := h.MaxStanzaBytes
	if limit <= 0 {
		limit = 256 << 10
	}
	ws.SetReadLimit(int64(limit) + 4096)
	t := newTransport(ws, r)
	if err := h.Server.ServeTransport(t); err != nil && h.Logger != nil {
		h.Logger.Debug("websocket not served", "err", err)
	}
}

// transport is one WebSocket as a session.Transport.
type transport struct {
	ws     *cws.Conn
	state  *tls.ConnectionState
	local  net.Addr
	remote net.Addr

	// The reader's own: the translated bytes not yet read.
	pending []byte
	// The writer's own (one goroutine at a time, see session.Framing).
	buf []byte

	rd, wd    deadline
	closeOnce sync.Once
}

func newTransport(ws *cws.Conn, r *http.Request) *transport {
	t := &transport{ws: ws, state: r.TLS, remote: httpAddr(r.RemoteAddr)}
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		t.local = a
	} else {
		t.local = httpAddr("")
	}
	return t
}

// httpAddr is a remote address as net/http gives it.
type httpAddr string

func (a httpAddr) Network() string { return "tcp" }
func (a httpAddr) String() string  { return string(a) }

func (t *transport) Read(p []byte) (int, error) {
	for len(t.pending) == 0 {
		typ, msg, err := t.ws.Read(context.Background())
		if err != nil {
			if t.rd.fired.Load() {
				return 0, os.ErrDeadlineExceeded
			}
			return 0, err
		}
		if typ != cws.MessageText {
			t.ws.Close(cws.StatusUnsupportedData, "XMPP is sent as text")
			return 0, errFraming
		}
		k, repl, err := classify(msg)
		if err != nil {
			return 0, &stanza.StreamError{Condition: stanza.StreamNotWellFormed, Text: "a message is not one framed XML element"}
		}
		if k != kindElement {
			msg = repl
		}
		t.pending = msg
	}
	n := copy(p, t.pending)
	t.pending = t.pending[n:]
	return n, nil
}

// Write is not used: the session writes through the framing methods.
func (t *transport) Write(p []byte) (int, error) {
	return 0, errors.New("websocket: write through the framing")
}

func (t *transport) send(b []byte) error {
	err := t.ws.Write(context.Background(), cws.MessageText, b)
	if err != nil && t.wd.fired.Load() {
		return os.ErrDeadlineExceeded
	}
	return err
}

func (t *transport) WriteHeader(from, to, id string) error {
	return t.send(openElement(from, to, id))
}

func (t *transport) WriteElement(el *stanza.Element) error {
	t.buf = appendElement(t.buf[:0], el)
	err := t.send(t.buf)
	if cap(t.buf) > 64<<10 {
		t.buf = nil
	}
	return err
}

func (t *transport) WriteClose(errEl *stanza.Element) error {
	if errEl != nil {
		if err := t.WriteElement(errEl); err != nil {
			return err
		}
	}
	return t.send(closeElement)
}

// Flush has nothing to do: every element is sent as it is written.
func (t *transport) Flush() error { return nil }

func (t *transport) TLS() *tls.ConnectionState { return t.state }

func (t *transport) Close() error {
	t.closeOnce.Do(func() {
		t.rd.set(time.Time{}, nil)
		t.wd.set(time.Time{}, nil)
		// The closing handshake waits for the client's close frame (a few
		// seconds at most, coder/websocket); a client that sent <close/>
		// answers at once.
		t.ws.Close(cws.StatusNormalClosure, "")
	})
	return nil
}

func (t *transport) LocalAddr() net.Addr  { return t.local }
func (t *transport) RemoteAddr() net.Addr { return t.remote }

func (t *transport) SetDeadline(d time.Time) error {
	t.SetReadDeadline(d)
	return t.SetWriteDeadline(d)
}

func (t *transport) SetReadDeadline(d time.Time) error {
	t.rd.set(d, t.expire)
	return nil
}

func (t *transport) SetWriteDeadline(d time.Time) error {
	t.wd.set(d, t.expire)
	return nil
}

// expire closes the WebSocket when a deadline passes.
func (t *transport) expire() { t.ws.CloseNow() }

// deadline fires a function once a time has passed, unless moved.
type deadline struct {
	mu    sync.Mutex
	timer *time.Timer
	fired atomic.Bool
}

func (d *deadline) set(at time.Time, fire func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	if at.IsZero() || fire == nil {
		return
	}
	d.timer = time.AfterFunc(time.Until(at), func() {
		d.fired.Store(true)
		fire()
	})
}

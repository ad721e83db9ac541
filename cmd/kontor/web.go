package main

import (
	"crypto/tls"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"kontor.im/kontor/core/bosh"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/websocket"
)

// HTTPConfig configures the HTTPS listener: XMPP over WebSocket for
// browser clients, their service discovery (XEP-0156), and what modules
// serve (HTTP upload).
type HTTPConfig struct {
	// Addr is the listen address ("" disables the listener).
	Addr string `mapstructure:"addr"`
	// PublicURL is how clients reach the listener; "{domain}" stands for
	// the virtual host. Default: https://DOMAIN:PORT.
	PublicURL string `mapstructure:"public_url"`
	// MaxWebSockets bounds open WebSocket connections (0: unlimited).
	MaxWebSockets int `mapstructure:"max_websockets"`
	// AllowedOrigins are origins besides the listener's own whose pages
	// may open a WebSocket.
	AllowedOrigins    []string      `mapstructure:"allowed_origins"`
	ReadHeaderTimeout time.Duration `mapstructure:"read_header_timeout"`
	// BOSH (XEP-0124/0206) limits.
	BOSHMaxSessions int           `mapstructure:"bosh_max_sessions"`
	BOSHMaxWait     time.Duration `mapstructure:"bosh_max_wait"`
	BOSHMaxHold     int           `mapstructure:"bosh_max_hold"`
	BOSHInactivity  time.Duration `mapstructure:"bosh_inactivity"`
}

// webSocketPath is where XMPP over WebSocket is served.
const webSocketPath = "/xmpp-websocket"

// boshPath is where XMPP over BOSH is served.
const boshPath = "/http-bind"

// webHandler routes the HTTPS listener: the WebSocket endpoint and
// XEP-0156 discovery for every host, then the host's module handlers by
// the request's Host header (or the only host's, when there is one).
type webHandler struct {
	router  *router.Router
	domains []string
	baseURL func(string) string
	ws      *websocket.Handler
	bosh    *bosh.Handler
}

func (h *webHandler) host(r *http.Request) string {
	name := r.Host
	if hn, _, err := net.SplitHostPort(name); err == nil {
		name = hn
	}
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if h.router.IsLocal(name) {
		return name
	}
	if len(h.domains) == 1 {
		return h.domains[0]
	}
	return ""
}

func (h *webHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Strict-Transport-Security", "max-age=31536000")
	switch r.URL.Path {
	case webSocketPath:
		h.ws.ServeHTTP(w, r)
		return
	case boshPath:
		h.bosh.ServeHTTP(w, r)
		return
	case "/.well-known/host-meta", "/.well-known/host-meta.json":
		h.hostMeta(w, r)
		return
	}
	domain := h.host(r)
	if domain == "" {
		http.NotFound(w, r)
		return
	}
	if mh := h.router.Host(domain).HTTPHandler(); mh != nil {
		mh.ServeHTTP(w, r)
		return
	}
	http.NotFound(w, r)
}

// hostMeta answers XEP-0156 discovery: where the WebSocket endpoint is.
func (h *webHandler) hostMeta(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	domain := h.host(r)
	if domain == "" {
		http.NotFound(w, r)
		return
	}
	base := h.baseURL(domain)
	wsURL := "wss" + strings.TrimPrefix(base, "https") + webSocketPath
	boshURL := base + boshPath
	// Any page may read where to connect (the WebSocket itself checks
	// origins).
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if strings.HasSuffix(r.URL.Path, ".json") {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"links": []map[string]string{{"rel": "urn:xmpp:alt-connections:websocket", "href": wsURL},
				{"rel": "urn:xmpp:alt-connections:xbosh", "href": boshURL}},
		})
		return
	}
	w.Header().Set("Content-Type", "application/xrd+xml")
	var b strings.Builder
	b.WriteString("<?xml version='1.0' encoding='utf-8'?>\n<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n")
	b.WriteString("  <Link rel='urn:xmpp:alt-connections:websocket' href='")
	_ = xml.EscapeText(&b, []byte(wsURL))
	b.WriteString("'/>\n  <Link rel='urn:xmpp:alt-connections:xbosh' href='")
	_ = xml.EscapeText(&b, []byte(boshURL))
	b.WriteString("'/>\n</XRD>\n")
	_, _ = w.Write([]byte(b.String()))
}

// listenHTTPS opens the HTTPS listener's socket (before the router is
// built, so that base URLs carry the bound port).
func (s *Server) listenHTTPS(cfg *Config) error {
	if cfg.HTTP.Addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	s.httpsLn = ln
	s.Addrs["https"] = ln.Addr()
	return nil
}

// httpBaseURL returns the public base URL of the HTTPS listener for a
// domain, or nil when the listener is off.
func (s *Server) httpBaseURL(cfg *Config) func(string) string {
	if s.httpsLn == nil {
		return nil
	}
	_, port, _ := net.SplitHostPort(s.httpsLn.Addr().String())
	public := cfg.HTTP.PublicURL
	return func(domain string) string { return baseURL(public, port, domain) }
}

// baseURL is a domain's base URL: public with "{domain}" replaced, or
// https://DOMAIN:PORT.
func baseURL(public, port, domain string) string {
	if public != "" {
		return strings.TrimSuffix(strings.ReplaceAll(public, "{domain}", domain), "/")
	}
	if port == "443" {
		return "https://" + domain
	}
	return "https://" + net.JoinHostPort(domain, port)
}

// startHTTPS serves the HTTPS listener with the c2s certificate.
func (s *Server) startHTTPS(cfg *Config, tlsConf *tls.Config, log *slog.Logger) {
	if s.httpsLn == nil {
		return
	}
	s.ws = &websocket.Handler{Server: s.c2s, Logger: log, MaxStanzaBytes: cfg.C2S.MaxStanzaBytes,
		MaxConns: cfg.HTTP.MaxWebSockets, AllowedOrigins: cfg.HTTP.AllowedOrigins}
	s.bosh = bosh.NewHandler(bosh.Config{Server: s.c2s, Logger: log, MaxWait: cfg.HTTP.BOSHMaxWait, MaxHold: cfg.HTTP.BOSHMaxHold,
		Inactivity: cfg.HTTP.BOSHInactivity, MaxSessions: cfg.HTTP.BOSHMaxSessions, MaxBodyBytes: cfg.C2S.MaxStanzaBytes + 4096,
		AllowedOrigins: cfg.HTTP.AllowedOrigins})
	h := &webHandler{router: s.router, domains: cfg.Domains, baseURL: s.httpBaseURL(cfg), ws: s.ws, bosh: s.bosh}
	hc := tlsConf.Clone()
	hc.NextProtos = []string{"http/1.1"} // WebSocket upgrades need HTTP/1.1
	s.https = &http.Server{Handler: h, ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout, TLSConfig: hc,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	ln := s.httpsLn
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.https.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("https listener stopped", "err", err)
		}
	}()
}

package main

// Federation with other XMPP servers (core/s2s), off by default: a fresh
// install opens no port to other servers until the operator enables it.

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/limit"
	"kontor.im/kontor/core/s2s"
	"kontor.im/kontor/core/seal"
	"kontor.im/kontor/core/xmlstream"
)

// S2SConfig configures federation (README, "Federation").
type S2SConfig struct {
	// Enabled switches federation on: stanzas to other domains are sent
	// to their servers, and the listeners below accept theirs.
	Enabled bool `mapstructure:"enabled"`
	// Addr and DirectTLSAddr are listen addresses ("" disables).
	Addr          string `mapstructure:"addr"`
	DirectTLSAddr string `mapstructure:"direct_tls_addr"`
	// Routes are static routes, "domain=host:port" (STARTTLS) or
	// "domain=tls://host:port" (direct TLS), used instead of DNS.
	Routes []string `mapstructure:"routes"`
	// RequireValidCertificates refuses peers whose certificate does not
	// verify instead of authenticating them with dialback.
	RequireValidCertificates bool `mapstructure:"require_valid_certificates"`
	// CAFile adds trusted roots for peers' certificates (PEM); empty: the
	// system roots only.
	CAFile string `mapstructure:"ca_file"`
	// DialbackSecretFile holds the dialback secret; generated when
	// missing (default DATA_DIR/keys/dialback.key).
	DialbackSecretFile  string        `mapstructure:"dialback_secret_file"`
	MaxStanzaBytes      int           `mapstructure:"max_stanza_bytes"`
	MaxDepth            int           `mapstructure:"max_depth"`
	MaxConnectionsPerIP int           `mapstructure:"max_connections_per_ip"`
	QueueSize           int           `mapstructure:"queue_size"`
	ConnectTimeout      time.Duration `mapstructure:"connect_timeout"`
	HandshakeTimeout    time.Duration `mapstructure:"handshake_timeout"`
	IdleTimeout         time.Duration `mapstructure:"idle_timeout"`
	WriteTimeout        time.Duration `mapstructure:"write_timeout"`
}

// routes parses the static routes.
func (c *S2SConfig) routes() (map[string]string, error) {
	out := map[string]string{}
	for i, r := range c.Routes {
		d, addr, ok := strings.Cut(r, "=")
		if !ok {
			return nil, fmt.Errorf("s2s.routes[%d]: %q is not domain=host:port", i, r)
		}
		j, err := jid.Parse(strings.TrimSpace(d))
		if err != nil || j.Local() != "" || !j.IsBare() {
			return nil, fmt.Errorf("s2s.routes[%d]: %q is not a domain", i, d)
		}
		if _, _, err := net.SplitHostPort(strings.TrimPrefix(strings.TrimSpace(addr), "tls://")); err != nil {
			return nil, fmt.Errorf("s2s.routes[%d]: %w", i, err)
		}
		out[j.String()] = strings.TrimSpace(addr)
	}
	return out, nil
}

func (c *S2SConfig) validate() []string {
	var p []string
	if _, err := c.routes(); err != nil {
		p = append(p, err.Error())
	}
	for _, n := range []struct {
		key string
		v   int
		min int
	}{{"max_stanza_bytes", c.MaxStanzaBytes, 1024}, {"max_depth", c.MaxDepth, 4}, {"queue_size", c.QueueSize, 1}, {"max_connections_per_ip", c.MaxConnectionsPerIP, 0}} {
		if n.v < n.min {
			p = append(p, fmt.Sprintf("s2s.%s: must be at least %d", n.key, n.min))
		}
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"connect_timeout", c.ConnectTimeout}, {"handshake_timeout", c.HandshakeTimeout}, {"idle_timeout", c.IdleTimeout}, {"write_timeout", c.WriteTimeout}} {
		if d.v <= 0 {
			p = append(p, fmt.Sprintf("s2s.%s: must be positive", d.key))
		}
	}
	return p
}

// newS2S builds the federation service, or nil when it is off.
func newS2S(cfg *Config, tlsConf *tls.Config, log *slog.Logger) (*s2s.Service, error) {
	c := cfg.S2S
	if !c.Enabled {
		return nil, nil
	}
	routes, err := c.routes()
	if err != nil {
		return nil, err
	}
	secretFile := c.DialbackSecretFile
	if secretFile == "" {
		secretFile = filepath.Join(cfg.DataDir, "keys", "dialback.key")
	}
	secret, err := seal.LoadOrCreateKey(secretFile)
	if err != nil {
		return nil, fmt.Errorf("s2s: dialback secret: %w", err)
	}
	var roots *x509.CertPool
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("s2s: %w", err)
		}
		if roots, err = x509.SystemCertPool(); err != nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, errors.New("s2s: ca_file holds no PEM certificate")
		}
	}
	return s2s.New(s2s.Config{
		Logger:           log,
		TLS:              tlsConf,
		RootCAs:          roots,
		Secret:           secret,
		Routes:           routes,
		RequireValidCert: c.RequireValidCertificates,
		Limits:           xmlstream.Limits{MaxStanzaBytes: c.MaxStanzaBytes, MaxDepth: c.MaxDepth},
		QueueSize:        c.QueueSize,
		ConnectTimeout:   c.ConnectTimeout,
		HandshakeTimeout: c.HandshakeTimeout,
		IdleTimeout:      c.IdleTimeout,
		WriteTimeout:     c.WriteTimeout,
		Conns:            limit.NewConns(c.MaxConnectionsPerIP),
	})
}

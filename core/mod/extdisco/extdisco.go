// Package extdisco implements XEP-0215 External Service Discovery for the
// STUN and TURN servers that audio and video calls need (Conversations,
// Dino and Monal ask for them before a call).
//
// Credentials are time-limited and derived from a secret shared with the
// TURN server, in the scheme coturn calls "TURN REST API" (use-auth-secret
// and static-auth-secret in turnserver.conf): the username is
// "EXPIRY:USER", EXPIRY being Unix seconds and USER the requester's bare
// JID, and the password is base64(HMAC-SHA1(secret, username)). The TURN
// server checks both without asking Kontor; a leaked credential stops
// working at EXPIRY. The secret comes from the configuration or a file
// and is never logged nor sent.
//
// Only authenticated local users get an answer (the IQ is addressed to the
// host; requests from other domains never reach this handler), and only
// for services whose type and transport match what they asked.
package extdisco

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
)

// NS is the XEP-0215 namespace.
const NS = "urn:xmpp:extdisco:2"

func init() {
	module.Register(module.Info{
		ID:          "extdisco",
		Description: "Hands out STUN/TURN servers with time-limited credentials for calls (needs a TURN server)",
		Specs: []module.Spec{
			{ID: "XEP-0215", Name: "External Service Discovery", Version: "1.0.0", Status: module.Complete},
		},
		New: func() module.Module { return &extdisco{opts: defaultOptions(), now: time.Now} },
	})
}

// Service is one STUN or TURN server.
type Service struct {
	// Type is "stun", "stuns", "turn" or "turns".
	Type string `mapstructure:"type"`
	// Host is the server's DNS name or IP address, as clients reach it.
	Host string `mapstructure:"host"`
	// Port is its port (default 3478, or 5349 for stuns/turns).
	Port int `mapstructure:"port"`
	// Transport is "udp" or "tcp" (default udp; tcp for stuns/turns).
	Transport string `mapstructure:"transport"`
	// Name is shown to users by some clients.
	Name string `mapstructure:"name"`
	// Credentials: the service needs the shared-secret credentials (TURN
	// always does; STUN normally not).
	Credentials bool `mapstructure:"credentials"`
}

// Options configures the module.
type Options struct {
	Services []Service `mapstructure:"services"`
	// Secret is the secret shared with the TURN server (coturn's
	// static-auth-secret). SecretFile, if set, is read instead at start.
	Secret     string `mapstructure:"secret"`
	SecretFile string `mapstructure:"secret_file"`
	// TTL is how long credentials stay valid.
	TTL time.Duration `mapstructure:"ttl"`
}

func defaultOptions() Options { return Options{TTL: 12 * time.Hour} }

// Validate checks the options.
func (o *Options) Validate() error {
	var errs []error
	if len(o.Services) == 0 {
		errs = append(errs, errors.New("extdisco: services: at least one STUN or TURN server is needed"))
	}
	needSecret := false
	for i := range o.Services {
		s := &o.Services[i]
		p := fmt.Sprintf("extdisco: services[%d]", i)
		switch s.Type {
		case "stun", "turn":
			if s.Transport == "" {
				s.Transport = "udp"
			}
			if s.Port == 0 {
				s.Port = 3478
			}
		case "stuns", "turns":
			if s.Transport == "" {
				s.Transport = "tcp"
			}
			if s.Port == 0 {
				s.Port = 5349
			}
		default:
			errs = append(errs, fmt.Errorf("%s.type: %q is not stun, stuns, turn or turns", p, s.Type))
			continue
		}
		if s.Transport != "udp" && s.Transport != "tcp" {
			errs = append(errs, fmt.Errorf("%s.transport: %q is not udp or tcp", p, s.Transport))
		}
		if s.Host == "" || strings.ContainsAny(s.Host, " /:@") && net.ParseIP(s.Host) == nil {
			errs = append(errs, fmt.Errorf("%s.host: %q is not a host name or IP address", p, s.Host))
		}
		if s.Port < 1 || s.Port > 65535 {
			errs = append(errs, fmt.Errorf("%s.port: %d is not a port", p, s.Port))
		}
		if strings.HasPrefix(s.Type, "turn") {
			s.Credentials = true
		}
		needSecret = needSecret || s.Credentials
	}
	if needSecret && o.Secret == "" && o.SecretFile == "" {
		errs = append(errs, errors.New("extdisco: secret or secret_file is needed for TURN credentials"))
	}
	if o.Secret != "" && o.SecretFile != "" {
		errs = append(errs, errors.New("extdisco: set secret or secret_file, not both"))
	}
	if o.TTL < time.Minute || o.TTL > 7*24*time.Hour {
		errs = append(errs, fmt.Errorf("extdisco: ttl %v is not between 1m and 168h", o.TTL))
	}
	return errors.Join(errs...)
}

type extdisco struct {
	opts   Options
	secret []byte
	now    func() time.Time
}

var (
	_ module.Configurable = (*extdisco)(nil)
	_ module.Validator    = (*Options)(nil)
)

func (e *extdisco) Options() any { return &e.opts }

func (e *extdisco) Provision(h module.Host) error {
	e.secret = []byte(e.opts.Secret)
	if e.opts.SecretFile != "" {
		b, err := os.ReadFile(e.opts.SecretFile)
		if err != nil {
			return fmt.Errorf("extdisco: secret_file: %w", err)
		}
		if e.secret = []byte(strings.TrimSpace(string(b))); len(e.secret) == 0 {
			return fmt.Errorf("extdisco: secret_file %s is empty", e.opts.SecretFile)
		}
	}
	h.HandleIQ(module.ToHost, module.Get, stanza.Name{Space: NS, Local: "services"}, e.services)
	h.HandleIQ(module.ToHost, module.Get, stanza.Name{Space: NS, Local: "credentials"}, e.credentials)
	h.AddDisco(module.ToHost, module.Disco{Features: []string{NS}})
	return nil
}

// services answers §3.1/§3.2: every service, or those of the requested
// type.
func (e *extdisco) services(ctx context.Context, iq *module.IQ) (*stanza.Element, error) {
	q := iq.Payload()
	typ := q.Get("type")
	out := stanza.New(NS, "services")
	if typ != "" {
		out.Set("type", typ)
	}
	for _, s := range e.opts.Services {
		if typ != "" && typ != s.Type {
			continue
		}
		out.Append(e.item(iq, s))
	}
	return out, nil
}

// credentials answers §3.3: credentials for one service named by host,
// type and (optionally) port.
func (e *extdisco) credentials(ctx context.Context, iq *module.IQ) (*stanza.Element, error) {
	want := iq.Payload().Child(NS, "service")
	if want == nil {
		return nil, stanza.ErrBadRequest("a <service/> with host and type is needed")
	}
	host, typ := want.Get("host"), want.Get("type")
	port, _ := strconv.Atoi(want.Get("port"))
	for _, s := range e.opts.Services {
		if s.Host == host && s.Type == typ && (port == 0 || port == s.Port) {
			if !s.Credentials {
				return nil, stanza.ErrItemNotFound("this service needs no credentials")
			}
			return stanza.New(NS, "credentials").Append(e.item(iq, s)), nil
		}
	}
	return nil, stanza.ErrItemNotFound("no such service")
}

func (e *extdisco) item(iq *module.IQ, s Service) *stanza.Element {
	el := stanza.New(NS, "service")
	el.Set("type", s.Type)
	el.Set("host", s.Host)
	el.Set("port", strconv.Itoa(s.Port))
	el.Set("transport", s.Transport)
	if s.Name != "" {
		el.Set("name", s.Name)
	}
	if s.Credentials {
		expires := e.now().Add(e.opts.TTL).Truncate(time.Second).UTC()
		user, pass := Credentials(e.secret, iq.From.Bare().String(), expires)
		el.Set("restricted", "1")
		el.Set("expires", expires.Format(time.RFC3339))
		el.Set("username", user)
		el.Set("password", pass)
	}
	return el
}

// Credentials derives the TURN REST API username and password for user,
// valid until expires.
func Credentials(secret []byte, user string, expires time.Time) (username, password string) {
	username = strconv.FormatInt(expires.Unix(), 10) + ":" + user
	m := hmac.New(sha1.New, secret)
	m.Write([]byte(username))
	return username, base64.StdEncoding.EncodeToString(m.Sum(nil))
}

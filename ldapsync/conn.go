package ldapsync

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// ErrUnavailable is returned when no directory server can be reached, or
// all are in their back-off after failing.
var ErrUnavailable = errors.New("ldapsync: no directory server is reachable")

// Client holds the connections to the directory: a pool bound as the
// service account (searches) and a pool for binds as users (logins). go-ldap
// does not reconnect by itself; Client does: a connection that fails is
// dropped, the request is retried once on a new one, and the servers are
// tried in the configured order (fail-over), each failed server waiting in
// an exponential back-off before it is tried again.
//
// Lock order: Client.mu and pool.mu are never held together, nor across
// network I/O.
type Client struct {
	servers        []server
	startTLS       bool
	tlsConf        *tls.Config
	bindDN, bindPW string
	dialTimeout    time.Duration
	requestTimeout time.Duration
	backoff        time.Duration
	maxBackoff     time.Duration
	log            *slog.Logger
	now            func() time.Time

	mu     sync.Mutex
	health []serverHealth

	service *pool
	login   *pool
}

type server struct {
	url  *url.URL
	name string // the URL as configured, for logs
}

type serverHealth struct {
	failures int
	retryAt  time.Time
}

// NewClient builds a client; nothing is dialled until it is used.
func NewClient(cfg Config, log *slog.Logger) (*Client, error) {
	pw, err := cfg.bindPassword()
	if err != nil {
		return nil, err
	}
	c := &Client{
		startTLS: cfg.StartTLS, bindDN: cfg.BindDN, bindPW: pw,
		dialTimeout: cfg.DialTimeout, requestTimeout: cfg.RequestTimeout,
		backoff: cfg.ReconnectBackoff, maxBackoff: cfg.MaxReconnectBackoff,
		log: log, now: time.Now,
	}
	if c.dialTimeout <= 0 {
		c.dialTimeout = 5 * time.Second
	}
	if c.requestTimeout <= 0 {
		c.requestTimeout = 30 * time.Second
	}
	if c.backoff <= 0 {
		c.backoff = time.Second
	}
	c.maxBackoff = max(c.maxBackoff, c.backoff)
	for _, raw := range cfg.URLs {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Hostname() == "" {
			return nil, fmt.Errorf("ldapsync: %q is not an ldap:// or ldaps:// URL", raw)
		}
		c.servers = append(c.servers, server{url: u, name: raw})
	}
	if len(c.servers) == 0 {
		return nil, errors.New("ldapsync: no directory URL configured")
	}
	c.health = make([]serverHealth, len(c.servers))
	c.tlsConf = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.TLSServerName}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ldapsync: ca_file: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ldapsync: ca_file %s holds no PEM certificate", cfg.CAFile)
		}
		c.tlsConf.RootCAs = roots
	}
	c.service = newPool(c, max(2, cfg.Login.PoolSize), true) // a sync holds one; logins look DNs up on the others
	c.login = newPool(c, max(cfg.Login.PoolSize, 1), false)
	return c, nil
}

// Close closes every idle connection. Connections in use close when they
// are returned.
func (c *Client) Close() error {
	c.service.close()
	c.login.close()
	return nil
}

// tlsFor returns the TLS configuration for a server: its host name is
// verified unless tls_server_name overrides it.
func (c *Client) tlsFor(s server) *tls.Config {
	tc := c.tlsConf.Clone()
	if tc.ServerName == "" {
		tc.ServerName = s.url.Hostname()
	}
	return tc
}

// dial connects to the first server that is not in back-off, in the
// configured order, with TLS (ldaps or StartTLS), and binds as the service
// account if bind is set.
func (c *Client) dial(ctx context.Context, bind bool) (*ldap.Conn, error) {
	now := c.now()
	c.mu.Lock()
	order := make([]int, 0, len(c.servers))
	var soonest time.Time
	for i, h := range c.health {
		if !now.Before(h.retryAt) {
			order = append(order, i)
		} else if soonest.IsZero() || h.retryAt.Before(soonest) {
			soonest = h.retryAt
		}
	}
	c.mu.Unlock()
	if len(order) == 0 {
		return nil, fmt.Errorf("%w: every server is in back-off for %v more", ErrUnavailable, soonest.Sub(now).Round(time.Millisecond))
	}
	var errs []error
	for _, i := range order {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s := c.servers[i]
		conn, err := c.dialOne(ctx, s, bind)
		if err == nil {
			c.mu.Lock()
			wasDown := c.health[i].failures > 0
			c.health[i] = serverHealth{}
			c.mu.Unlock()
			if wasDown {
				c.log.Info("directory server reachable again", "url", s.name)
			}
			return conn, nil
		}
		if isCredentialError(err) {
			// A wrong service password is not the server's fault; no
			// other server will accept it either.
			return nil, err
		}
		c.mu.Lock()
		h := &c.health[i]
		h.failures++
		wait := c.backoff
		for n := 1; n < h.failures && wait < c.maxBackoff; n++ {
			wait *= 2
		}
		wait = min(wait, c.maxBackoff)
		h.retryAt = c.now().Add(wait)
		c.mu.Unlock()
		c.log.Warn("directory server failed", "url", s.name, "err", err, "retry_in", wait)
		errs = append(errs, fmt.Errorf("%s: %w", s.name, err))
	}
	return nil, fmt.Errorf("%w: %w", ErrUnavailable, errors.Join(errs...))
}

func (c *Client) dialOne(ctx context.Context, s server, bind bool) (*ldap.Conn, error) {
	tc := c.tlsFor(s)
	d := &net.Dialer{Timeout: c.dialTimeout}
	if dl, ok := ctx.Deadline(); ok {
		d.Deadline = dl
	}
	conn, err := ldap.DialURL(s.url.String(), ldap.DialWithDialer(d), ldap.DialWithTLSConfig(tc))
	if err != nil {
		return nil, err
	}
	conn.SetTimeout(c.requestTimeout)
	if s.url.Scheme == "ldap" && c.startTLS {
		if err := conn.StartTLS(tc); err != nil {
			conn.Close()
			return nil, fmt.Errorf("StartTLS: %w", err)
		}
	}
	if bind {
		if err := conn.Bind(c.bindDN, c.bindPW); err != nil {
			conn.Close()
			return nil, fmt.Errorf("bind as %s: %w", c.bindDN, err)
		}
	}
	return conn, nil
}

// isCredentialError reports a refused bind (result code 49).
func isCredentialError(err error) bool {
	return ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials)
}

// isConnError reports an error after which the connection is not usable.
func isConnError(err error) bool {
	var le *ldap.Error
	if errors.As(err, &le) {
		return le.ResultCode == ldap.ErrorNetwork || le.ResultCode >= ldap.ErrorUnexpectedMessage ||
			le.ResultCode == ldap.LDAPResultUnavailable || le.ResultCode == ldap.LDAPResultBusy ||
			le.ResultCode == ldap.LDAPResultServerDown
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, net.ErrClosed)
}

// pool is a bounded set of connections of one kind.
type pool struct {
	c     *Client
	bind  bool
	slots chan struct{}

	mu     sync.Mutex
	idle   []*ldap.Conn
	closed bool
}

func newPool(c *Client, size int, bind bool) *pool {
	return &pool{c: c, bind: bind, slots: make(chan struct{}, size)}
}

func (p *pool) get(ctx context.Context) (*ldap.Conn, error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p.mu.Lock()
	for len(p.idle) > 0 {
		conn := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if !conn.IsClosing() {
			p.mu.Unlock()
			return conn, nil
		}
		conn.Close()
	}
	p.mu.Unlock()
	conn, err := p.c.dial(ctx, p.bind)
	if err != nil {
		<-p.slots
		return nil, err
	}
	return conn, nil
}

func (p *pool) put(conn *ldap.Conn, broken bool) {
	p.mu.Lock()
	if broken || p.closed || conn.IsClosing() {
		p.mu.Unlock()
		conn.Close()
	} else {
		p.idle = append(p.idle, conn)
		p.mu.Unlock()
	}
	<-p.slots
}

func (p *pool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, conn := range idle {
		conn.Close()
	}
}

// with runs fn on a connection of p. If fn fails because the connection
// broke, it runs once more on a new connection (perhaps to the next
// server). Cancelling ctx closes the connection, which ends a request that
// is waiting. fn must be safe to run twice.
func (p *pool) with(ctx context.Context, fn func(*ldap.Conn) error) error {
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		var conn *ldap.Conn
		if conn, err = p.get(ctx); err != nil {
			return err
		}
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		err = fn(conn)
		stop()
		broken := err != nil && (isConnError(err) || conn.IsClosing())
		p.put(conn, broken)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !broken {
			return err
		}
		p.c.log.Info("directory connection lost; reconnecting", "err", err)
	}
	return err
}

// rootDSE reads the root DSE.
func (c *Client) rootDSE(ctx context.Context) (*ldap.Entry, error) {
	var e *ldap.Entry
	err := c.service.with(ctx, func(conn *ldap.Conn) error {
		res, err := conn.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=*)", []string{"defaultNamingContext", "dsServiceName", "highestCommittedUSN",
				"supportedCapabilities", "namingContexts", "vendorName", "vendorVersion"}, nil))
		if err != nil {
			return err
		}
		if len(res.Entries) != 1 {
			return fmt.Errorf("the root DSE returned %d entries", len(res.Entries))
		}
		e = res.Entries[0]
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ldapsync: reading the root DSE: %w", err)
	}
	return e, nil
}

// searchBase reads one entry (ErrNotFound-like nil when it does not exist).
func (c *Client) searchBase(ctx context.Context, dn string, attrs []string, controls []ldap.Control) (*ldap.Entry, error) {
	var e *ldap.Entry
	err := c.service.with(ctx, func(conn *ldap.Conn) error {
		res, err := conn.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=*)", attrs, controls))
		if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			e = nil
			return nil
		}
		if err != nil {
			return err
		}
		if len(res.Entries) > 0 {
			e = res.Entries[0]
		}
		return nil
	})
	return e, err
}

// page is one page of a paged search.
type page struct {
	entries   []*ldap.Entry
	referrals int
}

// searchPaged runs a subtree search with the paged results control
// (RFC 2696), pageSize entries per page, and calls fn for each page. If
// the connection breaks, the search starts over from the first page on a
// new connection, so fn must tolerate seeing entries again. Referrals
// (continuation references, normal at an Active Directory domain root) are
// counted, not chased.
func (c *Client) searchPaged(ctx context.Context, base, filter string, attrs []string, controls []ldap.Control,
	pageSize int, fn func(page) error) error {
	pageSize = min(max(pageSize, 1), MaxPageSize)
	return c.service.with(ctx, func(conn *ldap.Conn) error {
		paging := ldap.NewControlPaging(uint32(pageSize))
		req := ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
			filter, attrs, append(append([]ldap.Control{}, controls...), paging))
		for {
			res, err := conn.Search(req)
			if err != nil {
				return err
			}
			if err := fn(page{entries: res.Entries, referrals: len(res.Referrals)}); err != nil {
				// Tell the server to drop the rest of the result set.
				if cookie := pagingCookie(res); len(cookie) > 0 {
					paging.PagingSize = 0
					paging.SetCookie(cookie)
					_, _ = conn.Search(req)
				}
				return errStop{err}
			}
			cookie := pagingCookie(res)
			if len(cookie) == 0 {
				return nil
			}
			paging.SetCookie(cookie)
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	})
}

// errStop carries an error of the caller's fn out of with without being
// mistaken for a broken connection.
type errStop struct{ err error }

func (e errStop) Error() string { return e.err.Error() }
func (e errStop) Unwrap() error { return e.err }

func pagingCookie(res *ldap.SearchResult) []byte {
	ctrl := ldap.FindControl(res.Controls, ldap.ControlTypePaging)
	if p, ok := ctrl.(*ldap.ControlPaging); ok {
		return p.Cookie
	}
	return nil
}

// rangedValues completes a multi-valued attribute that Active Directory
// returned in ranges ("member;range=0-1499"), reading the following ranges
// of the entry until the one that ends in "*".
func (c *Client) rangedValues(ctx context.Context, dn, attr string, first []string, r valueRange) ([]string, error) {
	values := append([]string{}, first...)
	for !r.last {
		next := fmt.Sprintf("%s;range=%d-*", attr, r.hi+1)
		e, err := c.searchBase(ctx, dn, []string{next}, nil)
		if err != nil {
			return nil, fmt.Errorf("ldapsync: ranged retrieval of %s of %s: %w", attr, dn, err)
		}
		if e == nil {
			return nil, fmt.Errorf("ldapsync: ranged retrieval of %s: %s is gone", attr, dn)
		}
		found := false
		for _, a := range e.Attributes {
			nr, ok := parseRange(a.Name, attr)
			if !ok {
				continue
			}
			if nr.lo != r.hi+1 {
				return nil, fmt.Errorf("ldapsync: ranged retrieval of %s of %s: asked from %d, got %s", attr, dn, r.hi+1, a.Name)
			}
			values = append(values, a.Values...)
			r, found = nr, true
			break
		}
		if !found {
			return nil, fmt.Errorf("ldapsync: ranged retrieval of %s of %s: no range in the answer", attr, dn)
		}
	}
	return values, nil
}

// valueRange is the range option of an attribute description
// ("member;range=1500-2999", or "member;range=3000-*" for the last).
type valueRange struct {
	lo, hi int // hi is meaningless when last
	last   bool
}

// maxRangeBound bounds range numbers: no attribute has this many values.
const maxRangeBound = 1 << 30

// parseRange parses an attribute description "attr;range=lo-hi" (or
// "attr;range=lo-*") for the given attr, case-insensitively.
func parseRange(desc, attr string) (valueRange, bool) {
	var r valueRange
	prefix := attr + ";range="
	if len(desc) <= len(prefix) || !strings.EqualFold(desc[:len(prefix)], prefix) {
		return r, false
	}
	lo, hi, ok := strings.Cut(desc[len(prefix):], "-")
	if !ok {
		return r, false
	}
	var err error
	if r.lo, err = parseBound(lo); err != nil {
		return r, false
	}
	if hi == "*" {
		r.last = true
		return r, true
	}
	if r.hi, err = parseBound(hi); err != nil || r.hi < r.lo {
		return r, false
	}
	return r, true
}

func parseBound(s string) (int, error) {
	if s == "" || len(s) > 10 {
		return 0, errors.New("bad bound")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("bad bound")
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n >= maxRangeBound {
		return 0, errors.New("bad bound")
	}
	return n, nil
}

// BindError is a refused bind as a user, with the reason the directory
// gave (see BindReasonOf).
type BindError struct {
	Reason  BindReason
	SubCode uint32 // Active Directory's sub-code, 0 if none
}

func (e *BindError) Error() string {
	if e.SubCode != 0 {
		return fmt.Sprintf("ldapsync: bind refused: %s (AD sub-code %x)", e.Reason, e.SubCode)
	}
	return "ldapsync: bind refused: " + string(e.Reason)
}

// bindAs checks a user's password by binding as dn on a login connection.
// A refused bind is a *BindError; anything else is the directory's fault.
func (c *Client) bindAs(ctx context.Context, dn, password string) error {
	if password == "" {
		// An empty password is an unauthenticated bind, which succeeds
		// (RFC 4513 §5.1.2): never let it through.
		return &BindError{Reason: ReasonInvalidCredentials}
	}
	err := c.login.with(ctx, func(conn *ldap.Conn) error {
		return conn.Bind(dn, password)
	})
	var le *ldap.Error
	if errors.As(err, &le) && le.ResultCode == ldap.LDAPResultInvalidCredentials {
		diag := ""
		if le.Err != nil {
			diag = le.Err.Error()
		}
		reason, code := BindReasonOf(diag)
		return &BindError{Reason: reason, SubCode: code}
	}
	if err != nil {
		return fmt.Errorf("ldapsync: bind: %w", err)
	}
	return nil
}

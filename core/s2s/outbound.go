package s2s

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"kontor.im/kontor/core/stanza"
)

// outbound is the connection from one local domain to one remote domain.
type outbound struct {
	svc *Service
	pair
	wake chan struct{} // capacity 1: something was queued

	mu    sync.Mutex
	queue []*stanza.Stanza
}

// take returns and clears the queue.
func (o *outbound) take() []*stanza.Stanza {
	o.mu.Lock()
	defer o.mu.Unlock()
	q := o.queue
	o.queue = nil
	return q
}

// remove takes the connection out of the table (so that the next stanza
// opens a new one) and returns what was still queued. With onlyIdle it
// does so only when nothing is queued.
func (o *outbound) remove(onlyIdle bool) ([]*stanza.Stanza, bool) {
	s := o.svc
	s.mu.Lock()
	defer s.mu.Unlock()
	o.mu.Lock()
	defer o.mu.Unlock()
	if onlyIdle && len(o.queue) > 0 {
		return nil, false
	}
	if s.out[o.pair] == o {
		delete(s.out, o.pair)
	}
	q := o.queue
	o.queue = nil
	return q, true
}

// fail ends the connection: what was not written is answered with e.
func (o *outbound) fail(unsent []*stanza.Stanza, e stanza.Error) {
	q, _ := o.remove(false)
	o.svc.bounce(append(unsent, q...), e)
}

func (o *outbound) run(ctx context.Context) {
	s := o.svc
	defer s.nOut.Add(-1)
	st, method, err := s.connect(ctx, o.local, o.remote)
	if err != nil {
		s.log.Warn("s2s connection failed", "from", o.local, "to", o.remote, "err", err)
		o.fail(nil, deliveryError(o.remote, err))
		return
	}
	s.log.Info("s2s connected", "direction", "out", "from", o.local, "to", o.remote, "auth", method)
	_ = st.nc.SetReadDeadline(time.Time{})
	readErr := make(chan error, 1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		// An outbound stream carries nothing for us but the peer's
		// stream end or error; anything else is ignored.
		for {
			if _, err := st.rd.Next(); err != nil {
				readErr <- err
				return
			}
		}
	}()
	idle := time.NewTimer(s.cfg.IdleTimeout)
	defer idle.Stop()
	for {
		if batch := o.take(); len(batch) > 0 {
			els := make([]*stanza.Element, len(batch))
			for i, x := range batch {
				els[i] = x.El
			}
			if err := st.send(els...); err != nil {
				s.log.Warn("s2s connection lost", "from", o.local, "to", o.remote, "err", err)
				st.nc.Close()
				o.fail(batch, stanza.Error{Type: stanza.Wait, Condition: stanza.RemoteServerTimeout, Text: "the connection to " + o.remote + " was lost"})
				return
			}
			idle.Reset(s.cfg.IdleTimeout)
		}
		select {
		case <-o.wake:
		case <-idle.C:
			if _, ok := o.remove(true); ok {
				s.log.Info("s2s connection closed", "direction", "out", "from", o.local, "to", o.remote, "reason", "idle")
				st.close(nil)
				return
			}
		case err := <-readErr:
			s.log.Info("s2s connection closed by peer", "direction", "out", "from", o.local, "to", o.remote, "err", err)
			st.close(nil)
			o.fail(nil, stanza.Error{Type: stanza.Wait, Condition: stanza.RemoteServerTimeout, Text: "the connection to " + o.remote + " was closed"})
			return
		case <-ctx.Done():
			st.close(&stanza.StreamError{Condition: stanza.StreamSystemShutdown})
			o.fail(nil, stanza.Error{Type: stanza.Wait, Condition: stanza.RemoteServerTimeout, Text: "the server is shutting down"})
			return
		}
	}
}

// deliveryError is what the senders of stanzas that could not be
// delivered get: timeouts are remote-server-timeout, everything else
// remote-server-not-found. The detail stays in the log.
func deliveryError(remote string, err error) stanza.Error {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return stanza.Error{Type: stanza.Wait, Condition: stanza.RemoteServerTimeout, Text: remote + " did not answer in time"}
	}
	return stanza.Error{Type: stanza.Cancel, Condition: stanza.RemoteServerNotFound, Text: "could not connect to " + remote}
}

// target is one address to try.
type target struct {
	addr   string
	direct bool // XEP-0368 direct TLS
}

// targets lists the addresses of a remote domain: its static route, or
// its SRV records (direct TLS and STARTTLS merged by priority), or
// domain:5269.
func (s *Service) targets(ctx context.Context, remote string) ([]target, error) {
	if a, ok := s.cfg.Routes[remote]; ok {
		if h, ok := strings.CutPrefix(a, "tls://"); ok {
			return []target{{addr: h, direct: true}}, nil
		}
		return []target{{addr: a}}, nil
	}
	type rec struct {
		prio   uint16
		t      target
		dotted bool
	}
	var recs []rec
	for _, svc := range []struct {
		name   string
		direct bool
	}{{"xmpps-server", true}, {"xmpp-server", false}} {
		_, srvs, err := s.cfg.Resolver.LookupSRV(ctx, svc.name, "tcp", remote)
		if err != nil {
			continue
		}
		for _, r := range srvs {
			recs = append(recs, rec{prio: r.Priority, dotted: r.Target == ".",
				t: target{addr: net.JoinHostPort(trimDot(r.Target), strconv.Itoa(int(r.Port))), direct: svc.direct}})
		}
	}
	if len(recs) == 1 && recs[0].dotted {
		return nil, fmt.Errorf("s2s: %s offers no XMPP service (SRV target '.')", remote)
	}
	slices.SortStableFunc(recs, func(a, b rec) int { return cmp.Compare(a.prio, b.prio) })
	var out []target
	for _, r := range recs {
		if !r.dotted {
			out = append(out, r.t)
		}
	}
	if len(out) == 0 {
		out = []target{{addr: net.JoinHostPort(remote, "5269")}}
	}
	return out, nil
}

func trimDot(h string) string {
	if len(h) > 1 && h[len(h)-1] == '.' {
		return h[:len(h)-1]
	}
	return h
}

// connect opens an authenticated stream from local to remote and returns
// it with the authentication method used.
func (s *Service) connect(ctx context.Context, local, remote string) (*stream, string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	defer cancel()
	ts, err := s.targets(ctx, remote)
	if err != nil {
		return nil, "", err
	}
	var errs []error
	for _, t := range ts {
		st, method, err := s.connectTo(ctx, local, remote, t, authExternal)
		if errors.Is(err, errExternalFailed) {
			// Some servers offer EXTERNAL and then refuse it (ejabberd
			// when it did not get our certificate) and take no dialback
			// on that stream any more: a new one, with dialback.
			s.log.Info("s2s SASL EXTERNAL refused, trying dialback", "from", local, "to", remote)
			st, method, err = s.connectTo(ctx, local, remote, t, authDialback)
		}
		if err == nil {
			return st, method, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", t.addr, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, "", errors.Join(errs...)
}

// open opens a TLS-protected, unauthenticated stream (for a dialback
// verification).
func (s *Service) open(ctx context.Context, local, remote string) (*stream, error) {
	ts, err := s.targets(ctx, remote)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, t := range ts {
		st, _, err := s.connectTo(ctx, local, remote, t, authNone)
		if err == nil {
			return st, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", t.addr, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// How connectTo authenticates.
type authMode int

const (
	authNone     authMode = iota // TLS only (a dialback verification stream)
	authExternal                 // SASL EXTERNAL when offered, else dialback
	authDialback                 // dialback only
)

// errExternalFailed: the peer offered SASL EXTERNAL and refused it.
var errExternalFailed = errors.New("s2s: SASL EXTERNAL refused")

// connectTo connects to one address: TLS (direct or STARTTLS), then
// authenticates as mode says.
func (s *Service) connectTo(ctx context.Context, local, remote string, t target, mode authMode) (_ *stream, method string, err error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, "", err
	}
	defer func() {
		if err != nil {
			nc.Close()
		}
	}()
	deadline, _ := ctx.Deadline()
	_ = nc.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	conf := &tls.Config{
		ServerName: remote,
		MinVersion: tls.VersionTLS12,
		// The chain is verified below, for the remote domain: a
		// certificate that does not verify means dialback (unless
		// RequireValidCert), not a failed handshake.
		InsecureSkipVerify: true,
		Certificates:       s.cfg.TLS.Certificates,
	}
	verified := false
	handshake := func(c net.Conn) (net.Conn, error) {
		tc := tls.Client(c, conf)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, err
		}
		verified = verifyPeer(tc.ConnectionState(), remote, s.cfg.RootCAs)
		if s.cfg.RequireValidCert && !verified {
			return nil, errors.New("the certificate does not verify for " + remote)
		}
		nc = tc
		return tc, nil
	}
	secure := false
	if t.direct {
		conf.NextProtos = []string{"xmpp-server"}
		if _, err := handshake(nc); err != nil {
			return nil, "", err
		}
		secure = true
	}
	st := newStream(nc, s.cfg.Limits, s.cfg.WriteTimeout)
	var id string
	var feats *stanza.Element
	restart := func() error {
		if err := st.header(local, remote, ""); err != nil {
			return err
		}
		h, err := st.rd.Header()
		if err != nil {
			return err
		}
		if h.Namespace != stanza.NSServer {
			return fmt.Errorf("the peer answered with a %q stream", h.Namespace)
		}
		id = h.ID
		feats, err = st.rd.Next()
		if err != nil {
			return err
		}
		if feats.Name.Space != stanza.NSStream || feats.Name.Local != "features" {
			return fmt.Errorf("expected stream features, got %s", feats.Tag())
		}
		return nil
	}
	if err := restart(); err != nil {
		return nil, "", err
	}
	if !secure {
		if feats.Child(NSTLS, "starttls") == nil {
			return nil, "", errors.New("the peer offers no STARTTLS, and TLS is required")
		}
		if err := st.send(stanza.New(NSTLS, "starttls")); err != nil {
			return nil, "", err
		}
		el, err := st.rd.Next()
		if err != nil {
			return nil, "", err
		}
		if el.Name.Space != NSTLS || el.Name.Local != "proceed" {
			return nil, "", fmt.Errorf("STARTTLS answered with %s", el.Tag())
		}
		tc, err := handshake(nc)
		if err != nil {
			return nil, "", err
		}
		st.reset(tc)
		if err := restart(); err != nil {
			return nil, "", err
		}
	}
	if mode == authNone {
		return st, "", nil
	}
	if mode == authExternal && offers(feats, "EXTERNAL") {
		if err := st.send(stanza.New(NSSASL, "auth").Set("mechanism", "EXTERNAL").SetText("=")); err != nil {
			return nil, "", err
		}
		el, err := st.rd.Next()
		if err != nil {
			return nil, "", err
		}
		if el.Name.Space == NSSASL && el.Name.Local == "success" {
			st.reset(nc)
			if err := restart(); err != nil {
				return nil, "", err
			}
			return st, "sasl-external", nil
		}
		return nil, "", errExternalFailed
	}
	key := dialbackKey(s.dbKey, remote, local, id)
	if err := st.send(dialback{From: local, To: remote, Key: key}.element()); err != nil {
		return nil, "", err
	}
	for {
		el, err := st.rd.Next()
		if err != nil {
			return nil, "", err
		}
		db, err := parseDialback(el)
		if err != nil || db.Verify || db.From != remote || db.To != local {
			continue
		}
		if db.Type == "valid" {
			return st, "dialback", nil
		}
		return nil, "", fmt.Errorf("%s refused our dialback key (%s)", remote, db.Type)
	}
}

// offers reports whether stream features offer a SASL mechanism.
func offers(feats *stanza.Element, mech string) bool {
	m := feats.Child(NSSASL, "mechanisms")
	if m == nil {
		return false
	}
	found := false
	m.Children(func(c *stanza.Element) bool {
		if c.Name.Local == "mechanism" && c.Text() == mech {
			found = true
			return false
		}
		return true
	})
	return found
}

// verify asks the authoritative server of originating whether key is the
// one it generated for a stream from it to receiving with id (XEP-0220
// §2.3, over a verification stream of its own).
func (s *Service) verify(ctx context.Context, receiving, originating, id, key string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	defer cancel()
	st, err := s.open(ctx, receiving, originating)
	if err != nil {
		return false, err
	}
	defer st.close(nil)
	stop := context.AfterFunc(ctx, func() { _ = st.nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := st.send(dialback{Verify: true, From: receiving, To: originating, ID: id, Key: key}.element()); err != nil {
		return false, err
	}
	for {
		el, err := st.rd.Next()
		if err != nil {
			return false, err
		}
		db, err := parseDialback(el)
		if err != nil || !db.Verify || db.ID != id || db.From != originating || db.To != receiving {
			continue
		}
		return db.Type == "valid", nil
	}
}

package s2s

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"strings"
	"time"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/stanza"
)

// inbound is one stream a remote server opened to us.
type inbound struct {
	svc    *Service
	nc     net.Conn
	direct bool
	remote string // address, for logs

	st     *stream
	secure bool
	cs     tls.ConnectionState
	id     string // our stream id of the current stream
	// auth holds the (local, remote) domain pairs the stream has
	// authenticated.
	auth map[string]bool
}

func authKey(local, remote string) string { return local + " " + remote }

func (in *inbound) tlsConfig() *tls.Config {
	c := in.svc.cfg.TLS.Clone()
	c.MinVersion = max(c.MinVersion, tls.VersionTLS12)
	// A peer's certificate is checked for the domain it claims later
	// (SASL EXTERNAL); without one, dialback.
	c.ClientAuth = tls.RequestClientCert
	c.NextProtos = []string{"xmpp-server"}
	return c
}

func (in *inbound) serve(ctx context.Context) {
	s := in.svc
	_ = in.nc.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	in.st = newStream(in.nc, s.cfg.Limits, s.cfg.WriteTimeout)
	stop := context.AfterFunc(ctx, func() {
		in.st.close(&stanza.StreamError{Condition: stanza.StreamSystemShutdown})
	})
	defer stop()
	if in.direct {
		tc := tls.Server(in.nc, in.tlsConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			s.log.Debug("s2s TLS handshake failed", "remote", in.remote, "err", err)
			in.nc.Close()
			return
		}
		in.start(tc)
	}
	err := in.loop(ctx)
	var peers []string
	for k := range in.auth {
		if local, remote, _ := strings.Cut(k, " "); local != "" {
			peers = append(peers, remote+"->"+local)
		}
	}
	if len(peers) > 0 {
		s.log.Info("s2s connection closed", "direction", "in", "domains", strings.Join(peers, ","), "remote", in.remote)
	}
	switch {
	case errors.Is(err, io.EOF):
		in.st.close(nil)
	case isTimeout(err) && len(in.auth) > 0:
		in.st.close(nil) // idle
	default:
		if se, ok := streamError(err); ok {
			s.log.Info("s2s stream error", "direction", "in", "remote", in.remote, "condition", se.Condition, "text", se.Text)
			in.st.close(se)
			return
		}
		if isTimeout(err) {
			in.st.close(&stanza.StreamError{Condition: stanza.StreamConnectionTimeout})
			return
		}
		s.log.Debug("s2s connection ended", "remote", in.remote, "err", err)
		in.nc.Close()
	}
}

func (in *inbound) start(tc *tls.Conn) {
	in.nc = tc
	in.secure = true
	in.cs = tc.ConnectionState()
	in.st.reset(tc)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// loop serves streams until the connection ends.
func (in *inbound) loop(ctx context.Context) error {
	s := in.svc
	for {
		h, err := in.st.rd.Header()
		if err != nil {
			return err
		}
		in.id = newID()
		local := ""
		if j, err := jid.Parse(h.To); err == nil && s.serves(j.String()) {
			local = j.String()
		}
		peer := ""
		if j, err := jid.Parse(h.From); err == nil && j.Local() == "" && j.IsBare() {
			peer = j.String()
		}
		if err := in.st.header(local, peer, in.id); err != nil {
			return err
		}
		switch {
		case h.Namespace != stanza.NSServer:
			return &stanza.StreamError{Condition: stanza.StreamInvalidNamespace, Text: "a server stream is in jabber:server"}
		case !strings.HasPrefix(h.Version, "1."):
			return &stanza.StreamError{Condition: stanza.StreamUnsupportedVersion, Text: "version 1.0 (and TLS) is required"}
		case local == "":
			return &stanza.StreamError{Condition: stanza.StreamHostUnknown, Text: "this server does not serve " + h.To}
		}
		if err := in.st.send(in.features(peer)); err != nil {
			return err
		}
		restart, err := in.elements(ctx, local, peer)
		if err != nil {
			return err
		}
		if !restart {
			return io.EOF
		}
	}
}

// features are the stream features of the current stream.
func (in *inbound) features(peer string) *stanza.Element {
	f := stanza.New(stanza.NSStream, "features")
	if !in.secure {
		return f.Append(stanza.New(NSTLS, "starttls").Append(stanza.New(NSTLS, "required")))
	}
	if peer != "" && !in.auth[authKey("", peer)] && verifyPeer(in.cs, peer, in.svc.cfg.RootCAs) {
		f.Append(stanza.New(NSSASL, "mechanisms").Append(stanza.New(NSSASL, "mechanism").SetText("EXTERNAL")))
	}
	if !in.svc.cfg.RequireValidCert || (peer != "" && verifyPeer(in.cs, peer, in.svc.cfg.RootCAs)) {
		f.Append(stanza.New(NSDialbackFeature, "dialback").Append(stanza.New(NSDialbackFeature, "errors")))
	}
	return f
}

// elements handles the elements of one stream. It returns true when the
// stream restarts (after TLS or SASL).
func (in *inbound) elements(ctx context.Context, local, peer string) (bool, error) {
	s := in.svc
	for {
		if len(in.auth) > 0 {
			_ = in.nc.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		}
		el, err := in.st.rd.Next()
		if err != nil {
			return false, err
		}
		switch {
		case el.Name.Space == NSTLS && el.Name.Local == "starttls":
			if in.secure {
				return false, &stanza.StreamError{Condition: stanza.StreamPolicyViolation, Text: "TLS is already on"}
			}
			if err := in.st.send(stanza.New(NSTLS, "proceed")); err != nil {
				return false, err
			}
			tc := tls.Server(in.nc, in.tlsConfig())
			if err := tc.HandshakeContext(ctx); err != nil {
				return false, err
			}
			in.start(tc)
			return true, nil
		case !in.secure:
			return false, &stanza.StreamError{Condition: stanza.StreamNotAuthorized, Text: "STARTTLS is required first"}
		case el.Name.Space == NSSASL && el.Name.Local == "auth":
			ok, err := in.external(el, local, peer)
			if err != nil || ok {
				return ok, err
			}
		case el.Name.Space == NSDialback:
			if err := in.dialback(ctx, el); err != nil {
				return false, err
			}
		case el.Name.Space == stanza.NSServer && (el.Name.Local == "message" || el.Name.Local == "presence" || el.Name.Local == "iq"):
			if err := in.stanza(ctx, el); err != nil {
				return false, err
			}
		default:
			return false, &stanza.StreamError{Condition: stanza.StreamUnsupportedStanzaType, Text: "unexpected " + el.Name.Local}
		}
	}
}

// external handles SASL EXTERNAL (XEP-0178): the peer's certificate must
// verify for the domain of its stream header (the authorization identity,
// when given, must be that domain).
func (in *inbound) external(el *stanza.Element, local, peer string) (bool, error) {
	fail := func(cond string) (bool, error) {
		return false, in.st.send(stanza.New(NSSASL, "failure").Append(stanza.New(NSSASL, cond)))
	}
	if el.Get("mechanism") != "EXTERNAL" {
		return fail("invalid-mechanism")
	}
	authzid := ""
	if t := strings.TrimSpace(el.Text()); t != "" && t != "=" {
		b, err := base64.StdEncoding.DecodeString(t)
		if err != nil {
			return fail("incorrect-encoding")
		}
		authzid = string(b)
	}
	if peer == "" || (authzid != "" && authzid != peer) {
		return fail("invalid-authzid")
	}
	if !verifyPeer(in.cs, peer, in.svc.cfg.RootCAs) {
		return fail("not-authorized")
	}
	if err := in.st.send(stanza.New(NSSASL, "success")); err != nil {
		return false, err
	}
	in.auth[authKey(local, peer)] = true
	in.auth[authKey("", peer)] = true
	in.svc.log.Info("s2s connected", "direction", "in", "from", peer, "to", local, "auth", "sasl-external", "remote", in.remote)
	in.st.reset(in.nc)
	return true, nil
}

// dialback answers <db:result/> (a peer asks to be authenticated; we
// verify its key with its authoritative server) and <db:verify/> (a
// server asks us whether a key is ours).
func (in *inbound) dialback(ctx context.Context, el *stanza.Element) error {
	s := in.svc
	db, err := parseDialback(el)
	if err != nil {
		return &stanza.StreamError{Condition: stanza.StreamBadFormat, Text: err.Error()}
	}
	if db.Type != "" {
		return &stanza.StreamError{Condition: stanza.StreamBadFormat, Text: "a dialback answer on an inbound stream"}
	}
	if !s.serves(db.To) {
		ans := dialback{Verify: db.Verify, From: db.To, To: db.From, ID: db.ID, Type: "error"}.element()
		ans.Append(stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}.Element())
		return in.st.send(ans)
	}
	if db.Verify {
		valid := keyValid(s.dbKey, db.From, db.To, db.ID, db.Key)
		typ := "invalid"
		if valid {
			typ = "valid"
		}
		return in.st.send(dialback{Verify: true, From: db.To, To: db.From, ID: db.ID, Type: typ}.element())
	}
	if s.cfg.RequireValidCert && !verifyPeer(in.cs, db.From, s.cfg.RootCAs) {
		s.log.Info("s2s dialback refused: the certificate does not verify", "from", db.From, "remote", in.remote)
		if err := in.st.send(dialback{From: db.To, To: db.From, Type: "invalid"}.element()); err != nil {
			return err
		}
		return &stanza.StreamError{Condition: stanza.StreamNotAuthorized, Text: "a certificate valid for " + db.From + " is required"}
	}
	ok, err := s.verify(ctx, db.To, db.From, in.id, db.Key)
	if err != nil {
		s.log.Warn("s2s dialback verification failed", "from", db.From, "to", db.To, "remote", in.remote, "err", err)
		ans := dialback{From: db.To, To: db.From, Type: "error"}.element()
		ans.Append(deliveryError(db.From, err).Element())
		return in.st.send(ans)
	}
	if !ok {
		s.log.Warn("s2s dialback key refused by the authoritative server", "from", db.From, "to", db.To, "remote", in.remote)
		if err := in.st.send(dialback{From: db.To, To: db.From, Type: "invalid"}.element()); err != nil {
			return err
		}
		return &stanza.StreamError{Condition: stanza.StreamNotAuthorized, Text: "dialback failed"}
	}
	in.auth[authKey(db.To, db.From)] = true
	in.auth[authKey("", db.From)] = true
	s.log.Info("s2s connected", "direction", "in", "from", db.From, "to", db.To, "auth", "dialback", "remote", in.remote)
	return in.st.send(dialback{From: db.To, To: db.From, Type: "valid"}.element())
}

// stanza checks a stanza's addresses against what the stream
// authenticated and routes it.
func (in *inbound) stanza(ctx context.Context, el *stanza.Element) error {
	s := in.svc
	if len(in.auth) == 0 {
		return &stanza.StreamError{Condition: stanza.StreamNotAuthorized, Text: "authenticate (dialback or SASL EXTERNAL) first"}
	}
	toClient(el)
	st, err := stanza.Parse(el)
	if err != nil {
		return &stanza.StreamError{Condition: stanza.StreamImproperAddressing, Text: "a malformed address"}
	}
	if st.From.IsZero() || st.To.IsZero() {
		return &stanza.StreamError{Condition: stanza.StreamImproperAddressing, Text: "a stanza between servers needs from and to"}
	}
	from, to := st.From.Domain(), st.To.Domain()
	if !in.auth[authKey("", from)] {
		return &stanza.StreamError{Condition: stanza.StreamInvalidFrom, Text: "this stream is not authenticated for " + from}
	}
	if !s.serves(to) {
		return &stanza.StreamError{Condition: stanza.StreamHostUnknown, Text: "this server does not serve " + to}
	}
	if !in.auth[authKey(to, from)] {
		return &stanza.StreamError{Condition: stanza.StreamImproperAddressing, Text: from + " is not authenticated to send to " + to}
	}
	r := s.r()
	if r == nil {
		return &stanza.StreamError{Condition: stanza.StreamInternalServerError}
	}
	r.Route(ctx, st)
	return nil
}

package session

// SASL2 (XEP-0388), Bind 2 (XEP-0386) and FAST (XEP-0484): a client that
// sees <authentication xmlns='urn:xmpp:sasl:2'/> among the features may
// authenticate with <authenticate/> instead of <auth/>, and put into the
// same request what it would otherwise negotiate in further round trips.
// The server then answers with one <success/> and new features, without a
// stream restart.
//
// Offered (over TLS only, Config.DisableSASL2 turns it off):
//
//   - the mechanisms of RFC 6120 SASL, run by the same core/sasl code, with
//     the same failure counting and back-off (Config.AuthGuard);
//   - <user-agent id/>: the client installation's stable id. It is never
//     shown to anyone: Bind 2 derives a stable resource from a hash of it,
//     and FAST keys tokens by another hash of it;
//   - Bind 2 <bind xmlns='urn:xmpp:bind:0'>: the resource is
//     "tag/" + 12 characters derived from the account, tag and user-agent
//     id (random without an id), so the same installation gets the same
//     resource, and binding it replaces that installation's earlier
//     session (conflict). Inline features: stream management <enable/>
//     (answered with <enabled/> inside <bound/>), carbons <enable/> (when
//     the carbons module serves the domain) and CSI <active/>/<inactive/>;
//   - stream management <resume/> inline: tried before Bind 2; on success
//     <resumed/> is in the <success/> and the bind request is ignored, on
//     failure <failed/> is and the bind goes ahead;
//   - FAST (when Config.FAST is set): <request-token mechanism/> after a
//     successful login returns <token/>; a login with an HT mechanism
//     (core/sasl) and the client's token takes one round trip, may carry
//     <fast count invalidate/>, and returns a new token when the old one is
//     due for rotation. Token failures count as failed guesses, as wrong
//     passwords do.
//
// Not offered: SASL2 <upgrade/> tasks and <continue/> (no second factors),
// TLS 0-RTT, and the XEP-0313 archive metadata inside <bound/>; a Bind 2
// session gets offline messages like any other (the server does not clear
// them on the client's behalf).

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/sasl"
	"kontor.im/kontor/core/stanza"
)

// Namespaces of SASL2, Bind 2, FAST and carbons (for its inline enable).
const (
	nsSASL2   = "urn:xmpp:sasl:2"
	nsBind2   = "urn:xmpp:bind:0"
	nsFAST    = "urn:xmpp:fast:0"
	nsCarbons = "urn:xmpp:carbons:2"
)

// Bounds of what a client may put into <authenticate/>.
const (
	maxUserAgentID = 256 // characters of <user-agent id/>
	maxBindTag     = 32  // characters of a Bind 2 <tag/> kept in the resource
)

// FASTTokens issues and checks XEP-0484 tokens (core/account implements
// it). client is the SASL2 user-agent id.
type FASTTokens interface {
	Issue(ctx context.Context, account jid.JID, client, mechanism string) (token string, expires time.Time, err error)
	// Verify finds the token of account's client bound to mechanism that
	// proves accepts, checks its expiry and (count > 0) the replay
	// counter, and returns it and whether it is due for rotation. Errors
	// wrap sasl.ErrUnknownUser, sasl.ErrBadPassword, sasl.ErrReplayed or
	// sasl.ErrDisabled, or are backend failures.
	Verify(ctx context.Context, account jid.JID, client, mechanism string, count int64,
		proves func(token []byte) bool) (token []byte, rotate bool, err error)
	Invalidate(ctx context.Context, account jid.JID, client string) error
}

// authRequest is what a client asked for in <authenticate/>.
type authRequest struct {
	mechanism string
	initial   []byte // nil: no initial response
	userAgent string // the <user-agent id/>, "" when none
	software  string
	device    string

	bind       bool
	tag        string
	bindInline []*stanza.Element // the bind request's feature children

	resume *stanza.Element // <resume xmlns='urn:xmpp:sm:3'/>

	requestToken string // mechanism of <request-token/>, "" when none
	fast         bool   // <fast/> present
	count        int64  // its count, 0 when none
	invalidate   bool
}

// errAuthRequest is the malformed-request text of a bad <authenticate/>.
type errAuthRequest string

func (e errAuthRequest) Error() string { return string(e) }

// parseAuthenticate reads <authenticate xmlns='urn:xmpp:sasl:2'/>.
func parseAuthenticate(el *stanza.Element) (*authRequest, error) {
	r := &authRequest{mechanism: el.Get("mechanism")}
	if r.mechanism == "" || len(r.mechanism) > 20 {
		return nil, errAuthRequest("a mechanism is required")
	}
	if el.Has("upgrade") {
		return nil, errAuthRequest("no upgrade was offered")
	}
	var err error
	el.Children(func(ch *stanza.Element) bool {
		switch ch.Name {
		case stanza.Name{Space: nsSASL2, Local: "initial-response"}:
			if r.initial, err = base64.StdEncoding.DecodeString(strings.TrimSpace(ch.Text())); err != nil {
				err = errAuthRequest("the initial response is not base64")
			} else if r.initial == nil {
				r.initial = []byte{}
			}
		case stanza.Name{Space: nsSASL2, Local: "user-agent"}:
			r.userAgent = ch.Get("id")
			r.software = ch.ChildText(nsSASL2, "software")
			r.device = ch.ChildText(nsSASL2, "device")
			if utf8.RuneCountInString(r.userAgent) > maxUserAgentID {
				err = errAuthRequest("the user-agent id is too long")
			}
		case stanza.Name{Space: nsBind2, Local: "bind"}:
			r.bind = true
			ch.Children(func(f *stanza.Element) bool {
				if f.Name == (stanza.Name{Space: nsBind2, Local: "tag"}) {
					r.tag = f.Text()
				} else {
					r.bindInline = append(r.bindInline, f)
				}
				return true
			})
		case stanza.Name{Space: nsSM, Local: "resume"}:
			r.resume = ch
		case stanza.Name{Space: nsFAST, Local: "request-token"}:
			if r.requestToken = ch.Get("mechanism"); r.requestToken == "" {
				err = errAuthRequest("request-token needs a mechanism")
			}
		case stanza.Name{Space: nsFAST, Local: "fast"}:
			r.fast = true
			if v := ch.Get("count"); v != "" {
				n, perr := strconv.ParseInt(v, 10, 64)
				if perr != nil || n < 0 {
					err = errAuthRequest("the FAST count must be a non-negative integer")
				}
				r.count = n
			}
			r.invalidate = ch.Get("invalidate") == "true" || ch.Get("invalidate") == "1"
		}
		return err == nil
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// sasl2Offered reports whether this connection offers SASL2.
func (c *conn) sasl2Offered() bool { return c.tls && !c.srv.cfg.DisableSASL2 }

// fastOffered reports whether this connection offers FAST.
func (c *conn) fastOffered() bool { return c.sasl2Offered() && c.srv.cfg.FAST != nil }

// bind2Inline lists the features a Bind 2 request may enable inline.
func (c *conn) bind2Inline() []string {
	out := []string{nsSM, nsCSI}
	if c.host != nil && c.host.HandlesAccountSet(stanza.Name{Space: nsCarbons, Local: "enable"}) {
		out = append(out, nsCarbons)
	}
	slices.Sort(out)
	return out
}

// sasl2Feature is <authentication/> for the features before
// authentication, or nil when SASL2 is not offered.
func (c *conn) sasl2Feature() *stanza.Element {
	if !c.sasl2Offered() {
		return nil
	}
	cb := c.channelBinding()
	auth := stanza.New(nsSASL2, "authentication")
	for _, m := range c.offered(cb) {
		auth.Append(stanza.New(nsSASL2, "mechanism").AppendText(m))
	}
	features := stanza.New(nsBind2, "inline")
	for _, f := range c.bind2Inline() {
		features.Append(stanza.New(nsBind2, "feature").Set("var", f))
	}
	inline := stanza.New(nsSASL2, "inline").Append(
		stanza.New(nsBind2, "bind").Append(features),
		stanza.New(nsSM, "sm"))
	if c.fastOffered() {
		fast := stanza.New(nsFAST, "fast")
		for _, m := range sasl.FASTMechanisms(cb) {
			fast.Append(stanza.New(nsFAST, "mechanism").AppendText(m))
		}
		inline.Append(fast)
	}
	return auth.Append(inline)
}

// saslNS is the namespace of the SASL profile in use.
func (c *conn) saslNS() string {
	if c.v2 {
		return nsSASL2
	}
	return nsSASL
}

// authFailure is a <failure/> of the SASL profile in use.
func (c *conn) authFailure(cond, text string) *stanza.Element {
	if !c.v2 {
		return saslFailure(cond, text)
	}
	f := stanza.New(nsSASL2, "failure").Append(stanza.New(nsSASL, cond))
	if text != "" {
		f.Append(stanza.New(nsSASL2, "text").AppendText(text))
	}
	return f
}

// boundFeatures adds the features offered after authentication: resource
// binding unless a resource is bound already (Bind 2), stream management
// unless it is on, CSI and the modules' features.
func (c *conn) boundFeatures(features *stanza.Element, bind bool) {
	if bind {
		features.Append(stanza.New(nsBind, "bind"))
		features.Append(stanza.New(nsSession, "session").Append(stanza.New(nsSession, "optional")))
	}
	if !c.smIn {
		features.Append(stanza.New(nsSM, "sm"))
	}
	features.Append(stanza.New(nsCSI, "csi"))
	for _, f := range c.host.StreamFeatures() {
		features.Append(f)
	}
}

// sasl2Exchange runs one <authenticate/>. It returns true on success,
// after which the <success/> and the new features have been sent; a
// failure has been reported to the client.
func (c *conn) sasl2Exchange(el *stanza.Element) (ok bool, err error) {
	c.v2 = true
	defer func() {
		c.auth2 = nil // not kept for the session's lifetime
		if !ok {
			c.v2 = false // the client may try RFC 6120 SASL next
		}
	}()
	req, err := parseAuthenticate(el)
	if err != nil {
		return false, c.writeElem(c.authFailure(sasl.ConditionMalformedRequest, err.Error()))
	}
	c.auth2 = req
	if sasl.IsHT(req.mechanism) {
		return c.fastExchange(req)
	}
	return c.exchange(req.mechanism, req.initial)
}

// fastExchange checks a login with a FAST token (an HT mechanism).
func (c *conn) fastExchange(req *authRequest) (bool, error) {
	cfg := &c.srv.cfg
	if w := cfg.AuthGuard.Wait(c.remote, ""); w > 0 {
		c.log.Info("authentication refused: too many failures from this address", "retry_in", w.Round(time.Second))
		return false, c.writeElem(c.backoffFailure(w))
	}
	cb := c.channelBinding()
	cbData, ok := sasl.HTBinding(req.mechanism, cb)
	if !c.fastOffered() || !ok || !slices.Contains(sasl.FASTMechanisms(cb), req.mechanism) {
		return false, c.writeElem(c.authFailure(sasl.ConditionInvalidMechanism, ""))
	}
	if req.userAgent == "" {
		return false, c.writeElem(c.authFailure(sasl.ConditionMalformedRequest, "FAST needs a user-agent id"))
	}
	username, proof, err := sasl.ParseHT(req.initial)
	if err != nil {
		return false, c.saslFail(err, "")
	}
	account, err := jid.New(username, c.domain, "")
	if err != nil {
		return false, c.saslFail(sasl.HTFailure(sasl.ErrUnknownUser), "")
	}
	if w := cfg.AuthGuard.Wait(c.remote, account.String()); w > 0 {
		// As for passwords (saslSuccess): a right token gets the same
		// answer as a wrong one while the account is in back-off.
		cfg.AuthGuard.Fail(c.remote, account.String())
		c.log.Info("authentication refused: account in back-off", "account", account.String(), "retry_in", w.Round(time.Second))
		return false, c.writeElem(c.backoffFailure(w))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctx, inc := sasl.WithIncarnation(ctx)
	token, rotate, err := cfg.FAST.Verify(ctx, account, req.userAgent, req.mechanism, req.count,
		func(tok []byte) bool { return sasl.VerifyHT(tok, cbData, proof) })
	if err != nil {
		return false, c.saslFail(sasl.HTFailure(err), username)
	}
	c.incarnation, _ = inc.Get()
	cfg.AuthGuard.Success(account.String())
	additional := sasl.HTResponder(token, cbData)
	if req.invalidate {
		if err := cfg.FAST.Invalidate(ctx, account, req.userAgent); err != nil {
			c.log.Error("invalidating a FAST token failed", "err", err)
		}
		rotate = false
	}
	if rotate && req.requestToken == "" {
		req.requestToken = req.mechanism
	}
	c.log.Debug("FAST token accepted", "mechanism", req.mechanism, "rotate", rotate, "invalidate", req.invalidate)
	return c.sasl2Success(account, additional)
}

// sasl2Success completes a successful SASL2 authentication: inline
// resumption or Bind 2, a FAST token if asked for, then <success/> and
// the new features.
func (c *conn) sasl2Success(account jid.JID, additional []byte) (bool, error) {
	req := c.auth2
	c.authed = true
	c.account = account
	c.setLog()
	c.log.Info("authenticated", "profile", "sasl2")
	succ := stanza.New(nsSASL2, "success")
	if len(additional) > 0 {
		succ.Append(stanza.New(nsSASL2, "additional-data").AppendText(base64.StdEncoding.EncodeToString(additional)))
	}
	var extra []*stanza.Element
	if req.resume != nil {
		resumed, failed, err := c.takeOver(req.resume, false)
		if err != nil {
			return false, err
		}
		if resumed != nil {
			extra = append(extra, resumed)
		} else {
			extra = append(extra, failed)
		}
	}
	if c.sess == nil && req.bind {
		bound, err := c.bind2(req)
		if err != nil {
			return false, err
		}
		extra = append(extra, bound)
	}
	if tok := c.issueToken(account, req); tok != nil {
		extra = append(extra, tok)
	}
	id := account.String()
	if c.sess != nil {
		id = c.full.String()
	}
	succ.Append(stanza.New(nsSASL2, "authorization-identifier").AppendText(id))
	succ.Append(extra...)
	features := stanza.New(stanza.NSStream, "features")
	c.boundFeatures(features, c.sess == nil)
	for _, el := range []*stanza.Element{succ, features} {
		if err := c.writeElem(el); err != nil {
			if c.sess != nil {
				// Bound or resumed: the session outlives the transport
				// as if it had failed after binding.
				c.lost.Store(true)
				c.sess.transportEnded(c)
			}
			return false, err
		}
	}
	return true, nil
}

// issueToken issues the FAST token the client asked for (or is due for
// rotation), as <token/>; nil when none is issued.
func (c *conn) issueToken(account jid.JID, req *authRequest) *stanza.Element {
	if req.requestToken == "" || req.userAgent == "" || !c.fastOffered() ||
		!slices.Contains(sasl.FASTMechanisms(c.channelBinding()), req.requestToken) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if !c.incarnation.IsZero() {
		var inc *sasl.Incarnation
		ctx, inc = sasl.WithIncarnation(ctx)
		inc.Set(c.incarnation) // a token for the account the login checked
	}
	tok, expires, err := c.srv.cfg.FAST.Issue(ctx, account, req.userAgent, req.requestToken)
	if err != nil {
		c.log.Error("issuing a FAST token failed", "err", err)
		return nil
	}
	return stanza.New(nsFAST, "token").Set("expiry", expires.UTC().Format(time.RFC3339)).Set("token", tok)
}

// bind2Resource is the resource of a Bind 2 request: the client's tag (if
// it is a valid resource, shortened), a slash, and a suffix that is stable
// for the account, tag and user-agent id, and random without an id. The
// id itself cannot be read from it.
func bind2Resource(account jid.JID, tag, userAgent string) string {
	tag = strings.TrimSpace(tag)
	if utf8.RuneCountInString(tag) > maxBindTag {
		tag = string([]rune(tag)[:maxBindTag])
	}
	if _, err := account.WithResource(tag); err != nil {
		tag = ""
	}
	var suffix string
	if userAgent != "" {
		sum := sha256.Sum256([]byte("kontor bind2 resource\x00" + account.String() + "\x00" + tag + "\x00" + userAgent))
		suffix = base64.RawURLEncoding.EncodeToString(sum[:9])
	} else {
		suffix = strings.TrimPrefix(newResource(), "kontor-")
	}
	if tag == "" {
		return suffix
	}
	return tag + "/" + suffix
}

// bind2 binds the resource of a Bind 2 request and enables its inline
// features; it returns <bound/>.
func (c *conn) bind2(req *authRequest) (*stanza.Element, error) {
	full, err := c.account.WithResource(bind2Resource(c.account, req.tag, req.userAgent))
	if err != nil {
		return nil, err
	}
	c.full = full
	c.setLog()
	sess := newSession(c.srv, c, full)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := c.srv.cfg.Router.Bind(ctx, full, sess)
	if err != nil {
		return nil, err
	}
	sess.mu.Lock()
	sess.res = r
	sess.mu.Unlock()
	c.srv.addSession(sess)
	c.sess, c.res = sess, r
	bound := stanza.New(nsBind2, "bound")
	for _, f := range req.bindInline {
		switch f.Name {
		case stanza.Name{Space: nsSM, Local: "enable"}:
			bound.Append(c.enableInline(f))
		case stanza.Name{Space: nsCSI, Local: "inactive"}, stanza.Name{Space: nsCSI, Local: "active"}:
			sess.mu.Lock()
			sess.inactive = f.Name.Local == "inactive"
			sess.mu.Unlock()
		case stanza.Name{Space: nsCarbons, Local: "enable"}:
			if !slices.Contains(c.bind2Inline(), nsCarbons) {
				continue
			}
			if _, err := c.host.InlineSet(ctx, r, f); err != nil {
				var se stanza.Error
				if !errors.As(err, &se) {
					c.log.Error("enabling carbons inline failed", "err", err)
				}
			}
		}
	}
	c.log.Info("bound", "bind", "bind2", "inline", len(req.bindInline))
	return bound, nil
}

// enableInline enables stream management for a session bound by Bind 2,
// before its writer runs, and returns <enabled/> (or <failed/>) for
// <bound/>.
func (c *conn) enableInline(el *stanza.Element) *stanza.Element {
	if c.smIn {
		return smFailed(stanza.UnexpectedRequest, -1)
	}
	s := c.sess
	enabled, id, maxResume := c.smSettings(el)
	s.mu.Lock()
	s.sm = true
	s.smID = id
	s.maxResume = maxResume
	if id != "" {
		c.srv.mu.Lock()
		c.srv.resumable[id] = s
		c.srv.mu.Unlock()
	}
	s.mu.Unlock()
	c.smIn = true
	c.log.Debug("stream management enabled inline", "resumable", id != "", "max", maxResume)
	return enabled
}

// afterSASL2 goes on after a SASL2 success: to the bound session, or to
// resource binding (the features were sent with the success).
func (c *conn) afterSASL2() error {
	if c.sess != nil {
		return nil
	}
	return c.bind()
}

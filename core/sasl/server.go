package sasl

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/text/secure/precis"
)

// Mechanism names, as advertised in <mechanisms/>.
const (
	SCRAMSHA256Plus = "SCRAM-SHA-256-PLUS"
	SCRAMSHA1Plus   = "SCRAM-SHA-1-PLUS"
	SCRAMSHA256     = "SCRAM-SHA-256"
	SCRAMSHA1       = "SCRAM-SHA-1"
	Plain           = "PLAIN"
)

// TypeTLSExporter is the channel binding type of RFC 9266, the only one
// this package accepts.
const TypeTLSExporter = "tls-exporter"

// exporterLabel and exporterLen are the RFC 9266 §2 exporter parameters.
const (
	exporterLabel = "EXPORTER-Channel-Binding"
	exporterLen   = 32
)

// Input bounds.
const (
	// MaxMessageSize is the largest client message Step accepts, in bytes
	// (after base64 decoding).
	MaxMessageSize = 4096
	// maxNonceLen bounds the client nonce; real clients send 16 to 48
	// characters.
	maxNonceLen = 256
	// maxUsernameLen is the RFC 7622 §3.3.1 limit on a localpart, applied
	// to the authentication identity.
	maxUsernameLen = 1023
)

// ChannelBinding is what the TLS layer gives: the type name and data, or the
// zero value when there is none (plain TCP, or TLS before 1.3, see the
// package documentation).
type ChannelBinding struct {
	Type string
	Data []byte
}

// usable reports whether the -PLUS mechanisms can run with cb.
func (cb ChannelBinding) usable() bool {
	return cb.Type == TypeTLSExporter && len(cb.Data) > 0
}

// TLSExporter returns the tls-exporter channel binding (RFC 9266) of a
// completed TLS 1.3 connection, and the zero ChannelBinding for anything
// else, including TLS 1.2 (see the package documentation for why).
func TLSExporter(cs *tls.ConnectionState) ChannelBinding {
	if cs == nil || !cs.HandshakeComplete || cs.Version < tls.VersionTLS13 {
		return ChannelBinding{}
	}
	data, err := cs.ExportKeyingMaterial(exporterLabel, nil, exporterLen)
	if err != nil || len(data) != exporterLen {
		return ChannelBinding{}
	}
	return ChannelBinding{Type: TypeTLSExporter, Data: data}
}

// AllMechanisms are the names of the password mechanisms this package
// implements, strongest first (see Mechanisms for which are offered).
var AllMechanisms = []string{SCRAMSHA256Plus, SCRAMSHA1Plus, SCRAMSHA256, SCRAMSHA1, Plain}

// Mechanisms lists the mechanism names to offer, strongest first:
// SCRAM-SHA-256-PLUS and SCRAM-SHA-1-PLUS (only over TLS with a usable
// channel binding), SCRAM-SHA-256, SCRAM-SHA-1, and PLAIN (only over TLS:
// it sends the password itself).
func Mechanisms(tlsOn bool, cb ChannelBinding) []string {
	m := make([]string, 0, 5)
	if tlsOn && cb.usable() {
		m = append(m, SCRAMSHA256Plus, SCRAMSHA1Plus)
	}
	m = append(m, SCRAMSHA256, SCRAMSHA1)
	if tlsOn {
		m = append(m, Plain)
	}
	return m
}

// mechanism describes one mechanism this package implements.
type mechanism struct {
	hash  Hash // for SCRAM
	plus  bool
	plain bool
}

var mechanisms = map[string]mechanism{
	SCRAMSHA256Plus: {hash: SHA256, plus: true},
	SCRAMSHA1Plus:   {hash: SHA1, plus: true},
	SCRAMSHA256:     {hash: SHA256},
	SCRAMSHA1:       {hash: SHA1},
	Plain:           {plain: true},
}

// An Option configures a Server.
type Option func(*options)

type options struct {
	secret     []byte
	iterations int
}

// minSecretLen is the shortest secret WithSecret accepts.
const minSecretLen = 16

// WithSecret sets the server secret from which the simulated credentials of
// unknown users are derived (at least 16 bytes; 32 random bytes are
// right). It should be the same across restarts and across the nodes of a
// cluster, or an attacker who sees a salt change can tell that the account
// does not exist. Without it, a random secret is made once per process.
func WithSecret(secret []byte) Option {
	return func(o *options) { o.secret = secret }
}

// WithIterations sets the iteration count announced for simulated
// credentials; it should be the count new credentials are made with
// (default MinIterations).
func WithIterations(n int) Option {
	return func(o *options) { o.iterations = n }
}

// processSecret is the fallback for WithSecret: process-wide, because it
// must be the same for every exchange, and not an instance of anything.
var processSecret = sync.OnceValue(func() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
})

// Exchange states.
const (
	stateStart      = iota // nothing received yet
	stateAwaitFirst        // empty challenge sent; waiting for the client's first message
	stateAwaitFinal        // SCRAM server-first-message sent
	stateDone
	stateFailed
)

// Server runs one SASL exchange, server side. It is not safe for concurrent
// use; a session runs its exchange from its reader goroutine.
type Server struct {
	mech         mechanism
	auth         Authenticator
	cb           ChannelBinding
	cbAdvertised bool // some -PLUS mechanism was offered
	secret       []byte
	iterations   int
	state        int

	// serverNonce, when set (by tests), replaces the random server nonce.
	serverNonce string

	// SCRAM state between the two client messages.
	gs2Header   string
	cbFlag      byte
	bare        string // client-first-message-bare
	serverFirst string
	nonce       string // c-nonce + s-nonce
	cred        Credential
	real        bool  // cred is the account's own, not simulated
	disabled    bool  // the Authenticator said ErrDisabled
	cause       error // why cred is simulated, for the log

	// Requested and, after success, authenticated identities.
	username, authzid string
}

// NewServer starts an exchange for the mechanism the client selected.
// offered is the list the server advertised (normally from Mechanisms): a
// mechanism that is unknown or was not offered fails with invalid-mechanism,
// and the list tells SCRAM whether a client's "y" flag is a downgrade. Every
// error is a *Failure.
func NewServer(mechanism string, auth Authenticator, cb ChannelBinding, offered []string, opts ...Option) (*Server, error) {
	m, ok := mechanisms[mechanism]
	if !ok || !slices.Contains(offered, mechanism) || (m.plus && !cb.usable()) {
		return nil, &Failure{Condition: ConditionInvalidMechanism}
	}
	if auth == nil {
		return nil, temporary(errors.New("sasl: NewServer called with a nil Authenticator"))
	}
	o := options{iterations: MinIterations}
	for _, opt := range opts {
		opt(&o)
	}
	if o.secret == nil {
		o.secret = processSecret()
	}
	if len(o.secret) < minSecretLen {
		return nil, temporary(fmt.Errorf("sasl: secret shorter than %d bytes", minSecretLen))
	}
	if o.iterations < MinIterations || o.iterations > MaxIterations {
		return nil, temporary(fmt.Errorf("sasl: iteration count %d outside [%d, %d]", o.iterations, MinIterations, MaxIterations))
	}
	s := &Server{
		mech:       m,
		auth:       auth,
		secret:     o.secret,
		iterations: o.iterations,
	}
	if m.plus {
		s.cb = ChannelBinding{Type: cb.Type, Data: bytes.Clone(cb.Data)}
	}
	for _, name := range offered {
		if strings.HasSuffix(name, "-PLUS") {
			s.cbAdvertised = true
		}
	}
	return s, nil
}

// Username returns the authentication identity (the username as the client
// sent it, saslname-decoded but not normalised) once the exchange has
// succeeded, and "" before. Normalise it the way the Authenticator does
// before using it as a localpart.
func (s *Server) Username() string {
	if s.state != stateDone {
		return ""
	}
	return s.username
}

// AttemptedUsername returns the username the client tried to authenticate
// as, whether or not it succeeded ("" before the client named one). It is
// for counting failed attempts per account; never treat it as
// authenticated.
func (s *Server) AttemptedUsername() string { return s.username }

// Authzid returns the authorization identity the client requested (may be
// "") once the exchange has succeeded, and "" before. The caller decides
// whether the user may act as it (invalid-authzid if not).
func (s *Server) Authzid() string {
	if s.state != stateDone {
		return ""
	}
	return s.authzid
}

// Step takes the client's next message, already base64-decoded, and
// returns the server's challenge or, with done set, the additional data for
// <success/> (the server-final-message for SCRAM, nil for PLAIN). A nil
// clientMsg on the first call means the <auth/> had no initial response: the
// server answers with an empty challenge; an empty non-nil clientMsg is an
// empty initial response ("=" on the wire). After the first call, nil and
// empty are the same.
//
// Every error is a *Failure, after which the exchange is over.
func (s *Server) Step(ctx context.Context, clientMsg []byte) (serverMsg []byte, done bool, err error) {
	if s.state == stateDone || s.state == stateFailed {
		return nil, false, malformed("", "the exchange is over")
	}
	var f *Failure
	switch {
	case len(clientMsg) > MaxMessageSize:
		f = malformed(scramOtherError, "message too large")
	case ctx.Err() != nil:
		f = temporary(ctx.Err())
	case s.state == stateStart && clientMsg == nil:
		s.state = stateAwaitFirst
		return []byte{}, false, nil
	case s.mech.plain:
		f = s.plain(ctx, clientMsg)
	case s.state == stateStart || s.state == stateAwaitFirst:
		serverMsg, f = s.scramFirst(ctx, clientMsg)
		if f == nil {
			s.state = stateAwaitFinal
			return serverMsg, false, nil
		}
	default: // stateAwaitFinal
		serverMsg, f = s.scramFinal(clientMsg)
	}
	if f != nil {
		s.state = stateFailed
		s.cred = Credential{}
		if s.mech.plain {
			f.SCRAMError = ""
		}
		return nil, false, f
	}
	s.state = stateDone
	s.cred = Credential{}
	return serverMsg, true, nil
}

// plain runs PLAIN (RFC 4616): message = [authzid] NUL authcid NUL passwd.
func (s *Server) plain(ctx context.Context, msg []byte) *Failure {
	if !utf8.Valid(msg) {
		return malformed("", "not UTF-8")
	}
	authzid, rest, ok1 := bytes.Cut(msg, []byte{0})
	authcid, passwd, ok2 := bytes.Cut(rest, []byte{0})
	switch {
	case !ok1 || !ok2 || bytes.IndexByte(passwd, 0) >= 0:
		return malformed("", "expected authzid NUL authcid NUL password")
	case len(authcid) == 0:
		return malformed("", "empty username")
	case len(passwd) == 0:
		return malformed("", "empty password")
	case len(authcid) > maxUsernameLen:
		return malformed("", "username too long")
	}
	username, password := string(authcid), string(passwd)
	s.username = username // attempted; authenticated only on success
	err := s.auth.VerifyPlain(ctx, username, password)
	switch {
	case err == nil:
		s.authzid = string(authzid)
		return nil
	case errors.Is(err, ErrUnknownUser):
		// Spend what checking a password costs, so the answer comes no
		// sooner than for an account that exists.
		VerifyPlainWithCredential(s.fakeCredential(SHA256, username), password)
		return notAuthorized("", err)
	case errors.Is(err, ErrBadPassword):
		return notAuthorized("", err)
	case errors.Is(err, ErrDisabled):
		return &Failure{Condition: ConditionAccountDisabled, cause: err}
	default:
		return temporary(err)
	}
}

// scramFirst handles the client-first-message and builds the
// server-first-message.
func (s *Server) scramFirst(ctx context.Context, msg []byte) ([]byte, *Failure) {
	cf, f := parseClientFirst(msg)
	if f != nil {
		return nil, f
	}
	// RFC 5802 §6: the flag must agree with the mechanism and with what was
	// advertised.
	switch cf.flag {
	case 'p':
		switch {
		case !s.mech.plus && s.cbAdvertised:
			return nil, malformed(scramOtherError, "channel binding needs a -PLUS mechanism")
		case !s.mech.plus:
			return nil, malformed(scramCBNotSupported, "channel binding is not offered")
		case cf.cbName != s.cb.Type:
			return nil, &Failure{Condition: ConditionNotAuthorized, Text: "unsupported channel binding type",
				SCRAMError: scramUnsupportedCBType}
		}
	case 'y':
		if s.mech.plus {
			return nil, malformed(scramOtherError, "a -PLUS mechanism needs channel binding")
		}
		if s.cbAdvertised {
			return nil, &Failure{Condition: ConditionNotAuthorized, Text: "channel binding downgrade detected",
				SCRAMError: scramServerDoesSupportCB}
		}
	case 'n':
		if s.mech.plus {
			return nil, malformed(scramOtherError, "a -PLUS mechanism needs channel binding")
		}
	}

	h := s.mech.hash
	// The simulated credential is derived for every login, used or not, so
	// that this package's share of the time does not depend on whether
	// the account exists.
	fake := s.fakeCredential(h, cf.username)
	cred, err := s.auth.Credential(ctx, cf.username, h)
	switch {
	case err == nil:
		if !cred.valid(h) {
			return nil, temporary(fmt.Errorf("sasl: stored %s credential is malformed", h))
		}
		s.real = true
	case errors.Is(err, ErrDisabled):
		s.disabled = true
		s.real = cred.valid(h)
	case errors.Is(err, ErrUnknownUser), errors.Is(err, ErrNoSCRAM):
	default:
		return nil, temporary(err)
	}
	if !s.real {
		cred = fake
		s.cause = err
	}

	snonce := s.serverNonce
	if snonce == "" {
		snonce = rand.Text() // 26 base32 characters, 130 bits
	}
	s.nonce = cf.nonce + snonce
	s.serverFirst = "r=" + s.nonce + ",s=" + base64.StdEncoding.EncodeToString(cred.Salt) +
		",i=" + strconv.Itoa(cred.Iterations)
	s.gs2Header, s.cbFlag, s.bare, s.cred = cf.gs2Header, cf.flag, cf.bare, cred
	s.username, s.authzid = cf.username, cf.authzid
	return []byte(s.serverFirst), nil
}

// scramFinal checks the client-final-message and builds the
// server-final-message.
func (s *Server) scramFinal(msg []byte) ([]byte, *Failure) {
	h := s.mech.hash
	cf, f := parseClientFinal(msg, h.size())
	if f != nil {
		return nil, f
	}
	// c= is base64(gs2-header [cbind-data]) (RFC 5802 §7).
	want := make([]byte, 0, len(s.gs2Header)+len(s.cb.Data))
	want = append(want, s.gs2Header...)
	if s.cbFlag == 'p' {
		want = append(want, s.cb.Data...)
	}
	if subtle.ConstantTimeCompare(cf.cbind, want) != 1 {
		return nil, &Failure{Condition: ConditionNotAuthorized, Text: "channel binding mismatch",
			SCRAMError: scramChannelBindingsMismatch}
	}
	if subtle.ConstantTimeCompare([]byte(cf.nonce), []byte(s.nonce)) != 1 {
		return nil, &Failure{Condition: ConditionNotAuthorized, Text: "nonce mismatch", SCRAMError: scramOtherError}
	}

	// AuthMessage := client-first-message-bare + "," + server-first-message
	//                + "," + client-final-message-without-proof
	authMessage := s.bare + "," + s.serverFirst + "," + cf.withoutProof
	fn := h.newFunc()
	clientSignature := hmacSum(fn, s.cred.StoredKey, authMessage)
	clientKey := make([]byte, len(clientSignature))
	subtle.XORBytes(clientKey, cf.proof, clientSignature)
	proofOK := hmac.Equal(hashSum(fn, clientKey), s.cred.StoredKey)
	serverSignature := hmacSum(fn, s.cred.ServerKey, authMessage)

	switch {
	case !s.real:
		return nil, notAuthorized(scramInvalidProof, s.cause)
	case !proofOK:
		return nil, notAuthorized(scramInvalidProof, ErrBadPassword)
	case s.disabled:
		return nil, &Failure{Condition: ConditionAccountDisabled, SCRAMError: scramOtherError, cause: ErrDisabled}
	}
	return []byte("v=" + base64.StdEncoding.EncodeToString(serverSignature)), nil
}

// fakeCredential derives the simulated credential of a username that has no
// real one: stable for a given secret, hash and (case-folded) username, and
// shaped like a real one.
func (s *Server) fakeCredential(h Hash, username string) Credential {
	name := username
	if folded, err := precis.UsernameCaseMapped.String(username); err == nil {
		name = folded
	}
	m := hmac.New(sha256.New, s.secret)
	derive := func(label string, n int) []byte {
		m.Reset()
		m.Write([]byte("kontor sasl simulated credential\x00" + label + "\x00" + string(h) + "\x00" + name))
		return m.Sum(nil)[:n]
	}
	return Credential{
		Hash:       h,
		Salt:       derive("salt", saltLen),
		Iterations: s.iterations,
		StoredKey:  derive("stored-key", h.size()),
		ServerKey:  derive("server-key", h.size()),
	}
}

package sasl

// The HT ("hashed token") mechanisms of draft-schmaus-kitten-sasl-ht, which
// FAST (XEP-0484) uses to log in with a server-issued token in one round
// trip. The client's only message is
//
//	authcid NUL HMAC-SHA-256(token, "Initiator" || cb-data)
//
// and the server proves that it knows the token too with the additional
// data of its success, HMAC-SHA-256(token, "Responder" || cb-data). cb-data
// is the tls-exporter binding (RFC 9266) for HT-SHA-256-EXPR and empty for
// HT-SHA-256-NONE. HT-SHA-256-UNIQ (tls-unique) and -ENDP
// (tls-server-end-point) are not offered, for the reasons the package
// documentation gives for SCRAM's -PLUS.
//
// Where tokens come from and how they are kept is not this file's
// business (see core/account): it parses the message and does the
// arithmetic, in constant time.

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"unicode/utf8"
)

// FAST mechanism names, as advertised in <fast xmlns='urn:xmpp:fast:0'/>.
const (
	HTSHA256Expr = "HT-SHA-256-EXPR"
	HTSHA256None = "HT-SHA-256-NONE"
)

// FASTMechanisms lists the HT mechanisms to offer for a connection,
// channel-bound first: HT-SHA-256-EXPR only with a usable tls-exporter
// binding. FAST needs TLS; the caller offers nothing without it.
func FASTMechanisms(cb ChannelBinding) []string {
	if cb.usable() {
		return []string{HTSHA256Expr, HTSHA256None}
	}
	return []string{HTSHA256None}
}

// IsHT reports whether mech is one of the HT mechanisms this package
// implements.
func IsHT(mech string) bool { return mech == HTSHA256Expr || mech == HTSHA256None }

// HTBinding returns the cb-data of mech on a connection with binding cb,
// and false when mech is unknown or needs a binding the connection lacks.
func HTBinding(mech string, cb ChannelBinding) ([]byte, bool) {
	switch mech {
	case HTSHA256None:
		return []byte{}, true
	case HTSHA256Expr:
		if cb.usable() {
			return bytes.Clone(cb.Data), true
		}
	}
	return nil, false
}

// htProofLen is the length of an HMAC-SHA-256.
const htProofLen = sha256.Size

// ParseHT splits the client's initial response into the authentication
// identity and the initiator's hashed token. Every error is a *Failure
// (malformed-request).
func ParseHT(msg []byte) (username string, proof []byte, err error) {
	name, p, ok := bytes.Cut(msg, []byte{0})
	switch {
	case len(msg) > MaxMessageSize:
		return "", nil, malformed("", "message too large")
	case !ok:
		return "", nil, malformed("", "expected authcid NUL hashed token")
	case len(name) == 0:
		return "", nil, malformed("", "empty username")
	case len(name) > maxUsernameLen:
		return "", nil, malformed("", "username too long")
	case !utf8.Valid(name):
		return "", nil, malformed("", "username is not UTF-8")
	case len(p) != htProofLen:
		return "", nil, malformed("", "hashed token has the wrong length")
	}
	return string(name), bytes.Clone(p), nil
}

// HTInitiator is HMAC-SHA-256(token, "Initiator" || cbData): what the
// client sends.
func HTInitiator(token, cbData []byte) []byte { return htHMAC(token, "Initiator", cbData) }

// HTResponder is HMAC-SHA-256(token, "Responder" || cbData): the additional
// data of the server's success.
func HTResponder(token, cbData []byte) []byte { return htHMAC(token, "Responder", cbData) }

// VerifyHT reports, in constant time, whether proof is the initiator's
// hashed token for token and cbData.
func VerifyHT(token, cbData, proof []byte) bool {
	return hmac.Equal(HTInitiator(token, cbData), proof)
}

func htHMAC(token []byte, label string, cbData []byte) []byte {
	m := hmac.New(sha256.New, token)
	m.Write([]byte(label))
	m.Write(cbData)
	return m.Sum(nil)
}

// Errors of a token store (XEP-0484): a login whose replay counter was
// already used, and a token that matched but has expired.
var (
	ErrReplayed = errors.New("sasl: token replayed")
	ErrExpired  = errors.New("sasl: token expired")
)

// HTFailure turns the error of a token check into the Failure to report:
// not-authorized for an unknown user, a wrong or foreign token and a
// replay (errors.Is keeps telling them apart for the log and the failure
// counting), credentials-expired for an expired token (XEP-0484 §7.2: the
// client falls back to its password), account-disabled, and
// temporary-auth-failure for anything else.
func HTFailure(err error) *Failure {
	var f *Failure
	switch {
	case errors.As(err, &f):
		return f
	case errors.Is(err, ErrUnknownUser), errors.Is(err, ErrBadPassword), errors.Is(err, ErrReplayed):
		return notAuthorized("", err)
	case errors.Is(err, ErrDisabled):
		return &Failure{Condition: ConditionAccountDisabled, cause: err}
	case errors.Is(err, ErrExpired):
		return &Failure{Condition: ConditionCredentialsExpired, cause: err}
	}
	return temporary(err)
}

// Package sasl implements the server side of SCRAM-SHA-1, SCRAM-SHA-256 (with -PLUS) and PLAIN for XMPP.
//
// It follows RFC 6120 §6 (SASL in XMPP), RFC 5802 (SCRAM), RFC 7677
// (SCRAM-SHA-256), RFC 9266 (the tls-exporter channel binding) and RFC 4616
// (PLAIN). A [Server] runs one exchange: the session layer creates it with
// the mechanism the client picked, feeds it each base64-decoded client
// message through [Server.Step], and turns the result into <challenge/>,
// <success/> or <failure/>. Who may log in is decided elsewhere, behind the
// small [Authenticator] interface that local accounts and LDAP both
// implement; this package never imports either.
//
// # Tokens
//
// For FAST (XEP-0484) the package also does the arithmetic of the HT
// mechanisms of draft-schmaus-kitten-sasl-ht (HT-SHA-256-EXPR, bound with
// tls-exporter, and HT-SHA-256-NONE): [ParseHT], [VerifyHT] (constant
// time) and [HTResponder]. Issuing and storing tokens is core/account's.
//
// # Channel binding
//
// The -PLUS mechanisms use tls-exporter (RFC 9266) and nothing else: 32
// bytes of keying material exported from the TLS connection with the label
// "EXPORTER-Channel-Binding" and an empty context. tls-unique, the binding
// RFC 5802 made the default, is not defined for TLS 1.3 (RFC 8446 §C.5,
// RFC 9266 §1), and on TLS 1.2 without the extended master secret it is
// defeated by the triple-handshake attack; tls-server-end-point binds only
// the certificate, not the connection. [TLSExporter] produces a binding only for TLS 1.3:
// crypto/tls cannot tell us whether a TLS 1.2 connection negotiated the
// extended master secret once GODEBUG=tlsunsafeekm=1 is set, and RFC 5705's
// "no context" and "empty context" differ on TLS 1.2 (implementations
// disagree about which RFC 9266 means), while they are the same on TLS 1.3.
// Without a binding the -PLUS mechanisms are simply not offered.
//
// Downgrade protection follows RFC 5802 §6: [NewServer] is told which
// mechanisms were advertised, and a client that says "y" (I support channel
// binding but believe you do not) after a -PLUS mechanism was advertised is
// refused.
//
// # What is stored
//
// Never the password and never the SaltedPassword. A [Credential] holds, per
// account and per hash, the salt, the iteration count, StoredKey =
// H(HMAC(SaltedPassword, "Client Key")) and ServerKey =
// HMAC(SaltedPassword, "Server Key"), with SaltedPassword =
// PBKDF2-HMAC-H(OpaqueString(password), salt, iterations) (RFC 5802 §3;
// the password is prepared with the PRECIS OpaqueString profile of RFC 8265,
// which XMPP uses in place of SASLprep). Someone who steals a credential
// cannot log in with it over SCRAM (that needs ClientKey, which StoredKey is
// a hash of), but can mount an offline dictionary attack and can
// impersonate the server to that account, so the store must still be
// protected. PLAIN logins of local accounts are checked against the same
// credential by [VerifyPlainWithCredential], in constant time.
//
// # What a failure reveals
//
// An unknown user and a wrong password are the same failure, not-authorized.
// For SCRAM the server must answer the client-first-message with a salt and
// an iteration count before it knows whether the password is right, so for
// an account that does not exist (or cannot do SCRAM, or has no credential
// for this hash) it runs the whole exchange against a simulated credential:
// its salt and keys are derived by HMAC-SHA-256 from a server secret
// ([WithSecret]) and the username, so asking twice for the same name gives
// the same salt, as it would for a real account, and the final step does the
// same computations before it fails. The username is folded with the PRECIS
// UsernameCaseMapped profile first, so "Alice" and "alice" get the same
// simulated salt as they would the same real one. For PLAIN an unknown user
// costs the same PBKDF2 work as a wrong password. An account that is
// disabled is reported as account-disabled only to someone who proved they
// know its password.
//
// A [Failure] carries the RFC 6120 §6.5 condition and text that go to the
// client, the RFC 5802 server-error-value for the log (RFC 6120's <failure/>
// has no room for it), and the underlying cause (errors.Is(err,
// ErrUnknownUser) and so on) for the log only. Send Condition and Text;
// never send Error().
//
// # Bounds
//
// Client messages over [MaxMessageSize] bytes, client nonces over 256
// bytes and usernames over 1023 bytes (the RFC 7622 localpart limit) are
// refused. Iteration counts are chosen by the server, at least
// [MinIterations]. Every comparison of a secret is constant-time.
//
// # Dependencies
//
// Only the standard library (crypto/pbkdf2, crypto/hmac, crypto/subtle) and
// golang.org/x/text/secure/precis, which core/jid already needs for RFC
// 7622. The tests use mellium.im/sasl as an independent client
// implementation to check interoperability; the package itself does not,
// because its server side lacks -PLUS, downgrade detection and
// enumeration-resistant failures.
package sasl

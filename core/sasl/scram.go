package sasl

import (
	"bytes"
	"encoding/base64"
	"strings"
	"unicode/utf8"
)

// The grammar below is RFC 5802 §7 (with errata 5580 applied to the error
// values); nothing outside it is accepted.
//
//	client-first-message = gs2-header client-first-message-bare
//	gs2-header       = gs2-cbind-flag "," [ authzid ] ","
//	gs2-cbind-flag   = ("p=" cb-name) / "n" / "y"
//	authzid          = "a=" saslname
//	client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
//	username         = "n=" saslname
//	nonce            = "r=" c-nonce [s-nonce]
//	client-final-message = channel-binding "," nonce ["," extensions] "," proof
//	channel-binding  = "c=" base64
//	proof            = "p=" base64
//	saslname         = 1*(value-safe-char / "=2C" / "=3D")
//	printable        = %x21-2B / %x2D-7E
//	cb-name          = 1*(ALPHA / DIGIT / "." / "-")
//	attr-val         = ALPHA "=" value

// maxCBNameLen bounds a channel binding type name; registered ones are
// under 25 characters.
const maxCBNameLen = 64

// clientFirst is a parsed client-first-message.
type clientFirst struct {
	gs2Header string // as sent, with its trailing ','
	flag      byte   // 'n', 'y' or 'p'
	cbName    string // for 'p'
	authzid   string // decoded; "" if absent
	bare      string // client-first-message-bare, as sent
	username  string // decoded
	nonce     string // c-nonce
}

// parseClientFirst parses a client-first-message.
func parseClientFirst(msg []byte) (clientFirst, *Failure) {
	var cf clientFirst
	if f := checkText(msg); f != nil {
		return cf, f
	}
	s := string(msg)

	flag, rest, ok := strings.Cut(s, ",")
	if !ok {
		return cf, malformed(scramInvalidEncoding, "missing GS2 header")
	}
	switch {
	case flag == "n" || flag == "y":
		cf.flag = flag[0]
	case strings.HasPrefix(flag, "p="):
		if !validCBName(flag[2:]) {
			return cf, malformed(scramInvalidEncoding, "invalid channel binding name")
		}
		cf.flag, cf.cbName = 'p', flag[2:]
	default:
		return cf, malformed(scramInvalidEncoding, "invalid channel binding flag")
	}

	authzid, bare, ok := strings.Cut(rest, ",")
	if !ok {
		return cf, malformed(scramInvalidEncoding, "missing GS2 header")
	}
	if authzid != "" {
		v, ok := strings.CutPrefix(authzid, "a=")
		if !ok {
			return cf, malformed(scramInvalidEncoding, "invalid GS2 header")
		}
		if cf.authzid, ok = decodeSASLName(v); !ok {
			return cf, &Failure{Condition: ConditionInvalidAuthzid, Text: "invalid authzid encoding",
				SCRAMError: scramInvalidEncoding}
		}
	}
	cf.gs2Header = s[:len(s)-len(bare)]
	cf.bare = bare

	field, rest, _ := strings.Cut(bare, ",")
	if strings.HasPrefix(field, "m=") {
		return cf, malformed(scramExtensionsNotSupported, "mandatory extensions are not supported")
	}
	v, ok := strings.CutPrefix(field, "n=")
	if !ok {
		return cf, malformed(scramInvalidEncoding, "expected username")
	}
	if cf.username, ok = decodeSASLName(v); !ok {
		return cf, malformed(scramInvalidUsernameEncoding, "invalid username encoding")
	}
	if len(cf.username) > maxUsernameLen {
		return cf, malformed(scramInvalidUsernameEncoding, "username too long")
	}

	field, rest, more := strings.Cut(rest, ",")
	if cf.nonce, ok = strings.CutPrefix(field, "r="); !ok || !validNonce(cf.nonce, maxNonceLen) {
		return cf, malformed(scramInvalidEncoding, "invalid nonce")
	}
	// Optional extensions: syntax-checked, otherwise ignored (RFC 5802 §5.1).
	for more {
		field, rest, more = strings.Cut(rest, ",")
		if !validAttrVal(field) {
			return cf, malformed(scramInvalidEncoding, "invalid attribute")
		}
	}
	return cf, nil
}

// clientFinal is a parsed client-final-message.
type clientFinal struct {
	cbind        []byte // decoded c=
	nonce        string
	proof        []byte // decoded p=
	withoutProof string // client-final-message-without-proof, as sent
}

// parseClientFinal parses a client-final-message whose proof must be
// proofLen bytes long.
func parseClientFinal(msg []byte, proofLen int) (clientFinal, *Failure) {
	var cf clientFinal
	if f := checkText(msg); f != nil {
		return cf, f
	}
	s := string(msg)

	i := strings.LastIndexByte(s, ',')
	if i < 0 {
		return cf, malformed(scramInvalidEncoding, "expected channel binding, nonce and proof")
	}
	cf.withoutProof = s[:i]
	p, ok := strings.CutPrefix(s[i+1:], "p=")
	if !ok {
		return cf, malformed(scramInvalidEncoding, "the proof must come last")
	}
	if cf.proof, ok = decodeBase64(p); !ok {
		return cf, malformed(scramInvalidEncoding, "invalid proof encoding")
	}
	if len(cf.proof) != proofLen {
		return cf, malformed(scramInvalidEncoding, "proof has the wrong length")
	}

	field, rest, more := strings.Cut(cf.withoutProof, ",")
	c, ok := strings.CutPrefix(field, "c=")
	if !ok {
		return cf, malformed(scramInvalidEncoding, "expected channel binding")
	}
	if cf.cbind, ok = decodeBase64(c); !ok || len(cf.cbind) == 0 {
		return cf, malformed(scramInvalidEncoding, "invalid channel binding encoding")
	}
	if !more {
		return cf, malformed(scramInvalidEncoding, "expected nonce")
	}
	field, rest, more = strings.Cut(rest, ",")
	if cf.nonce, ok = strings.CutPrefix(field, "r="); !ok || !validNonce(cf.nonce, 2*maxNonceLen) {
		return cf, malformed(scramInvalidEncoding, "invalid nonce")
	}
	for more {
		field, rest, more = strings.Cut(rest, ",")
		// A second c=, r= or p= would make the message ambiguous.
		if !validAttrVal(field) || strings.IndexByte("crp", field[0]) >= 0 {
			return cf, malformed(scramInvalidEncoding, "invalid attribute")
		}
	}
	return cf, nil
}

// checkText rejects what no SCRAM message may contain: invalid UTF-8 and
// NUL (value-safe-char excludes it, and no other production allows it).
func checkText(msg []byte) *Failure {
	if !utf8.Valid(msg) || bytes.IndexByte(msg, 0) >= 0 {
		return malformed(scramInvalidEncoding, "not UTF-8 text")
	}
	return nil
}

// decodeSASLName decodes a saslname: "=2C" is ',', "=3D" is '=', and any
// other '=' or a bare ',' is an error, as is the empty string.
func decodeSASLName(s string) (string, bool) {
	if s == "" {
		return "", false
	}
	if strings.IndexByte(s, ',') >= 0 {
		return "", false
	}
	if strings.IndexByte(s, '=') < 0 {
		return s, true
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		if len(s)-i < 3 {
			return "", false
		}
		switch s[i+1 : i+3] {
		case "2C":
			b.WriteByte(',')
		case "3D":
			b.WriteByte('=')
		default:
			return "", false
		}
		i += 2
	}
	return b.String(), true
}

// validNonce reports whether s is 1*printable of at most max bytes.
func validNonce(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}

// validCBName reports whether s is a cb-name of sane length.
func validCBName(s string) bool {
	if len(s) == 0 || len(s) > maxCBNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlpha(c) && !isDigit(c) && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

// validAttrVal reports whether s is ALPHA "=" 1*value-char; checkText has
// already excluded NUL and invalid UTF-8, and s holds no ','.
func validAttrVal(s string) bool {
	return len(s) >= 3 && isAlpha(s[0]) && s[1] == '='
}

// decodeBase64 decodes the RFC 5802 base64 production: the standard
// alphabet with padding, and nothing else (encoding/base64 would skip line
// breaks).
func decodeBase64(s string) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlpha(c) && !isDigit(c) && c != '+' && c != '/' && c != '=' {
			return nil, false
		}
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	return b, err == nil
}

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }

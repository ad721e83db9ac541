// Package jid implements XMPP addresses (JIDs) as specified by RFC 7622.
//
// A JID has the form [localpart "@"] domainpart ["/" resourcepart]. Parse
// splits a string the way RFC 7622 §3.2 prescribes, before any
// normalisation: everything after the first '/' is the resourcepart (which may
// itself contain '/' and '@'), and in what remains everything before the
// first '@' is the localpart. New takes the three parts separately. Both
// check every part and bring it into canonical form, so a JID is a small
// comparable value and two JIDs are the same address exactly when they are
// ==. The zero JID is no address at all (IsZero); String returns "" for it.
//
// The rules, per part (every part must be valid UTF-8, and lengths are counted
// in bytes after normalisation):
//
//   - localpart (optional): the PRECIS UsernameCaseMapped profile of RFC 8265
//     (width mapping, lowercasing, NFC, the IdentifierClass of RFC 8264, and
//     the Bidi Rule of RFC 5893 for strings that contain right-to-left
//     characters), and then none of " & ' / : < > @ (RFC 7622 §3.3.1).
//     1 to 1023 bytes; "@example.com" is malformed, not a JID without one.
//   - domainpart: one trailing '.' is stripped first. An IPv6 address in
//     brackets ("[::1]") is kept as written (it must parse, with no zone).
//     Anything else is an internationalised domain name: mapped as UTS #46
//     does for lookup (lowercase, width, NFC: the RFC 5895 mappings that RFC
//     7622 §3.2.2 asks for, per erratum 4534, plus a few more compatibility
//     mappings), validated under IDNA2008 with the STD3 letter-digit-hyphen
//     rule for ASCII, the hyphen, joiner and Bidi rules, and A-labels
//     ("xn--...") converted to U-labels (RFC 7622 §3.2.1). A dotted IPv4
//     address is such a name and comes out as written. 1 to 1023 bytes; no
//     empty label; no label longer than 63 bytes in its A-label (DNS) form,
//     which is how RFC 5890 limits U-labels too.
//   - resourcepart (optional): the PRECIS OpaqueString profile of RFC 8265
//     (non-ASCII spaces mapped to U+0020, NFC, FreeformClass). 1 to 1023
//     bytes; "example.com/" is malformed.
//
// A part is accepted only if its canonical form is canonical again (the
// profiles are applied once, then checked to be stable), so Parse(j.String())
// always returns j.
//
// Input parts longer than 8184 bytes (8 × 1023) are rejected before any
// normalisation, which bounds the work per JID. PRECIS cannot shrink text
// that much, so such a localpart or resourcepart could not fit in 1023 bytes
// anyway; for a domainpart, where UTS #46 drops ignorable characters such as
// U+00AD SOFT HYPHEN, this is a deliberate limit.
//
// Every error wraps ErrMalformed (test with errors.Is) and says which part is
// wrong and why; a stanza layer can map all of them to the jid-malformed
// condition.
//
// # Fast path
//
// JIDs are parsed for every stanza, and nearly all of them are plain ASCII.
// A part made only of bytes that its profile leaves unchanged skips PRECIS
// and IDNA: for the localpart the printable ASCII characters other than
// space, uppercase letters and the excluded ones above; for the domainpart
// lowercase letter-digit-hyphen labels (1 to 63 bytes, no hyphen at either
// end, no "--" in third and fourth place, which would be an A-label or
// reserved); for the resourcepart printable ASCII including space. When all
// parts are on the fast path, Parse allocates nothing: the JID refers to the
// string it was given. ASCII uppercase in the localpart or domainpart costs
// one lowercased copy and still skips PRECIS and IDNA. Tests and the fuzz
// target check that the fast path returns exactly what the full profiles
// return.
//
// Because of that, a JID from Parse may keep the whole string passed to it
// alive. Clone the input (strings.Clone) before parsing a JID out of a large
// buffer that should be freed.
//
// # Choices where RFC text and libraries disagree
//
// The Bidi Rule is applied to a localpart only when it contains a
// right-to-left character, as RFC 8265 says. golang.org/x/text's
// precis.UsernameCaseMapped applies it to every non-ASCII string
// (golang/go#17383) and so rejects localparts such as "1müller" while
// accepting "1muller"; this package builds the same profile without that
// option and applies the rule itself.
//
// RFC 7622 §3.5 lists "juliet@example.com/ foo" as not a JID, but no rule of
// §3.4 or of OpaqueString forbids a leading space, and other implementations
// (mellium.im/xmpp, for one) accept it; so does this package, since refusing
// addresses that peers consider valid loses stanzas.
//
// IPv6 literals are not rewritten to the RFC 5952 form, so "[::1]" and
// "[0::1]" are different JIDs.
//
// # Dependencies
//
// golang.org/x/text/secure/precis and golang.org/x/net/idna carry the Unicode
// tables and the PRECIS (RFC 8264/8265) and IDNA2008/UTS #46 algorithms,
// maintained by the Go team and updated with each Unicode version. Writing
// those tables here would be a large, error-prone copy; cgo libraries
// (libidn2) would cost the static build. Both modules are already required
// by the rest of the module graph.
package jid

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/secure/bidirule"
	"golang.org/x/text/secure/precis"
	"golang.org/x/text/unicode/bidi"
	"golang.org/x/text/unicode/norm"
)

// ErrMalformed is wrapped by every error that reports an invalid JID or part.
var ErrMalformed = errors.New("jid: malformed")

// maxPartLen is the largest length, in bytes after normalisation, of each of
// the three parts (RFC 7622 §3.2, §3.3, §3.4).
const maxPartLen = 1023

// maxInputLen bounds the work per part: longer input is rejected before any
// normalisation. PRECIS deletes nothing and composes at most as many runes as
// a canonical decomposition has, so no localpart or resourcepart this long
// could fit in maxPartLen after normalisation (TestMaxInputLen checks the
// bound against the Unicode tables). For a domainpart, where UTS #46 drops
// ignorable characters, it is a deliberate limit.
const maxInputLen = 8 * maxPartLen

// maxLabelLen is the largest length of a domain label in its A-label form
// (RFC 1035 §2.3.4, RFC 5890 §2.3.2.1).
const maxLabelLen = 63

// excludedLocal are the characters RFC 7622 §3.3.1 disallows in a localpart
// on top of the UsernameCaseMapped profile.
const excludedLocal = `"&'/:<>@`

// JID is an XMPP address in canonical form. It is a comparable value: == on
// two JIDs compares their canonical forms. The zero value is the empty
// address, for which IsZero reports true.
type JID struct {
	// s is the canonical text: localpart "@" domainpart "/" resourcepart,
	// each separator present only with its part. No canonical localpart or
	// domainpart contains '@' or '/', so s alone determines the two offsets
	// below and == on JID is == on s.
	s string
	// local is the length of the localpart, 0 if there is none.
	local uint16
	// domEnd is the index in s where the domainpart ends: len(s) if there is
	// no resourcepart, otherwise the index of the '/'.
	domEnd uint16
}

// Parse parses s as a JID and returns it in canonical form. The error, if
// any, wraps ErrMalformed.
func Parse(s string) (JID, error) {
	local, domain, resource, err := split(s)
	if err != nil {
		return JID{}, err
	}
	// Fast path: every part ASCII that the profiles leave alone, except
	// perhaps for uppercase letters in the localpart and domainpart.
	lok, lupper := true, false
	if local != "" {
		lok, lupper = scanLocal(local)
	}
	if lok {
		dok, dupper := scanDomain(domain)
		if dok && isCanonicalResource(resource) {
			end := domainEnd(local, domain)
			if lupper || dupper {
				s = lowerASCIIPrefix(s, end)
			}
			return JID{s: s, local: uint16(len(local)), domEnd: uint16(end)}, nil
		}
	}
	l, d, r, err := normParts(local, domain, resource)
	if err != nil {
		return JID{}, err
	}
	if l == local && d == domain && r == resource {
		// Canonical but not all ASCII: still no need to copy.
		return JID{s: s, local: uint16(len(l)), domEnd: uint16(domainEnd(l, d))}, nil
	}
	return assemble(l, d, r), nil
}

// New returns the JID with the given parts, each checked and normalised as
// Parse does. An empty local or resource means the JID has none; the domain is
// required.
func New(local, domain, resource string) (JID, error) {
	l, d, r, err := normParts(local, domain, resource)
	if err != nil {
		return JID{}, err
	}
	return assemble(l, d, r), nil
}

// MustParse is like Parse but panics if s is not a valid JID. It is meant for
// tests and for addresses written into the program.
func MustParse(s string) JID {
	j, err := Parse(s)
	if err != nil {
		panic("jid: MustParse(" + strconv.Quote(s) + "): " + err.Error())
	}
	return j
}

// Local returns the localpart, or "" if there is none.
func (j JID) Local() string { return j.s[:j.local] }

// Domain returns the domainpart, or "" for the zero JID.
func (j JID) Domain() string { return j.s[j.domStart():j.domEnd] }

// Resource returns the resourcepart, or "" if there is none.
func (j JID) Resource() string {
	if int(j.domEnd) == len(j.s) {
		return ""
	}
	return j.s[j.domEnd+1:]
}

// Bare returns j without its resourcepart (the "bare JID").
func (j JID) Bare() JID {
	return JID{s: j.s[:j.domEnd], local: j.local, domEnd: j.domEnd}
}

// DomainJID returns the JID made of j's domainpart alone, as used to address
// the server or a service.
func (j JID) DomainJID() JID {
	start := j.domStart()
	return JID{s: j.s[start:j.domEnd], domEnd: j.domEnd - uint16(start)}
}

// IsBare reports whether j has no resourcepart.
func (j JID) IsBare() bool { return int(j.domEnd) == len(j.s) }

// IsZero reports whether j is the zero JID.
func (j JID) IsZero() bool { return j.s == "" }

// String returns the canonical text of j: localpart "@" domainpart "/"
// resourcepart, each separator only with its part. It does not allocate.
func (j JID) String() string { return j.s }

// AppendTo appends j.String() to b and returns the extended buffer.
func (j JID) AppendTo(b []byte) []byte { return append(b, j.s...) }

// WithResource returns the full JID made of j's bare JID and resource, which
// is normalised as Parse does. An empty resource is malformed; use Bare to
// drop a resourcepart.
func (j JID) WithResource(resource string) (JID, error) {
	if j.IsZero() {
		return JID{}, fmt.Errorf("%w domainpart: empty", ErrMalformed)
	}
	if resource == "" {
		return JID{}, fmt.Errorf("%w resourcepart: empty", ErrMalformed)
	}
	r, err := normResource(resource)
	if err != nil {
		return JID{}, err
	}
	return JID{s: j.s[:j.domEnd] + "/" + r, local: j.local, domEnd: j.domEnd}, nil
}

// MarshalText implements encoding.TextMarshaler; it returns j.String().
func (j JID) MarshalText() ([]byte, error) { return []byte(j.s), nil }

// UnmarshalText implements encoding.TextUnmarshaler with Parse. Empty text
// gives the zero JID, so that an absent or empty setting reads as "none".
func (j *JID) UnmarshalText(text []byte) error {
	if len(text) == 0 {
		*j = JID{}
		return nil
	}
	p, err := Parse(string(text))
	if err != nil {
		return err
	}
	*j = p
	return nil
}

func (j JID) domStart() int {
	if j.local == 0 {
		return 0
	}
	return int(j.local) + 1
}

// domainEnd returns the index where the domainpart ends in the text of a JID
// with the given localpart and domainpart.
func domainEnd(local, domain string) int {
	if local == "" {
		return len(domain)
	}
	return len(local) + 1 + len(domain)
}

// split divides s into its parts as RFC 7622 §3.2 prescribes: the
// resourcepart follows the first '/', and the localpart precedes the first
// '@' before that. A separator with nothing after (or before) it is an error.
func split(s string) (local, domain, resource string, err error) {
	domain = s
	if i := strings.IndexByte(domain, '/'); i >= 0 {
		resource = domain[i+1:]
		if resource == "" {
			return "", "", "", fmt.Errorf("%w resourcepart: empty after '/'", ErrMalformed)
		}
		domain = domain[:i]
	}
	if i := strings.IndexByte(domain, '@'); i >= 0 {
		local = domain[:i]
		if local == "" {
			return "", "", "", fmt.Errorf("%w localpart: empty before '@'", ErrMalformed)
		}
		domain = domain[i+1:]
	}
	return local, domain, resource, nil
}

// normParts normalises the three parts; empty local and resource mean none.
func normParts(local, domain, resource string) (l, d, r string, err error) {
	if local != "" {
		if l, err = normLocal(local); err != nil {
			return "", "", "", err
		}
	}
	if d, err = normDomain(domain); err != nil {
		return "", "", "", err
	}
	if resource != "" {
		if r, err = normResource(resource); err != nil {
			return "", "", "", err
		}
	}
	return l, d, r, nil
}

// assemble builds a JID from canonical parts with a single allocation (none
// if there is only a domainpart).
func assemble(local, domain, resource string) JID {
	if local == "" && resource == "" {
		return JID{s: domain, domEnd: uint16(len(domain))}
	}
	n := len(domain)
	if local != "" {
		n += len(local) + 1
	}
	if resource != "" {
		n += len(resource) + 1
	}
	var b strings.Builder
	b.Grow(n)
	if local != "" {
		b.WriteString(local)
		b.WriteByte('@')
	}
	b.WriteString(domain)
	if resource != "" {
		b.WriteByte('/')
		b.WriteString(resource)
	}
	return JID{s: b.String(), local: uint16(len(local)), domEnd: uint16(domainEnd(local, domain))}
}

// Byte classes for the ASCII fast path.
const (
	cLocal    = 1 << iota // canonical in a localpart
	cUpper                // 'A'-'Z': lowercased in a localpart or domainpart
	cLDH                  // canonical in a domain label: 'a'-'z', '0'-'9', '-'
	cResource             // canonical in a resourcepart: 0x20-0x7E
)

var asciiClass = func() (t [256]uint8) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] |= cResource
		switch {
		case c == ' ', strings.IndexByte(excludedLocal, byte(c)) >= 0:
		case 'A' <= c && c <= 'Z':
			t[c] |= cUpper
		default:
			t[c] |= cLocal
		}
		if 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' {
			t[c] |= cLDH
		}
	}
	return t
}()

// scanLocal reports whether the fast path can handle s as a localpart, and
// whether it contains uppercase letters to be lowercased.
func scanLocal(s string) (ok, upper bool) {
	if len(s) == 0 || len(s) > maxPartLen {
		return false, false
	}
	for i := 0; i < len(s); i++ {
		c := asciiClass[s[i]]
		if c&cLocal == 0 {
			if c&cUpper == 0 {
				return false, false
			}
			upper = true
		}
	}
	return true, upper
}

// scanDomain reports whether the fast path can handle s as a domainpart: dot
// separated letter-digit-hyphen labels that IDNA leaves unchanged except for
// lowercasing.
func scanDomain(s string) (ok, upper bool) {
	if len(s) == 0 || len(s) > maxPartLen {
		return false, false
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			n := i - start
			if n == 0 || n > maxLabelLen || s[start] == '-' || s[i-1] == '-' ||
				n >= 4 && s[start+2] == '-' && s[start+3] == '-' {
				return false, false
			}
			start = i + 1
			continue
		}
		c := asciiClass[s[i]]
		if c&cLDH == 0 {
			if c&cUpper == 0 {
				return false, false
			}
			upper = true
		}
	}
	return true, upper
}

func isCanonicalResource(s string) bool {
	if s == "" {
		return true // no resourcepart
	}
	if len(s) > maxPartLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if asciiClass[s[i]]&cResource == 0 {
			return false
		}
	}
	return true
}

// lowerASCII returns s with 'A'-'Z' lowercased.
func lowerASCII(s string) string { return lowerASCIIPrefix(s, len(s)) }

// lowerASCIIPrefix returns a copy of s with 'A'-'Z' lowercased in s[:n].
func lowerASCIIPrefix(s string, n int) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := range n {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	b.WriteString(s[n:])
	return b.String()
}

// normLocal returns the canonical form of a non-empty localpart.
func normLocal(s string) (string, error) {
	if ok, upper := scanLocal(s); ok {
		if upper {
			return lowerASCII(s), nil
		}
		return s, nil
	}
	return slowLocal(s)
}

// normDomain returns the canonical form of a domainpart.
func normDomain(s string) (string, error) {
	if ok, upper := scanDomain(s); ok {
		if upper {
			return lowerASCII(s), nil
		}
		return s, nil
	}
	return slowDomain(s)
}

// normResource returns the canonical form of a non-empty resourcepart.
func normResource(s string) (string, error) {
	if isCanonicalResource(s) {
		return s, nil
	}
	return slowResource(s)
}

// usernameCaseMapped is the UsernameCaseMapped profile of RFC 8265 without
// the directionality rule, which slowLocal applies as RFC 8265 says (see the
// package documentation).
var usernameCaseMapped = precis.NewIdentifier(
	precis.FoldWidth,
	precis.LowerCase(),
	precis.Norm(norm.NFC),
)

// domainProfile maps and validates domain names as described in the package
// documentation.
var domainProfile = idna.New(
	idna.MapForLookup(), // UTS #46 mapping, STD3 rules, hyphen and joiner checks
	idna.BidiRule(),
	idna.Transitional(false), // keep 'ß' and friends (IDNA2008)
)

// slowLocal normalises a localpart with the full profile; it is the
// reference the fast path is tested against.
func slowLocal(s string) (string, error) {
	if len(s) > maxInputLen {
		return "", errTooLong("localpart")
	}
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("%w localpart: invalid UTF-8", ErrMalformed)
	}
	out, err := enforce(usernameCaseMapped, s)
	if err != nil {
		return "", fmt.Errorf("%w localpart: %w", ErrMalformed, err)
	}
	if why := checkLen(out); why != "" {
		return "", fmt.Errorf("%w localpart: %s", ErrMalformed, why)
	}
	if i := strings.IndexAny(out, excludedLocal); i >= 0 {
		return "", fmt.Errorf("%w localpart: contains disallowed character %q", ErrMalformed, out[i])
	}
	if bidirule.DirectionString(out) == bidi.RightToLeft && !bidirule.ValidString(out) {
		return "", fmt.Errorf("%w localpart: violates the Bidi Rule (RFC 5893)", ErrMalformed)
	}
	return out, nil
}

// slowResource normalises a resourcepart with the full profile.
func slowResource(s string) (string, error) {
	if len(s) > maxInputLen {
		return "", errTooLong("resourcepart")
	}
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("%w resourcepart: invalid UTF-8", ErrMalformed)
	}
	out, err := enforce(precis.OpaqueString, s)
	if err != nil {
		return "", fmt.Errorf("%w resourcepart: %w", ErrMalformed, err)
	}
	if why := checkLen(out); why != "" {
		return "", fmt.Errorf("%w resourcepart: %s", ErrMalformed, why)
	}
	return out, nil
}

// slowDomain normalises a domainpart without the ASCII fast path.
func slowDomain(s string) (string, error) {
	if len(s) > maxInputLen {
		return "", errTooLong("domainpart")
	}
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("%w domainpart: invalid UTF-8", ErrMalformed)
	}
	// RFC 7622 §3.2: strip one trailing dot before anything else.
	s = strings.TrimSuffix(s, ".")
	if s == "" {
		return "", fmt.Errorf("%w domainpart: empty", ErrMalformed)
	}
	if s[0] == '[' {
		if len(s) < 2 || s[len(s)-1] != ']' {
			return "", fmt.Errorf("%w domainpart: IP literal without closing ']'", ErrMalformed)
		}
		ip, err := netip.ParseAddr(s[1 : len(s)-1])
		if err != nil || !ip.Is6() || ip.Zone() != "" {
			return "", fmt.Errorf("%w domainpart: invalid IPv6 literal", ErrMalformed)
		}
		return s, nil
	}
	out, err := domainProfile.ToUnicode(s)
	if err != nil {
		return "", fmt.Errorf("%w domainpart: %w", ErrMalformed, err)
	}
	if out != s {
		// The canonical form must map to itself, or String would not parse
		// back to the same JID.
		again, err := domainProfile.ToUnicode(out)
		if err != nil || again != out {
			return "", fmt.Errorf("%w domainpart: not stable under IDNA mapping", ErrMalformed)
		}
	}
	if why := checkLen(out); why != "" {
		return "", fmt.Errorf("%w domainpart: %s", ErrMalformed, why)
	}
	for label := range strings.SplitSeq(out, ".") {
		if label == "" {
			return "", fmt.Errorf("%w domainpart: empty label", ErrMalformed)
		}
		n := len(label)
		if !isASCII(label) {
			a, err := idna.Punycode.ToASCII(label)
			if err != nil {
				return "", fmt.Errorf("%w domainpart: %w", ErrMalformed, err)
			}
			n = len(a)
		}
		if n > maxLabelLen {
			return "", fmt.Errorf("%w domainpart: label longer than %d bytes", ErrMalformed, maxLabelLen)
		}
	}
	// IDNA with STD3 rules never lets these through; they would make the
	// canonical text ambiguous.
	if strings.ContainsAny(out, "@/") {
		return "", fmt.Errorf("%w domainpart: contains '@' or '/'", ErrMalformed)
	}
	return out, nil
}

// enforce applies a PRECIS profile and requires the result to be stable under
// the profile, so that the canonical form parses back to itself.
func enforce(p *precis.Profile, s string) (string, error) {
	out, err := p.String(s)
	if err != nil {
		return "", err
	}
	if out != s {
		again, err := p.String(out)
		if err != nil || again != out {
			return "", errors.New("not stable under PRECIS enforcement")
		}
	}
	return out, nil
}

func errTooLong(part string) error {
	return fmt.Errorf("%w %s: longer than %d bytes before normalisation", ErrMalformed, part, maxInputLen)
}

// checkLen returns why a normalised part has a bad length, or "".
func checkLen(s string) string {
	switch {
	case s == "":
		return "empty"
	case len(s) > maxPartLen:
		return "longer than " + strconv.Itoa(maxPartLen) + " bytes"
	}
	return ""
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

package ldapsync

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// GUID is an Active Directory objectGUID: 16 raw bytes as the directory
// stores and returns them. The first three fields (4, 2 and 2 bytes) are
// little-endian and the last two (2 and 6 bytes) big-endian, so the
// canonical string form, the one Windows tools print, reverses the bytes of
// the first three fields: the bytes 00 01 02 ... 0f read
// "03020100-0504-0706-0809-0a0b0c0d0e0f".
type GUID [16]byte

// ErrBadGUID is returned for bytes or text that are not a GUID.
var ErrBadGUID = errors.New("ldapsync: not a GUID")

// GUIDFromBytes takes the raw attribute value, which must be 16 bytes.
func GUIDFromBytes(b []byte) (GUID, error) {
	var g GUID
	if len(b) != len(g) {
		return g, fmt.Errorf("%w: %d bytes, want 16", ErrBadGUID, len(b))
	}
	copy(g[:], b)
	return g, nil
}

// guidOrder maps the position of each byte in the canonical string (hex
// digit pairs, dashes left out) to its position in the raw value.
var guidOrder = [16]int{3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15}

// ParseGUID reads the canonical string form, in either case, optionally in
// braces: "{6F9619FF-8B86-D011-B42D-00C04FC964FF}".
func ParseGUID(s string) (GUID, error) {
	var g GUID
	if len(s) == 38 && s[0] == '{' && s[37] == '}' {
		s = s[1:37]
	}
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, fmt.Errorf("%w: %q is not in the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", ErrBadGUID, s)
	}
	digits := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
	var canon [16]byte
	if _, err := hex.Decode(canon[:], []byte(digits)); err != nil {
		return g, fmt.Errorf("%w: %q: %v", ErrBadGUID, s, err)
	}
	for i, raw := range guidOrder {
		g[raw] = canon[i]
	}
	return g, nil
}

// String returns the canonical form in lower case.
func (g GUID) String() string {
	var canon [16]byte
	for i, raw := range guidOrder {
		canon[i] = g[raw]
	}
	h := hex.EncodeToString(canon[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// FilterValue escapes the raw bytes for an LDAP filter, every byte as \hh
// (RFC 4515 §3): "(objectGUID=" + g.FilterValue() + ")". Searching for the
// string form finds nothing, since the directory compares the raw bytes.
func (g GUID) FilterValue() string {
	var b strings.Builder
	b.Grow(48)
	const digits = "0123456789abcdef"
	for _, c := range g {
		b.WriteByte('\\')
		b.WriteByte(digits[c>>4])
		b.WriteByte(digits[c&0xf])
	}
	return b.String()
}

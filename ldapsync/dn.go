package ldapsync

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"
)

// dnKey returns a map key for a DN: two DNs have the same key exactly when
// ldap.ParseDN of one is EqualFold to ParseDN of the other (distinguished
// name match, ignoring case), so "cn=Doe\2C Jane,dc=x" and
// "CN=Doe\, Jane,DC=X" share a key. DNs are never compared as strings.
//
// Each attribute type and value is case-folded as strings.EqualFold folds
// (to the smallest rune of its simple-fold orbit), the attributes of a
// multi-valued RDN are sorted, and every part is length-prefixed so that no
// value can imitate a separator.
func dnKey(s string) (string, error) {
	dn, err := ldap.ParseDN(s)
	if err != nil {
		return "", fmt.Errorf("ldapsync: DN %q: %w", s, err)
	}
	return keyOfDN(dn), nil
}

// dnKeys caches dnKey for one sync: the same member DNs come up again and
// again (in the groups before and after, in several groups). Not safe for
// concurrent use.
type dnKeys map[string]dnKeyResult

type dnKeyResult struct {
	key string
	err error
}

func (c dnKeys) key(s string) (string, error) {
	if r, ok := c[s]; ok {
		return r.key, r.err
	}
	k, err := dnKey(s)
	c[s] = dnKeyResult{k, err}
	return k, err
}

func keyOfDN(dn *ldap.DN) string {
	var b strings.Builder
	parts := make([]string, 0, 2)
	for _, rdn := range dn.RDNs {
		parts = parts[:0]
		for _, atv := range rdn.Attributes {
			t, v := fold(atv.Type), fold(atv.Value)
			parts = append(parts, strconv.Itoa(len(t))+":"+t+strconv.Itoa(len(v))+":"+v)
		}
		sort.Strings(parts)
		b.WriteString(strconv.Itoa(len(parts)))
		b.WriteByte('[')
		for _, p := range parts {
			b.WriteString(p)
		}
		b.WriteByte(']')
	}
	return b.String()
}

// fold maps s so that fold(a) == fold(b) exactly when strings.EqualFold(a,
// b): every rune becomes the smallest rune of its simple-fold orbit (for
// ASCII letters the upper case; "k", "K" and the Kelvin sign all become
// "K"). Invalid UTF-8 folds to U+FFFD, as EqualFold decodes it.
func fold(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if r < utf8.RuneSelf {
			if 'a' <= r && r <= 'z' {
				r -= 'a' - 'A'
			}
			b.WriteByte(byte(r))
			continue
		}
		smallest := r
		for r2 := unicode.SimpleFold(r); r2 != r; r2 = unicode.SimpleFold(r2) {
			smallest = min(smallest, r2)
		}
		b.WriteRune(smallest)
	}
	return b.String()
}

package stanza

import (
	"testing"
	"unicode/utf8"
)

// TestPlainBytes: the tables escape's fast path reads mark exactly the
// bytes that escape copies unchanged.
func TestPlainBytes(t *testing.T) {
	for _, attr := range []bool{false, true} {
		plain := &plainText
		if attr {
			plain = &plainAttr
		}
		for c := range 256 {
			s := string([]byte{byte(c)})
			unchanged := string(escape(nil, s, attr)) == s
			if plain[c] != unchanged && c < utf8.RuneSelf {
				t.Errorf("attr %v, byte %#x: plain %v, escape leaves it unchanged: %v", attr, c, plain[c], unchanged)
			}
			if c >= utf8.RuneSelf && plain[c] {
				t.Errorf("attr %v, byte %#x: a byte of a multi-byte sequence is plain", attr, c)
			}
		}
	}
}

package jid

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// parseSlow is Parse without any ASCII fast path: every part goes through the
// full PRECIS or IDNA processing. It is the reference for the fast path.
func parseSlow(s string) (JID, error) {
	local, domain, resource, err := split(s)
	if err != nil {
		return JID{}, err
	}
	var l, d, r string
	if local != "" {
		if l, err = slowLocal(local); err != nil {
			return JID{}, err
		}
	}
	if d, err = slowDomain(domain); err != nil {
		return JID{}, err
	}
	if resource != "" {
		if r, err = slowResource(resource); err != nil {
			return JID{}, err
		}
	}
	return assemble(l, d, r), nil
}

// checkSameAsSlow fails the test unless Parse and parseSlow agree on s, and
// unless the fast and slow normalisation of s as each kind of part agree.
func checkSameAsSlow(t *testing.T, s string) {
	t.Helper()
	fast, fastErr := Parse(s)
	slow, slowErr := parseSlow(s)
	if fast != slow || (fastErr == nil) != (slowErr == nil) {
		t.Errorf("Parse(%q) = %q, %v; slow path gives %q, %v", s, fast, fastErr, slow, slowErr)
	}
	if fastErr != nil && !errors.Is(fastErr, ErrMalformed) {
		t.Errorf("Parse(%q) error %q does not wrap ErrMalformed", s, fastErr)
	}
	if s == "" {
		return // not a localpart or resourcepart: those are never empty
	}
	for _, p := range []struct {
		name       string
		fast, slow func(string) (string, error)
	}{
		{"localpart", normLocal, slowLocal},
		{"domainpart", normDomain, slowDomain},
		{"resourcepart", normResource, slowResource},
	} {
		f, ferr := p.fast(s)
		w, werr := p.slow(s)
		if f != w || (ferr == nil) != (werr == nil) {
			t.Errorf("%s %q: fast path gives %q, %v; slow path %q, %v", p.name, s, f, ferr, w, werr)
		}
	}
}

func TestFastPathMatchesSlowPath(t *testing.T) {
	t.Run("table", func(t *testing.T) {
		for _, s := range []string{
			"alice@example.com/phone", "Alice@Example.COM/Phone", "example.com", "EXAMPLE.COM",
			"a.b.c.d.e", "1.2.3.4", "01.02.03.04", "a-b.c-d", "-a.b", "a-.b", "ab--c.d", "ab--.d",
			"a--b.c", "xn--bcher-kva.example", "XN--BCHER-KVA.example", "xn--.com", "xn--a.com",
			"xn--abc", "example.com.", "example.com..", ".", "..", ".a", "a..b", "a_b.com", "a b",
			strings.Repeat("a", 63) + ".b", strings.Repeat("a", 64) + ".b",
			strings.Repeat("a", 1023), strings.Repeat("a", 1024), strings.Repeat("A", 1023),
			strings.Repeat("a.", 511) + "a", strings.Repeat("a.", 512),
			"!#$%()*+,-.;=?[\\]^_`{|}~", `"&'/:<>@`, " leading", "trailing ", "tab\t",
			"[::1]", "[::1]/r", "a@[::1]/r", "\x00", "\x7f", "\xff", "é", "É", "ＡＢＣ",
		} {
			checkSameAsSlow(t, s)
		}
	})
	t.Run("all one and two byte strings", func(t *testing.T) {
		var buf [2]byte
		for a := range 256 {
			buf[0] = byte(a)
			checkSameAsSlow(t, string(buf[:1]))
			for b := range 256 {
				buf[1] = byte(b)
				checkSameAsSlow(t, string(buf[:2]))
			}
		}
	})
	t.Run("short strings over a small alphabet", func(t *testing.T) {
		const alphabet = "aZ0-._ @/!\"\x00\x7fx"
		var gen func(prefix string, n int)
		gen = func(prefix string, n int) {
			checkSameAsSlow(t, prefix)
			if n == 0 {
				return
			}
			for i := 0; i < len(alphabet); i++ {
				gen(prefix+alphabet[i:i+1], n-1)
			}
		}
		gen("", 4)
	})
	t.Run("label combinations", func(t *testing.T) {
		labels := []string{"", "a", "A", "0", "-", "-a", "a-", "ab--c", "a--b", "xn--", "xn--bcher-kva",
			"xn--zz", "bücher", strings.Repeat("z", 63), strings.Repeat("z", 64)}
		for _, x := range labels {
			for _, y := range labels {
				checkSameAsSlow(t, x+"."+y)
				checkSameAsSlow(t, "u@"+x+"."+y+"/r")
			}
		}
	})
}

func TestParseAllocations(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		max      float64
	}{
		{"canonical ascii", "alice@example.com/phone", 0},
		{"canonical domain", "example.com", 0},
		{"uppercase", "Alice@Example.COM/phone", 1}, // one lowercased copy
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			got := testing.AllocsPerRun(100, func() { _, err = Parse(tc.in) })
			if err != nil {
				t.Fatal(err)
			}
			if got > tc.max {
				t.Errorf("Parse(%q) made %v allocations, want at most %v", tc.in, got, tc.max)
			}
		})
	}
	j := MustParse("alice@example.com/phone")
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { _ = j.String(); buf = j.AppendTo(buf[:0]) }); n != 0 {
		t.Errorf("String and AppendTo made %v allocations, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = j.Bare(); _ = j.DomainJID(); _ = j.Local(); _ = j.Resource() }); n != 0 {
		t.Errorf("accessors made %v allocations, want 0", n)
	}
}

// TestMaxInputLen checks that maxInputLen rejects no localpart or
// resourcepart that could normalise to maxPartLen bytes or less. Width and
// case mapping turn one rune into one or more runes, and NFC composes a run
// of runes into one rune c only if the run decomposes to NFD(c), so an output
// rune c comes from at most len(NFD(c)) input runes of at most 4 bytes each.
func TestMaxInputLen(t *testing.T) {
	worst, worstRune := 0.0, rune(0)
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		c := string(r)
		in := utf8.UTFMax * utf8.RuneCountInString(norm.NFD.String(c))
		if ratio := float64(in) / float64(len(c)); ratio > worst {
			worst, worstRune = ratio, r
		}
	}
	t.Logf("largest shrink factor %.2f, for %U", worst, worstRune)
	if worst*maxPartLen > maxInputLen {
		t.Errorf("maxInputLen = %d, but %U allows %.0f input bytes per %d output bytes",
			maxInputLen, worstRune, worst*maxPartLen, maxPartLen)
	}
	// A long localpart that does shrink a lot: fullwidth 'Ａ' plus two
	// combining marks (7 bytes) become U+01DF (2 bytes).
	in := strings.Repeat("Ａ\u0308\u0304", 511)
	j, err := New(in, "example.com", "")
	if err != nil || j.Local() != strings.Repeat("\u01df", 511) {
		t.Errorf("New(%d bytes of Ａ\\u0308\\u0304) = %q, %v", len(in), j.Local(), err)
	}
}

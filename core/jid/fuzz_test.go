package jid

import (
	"errors"
	"testing"
)

// FuzzParse checks, for any input: Parse does not panic; errors wrap
// ErrMalformed; the fast path agrees with the full PRECIS/IDNA path; and a
// parsed JID is canonical (its String parses back to it, New on its parts
// gives it back, and its accessors are consistent).
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"juliet@example.com/foo",
		"alice@example.com/phone",
		"JULIET@EXAMPLE.COM./Foo Bar",
		"Σ@xn--bcher-kva.example/♚",
		"ｊｕｌｉｅｔ@ｅｘａｍｐｌｅ。com/\u00a0x",
		"@example.com/",
		"a@b@c/d/e",
		"[::1]",
		"u@[fe80::1%eth0]/r",
		"xn--.com",
		"\u05d0a@example.com",
		"e\u0301@example.com/e\u0301",
		"\xff@\xfe/\xfd",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		j, err := Parse(s)
		checkSameAsSlow(t, s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse(%q) error %q does not wrap ErrMalformed", s, err)
			}
			if !j.IsZero() {
				t.Fatalf("Parse(%q) returned %q with error %v", s, j, err)
			}
			return
		}
		if j.IsZero() {
			t.Fatalf("Parse(%q) returned the zero JID without error", s)
		}

		again, err := Parse(j.String())
		if err != nil {
			t.Fatalf("Parse(%q) = %q, which does not parse: %v", s, j, err)
		}
		if again != j {
			t.Fatalf("Parse(%q) = %q, but Parse(%q) = %q", s, j, j, again)
		}
		built, err := New(j.Local(), j.Domain(), j.Resource())
		if err != nil || built != j {
			t.Fatalf("New(%q, %q, %q) = %q, %v; want %q", j.Local(), j.Domain(), j.Resource(), built, err, j)
		}

		want := j.Domain()
		if j.Local() != "" {
			want = j.Local() + "@" + want
		}
		if j.Resource() != "" {
			want += "/" + j.Resource()
		}
		if j.String() != want || string(j.AppendTo(nil)) != want {
			t.Fatalf("String() = %q, AppendTo = %q; parts give %q", j, j.AppendTo(nil), want)
		}
		if b := j.Bare(); b.Resource() != "" || b.Local() != j.Local() || b.Domain() != j.Domain() || b != MustParse(b.String()) {
			t.Fatalf("Bare() of %q = %q", j, b)
		}
		if d := j.DomainJID(); d.String() != j.Domain() || d != MustParse(d.String()) {
			t.Fatalf("DomainJID() of %q = %q", j, d)
		}
		if j.Resource() != "" {
			w, err := j.Bare().WithResource(j.Resource())
			if err != nil || w != j {
				t.Fatalf("Bare().WithResource(%q) = %q, %v; want %q", j.Resource(), w, err, j)
			}
		}
	})
}

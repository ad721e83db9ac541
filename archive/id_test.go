package archive

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseID(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"RFC 9562 example", "017f22e2-79b0-7cc3-98c4-dc0c0c07398f", true},
		{"new", NewID(), true},
		{"uppercase", "017F22E2-79B0-7CC3-98C4-DC0C0C07398F", false},
		{"version 4", "017f22e2-79b0-4cc3-98c4-dc0c0c07398f", false},
		{"wrong variant", "017f22e2-79b0-7cc3-c8c4-dc0c0c07398f", false},
		{"no hyphens", "017f22e279b07cc398c4dc0c0c07398f", false},
		{"braces", "{017f22e2-79b0-7cc3-98c4-dc0c0c07398f}", false},
		{"hyphen moved", "017f22e2-79b07-cc3-98c4-dc0c0c07398f", false},
		{"not hex", "017f22e2-79b0-7cc3-98c4-dc0c0c07398g", false},
		{"empty", "", false},
		{"too long", "017f22e2-79b0-7cc3-98c4-dc0c0c07398f0", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := ParseID(tt.in)
			if tt.ok {
				if err != nil {
					t.Fatalf("ParseID(%q) = %v", tt.in, err)
				}
				if got := FormatID(id); got != tt.in {
					t.Errorf("FormatID = %q, want %q", got, tt.in)
				}
				return
			}
			if !errors.Is(err, ErrInvalidID) {
				t.Errorf("ParseID(%q) = %x, %v, want ErrInvalidID", tt.in, id, err)
			}
		})
	}
}

func TestNewIDOrderAndTime(t *testing.T) {
	before := time.Now().Truncate(time.Millisecond)
	prevID := ""
	for range 20000 { // more than 4096 per millisecond at times
		id := NewID()
		if id <= prevID {
			t.Fatalf("%s after %s: not increasing", id, prevID)
		}
		prevID = id
	}
	after := time.Now()
	at := idTime(mustParse(t, prevID))
	// Borrowing future milliseconds stays within a few.
	if at.Before(before) || at.After(after.Add(50*time.Millisecond)) {
		t.Errorf("the last ID's time %v is not between %v and %v", at, before, after)
	}
}

func TestIDBounds(t *testing.T) {
	at := time.Date(2025, 6, 1, 12, 0, 0, 123_000_000, time.UTC)
	id := idAt(at)
	if got := idTime(id); !got.Equal(at) {
		t.Errorf("idTime = %v, want %v", got, at)
	}
	tests := []struct {
		name string
		lo   [16]byte
		hi   [16]byte
		in   bool
	}{
		{"same millisecond", idFloor(at), idCeil(at), true},
		{"a millisecond later", idFloor(at.Add(time.Millisecond)), idCeil(at.Add(time.Hour)), false},
		{"a millisecond earlier", idFloor(at.Add(-time.Hour)), idCeil(at.Add(-time.Millisecond)), false},
		{"before 1970 clamps", idFloor(time.Unix(-5, 0)), idCeil(at), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := !bytesLess(id, tt.lo) && !bytesLess(tt.hi, id)
			if in != tt.in {
				t.Errorf("in range = %v, want %v", in, tt.in)
			}
		})
	}
	if next(idHighest) != idHighest || prev(idLowest) != idLowest {
		t.Error("next/prev do not saturate")
	}
	x := [16]byte{15: 0xff}
	if n := next(x); n != ([16]byte{14: 1}) || prev(n) != x {
		t.Errorf("next/prev carry: %x %x", n, prev(n))
	}
}

func FuzzParseID(f *testing.F) {
	f.Add("017f22e2-79b0-7cc3-98c4-dc0c0c07398f")
	f.Add(strings.Repeat("-", 36))
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidID) {
				t.Fatalf("error %v is not ErrInvalidID", err)
			}
			return
		}
		// What parses is canonical: it formats back to the input.
		if got := FormatID(id); got != s {
			t.Fatalf("FormatID(ParseID(%q)) = %q", s, got)
		}
		if id[6]>>4 != 7 || id[8]>>6 != 2 {
			t.Fatalf("%q parsed to a non-v7 UUID", s)
		}
	})
}

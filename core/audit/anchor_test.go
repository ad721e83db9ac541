package audit_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kontor.im/kontor/core/audit"
)

const hash64 = "7fc089be09fb2d57a1524c0ee2a9a89b6e004acedb4d80aac44e59b2c2e4359b"

func TestParseHead(t *testing.T) {
	tests := []struct {
		name, in string
		seq      int64 // 0: an error
	}{
		{"plain", "42:" + hash64, 42},
		{"upper-case hex", "42:" + strings.ToUpper(hash64), 42},
		{"leading zeros", "007:" + hash64, 7},
		{"largest", "9223372036854775807:" + hash64, 9223372036854775807},
		{"overflow", "9223372036854775808:" + hash64, 0},
		{"zero", "0:" + hash64, 0},
		{"negative", "-1:" + hash64, 0},
		{"plus sign", "+1:" + hash64, 0},
		{"no colon", "42", 0},
		{"no seq", ":" + hash64, 0},
		{"short hash", "42:" + hash64[:62], 0},
		{"long hash", "42:" + hash64 + "00", 0},
		{"not hex", "42:" + strings.Repeat("zz", 32), 0},
		{"space inside", "42: " + hash64, 0},
		{"two colons", "42:" + hash64 + ":", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := audit.ParseHead(tt.in)
			if tt.seq == 0 {
				if err == nil {
					t.Errorf("ParseHead(%q) = %v, want an error", tt.in, h)
				}
				return
			}
			if err != nil || h.Seq != tt.seq || len(h.Hash) != audit.HashSize {
				t.Errorf("ParseHead(%q) = %v, %v; want seq %d", tt.in, h, err, tt.seq)
			}
		})
	}
}

func TestParseHeadFile(t *testing.T) {
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"as written", "# comment\n# more\n42:" + hash64 + "\n", true},
		{"CRLF and blank lines", "\r\n# c\r\n\r\n  42:" + hash64 + "  \r\n\r\n", true},
		{"no trailing newline", "42:" + hash64, true},
		{"empty", "", false},
		{"only comments", "# nothing\n", false},
		{"two heads", "42:" + hash64 + "\n43:" + hash64 + "\n", false},
		{"garbage", "hello\n", false},
		{"too large", strings.Repeat("#", 5000) + "\n42:" + hash64, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := audit.ParseHeadFile([]byte(tt.in))
			if tt.ok != (err == nil) {
				t.Fatalf("ParseHeadFile = %v, %v; want ok %v", h, err, tt.ok)
			}
			if tt.ok && h.Seq != 42 {
				t.Errorf("seq = %d, want 42", h.Seq)
			}
		})
	}
}

func TestHeadFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.head")
	if _, err := audit.ReadHeadFile(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v, want fs.ErrNotExist", err)
	}
	for _, h := range []audit.Head{{Seq: 1, Hash: bytes.Repeat([]byte{0xab}, 32)}, {Seq: 1 << 40, Hash: make([]byte, 32)}} {
		if err := audit.WriteHeadFile(path, h); err != nil {
			t.Fatal(err)
		}
		got, err := audit.ReadHeadFile(path)
		if err != nil || !got.Equal(h) {
			t.Errorf("read back %v, %v; want %v", got, err, h)
		}
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v (%v), want 0600", fi.Mode(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d files, want only the head (no temporary files left)", len(entries))
	}
	if err := audit.WriteHeadFile(filepath.Join(dir, "missing", "audit.head"), audit.Head{Seq: 1, Hash: make([]byte, 32)}); err == nil {
		t.Error("WriteHeadFile into a missing directory succeeded")
	}
}

// FuzzParseHead: no input panics; what parses prints back to the same head.
func FuzzParseHead(f *testing.F) {
	f.Add("42:" + hash64)
	f.Add("0:")
	f.Add("18446744073709551616:00")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := audit.ParseHead(s)
		if err != nil {
			return
		}
		if h.Seq < 1 || len(h.Hash) != audit.HashSize {
			t.Fatalf("ParseHead(%q) = %v", s, h)
		}
		back, err := audit.ParseHead(h.String())
		if err != nil || !back.Equal(h) {
			t.Fatalf("ParseHead(%q).String() = %q does not parse back: %v", s, h.String(), err)
		}
	})
}

// FuzzParseHeadFile: no input panics; what parses is a valid head.
func FuzzParseHeadFile(f *testing.F) {
	f.Add([]byte("# c\n42:" + hash64 + "\n"))
	f.Add([]byte("\n\n#\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := audit.ParseHeadFile(b)
		if err != nil {
			return
		}
		if h.Seq < 1 || len(h.Hash) != audit.HashSize {
			t.Fatalf("ParseHeadFile(%q) = %v", b, h)
		}
	})
}

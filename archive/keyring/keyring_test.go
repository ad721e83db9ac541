package keyring

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func b64(b byte) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, KeySize)) }

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		ids     []string // nil: an error is expected
		errPart string
	}{
		{"one key", "kek-v1 k1 " + b64(1) + "\n", []string{"k1"}, ""},
		{"comments and blank lines", "# header\n\n  kek-v1 k1 " + b64(1) + "  # trailing; comment\n# end\n", []string{"k1"}, ""},
		{"two keys, last is primary", "kek-v1 old " + b64(1) + "\nkek-v1 new " + b64(2), []string{"old", "new"}, ""},
		{"semicolons (environment)", "kek-v1 a " + b64(1) + ";kek-v1 b " + b64(2) + ";", []string{"a", "b"}, ""},
		{"CRLF", "kek-v1 a " + b64(1) + "\r\n", []string{"a"}, ""},
		{"empty", "", nil, "no key-encryption key"},
		{"comments only", "# nothing\n", nil, "no key-encryption key"},
		{"unknown tag", "kek-v2 a " + b64(1), nil, "want"},
		{"missing key", "kek-v1 a", nil, "want"},
		{"extra field", "kek-v1 a " + b64(1) + " extra", nil, "want"},
		{"short key", "kek-v1 a " + base64.StdEncoding.EncodeToString([]byte("short")), nil, "32 bytes"},
		{"long key", "kek-v1 a " + base64.StdEncoding.EncodeToString(make([]byte, 33)), nil, "32 bytes"},
		{"not base64", "kek-v1 a !!!!", nil, "32 bytes"},
		{"url base64", "kek-v1 a " + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32)), nil, "32 bytes"},
		{"duplicate id", "kek-v1 a " + b64(1) + "\nkek-v1 a " + b64(2), nil, "twice"},
		{"bad id", "kek-v1 -a " + b64(1), nil, "bad key id"},
		{"id with slash", "kek-v1 a/b " + b64(1), nil, "bad key id"},
		{"id too long", "kek-v1 " + strings.Repeat("a", 65) + " " + b64(1), nil, "bad key id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Parse([]byte(tt.text))
			if tt.ids == nil {
				if err == nil || !strings.Contains(err.Error(), tt.errPart) {
					t.Fatalf("Parse = %v, %v; want an error containing %q", r, err, tt.errPart)
				}
				if strings.Contains(err.Error(), b64(1)) || strings.Contains(err.Error(), b64(2)) {
					t.Errorf("the error repeats key material: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := r.IDs(); fmt.Sprint(got) != fmt.Sprint(tt.ids) {
				t.Errorf("IDs = %v, want %v", got, tt.ids)
			}
			if r.Primary() != tt.ids[len(tt.ids)-1] {
				t.Errorf("Primary = %s", r.Primary())
			}
			// Marshal and Parse again: the same keys.
			again, err := Parse(r.Marshal())
			if err != nil || fmt.Sprint(again.IDs()) != fmt.Sprint(tt.ids) {
				t.Fatalf("round trip: %v, %v", again, err)
			}
			_, w, err := r.Wrap(context.Background(), []byte("data key"), []byte("ad"))
			if err != nil {
				t.Fatal(err)
			}
			if p, err := again.Unwrap(context.Background(), r.Primary(), w, []byte("ad")); err != nil || string(p) != "data key" {
				t.Errorf("the re-parsed ring does not unwrap: %q, %v", p, err)
			}
		})
	}
}

func TestWrapUnwrap(t *testing.T) {
	ctx := context.Background()
	k1, err := Generate(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	k2, err := Generate(time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(k1.ID, "k20250101-") || !validID(k1.ID) {
		t.Errorf("generated id %q", k1.ID)
	}
	old, _ := NewRing(k1)
	both, _ := NewRing(k1, k2)
	dek := bytes.Repeat([]byte{7}, KeySize)
	id1, w1, err := old.Wrap(ctx, dek, []byte("slot A"))
	if err != nil || id1 != k1.ID {
		t.Fatalf("Wrap = %s, %v", id1, err)
	}
	id2, w2, err := both.Wrap(ctx, dek, []byte("slot A"))
	if err != nil || id2 != k2.ID {
		t.Fatalf("Wrap with two keys used %s, %v; want the last", id2, err)
	}
	if bytes.Contains(w1, dek) {
		t.Fatal("the data key is readable in the wrapped bytes")
	}
	tampered := bytes.Clone(w1)
	tampered[len(tampered)-1] ^= 1
	newOnly, _ := NewRing(k2)
	tests := []struct {
		name    string
		ring    *Ring
		kek     string
		wrapped []byte
		ad      string
		want    error
	}{
		{"old ring, old key", old, k1.ID, w1, "slot A", nil},
		{"both, old key", both, k1.ID, w1, "slot A", nil},
		{"both, new key", both, k2.ID, w2, "slot A", nil},
		{"other slot", both, k1.ID, w1, "slot B", ErrUnwrap},
		{"labelled with the other KEK", both, k2.ID, w1, "slot A", ErrUnwrap},
		{"tampered", both, k1.ID, tampered, "slot A", ErrUnwrap},
		{"truncated", both, k1.ID, w1[:10], "slot A", ErrUnwrap},
		{"KEK not in the ring", newOnly, k1.ID, w1, "slot A", ErrUnknownKEK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := tt.ring.Unwrap(ctx, tt.kek, tt.wrapped, []byte(tt.ad))
			if tt.want != nil {
				if !errors.Is(err, tt.want) || p != nil {
					t.Errorf("Unwrap = %x, %v, want %v", p, err, tt.want)
				}
				return
			}
			if err != nil || !bytes.Equal(p, dek) {
				t.Errorf("Unwrap = %x, %v", p, err)
			}
		})
	}
}

func TestKeysNeverPrinted(t *testing.T) {
	k, err := Generate(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r, _ := NewRing(k)
	secret := base64.StdEncoding.EncodeToString(k.secret)
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("keys", "key", k, "ring", r)
	outputs := map[string]string{
		"%v key": fmt.Sprintf("%v", k), "%+v key": fmt.Sprintf("%+v", k), "%#v key": fmt.Sprintf("%#v", k),
		"%s key": fmt.Sprintf("%s", k), "%v ring": fmt.Sprintf("%v", r), "%+v ring": fmt.Sprintf("%+v", r),
		"slog": logged.String(),
	}
	for name, out := range outputs {
		if strings.Contains(out, secret) || strings.Contains(out, fmt.Sprint(k.secret)) || strings.Contains(out, fmt.Sprintf("%x", k.secret)) {
			t.Errorf("%s shows key material: %s", name, out)
		}
		if !strings.Contains(out, k.ID) {
			t.Errorf("%s does not show the id: %s", name, out)
		}
	}
}

func TestWithWithout(t *testing.T) {
	k1, _ := Generate(time.Now())
	k2, _ := Generate(time.Now())
	r, _ := NewRing(k1)
	r2, err := r.With(k2)
	if err != nil || r2.Primary() != k2.ID || r.Primary() != k1.ID {
		t.Fatalf("With: %v, %v (the original must not change)", r2, err)
	}
	if _, err := r2.With(k1); err == nil {
		t.Error("With accepted a duplicate id")
	}
	if _, err := r2.Without(k2.ID); err == nil {
		t.Error("Without removed the primary")
	}
	if _, err := r2.Without("nope"); !errors.Is(err, ErrUnknownKEK) {
		t.Errorf("Without an unknown id = %v", err)
	}
	r3, err := r2.Without(k1.ID)
	if err != nil || fmt.Sprint(r3.IDs()) != fmt.Sprint([]string{k2.ID}) {
		t.Errorf("Without = %v, %v", r3, err)
	}
	if _, err := NewRing(); !errors.Is(err, ErrNoKeys) {
		t.Errorf("NewRing() = %v", err)
	}
}

func TestFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys", "archive.kek")
	r, err := CreateFile(path, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CreateFile(path, time.Now()); !errors.Is(err, os.ErrExist) {
		t.Errorf("CreateFile over an existing file = %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v, %v", fi.Mode(), err)
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
		t.Errorf("directory mode = %v", di.Mode())
	}
	text, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(text), Header) {
		t.Error("the file has no header")
	}
	f, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if cur, _ := f.Current(ctx); cur != r.Primary() {
		t.Errorf("Current = %s, want %s", cur, r.Primary())
	}
	kid, wrapped, err := f.Wrap(ctx, []byte("dek"), nil)
	if err != nil || kid != r.Primary() {
		t.Fatal(kid, err)
	}

	// A rotation replaces the file: the provider sees the new primary and
	// still unwraps with the old key.
	k2, _ := Generate(time.Now())
	r2, _ := r.With(k2)
	if err := ReplaceFile(path, r2); err != nil {
		t.Fatal(err)
	}
	if cur, _ := f.Current(ctx); cur != k2.ID {
		t.Errorf("Current after replace = %s, want %s", cur, k2.ID)
	}
	if p, err := f.Unwrap(ctx, kid, wrapped, nil); err != nil || string(p) != "dek" {
		t.Errorf("Unwrap with the old key after replace: %q, %v", p, err)
	}
	if fi2, _ := os.Stat(path); fi2.Mode().Perm() != 0o600 {
		t.Errorf("mode after replace = %v", fi2.Mode())
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".kek-*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}

	// A file broken after start stops new wraps rather than guessing.
	if err := os.WriteFile(path, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.Wrap(ctx, []byte("dek"), nil); err == nil {
		t.Error("Wrap with a broken key file succeeded")
	}
}

func TestFileModes(t *testing.T) {
	tests := []struct {
		name string
		mode os.FileMode
		ok   bool
	}{
		{"owner only", 0o600, true},
		{"owner read-only", 0o400, true},
		{"group may read", 0o640, true},
		{"group may write", 0o660, false},
		{"others may read", 0o604, false},
		{"world readable", 0o644, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "k")
			if err := os.WriteFile(path, []byte("kek-v1 a "+b64(1)+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			_, err := OpenFile(path)
			if (err == nil) != tt.ok {
				t.Errorf("OpenFile with mode %04o = %v, want ok=%v", tt.mode, err, tt.ok)
			}
		})
	}
	if _, err := OpenFile(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestEnv(t *testing.T) {
	tests := []struct {
		name  string
		value string
		set   bool
		ok    bool
	}{
		{"two keys", "kek-v1 a " + b64(1) + ";kek-v1 b " + b64(2), true, true},
		{"empty", "", true, false},
		{"unset", "", false, false},
		{"malformed", "nope", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "KONTOR_TEST_KEK_" + strings.ToUpper(strings.ReplaceAll(tt.name, " ", "_"))
			if tt.set {
				t.Setenv(name, tt.value)
			}
			r, err := Env(name)
			if (err == nil) != tt.ok {
				t.Fatalf("Env = %v, %v, want ok=%v", r, err, tt.ok)
			}
			if err != nil && (tt.set && tt.value != "") && !strings.Contains(err.Error(), name) {
				t.Errorf("the error does not name the variable: %v", err)
			}
			if tt.ok && r.Primary() != "b" {
				t.Errorf("Primary = %s", r.Primary())
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("kek-v1 k1 " + b64(1) + "\n"))
	f.Add([]byte("kek-v1 a " + b64(1) + ";kek-v1 b " + b64(2)))
	f.Fuzz(func(t *testing.T, text []byte) {
		r, err := Parse(text)
		if err != nil {
			if r != nil {
				t.Fatal("a ring and an error")
			}
			return
		}
		ids := r.IDs()
		if len(ids) == 0 || r.Primary() != ids[len(ids)-1] {
			t.Fatalf("ids %v, primary %s", ids, r.Primary())
		}
		// What parses marshals to text that parses to the same ring.
		again, err := Parse(r.Marshal())
		if err != nil {
			t.Fatalf("re-parse of %q: %v", r.Marshal(), err)
		}
		if fmt.Sprint(again.IDs()) != fmt.Sprint(ids) {
			t.Fatalf("ids %v became %v", ids, again.IDs())
		}
		for i, k := range r.keys {
			if !bytes.Equal(k.secret, again.keys[i].secret) {
				t.Fatalf("key %s changed in the round trip", k.ID)
			}
		}
	})
}

func BenchmarkWrapUnwrap(b *testing.B) {
	k, _ := Generate(time.Now())
	r, _ := NewRing(k)
	ctx := context.Background()
	dek := make([]byte, KeySize)
	ad := []byte("owner@example.com 202506 standard")
	b.ReportAllocs()
	for b.Loop() {
		id, w, err := r.Wrap(ctx, dek, ad)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Unwrap(ctx, id, w, ad); err != nil {
			b.Fatal(err)
		}
	}
}

package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"
)

// HashSize is the size of PrevHash and Hash: SHA-256.
const HashSize = sha256.Size

// encodingVersion is the first byte of every canonical encoding, so that a
// later format can be told apart from this one.
const encodingVersion = 1

// zeroHash is the PrevHash of the first entry.
var zeroHash = make([]byte, HashSize)

// AppendCanonical appends the canonical encoding of e to dst and returns the
// extended slice. It covers every field but PrevHash and Hash:
//
//	version  1 byte (1)
//	Seq      8 bytes, big-endian
//	At       8 bytes, big-endian: unix microseconds (UTC by definition)
//	Actor, Action, Subject, Reason, PolicyRevision
//	         each a 4-byte big-endian length and the UTF-8 bytes
//	Details  a 4-byte count, then per key in byte order: key and value,
//	         each as a length and the bytes
//
// Every variable field is length-prefixed and the count of details is
// written first, so the encoding can be parsed back unambiguously: no two
// different entries encode alike (the tests parse it back, and fuzz that).
// Fields longer than 4 GiB cannot occur: Append rejects anything near that.
func AppendCanonical(dst []byte, e *Entry) []byte {
	dst = append(dst, encodingVersion)
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.Seq))
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.At.UnixMicro()))
	for _, s := range [...]string{e.Actor, e.Action, e.Subject, e.Reason, e.PolicyRevision} {
		dst = appendString(dst, s)
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(e.Details)))
	keys := make([]string, 0, len(e.Details))
	for k := range e.Details {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		dst = appendString(dst, k)
		dst = appendString(dst, e.Details[k])
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(s)))
	return append(dst, s...)
}

// ComputeHash returns SHA-256(e.PrevHash || canonical encoding of e): what
// e.Hash must be.
func ComputeHash(e *Entry) []byte {
	h := sha256.New()
	h.Write(e.PrevHash)
	var buf [512]byte
	h.Write(AppendCanonical(buf[:0], e))
	return h.Sum(nil)
}

// Limits of an entry, so that the trail stays a record of facts and not a
// place for documents.
const (
	MaxFieldBytes = 16 << 10 // any one string field, detail key or value
	MaxDetails    = 64       // details per entry
	MaxActionLen  = 128
)

// ErrInvalidEntry is what Append returns for an entry it refuses.
var ErrInvalidEntry = errors.New("audit: invalid entry")

// actionSyntax is dotted lowercase words: "policy.deny", "gdpr.export".
var actionSyntax = regexp.MustCompile(`^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*$`)

// Validate returns the error (wrapping ErrInvalidEntry) that Append would
// return for e, so that a caller can refuse bad input before it acts.
func Validate(e Entry) error { return validate(&e) }

// validate checks what the caller of Append fills in. Every text must be
// valid UTF-8 without NUL bytes: both backends store text columns, and
// PostgreSQL refuses both in text.
func validate(e *Entry) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidEntry, fmt.Sprintf(format, args...))
	}
	if e.Actor == "" {
		return bad("actor is empty")
	}
	if len(e.Action) > MaxActionLen || !actionSyntax.MatchString(e.Action) {
		return bad("action %q is not dotted lowercase words (like \"policy.deny\")", truncate(e.Action, 40))
	}
	text := func(what, s string) error {
		switch {
		case len(s) > MaxFieldBytes:
			return bad("%s is longer than %d bytes", what, MaxFieldBytes)
		case !utf8.ValidString(s):
			return bad("%s is not valid UTF-8", what)
		case strings.IndexByte(s, 0) >= 0:
			return bad("%s contains a NUL byte", what)
		}
		return nil
	}
	for _, f := range []struct{ what, s string }{
		{"actor", e.Actor}, {"subject", e.Subject}, {"reason", e.Reason}, {"policy revision", e.PolicyRevision},
	} {
		if err := text(f.what, f.s); err != nil {
			return err
		}
	}
	if len(e.Details) > MaxDetails {
		return bad("%d details, at most %d", len(e.Details), MaxDetails)
	}
	for k, v := range e.Details {
		if k == "" {
			return bad("a detail has an empty key")
		}
		if err := text("detail key", k); err != nil {
			return err
		}
		if err := text("detail "+truncate(k, 40), v); err != nil {
			return err
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

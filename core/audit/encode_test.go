package audit

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"
)

// decodeCanonical parses what AppendCanonical writes, strictly: it accepts
// only the encoding AppendCanonical would produce (details in increasing key
// order, nothing left over). That such a parser exists, and that the fuzz
// tests find decode(encode(e)) == e and encode(decode(b)) == b, is the proof
// that the encoding is injective: no two entries hash the same input.
func decodeCanonical(b []byte) (Entry, error) {
	var e Entry
	d := decoder{b: b}
	if v := d.bytes(1); len(v) != 1 || v[0] != encodingVersion {
		return e, errors.New("bad version")
	}
	e.Seq = int64(d.u64())
	e.At = time.UnixMicro(int64(d.u64())).UTC()
	for _, f := range []*string{&e.Actor, &e.Action, &e.Subject, &e.Reason, &e.PolicyRevision} {
		*f = d.str()
	}
	n := d.u32()
	if d.err == nil && uint64(n) > uint64(len(d.b))/8 {
		return e, errors.New("too many details")
	}
	prev := ""
	for i := range n {
		k, v := d.str(), d.str()
		if d.err != nil {
			break
		}
		if i > 0 && k <= prev {
			return e, errors.New("details not in increasing key order")
		}
		prev = k
		if e.Details == nil {
			e.Details = map[string]string{}
		}
		e.Details[k] = v
	}
	if d.err != nil {
		return e, d.err
	}
	if len(d.b) != 0 {
		return e, errors.New("trailing bytes")
	}
	return e, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) bytes(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if uint64(len(d.b)) < n {
		d.err = errors.New("short input")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u64() uint64 {
	if v := d.bytes(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if v := d.bytes(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) str() string { return string(d.bytes(uint64(d.u32()))) }

// sameEntry compares the fields the encoding covers.
func sameEntry(a, b *Entry) bool {
	return a.Seq == b.Seq && a.At.Equal(b.At) && a.Actor == b.Actor && a.Action == b.Action &&
		a.Subject == b.Subject && a.Reason == b.Reason && a.PolicyRevision == b.PolicyRevision &&
		len(a.Details) == len(b.Details) && maps.Equal(a.Details, b.Details)
}

var t0 = time.Date(2024, 3, 1, 10, 0, 0, 123456000, time.UTC)

func base() Entry {
	return Entry{Seq: 7, At: t0, Actor: "alice", Action: "policy.deny", Subject: "bob@example.com",
		Reason: "contact.not_allowed", PolicyRevision: "3f2a", Details: map[string]string{"a": "1", "b": "2"}}
}

// TestCanonicalDistinguishes: entries that differ anywhere, including by
// moving bytes from one field to the next, encode differently; the same
// entry always encodes the same.
func TestCanonicalDistinguishes(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Entry)
		same   bool
	}{
		{"identical", func(*Entry) {}, true},
		{"same details built in another order", func(e *Entry) { e.Details = map[string]string{"b": "2", "a": "1"} }, true},
		{"same instant in another zone", func(e *Entry) { e.At = e.At.In(time.FixedZone("CET", 3600)) }, true},
		{"nil and empty details", func(e *Entry) { e.Details = map[string]string{} }, false}, // vs base's two details
		{"seq", func(e *Entry) { e.Seq = 8 }, false},
		{"one microsecond later", func(e *Entry) { e.At = e.At.Add(time.Microsecond) }, false},
		{"byte moved from actor to action", func(e *Entry) { e.Actor, e.Action = "alic", "epolicy.deny" }, false},
		{"subject and reason swapped", func(e *Entry) { e.Subject, e.Reason = e.Reason, e.Subject }, false},
		{"policy revision empty", func(e *Entry) { e.PolicyRevision = "" }, false},
		{"detail key and value swapped", func(e *Entry) { e.Details = map[string]string{"1": "a", "b": "2"} }, false},
		{"byte moved from key to value", func(e *Entry) { e.Details = map[string]string{"": "a1", "b": "2"} }, false},
		{"detail moved into the reason", func(e *Entry) {
			e.Reason += "\x00\x00\x00\x01a\x00\x00\x00\x011"
			e.Details = map[string]string{"b": "2"}
		}, false},
		{"one detail fewer", func(e *Entry) { delete(e.Details, "b") }, false},
	}
	b := base()
	want := AppendCanonical(nil, &b)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := base()
			e.Details = maps.Clone(e.Details)
			tt.change(&e)
			got := AppendCanonical(nil, &e)
			if bytes.Equal(got, want) != tt.same {
				t.Errorf("encodings equal = %v, want %v", !tt.same, tt.same)
			}
			back, err := decodeCanonical(got)
			if err != nil || !sameEntry(&back, &e) {
				t.Errorf("decode(encode(e)) = %+v, %v; want %+v", back, err, e)
			}
		})
	}
}

// TestHashVector pins the format: changing the encoding breaks every
// existing trail, so it must be a deliberate new version. The expected values
// were computed independently (Python's struct and hashlib).
func TestHashVector(t *testing.T) {
	e := base()
	e.PrevHash = make([]byte, HashSize)
	const wantEnc = "01" + "0000000000000007" + "000612967061ea40" +
		"00000005616c696365" + "0000000b706f6c6963792e64656e79" + "0000000f626f62406578616d706c652e636f6d" +
		"00000013636f6e746163742e6e6f745f616c6c6f776564" + "0000000433663261" +
		"00000002" + "0000000161" + "0000000131" + "0000000162" + "0000000132"
	if got := hex.EncodeToString(AppendCanonical(nil, &e)); got != wantEnc {
		t.Errorf("encoding:\n got %s\nwant %s", got, wantEnc)
	}
	const wantHash = "7fc089be09fb2d57a1524c0ee2a9a89b6e004acedb4d80aac44e59b2c2e4359b"
	if got := hex.EncodeToString(ComputeHash(&e)); got != wantHash {
		t.Errorf("hash = %s, want %s", got, wantHash)
	}
}

func TestValidate(t *testing.T) {
	long := strings.Repeat("x", MaxFieldBytes+1)
	many := map[string]string{}
	for i := range MaxDetails + 1 {
		many[string(rune('A'+i))] = "v"
	}
	tests := []struct {
		name string
		e    Entry
		ok   bool
	}{
		{"minimal", Entry{Actor: "system", Action: "ldap.sync"}, true},
		{"everything", base(), true},
		{"one word action", Entry{Actor: "a", Action: "policy"}, true},
		{"hyphen and digits", Entry{Actor: "a", Action: "gdpr.export-v2.step1"}, true},
		{"not ASCII text", Entry{Actor: "zoë@exämple.org", Action: "a.b", Reason: "«why»"}, true},
		{"no actor", Entry{Action: "a.b"}, false},
		{"no action", Entry{Actor: "a"}, false},
		{"upper-case action", Entry{Actor: "a", Action: "Policy.deny"}, false},
		{"empty action word", Entry{Actor: "a", Action: "policy..deny"}, false},
		{"trailing dot", Entry{Actor: "a", Action: "policy."}, false},
		{"action too long", Entry{Actor: "a", Action: "a" + strings.Repeat(".b", MaxActionLen)}, false},
		{"invalid UTF-8", Entry{Actor: "a\xff", Action: "a.b"}, false},
		{"NUL in reason", Entry{Actor: "a", Action: "a.b", Reason: "x\x00y"}, false},
		{"long subject", Entry{Actor: "a", Action: "a.b", Subject: long}, false},
		{"empty detail key", Entry{Actor: "a", Action: "a.b", Details: map[string]string{"": "v"}}, false},
		{"NUL in detail value", Entry{Actor: "a", Action: "a.b", Details: map[string]string{"k": "\x00"}}, false},
		{"invalid UTF-8 detail key", Entry{Actor: "a", Action: "a.b", Details: map[string]string{"\xc0": "v"}}, false},
		{"too many details", Entry{Actor: "a", Action: "a.b", Details: many}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validate(&tt.e)
			if tt.ok && err != nil {
				t.Errorf("validate: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalidEntry) {
				t.Errorf("validate = %v, want ErrInvalidEntry", err)
			}
		})
	}
}

// FuzzCanonical: decode(encode(e)) == e for any entry, so no two entries
// encode (and hash) alike.
func FuzzCanonical(f *testing.F) {
	f.Add(int64(1), int64(0), "alice", "policy.deny", "bob@example.com", "", "", "k", "v", "k2", "v2")
	f.Add(int64(-1), int64(-1), "", "", "", "", "", "", "", "", "")
	f.Add(int64(1<<62), int64(1)<<62, "a\x00", "\xff", "\x00\x00\x00\x01", "r", "p", "a", "", "b", "")
	f.Fuzz(func(t *testing.T, seq, at int64, actor, action, subject, reason, rev, k1, v1, k2, v2 string) {
		e := Entry{Seq: seq, At: time.UnixMicro(at).UTC(), Actor: actor, Action: action, Subject: subject,
			Reason: reason, PolicyRevision: rev, Details: map[string]string{k1: v1, k2: v2}}
		enc := AppendCanonical(nil, &e)
		back, err := decodeCanonical(enc)
		if err != nil {
			t.Fatalf("decode(encode(%+v)): %v", e, err)
		}
		if !sameEntry(&back, &e) {
			t.Fatalf("decode(encode(e)) = %+v, want %+v", back, e)
		}
		// A prefix of an encoding is never an encoding.
		if _, err := decodeCanonical(enc[:len(enc)-1]); err == nil {
			t.Fatalf("a prefix of an encoding decodes")
		}
	})
}

// FuzzDecodeCanonical: whatever decodes re-encodes to the same bytes: each
// entry has exactly one encoding.
func FuzzDecodeCanonical(f *testing.F) {
	b := base()
	f.Add(AppendCanonical(nil, &b))
	f.Add([]byte{1})
	f.Add(append([]byte{1}, make([]byte, 40)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := decodeCanonical(data)
		if err != nil {
			return
		}
		if got := AppendCanonical(nil, &e); !bytes.Equal(got, data) {
			t.Fatalf("encode(decode(%x)) = %x", data, got)
		}
	})
}

func BenchmarkComputeHash(b *testing.B) {
	e := base()
	e.PrevHash = make([]byte, HashSize)
	b.ReportAllocs()
	for b.Loop() {
		ComputeHash(&e)
	}
}

// Package uuid7 mints the ids of archived messages, which are also their
// XEP-0359 stanza-ids: UUIDv7 (RFC 9562) in canonical lowercase text, the
// form the archive package requires, strictly increasing per generator.
// The mam module (one-to-one archives) and the muc module (room archives)
// share it; modules may not import each other.
package uuid7

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Len is the length of an id: a UUID in canonical text.
const Len = 36

// Generator mints ids: UUIDv7 (RFC 9562 §5.7) in canonical lowercase
// text, the form the archive package requires. The 48-bit timestamp is
// milliseconds since 1970; the 74 bits around the version and variant are
// random.
//
// Within one millisecond, or when the clock steps back, the next id is the
// previous one with a random increment of 1 to 2^32 added to its 74 random
// bits, carried into the timestamp on overflow (RFC 9562 §6.2, method 2,
// "monotonic random"). So the ids of one generator strictly increase, as
// bytes and as text, without a counter that would tell how many messages
// the server handles (XEP-0359, Security Considerations), and each keeps
// at least 32 unpredictable bits. A fresh millisecond gets 74 fresh random
// bits.
type Generator struct {
	now func() time.Time

	mu sync.Mutex
	// The last id, guarded by mu: ms (48 bits), then the random bits, hi
	// (the 12 of rand_a) and lo (the 62 of rand_b).
	ms, lo uint64
	hi     uint16
	// pool holds random bytes from crypto/rand not yet used, guarded by
	// mu: one read serves many ids (a read is a call into the kernel's
	// generator, twice per archived message otherwise). Bytes are used
	// once, so each id's randomness is as unpredictable as before.
	pool [240]byte
	left int // bytes at the end of pool not used yet
}

// New returns a generator that reads the time from now.
func New(now func() time.Time) *Generator { return &Generator{now: now} }

const (
	loBits = 62
	hiBits = 12
)

// Next returns a new id.
func (g *Generator) Next() string {
	ms := uint64(max(g.now().UnixMilli(), 0)) & (1<<48 - 1)

	g.mu.Lock()
	if g.left < 12 {
		_, _ = rand.Read(g.pool[:])
		g.left = len(g.pool)
	}
	// 10 bytes for 74 fresh bits, or 4 for an increment.
	r := g.pool[len(g.pool)-g.left:][:12]
	g.left -= 12
	if ms > g.ms {
		g.ms = ms
		g.hi = binary.BigEndian.Uint16(r[0:2]) & (1<<hiBits - 1)
		g.lo = binary.BigEndian.Uint64(r[2:10]) & (1<<loBits - 1)
	} else {
		g.lo += uint64(binary.BigEndian.Uint32(r[8:12])) + 1
		if g.lo >= 1<<loBits {
			g.lo -= 1 << loBits
			if g.hi++; g.hi == 1<<hiBits {
				g.hi = 0
				g.ms++
			}
		}
	}
	ms, hi, lo := g.ms, g.hi, g.lo
	g.mu.Unlock()

	var b [16]byte
	binary.BigEndian.PutUint64(b[0:8], ms<<16|0x7000|uint64(hi))
	binary.BigEndian.PutUint64(b[8:16], 1<<63|lo)
	var out [Len]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:36], b[10:16])
	return string(out[:])
}

// Millis checks that id is a UUIDv7 in canonical lowercase text (as the
// archive package parses it) and returns its milliseconds.
func Millis(id string) (int64, bool) {
	if len(id) != Len || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' {
		return 0, false
	}
	h := id[0:8] + id[9:13] + id[14:18] + id[19:23] + id[24:36]
	if strings.Trim(h, "0123456789abcdef") != "" || h[12] != '7' || !strings.ContainsRune("89ab", rune(h[16])) {
		return 0, false
	}
	ms, err := strconv.ParseInt(h[:12], 16, 64)
	return ms, err == nil
}

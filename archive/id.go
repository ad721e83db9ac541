package archive

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"sync"
	"time"
)

// IDs are UUIDv7 (RFC 9562 §5.7) in canonical lowercase text: 48 bits of
// Unix milliseconds, then the version, 12 bits that NewID uses as a counter
// within a millisecond (method 1 of §6.2), the variant and 62 random bits.
// They sort bytewise (and as text) in time order, which is the archive's
// order, and they are unique without coordination between nodes.

// ErrInvalidID is returned for an ID that is not a canonical UUIDv7.
var ErrInvalidID = errors.New("archive: id is not a canonical lowercase UUIDv7")

// idClock keeps NewID monotonic within the process: one generator per
// process, like the system clock it reads.
var idClock struct {
	sync.Mutex
	ms  int64
	seq uint16 // 12 bits
}

// NewID returns a new archive ID for a message archived now. IDs from one
// process strictly increase.
func NewID() string { return FormatID(newID(time.Now())) }

func newID(now time.Time) [16]byte {
	ms := now.UnixMilli()
	idClock.Lock()
	switch {
	case ms > idClock.ms:
		idClock.ms, idClock.seq = ms, 0
	case idClock.seq < 0xfff:
		idClock.seq++
	default:
		// 4096 IDs in one millisecond: borrow the next one.
		idClock.ms++
		idClock.seq = 0
	}
	ms, seq := idClock.ms, idClock.seq
	idClock.Unlock()

	var id [16]byte
	_, _ = rand.Read(id[8:])
	putMillis(&id, ms)
	binary.BigEndian.PutUint16(id[6:8], 0x7000|seq)
	id[8] = id[8]&0x3f | 0x80
	return id
}

// idAt returns a random UUIDv7 of the millisecond of t, outside the
// process's monotonic sequence (for messages archived with a time of their
// own, and tests).
func idAt(t time.Time) [16]byte {
	var id [16]byte
	_, _ = rand.Read(id[6:])
	putMillis(&id, clampMillis(t))
	id[6] = id[6]&0x0f | 0x70
	id[8] = id[8]&0x3f | 0x80
	return id
}

func putMillis(id *[16]byte, ms int64) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(ms))
	copy(id[0:6], b[2:8])
}

// idTime returns the time in an ID, to the millisecond.
func idTime(id [16]byte) time.Time {
	var b [8]byte
	copy(b[2:], id[0:6])
	return time.UnixMilli(int64(binary.BigEndian.Uint64(b[:]))).UTC()
}

// idFloor returns the smallest ID of the millisecond of t (clamped to the
// 48-bit range).
func idFloor(t time.Time) [16]byte {
	var id [16]byte
	putMillis(&id, clampMillis(t))
	return id
}

// idCeil returns the largest ID of the millisecond of t.
func idCeil(t time.Time) [16]byte {
	id := [16]byte{6: 0xff, 7: 0xff, 8: 0xff, 9: 0xff, 10: 0xff, 11: 0xff, 12: 0xff, 13: 0xff, 14: 0xff, 15: 0xff}
	putMillis(&id, clampMillis(t))
	return id
}

func clampMillis(t time.Time) int64 {
	ms := t.UnixMilli()
	if ms < 0 || t.Before(time.UnixMilli(0)) {
		return 0
	}
	return min(ms, 1<<48-1)
}

// next and prev return the ID just after and just before id, saturating.
func next(id [16]byte) [16]byte {
	for i := 15; i >= 0; i-- {
		if id[i] != 0xff {
			id[i]++
			return id
		}
		id[i] = 0
	}
	return [16]byte{0: 0xff, 1: 0xff, 2: 0xff, 3: 0xff, 4: 0xff, 5: 0xff, 6: 0xff, 7: 0xff, 8: 0xff, 9: 0xff, 10: 0xff, 11: 0xff, 12: 0xff, 13: 0xff, 14: 0xff, 15: 0xff}
}

func prev(id [16]byte) [16]byte {
	for i := 15; i >= 0; i-- {
		if id[i] != 0 {
			id[i]--
			return id
		}
		id[i] = 0xff
	}
	return [16]byte{}
}

// FormatID writes an ID in canonical form.
func FormatID(id [16]byte) string {
	var b [36]byte
	hex.Encode(b[0:8], id[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], id[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], id[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], id[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], id[10:16])
	return string(b[:])
}

// ParseID reads a canonical lowercase UUIDv7 (RFC 9562 variant). Other
// spellings of the same UUID (upper case, braces, no hyphens) are refused,
// so that an ID has exactly one text form.
func ParseID(s string) ([16]byte, error) {
	var id [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return id, ErrInvalidID
	}
	for j, p := range idHexPos {
		hi, ok1 := lowerHex(s[p])
		lo, ok2 := lowerHex(s[p+1])
		if !ok1 || !ok2 {
			return [16]byte{}, ErrInvalidID
		}
		id[j] = hi<<4 | lo
	}
	if id[6]>>4 != 7 || id[8]>>6 != 2 {
		return [16]byte{}, ErrInvalidID
	}
	return id, nil
}

// idHexPos are where the 16 bytes' hex pairs start in canonical form.
var idHexPos = [16]int{0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34}

func lowerHex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

package proxy65

import (
	"bytes"
	"strings"
	"testing"
)

// rw is a request to read and a buffer for the reply.
type rw struct {
	*bytes.Reader
	out bytes.Buffer
}

func (r *rw) Write(p []byte) (int, error) { return r.out.Write(p) }

// FuzzReadRequest feeds SOCKS5 requests to readRequest: it never panics,
// accepts only a CONNECT to a 40 hex digit name on port 0, and refuses
// with a reply of the RFC 1928 form.
func FuzzReadRequest(f *testing.F) {
	hash := strings.Repeat("0123456789", 4)
	f.Add(append(append([]byte{5, 1, 0, 3, 40}, hash...), 0, 0))
	f.Add([]byte{5, 1, 0, 1, 127, 0, 0, 1, 0, 80})
	f.Add([]byte{5, 2, 0, 3, 1, 'x', 0, 0})
	f.Add(append(append([]byte{5, 1, 0, 3, 40}, strings.ToUpper(strings.Repeat("abcdef0123", 4))...), 0, 0))
	f.Add([]byte{5, 1, 0, 3, 255})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := &rw{Reader: bytes.NewReader(b)}
		got, err := readRequest(r)
		if err == nil {
			if !isHash(got) || len(b) < 47 || b[1] != 1 || b[3] != 3 || b[45] != 0 || b[46] != 0 {
				t.Fatalf("accepted %q from %v", got, b)
			}
			return
		}
		if out := r.out.Bytes(); len(out) > 0 && (len(out) != 7 || out[0] != 5 || out[1] == 0) {
			t.Fatalf("refusal %v", out)
		}
	})
}

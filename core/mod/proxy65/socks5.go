package proxy65

import (
	"errors"
	"fmt"
	"io"
	"net"
)

// The SOCKS5 server side of RFC 1928 as XEP-0065 uses it: no
// authentication (method 0), CONNECT to a domain name (the 40 hex digit
// hash) and port 0.
const (
	socksVersion  = 5
	methodNone    = 0x00
	methodNoneOK  = 0xFF
	cmdConnect    = 1
	atypDomain    = 3
	repSucceeded  = 0
	repFailure    = 1
	repNotAllowed = 2
	repCmd        = 7
	repAtyp       = 8
)

var errHandshake = errors.New("proxy65: bad SOCKS5 handshake")

// socks5 reads the greeting and the CONNECT request and returns the
// destination address (the hash). On a request it refuses, it sends the
// refusal first.
func socks5(c net.Conn) (string, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return "", err
	}
	if hdr[0] != socksVersion || hdr[1] == 0 {
		return "", errHandshake
	}
	methods := make([]byte, hdr[1])
	if _, err := io.ReadFull(c, methods); err != nil {
		return "", err
	}
	ok := false
	for _, m := range methods {
		ok = ok || m == methodNone
	}
	if !ok {
		c.Write([]byte{socksVersion, methodNoneOK})
		return "", fmt.Errorf("%w: no acceptable method", errHandshake)
	}
	if _, err := c.Write([]byte{socksVersion, methodNone}); err != nil {
		return "", err
	}
	return readRequest(c)
}

// readRequest reads VER CMD RSV ATYP DST.ADDR DST.PORT.
func readRequest(r io.ReadWriter) (string, error) {
	var req [5]byte
	if _, err := io.ReadFull(r, req[:]); err != nil {
		return "", err
	}
	if req[0] != socksVersion {
		return "", errHandshake
	}
	if req[1] != cmdConnect {
		writeReply(r, repCmd, "")
		return "", fmt.Errorf("%w: command %d", errHandshake, req[1])
	}
	if req[3] != atypDomain {
		writeReply(r, repAtyp, "")
		return "", fmt.Errorf("%w: address type %d", errHandshake, req[3])
	}
	addr := make([]byte, int(req[4])+2)
	if _, err := io.ReadFull(r, addr); err != nil {
		return "", err
	}
	hash, port := string(addr[:req[4]]), addr[req[4]:]
	if port[0] != 0 || port[1] != 0 || !isHash(hash) {
		writeReply(r, repNotAllowed, "")
		return "", fmt.Errorf("%w: not a XEP-0065 destination", errHandshake)
	}
	return hash, nil
}

// isHash accepts 40 lowercase hex digits (a hex SHA-1).
func isHash(s string) bool {
	if len(s) != 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f') {
			return false
		}
	}
	return true
}

// writeReply sends VER REP RSV ATYP BND.ADDR BND.PORT, echoing the
// domain name as XEP-0065 asks.
func writeReply(w io.Writer, rep byte, addr string) error {
	b := []byte{socksVersion, rep, 0, atypDomain, byte(len(addr))}
	b = append(b, addr...)
	b = append(b, 0, 0)
	_, err := w.Write(b)
	return err
}

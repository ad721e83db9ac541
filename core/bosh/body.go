// Package bosh implements XMPP over BOSH (XEP-0124 1.11 and XEP-0206 1.4)
// for browser clients that cannot use WebSocket: an http.Handler on the
// HTTPS listener that turns a BOSH session into a session.Transport, so
// that core/session runs the same negotiation (SASL, bind), stream
// management, client state indication and limits as for a TCP client.
//
// # How a BOSH session maps onto a stream
//
// The session creation request (a <body/> without sid) becomes the stream
// header; the stanzas inside each later <body/> are handed to the
// session's stream reader (core/xmlstream) as they are, so the usual
// limits and XML restrictions apply; xmpp:restart='true' becomes a new
// stream header, and type='terminate' the end of the stream. What the
// session writes is buffered until it flushes, and then answers the
// oldest request that is held; the creation response carries the session
// attributes (sid, wait, hold, requests, inactivity, polling) and the
// first stream features.
//
// Requests are handled in rid order: a request whose rid is ahead waits
// (up to wait) for the ones before it, one more than 'requests' ahead
// ends the session, and a request with an rid already answered gets the
// same response again (retransmission after a lost response; the last
// 'requests' responses are kept). At most 'hold' requests are held: one
// more answers the oldest at once. A session with no request for
// 'inactivity' is lost (a resumable stream-management session detaches,
// as a cut TCP connection does). Acknowledgements (the ack attribute),
// pause and multiple streams per session are not supported and not
// advertised.
//
// # Limits
//
// A request body may carry at most MaxBodyBytes; more is refused with 413.
// Sessions are bounded by MaxSessions (503 beyond). What the server has
// for a client that does not poll is bounded by MaxPendingBytes: beyond,
// the session is lost.
//
// # Origins
//
// BOSH is plain cross-origin HTTP: requests carry no cookies or other
// ambient credentials (the session id is in the body, and the client
// authenticates with SASL inside the stream), so there is no request to
// forge. CORS headers let pages of the listener's own origin and of
// AllowedOrigins read the responses.
package bosh

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
)

// Namespaces of XEP-0124 and XEP-0206.
const (
	NSHTTPBind = "http://jabber.org/protocol/httpbind"
	NSXBOSH    = "urn:xmpp:xbosh"
)

// body is one parsed request <body/>.
type body struct {
	sid     string
	rid     int64
	hasRID  bool
	to      string
	lang    string
	ver     string
	wait    int
	hold    int
	typ     string // "" or "terminate"
	restart bool
	// inner is the body's content, the client's stanzas, as sent.
	inner []byte
}

var errBody = errors.New("bosh: malformed body")

// parseBody parses a request body: one <body/> of NSHTTPBind, nothing
// around it but white space.
func parseBody(raw []byte) (*body, error) {
	dec := xml.NewDecoder(bytes.NewReader(raw))
	dec.Strict = true
	var start xml.StartElement
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil, errBody
		}
		switch t := tok.(type) {
		case xml.ProcInst:
			if t.Target != "xml" {
				return nil, errBody
			}
			continue
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return nil, errBody
			}
			continue
		case xml.StartElement:
			start = t
		default:
			return nil, errBody
		}
		break
	}
	if start.Name.Space != NSHTTPBind || start.Name.Local != "body" {
		return nil, errBody
	}
	b := &body{}
	for _, a := range start.Attr {
		switch {
		case a.Name.Space == "" && a.Name.Local == "sid":
			b.sid = a.Value
		case a.Name.Space == "" && a.Name.Local == "rid":
			n, err := strconv.ParseInt(a.Value, 10, 64)
			if err != nil || n < 0 || n > 1<<53 {
				return nil, errBody
			}
			b.rid, b.hasRID = n, true
		case a.Name.Space == "" && a.Name.Local == "to":
			b.to = a.Value
		case a.Name.Space == "" && a.Name.Local == "ver":
			b.ver = a.Value
		case a.Name.Space == "" && a.Name.Local == "wait":
			n, err := strconv.Atoi(a.Value)
			if err != nil || n < 0 {
				return nil, errBody
			}
			b.wait = n
		case a.Name.Space == "" && a.Name.Local == "hold":
			n, err := strconv.Atoi(a.Value)
			if err != nil || n < 0 {
				return nil, errBody
			}
			b.hold = n
		case a.Name.Space == "" && a.Name.Local == "type":
			b.typ = a.Value
		case a.Name.Space == "http://www.w3.org/XML/1998/namespace" && a.Name.Local == "lang":
			b.lang = a.Value
		case a.Name.Space == NSXBOSH && a.Name.Local == "restart":
			b.restart = a.Value == "true" || a.Value == "1"
		}
	}
	if !b.hasRID {
		return nil, errBody
	}
	innerStart := dec.InputOffset()
	depth := 0
	for {
		before := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return nil, errBody
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			if depth == 0 {
				b.inner = raw[innerStart:before]
				goto rest
			}
			depth--
		case xml.CharData:
			if depth == 0 && len(bytes.TrimSpace(tok.(xml.CharData))) != 0 {
				return nil, errBody
			}
		case xml.Comment, xml.ProcInst, xml.Directive:
			return nil, errBody
		}
	}
rest:
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, errBody
		}
		if cd, ok := tok.(xml.CharData); !ok || len(bytes.TrimSpace(cd)) != 0 {
			return nil, errBody
		}
	}
	return b, nil
}

// streamHeader is the RFC 6120 header a session creation or restart
// stands for.
func streamHeader(to, lang string) []byte {
	b := []byte("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'")
	if to != "" {
		b = append(b, " to='"...)
		b = appendEscaped(b, to)
		b = append(b, '\'')
	}
	if lang != "" {
		b = append(b, " xml:lang='"...)
		b = appendEscaped(b, lang)
		b = append(b, '\'')
	}
	return append(b, '>')
}

func appendEscaped(b []byte, s string) []byte {
	w := bytes.NewBuffer(b)
	_ = xml.EscapeText(w, []byte(s))
	return w.Bytes()
}

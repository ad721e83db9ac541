package component

import (
	"bytes"
	"crypto/sha1" // #nosec G505 -- XEP-0114 defines the handshake as SHA-1
	"crypto/subtle"
	"encoding/hex"
	"encoding/xml"
	"strings"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/xmlstream"
)

// Digest is the handshake value XEP-0114 §3 defines: the lowercase hex
// SHA-1 of the stream id followed by the shared secret.
func Digest(streamID string, secret []byte) string {
	h := sha1.New() // #nosec G401 -- the protocol's choice, not ours
	h.Write([]byte(streamID))
	h.Write(secret)
	return hex.EncodeToString(h.Sum(nil))
}

// validDigest compares what a component sent with the expected digest in
// constant time (case-insensitively: hex digits may come in upper case).
func validDigest(streamID string, secret []byte, got string) bool {
	want := Digest(streamID, secret)
	return subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(got))) == 1
}

// maxDigestText bounds the handshake's text: a SHA-1 in hex is 40 bytes.
const maxDigestText = 64

// opening reads a component's stream header and returns the domain its
// 'to' names. Errors are stream errors to send (after the server's own
// header) or the connection's.
func opening(rd *xmlstream.Reader) (jid.JID, error) {
	h, err := rd.Header()
	if err != nil {
		return jid.JID{}, err
	}
	if h.Namespace != NS {
		return jid.JID{}, &stanza.StreamError{Condition: stanza.StreamInvalidNamespace, Text: "a component stream's namespace is " + NS}
	}
	d, err := jid.Parse(h.To)
	if h.To == "" || err != nil || d.Local() != "" || !d.IsBare() {
		return jid.JID{}, &stanza.StreamError{Condition: stanza.StreamHostUnknown, Text: "'to' must name the component's domain"}
	}
	return d, nil
}

// readHandshake reads the <handshake/> element that follows the header and
// returns its text, the digest the component claims.
func readHandshake(rd *xmlstream.Reader) (string, error) {
	el, err := rd.Next()
	if err != nil {
		return "", err
	}
	if el.Name.Local != "handshake" || (el.Name.Space != NS && el.Name.Space != stanza.NSClient) {
		return "", &stanza.StreamError{Condition: stanza.StreamNotAuthorized, Text: "expected <handshake/>"}
	}
	for _, n := range el.Nodes {
		if n.Elem != nil {
			return "", &stanza.StreamError{Condition: stanza.StreamNotAuthorized, Text: "the handshake holds only the digest"}
		}
	}
	text := strings.TrimSpace(el.Text())
	if len(text) > maxDigestText {
		return "", &stanza.StreamError{Condition: stanza.StreamNotAuthorized, Text: "the digest is too long"}
	}
	return text, nil
}

// header is the server's stream header for a component.
func header(from, id string) []byte {
	var b bytes.Buffer
	b.WriteString("<?xml version='1.0'?><stream:stream xmlns:stream='" + stanza.NSStream + "' xmlns='" + NS + "'")
	if from != "" {
		b.WriteString(" from='")
		_ = xml.EscapeText(&b, []byte(from))
		b.WriteString("'")
	}
	b.WriteString(" id='")
	_ = xml.EscapeText(&b, []byte(id))
	b.WriteString("'>")
	return b.Bytes()
}

// toClient moves an element from a component stream into the server's
// namespace: jabber:component:accept becomes jabber:client, in the
// element and every descendant, so that the rest of the server sees an
// ordinary stanza. Writing with jabber:client as the parent namespace
// (stanza.Element.AppendXML) maps it back.
func toClient(el *stanza.Element) {
	if el.Name.Space == NS {
		el.Name.Space = stanza.NSClient
	}
	for _, n := range el.Nodes {
		if n.Elem != nil {
			toClient(n.Elem)
		}
	}
}

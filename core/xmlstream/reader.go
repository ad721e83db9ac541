// Package xmlstream reads an XMPP stream: the stream header, then one
// top-level element (stanza or nonza) at a time, each parsed once into a
// stanza.Element.
//
// It accepts only the restricted XML that RFC 6120 §11.1 allows: no comments,
// no processing instructions (beyond the XML declaration that may open a
// stream), no DTDs, and no entity references other than the five predefined
// ones. Every element is bounded: bytes per top-level element, nesting depth
// and attributes per element come from Limits, and the input is cut off
// before a single oversized token can be buffered whole. Violations are
// returned as *stanza.StreamError values with the condition to send.
//
// The tokenizer is encoding/xml's (strict mode): it is well tested and fuzzed
// by the standard library; this package adds the XMPP restrictions and
// budgets on top, behind an API that does not expose it, so a faster
// tokenizer can replace it without changing callers.
//
// Next first tries two fast paths, which read what is already buffered
// (after the one read the tokenizer would begin with) and apply only
// between top-level elements while the tokenizer holds no byte it has read
// ahead; what they consume is counted so that the tokenizer's offsets and
// the size budget stay as if it had read it. smNonza takes the stream
// management nonzas <r/> and <a h/> in the exact forms clients write.
// fastElement takes any whole top-level element (after white space) in
// the form clients write: both quotes, any white space inside tags,
// unprefixed ASCII names, xmlns declarations (the stream header's default
// namespace applies without one), xml:* attributes, the five predefined
// entities and numeric references to XML characters, text between
// children; it parses it in one pass (canonParser in its stream form, with
// the element's parts allocated at once) and builds the very element the
// tokenizer path would. Anything else, at any doubt, goes to the tokenizer
// path, which gives every error: an element not yet wholly buffered or
// over a limit, prefixes other than xml: and prefix declarations, non-ASCII
// names, comments, CDATA, processing instructions, other entities, raw CR,
// invalid UTF-8 or characters XML forbids, "]]>" in text, duplicate
// attributes. FuzzReaderFast compares both paths on the same input split
// into reads at arbitrary points: same elements, same errors.
//
// Reader.Idle lets the tokenizer go while a stream is silent (a session
// waiting for its client holds no encoding/xml state); Next opens a new
// one in the same state, from a copy of the stream header's namespace
// declarations, when input comes.
//
// ParseElement, which reads back what the server stored (archived, offline
// and private XML), first tries a one-pass parser of exactly the form
// stanza.AppendXML writes (see parseCanonical); anything else goes through
// the full reader. The fast path accepts a strict subset and builds the
// same element, which FuzzParseCanonical checks against the full reader.
package xmlstream

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"kontor.im/kontor/core/stanza"
)

// Limits bound what one peer can make the server hold in memory.
type Limits struct {
	// MaxStanzaBytes is the largest top-level element, in bytes of input.
	MaxStanzaBytes int
	// MaxDepth is the deepest nesting inside a top-level element (the
	// top-level element itself is depth 1).
	MaxDepth int
	// MaxAttrs is the most attributes (including namespace declarations)
	// on one element.
	MaxAttrs int
}

// DefaultLimits are the limits used when a field is zero.
var DefaultLimits = Limits{MaxStanzaBytes: 256 << 10, MaxDepth: 32, MaxAttrs: 64}

func (l Limits) withDefaults() Limits {
	if l.MaxStanzaBytes <= 0 {
		l.MaxStanzaBytes = DefaultLimits.MaxStanzaBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultLimits.MaxDepth
	}
	if l.MaxAttrs <= 0 {
		l.MaxAttrs = DefaultLimits.MaxAttrs
	}
	return l
}

// Header is what a stream header said.
type Header struct {
	To, From, ID, Version, Lang string
	// Namespace is the default namespace the header declared (jabber:client
	// for a client stream).
	Namespace string
}

const bufSize = 4096

// Reader reads one stream. After a stream restart (after STARTTLS or SASL)
// the caller makes a new Reader.
type Reader struct {
	lim    Limits
	lr     limitReader
	br     lazyReader
	dec    *xml.Decoder
	header bool
	// scopes holds the namespace URIs declared in scope, innermost last;
	// marks[i] is len(scopes) before element i of the open path.
	scopes []string
	marks  []int
	stack  []*stanza.Element
	// skipped counts the bytes consumed without the tokenizer: leading
	// white space before the header, and nonzas taken by the fast path
	// (see smNonza and fastElement).
	skipped int64
	// defaultNS is the default namespace the stream header declared (""
	// if none): that of an unprefixed top-level element without xmlns.
	defaultNS string
	// failed: Next returned an error; the fast paths stay out of the way
	// of whatever the tokenizer says next.
	failed bool
	// tokenizerOnly turns the fast paths off (for differential tests).
	tokenizerOnly bool
	// decls are the stream header's namespace declarations, in order
	// (prefix "" for the default namespace), and streamPrefix the prefix
	// of its name: enough to open a new tokenizer in the same state (see
	// Idle). canIdle is false when the header's form does not allow that.
	decls        []xml.Attr
	streamPrefix string
	canIdle      bool
}

// NewReader reads a stream from r.
func NewReader(r io.Reader, lim Limits) *Reader {
	lim = lim.withDefaults()
	rd := &Reader{lim: lim}
	rd.lr = limitReader{r: r}
	rd.lr.limit = int64(lim.MaxStanzaBytes) + bufSize
	rd.br.r = &rd.lr
	rd.dec = xml.NewDecoder(&rd.br)
	rd.dec.Strict = true
	rd.scopes = append(rd.scopes, stanza.NSXML)
	return rd
}

// lazyReader is the buffer between the connection and the tokenizer (an
// io.ByteReader, so that encoding/xml adds no buffer of its own). It reads
// into a bufSize buffer taken from a pool, and an idle stream holds none:
// the caller waits for input with Reader.Wait, which gives the buffer
// back and reads into a tiny array inside the Reader, or gives it back
// with Reader.Release and waits by other means. Thousands of idle
// sessions thus hold a few bytes each instead of 4 KiB. (A read inside
// an element, or during negotiation, may wait holding the buffer.)
type lazyReader struct {
	r    io.Reader
	big  *[bufSize]byte // from bufPool while input flows
	buf  []byte         // the current window; buf[pos:] is unread
	pos  int
	done int64 // bytes of earlier windows, all consumed
	full bool  // the last read filled its buffer
	err  error
	tiny [tinySize]byte
}

// tinySize is what Wait reads: a whitespace keepalive, or the first bytes
// of an element (the rest follows into a pooled buffer).
const tinySize = 16

var bufPool = sync.Pool{New: func() any { return new([bufSize]byte) }}

func (l *lazyReader) fill() error {
	if l.err != nil {
		return l.err
	}
	if l.big == nil {
		l.big = bufPool.Get().(*[bufSize]byte)
	}
	return l.read(l.big[:])
}

// wait gives the buffer back and reads into the tiny array.
func (l *lazyReader) wait() {
	l.release()
	if l.err == nil {
		_ = l.read(l.tiny[:])
	}
}

// release gives the pooled buffer back if everything in it was consumed.
func (l *lazyReader) release() {
	if l.big != nil && l.pos >= len(l.buf) {
		bufPool.Put(l.big)
		l.done += int64(len(l.buf))
		l.big, l.buf, l.pos = nil, nil, 0
	}
}

func (l *lazyReader) read(dst []byte) error {
	l.done += int64(len(l.buf))
	l.buf, l.pos = nil, 0
	for range 100 { // io.Reader allows empty reads; do not spin forever
		n, err := l.r.Read(dst)
		if n > 0 {
			l.buf, l.full = dst[:n], n == len(dst)
			if err != nil {
				l.err = err // returned once the data is consumed
			}
			return nil
		}
		if err != nil {
			l.err = err
			l.release()
			return err
		}
	}
	l.err = io.ErrNoProgress
	l.release()
	return l.err
}

func (l *lazyReader) ReadByte() (byte, error) {
	if l.pos >= len(l.buf) {
		if err := l.fill(); err != nil {
			return 0, err
		}
	}
	b := l.buf[l.pos]
	l.pos++
	return b, nil
}

func (l *lazyReader) Read(p []byte) (int, error) {
	if l.pos >= len(l.buf) {
		if err := l.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, l.buf[l.pos:])
	l.pos += n
	return n, nil
}

// consumed is the number of bytes handed out so far.
func (l *lazyReader) consumed() int64 { return l.done + int64(l.pos) }

// Buffered reports whether input is (or may be) buffered: the next Next
// starts without reading from the connection (it may still read for the
// rest of an element), or the last read from the connection filled the
// buffer, so the connection may hold more without waiting for the peer.
// False means that the reader has consumed everything and the last read
// was short.
func (r *Reader) Buffered() bool { return r.br.pos < len(r.br.buf) || r.br.full }

// Wait reads from the connection if no input is buffered (see Buffered),
// so that a caller can wait for the peer outside Next: the goroutine that
// waits then needs no stack for the tokenizer's frames, and the Reader
// holds no pooled buffer while it waits. An error is kept and returned by
// the next Next as it would have been.
func (r *Reader) Wait() {
	if !r.Buffered() {
		r.br.wait()
	}
}

// Release gives the read buffer back to its pool if everything read was
// consumed (a caller that waits for input by other means than Wait calls
// it first); the next read takes one again.
func (r *Reader) Release() { r.br.release() }

// Idle is Release for a stream that may stay silent for long: between
// top-level elements, with nothing read ahead, it also lets the tokenizer
// go (encoding/xml's Decoder with its namespace and element stacks, about
// 1 KiB), and Next opens a new one in the same state when input comes: it
// feeds the new Decoder a copy of the stream header's name and namespace
// declarations, then the stream. That costs a few microseconds, so the
// caller uses Idle only where it expects to wait long (a session's reader
// after its warm wait), and Release otherwise.
func (r *Reader) Idle() {
	r.br.release()
	if r.dec != nil && r.header && r.canIdle && !r.failed && len(r.stack) == 0 && r.dec.InputOffset()+r.skipped == r.br.consumed() {
		r.dec = nil
	}
}

// reopen opens a tokenizer in the state Idle let go: inside the stream
// header, with its namespaces declared, and offsets in step.
func (r *Reader) reopen() error {
	var b strings.Builder
	b.WriteString("<")
	b.WriteString(r.streamPrefix)
	b.WriteString(":stream")
	for _, d := range r.decls {
		b.WriteString(" xmlns")
		if d.Name.Local != "" {
			b.WriteString(":")
			b.WriteString(d.Name.Local)
		}
		b.WriteString("='")
		xmlEscapeAttr(&b, d.Value)
		b.WriteString("'")
	}
	b.WriteString(">")
	src := &headerThen{s: b.String(), br: &r.br}
	dec := xml.NewDecoder(src)
	dec.Strict = true
	tok, err := dec.Token()
	if _, ok := tok.(xml.StartElement); err != nil || !ok || src.i != len(src.s) {
		return fmt.Errorf("xmlstream: reopening the tokenizer: %v", err)
	}
	r.dec = dec
	// InputOffset counts the copied header; the stream's own bytes start
	// after it.
	r.skipped = r.br.consumed() - dec.InputOffset()
	return nil
}

// headerThen hands out s, then what br has (an io.ByteReader, so that the
// Decoder adds no buffer of its own and never reads ahead).
type headerThen struct {
	s  string
	i  int
	br *lazyReader
}

func (h *headerThen) ReadByte() (byte, error) {
	if h.i < len(h.s) {
		h.i++
		return h.s[h.i-1], nil
	}
	return h.br.ReadByte()
}

func (h *headerThen) Read(p []byte) (int, error) {
	if h.i < len(h.s) {
		n := copy(p, h.s[h.i:])
		h.i += n
		return n, nil
	}
	return h.br.Read(p)
}

// xmlEscapeAttr writes v escaped for an attribute value in single quotes.
func xmlEscapeAttr(b *strings.Builder, v string) {
	for _, c := range []byte(v) {
		switch c {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '\'':
			b.WriteString("&apos;")
		case '"':
			b.WriteString("&quot;")
		case '\t':
			b.WriteString("&#x9;")
		case '\n':
			b.WriteString("&#xA;")
		case '\r':
			b.WriteString("&#xD;")
		default:
			b.WriteByte(c)
		}
	}
}

// peek returns the next byte without consuming it.
func (l *lazyReader) peek() (byte, error) {
	if l.pos >= len(l.buf) {
		if err := l.fill(); err != nil {
			return 0, err
		}
	}
	return l.buf[l.pos], nil
}

// limitReader stops reading at an absolute offset, so that the decoder never
// buffers more than one element's budget.
type limitReader struct {
	r     io.Reader
	n     int64 // bytes read so far
	limit int64
}

var errBudget = errors.New("xmlstream: element exceeds size limit")

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n >= l.limit {
		return 0, errBudget
	}
	if rem := l.limit - l.n; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	return n, err
}

// rebudget allows the next element MaxStanzaBytes from the current offset.
func (r *Reader) rebudget() {
	r.lr.limit = r.dec.InputOffset() + r.skipped + int64(r.lim.MaxStanzaBytes) + bufSize
}

func streamErr(cond, text string) error {
	return &stanza.StreamError{Condition: cond, Text: text}
}

// classify turns a tokenizer error into a stream error; I/O errors from the
// connection pass through unchanged.
func (r *Reader) classify(err error) error {
	if errors.Is(err, errBudget) {
		return streamErr(stanza.StreamPolicyViolation, "stanza too large")
	}
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		msg := se.Msg
		switch {
		case strings.Contains(msg, "entity"):
			return streamErr(stanza.StreamRestrictedXML, "entity references are not allowed")
		case strings.Contains(msg, "CharsetReader"), strings.Contains(msg, "encoding"):
			return streamErr(stanza.StreamUnsupportedEncoding, "only UTF-8 is supported")
		case strings.Contains(msg, "unexpected EOF"):
			return io.ErrUnexpectedEOF
		}
		return streamErr(stanza.StreamNotWellFormed, msg)
	}
	if strings.HasPrefix(err.Error(), "xml: encoding") {
		return streamErr(stanza.StreamUnsupportedEncoding, "only UTF-8 is supported")
	}
	return err
}

// Header reads the optional XML declaration and the stream header.
func (r *Reader) Header() (Header, error) {
	var h Header
	// Anything but markup (an HTTP request, a TLS handshake on the
	// STARTTLS port) would keep the tokenizer waiting for a '<' that never
	// comes: look at the first byte that is not white space.
	for {
		b, err := r.br.peek()
		if err != nil {
			return h, r.classify(err)
		}
		if b == ' ' || b == '\t' || b == '\r' || b == '\n' {
			r.br.pos++
			r.skipped++
			continue
		}
		if b != '<' {
			return h, streamErr(stanza.StreamNotWellFormed, "this is not an XMPP stream")
		}
		break
	}
	first := true
	for {
		tok, err := r.dec.Token()
		if err != nil {
			return h, r.classify(err)
		}
		switch t := tok.(type) {
		case xml.ProcInst:
			if !first || t.Target != "xml" {
				return h, streamErr(stanza.StreamRestrictedXML, "processing instructions are not allowed")
			}
			if enc := procInstParam(string(t.Inst), "encoding"); enc != "" && !strings.EqualFold(enc, "UTF-8") {
				return h, streamErr(stanza.StreamUnsupportedEncoding, "only UTF-8 is supported")
			}
		case xml.CharData:
			if !isSpace(t) {
				return h, streamErr(stanza.StreamNotWellFormed, "text before the stream header")
			}
		case xml.StartElement:
			if t.Name.Local != "stream" {
				return h, streamErr(stanza.StreamBadFormat, "expected a stream header")
			}
			if t.Name.Space != stanza.NSStream {
				return h, streamErr(stanza.StreamInvalidNamespace, "the stream namespace must be "+stanza.NSStream)
			}
			if len(t.Attr) > r.lim.MaxAttrs {
				return h, streamErr(stanza.StreamPolicyViolation, "too many attributes")
			}
			streamPrefixes := 0
			for _, a := range t.Attr {
				switch {
				case a.Name.Space == "" && a.Name.Local == "xmlns":
					h.Namespace = a.Value
					r.defaultNS = a.Value
					r.scopes = append(r.scopes, a.Value)
					r.decls = append(r.decls, xml.Attr{Value: a.Value})
				case a.Name.Space == "xmlns":
					r.scopes = append(r.scopes, a.Value)
					r.decls = append(r.decls, xml.Attr{Name: xml.Name{Local: a.Name.Local}, Value: a.Value})
					if a.Value == stanza.NSStream {
						r.streamPrefix = a.Name.Local
						streamPrefixes++
					}
				case a.Name.Space == stanza.NSXML && a.Name.Local == "lang":
					h.Lang = a.Value
				case a.Name.Space == "":
					switch a.Name.Local {
					case "to":
						h.To = a.Value
					case "from":
						h.From = a.Value
					case "id":
						h.ID = a.Value
					case "version":
						h.Version = a.Value
					}
				}
			}
			// The tokenizer can be replaced (Idle) when the header's name
			// is prefix:stream with exactly one declaration of that prefix,
			// and the default namespace is not the streams one.
			r.canIdle = streamPrefixes == 1 && r.defaultNS != stanza.NSStream && r.streamPrefix != "xmlns" && r.streamPrefix != "xml"
			r.header = true
			r.rebudget()
			return h, nil
		case xml.Comment:
			return h, streamErr(stanza.StreamRestrictedXML, "comments are not allowed")
		case xml.Directive:
			return h, streamErr(stanza.StreamRestrictedXML, "DTDs are not allowed")
		default:
			return h, streamErr(stanza.StreamNotWellFormed, "unexpected token before the stream header")
		}
		first = false
	}
}

// Next returns the next top-level element. It returns io.EOF when the peer
// closed the stream with </stream:stream>, a *stanza.StreamError for input
// that breaks the rules, and the connection's error otherwise.
func (r *Reader) Next() (*stanza.Element, error) {
	if !r.header {
		return nil, errors.New("xmlstream: Next before Header")
	}
	if r.dec == nil {
		if err := r.reopen(); err != nil {
			r.failed = true
			return nil, err
		}
	}
	if r.br.pos >= len(r.br.buf) && r.inSync() {
		// The tokenizer would begin with this read: make it here, so
		// that the fast paths see what came (an error is kept for the
		// tokenizer to return).
		_ = r.br.fill()
	}
	if el := r.smNonza(); el != nil {
		return el, nil
	}
	if el := r.fastElement(); el != nil {
		return el, nil
	}
	el, err := r.next()
	if err != nil {
		r.failed = true
	}
	return el, err
}

// next reads the next top-level element with the tokenizer.
func (r *Reader) next() (*stanza.Element, error) {
	var start int64
	for {
		if len(r.stack) == 0 {
			start = r.dec.InputOffset()
		}
		tok, err := r.dec.Token()
		if err != nil {
			r.stack = r.stack[:0]
			return nil, r.classify(err)
		}
		if len(r.stack) > 0 && r.dec.InputOffset()-start > int64(r.lim.MaxStanzaBytes) {
			return nil, streamErr(stanza.StreamPolicyViolation, "stanza too large")
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(r.stack) >= r.lim.MaxDepth {
				return nil, streamErr(stanza.StreamPolicyViolation, "elements nested too deep")
			}
			if len(t.Attr) > r.lim.MaxAttrs {
				return nil, streamErr(stanza.StreamPolicyViolation, "too many attributes")
			}
			el, err := r.element(t)
			if err != nil {
				return nil, err
			}
			if n := len(r.stack); n > 0 {
				parent := r.stack[n-1]
				parent.Nodes = append(parent.Nodes, stanza.Node{Elem: el})
			}
			r.stack = append(r.stack, el)
		case xml.EndElement:
			n := len(r.stack)
			if n == 0 {
				// </stream:stream>; the tokenizer has checked it matches.
				return nil, io.EOF
			}
			r.scopes = r.scopes[:r.marks[n-1]]
			r.marks = r.marks[:n-1]
			el := r.stack[n-1]
			r.stack[n-1] = nil
			r.stack = r.stack[:n-1]
			if n == 1 {
				r.rebudget()
				return el, nil
			}
		case xml.CharData:
			if n := len(r.stack); n > 0 {
				parent := r.stack[n-1]
				if k := len(parent.Nodes); k > 0 && parent.Nodes[k-1].Elem == nil {
					parent.Nodes[k-1].Text += string(t)
				} else {
					parent.Nodes = append(parent.Nodes, stanza.Node{Text: string(t)})
				}
			} else if !isSpace(t) {
				return nil, streamErr(stanza.StreamNotWellFormed, "text outside a stanza")
			} else {
				// Whitespace keepalive.
				r.rebudget()
			}
		case xml.Comment:
			return nil, streamErr(stanza.StreamRestrictedXML, "comments are not allowed")
		case xml.ProcInst:
			return nil, streamErr(stanza.StreamRestrictedXML, "processing instructions are not allowed")
		case xml.Directive:
			return nil, streamErr(stanza.StreamRestrictedXML, "DTDs are not allowed")
		}
	}
}

// nsSM is the namespace of stream management (XEP-0198).
const nsSM = "urn:xmpp:sm:3"

// smNonza is a fast path for the two nonzas of stream management that a
// client sends most: <r xmlns='urn:xmpp:sm:3'/> (an ack request, often
// after every message) and <a xmlns='urn:xmpp:sm:3' h='N'/> (an answer).
// When the next bytes already buffered are exactly one of them, in the
// form clients write (either quote, the namespace first, h of 1 to 10
// digits, no white space but the one space before each attribute), it
// consumes them without the tokenizer and returns the element the
// tokenizer would have built; anything else (another form, an element
// split across reads, input the tokenizer has begun) returns nil and
// takes the usual path, which applies every check. It is only tried
// between top-level elements when the tokenizer holds no byte it has
// read ahead: its offset plus what was skipped equals what the buffer
// handed out.
func (r *Reader) smNonza() *stanza.Element {
	b := r.br.buf[r.br.pos:]
	if len(b) < 26 || b[0] != '<' || b[2] != ' ' || (b[1] != 'r' && b[1] != 'a') {
		return nil
	}
	if !r.inSync() {
		return nil
	}
	// b[3:] is xmlns='urn:xmpp:sm:3'
	q := b[9]
	if string(b[3:9]) != "xmlns=" || (q != '\'' && q != '"') || string(b[10:23]) != nsSM || b[23] != q {
		return nil
	}
	rest := b[24:]
	var el *stanza.Element
	switch b[1] {
	case 'r':
		if string(rest[:2]) != "/>" {
			return nil
		}
		el = &stanza.Element{Name: stanza.Name{Space: nsSM, Local: "r"}}
		rest = rest[2:]
	case 'a':
		// ' h=' q digits q '/>'
		if len(rest) < 8 || rest[0] != ' ' || rest[1] != 'h' || rest[2] != '=' || (rest[3] != '\'' && rest[3] != '"') {
			return nil
		}
		hq := rest[3]
		d := rest[4:]
		n := 0
		for n < len(d) && n <= 10 && d[n] >= '0' && d[n] <= '9' {
			n++
		}
		if n == 0 || n > 10 || len(d) < n+3 || d[n] != hq || d[n+1] != '/' || d[n+2] != '>' {
			return nil
		}
		el = &stanza.Element{Name: stanza.Name{Space: nsSM, Local: "a"},
			Attr: []stanza.Attr{{Name: stanza.Name{Local: "h"}, Value: string(d[:n])}}}
		rest = d[n+3:]
	}
	used := len(b) - len(rest)
	r.br.pos += used
	r.skipped += int64(used)
	r.rebudget()
	return el
}

// inSync reports whether a fast path may take the next bytes: Next has
// returned no error, the tokenizer is between top-level elements and
// holds no byte it has read ahead (its offset plus what was skipped
// equals what the buffer handed out).
func (r *Reader) inSync() bool {
	return !r.tokenizerOnly && !r.failed && len(r.stack) == 0 && r.dec.InputOffset()+r.skipped == r.br.consumed()
}

// fastElement is the general fast path of Next. White space that fills the
// buffer (a keepalive) it consumes, reading on as the tokenizer would.
// When the bytes buffered then hold a whole top-level element (after
// optional white space) in the form that clients write, it parses it in
// one pass (canonParser in its stream form), consumes it without the
// tokenizer (as smNonza does) and returns the element the tokenizer path
// would have built. At any doubt it returns nil and consumes nothing more,
// and the tokenizer path reads the input and gives every error: the
// element is incomplete in the buffer, or over MaxStanzaBytes, MaxDepth or
// MaxAttrs; it has a prefix other than xml: on an attribute (or any prefix
// declaration), a name that is not ASCII letters, digits, '_', '-' and '.'
// (starting with a letter or '_'), a comment, CDATA section or processing
// instruction, an entity other than the five predefined ones and numeric
// references to XML characters, a raw CR anywhere, invalid UTF-8 or a
// character XML forbids, "]]>" in text, a duplicate attribute, or anything
// not well formed.
func (r *Reader) fastElement() (el *stanza.Element) {
	if !r.inSync() {
		return nil
	}
	var b []byte
	ws, text := 0, false
	defer func() {
		// If what follows text the fast path consumed is left to the
		// tokenizer, it does not see that text: give the budget it
		// would have given after it.
		if text && el == nil {
			r.rebudget()
		}
	}()
	for {
		b = r.br.buf[r.br.pos:]
		ws = 0
		for ws < len(b) && isSpaceByte(b[ws]) {
			ws++
		}
		if ws == 0 || ws < len(b) {
			break
		}
		// Only white space (a keepalive): the tokenizer would read on
		// for what follows. So do the same, without a new budget (the
		// tokenizer gives one only at the end of the text).
		r.br.pos += ws
		r.skipped += int64(ws)
		text = true
		if r.br.fill() != nil {
			return nil
		}
	}
	b = b[ws:]
	if len(b) < 4 || b[0] != '<' || !isNameStart(b[1]) {
		return nil
	}
	n, z := elementEnd(b, r.lim.MaxStanzaBytes)
	if n == 0 {
		return nil
	}
	p := canonParser{s: string(b[:n]), lim: r.lim, stream: true}
	p.prealloc(z)
	el, ok := p.element(r.defaultNS, 1)
	if !ok || p.i != n {
		return nil
	}
	used := ws + n
	r.br.pos += used
	r.skipped += int64(used)
	r.rebudget()
	return el
}

// sizes counts what an element holds (an estimate, as elementEnd
// does not check the syntax), for canonParser to allocate at once.
type sizes struct {
	elems  int // start tags
	values int // quoted values: attributes and namespace declarations
	texts  int // runs of text between tags
}

// elementEnd returns the length of the element that starts b, found by
// its tags alone (quoted attribute values skipped), or 0 if it does not
// end within b and within max bytes, or its markup is anything but start
// and end tags. It only delimits (and counts): canonParser checks
// everything.
func elementEnd(b []byte, max int) (int, sizes) {
	var z sizes
	if len(b) > max {
		b = b[:max]
	}
	depth, i := 0, 0
	for i < len(b) {
		if b[i] != '<' {
			k := bytes.IndexByte(b[i:], '<')
			if k < 0 {
				return 0, z
			}
			i += k
			z.texts++
		}
		if i+1 >= len(b) {
			return 0, z
		}
		switch b[i+1] {
		case '/':
			k := bytes.IndexByte(b[i:], '>')
			if k < 0 {
				return 0, z
			}
			i += k + 1
			if depth--; depth == 0 {
				return i, z
			}
			if depth < 0 {
				return 0, z
			}
			continue
		case '!', '?':
			return 0, z
		}
		// A start tag: to its '>', skipping quoted values.
		z.elems++
		i++
		for {
			if i >= len(b) {
				return 0, z
			}
			c := b[i]
			if c == '\'' || c == '"' {
				k := bytes.IndexByte(b[i+1:], c)
				if k < 0 {
					return 0, z
				}
				i += k + 2
				z.values++
				continue
			}
			i++
			if c == '>' {
				if b[i-2] != '/' {
					depth++
				} else if depth == 0 {
					return i, z
				}
				break
			}
		}
	}
	return 0, z
}

// element converts a start token, checking that every prefix was declared.
func (r *Reader) element(t xml.StartElement) (*stanza.Element, error) {
	r.marks = append(r.marks, len(r.scopes))
	el := &stanza.Element{Name: stanza.Name{Space: t.Name.Space, Local: t.Name.Local}}
	nattr := 0
	if !nameStart(t.Name.Local) {
		return nil, streamErr(stanza.StreamNotWellFormed, "an element name does not start with a letter or underscore")
	}
	for _, a := range t.Attr {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			if a.Name.Space == "xmlns" && a.Value == "" {
				// Namespaces in XML 1.0 §5: a prefix cannot be undeclared.
				return nil, streamErr(stanza.StreamNotWellFormed, "a namespace prefix is bound to an empty name")
			}
			r.scopes = append(r.scopes, a.Value)
			continue
		}
		if !nameStart(a.Name.Local) {
			return nil, streamErr(stanza.StreamNotWellFormed, "an attribute name does not start with a letter or underscore")
		}
		nattr++
	}
	if !r.declared(t.Name.Space) {
		return nil, streamErr(stanza.StreamNotWellFormed, "undeclared namespace prefix")
	}
	if nattr > 0 {
		el.Attr = make([]stanza.Attr, 0, nattr)
		for _, a := range t.Attr {
			if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
				continue
			}
			if a.Name.Space != "" && !r.declared(a.Name.Space) {
				return nil, streamErr(stanza.StreamNotWellFormed, "undeclared namespace prefix")
			}
			for _, b := range el.Attr {
				if b.Name.Space == a.Name.Space && b.Name.Local == a.Name.Local {
					return nil, streamErr(stanza.StreamNotWellFormed, "duplicate attribute")
				}
			}
			el.Attr = append(el.Attr, stanza.Attr{Name: stanza.Name{Space: a.Name.Space, Local: a.Name.Local}, Value: a.Value})
		}
	}
	return el, nil
}

// nameStart reports whether a local name starts as an XML name must
// (NameStartChar, and no colon since the prefix is split off).
// encoding/xml checks a whole name, but not the part after a prefix:
// "x:0" came through as the local name "0", which serialises as an
// attribute no parser reads back.
func nameStart(local string) bool {
	if local == "" {
		return false
	}
	c := local[0]
	return c >= 0x80 || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
}

// declared reports whether space is a namespace in scope. encoding/xml
// leaves an undeclared prefix in Name.Space as it was written, so a space
// that no declaration in scope produced came from an undeclared prefix.
func (r *Reader) declared(space string) bool {
	if space == "" {
		return true
	}
	for i := len(r.scopes) - 1; i >= 0; i-- {
		if r.scopes[i] == space {
			return true
		}
	}
	return false
}

func isSpace(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

func procInstParam(s, param string) string {
	i := strings.Index(s, param)
	if i < 0 {
		return ""
	}
	s = strings.TrimLeft(s[i+len(param):], " \t\r\n")
	if !strings.HasPrefix(s, "=") {
		return ""
	}
	s = strings.TrimLeft(s[1:], " \t\r\n")
	if len(s) == 0 || (s[0] != '\'' && s[0] != '"') {
		return ""
	}
	q := s[0]
	s = s[1:]
	if j := strings.IndexByte(s, q); j >= 0 {
		return s[:j]
	}
	return ""
}

// ParseElement parses one serialised element (as AppendXML wrote it, with
// its namespace declared), within the limits: the way to read back a stanza
// that was stored. Input in exactly the form AppendXML writes takes a fast
// path (parseCanonical) that builds the same element; anything else goes
// through the full reader.
func ParseElement(b []byte, lim Limits) (*stanza.Element, error) {
	if el, ok := parseCanonical(b, lim.withDefaults()); ok {
		return el, nil
	}
	const open = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
	rd := NewReader(io.MultiReader(strings.NewReader(open), bytes.NewReader(b)), lim)
	if _, err := rd.Header(); err != nil {
		return nil, err
	}
	el, err := rd.Next()
	if err != nil {
		return nil, err
	}
	return el, nil
}

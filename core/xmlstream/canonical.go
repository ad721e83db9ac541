package xmlstream

import (
	"strings"
	"unicode/utf8"

	"kontor.im/kontor/core/stanza"
)

// parseCanonical parses b if it is exactly in the form stanza.AppendXML
// writes (with jabber:client as the enclosing default namespace), and
// reports false for anything else, leaving it to the full reader.
//
// Reading back stored stanzas (a MAM page is fifty of them) through
// encoding/xml cost more than everything else on the page, decryption
// included; this path is a single pass over the bytes with one string
// conversion. It accepts a strict subset of what the full reader accepts
// and must build the very same element for it (FuzzParseCanonical checks
// both): unprefixed elements; attributes written as name='value' after one
// space, unprefixed or xml:*; xmlns='...' declarations; only the escapes
// AppendXML writes (&lt; &gt; &amp; &apos; &quot; &#x9; &#xA; &#xD;);
// valid UTF-8 of XML characters without raw CR, and without raw tab or
// newline in attribute values (where XML would normalise them); nothing
// after the root element. Whatever else it sees (comments, CDATA, other
// quoting or spacing, prefixes, numeric references, any limit reached)
// sends the input to the full reader, which accepts or rejects it as
// before.
func parseCanonical(b []byte, lim Limits) (*stanza.Element, bool) {
	if len(b) > lim.MaxStanzaBytes || len(b) < 4 || b[0] != '<' {
		return nil, false
	}
	n, z := elementEnd(b, lim.MaxStanzaBytes)
	if n != len(b) {
		return nil, false
	}
	p := canonParser{s: string(b), lim: lim}
	p.prealloc(z)
	el, ok := p.element(stanza.NSClient, 1)
	if !ok || p.i != len(p.s) {
		return nil, false
	}
	return el, true
}

// canonParser is a one-pass parser of a restricted form of XML. Strict
// (stream false), it takes only what stanza.AppendXML writes (see
// parseCanonical); with stream set, it takes the wider form that clients
// write (see Reader.fastElement). Either way it reports false for
// anything outside its form, which then goes to the full reader.
type canonParser struct {
	s   string
	i   int
	lim Limits
	// stream: accept any white space inside tags (as encoding/xml does:
	// none needed between attributes), both quotes, numeric character
	// references, raw '>' in text (not after "]]"), raw tab and newline in
	// attribute values, end tags with white space before '>', several
	// and empty xmlns declarations.
	stream bool

	// What the parsed elements are made of, allocated at once for the
	// whole element (prealloc), sized by elementEnd's counts; when these
	// run out, more is allocated. elems are handed out front to back;
	// each element's attributes are a run of attrs, and its children a
	// run of nodes, both sliced with their capacity cut (so that an
	// append to one element's never writes into another's). stack holds
	// the children of the open elements until their end tag.
	elems []stanza.Element
	attrs []stanza.Attr
	nodes []stanza.Node
	stack []stanza.Node
}

// prealloc allocates for an element of the sizes given.
func (p *canonParser) prealloc(z sizes) {
	if z.elems > 0 {
		p.elems = make([]stanza.Element, z.elems)
	}
	if z.values > 0 {
		p.attrs = make([]stanza.Attr, 0, z.values)
	}
	if n := z.elems - 1 + z.texts; n > 0 {
		buf := make([]stanza.Node, 2*n)
		p.nodes, p.stack = buf[:0:n], buf[n:n]
	}
}

func (p *canonParser) newElement(name stanza.Name) *stanza.Element {
	if len(p.elems) == 0 {
		return &stanza.Element{Name: name}
	}
	el := &p.elems[0]
	p.elems = p.elems[1:]
	el.Name = name
	return el
}

// addAttr appends a to the run of attributes that starts at attrs[start]
// and returns where the run now starts.
func (p *canonParser) addAttr(start int, a stanza.Attr) int {
	if len(p.attrs) == cap(p.attrs) {
		run := p.attrs[start:]
		p.attrs = append(make([]stanza.Attr, 0, max(8, 2*len(run))), run...)
		start = 0
	}
	p.attrs = append(p.attrs, a)
	return start
}

// keep moves the children of an element, stack[mark:], into nodes and
// returns them there.
func (p *canonParser) keep(mark int) []stanza.Node {
	kids := p.stack[mark:]
	p.stack = p.stack[:mark]
	if len(kids) == 0 {
		return nil
	}
	if cap(p.nodes)-len(p.nodes) < len(kids) {
		p.nodes = make([]stanza.Node, 0, max(8, len(kids)))
	}
	start := len(p.nodes)
	p.nodes = append(p.nodes, kids...)
	return p.nodes[start:len(p.nodes):len(p.nodes)]
}

func isSpaceByte(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// space skips white space (stream form) or one space (strict form) and
// reports whether it skipped any.
func (p *canonParser) space() bool {
	start := p.i
	if p.stream {
		for p.i < len(p.s) && isSpaceByte(p.s[p.i]) {
			p.i++
		}
	} else if p.i < len(p.s) && p.s[p.i] == ' ' {
		p.i++
	}
	return p.i > start
}

func isNameStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
}

func isNameByte(c byte) bool {
	return isNameStart(c) || c >= '0' && c <= '9' || c == '-' || c == '.'
}

// name reads an unprefixed ASCII name.
func (p *canonParser) name() (string, bool) {
	start := p.i
	if p.i >= len(p.s) || !isNameStart(p.s[p.i]) {
		return "", false
	}
	p.i++
	for p.i < len(p.s) && isNameByte(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i], true
}

// element reads one element whose '<' is at p.i, in default namespace ns.
func (p *canonParser) element(ns string, depth int) (*stanza.Element, bool) {
	if depth > p.lim.MaxDepth {
		return nil, false
	}
	p.i++ // '<'
	local, ok := p.name()
	// encoding/xml leaves an element named xmlns in no namespace.
	if !ok || local == "xmlns" {
		return nil, false
	}
	el := p.newElement(stanza.Name{Space: ns, Local: local})
	nattr, declared := 0, false
	start := len(p.attrs) // of el's run of attributes
	for {
		spaced := p.space()
		if p.i >= len(p.s) {
			return nil, false
		}
		switch p.s[p.i] {
		case '/', '>':
			if spaced && !p.stream {
				return nil, false
			}
			if n := len(p.attrs); n > start {
				el.Attr = p.attrs[start:n:n]
			}
			if p.s[p.i] == '>' {
				p.i++
				return p.content(el, depth)
			}
			if p.i+1 >= len(p.s) || p.s[p.i+1] != '>' {
				return nil, false
			}
			p.i += 2
			return el, true
		}
		if !spaced && !p.stream {
			return nil, false
		}
		nattr++
		if nattr > p.lim.MaxAttrs {
			return nil, false
		}
		an, ok := p.name()
		if !ok {
			return nil, false
		}
		space := ""
		if p.i < len(p.s) && p.s[p.i] == ':' {
			if an != "xml" {
				return nil, false
			}
			p.i++
			if an, ok = p.name(); !ok {
				return nil, false
			}
			space = stanza.NSXML
		}
		q := byte('\'')
		if p.stream {
			p.space()
			if p.i >= len(p.s) || p.s[p.i] != '=' {
				return nil, false
			}
			p.i++
			p.space()
			if p.i >= len(p.s) || p.s[p.i] != '\'' && p.s[p.i] != '"' {
				return nil, false
			}
			q = p.s[p.i]
			p.i++
		} else {
			if !strings.HasPrefix(p.s[p.i:], "='") {
				return nil, false
			}
			p.i += 2
		}
		v, ok := p.text(q)
		if !ok || p.i >= len(p.s) {
			return nil, false
		}
		p.i++ // closing quote
		if space == "" && an == "xmlns" {
			if p.stream {
				// As encoding/xml: the last declaration applies, to
				// the element itself too; xmlns='' means no namespace.
				el.Name.Space = v
				continue
			}
			// AppendXML declares the namespace first, once, and only
			// where it differs from the parent's.
			if declared || len(p.attrs) > start || v == "" {
				return nil, false
			}
			declared = true
			el.Name.Space = v
			continue
		}
		if space == stanza.NSXML && an == "xmlns" {
			return nil, false
		}
		for _, a := range p.attrs[start:] {
			if a.Name.Space == space && a.Name.Local == an {
				return nil, false
			}
		}
		start = p.addAttr(start, stanza.Attr{Name: stanza.Name{Space: space, Local: an}, Value: v})
	}
}

// content reads el's children up to and including its end tag.
func (p *canonParser) content(el *stanza.Element, depth int) (*stanza.Element, bool) {
	mark := len(p.stack)
	for {
		if p.i >= len(p.s) {
			return nil, false
		}
		if p.s[p.i] != '<' {
			t, ok := p.text('<')
			if !ok {
				return nil, false
			}
			p.stack = append(p.stack, stanza.Node{Text: t})
			continue
		}
		if p.i+1 < len(p.s) && p.s[p.i+1] == '/' {
			p.i += 2
			end, ok := p.name()
			if p.stream {
				p.space()
			}
			if !ok || end != el.Name.Local || p.i >= len(p.s) || p.s[p.i] != '>' {
				return nil, false
			}
			p.i++
			el.Nodes = p.keep(mark)
			return el, true
		}
		c, ok := p.element(el.Name.Space, depth+1)
		if !ok {
			return nil, false
		}
		p.stack = append(p.stack, stanza.Node{Elem: c})
	}
}

// text reads character data (stop is '<') or an attribute value (stop is
// its quote) up to the stop byte, which it leaves unread, undoing the
// escapes. The result is a substring of the input unless it held an
// escape.
func (p *canonParser) text(stop byte) (string, bool) {
	start := p.i
	var buf []byte // nil while the text is a plain substring
	attr := stop != '<'
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == stop:
			if buf == nil {
				return p.s[start:p.i], true
			}
			return string(buf), true
		case c == '&':
			r, n := entity(p.s[p.i:])
			if n == 0 && p.stream {
				r, n = charRef(p.s[p.i:])
			}
			if n == 0 {
				return "", false
			}
			if buf == nil {
				buf = append(make([]byte, 0, p.i-start+16), p.s[start:p.i]...)
			}
			buf = utf8.AppendRune(buf, r)
			p.i += n
			continue
		case c == '<':
			return "", false
		case c == '>':
			// AppendXML escapes it. encoding/xml takes it, but not as
			// the end of "]]>" in text.
			if !p.stream || !attr && p.i-start >= 2 && p.s[p.i-2:p.i] == "]]" {
				return "", false
			}
		case c == '\'' || c == '"':
			// AppendXML escapes both quotes in attribute values.
			if attr && !p.stream {
				return "", false
			}
		case c == '\t' || c == '\n':
			// Raw in an attribute value: encoding/xml keeps them as
			// they are (no normalisation); AppendXML escapes them.
			if attr && !p.stream {
				return "", false
			}
		case c < 0x20:
			return "", false // CR (XML would normalise it) and non-characters
		case c >= utf8.RuneSelf:
			r, w := utf8.DecodeRuneInString(p.s[p.i:])
			if r == utf8.RuneError && w == 1 || !xmlChar(r) {
				return "", false
			}
			if buf != nil {
				buf = append(buf, p.s[p.i:p.i+w]...)
			}
			p.i += w
			continue
		}
		if buf != nil {
			buf = append(buf, c)
		}
		p.i++
	}
	return "", false
}

// entity decodes the escape at the start of s, one of those AppendXML
// writes; n is 0 for any other.
func entity(s string) (rune, int) {
	for _, e := range [...]struct {
		ref string
		c   rune
	}{{"&lt;", '<'}, {"&gt;", '>'}, {"&amp;", '&'}, {"&apos;", '\''}, {"&quot;", '"'}, {"&#x9;", '\t'}, {"&#xA;", '\n'}, {"&#xD;", '\r'}} {
		if strings.HasPrefix(s, e.ref) {
			return e.c, len(e.ref)
		}
	}
	return 0, 0
}

// charRef decodes a numeric character reference at the start of s
// (&#NNN; or &#xHHH;, at most eight digits) to a character XML allows;
// n is 0 for anything else, including what encoding/xml would take but
// turn into something else (a surrogate becomes U+FFFD there).
func charRef(s string) (rune, int) {
	if len(s) < 4 || s[1] != '#' {
		return 0, 0
	}
	i, base := 2, rune(10)
	if s[2] == 'x' {
		i, base = 3, 16
	}
	var r rune
	digits := 0
	for ; i < len(s) && digits <= 8; i++ {
		c := s[i]
		var d rune
		switch {
		case c >= '0' && c <= '9':
			d = rune(c - '0')
		case base == 16 && c >= 'a' && c <= 'f':
			d = rune(c-'a') + 10
		case base == 16 && c >= 'A' && c <= 'F':
			d = rune(c-'A') + 10
		case c == ';':
			if digits == 0 || !(r == '\t' || r == '\n' || r == '\r' || r >= 0x20 && xmlChar(r)) {
				return 0, 0
			}
			return r, i + 1
		default:
			return 0, 0
		}
		r = r*base + d
		digits++
	}
	return 0, 0
}

// xmlChar reports whether r (at or above U+0080) is an XML 1.0 character.
func xmlChar(r rune) bool {
	return r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}

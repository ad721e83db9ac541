// Package stanza holds the element tree that every part of Kontor passes
// around, the three XMPP stanzas built on it, and the stanza and stream errors
// of RFC 6120 (§8.3 and §4.9).
//
// A stanza is parsed once (by core/xmlstream) into an Element, walks the hook
// chain once, and is serialised once per recipient with AppendXML. Elements
// carry resolved namespaces, never prefixes: serialisation chooses the
// declarations, so no layer has to care how a peer spelled them.
//
// An Element handed to the router is treated as immutable from the moment it
// is delivered: a handler that wants a changed copy calls Clone first.
package stanza

import (
	"strings"
	"unicode/utf8"
)

// Namespaces used across the core.
const (
	NSClient  = "jabber:client"
	NSServer  = "jabber:server"
	NSStream  = "http://etherx.jabber.org/streams"
	NSStreams = "urn:ietf:params:xml:ns:xmpp-streams"
	NSStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas"
	NSXML     = "http://www.w3.org/XML/1998/namespace"
	NSDelay   = "urn:xmpp:delay"
)

// Name is an element's or attribute's resolved name.
type Name struct {
	Space, Local string
}

// Attr is one attribute. Space is empty for unqualified attributes (the
// common case) and NSXML for xml:lang.
type Attr struct {
	Name  Name
	Value string
}

// Node is one child of an element: either an element or character data,
// exactly one of which is set. Mixed content keeps its order.
type Node struct {
	Elem *Element
	Text string
}

// Element is a parsed XML element with resolved namespaces.
type Element struct {
	Name  Name
	Attr  []Attr
	Nodes []Node
}

// New returns an element with the given namespace and local name.
func New(space, local string) *Element {
	return &Element{Name: Name{Space: space, Local: local}}
}

// Get returns the value of the unqualified attribute local, or "".
func (e *Element) Get(local string) string {
	for i := range e.Attr {
		if e.Attr[i].Name.Local == local && e.Attr[i].Name.Space == "" {
			return e.Attr[i].Value
		}
	}
	return ""
}

// Has reports whether the unqualified attribute local is present.
func (e *Element) Has(local string) bool {
	for i := range e.Attr {
		if e.Attr[i].Name.Local == local && e.Attr[i].Name.Space == "" {
			return true
		}
	}
	return false
}

// Set sets (or, with an empty value, removes) the unqualified attribute local
// and returns e for chaining.
func (e *Element) Set(local, value string) *Element {
	for i := range e.Attr {
		if e.Attr[i].Name.Local == local && e.Attr[i].Name.Space == "" {
			if value == "" {
				e.Attr = append(e.Attr[:i], e.Attr[i+1:]...)
			} else {
				e.Attr[i].Value = value
			}
			return e
		}
	}
	if value != "" {
		e.Attr = append(e.Attr, Attr{Name: Name{Local: local}, Value: value})
	}
	return e
}

// Lang returns xml:lang, or "".
func (e *Element) Lang() string {
	for i := range e.Attr {
		if e.Attr[i].Name.Local == "lang" && e.Attr[i].Name.Space == NSXML {
			return e.Attr[i].Value
		}
	}
	return ""
}

// Append adds child elements and returns e.
func (e *Element) Append(children ...*Element) *Element {
	for _, c := range children {
		if c != nil {
			e.Nodes = append(e.Nodes, Node{Elem: c})
		}
	}
	return e
}

// AppendText adds character data and returns e.
func (e *Element) AppendText(s string) *Element {
	if s != "" {
		e.Nodes = append(e.Nodes, Node{Text: s})
	}
	return e
}

// SetText replaces all children with character data and returns e.
func (e *Element) SetText(s string) *Element {
	e.Nodes = e.Nodes[:0]
	return e.AppendText(s)
}

// Text returns the concatenated character data directly inside e.
func (e *Element) Text() string {
	switch {
	case len(e.Nodes) == 0:
		return ""
	case len(e.Nodes) == 1:
		return e.Nodes[0].Text
	}
	var b strings.Builder
	for _, n := range e.Nodes {
		b.WriteString(n.Text)
	}
	return b.String()
}

// Child returns the first child element with this name, or nil. An empty
// space matches any namespace.
func (e *Element) Child(space, local string) *Element {
	for _, n := range e.Nodes {
		if n.Elem != nil && n.Elem.Name.Local == local && (space == "" || n.Elem.Name.Space == space) {
			return n.Elem
		}
	}
	return nil
}

// ChildText returns the text of the first matching child, or "".
func (e *Element) ChildText(space, local string) string {
	if c := e.Child(space, local); c != nil {
		return c.Text()
	}
	return ""
}

// Children calls fn for every child element, in order, until fn returns false.
func (e *Element) Children(fn func(*Element) bool) {
	for _, n := range e.Nodes {
		if n.Elem != nil && !fn(n.Elem) {
			return
		}
	}
}

// FirstChild returns the first child element, or nil (an IQ's payload).
func (e *Element) FirstChild() *Element {
	for _, n := range e.Nodes {
		if n.Elem != nil {
			return n.Elem
		}
	}
	return nil
}

// RemoveChildren removes every child element with this name.
func (e *Element) RemoveChildren(space, local string) {
	out := e.Nodes[:0]
	for _, n := range e.Nodes {
		if n.Elem != nil && n.Elem.Name.Local == local && n.Elem.Name.Space == space {
			continue
		}
		out = append(out, n)
	}
	for i := len(out); i < len(e.Nodes); i++ {
		e.Nodes[i] = Node{}
	}
	e.Nodes = out
}

// Clone returns a deep copy.
func (e *Element) Clone() *Element {
	if e == nil {
		return nil
	}
	c := &Element{Name: e.Name}
	if len(e.Attr) > 0 {
		c.Attr = append([]Attr(nil), e.Attr...)
	}
	if len(e.Nodes) > 0 {
		c.Nodes = make([]Node, len(e.Nodes))
		for i, n := range e.Nodes {
			c.Nodes[i] = Node{Elem: n.Elem.Clone(), Text: n.Text}
		}
	}
	return c
}

// ShallowClone copies e's name and attributes and shares its children: cheap,
// for changing a stanza's addressing before delivery.
func (e *Element) ShallowClone() *Element {
	c := &Element{Name: e.Name, Nodes: e.Nodes}
	c.Attr = append(make([]Attr, 0, len(e.Attr)+1), e.Attr...)
	return c
}

// String serialises e with its namespace declared, for logs of the top tag
// only use Tag instead.
func (e *Element) String() string {
	return string(e.AppendXML(nil, ""))
}

// Tag describes the element for logs without its content: the name and the
// attributes type and id only (never bodies).
func (e *Element) Tag() string {
	b := make([]byte, 0, 48)
	b = append(b, '<')
	b = append(b, e.Name.Local...)
	for _, a := range []string{"type", "id"} {
		if v := e.Get(a); v != "" {
			b = append(b, ' ')
			b = append(b, a...)
			b = append(b, "='"...)
			b = escape(b, v, true)
			b = append(b, '\'')
		}
	}
	if p := e.FirstChild(); p != nil {
		b = append(b, "><"...)
		b = append(b, p.Name.Local...)
		if p.Name.Space != e.Name.Space {
			b = append(b, " xmlns='"...)
			b = escape(b, p.Name.Space, true)
			b = append(b, '\'')
		}
		b = append(b, "/>"...)
	} else {
		b = append(b, "/>"...)
	}
	return string(b)
}

// AppendXML appends the serialisation of e to b. parentNS is the default
// namespace in force where e is written (NSClient inside a client stream);
// an xmlns declaration is written only when e's namespace differs.
// Namespaced attributes other than xml:* get generated prefixes.
func (e *Element) AppendXML(b []byte, parentNS string) []byte {
	b = append(b, '<')
	// Elements of the stream namespace (stream:features, stream:error) use
	// the prefix the stream header declared; the default namespace stays
	// what it was for their children.
	childNS := e.Name.Space
	if e.Name.Space == NSStream {
		b = append(b, "stream:"...)
		childNS = parentNS
	}
	b = append(b, e.Name.Local...)
	if e.Name.Space != parentNS && e.Name.Space != NSStream {
		b = append(b, " xmlns='"...)
		b = escape(b, e.Name.Space, true)
		b = append(b, '\'')
	}
	nsn := 0
	for _, a := range e.Attr {
		b = append(b, ' ')
		switch a.Name.Space {
		case "":
		case NSXML:
			b = append(b, "xml:"...)
		default:
			nsn++
			p := "ns" + string(rune('0'+nsn%10))
			b = append(b, "xmlns:"...)
			b = append(b, p...)
			b = append(b, "='"...)
			b = escape(b, a.Name.Space, true)
			b = append(b, "' "...)
			b = append(b, p...)
			b = append(b, ':')
		}
		b = append(b, a.Name.Local...)
		b = append(b, "='"...)
		b = escape(b, a.Value, true)
		b = append(b, '\'')
	}
	if len(e.Nodes) == 0 {
		return append(b, "/>"...)
	}
	b = append(b, '>')
	for _, n := range e.Nodes {
		if n.Elem != nil {
			b = n.Elem.AppendXML(b, childNS)
		} else {
			b = escape(b, n.Text, false)
		}
	}
	b = append(b, "</"...)
	if e.Name.Space == NSStream {
		b = append(b, "stream:"...)
	}
	b = append(b, e.Name.Local...)
	return append(b, '>')
}

// escape appends s with the characters XML requires escaped. Invalid UTF-8
// and characters XML 1.0 forbids are replaced by U+FFFD, so that whatever an
// element holds, the output is well-formed.
func escape(b []byte, s string, attr bool) []byte {
	plain := &plainText
	if attr {
		plain = &plainAttr
	}
	last := 0
	for i := 0; i < len(s); {
		c := s[i]
		if plain[c] {
			i++
			continue
		}
		var rep string
		width := 1
		switch c {
		case '<':
			rep = "&lt;"
		case '>':
			rep = "&gt;"
		case '&':
			rep = "&amp;"
		case '\'':
			if attr {
				rep = "&apos;"
			}
		case '"':
			if attr {
				rep = "&quot;"
			}
		case '\t', '\n', '\r':
			switch {
			case attr && c == '\t':
				rep = "&#x9;"
			case attr && c == '\n':
				rep = "&#xA;"
			case c == '\r':
				rep = "&#xD;"
			}
		default:
			if c < 0x20 {
				rep = "\uFFFD"
				break
			}
			r, w := utf8.DecodeRuneInString(s[i:])
			width = w
			if (r == utf8.RuneError && w == 1) || !isXMLChar(r) {
				rep = "\uFFFD"
			}
		}
		if rep == "" {
			i += width
			continue
		}
		b = append(b, s[last:i]...)
		b = append(b, rep...)
		i += width
		last = i
	}
	return append(b, s[last:]...)
}

// plainText and plainAttr mark the bytes that escape copies as they are in
// text and in attribute values: ASCII that XML allows and that needs no
// entity there (a table lookup per byte instead of seven comparisons; the
// serialisation of every delivered and archived stanza runs through it).
var plainText, plainAttr = plainBytes(false), plainBytes(true)

func plainBytes(attr bool) (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		switch c {
		case '<', '>', '&':
		case '\'', '"':
			t[c] = !attr
		default:
			t[c] = true
		}
	}
	t['\t'], t['\n'] = !attr, !attr
	return t
}

func isXMLChar(r rune) bool {
	return r == 0x9 || r == 0xA || r == 0xD ||
		(r >= 0x20 && r <= 0xD7FF) ||
		(r >= 0xE000 && r <= 0xFFFD) ||
		(r >= 0x10000 && r <= 0x10FFFF)
}

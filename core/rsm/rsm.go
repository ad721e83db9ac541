// Package rsm implements XEP-0059 Result Set Management (version 1.1):
// parsing and rendering the <set xmlns='http://jabber.org/protocol/rsm'/>
// element through which a requester pages through a result set and a
// responder describes the page it returned.
//
// One type, Set, serves both directions, as the element does: a request
// uses Max, After, Before and Index; a response uses First (with its index),
// Last and Count. Parse does not check which side an element came from.
//
// Absent and empty differ only where XEP-0059 gives them different
// meanings: an empty <before/> asks for the last page, so HasBefore says
// whether <before/> was present at all. Every other element either holds a
// UID, which is never empty, or a number; an empty one is an error.
//
// Parse is meant for input from the network: it is strict (max, index and
// count are non-negative integers; a UID is opaque, but not empty and at
// most MaxUIDBytes long; an element appears at most once; these elements
// hold text only) and bounded (numbers fit in 31 bits, so they are ints on
// every platform). Elements in other namespaces and unknown children are
// ignored, so that later revisions can add some; so are the optional
// 'exact' and 'exact-index' attributes of version 1.1, which Element does
// not write either. Every error wraps ErrInvalid and reads well as the
// text of a bad-request error.
//
// A Set is plain data: Parse(s.Element()) returns s again for every s that
// Parse returned (the round-trip property the fuzz test checks). Its zero
// value is the empty <set/>.
package rsm

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"kontor.im/kontor/core/stanza"
)

// NS is the XEP-0059 namespace.
const NS = "http://jabber.org/protocol/rsm"

// MaxUIDBytes bounds the UIDs in after, before, first and last. XEP-0059
// sets no bound; UIDs are opaque identifiers minted by the responder, and a
// requester can only echo them, so a longer one cannot name an item.
const MaxUIDBytes = 1024

// maxNumber bounds max, index and count: 2^31-1, an int everywhere.
const maxNumber = 1<<31 - 1

// ErrInvalid is wrapped by every error Parse returns.
var ErrInvalid = errors.New("rsm: invalid set")

// Set is a XEP-0059 <set/> element.
type Set struct {
	// Max is the most items the requester wants, when HasMax. Zero asks
	// for the item count only.
	Max    int
	HasMax bool
	// After asks for the page after the item with this UID; "" when
	// absent.
	After string
	// Before asks for the page before the item with this UID, when
	// HasBefore; an empty Before with HasBefore asks for the last page.
	Before    string
	HasBefore bool
	// Index asks for the page starting at this index, when HasIndex.
	Index    int
	HasIndex bool

	// First is the UID of the first item of the page returned; "" when
	// absent. FirstIndex is its index in the whole result set, when
	// HasFirstIndex (only with First).
	First         string
	FirstIndex    int
	HasFirstIndex bool
	// Last is the UID of the last item of the page returned; "" when
	// absent.
	Last string
	// Count is the number of items in the whole result set, when HasCount.
	Count    int
	HasCount bool
}

// LastPage reports whether the set asks for the last page: an empty
// <before/>.
func (s Set) LastPage() bool { return s.HasBefore && s.Before == "" }

type parseError struct{ msg string }

func (e *parseError) Error() string        { return "rsm: " + e.msg }
func (e *parseError) Is(target error) bool { return target == ErrInvalid }

func invalid(format string, args ...any) error {
	return &parseError{msg: fmt.Sprintf(format, args...)}
}

// Parse parses a <set xmlns='http://jabber.org/protocol/rsm'/> element.
func Parse(el *stanza.Element) (Set, error) {
	var s Set
	if el == nil || el.Name.Space != NS || el.Name.Local != "set" {
		return s, invalid("expected a set element in the %s namespace", NS)
	}
	var seen [7]bool // max, after, before, index, first, last, count
	for _, n := range el.Nodes {
		c := n.Elem
		if c == nil || c.Name.Space != NS {
			continue
		}
		k := -1
		switch c.Name.Local {
		case "max":
			k = 0
		case "after":
			k = 1
		case "before":
			k = 2
		case "index":
			k = 3
		case "first":
			k = 4
		case "last":
			k = 5
		case "count":
			k = 6
		default:
			continue
		}
		if seen[k] {
			return Set{}, invalid("more than one %s element", c.Name.Local)
		}
		seen[k] = true
		text, err := leafText(c)
		if err != nil {
			return Set{}, err
		}
		switch k {
		case 0:
			s.Max, err = number("max", text)
			s.HasMax = true
		case 1:
			s.After, err = uid("after", text)
		case 2:
			s.HasBefore = true
			if text != "" {
				s.Before, err = uid("before", text)
			}
		case 3:
			s.Index, err = number("index", text)
			s.HasIndex = true
		case 4:
			if s.First, err = uid("first", text); err == nil && c.Has("index") {
				s.FirstIndex, err = number("the index of first", c.Get("index"))
				s.HasFirstIndex = true
			}
		case 5:
			s.Last, err = uid("last", text)
		case 6:
			s.Count, err = number("count", text)
			s.HasCount = true
		}
		if err != nil {
			return Set{}, err
		}
	}
	return s, nil
}

// leafText returns the text of an element that may hold text only.
func leafText(el *stanza.Element) (string, error) {
	for _, n := range el.Nodes {
		if n.Elem != nil {
			return "", invalid("%s holds an element; it may hold text only", el.Name.Local)
		}
	}
	return el.Text(), nil
}

func uid(what, text string) (string, error) {
	switch {
	case text == "":
		return "", invalid("%s is empty; it must hold an item's UID", what)
	case len(text) > MaxUIDBytes:
		return "", invalid("%s is longer than %d bytes", what, MaxUIDBytes)
	}
	return text, nil
}

// number parses a non-negative xs:int; surrounding whitespace is allowed
// (the whiteSpace facet of xs:int is collapse).
func number(what, text string) (int, error) {
	t := strings.TrimSpace(text)
	t = strings.TrimPrefix(t, "+")
	if t == "" || strings.Trim(t, "0123456789") != "" {
		return 0, invalid("%s must be a non-negative integer, not %q", what, clip(text))
	}
	if t = strings.TrimLeft(t, "0"); t == "" {
		return 0, nil
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || len(t) > 10 || v > maxNumber {
		return 0, invalid("%s is larger than %d", what, maxNumber)
	}
	return int(v), nil
}

// clip bounds what an error message quotes of the input.
func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

// Element renders the set. Numbers are written only when their Has flag is
// set, UIDs only when non-empty, <before/> when HasBefore, and the index of
// <first/> only with a First.
func (s Set) Element() *stanza.Element {
	el := stanza.New(NS, "set")
	if s.HasMax {
		el.Append(leaf("max", strconv.Itoa(s.Max)))
	}
	if s.After != "" {
		el.Append(leaf("after", s.After))
	}
	if s.HasBefore {
		el.Append(leaf("before", s.Before))
	}
	if s.HasIndex {
		el.Append(leaf("index", strconv.Itoa(s.Index)))
	}
	if s.First != "" {
		f := leaf("first", s.First)
		if s.HasFirstIndex {
			f.Set("index", strconv.Itoa(s.FirstIndex))
		}
		el.Append(f)
	}
	if s.Last != "" {
		el.Append(leaf("last", s.Last))
	}
	if s.HasCount {
		el.Append(leaf("count", strconv.Itoa(s.Count)))
	}
	return el
}

func leaf(local, text string) *stanza.Element {
	return stanza.New(NS, local).AppendText(text)
}

package stanza

import (
	"kontor.im/kontor/core/jid"
)

// Kind is the kind of a top-level stanza.
type Kind uint8

const (
	KindOther Kind = iota
	KindMessage
	KindPresence
	KindIQ
)

func (k Kind) String() string {
	switch k {
	case KindMessage:
		return "message"
	case KindPresence:
		return "presence"
	case KindIQ:
		return "iq"
	}
	return "other"
}

// KindOf returns the kind of a top-level element in the jabber:client
// namespace.
func KindOf(e *Element) Kind {
	if e.Name.Space != NSClient {
		return KindOther
	}
	switch e.Name.Local {
	case "message":
		return KindMessage
	case "presence":
		return KindPresence
	case "iq":
		return KindIQ
	}
	return KindOther
}

// Stanza is a message, presence or IQ with its addressing parsed once. El's
// from and to attributes always agree with From and To.
type Stanza struct {
	El       *Element
	Kind     Kind
	From, To jid.JID
	Type     string
	ID       string
}

// Parse validates a top-level element as a stanza: its kind, and its from and
// to addresses. A malformed address gives a jid-malformed Error.
func Parse(e *Element) (*Stanza, error) {
	s := &Stanza{El: e, Kind: KindOf(e), Type: e.Get("type"), ID: e.Get("id")}
	if s.Kind == KindOther {
		return nil, &StreamError{Condition: "unsupported-stanza-type"}
	}
	var err error
	if v := e.Get("to"); v != "" {
		if s.To, err = jid.Parse(v); err != nil {
			return s, Error{Type: Modify, Condition: JIDMalformed, Text: "the 'to' address is not a valid JID"}
		}
	}
	if v := e.Get("from"); v != "" {
		if s.From, err = jid.Parse(v); err != nil {
			return s, Error{Type: Modify, Condition: JIDMalformed, Text: "the 'from' address is not a valid JID"}
		}
	}
	return s, nil
}

// SetFrom sets the sender on both the struct and the element.
func (s *Stanza) SetFrom(j jid.JID) {
	s.From = j
	s.El.Set("from", j.String())
}

// SetTo sets the recipient on both the struct and the element.
func (s *Stanza) SetTo(j jid.JID) {
	s.To = j
	s.El.Set("to", j.String())
}

// Readdress returns a copy that shares s's children but has new addresses:
// the cheap way to forward a stanza without touching the original.
func (s *Stanza) Readdress(from, to jid.JID) *Stanza {
	c := &Stanza{El: s.El.ShallowClone(), Kind: s.Kind, Type: s.Type, ID: s.ID}
	if !from.IsZero() {
		c.SetFrom(from)
	} else {
		c.From = jid.JID{}
		c.El.Set("from", "")
	}
	if !to.IsZero() {
		c.SetTo(to)
	} else {
		c.To = jid.JID{}
		c.El.Set("to", "")
	}
	return c
}

// IsError reports whether the stanza is of type error.
func (s *Stanza) IsError() bool { return s.Type == "error" }

// IsAvailablePresence reports whether s is a presence without a type (an
// availability announcement).
func (s *Stanza) IsAvailablePresence() bool { return s.Kind == KindPresence && s.Type == "" }

// IQ payload name shortcut: the first child of an IQ.
func (s *Stanza) Payload() *Element { return s.El.FirstChild() }

// NewMessage, NewPresence and NewIQ build stanzas addressed from, to.
func NewMessage(from, to jid.JID, typ, id string) *Stanza {
	return build("message", KindMessage, from, to, typ, id)
}

func NewPresence(from, to jid.JID, typ string) *Stanza {
	return build("presence", KindPresence, from, to, typ, "")
}

func NewIQ(from, to jid.JID, typ, id string, payload *Element) *Stanza {
	s := build("iq", KindIQ, from, to, typ, id)
	s.El.Append(payload)
	return s
}

func build(local string, k Kind, from, to jid.JID, typ, id string) *Stanza {
	s := &Stanza{El: New(NSClient, local), Kind: k, Type: typ, ID: id}
	if !from.IsZero() {
		s.SetFrom(from)
	}
	if !to.IsZero() {
		s.SetTo(to)
	}
	s.El.Set("type", typ)
	s.El.Set("id", id)
	return s
}

// Result builds the result of an IQ get or set, with an optional payload.
func Result(iq *Stanza, payload *Element) *Stanza {
	return NewIQ(iq.To, iq.From, "result", iq.ID, payload)
}

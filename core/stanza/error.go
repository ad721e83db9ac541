package stanza

import (
	"strings"

	"kontor.im/kontor/core/jid"
)

// ErrorType is the type attribute of a stanza error (RFC 6120 §8.3.2).
type ErrorType string

const (
	Auth     ErrorType = "auth"
	Cancel   ErrorType = "cancel"
	Continue ErrorType = "continue"
	Modify   ErrorType = "modify"
	Wait     ErrorType = "wait"
)

// Defined stanza error conditions (RFC 6120 §8.3.3).
const (
	BadRequest            = "bad-request"
	Conflict              = "conflict"
	FeatureNotImplemented = "feature-not-implemented"
	Forbidden             = "forbidden"
	Gone                  = "gone"
	InternalServerError   = "internal-server-error"
	ItemNotFound          = "item-not-found"
	JIDMalformed          = "jid-malformed"
	NotAcceptable         = "not-acceptable"
	NotAllowed            = "not-allowed"
	NotAuthorized         = "not-authorized"
	PolicyViolation       = "policy-violation"
	RecipientUnavailable  = "recipient-unavailable"
	Redirect              = "redirect"
	RegistrationRequired  = "registration-required"
	RemoteServerNotFound  = "remote-server-not-found"
	RemoteServerTimeout   = "remote-server-timeout"
	ResourceConstraint    = "resource-constraint"
	ServiceUnavailable    = "service-unavailable"
	SubscriptionRequired  = "subscription-required"
	UndefinedCondition    = "undefined-condition"
	UnexpectedRequest     = "unexpected-request"
)

// Error is a stanza error. It is a value: handlers return it and the router
// turns it into an error reply to the sender.
type Error struct {
	Type      ErrorType
	Condition string
	Text      string
	// By is the entity that generated the error (optional).
	By jid.JID
	// App is an optional application-specific condition element.
	App *Element
}

func (e Error) Error() string {
	var b strings.Builder
	b.WriteString("stanza error: ")
	b.WriteString(string(e.Type))
	b.WriteByte(' ')
	b.WriteString(e.Condition)
	if e.Text != "" {
		b.WriteString(": ")
		b.WriteString(e.Text)
	}
	return b.String()
}

// Is makes errors.Is match on type and condition.
func (e Error) Is(target error) bool {
	t, ok := target.(Error)
	return ok && t.Condition == e.Condition && (t.Type == "" || t.Type == e.Type)
}

// Element renders <error/> in the client namespace.
func (e Error) Element() *Element {
	el := New(NSClient, "error").Set("type", string(e.Type))
	if !e.By.IsZero() {
		el.Set("by", e.By.String())
	}
	cond := e.Condition
	if cond == "" {
		cond = UndefinedCondition
	}
	el.Append(New(NSStanzas, cond))
	if e.Text != "" {
		t := New(NSStanzas, "text").AppendText(e.Text)
		t.Attr = append(t.Attr, Attr{Name: Name{Space: NSXML, Local: "lang"}, Value: "en"})
		el.Append(t)
	}
	el.Append(e.App)
	return el
}

// Common errors, as constructors so that each use can add text.
func ErrServiceUnavailable(text string) Error {
	return Error{Type: Cancel, Condition: ServiceUnavailable, Text: text}
}
func ErrBadRequest(text string) Error {
	return Error{Type: Modify, Condition: BadRequest, Text: text}
}
func ErrItemNotFound(text string) Error {
	return Error{Type: Cancel, Condition: ItemNotFound, Text: text}
}
func ErrForbidden(text string) Error { return Error{Type: Auth, Condition: Forbidden, Text: text} }
func ErrNotAllowed(text string) Error {
	return Error{Type: Cancel, Condition: NotAllowed, Text: text}
}
func ErrInternal(text string) Error {
	return Error{Type: Cancel, Condition: InternalServerError, Text: text}
}
func ErrFeatureNotImplemented(text string) Error {
	return Error{Type: Cancel, Condition: FeatureNotImplemented, Text: text}
}

// ErrorOf parses the <error/> child of an error stanza.
func ErrorOf(s *Stanza) (Error, bool) {
	el := s.El.Child(NSClient, "error")
	if el == nil {
		return Error{}, false
	}
	e := Error{Type: ErrorType(el.Get("type"))}
	el.Children(func(c *Element) bool {
		if c.Name.Space == NSStanzas {
			if c.Name.Local == "text" {
				e.Text = c.Text()
			} else if e.Condition == "" {
				e.Condition = c.Name.Local
			}
		}
		return true
	})
	return e, true
}

// ErrorReply turns s into an error reply for its sender: addresses swapped,
// type error, and the error appended. The payload of a message or presence
// is kept (RFC 6120 §8.3.1 allows it; clients use it to tell which message
// failed); an IQ's is not, because requests can carry secrets (a password
// change, XEP-0077 §3.3) that must not travel back through more hooks. It
// returns nil for a stanza of type error, which must never be answered with
// an error.
func ErrorReply(s *Stanza, e Error) *Stanza {
	if s.IsError() {
		return nil
	}
	r := &Stanza{El: &Element{Name: s.El.Name}, Kind: s.Kind, Type: "error", ID: s.ID}
	for _, a := range s.El.Attr {
		if a.Name.Space == "" && (a.Name.Local == "from" || a.Name.Local == "to" || a.Name.Local == "type") {
			continue
		}
		r.El.Attr = append(r.El.Attr, a)
	}
	if !s.To.IsZero() {
		r.SetFrom(s.To)
	}
	if !s.From.IsZero() {
		r.SetTo(s.From)
	}
	r.El.Set("type", "error")
	if s.Kind != KindIQ {
		r.El.Nodes = append(r.El.Nodes, s.El.Nodes...)
	}
	r.El.Append(e.Element())
	return r
}

// StreamError is a stream-level error (RFC 6120 §4.9): the stream is closed
// after it is sent.
type StreamError struct {
	Condition string
	Text      string
}

// Defined stream error conditions used by Kontor.
const (
	StreamBadFormat              = "bad-format"
	StreamConflict               = "conflict"
	StreamConnectionTimeout      = "connection-timeout"
	StreamHostUnknown            = "host-unknown"
	StreamInternalServerError    = "internal-server-error"
	StreamInvalidFrom            = "invalid-from"
	StreamInvalidNamespace       = "invalid-namespace"
	StreamInvalidXML             = "invalid-xml"
	StreamNotAuthorized          = "not-authorized"
	StreamNotWellFormed          = "not-well-formed"
	StreamPolicyViolation        = "policy-violation"
	StreamResourceConstraint     = "resource-constraint"
	StreamRestrictedXML          = "restricted-xml"
	StreamSystemShutdown         = "system-shutdown"
	StreamUnsupportedStanzaType  = "unsupported-stanza-type"
	StreamUnsupportedVersion     = "unsupported-version"
	StreamUnsupportedEncoding    = "unsupported-encoding"
	StreamUnsupportedFeature     = "unsupported-feature"
	StreamUndefinedCondition     = "undefined-condition"
	StreamReset                  = "reset"
	StreamImproperAddressing     = "improper-addressing"
	StreamNotAuthorizedCondition = StreamNotAuthorized
)

func (e *StreamError) Error() string {
	if e.Text != "" {
		return "stream error: " + e.Condition + ": " + e.Text
	}
	return "stream error: " + e.Condition
}

// Element renders <stream:error/>.
func (e *StreamError) Element() *Element {
	el := New(NSStream, "error")
	el.Append(New(NSStreams, e.Condition))
	if e.Text != "" {
		t := New(NSStreams, "text").AppendText(e.Text)
		t.Attr = append(t.Attr, Attr{Name: Name{Space: NSXML, Local: "lang"}, Value: "en"})
		el.Append(t)
	}
	return el
}

// Package private implements XEP-0049 Private XML Storage: an account
// stores arbitrary XML elements on the server, one per namespace and
// element name, and reads them back. Clients use it for preferences and,
// in older clients, for XEP-0048 bookmarks.
//
// Only the account itself may read or write its private XML: the request
// must have no 'to' or be addressed to the sender's own bare JID, and come
// from one of the account's own sessions; anything else is forbidden
// (XEP-0049 §2.3, which prefers forbidden to the service-unavailable some
// servers return).
//
// A set stores each child element of <query/> under the key "{ns}local"
// (several children may be stored at once; all are checked before any is
// stored, so a refused request changes nothing). A get answers each requested child with the
// stored element, or echoes the requested (empty) element when nothing is
// stored under its key. A <query/> without a child element is
// not-acceptable (XEP-0049 §2.3 says so for every request; RFC 6120 has no
// "bad-format" condition, which the same section mentions for gets).
//
// Children in namespaces that belong to the stream itself are refused with
// not-acceptable (the optional "reserved namespace" rule of XEP-0049):
// jabber:client, jabber:server, jabber:iq:private and the stream
// namespace. Storing a stanza or another private query inside private
// storage has no legitimate use and would be confusing to read back. Other
// reserved-looking namespaces (vcard-temp, jabber:x:*) are accepted, as
// most servers do, because clients in the wild store under them.
//
// Each stored element is bounded by the max_bytes option (default 64 KiB:
// a bookmark is about 150 bytes, so several hundred rooms fit). XEP-0049
// defines no service discovery feature; the module announces
// "jabber:iq:private", as Prosody and ejabberd do, because clients use it
// to learn that the storage is there.
package private

import (
	"context"
	"errors"
	"fmt"

	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/xmlstream"
)

// NS is the jabber:iq:private namespace.
const NS = "jabber:iq:private"

// DefaultMaxBytes is the default bound on one stored element.
const DefaultMaxBytes = 64 << 10

// Bounds of max_bytes.
const (
	minMaxBytes = 1 << 10
	maxMaxBytes = 1 << 20
)

// maxChildren bounds the elements of one request, so that one get cannot
// make the server read the whole store of an account.
const maxChildren = 32

func init() {
	module.Register(module.Info{
		ID:          "private",
		Description: "Private XML storage (jabber:iq:private) for client preferences and legacy bookmarks",
		Specs:       []module.Spec{{ID: "XEP-0049", Name: "Private XML Storage", Version: "1.2", Status: module.Complete}},
		Default:     true,
		New:         func() module.Module { return &Module{opts: Options{MaxBytes: DefaultMaxBytes}} },
	})
}

// Options configure the module.
type Options struct {
	// MaxBytes bounds one stored element, serialised.
	MaxBytes int `mapstructure:"max_bytes"`
}

// Validate checks the bounds.
func (o *Options) Validate() error {
	if o.MaxBytes < minMaxBytes || o.MaxBytes > maxMaxBytes {
		return fmt.Errorf("private: max_bytes must be between %d and %d, got %d", minMaxBytes, maxMaxBytes, o.MaxBytes)
	}
	return nil
}

// Module is the private module of one virtual host.
type Module struct {
	opts Options
	host module.Host
}

var _ module.Configurable = (*Module)(nil)

// Options returns the module's options, filled with defaults.
func (m *Module) Options() any { return &m.opts }

// Provision declares the IQ handlers and the disco feature.
func (m *Module) Provision(h module.Host) error {
	m.host = h
	name := stanza.Name{Space: NS, Local: "query"}
	h.HandleIQ(module.ToAccount, module.Get, name, m.get)
	h.HandleIQ(module.ToAccount, module.Set, name, m.set)
	h.AddDisco(module.ToHost, module.Disco{Features: []string{NS}})
	return nil
}

// reserved are the namespaces nothing may be stored in.
var reserved = map[string]bool{
	stanza.NSClient: true,
	stanza.NSServer: true,
	stanza.NSStream: true,
	NS:              true,
}

// key is the storage key of an element: "{namespace}localname".
func key(n stanza.Name) string { return "{" + n.Space + "}" + n.Local }

// check verifies that the request comes from a session of the account it
// addresses, and returns the requested elements.
func check(iq *module.IQ) ([]*stanza.Element, error) {
	if iq.Origin == nil || iq.From.IsZero() || (!iq.To.IsZero() && iq.To.Bare() != iq.From.Bare()) {
		return nil, stanza.ErrForbidden("private XML can only be read and written by its owner")
	}
	var children []*stanza.Element
	iq.Payload().Children(func(c *stanza.Element) bool {
		children = append(children, c)
		return true
	})
	if len(children) == 0 {
		return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable,
			Text: "the query needs a child element in its own namespace"}
	}
	if len(children) > maxChildren {
		return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable,
			Text: fmt.Sprintf("at most %d elements per request", maxChildren)}
	}
	for _, c := range children {
		if reserved[c.Name.Space] {
			return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable,
				Text: "the namespace " + c.Name.Space + " is reserved"}
		}
	}
	return children, nil
}

func (m *Module) get(ctx context.Context, iq *module.IQ) (*stanza.Element, error) {
	children, err := check(iq)
	if err != nil {
		return nil, err
	}
	owner := iq.From.Bare().String()
	res := stanza.New(NS, "query")
	for _, c := range children {
		b, err := m.host.Store().Private(ctx, owner, key(c.Name))
		switch {
		case errors.Is(err, storage.ErrNotFound):
			res.Append(c.Clone())
			continue
		case err != nil:
			return nil, fmt.Errorf("private: load: %w", err)
		}
		el, err := parseElement(b)
		if err != nil || el.Name != c.Name {
			return nil, fmt.Errorf("private: stored element %s of %s does not parse: %v", key(c.Name), owner, err)
		}
		res.Append(el)
	}
	return res, nil
}

func (m *Module) set(ctx context.Context, iq *module.IQ) (*stanza.Element, error) {
	children, err := check(iq)
	if err != nil {
		return nil, err
	}
	owner := iq.From.Bare().String()
	// Serialise and check everything before storing anything.
	blobs := make([][]byte, len(children))
	for i, c := range children {
		blobs[i] = c.AppendXML(nil, "")
		if len(blobs[i]) > m.opts.MaxBytes {
			return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable,
				Text: fmt.Sprintf("the element %s is larger than %d bytes", key(c.Name), m.opts.MaxBytes)}
		}
	}
	for i, c := range children {
		if err := m.host.Store().SetPrivate(ctx, owner, key(c.Name), blobs[i]); err != nil {
			return nil, fmt.Errorf("private: store: %w", err)
		}
	}
	return nil, nil
}

// parseElement parses one element serialised by Element.AppendXML, with
// the restrictions the stream reader applies to what clients send.
func parseElement(b []byte) (*stanza.Element, error) {
	return xmlstream.ParseElement(b, xmlstream.Limits{MaxStanzaBytes: len(b) + 1024})
}

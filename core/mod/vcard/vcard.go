// Package vcard implements XEP-0054 vcard-temp: each account stores one
// vCard on the server, reads and replaces its own, and reads other users'.
//
// Who may do what:
//   - get without 'to', or to the sender's own bare JID: the sender's vCard,
//     or an empty <vCard/> when none is stored (XEP-0054 §3.1 allows either
//     that or item-not-found; the empty element is what clients handle best).
//   - get to another account's bare JID: that account's vCard. vCards are
//     public in XEP-0054, so any user of this server may read any other's.
//     When there is none, or no such account, the answer is
//     service-unavailable in both cases (XEP-0054 1.3.0 §3.3, which follows
//     RFC 6121 §8.5.1 so that the answer does not reveal whether the account
//     exists). Senders from other domains get the same answer unless the
//     remote_read option is set: a company directory is not published to
//     the federation by default. Whether a sender may reach a recipient at
//     all is the policy engine's decision, made before this handler runs.
//   - set: only the sender's own vCard (no 'to', or to the own bare JID),
//     and only from one of the account's own sessions; anything else is
//     forbidden (XEP-0054 §3.2). An empty <vCard/> deletes the stored one.
//
// The vCard is stored as the serialised element, as received. Its size is
// bounded by the max_bytes option (default 128 KiB): vCards carry the
// avatar photo as embedded base64, which makes a 96 KiB image about
// 128 KiB; this is half of the stream reader's default stanza limit
// (256 KiB), so a stored vCard always fits in the result that carries it
// back. A larger vCard is refused with not-acceptable, the condition
// XEP-0060 uses for a payload that is too big (policy-violation is meant for
// content the service prohibits).
//
// XEP-0153 (vCard-based avatars) needs nothing of this module beyond
// storing the vCard: the pep module keeps the PHOTO and the XEP-0084
// avatar in step and puts the photo's hash into presences (XEP-0398). The
// server's own vCard (a get to the domain) is not offered.
package vcard

import (
	"context"
	"errors"
	"fmt"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/xmlstream"
)

// NS is the vcard-temp namespace, which is also its disco feature.
const NS = "vcard-temp"

// DefaultMaxBytes is the default bound on a stored vCard (see the package
// documentation for why).
const DefaultMaxBytes = 128 << 10

// Bounds of max_bytes: below 1 KiB not even a name and an address fit;
// above 1 MiB the vCard could no longer travel in one stanza anyway.
const (
	minMaxBytes = 1 << 10
	maxMaxBytes = 1 << 20
)

func init() {
	module.Register(module.Info{
		ID:          "vcard",
		Description: "vCards (vcard-temp): each user's public profile, stored on the server",
		Specs: []module.Spec{{ID: "XEP-0054", Name: "vcard-temp", Version: "1.3.0", Status: module.Complete,
			Note: "no vCard for the server itself; the pep module keeps the PHOTO and the XEP-0084 avatar in step (XEP-0398)"}},
		Default: true,
		New:     func() module.Module { return &Module{opts: Options{MaxBytes: DefaultMaxBytes}} },
	})
}

// Options configure the module.
type Options struct {
	// MaxBytes bounds the serialised vCard.
	MaxBytes int `mapstructure:"max_bytes"`
	// RemoteRead lets users of other domains read this server's vCards.
	RemoteRead bool `mapstructure:"remote_read"`
}

// Validate checks the bounds.
func (o *Options) Validate() error {
	if o.MaxBytes < minMaxBytes || o.MaxBytes > maxMaxBytes {
		return fmt.Errorf("vcard: max_bytes must be between %d and %d, got %d", minMaxBytes, maxMaxBytes, o.MaxBytes)
	}
	return nil
}

// Module is the vcard module of one virtual host.
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
	name := stanza.Name{Space: NS, Local: "vCard"}
	h.HandleIQ(module.ToAccount, module.Get, name, m.get)
	h.HandleIQ(module.ToAccount, module.Set, name, m.set)
	h.AddDisco(module.ToHost, module.Disco{Features: []string{NS}})
	return nil
}

// owner returns whose vCard a request is about: the 'to' account, or the
// sender's own when there is no 'to'.
func owner(iq *module.IQ) jid.JID {
	if iq.To.IsZero() {
		return iq.From.Bare()
	}
	return iq.To.Bare()
}

func (m *Module) get(ctx context.Context, iq *module.IQ) (*stanza.Element, error) {
	own := owner(iq)
	self := !iq.From.IsZero() && own == iq.From.Bare()
	if !self && !m.opts.RemoteRead && (iq.From.IsZero() || !m.host.IsLocal(iq.From.Domain())) {
		return nil, stanza.ErrServiceUnavailable("")
	}
	b, err := m.host.Store().VCard(ctx, own.String())
	switch {
	case errors.Is(err, storage.ErrNotFound):
		if self {
			return stanza.New(NS, "vCard"), nil
		}
		// The same answer for "no vCard" and "no such account".
		return nil, stanza.ErrServiceUnavailable("")
	case err != nil:
		return nil, fmt.Errorf("vcard: load: %w", err)
	}
	el, err := parseElement(b)
	if err != nil || el.Name.Space != NS || el.Name.Local != "vCard" {
		return nil, fmt.Errorf("vcard: stored vCard of %s does not parse: %v", own, err)
	}
	return el, nil
}

func (m *Module) set(ctx context.Context, iq *module.IQ) (*stanza.Element, error) {
	if iq.Origin == nil || iq.From.IsZero() || owner(iq) != iq.From.Bare() {
		return nil, stanza.ErrForbidden("you may only change your own vCard")
	}
	own := iq.From.Bare()
	v := iq.Payload()
	if v.FirstChild() == nil {
		if err := m.host.Store().SetVCard(ctx, own.String(), nil); err != nil {
			return nil, fmt.Errorf("vcard: delete: %w", err)
		}
		return nil, nil
	}
	b := v.AppendXML(nil, "")
	if len(b) > m.opts.MaxBytes {
		return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable,
			Text: fmt.Sprintf("the vCard is larger than %d bytes; use a smaller photo", m.opts.MaxBytes)}
	}
	if err := m.host.Store().SetVCard(ctx, own.String(), b); err != nil {
		return nil, fmt.Errorf("vcard: store: %w", err)
	}
	return nil, nil
}

// parseElement parses one element serialised by Element.AppendXML, with
// the restrictions the stream reader applies to what clients send.
func parseElement(b []byte) (*stanza.Element, error) {
	return xmlstream.ParseElement(b, xmlstream.Limits{MaxStanzaBytes: len(b) + 1024})
}

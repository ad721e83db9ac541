// Package ping implements XEP-0199 XMPP Ping for pings a client sends to its
// server or to an account: both are answered with an empty result.
//
// A ping without 'to' is addressed to the sender's own account (RFC 6120
// §10.3), so it is answered here too: many clients ping that way. A ping
// to another account's bare JID is answered by the server on the account's
// behalf (RFC 6121 §8.5.2.1.3) if the account exists, and gets
// service-unavailable otherwise (§8.5.1), like any IQ to a missing account.
// Pings to a full JID go to that client. The server pings idle clients
// itself in core/session; this module does not.
package ping

import (
	"context"
	"errors"
	"fmt"

	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

// NS is the ping namespace.
const NS = "urn:xmpp:ping"

func init() {
	module.Register(module.Info{
		ID:          "ping",
		Description: "Answers pings to the server and to accounts",
		Specs: []module.Spec{
			{ID: "XEP-0199", Name: "XMPP Ping", Version: "2.0.1", Status: module.Complete},
		},
		Default: true,
		New:     func() module.Module { return &ping{} },
	})
}

type ping struct {
	store storage.Store
}

func (p *ping) Provision(h module.Host) error {
	p.store = h.Store()
	name := stanza.Name{Space: NS, Local: "ping"}
	h.HandleIQ(module.ToHost, module.Get, name, p.host)
	h.HandleIQ(module.ToAccount, module.Get, name, p.account)
	h.AddDisco(module.ToHost, module.Disco{Features: []string{NS}})
	h.AddDisco(module.ToAccount, module.Disco{Features: []string{NS}})
	return nil
}

func (p *ping) host(ctx context.Context, iq *module.IQ) (*stanza.Element, error) {
	return nil, nil
}

func (p *ping) account(ctx context.Context, iq *module.IQ) (*stanza.Element, error) {
	if iq.To.IsZero() || iq.To.Bare() == iq.From.Bare() {
		return nil, nil
	}
	// The router hands IQs for accounts to their handlers before it checks
	// that the account exists, so the check is here.
	if p.store == nil {
		return nil, stanza.ErrServiceUnavailable("")
	}
	_, err := p.store.Account(ctx, iq.To.Bare().String())
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, stanza.ErrServiceUnavailable("")
	case err != nil:
		return nil, fmt.Errorf("ping: account %s: %w", iq.To.Bare(), err)
	}
	return nil, nil
}

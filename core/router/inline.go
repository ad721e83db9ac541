package router

import (
	"context"
	"errors"

	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
)

// HandlesAccountSet reports whether a module answers an IQ set with this
// payload addressed to the sender's own account (such as carbons'
// <enable xmlns='urn:xmpp:carbons:2'/>). The session layer offers a Bind
// 2 inline feature (XEP-0386) only when it does.
func (h *Host) HandlesAccountSet(payload stanza.Name) bool {
	return h.iq(module.ToAccount, module.Set, payload) != nil
}

// errNoHandler is returned by InlineSet for a payload no module handles.
var errNoHandler = errors.New("router: no module handles this inline request")

// InlineSet runs the account IQ set handler for payload as if origin's
// client had sent <iq type='set'> with it to its own account, without a
// reply on the wire: Bind 2 (XEP-0386) enables session features inside
// the authentication request, and their answers go into its result. It
// returns the handler's result payload or error.
func (h *Host) InlineSet(ctx context.Context, origin module.Resource, payload *stanza.Element) (*stanza.Element, error) {
	handler := h.iq(module.ToAccount, module.Set, payload.Name)
	if handler == nil {
		return nil, errNoHandler
	}
	s := stanza.NewIQ(origin.JID(), origin.JID().Bare(), "set", "bind2-inline", payload)
	return handler(ctx, &module.IQ{Stanza: s, Origin: origin, Target: module.ToAccount})
}

// Package last implements XEP-0012 Last Activity: the server's uptime, and
// how long ago an account was last connected, for those allowed to know.
//
// A query to the domain (§5) is answered with the seconds since this module
// was provisioned, that is since the host started, without text.
//
// A query to an account's bare JID (§3, the offline user query) is answered
// by the server on the account's behalf:
//   - an account that does not exist gets service-unavailable (RFC 6121
//     §8.5.1, as for every IQ to a missing account);
//   - a requester that is neither the account itself nor a contact with a
//     subscription to its presence ('from' or 'both' in the account's
//     roster) gets forbidden, which §3 requires: last activity would leak
//     presence (§8);
//   - an account with at least one connected resource gets seconds='0'
//     (§3: "at least one connected or available resource");
//   - otherwise the seconds since the last logout and the status text of
//     that last unavailable presence, as the presence module recorded them
//     (storage.LastActivity), or item-not-found if nothing was ever
//     recorded.
//
// Queries to a full JID (§4) are delivered to that client by the router.
// This module only reads last activity; the presence module writes it.
package last

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"kontor.im/kontor/core/rosterstate"

	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

// NS is the last activity namespace.
const NS = "jabber:iq:last"

func init() {
	module.Register(module.Info{
		ID:          "last",
		Description: "Tells the server's uptime and accounts' last activity to their contacts",
		Specs: []module.Spec{
			{ID: "XEP-0012", Name: "Last Activity", Version: "2.0", Status: module.Complete},
		},
		Default: true,
		New:     func() module.Module { return &last{now: time.Now} },
	})
}

type last struct {
	now     func() time.Time
	host    module.Host
	store   storage.Store
	started time.Time
}

func (l *last) Provision(h module.Host) error {
	if h.Store() == nil {
		return errors.New("last: the host has no store")
	}
	l.host, l.store, l.started = h, h.Store(), l.now()
	name := stanza.Name{Space: NS, Local: "query"}
	h.HandleIQ(module.ToHost, module.Get, name, l.uptime)
	h.HandleIQ(module.ToAccount, module.Get, name, l.account)
	h.AddDisco(module.ToHost, module.Disco{Features: []string{NS}})
	h.AddDisco(module.ToAccount, module.Disco{Features: []string{NS}})
	return nil
}

// query renders the answer.
func query(d time.Duration, status string) *stanza.Element {
	secs := max(int64(d/time.Second), 0)
	return stanza.New(NS, "query").Set("seconds", strconv.FormatInt(secs, 10)).AppendText(status)
}

func (l *last) uptime(ctx context.Context, iq *module.IQ) (*stanza.Element, error) {
	return query(l.now().Sub(l.started), ""), nil
}

func (l *last) account(ctx context.Context, iq *module.IQ) (*stanza.Element, error) {
	owner := iq.To.Bare()
	if iq.To.IsZero() {
		owner = iq.From.Bare()
	}
	if owner.IsZero() {
		return nil, stanza.ErrServiceUnavailable("")
	}
	if iq.From.Bare() != owner {
		// The router hands IQs for accounts to their handlers before it
		// checks that the account exists.
		_, err := l.store.Account(ctx, owner.String())
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return nil, stanza.ErrServiceUnavailable("")
		case err != nil:
			return nil, fmt.Errorf("last: account %s: %w", owner, err)
		}
		ok, err := rosterstate.SharesPresence(ctx, l.store, owner, iq.From)
		if err != nil {
			return nil, fmt.Errorf("last: %w", err)
		}
		if !ok {
			return nil, stanza.ErrForbidden("")
		}
	}
	if len(l.host.Resources(owner)) > 0 {
		return query(0, ""), nil
	}
	at, status, err := l.store.LastActivity(ctx, owner.String())
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, stanza.ErrItemNotFound("")
	case err != nil:
		return nil, fmt.Errorf("last: last activity of %s: %w", owner, err)
	}
	return query(l.now().Sub(at), status), nil
}

package session

import (
	"context"
	"log/slog"
	"net/netip"

	"kontor.im/kontor/core/jid"
)

// connHandler adds a connection's attributes (remote address, account,
// full JID) to each record it handles, in the order and with the keys that
// Logger.With would give them. With would keep them preformatted in a
// cloned handler of about 300 bytes per connection for the life of the
// session; sessions log rarely, so they are formatted when a record is.
type connHandler struct {
	base    slog.Handler
	remote  netip.Addr
	account jid.JID // zero before authentication
	full    jid.JID // zero before binding
}

// setLog (re)makes the connection's logger from what it knows.
func (c *conn) setLog() {
	c.log = slog.New(&connHandler{base: c.srv.log.Handler(), remote: c.remote, account: c.account, full: c.full})
}

func (h *connHandler) attrs() []slog.Attr {
	as := make([]slog.Attr, 0, 3)
	as = append(as, slog.String("remote", h.remote.String()))
	if !h.account.IsZero() {
		as = append(as, slog.String("account", h.account.String()))
	}
	if !h.full.IsZero() {
		as = append(as, slog.String("jid", h.full.String()))
	}
	return as
}

func (h *connHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.base.Enabled(ctx, l)
}

func (h *connHandler) Handle(ctx context.Context, r slog.Record) error {
	n := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	n.AddAttrs(h.attrs()...)
	r.Attrs(func(a slog.Attr) bool {
		n.AddAttrs(a)
		return true
	})
	return h.base.Handle(ctx, n)
}

// WithAttrs and WithGroup return the base handler with the connection's
// attributes preformatted, as Logger.With would have.
func (h *connHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return h.base.WithAttrs(append(h.attrs(), as...))
}

func (h *connHandler) WithGroup(name string) slog.Handler {
	return h.base.WithAttrs(h.attrs()).WithGroup(name)
}

// Package register implements XEP-0077 In-Band Registration: for
// authenticated users, the registration query, password changes and
// (when allowed) removal of the account, through the module; and the
// registration of new accounts before authentication, through Registrar,
// which core/session calls.
//
// # Authenticated users (the module)
//
// Requests go to the server (to the domain, as XEP-0077 shows) or carry no
// 'to'; a request to the user's own bare JID is treated the same. They must
// come from a session of an account of this host; a request for another
// account is forbidden, and one from anywhere else gets
// service-unavailable (this host does not register foreign entities).
//
//   - get: <registered/>, the username and an empty <password/> (XEP-0077
//     §3.1 lets the password be empty), with instructions.
//   - set with <username/> and <password/>: a password change (§3.3). The
//     username must be the account's own (the localpart or the bare JID),
//     otherwise bad-request; a missing or empty username or password is
//     bad-request and changes nothing (§3.3: an empty password MUST NOT
//     become the new one). The password must satisfy the PasswordPolicy
//     (not-acceptable with the reason). New SCRAM-SHA-256 and SCRAM-SHA-1
//     credentials replace the old ones; the password itself is never
//     stored. The password_change option turns this off (not-allowed), for
//     accounts whose passwords live in a directory.
//   - set with <remove/>: deletes the account (§3.2) only if allow_remove
//     is set, otherwise not-allowed. It is off by default because in a
//     company accounts are created and removed by IT, together with
//     everything else a person has, not by a click in a chat client. When
//     it is on, the account and everything it owns is deleted, the result
//     is sent, and then every session of the account is closed with a
//     not-authorized stream error (§3.2).
//
// XEP-0077 §3.3 says a server SHOULD NOT echo the request in errors about
// password changes; the router echoes request payloads in error replies,
// so this module blanks the password in the request as soon as it has read
// it, and removes the payload altogether when it answers with an error.
//
// The module announces the disco feature "jabber:iq:register" whenever it
// offers a password change or removal: XEP-0077 §8 says the feature tells
// connected clients that password changes are possible in band. Whether
// new accounts may register is announced by the stream feature, which
// core/session offers when the Registrar is open.
//
// # New accounts (Registrar)
//
// In-band registration of new accounts happens before authentication, so
// core/session answers it, and asks a Registrar (see registrar.go). It is
// closed by default.
//
// Not implemented: XEP-0004 data forms in registration (§4; no extra
// fields are asked for), redirection to a web site (§5), and the
// deprecated <key/> element.
//
// golang.org/x/text/secure/precis (already used by core/jid and core/sasl)
// prepares passwords with the OpaqueString profile, exactly as SASL will,
// so that the length check counts what will be hashed.
package register

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

// NS is the jabber:iq:register namespace, which is also its disco feature.
const NS = "jabber:iq:register"

func init() {
	module.Register(module.Info{
		ID:          "register",
		Description: "In-band registration: password changes, optional account removal, and sign-up of new accounts when enabled",
		Specs: []module.Spec{{ID: "XEP-0077", Name: "In-Band Registration", Version: "2.4", Status: module.Complete,
			Note: "no data forms extensibility or redirection; removal only with allow_remove"}},
		// Default: the password change is something every deployment
		// with local passwords needs.
		Default: true,
		New:     func() module.Module { return &Module{opts: DefaultOptions()} },
	})
}

// Options configure the module.
type Options struct {
	// PasswordChange allows users to change their password in band.
	PasswordChange bool `mapstructure:"password_change"`
	// AllowRemove allows users to delete their own account in band.
	AllowRemove    bool `mapstructure:"allow_remove"`
	PasswordPolicy `mapstructure:",squash"`
}

// DefaultOptions returns the defaults: password changes allowed, removal
// not.
func DefaultOptions() Options {
	return Options{PasswordChange: true, PasswordPolicy: DefaultPasswordPolicy()}
}

// Validate checks the password policy.
func (o *Options) Validate() error { return o.PasswordPolicy.Validate() }

// Module is the register module of one virtual host.
type Module struct {
	opts Options
	host module.Host

	// removed maps a remove request (by identity) to the account it
	// deleted, from the handler until the Observe hook closes the
	// account's sessions after the result went out.
	removed sync.Map // *stanza.Stanza → jid.JID
}

var _ module.Configurable = (*Module)(nil)

// Options returns the module's options, filled with defaults.
func (m *Module) Options() any { return &m.opts }

// Provision declares the handlers, and the disco feature when there is
// something to offer.
func (m *Module) Provision(h module.Host) error {
	m.host = h
	name := stanza.Name{Space: NS, Local: "query"}
	for _, t := range []module.Target{module.ToHost, module.ToAccount} {
		h.HandleIQ(t, module.Get, name, m.get)
		h.HandleIQ(t, module.Set, name, m.set)
	}
	if m.opts.AllowRemove {
		h.Hook(module.Inbound, module.Observe, m.closeRemoved)
	}
	if m.opts.PasswordChange || m.opts.AllowRemove {
		h.AddDisco(module.ToHost, module.Disco{Features: []string{NS}})
	}
	return nil
}

// account returns the account a request is about: the sender's own, which
// must be on this host and addressed no further than its own bare JID.
func (m *Module) account(iq *module.IQ) (jid.JID, error) {
	if iq.Origin == nil || iq.From.IsZero() || iq.From.Local() == "" || iq.From.Domain() != m.host.Domain().String() {
		return jid.JID{}, stanza.ErrServiceUnavailable("")
	}
	own := iq.From.Bare()
	if iq.Target == module.ToAccount && !iq.To.IsZero() && iq.To.Bare() != own {
		return jid.JID{}, stanza.ErrForbidden("you may only manage your own account")
	}
	return own, nil
}

func (m *Module) get(ctx context.Context, iq *module.IQ) (*stanza.Element, error) {
	own, err := m.account(iq)
	if err != nil {
		return nil, err
	}
	text := "You are registered as " + own.String() + "."
	if m.opts.PasswordChange {
		text += " To change your password, send your username and a new password."
	}
	q := stanza.New(NS, "query")
	q.Append(
		stanza.New(NS, "instructions").AppendText(text),
		stanza.New(NS, "registered"),
		stanza.New(NS, "username").AppendText(own.Local()),
		stanza.New(NS, "password"),
	)
	return q, nil
}

func (m *Module) set(ctx context.Context, iq *module.IQ) (*stanza.Element, error) {
	q := iq.Payload()
	// Take the password out of the request before anything else, so that
	// no error reply and no Observe hook ever sees it.
	password := ""
	if p := q.Child(NS, "password"); p != nil {
		password = p.Text()
		p.SetText("")
	}
	res, err := m.dispatch(ctx, iq, password)
	if err != nil {
		iq.El.Nodes = nil
	}
	return res, err
}

func (m *Module) dispatch(ctx context.Context, iq *module.IQ, password string) (*stanza.Element, error) {
	own, err := m.account(iq)
	if err != nil {
		return nil, err
	}
	q := iq.Payload()
	if q.Child(NS, "remove") != nil {
		return nil, m.remove(ctx, iq, own)
	}
	return nil, m.changePassword(ctx, q, own, password)
}

func (m *Module) changePassword(ctx context.Context, q *stanza.Element, own jid.JID, password string) error {
	if !m.opts.PasswordChange {
		return stanza.ErrNotAllowed("passwords cannot be changed here; ask your administrator")
	}
	username := q.ChildText(NS, "username")
	if username == "" || password == "" {
		return stanza.ErrBadRequest("a password change needs your username and a new password")
	}
	if !sameAccount(username, own) {
		return stanza.ErrBadRequest("the username is not yours")
	}
	if err := m.opts.check(own.Local(), password); err != nil {
		return err
	}
	creds, err := m.opts.credentials(password)
	if err != nil {
		return err
	}
	switch err := m.host.Store().SetCredentials(ctx, own.String(), creds); {
	case errors.Is(err, storage.ErrNotFound):
		return stanza.Error{Type: stanza.Auth, Condition: stanza.RegistrationRequired, Text: "the account does not exist"}
	case err != nil:
		return fmt.Errorf("register: set credentials: %w", err)
	}
	m.host.Logger().InfoContext(ctx, "password changed", "account", own.String())
	return nil
}

// sameAccount reports whether username, a localpart or a bare JID (the
// data form of XEP-0077 uses the latter), names own.
func sameAccount(username string, own jid.JID) bool {
	if j, err := jid.Parse(username); err == nil && j.Local() != "" && j.IsBare() {
		return j == own
	}
	j, err := jid.New(username, own.Domain(), "")
	return err == nil && j == own
}

func (m *Module) remove(ctx context.Context, iq *module.IQ, own jid.JID) error {
	if !m.opts.AllowRemove {
		return stanza.ErrNotAllowed("accounts are removed by the administrators")
	}
	only := true
	iq.Payload().Children(func(c *stanza.Element) bool {
		only = c.Name == stanza.Name{Space: NS, Local: "remove"}
		return only
	})
	if !only {
		return stanza.ErrBadRequest("<remove/> must be the only element of the query")
	}
	switch err := m.host.Store().DeleteAccount(ctx, own.String()); {
	case errors.Is(err, storage.ErrNotFound):
		return stanza.Error{Type: stanza.Auth, Condition: stanza.RegistrationRequired, Text: "the account does not exist"}
	case err != nil:
		return fmt.Errorf("register: delete account: %w", err)
	}
	m.host.Logger().InfoContext(ctx, "account removed by its user", "account", own.String())
	// The sessions close after the result was routed (closeRemoved, in
	// Observe); closing now would drop the result, as a closing session
	// takes nothing more. The router routes a result and runs Observe only
	// for a request with a 'from', which sessions always stamp.
	if iq.From.IsZero() {
		m.closeSessions(own)
		return nil
	}
	m.removed.Store(iq.Stanza, own)
	return nil
}

// closeRemoved closes the sessions of an account removed by the request
// that has just been answered.
func (m *Module) closeRemoved(ctx context.Context, p *module.Packet) (module.Verdict, error) {
	if p.Stanza.Kind != stanza.KindIQ || p.Stanza.Type != "set" {
		return module.Continue, nil
	}
	if v, ok := m.removed.LoadAndDelete(p.Stanza); ok {
		m.closeSessions(v.(jid.JID))
	}
	return module.Continue, nil
}

func (m *Module) closeSessions(own jid.JID) {
	for _, r := range m.host.Resources(own) {
		r.Close(&stanza.StreamError{Condition: stanza.StreamNotAuthorized, Text: "the account was removed"})
	}
}

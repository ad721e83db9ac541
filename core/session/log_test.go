package session

import (
	"bytes"
	"log/slog"
	"net/netip"
	"regexp"
	"testing"

	"kontor.im/kontor/core/jid"
)

// TestConnHandlerMatchesWith checks that a connection's logger writes what
// Logger.With would have: the same attributes in the same order, also
// through a further With and a group.
func TestConnHandlerMatchesWith(t *testing.T) {
	remote := netip.MustParseAddr("192.0.2.7")
	account, full := jid.MustParse("alice@example.com"), jid.MustParse("alice@example.com/phone")
	stamp := regexp.MustCompile(`time=\S+ `)
	for _, tt := range []struct {
		name          string
		account, full jid.JID
	}{{"negotiating", jid.JID{}, jid.JID{}}, {"authenticated", account, jid.JID{}}, {"bound", account, full}} {
		t.Run(tt.name, func(t *testing.T) {
			var want, got bytes.Buffer
			base := slog.New(slog.NewTextHandler(&want, nil)).With("component", "c2s")
			w := base.With("remote", remote.String())
			if !tt.account.IsZero() {
				w = w.With("account", tt.account.String())
			}
			if !tt.full.IsZero() {
				w = w.With("jid", tt.full.String())
			}
			g := slog.New(&connHandler{base: slog.New(slog.NewTextHandler(&got, nil)).With("component", "c2s").Handler(),
				remote: remote, account: tt.account, full: tt.full})
			for _, l := range []*slog.Logger{w, g} {
				l.Info("authenticated", "profile", "sasl2")
				l.With("resent", 3).Warn("session resumed")
				l.WithGroup("g").Info("grouped", "k", "v")
			}
			if a, b := stamp.ReplaceAllString(got.String(), ""), stamp.ReplaceAllString(want.String(), ""); a != b {
				t.Errorf("got\n%s\nwant\n%s", a, b)
			}
		})
	}
}

package gate

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"kontor.im/kontor/core/stanza"
)

func TestStanzaError(t *testing.T) {
	tests := []struct {
		name string
		d    Decision
		typ  stanza.ErrorType
		text string
	}{
		{"refusal", Decision{ID: "d1", Reason: "guest_not_sponsored", Message: "Guests only."}, stanza.Cancel, "Guests only. (guest_not_sponsored)"},
		{"timeout may be retried", Decision{ID: "d2", Reason: ReasonTimeout, Message: "Try again."}, stanza.Wait, "Try again. (policy_timeout)"},
		{"no message", Decision{ID: "d3", Reason: "x"}, stanza.Cancel, "The policy of this server does not allow this. (x)"},
		{"unavailable", Failed(ReasonUnavailable, "No engine.", nil), stanza.Cancel, "No engine. (policy_unavailable)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.d.StanzaError()
			if e.Condition != stanza.PolicyViolation || e.Type != tt.typ || e.Text != tt.text {
				t.Errorf("got %+v", e)
			}
			if e.App == nil || e.App.Name != (stanza.Name{Space: NS, Local: "decision"}) || e.App.Get("reason") != tt.d.Reason || e.App.Get("id") != tt.d.ID {
				t.Errorf("app condition %v", e.App)
			}
		})
	}
}

type registrationOnly struct {
	Decider
	got RegistrationInput
	d   Decision
}

func (r *registrationOnly) Registration(_ context.Context, in RegistrationInput) Decision {
	r.got = in
	return r.d
}

func TestRegistrationGate(t *testing.T) {
	tests := []struct {
		name     string
		d        Decision
		username string
		remote   netip.Addr
		allow    bool
		wantJID  string
		wantAddr string
		reasonIn string
	}{
		{"allowed", Decision{Allow: true, Reason: "open"}, "Gast", netip.MustParseAddr("192.0.2.1"), true, "gast@example.com", "192.0.2.1", ""},
		{"refused", Decision{Reason: "reserved_by_directory", Message: "Taken."}, "anna", netip.Addr{}, false, "anna@example.com", "", "Taken. (reserved_by_directory)"},
		{"invalid username", Decision{Reason: "bad"}, "a b/c", netip.Addr{}, false, "", "", "does not allow this. (bad)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &registrationOnly{d: tt.d}
			ok, why := RegistrationGate{Decider: r}.AllowRegistration(context.Background(), "example.com", tt.username, tt.remote)
			if ok != tt.allow || (!ok && !strings.HasSuffix(why, tt.reasonIn)) || (ok && why != "") {
				t.Errorf("got %v %q", ok, why)
			}
			if r.got.JID != tt.wantJID || r.got.Remote != tt.wantAddr || r.got.Domain != "example.com" || r.got.Username != tt.username {
				t.Errorf("asked %+v", r.got)
			}
		})
	}
	if ok, why := (RegistrationGate{}).AllowRegistration(context.Background(), "example.com", "x", netip.Addr{}); ok || why == "" {
		t.Errorf("nil decider: %v %q", ok, why)
	}
}

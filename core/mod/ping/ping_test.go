package ping_test

import (
	"slices"
	"testing"

	"kontor.im/kontor/core/mod/ping"
	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
)

func TestPing(t *testing.T) {
	srv := modtest.New(t, modtest.Options{}, modtest.Module(t, "ping"))
	srv.Account("alice")
	srv.Account("bob")
	a := srv.Connect("alice@example.com/phone")
	tests := []struct {
		name     string
		xml      string
		wantCond string
		wantFrom string
	}{
		{"server", `<iq type='get' id='p' to='example.com'><ping xmlns='urn:xmpp:ping'/></iq>`, "", "example.com"},
		{"own account without to", `<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>`, "", ""},
		{"own bare JID", `<iq type='get' id='p' to='alice@example.com'><ping xmlns='urn:xmpp:ping'/></iq>`, "", "alice@example.com"},
		{"another account", `<iq type='get' id='p' to='bob@example.com'><ping xmlns='urn:xmpp:ping'/></iq>`, "", "bob@example.com"},
		{"no such account", `<iq type='get' id='p' to='nobody@example.com'><ping xmlns='urn:xmpp:ping'/></iq>`, stanza.ServiceUnavailable, "nobody@example.com"},
		{"set", `<iq type='set' id='p' to='example.com'><ping xmlns='urn:xmpp:ping'/></iq>`, stanza.ServiceUnavailable, "example.com"},
		{"other namespace", `<iq type='get' id='p' to='example.com'><ping xmlns='urn:xmpp:pong'/></iq>`, stanza.ServiceUnavailable, "example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.SendXML(tt.xml)
			r := a.NextIQ("p")
			if got := modtest.ErrorCondition(r); got != tt.wantCond {
				t.Fatalf("condition %q, want %q: %s", got, tt.wantCond, r.El)
			}
			if r.From.String() != tt.wantFrom || r.To != a.JID {
				t.Errorf("reply from %q to %q", r.From, r.To)
			}
			if tt.wantCond == "" && r.Payload() != nil {
				t.Errorf("result has a payload: %s", r.El)
			}
		})
	}
}

func TestDiscoFeature(t *testing.T) {
	srv := modtest.New(t, modtest.Options{}, modtest.Module(t, "ping"))
	for _, target := range []module.Target{module.ToHost, module.ToAccount} {
		if f := srv.Host.DiscoInfo(target).Features; !slices.Equal(f, []string{ping.NS}) {
			t.Errorf("%s features = %q", target, f)
		}
	}
}

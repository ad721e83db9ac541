package pep

import (
	"slices"
	"testing"
	"time"

	"kontor.im/kontor/core/dataform"
	"kontor.im/kontor/core/jid" // tests only: the reference ver implementation
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/xmlstream"
)

func element(t testing.TB, s string) *stanza.Element {
	t.Helper()
	el, err := xmlstream.ParseElement([]byte(s), xmlstream.Limits{})
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return el
}

func TestNotifyNodes(t *testing.T) {
	q := element(t, `<query xmlns='http://jabber.org/protocol/disco#info'>
<feature var='urn:xmpp:omemo:2:devices+notify'/><feature var='eu.siacs.conversations.axolotl.devicelist+notify'/>
<feature var='urn:xmpp:ping'/><feature var='+notify'/><feature var='urn:xmpp:omemo:2:devices+notify'/></query>`)
	got := notifyNodes(q)
	if want := []string{"eu.siacs.conversations.axolotl.devicelist", "urn:xmpp:omemo:2:devices"}; !slices.Equal(got, want) {
		t.Errorf("notifyNodes = %q, want %q", got, want)
	}
	in := interest(got)
	if !in.has("urn:xmpp:omemo:2:devices") || in.has("urn:xmpp:ping") {
		t.Errorf("interest.has is wrong")
	}
}

func TestCapsCache(t *testing.T) {
	c := newCapsCache(2)
	a, b, d := capsKey{"sha-1", "n", "a"}, capsKey{"sha-1", "n", "b"}, capsKey{"sha-1", "n", "d"}
	c.put(a, interest{"x"})
	c.put(b, interest{})
	c.get(a) // a is now the most recent
	c.put(d, interest{"y"})
	tests := []struct {
		name string
		key  capsKey
		ok   bool
	}{
		{"recently used stays", a, true},
		{"least recently used is evicted", b, false},
		{"newest stays", d, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, ok := c.get(tt.key); ok != tt.ok {
				t.Errorf("get(%v) ok = %v, want %v", tt.key, ok, tt.ok)
			}
		})
	}
	if c.len() != 2 {
		t.Errorf("len = %d, want 2", c.len())
	}
	c.put(a, interest{"z"}) // replacing does not grow it
	if got, _ := c.get(a); !slices.Equal(got, interest{"z"}) || c.len() != 2 {
		t.Errorf("after replace: %v, len %d", got, c.len())
	}
}

func TestPendingQueries(t *testing.T) {
	p := newPendingQueries()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	p.now = func() time.Time { return now }
	k := capsKey{"sha-1", "n", "v"}
	alice, bob := jid.MustParse("alice@example.com"), jid.MustParse("bob@example.com")
	carol := jid.MustParse("carol@example.com/x")
	w1 := waiter{owner: alice, full: carol}
	w2 := waiter{owner: bob, full: carol}

	q := p.add(k, w1)
	if q == nil || q.to != carol {
		t.Fatalf("first add: %+v", q)
	}
	if again := p.add(k, w2); again != nil {
		t.Errorf("second add while in flight sent a query")
	}
	p.add(k, w2) // not twice
	if _, ok := p.take(q.id, jid.MustParse("dave@example.com/y")); ok {
		t.Errorf("an answer from another JID was taken")
	}
	got, ok := p.take(q.id, carol)
	if !ok || !slices.Equal(got.waiters, []waiter{w1, w2}) {
		t.Errorf("take = %+v, %v", got, ok)
	}
	if _, ok := p.take(q.id, carol); ok || p.len() != 0 {
		t.Errorf("a query was taken twice")
	}

	q = p.add(k, w1)
	now = now.Add(pendingTimeout)
	q2 := p.add(k, w2)
	if q2 == nil || q2.id == q.id || p.len() != 1 {
		t.Errorf("after the time-out a new query is due: %+v (len %d)", q2, p.len())
	}

	for i := range maxPending + 10 {
		p.add(capsKey{"sha-1", "n", string(rune('a'+i%26)) + string(rune(i))}, w1)
	}
	if p.len() > maxPending {
		t.Errorf("len = %d beyond %d", p.len(), maxPending)
	}
}

func TestDecodeConfig(t *testing.T) {
	tests := []struct {
		name   string
		stored string
		want   Config
	}{
		{"empty: the defaults", "", DefaultConfig()},
		{"round trip", string(Config{Access: AccessRoster, MaxItems: 0, Persist: true, SendLast: SendNever,
			RosterGroups: []string{"A"}, Title: "t"}.encode()),
			Config{Access: AccessRoster, MaxItems: 0, Persist: true, SendLast: SendNever, RosterGroups: []string{"A"}, Title: "t"}},
		{"missing fields keep defaults", `{"access_model":"open"}`,
			Config{Access: AccessOpen, MaxItems: 1, Persist: true, SendLast: SendOnSubAndPresence, NotifyRetract: true, NotifyDelete: true}},
		{"not JSON fails closed", `{`, func() Config { c := DefaultConfig(); c.Access = AccessWhitelist; return c }()},
		{"unknown access model fails closed", `{"access_model":"authorize"}`, func() Config { c := DefaultConfig(); c.Access = AccessWhitelist; return c }()},
		{"unknown send_last", `{"send_last_published_item":"sometimes"}`, func() Config { c := DefaultConfig(); c.SendLast = SendNever; return c }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := decodeConfig([]byte(tt.stored)); !configEqual(got, tt.want) || got.NotifyRetract != tt.want.NotifyRetract {
				t.Errorf("decodeConfig = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestConfigFormRoundTrip(t *testing.T) {
	c := Config{Access: AccessRoster, MaxItems: 7, Persist: false, SendLast: SendOnSub, NotifyRetract: false,
		NotifyDelete: true, RosterGroups: []string{"B", "A"}, Title: "T"}
	f := c.Form(dataform.TypeForm, []string{"C"})
	el := f.Element()
	parsed, err := dataform.Parse(el)
	if err != nil {
		t.Fatalf("the configuration form does not parse: %v", err)
	}
	parsed.Type = dataform.TypeSubmit
	got, err := ApplyForm(DefaultConfig(), &parsed, 100, NSNodeConfig)
	if err != nil {
		t.Fatal(err)
	}
	want := c
	want.RosterGroups = []string{"A", "B"}
	if !configEqual(got, want) || got.NotifyRetract != want.NotifyRetract || got.NotifyDelete != want.NotifyDelete {
		t.Errorf("submitting the form back gives %+v, want %+v", got, want)
	}
}

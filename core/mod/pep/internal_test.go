package pep

import (
	"crypto/sha1"
	"slices"
	"testing"
	"time"

	"kontor.im/kontor/core/dataform"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/mod/disco" // tests only: the reference ver implementation
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

// The examples of XEP-0115 §5.2 and §5.3.
const (
	simpleInfo = `<query xmlns='http://jabber.org/protocol/disco#info' node='http://code.google.com/p/exodus#QgayPKawpkPSDYmwT/WM94uAlu0='>
<identity category='client' name='Exodus 0.9.1' type='pc'/>
<feature var='http://jabber.org/protocol/caps'/>
<feature var='http://jabber.org/protocol/disco#info'/>
<feature var='http://jabber.org/protocol/disco#items'/>
<feature var='http://jabber.org/protocol/muc'/>
</query>`
	complexInfo = `<query xmlns='http://jabber.org/protocol/disco#info' node='http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w='>
<identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>
<identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/>
<feature var='http://jabber.org/protocol/caps'/>
<feature var='http://jabber.org/protocol/disco#info'/>
<feature var='http://jabber.org/protocol/disco#items'/>
<feature var='http://jabber.org/protocol/muc'/>
<x xmlns='jabber:x:data' type='result'>
<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>
<field var='ip_version' type='text-multi'><value>ipv4</value><value>ipv6</value></field>
<field var='os'><value>Mac</value></field>
<field var='os_version'><value>10.5.1</value></field>
<field var='software'><value>Psi</value></field>
<field var='software_version'><value>0.11</value></field>
</x>
</query>`
)

func TestCapsVer(t *testing.T) {
	tests := []struct {
		name, info, ver string
	}{
		{"XEP-0115 §5.2", simpleInfo, "QgayPKawpkPSDYmwT/WM94uAlu0="},
		{"XEP-0115 §5.3", complexInfo, "q07IKJEyjvHSyhy//CH0CxmKi8w="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := element(t, tt.info)
			got, err := capsVer(q, sha1.New())
			if err != nil || got != tt.ver {
				t.Errorf("capsVer = %q, %v; want %q", got, err, tt.ver)
			}
			info, err := disco.ParseInfo(q)
			if err != nil {
				t.Fatal(err)
			}
			if ref, err := info.Ver(); err != nil || ref != got {
				t.Errorf("disco.Info.Ver = %q, %v; capsVer = %q", ref, err, got)
			}
		})
	}
	ill := []struct{ name, info string }{
		{"duplicate feature", `<query xmlns='http://jabber.org/protocol/disco#info'><feature var='a'/><feature var='a'/></query>`},
		{"duplicate identity", `<query xmlns='http://jabber.org/protocol/disco#info'><identity category='c' type='t'/><identity category='c' type='t'/></query>`},
		{"identity without type", `<query xmlns='http://jabber.org/protocol/disco#info'><identity category='c'/></query>`},
		{"feature without var", `<query xmlns='http://jabber.org/protocol/disco#info'><feature/></query>`},
		{"two forms of a type", `<query xmlns='http://jabber.org/protocol/disco#info'>` +
			`<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>u</value></field></x>` +
			`<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>u</value></field></x></query>`},
	}
	for _, tt := range ill {
		t.Run("ill-formed: "+tt.name, func(t *testing.T) {
			if v, err := capsVer(element(t, tt.info), sha1.New()); err == nil {
				t.Errorf("capsVer = %q, want an error", v)
			}
		})
	}
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

func BenchmarkCapsVer(b *testing.B) {
	q := element(b, complexInfo)
	h := sha1.New()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := capsVer(q, h); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCapsHash(t *testing.T) {
	tests := []struct {
		name string
		size int // bytes; 0 for unsupported
	}{
		{"sha-1", 20}, {"sha-224", 28}, {"sha-256", 32}, {"sha-384", 48}, {"sha-512", 64},
		{"md5", 0}, {"", 0}, {"SHA-1", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := capsHash(tt.name)
			switch {
			case tt.size == 0 && h != nil:
				t.Errorf("capsHash(%q) is supported", tt.name)
			case tt.size > 0 && (h == nil || h.Size() != tt.size):
				t.Errorf("capsHash(%q) = %v", tt.name, h)
			}
		})
	}
}

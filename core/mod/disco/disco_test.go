package disco_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"kontor.im/kontor/core/dataform"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/mod/disco"
	_ "kontor.im/kontor/core/mod/ping"
	_ "kontor.im/kontor/core/mod/version"
	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

// extra is a test module that declares disco information the way a careless
// module might: duplicates, a form without FORM_TYPE, an invalid form and
// two forms with the same FORM_TYPE.
type extra struct{}

func (extra) Provision(h module.Host) error {
	good := dataform.New(dataform.TypeResult, "urn:test:form", dataform.Field{Var: "b", Values: []string{"2", "1"}}, dataform.Field{Var: "a"})
	second := dataform.New(dataform.TypeResult, "urn:test:form", dataform.Field{Var: "c"})
	untyped := dataform.Form{Type: dataform.TypeResult, Fields: []dataform.Field{{Var: "x"}}}
	h.AddDisco(module.ToHost, module.Disco{
		Identities: []module.Identity{{Category: "server", Type: "im", Name: "Kontor"}, {Category: "pubsub", Type: "pep"}},
		Features:   []string{"urn:test:a", disco.NSInfo, "urn:test:a"},
		Forms:      []*stanza.Element{good.Element(), second.Element(), untyped.Element(), stanza.New(dataform.NS, "x")},
	})
	return nil
}

func init() {
	module.Register(module.Info{ID: "disco-test-extra", New: func() module.Module { return extra{} }})
}

// configured returns the disco module with contact addresses.
func configured(t *testing.T, c disco.ContactAddresses) router.Enabled {
	t.Helper()
	e := modtest.Module(t, "disco")
	o := e.Module.(module.Configurable).Options().(*disco.Options)
	o.ContactAddresses = c
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	return e
}

// info sends a disco#info query and returns the parsed answer, or the
// error condition.
func query(t *testing.T, c *modtest.Client, id, to, ns, node string) (*stanza.Stanza, string) {
	t.Helper()
	attrs := ""
	if to != "" {
		attrs = " to='" + to + "'"
	}
	nodeAttr := ""
	if node != "" {
		nodeAttr = " node='" + node + "'"
	}
	c.SendXML("<iq type='get' id='" + id + "'" + attrs + "><query xmlns='" + ns + "'" + nodeAttr + "/></iq>")
	r := c.NextIQ(id)
	if r.Type == "error" {
		return r, modtest.ErrorCondition(r)
	}
	return r, ""
}

func info(t *testing.T, r *stanza.Stanza) disco.Info {
	t.Helper()
	i, err := disco.ParseInfo(r.Payload())
	if err != nil {
		t.Fatalf("%v in %s", err, r.El)
	}
	return i
}

func caps(t *testing.T, srv *modtest.Server) *stanza.Element {
	t.Helper()
	for _, f := range srv.Host.StreamFeatures() {
		if f.Name.Space == disco.NSCaps && f.Name.Local == "c" {
			return f
		}
	}
	return nil
}

func TestHostInfoFeatures(t *testing.T) {
	own := []string{disco.NSCaps, disco.NSInfo, disco.NSItems}
	tests := []struct {
		name     string
		mods     []string // in provisioning order; disco added at its place
		features []string
	}{
		{"disco alone", []string{"disco"}, own},
		{"ping and version around disco", []string{"ping", "disco", "version"},
			[]string{disco.NSCaps, disco.NSInfo, disco.NSItems, "jabber:iq:version", "urn:xmpp:ping"}},
		{"disco last", []string{"version", "ping", "disco"},
			[]string{disco.NSCaps, disco.NSInfo, disco.NSItems, "jabber:iq:version", "urn:xmpp:ping"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mods []router.Enabled
			for _, id := range tt.mods {
				mods = append(mods, modtest.Module(t, id))
			}
			srv := modtest.New(t, modtest.Options{}, mods...)
			srv.Account("alice")
			a := srv.Connect("alice@example.com/phone")
			r, cond := query(t, a, "d1", "example.com", disco.NSInfo, "")
			if cond != "" {
				t.Fatalf("error %s", cond)
			}
			if r.From.String() != "example.com" || r.To != a.JID {
				t.Errorf("reply from %q to %q", r.From, r.To)
			}
			i := info(t, r)
			if !slices.Equal(i.Features, tt.features) {
				t.Errorf("features = %q, want exactly %q", i.Features, tt.features)
			}
			wantID := []disco.Identity{{Category: "server", Type: "im", Name: "Kontor"}}
			if !slices.Equal(i.Identities, wantID) {
				t.Errorf("identities = %v, want %v", i.Identities, wantID)
			}
			if len(i.Forms) != 0 || i.Node != "" {
				t.Errorf("forms %v, node %q; want none", i.Forms, i.Node)
			}
		})
	}
}

func TestServerInfoForm(t *testing.T) {
	tests := []struct {
		name string
		c    disco.ContactAddresses
		want []dataform.Field // nil: no form
	}{
		{name: "no addresses", c: disco.ContactAddresses{}},
		{
			name: "some addresses",
			c: disco.ContactAddresses{
				Abuse:    []string{"mailto:abuse@example.com", "xmpp:abuse@example.com"},
				Security: []string{"mailto:security@example.com"},
				Status:   []string{"https://status.example.com"},
			},
			want: []dataform.Field{
				{Var: "FORM_TYPE", Type: dataform.Hidden, Values: []string{disco.NSServerInfo}},
				{Var: "abuse-addresses", Values: []string{"mailto:abuse@example.com", "xmpp:abuse@example.com"}},
				{Var: "security-addresses", Values: []string{"mailto:security@example.com"}},
				{Var: "status-addresses", Values: []string{"https://status.example.com"}},
			},
		},
		{
			name: "every role",
			c: disco.ContactAddresses{
				Abuse: []string{"xmpp:a@example.com"}, Admin: []string{"xmpp:b@example.com"}, Feedback: []string{"xmpp:c@example.com"},
				Sales: []string{"xmpp:d@example.com"}, Security: []string{"xmpp:e@example.com"}, Status: []string{"xmpp:f@example.com"},
				Support: []string{"xmpp:g@example.com"},
			},
			want: []dataform.Field{
				{Var: "FORM_TYPE", Type: dataform.Hidden, Values: []string{disco.NSServerInfo}},
				{Var: "abuse-addresses", Values: []string{"xmpp:a@example.com"}},
				{Var: "admin-addresses", Values: []string{"xmpp:b@example.com"}},
				{Var: "feedback-addresses", Values: []string{"xmpp:c@example.com"}},
				{Var: "sales-addresses", Values: []string{"xmpp:d@example.com"}},
				{Var: "security-addresses", Values: []string{"xmpp:e@example.com"}},
				{Var: "status-addresses", Values: []string{"xmpp:f@example.com"}},
				{Var: "support-addresses", Values: []string{"xmpp:g@example.com"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := modtest.New(t, modtest.Options{}, configured(t, tt.c))
			srv.Account("alice")
			a := srv.Connect("alice@example.com/phone")
			r, cond := query(t, a, "d1", "example.com", disco.NSInfo, "")
			if cond != "" {
				t.Fatalf("error %s", cond)
			}
			i := info(t, r)
			if tt.want == nil {
				if len(i.Forms) != 0 {
					t.Fatalf("forms = %v, want none", i.Forms)
				}
				return
			}
			if len(i.Forms) != 1 {
				t.Fatalf("forms = %v, want one", i.Forms)
			}
			f := i.Forms[0]
			if f.Type != dataform.TypeResult || f.FormType() != disco.NSServerInfo {
				t.Errorf("form type %q, FORM_TYPE %q", f.Type, f.FormType())
			}
			if !slices.EqualFunc(f.Fields, tt.want, func(a, b dataform.Field) bool {
				return a.Var == b.Var && a.Type == b.Type && slices.Equal(a.Values, b.Values)
			}) {
				t.Errorf("fields = %+v, want %+v", f.Fields, tt.want)
			}
			// The account's info has no server information.
			r, _ = query(t, a, "d2", "", disco.NSInfo, "")
			if len(info(t, r).Forms) != 0 {
				t.Error("the account's disco#info has a form")
			}
		})
	}
}

func TestCaps(t *testing.T) {
	tests := []struct {
		name string
		mods func(t *testing.T) []router.Enabled
	}{
		{"disco alone", func(t *testing.T) []router.Enabled { return []router.Enabled{modtest.Module(t, "disco")} }},
		{"with contact addresses and modules after disco", func(t *testing.T) []router.Enabled {
			return []router.Enabled{
				configured(t, disco.ContactAddresses{Admin: []string{"xmpp:admin@example.com"}, Abuse: []string{"mailto:abuse@example.com"}}),
				modtest.Module(t, "ping"), modtest.Module(t, "version"), modtest.Module(t, "disco-test-extra"),
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := modtest.New(t, modtest.Options{}, tt.mods(t)...)
			srv.Account("alice")
			a := srv.Connect("alice@example.com/phone")

			c := caps(t, srv)
			if c == nil {
				t.Fatal("no caps stream feature")
			}
			ver := c.Get("ver")
			if c.Get("hash") != "sha-1" || c.Get("node") != disco.CapsNode || ver == "" {
				t.Fatalf("caps feature %s", c)
			}
			if again := caps(t, srv); again.Get("ver") != ver {
				t.Errorf("ver changed: %s then %s", ver, again.Get("ver"))
			}

			r, cond := query(t, a, "d1", "example.com", disco.NSInfo, "")
			if cond != "" {
				t.Fatalf("error %s", cond)
			}
			plain := info(t, r)
			if got, err := plain.Ver(); err != nil || got != ver {
				t.Errorf("ver of the live disco#info = %q, %v; the stream feature says %q", got, err, ver)
			}
			if !slices.Contains(plain.Features, disco.NSCaps) {
				t.Error("caps feature not advertised")
			}

			r, cond = query(t, a, "d2", "example.com", disco.NSInfo, disco.CapsNode+"#"+ver)
			if cond != "" {
				t.Fatalf("caps node: error %s", cond)
			}
			withNode := info(t, r)
			if withNode.Node != disco.CapsNode+"#"+ver {
				t.Errorf("node = %q", withNode.Node)
			}
			withNode.Node = ""
			if got, _ := withNode.Ver(); got != ver {
				t.Errorf("ver of the caps node info = %q, want %q", got, ver)
			}
		})
	}
}

// TestNormalised checks what a careless module's declarations become.
func TestNormalised(t *testing.T) {
	srv := modtest.New(t, modtest.Options{}, modtest.Module(t, "disco"), modtest.Module(t, "disco-test-extra"))
	srv.Account("alice")
	a := srv.Connect("alice@example.com/phone")
	r, cond := query(t, a, "d1", "example.com", disco.NSInfo, "")
	if cond != "" {
		t.Fatal(cond)
	}
	i := info(t, r)
	wantIDs := []disco.Identity{{Category: "pubsub", Type: "pep"}, {Category: "server", Type: "im", Name: "Kontor"}}
	if !slices.Equal(i.Identities, wantIDs) {
		t.Errorf("identities = %v, want %v", i.Identities, wantIDs)
	}
	wantFeatures := []string{disco.NSCaps, disco.NSInfo, disco.NSItems, "urn:test:a"}
	if !slices.Equal(i.Features, wantFeatures) {
		t.Errorf("features = %q, want %q", i.Features, wantFeatures)
	}
	if len(i.Forms) != 1 || i.Forms[0].FormType() != "urn:test:form" || len(i.Forms[0].Fields) != 3 {
		t.Errorf("forms = %+v, want only the first urn:test:form", i.Forms)
	}
	if _, err := i.Ver(); err != nil {
		t.Errorf("Ver: %v", err)
	}
}

func TestHostQueries(t *testing.T) {
	srv := modtest.New(t, modtest.Options{}, modtest.Module(t, "disco"))
	srv.Account("alice")
	a := srv.Connect("alice@example.com/phone")
	ver := caps(t, srv).Get("ver")
	tests := []struct {
		name     string
		xml      string
		wantCond string
		want     string // the expected payload, serialised, for results
	}{
		{"items", `<iq type='get' id='q' to='example.com'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`, "",
			`<query xmlns='http://jabber.org/protocol/disco#items'/>`},
		{"items of a node", `<iq type='get' id='q' to='example.com'><query xmlns='http://jabber.org/protocol/disco#items' node='x'/></iq>`, stanza.ItemNotFound, ""},
		{"items of the caps node", `<iq type='get' id='q' to='example.com'><query xmlns='http://jabber.org/protocol/disco#items' node='https://kontor.im#` + ver + `'/></iq>`, stanza.ItemNotFound, ""},
		{"info of an unknown node", `<iq type='get' id='q' to='example.com'><query xmlns='http://jabber.org/protocol/disco#info' node='http://jabber.org/protocol/commands'/></iq>`, stanza.ItemNotFound, ""},
		{"info of a wrong caps ver", `<iq type='get' id='q' to='example.com'><query xmlns='http://jabber.org/protocol/disco#info' node='https://kontor.im#AAAA'/></iq>`, stanza.ItemNotFound, ""},
		{"info of the bare caps node", `<iq type='get' id='q' to='example.com'><query xmlns='http://jabber.org/protocol/disco#info' node='https://kontor.im'/></iq>`, stanza.ItemNotFound, ""},
		{"info set", `<iq type='set' id='q' to='example.com'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, stanza.ServiceUnavailable, ""},
		{"unknown namespace", `<iq type='get' id='q' to='example.com'><query xmlns='urn:example:nothing'/></iq>`, stanza.ServiceUnavailable, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.SendXML(tt.xml)
			r := a.NextIQ("q")
			if got := modtest.ErrorCondition(r); got != tt.wantCond {
				t.Fatalf("condition %q, want %q: %s", got, tt.wantCond, r.El)
			}
			if tt.want != "" {
				if got := r.Payload().String(); got != tt.want {
					t.Errorf("payload %s, want %s", got, tt.want)
				}
			}
		})
	}
}

func TestAccountQueries(t *testing.T) {
	srv := modtest.New(t, modtest.Options{}, modtest.Module(t, "disco"), modtest.Module(t, "ping"))
	ctx := context.Background()
	alice := srv.Account("alice")
	for _, local := range []string{"from", "both", "to", "none", "pending", "stranger"} {
		srv.Account(local)
	}
	for contact, sub := range map[string]storage.Subscription{"from": storage.SubFrom, "both": storage.SubBoth, "to": storage.SubTo, "none": storage.SubNone} {
		if _, err := srv.Store.PutRosterItem(ctx, alice.String(), storage.RosterItem{Contact: contact + "@example.com", Subscription: sub}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := srv.Store.PutRosterItem(ctx, alice.String(), storage.RosterItem{Contact: "pending@example.com", Subscription: storage.SubNone, AskOut: true}); err != nil {
		t.Fatal(err)
	}
	wantInfo := `<query xmlns='http://jabber.org/protocol/disco#info'><identity category='account' type='registered'/>` +
		`<feature var='http://jabber.org/protocol/disco#info'/><feature var='http://jabber.org/protocol/disco#items'/><feature var='urn:xmpp:ping'/></query>`
	wantItems := `<query xmlns='http://jabber.org/protocol/disco#items'/>`
	tests := []struct {
		name, from, to, ns, node string
		wantCond, want           string
	}{
		{"self info", "alice@example.com/phone", "alice@example.com", disco.NSInfo, "", "", wantInfo},
		{"self info without to", "alice@example.com/phone", "", disco.NSInfo, "", "", wantInfo},
		{"self items", "alice@example.com/phone", "alice@example.com", disco.NSItems, "", "", wantItems},
		{"self items without to", "alice@example.com/phone", "", disco.NSItems, "", "", wantItems},
		{"self info of a node", "alice@example.com/phone", "", disco.NSInfo, "urn:xmpp:microblog:0", stanza.ItemNotFound, ""},
		{"self items of a node", "alice@example.com/phone", "", disco.NSItems, "urn:xmpp:microblog:0", stanza.ItemNotFound, ""},
		{"contact with from", "from@example.com/x", "alice@example.com", disco.NSInfo, "", "", wantInfo},
		{"contact with both", "both@example.com/x", "alice@example.com", disco.NSInfo, "", "", wantInfo},
		{"contact with both, items", "both@example.com/x", "alice@example.com", disco.NSItems, "", "", wantItems},
		{"contact with to", "to@example.com/x", "alice@example.com", disco.NSInfo, "", stanza.ServiceUnavailable, ""},
		{"contact with none", "none@example.com/x", "alice@example.com", disco.NSInfo, "", stanza.ServiceUnavailable, ""},
		{"pending out", "pending@example.com/x", "alice@example.com", disco.NSInfo, "", stanza.ServiceUnavailable, ""},
		{"stranger", "stranger@example.com/x", "alice@example.com", disco.NSInfo, "", stanza.ServiceUnavailable, ""},
		{"stranger, items", "stranger@example.com/x", "alice@example.com", disco.NSItems, "", stanza.ServiceUnavailable, ""},
		{"stranger asks a node", "stranger@example.com/x", "alice@example.com", disco.NSInfo, "x", stanza.ServiceUnavailable, ""},
		{"no such account", "alice@example.com/phone", "nobody@example.com", disco.NSInfo, "", stanza.ServiceUnavailable, ""},
		{"no such account, items", "alice@example.com/phone", "nobody@example.com", disco.NSItems, "", stanza.ServiceUnavailable, ""},
	}
	clients := map[string]*modtest.Client{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := clients[tt.from]
			if c == nil {
				c = srv.Connect(tt.from)
				clients[tt.from] = c
			}
			r, cond := query(t, c, "q", tt.to, tt.ns, tt.node)
			if cond != tt.wantCond {
				t.Fatalf("condition %q, want %q: %s", cond, tt.wantCond, r.El)
			}
			if tt.to == "" {
				if !r.From.IsZero() {
					t.Errorf("a reply to a request without 'to' has from %q", r.From)
				}
			} else if r.From != jid.MustParse(tt.to) {
				t.Errorf("reply from %q, want %q", r.From, tt.to)
			}
			if tt.want != "" {
				if got := r.Payload().String(); got != tt.want {
					t.Errorf("payload\n %s\nwant\n %s", got, tt.want)
				}
			}
			if tt.wantCond != "" && !strings.Contains(r.El.String(), "type='cancel'") {
				t.Errorf("error type: %s", r.El)
			}
		})
	}
}

// TestConcurrentFirstUse makes the first uses of the lazily computed
// information race each other: streams asking for features and clients
// asking for disco#info at once.
func TestConcurrentFirstUse(t *testing.T) {
	srv := modtest.New(t, modtest.Options{}, modtest.Module(t, "disco"), modtest.Module(t, "ping"))
	const n = 8
	var clients []*modtest.Client
	for i := range n {
		local := "user" + string(rune('a'+i))
		srv.Account(local)
		clients = append(clients, srv.Connect(local+"@example.com/r"))
	}
	iq := modtest.Parse(t, "<iq type='get' id='c' to='example.com'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	vers := make(chan string, 2*n)
	done := make(chan struct{})
	for _, c := range clients {
		go func() {
			s := &stanza.Stanza{El: iq.El.Clone(), Kind: iq.Kind, Type: iq.Type, ID: iq.ID, To: iq.To}
			s.SetFrom(c.JID)
			srv.Router.RouteFrom(context.Background(), c.Res, s)
			done <- struct{}{}
		}()
		go func() {
			for _, f := range srv.Host.StreamFeatures() {
				vers <- f.Get("ver")
			}
			done <- struct{}{}
		}()
	}
	for range 2 * n {
		<-done
	}
	close(vers)
	want := caps(t, srv).Get("ver")
	for v := range vers {
		if v != want {
			t.Errorf("ver %q, want %q", v, want)
		}
	}
	for _, c := range clients {
		if got, _ := info(t, c.NextIQ("c")).Ver(); got != want {
			t.Errorf("%s got info with ver %q, want %q", c.JID, got, want)
		}
	}
}

// component declares a component of the host, as the muc module does.
type component struct{}

func (component) Provision(h module.Host) error {
	h.AddDisco(module.ToHost, module.Disco{Items: []module.DiscoItem{
		{JID: jid.MustParse("conference.example.com"), Name: "Chatrooms"},
		{JID: jid.MustParse("upload.example.com")},
	}})
	return nil
}

func TestHostItemsListComponents(t *testing.T) {
	srv := modtest.New(t, modtest.Options{}, modtest.Module(t, "disco"),
		router.Enabled{Info: module.Info{ID: "component"}, Module: component{}})
	srv.Account("alice")
	a := srv.Connect("alice@example.com/phone")
	a.SendXML(`<iq type='get' id='q' to='example.com'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`)
	want := `<query xmlns='http://jabber.org/protocol/disco#items'><item jid='conference.example.com' name='Chatrooms'/><item jid='upload.example.com'/></query>`
	if got := a.NextIQ("q").Payload().String(); got != want {
		t.Fatalf("items %s, want %s", got, want)
	}
}

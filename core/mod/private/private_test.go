package private

import (
	"context"
	"errors"
	"strings"
	"testing"

	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

func newServer(t *testing.T, configure func(*Options)) *modtest.Server {
	t.Helper()
	info, ok := module.Lookup("private")
	if !ok {
		t.Fatal("private is not registered")
	}
	m := info.New()
	opts := m.(module.Configurable).Options().(*Options)
	if configure != nil {
		configure(opts)
	}
	if err := opts.Validate(); err != nil {
		t.Fatal(err)
	}
	srv := modtest.New(t, modtest.Options{}, router.Enabled{Info: info, Module: m})
	srv.Account("hamlet")
	srv.Account("macbeth")
	return srv
}

const prefs = `<exodus xmlns='exodus:prefs'><defaultnick>Hamlet</defaultnick></exodus>`

func TestPrivate(t *testing.T) {
	tests := []struct {
		name     string
		setup    string // stored by hamlet first, if not ""
		from     string // "hamlet" or "macbeth"
		request  string
		wantCond string
		// want is the expected payload of the result ("" for none).
		want string
	}{
		{name: "set", from: "hamlet",
			request: `<iq type='set' id='q'><query xmlns='jabber:iq:private'>` + prefs + `</query></iq>`},
		{name: "set to own bare JID", from: "hamlet",
			request: `<iq type='set' id='q' to='hamlet@example.com'><query xmlns='jabber:iq:private'>` + prefs + `</query></iq>`},
		{name: "get stored", setup: prefs, from: "hamlet",
			request: `<iq type='get' id='q'><query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/></query></iq>`,
			want:    `<query xmlns='jabber:iq:private'>` + prefs + `</query>`},
		{name: "get nothing stored echoes the element", from: "hamlet",
			request: `<iq type='get' id='q'><query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/></query></iq>`,
			want:    `<query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/></query>`},
		{name: "another namespace is separate", setup: prefs, from: "hamlet",
			request: `<iq type='get' id='q'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query></iq>`,
			want:    `<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>`},
		{name: "same namespace, other element name is separate", setup: prefs, from: "hamlet",
			request: `<iq type='get' id='q'><query xmlns='jabber:iq:private'><other xmlns='exodus:prefs'/></query></iq>`,
			want:    `<query xmlns='jabber:iq:private'><other xmlns='exodus:prefs'/></query>`},
		{name: "get for another user", setup: prefs, from: "macbeth",
			request:  `<iq type='get' id='q' to='hamlet@example.com'><query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/></query></iq>`,
			wantCond: stanza.Forbidden},
		{name: "set for another user", from: "macbeth",
			request:  `<iq type='set' id='q' to='hamlet@example.com'><query xmlns='jabber:iq:private'>` + prefs + `</query></iq>`,
			wantCond: stanza.Forbidden},
		{name: "get without a child", from: "hamlet",
			request:  `<iq type='get' id='q'><query xmlns='jabber:iq:private'/></iq>`,
			wantCond: stanza.NotAcceptable},
		{name: "set without a child", from: "hamlet",
			request:  `<iq type='set' id='q'><query xmlns='jabber:iq:private'> </query></iq>`,
			wantCond: stanza.NotAcceptable},
		{name: "jabber:client is reserved", from: "hamlet",
			request:  `<iq type='set' id='q'><query xmlns='jabber:iq:private'><message xmlns='jabber:client'/></query></iq>`,
			wantCond: stanza.NotAcceptable},
		{name: "a child without its own namespace is reserved", from: "hamlet",
			request:  `<iq type='set' id='q'><query xmlns='jabber:iq:private'><prefs/></query></iq>`,
			wantCond: stanza.NotAcceptable},
		{name: "jabber:server is reserved", from: "hamlet",
			request:  `<iq type='get' id='q'><query xmlns='jabber:iq:private'><x xmlns='jabber:server'/></query></iq>`,
			wantCond: stanza.NotAcceptable},
		{name: "the stream namespace is reserved", from: "hamlet",
			request:  `<iq type='set' id='q'><query xmlns='jabber:iq:private'><features xmlns='http://etherx.jabber.org/streams'/></query></iq>`,
			wantCond: stanza.NotAcceptable},
		{name: "to the server is not this service", from: "hamlet",
			request:  `<iq type='get' id='q' to='example.com'><query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/></query></iq>`,
			wantCond: stanza.ServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, nil)
			h := srv.Connect("hamlet@example.com/denmark")
			m := srv.Connect("macbeth@example.com/castle")
			if tt.setup != "" {
				h.SendXML(`<iq type='set' id='setup'><query xmlns='jabber:iq:private'>` + tt.setup + `</query></iq>`)
				if r := h.NextIQ("setup"); r.Type != "result" {
					t.Fatalf("setup: %s", r.El)
				}
			}
			c := map[string]*modtest.Client{"hamlet": h, "macbeth": m}[tt.from]
			c.SendXML(tt.request)
			r := c.NextIQ("q")
			if tt.wantCond != "" {
				if got := modtest.ErrorCondition(r); got != tt.wantCond {
					t.Fatalf("got %s, want error %s", r.El, tt.wantCond)
				}
				return
			}
			if r.Type != "result" {
				t.Fatalf("got %s, want a result", r.El)
			}
			got := ""
			if p := r.Payload(); p != nil {
				got = p.String()
			}
			if tt.want != "" {
				tt.want = modtest.Parse(t, `<iq>`+tt.want+`</iq>`).Payload().String()
			}
			if got != tt.want {
				t.Fatalf("payload:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestStoredUnderKey(t *testing.T) {
	srv := newServer(t, nil)
	h := srv.Connect("hamlet@example.com/denmark")
	h.SendXML(`<iq type='set' id='s'><query xmlns='jabber:iq:private'>` + prefs +
		`<storage xmlns='storage:bookmarks'><conference jid='council@conference.example.com' autojoin='true'/></storage></query></iq>`)
	if r := h.NextIQ("s"); r.Type != "result" {
		t.Fatalf("set: %s", r.El)
	}
	ctx := context.Background()
	b, err := srv.Store.Private(ctx, "hamlet@example.com", "{exodus:prefs}exodus")
	if err != nil || !strings.Contains(string(b), "<defaultnick>Hamlet</defaultnick>") {
		t.Fatalf("{exodus:prefs}exodus = %q, %v", b, err)
	}
	if _, err := srv.Store.Private(ctx, "hamlet@example.com", "{storage:bookmarks}storage"); err != nil {
		t.Fatalf("{storage:bookmarks}storage: %v", err)
	}
	if _, err := srv.Store.Private(ctx, "macbeth@example.com", "{exodus:prefs}exodus"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("macbeth sees hamlet's data: %v", err)
	}
}

func TestRefusedSetStoresNothing(t *testing.T) {
	srv := newServer(t, func(o *Options) { o.MaxBytes = 1024 })
	h := srv.Connect("hamlet@example.com/denmark")
	big := `<notes xmlns='urn:example:notes'>` + strings.Repeat("x", 2000) + `</notes>`
	h.SendXML(`<iq type='set' id='s'><query xmlns='jabber:iq:private'>` + prefs + big + `</query></iq>`)
	if got := modtest.ErrorCondition(h.NextIQ("s")); got != stanza.NotAcceptable {
		t.Fatalf("got %q, want not-acceptable", got)
	}
	if _, err := srv.Store.Private(context.Background(), "hamlet@example.com", "{exodus:prefs}exodus"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("part of a refused set was stored: %v", err)
	}
}

func TestGetSeveral(t *testing.T) {
	srv := newServer(t, nil)
	h := srv.Connect("hamlet@example.com/denmark")
	h.SendXML(`<iq type='set' id='s'><query xmlns='jabber:iq:private'>` + prefs + `</query></iq>`)
	h.NextIQ("s")
	h.SendXML(`<iq type='get' id='g'><query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/><storage xmlns='storage:bookmarks'/></query></iq>`)
	r := h.NextIQ("g")
	p := r.Payload()
	ex := p.Child("exodus:prefs", "exodus")
	if ex == nil || ex.ChildText("exodus:prefs", "defaultnick") != "Hamlet" || p.Child("storage:bookmarks", "storage") == nil {
		t.Fatalf("got %s", r.El)
	}
}

func TestDisco(t *testing.T) {
	srv := newServer(t, nil)
	for _, f := range srv.Host.DiscoInfo(module.ToHost).Features {
		if f == NS {
			return
		}
	}
	t.Fatal("jabber:iq:private is not in the host's disco#info")
}

func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts Options
		ok   bool
	}{
		{"default", Options{MaxBytes: DefaultMaxBytes}, true},
		{"zero", Options{}, false},
		{"too large", Options{MaxBytes: 4 << 20}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.opts.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v", err)
			}
		})
	}
}

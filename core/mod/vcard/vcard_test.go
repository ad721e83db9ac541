package vcard

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
	srv, _ := newServerModule(t, configure)
	return srv
}

func newServerModule(t *testing.T, configure func(*Options)) (*modtest.Server, *Module) {
	t.Helper()
	info, ok := module.Lookup("vcard")
	if !ok {
		t.Fatal("vcard is not registered")
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
	srv.Account("alice")
	srv.Account("bob")
	return srv, m.(*Module)
}

const aliceCard = `<vCard xmlns='vcard-temp'><FN>Alice Liddell</FN><NICKNAME>alice</NICKNAME></vCard>`

func TestVCard(t *testing.T) {
	tests := []struct {
		name string
		// setup runs as alice before the request (a vCard set), if not "".
		setup   string
		from    string // "alice" or "bob"
		request string
		// wantCond is the expected error condition; "" means a result.
		wantCond string
		// wantFN is the FN expected in the result's vCard ("-" for an
		// empty vCard, "" for a result without payload).
		wantFN string
	}{
		{name: "own vCard, none stored", from: "alice",
			request: `<iq type='get' id='q'><vCard xmlns='vcard-temp'/></iq>`, wantFN: "-"},
		{name: "own vCard", setup: aliceCard, from: "alice",
			request: `<iq type='get' id='q'><vCard xmlns='vcard-temp'/></iq>`, wantFN: "Alice Liddell"},
		{name: "own vCard by own bare JID", setup: aliceCard, from: "alice",
			request: `<iq type='get' id='q' to='alice@example.com'><vCard xmlns='vcard-temp'/></iq>`, wantFN: "Alice Liddell"},
		{name: "another user's vCard", setup: aliceCard, from: "bob",
			request: `<iq type='get' id='q' to='alice@example.com'><vCard xmlns='vcard-temp'/></iq>`, wantFN: "Alice Liddell"},
		{name: "another user without a vCard", from: "bob",
			request:  `<iq type='get' id='q' to='alice@example.com'><vCard xmlns='vcard-temp'/></iq>`,
			wantCond: stanza.ServiceUnavailable},
		{name: "no such user: same answer", from: "bob",
			request:  `<iq type='get' id='q' to='nobody@example.com'><vCard xmlns='vcard-temp'/></iq>`,
			wantCond: stanza.ServiceUnavailable},
		{name: "set own", from: "alice",
			request: `<iq type='set' id='q'>` + aliceCard + `</iq>`},
		{name: "set own by own bare JID", from: "alice",
			request: `<iq type='set' id='q' to='alice@example.com'>` + aliceCard + `</iq>`},
		{name: "set another user's", from: "bob",
			request:  `<iq type='set' id='q' to='alice@example.com'><vCard xmlns='vcard-temp'><FN>Mallory</FN></vCard></iq>`,
			wantCond: stanza.Forbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, nil)
			a := srv.Connect("alice@example.com/home")
			b := srv.Connect("bob@example.com/phone")
			if tt.setup != "" {
				a.SendXML(`<iq type='set' id='setup'>` + tt.setup + `</iq>`)
				if r := a.NextIQ("setup"); r.Type != "result" {
					t.Fatalf("setup: %s", r.El)
				}
			}
			c := map[string]*modtest.Client{"alice": a, "bob": b}[tt.from]
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
			v := r.Payload()
			switch tt.wantFN {
			case "":
				if v != nil {
					t.Fatalf("result has a payload: %s", r.El)
				}
			case "-":
				if v == nil || v.Name != (stanza.Name{Space: NS, Local: "vCard"}) || v.FirstChild() != nil {
					t.Fatalf("want an empty vCard, got %s", r.El)
				}
			default:
				if v == nil || v.Name.Space != NS || v.ChildText(NS, "FN") != tt.wantFN {
					t.Fatalf("want FN %q, got %s", tt.wantFN, r.El)
				}
			}
		})
	}
}

func TestSetStoresSerialisedVCard(t *testing.T) {
	srv := newServer(t, nil)
	a := srv.Connect("alice@example.com/home")
	a.SendXML(`<iq type='set' id='s'>` + aliceCard + `</iq>`)
	if r := a.NextIQ("s"); r.Type != "result" {
		t.Fatalf("set: %s", r.El)
	}
	b, err := srv.Store.VCard(context.Background(), "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "<vCard xmlns='vcard-temp'>") || !strings.Contains(string(b), "<FN>Alice Liddell</FN>") {
		t.Fatalf("stored %q", b)
	}

	// An empty vCard deletes it.
	a.SendXML(`<iq type='set' id='d'><vCard xmlns='vcard-temp'>  </vCard></iq>`)
	if r := a.NextIQ("d"); r.Type != "result" {
		t.Fatalf("delete: %s", r.El)
	}
	if _, err := srv.Store.VCard(context.Background(), "alice@example.com"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("after an empty set: %v, want ErrNotFound", err)
	}
}

func TestForbiddenSetLeavesVCard(t *testing.T) {
	srv := newServer(t, nil)
	a := srv.Connect("alice@example.com/home")
	b := srv.Connect("bob@example.com/phone")
	a.SendXML(`<iq type='set' id='s'>` + aliceCard + `</iq>`)
	a.NextIQ("s")
	b.SendXML(`<iq type='set' id='x' to='alice@example.com'><vCard xmlns='vcard-temp'><FN>Mallory</FN></vCard></iq>`)
	if got := modtest.ErrorCondition(b.NextIQ("x")); got != stanza.Forbidden {
		t.Fatalf("got %q, want forbidden", got)
	}
	a.SendXML(`<iq type='get' id='g'><vCard xmlns='vcard-temp'/></iq>`)
	if fn := a.NextIQ("g").Payload().ChildText(NS, "FN"); fn != "Alice Liddell" {
		t.Fatalf("FN = %q after a forbidden set", fn)
	}
}

func TestOversize(t *testing.T) {
	srv := newServer(t, func(o *Options) { o.MaxBytes = 2048 })
	a := srv.Connect("alice@example.com/home")
	photo := strings.Repeat("QUJD", 1024) // 4 KiB of base64
	a.SendXML(`<iq type='set' id='big'><vCard xmlns='vcard-temp'><FN>A</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>` +
		photo + `</BINVAL></PHOTO></vCard></iq>`)
	r := a.NextIQ("big")
	e, ok := stanza.ErrorOf(r)
	if !ok || e.Condition != stanza.NotAcceptable || e.Type != stanza.Modify {
		t.Fatalf("got %s, want modify/not-acceptable", r.El)
	}
	if _, err := srv.Store.VCard(context.Background(), "alice@example.com"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("an oversized vCard was stored: %v", err)
	}
	// Just under the limit is fine.
	a.SendXML(`<iq type='set' id='ok'><vCard xmlns='vcard-temp'><FN>A</FN><PHOTO><BINVAL>` +
		photo[:1500] + `</BINVAL></PHOTO></vCard></iq>`)
	if r := a.NextIQ("ok"); r.Type != "result" {
		t.Fatalf("got %s", r.El)
	}
}

func TestRoundTripKeepsContent(t *testing.T) {
	srv := newServer(t, nil)
	a := srv.Connect("alice@example.com/home")
	b := srv.Connect("bob@example.com/phone")
	card := `<vCard xmlns='vcard-temp' version='3.0'><FN>A &amp; B &lt;x&gt;</FN><EMAIL><INTERNET/><USERID>a@example.com</USERID></EMAIL>` +
		`<X-CUSTOM xmlns='urn:example:ext' xml:lang='de'>grüße</X-CUSTOM></vCard>`
	a.SendXML(`<iq type='set' id='s'>` + card + `</iq>`)
	a.NextIQ("s")
	b.SendXML(`<iq type='get' id='g' to='alice@example.com'><vCard xmlns='vcard-temp'/></iq>`)
	r := b.NextIQ("g")
	want := modtest.Parse(t, `<iq>`+card+`</iq>`).Payload().String()
	if got := r.Payload().String(); got != want {
		t.Fatalf("round trip:\n got %s\nwant %s", got, want)
	}
	if r.From.String() != "alice@example.com" {
		t.Fatalf("result from %q, want alice's bare JID", r.From)
	}
}

func TestRemoteRead(t *testing.T) {
	for _, remoteRead := range []bool{false, true} {
		srv, m := newServerModule(t, func(o *Options) { o.RemoteRead = remoteRead })
		a := srv.Connect("alice@example.com/home")
		a.SendXML(`<iq type='set' id='s'>` + aliceCard + `</iq>`)
		a.NextIQ("s")
		// There is no federation to send through yet: call the handler as
		// the router would for a request from another domain.
		req := modtest.Parse(t, `<iq type='get' id='r' from='eve@elsewhere.example/x' to='alice@example.com'><vCard xmlns='vcard-temp'/></iq>`)
		el, err := m.get(context.Background(), &module.IQ{Stanza: req, Target: module.ToAccount})
		if remoteRead {
			if err != nil || el.ChildText(NS, "FN") != "Alice Liddell" {
				t.Fatalf("remote_read: got %v, %v", el, err)
			}
			continue
		}
		if !errors.Is(err, stanza.ErrServiceUnavailable("")) {
			t.Fatalf("remote sender: got %v, %v; want service-unavailable", el, err)
		}
	}
}

func TestDisco(t *testing.T) {
	srv := newServer(t, nil)
	for _, f := range srv.Host.DiscoInfo(module.ToHost).Features {
		if f == "vcard-temp" {
			return
		}
	}
	t.Fatal("vcard-temp is not in the host's disco#info")
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		ok   bool
	}{
		{"default", Options{MaxBytes: DefaultMaxBytes}, true},
		{"too small", Options{MaxBytes: 100}, false},
		{"too large", Options{MaxBytes: 2 << 20}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.opts.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v", err)
			}
		})
	}
}

package session

import (
	"strings"
	"testing"
	"unicode/utf8"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/xmlstream"
)

func TestParseAuthenticate(t *testing.T) {
	parse := func(t *testing.T, x string) (*authRequest, error) {
		t.Helper()
		el, err := xmlstream.ParseElement([]byte(x), xmlstream.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		return parseAuthenticate(el)
	}
	r, err := parse(t, `<authenticate xmlns='urn:xmpp:sasl:2' mechanism='HT-SHA-256-NONE'>
		<initial-response>YWxpY2UAeA==</initial-response>
		<user-agent id='ua-1'><software>App</software><device>Phone</device></user-agent>
		<bind xmlns='urn:xmpp:bind:0'><tag>App</tag><enable xmlns='urn:xmpp:sm:3'/><enable xmlns='urn:xmpp:carbons:2'/></bind>
		<resume xmlns='urn:xmpp:sm:3' previd='p' h='3'/>
		<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-EXPR'/>
		<fast xmlns='urn:xmpp:fast:0' count='7' invalidate='1'/>
		<supported><mechanism>PLAIN</mechanism></supported>
	</authenticate>`)
	if err != nil {
		t.Fatal(err)
	}
	if r.mechanism != "HT-SHA-256-NONE" || string(r.initial) != "alice\x00x" || r.userAgent != "ua-1" ||
		r.software != "App" || r.device != "Phone" || !r.bind || r.tag != "App" || len(r.bindInline) != 2 ||
		r.resume == nil || r.requestToken != "HT-SHA-256-EXPR" || !r.fast || r.count != 7 || !r.invalidate {
		t.Fatalf("parsed %+v", r)
	}
	r, err = parse(t, `<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response/></authenticate>`)
	if err != nil || r.initial == nil || len(r.initial) != 0 || r.bind || r.fast {
		t.Fatalf("empty initial response: %+v, %v", r, err)
	}
	r, err = parse(t, `<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'/>`)
	if err != nil || r.initial != nil {
		t.Fatalf("no initial response: %+v, %v", r, err)
	}
	for name, x := range map[string]string{
		"no mechanism":     `<authenticate xmlns='urn:xmpp:sasl:2'/>`,
		"long mechanism":   `<authenticate xmlns='urn:xmpp:sasl:2' mechanism='` + strings.Repeat("A", 21) + `'/>`,
		"upgrade":          `<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN' upgrade='SCRAM-SHA-256'/>`,
		"not base64":       `<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>***</initial-response></authenticate>`,
		"negative count":   `<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><fast xmlns='urn:xmpp:fast:0' count='-1'/></authenticate>`,
		"count not number": `<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><fast xmlns='urn:xmpp:fast:0' count='x'/></authenticate>`,
		"request no mech":  `<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><request-token xmlns='urn:xmpp:fast:0'/></authenticate>`,
		"long user agent":  `<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><user-agent id='` + strings.Repeat("u", maxUserAgentID+1) + `'/></authenticate>`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := parse(t, x); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestBind2Resource(t *testing.T) {
	alice := jid.MustParse("alice@example.com")
	a := bind2Resource(alice, "Conversations", "ua-1")
	if !strings.HasPrefix(a, "Conversations/") || len(a) != len("Conversations/")+12 {
		t.Fatalf("resource %q", a)
	}
	if b := bind2Resource(alice, "Conversations", "ua-1"); b != a {
		t.Errorf("not stable: %q, %q", a, b)
	}
	for name, other := range map[string]string{
		"other client": bind2Resource(alice, "Conversations", "ua-2"),
		"other tag":    bind2Resource(alice, "Dino", "ua-1"),
		"other user":   bind2Resource(jid.MustParse("bob@example.com"), "Conversations", "ua-1"),
		"no id":        bind2Resource(alice, "Conversations", ""),
	} {
		if other == a || strings.Contains(other, "ua-") {
			t.Errorf("%s: %q", name, other)
		}
	}
	if r1, r2 := bind2Resource(alice, "x", ""), bind2Resource(alice, "x", ""); r1 == r2 {
		t.Errorf("without an id the resource is random: %q twice", r1)
	}
	long := bind2Resource(alice, strings.Repeat("é", 100), "u")
	if tag, _, _ := strings.Cut(long, "/"); utf8.RuneCountInString(tag) != maxBindTag {
		t.Errorf("long tag kept as %q", tag)
	}
	if r := bind2Resource(alice, "\u0000bad", "u"); strings.Contains(r, "/") {
		t.Errorf("invalid tag kept: %q", r)
	}
}

func FuzzParseAuthenticate(f *testing.F) {
	f.Add([]byte(`<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>AGFsaWNlAHg=</initial-response><user-agent id='u'/><bind xmlns='urn:xmpp:bind:0'><tag>t</tag><enable xmlns='urn:xmpp:sm:3' resume='true'/></bind></authenticate>`))
	f.Add([]byte(`<authenticate xmlns='urn:xmpp:sasl:2' mechanism='HT-SHA-256-NONE'><fast xmlns='urn:xmpp:fast:0' count='1' invalidate='true'/><request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/></authenticate>`))
	f.Add([]byte(`<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><resume xmlns='urn:xmpp:sm:3' previd='x' h='1'/></authenticate>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		el, err := xmlstream.ParseElement(b, xmlstream.Limits{MaxStanzaBytes: 1 << 16, MaxDepth: 16})
		if err != nil {
			return
		}
		r, err := parseAuthenticate(el)
		if err != nil {
			return
		}
		if r.mechanism == "" || len(r.mechanism) > 20 || r.count < 0 || utf8.RuneCountInString(r.userAgent) > maxUserAgentID {
			t.Fatalf("accepted %+v", r)
		}
		// Whatever it accepts yields a valid resource.
		if _, err := jid.MustParse("a@example.com").WithResource(bind2Resource(jid.MustParse("a@example.com"), r.tag, r.userAgent)); err != nil {
			t.Fatalf("resource from tag %q: %v", r.tag, err)
		}
	})
}

package bosh

import (
	"reflect"
	"testing"
)

func TestParseBody(t *testing.T) {
	for _, tc := range []struct {
		name  string
		raw   string
		want  body
		inner string
		err   bool
	}{
		{"creation", "<body xmlns='http://jabber.org/protocol/httpbind' content='text/xml; charset=utf-8' hold='1' rid='1573741820' to='example.com' ver='1.6' wait='60' xml:lang='en' xmpp:version='1.0' xmlns:xmpp='urn:xmpp:xbosh'/>",
			body{rid: 1573741820, hasRID: true, to: "example.com", ver: "1.6", wait: 60, hold: 1, lang: "en"}, "", false},
		{"stanzas", "<?xml version='1.0'?><body rid='2' sid='s' xmlns='http://jabber.org/protocol/httpbind'><message xmlns='jabber:client' to='a@b'><body>x</body></message><iq xmlns='jabber:client'/></body>",
			body{rid: 2, hasRID: true, sid: "s"}, "<message xmlns='jabber:client' to='a@b'><body>x</body></message><iq xmlns='jabber:client'/>", false},
		{"restart", "<body rid='3' sid='s' xmlns='http://jabber.org/protocol/httpbind' xmpp:restart='true' xmlns:xmpp='urn:xmpp:xbosh'/>",
			body{rid: 3, hasRID: true, sid: "s", restart: true}, "", false},
		{"terminate", "<body rid='4' sid='s' type='terminate' xmlns='http://jabber.org/protocol/httpbind'><presence xmlns='jabber:client' type='unavailable'/></body>",
			body{rid: 4, hasRID: true, sid: "s", typ: "terminate"}, "<presence xmlns='jabber:client' type='unavailable'/>", false},
		{"no rid", "<body sid='s' xmlns='http://jabber.org/protocol/httpbind'/>", body{}, "", true},
		{"bad rid", "<body rid='x' xmlns='http://jabber.org/protocol/httpbind'/>", body{}, "", true},
		{"huge rid", "<body rid='9007199254740993' xmlns='http://jabber.org/protocol/httpbind'/>", body{}, "", true},
		{"wrong namespace", "<body rid='1' xmlns='jabber:client'/>", body{}, "", true},
		{"two bodies", "<body rid='1' xmlns='http://jabber.org/protocol/httpbind'/><body rid='2' xmlns='http://jabber.org/protocol/httpbind'/>", body{}, "", true},
		{"text in body", "<body rid='1' xmlns='http://jabber.org/protocol/httpbind'>hello</body>", body{}, "", true},
		{"comment", "<body rid='1' xmlns='http://jabber.org/protocol/httpbind'><!-- x --></body>", body{}, "", true},
		{"DTD", "<!DOCTYPE body><body rid='1' xmlns='http://jabber.org/protocol/httpbind'/>", body{}, "", true},
		{"unclosed", "<body rid='1' xmlns='http://jabber.org/protocol/httpbind'><iq>", body{}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := parseBody([]byte(tc.raw))
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			if err != nil {
				return
			}
			inner := string(b.inner)
			b.inner = nil
			if !reflect.DeepEqual(*b, tc.want) || inner != tc.inner {
				t.Errorf("got %+v %q\nwant %+v %q", *b, inner, tc.want, tc.inner)
			}
		})
	}
}

// FuzzParseBody: parseBody never panics, and what it accepts has inner
// content that is a slice of the input within the body element.
func FuzzParseBody(f *testing.F) {
	for _, s := range []string{
		"<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='example.com' wait='60' hold='1'/>",
		"<body rid='2' sid='s' xmlns='http://jabber.org/protocol/httpbind'><message xmlns='jabber:client'><body>x</body></message></body>",
		"<body rid='3' sid='s' xmlns='http://jabber.org/protocol/httpbind' xmpp:restart='true' xmlns:xmpp='urn:xmpp:xbosh'/>",
		"<body rid='4' sid='s' type='terminate' xmlns='http://jabber.org/protocol/httpbind'></body>",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		b, err := parseBody(raw)
		if err != nil {
			return
		}
		if !b.hasRID || len(b.inner) > len(raw) {
			t.Fatalf("accepted %q as %+v", raw, b)
		}
	})
}

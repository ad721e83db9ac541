package s2s

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/xmlstream"
)

func TestDialbackKey(t *testing.T) {
	// XEP-0220 §2.4: HMAC-SHA256(SHA256(secret), receiving ' ' originating ' ' id), hex.
	secret := []byte("s3cr3tf0rd14lb4ck")
	k := sha256.Sum256(secret)
	m := hmac.New(sha256.New, k[:])
	m.Write([]byte("example.net example.com D60000229F"))
	want := hex.EncodeToString(m.Sum(nil))
	key := secretKey(secret)
	if got := dialbackKey(key, "example.net", "example.com", "D60000229F"); got != want {
		t.Fatalf("key %s, want %s", got, want)
	}
	if !keyValid(key, "example.net", "example.com", "D60000229F", want) {
		t.Error("the right key is refused")
	}
	for _, bad := range []struct{ r, o, id, k string }{
		{"example.org", "example.com", "D60000229F", want},
		{"example.net", "example.org", "D60000229F", want},
		{"example.net", "example.com", "other", want},
		{"example.net", "example.com", "D60000229F", want[:63]},
		{"example.net", "example.com", "D60000229F", ""},
	} {
		if keyValid(key, bad.r, bad.o, bad.id, bad.k) {
			t.Errorf("key accepted for %+v", bad)
		}
	}
}

func parse(t testing.TB, xml string) *stanza.Element {
	t.Helper()
	el, err := xmlstream.ParseElement([]byte(xml), xmlstream.Limits{})
	if err != nil {
		t.Fatalf("parse %s: %v", xml, err)
	}
	return el
}

func TestParseDialback(t *testing.T) {
	tests := []struct {
		name string
		xml  string
		want dialback
		ok   bool
	}{
		{"result request", "<db:result xmlns:db='jabber:server:dialback' from='a.example' to='b.example'>abc</db:result>",
			dialback{From: "a.example", To: "b.example", Key: "abc"}, true},
		{"verify request", "<verify xmlns='jabber:server:dialback' from='b.example' to='a.example' id='x1'> abc </verify>",
			dialback{Verify: true, From: "b.example", To: "a.example", ID: "x1", Key: "abc"}, true},
		{"valid answer", "<result xmlns='jabber:server:dialback' from='b.example' to='a.example' type='valid'/>",
			dialback{From: "b.example", To: "a.example", Type: "valid"}, true},
		{"domains are normalised", "<result xmlns='jabber:server:dialback' from='A.Example' to='b.example' type='invalid'/>",
			dialback{From: "a.example", To: "b.example", Type: "invalid"}, true},
		{"verify without id", "<verify xmlns='jabber:server:dialback' from='b.example' to='a.example'>abc</verify>", dialback{}, false},
		{"request without key", "<result xmlns='jabber:server:dialback' from='a.example' to='b.example'/>", dialback{}, false},
		{"from a user", "<result xmlns='jabber:server:dialback' from='u@a.example' to='b.example'>k</result>", dialback{}, false},
		{"no to", "<result xmlns='jabber:server:dialback' from='a.example'>k</result>", dialback{}, false},
		{"unknown type", "<result xmlns='jabber:server:dialback' from='a.example' to='b.example' type='maybe'/>", dialback{}, false},
		{"other namespace", "<result xmlns='jabber:server' from='a.example' to='b.example'>k</result>", dialback{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDialback(parse(t, tt.xml))
			if (err == nil) != tt.ok {
				t.Fatalf("err %v, want ok %v", err, tt.ok)
			}
			if tt.ok && got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDialbackRoundTrip(t *testing.T) {
	for _, d := range []dialback{
		{From: "a.example", To: "b.example", Key: "00ff"},
		{Verify: true, From: "b.example", To: "a.example", ID: "i", Key: "k"},
		{Verify: true, From: "b.example", To: "a.example", ID: "i", Type: "valid"},
	} {
		got, err := parseDialback(parse(t, string(d.element().AppendXML(nil, stanza.NSServer))))
		if err != nil || got != d {
			t.Errorf("round trip of %+v: %+v, %v", d, got, err)
		}
	}
}

// FuzzParseDialback: any element either parses into a dialback whose
// domains are valid and whose rendering parses back to the same value, or
// is refused; nothing panics.
func FuzzParseDialback(f *testing.F) {
	f.Add([]byte("<db:result xmlns:db='jabber:server:dialback' from='a.example' to='b.example'>abc</db:result>"))
	f.Fuzz(func(t *testing.T, b []byte) {
		el, err := xmlstream.ParseElement(b, xmlstream.Limits{MaxStanzaBytes: 4096})
		if err != nil {
			return
		}
		d, err := parseDialback(el)
		if err != nil {
			return
		}
		again, err := parseDialback(parse(t, string(d.element().AppendXML(nil, stanza.NSServer))))
		if err != nil || again != d {
			t.Fatalf("%+v renders to something that parses as %+v, %v", d, again, err)
		}
	})
}

// TestWriteNamespaces: stanzas go out in the stream's default namespace
// (jabber:server), and come back in as jabber:client.
func TestWriteNamespaces(t *testing.T) {
	el := parse(t, "<message to='b@b.example' from='a@a.example'><body>hi</body><x xmlns='urn:x'><y/></x></message>")
	out := string(el.AppendXML(nil, stanza.NSClient))
	want := "<message to='b@b.example' from='a@a.example'><body>hi</body><x xmlns='urn:x'><y/></x></message>"
	if out != want {
		t.Fatalf("written %s, want %s", out, want)
	}
	in := parse(t, "<message xmlns='jabber:server' to='b@b.example'><body>hi</body><x xmlns='urn:x'/></message>")
	toClient(in)
	if in.Name.Space != stanza.NSClient || in.Child(stanza.NSClient, "body") == nil || in.Child("urn:x", "x") == nil {
		t.Errorf("toClient: %s", in)
	}
}

func TestTargets(t *testing.T) {
	s := &Service{cfg: Config{Routes: map[string]string{"b.example": "127.0.0.1:5299"}}}
	s.cfg.defaults()
	got, err := s.targets(context.Background(), "b.example")
	if err != nil || len(got) != 1 || got[0] != (target{addr: "127.0.0.1:5299"}) {
		t.Fatalf("static route: %v, %v", got, err)
	}
	// .invalid never resolves (RFC 6761): the fallback is port 5269.
	got, err = s.targets(context.Background(), "nothing.invalid")
	if err != nil || len(got) != 1 || got[0] != (target{addr: "nothing.invalid:5269"}) {
		t.Fatalf("fallback: %v, %v", got, err)
	}
}

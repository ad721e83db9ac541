package websocket

import (
	"encoding/xml"
	"strings"
	"testing"

	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/xmlstream"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  string
		kind kind
		repl string
		err  bool
	}{
		{"open", "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.com' version='1.0'/>", kindOpen,
			"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>", false},
		{"open with lang and escaping", `<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="a&amp;'b" xml:lang="de" version="1.0" foo="x"></open>`, kindOpen,
			"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='a&amp;&#39;b' xml:lang='de' version='1.0'>", false},
		{"prefixed open", "<f:open xmlns:f='urn:ietf:params:xml:ns:xmpp-framing' to='example.com' version='1.0'/>", kindOpen,
			"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>", false},
		{"close", "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>", kindClose, "</stream:stream>", false},
		{"stanza", "<message xmlns='jabber:client' to='a@b'><body>hi</body></message>", kindElement, "", false},
		{"open in the wrong namespace is a stanza", "<open xmlns='jabber:client'/>", kindElement, "", false},
		{"framing namespace in a stanza", "<message xmlns='jabber:client'><body>urn:ietf:params:xml:ns:xmpp-framing</body></message>", kindElement, "", false},
		{"open with content", "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'><x/></open>", 0, "", true},
		{"open and more", "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'/><iq/>", 0, "", true},
		{"unknown framing element", "<reopen xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>", 0, "", true},
		{"broken", "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'", 0, "", true},
		{"text before open", "x<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>", 0, "", true},
		{"declaration before open", "<?xml version='1.0'?><open xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>", 0, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, repl, err := classify([]byte(tc.msg))
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			if err != nil {
				return
			}
			if k != tc.kind || string(repl) != tc.repl {
				t.Errorf("classify = %v %q, want %v %q", k, repl, tc.kind, tc.repl)
			}
		})
	}
}

// TestHeaderReadable: what an <open/> becomes is a header the session's
// stream reader accepts, with the same attributes.
func TestHeaderReadable(t *testing.T) {
	_, repl, err := classify([]byte("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.com' from='a@example.com' version='1.0' xml:lang='fr'/>"))
	if err != nil {
		t.Fatal(err)
	}
	rd := xmlstream.NewReader(strings.NewReader(string(repl)+"<iq xmlns='jabber:client' id='1' type='get'/>"), xmlstream.Limits{})
	h, err := rd.Header()
	if err != nil {
		t.Fatal(err)
	}
	want := xmlstream.Header{To: "example.com", From: "a@example.com", Version: "1.0", Lang: "fr", Namespace: stanza.NSClient}
	if h != want {
		t.Errorf("header = %+v, want %+v", h, want)
	}
	el, err := rd.Next()
	if err != nil || el.Name.Local != "iq" {
		t.Fatalf("next = %v, %v", el, err)
	}
}

func TestAppendElement(t *testing.T) {
	features := stanza.New(stanza.NSStream, "features").Append(stanza.New("urn:ietf:params:xml:ns:xmpp-bind", "bind"))
	msg := stanza.New(stanza.NSClient, "message").Set("to", "a@b").Append(stanza.New(stanza.NSClient, "body").AppendText("<&>"))
	se := (&stanza.StreamError{Condition: stanza.StreamPolicyViolation}).Element()
	for _, tc := range []struct {
		name  string
		el    *stanza.Element
		want  string
		space string
	}{
		{"features", features, "<stream:features xmlns:stream='http://etherx.jabber.org/streams'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>", stanza.NSStream},
		{"message", msg, "<message xmlns='jabber:client' to='a@b'><body>&lt;&amp;&gt;</body></message>", stanza.NSClient},
		{"stream error", se, "", stanza.NSStream},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := string(appendElement([]byte("prefix"), tc.el))
			if !strings.HasPrefix(got, "prefix") {
				t.Fatalf("lost what was before: %s", got)
			}
			got = got[len("prefix"):]
			if tc.want != "" && got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			// Every message is a standalone, namespace-well-formed document.
			var v struct{ XMLName xml.Name }
			if err := xml.Unmarshal([]byte(got), &v); err != nil || v.XMLName.Space != tc.space {
				t.Errorf("%s: %v, root %v", got, err, v.XMLName)
			}
		})
	}
}

func TestOpenElement(t *testing.T) {
	got := string(openElement("example.com", "a@example.com/r", "id'1"))
	want := "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' version='1.0' xml:lang='en' id='id&#39;1' from='example.com' to='a@example.com/r'/>"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// The server's <open/> read back is what the client's would be.
	k, _, err := classify([]byte(got))
	if err != nil || k != kindOpen {
		t.Errorf("classify(own open) = %v, %v", k, err)
	}
}

// FuzzClassify: classify never panics, and an <open/> always becomes a
// header the stream reader accepts with the same 'to'.
func FuzzClassify(f *testing.F) {
	for _, s := range []string{
		"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.com' version='1.0'/>",
		"<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>",
		"<message xmlns='jabber:client'><body>hi</body></message>",
		"<f:open xmlns:f='urn:ietf:params:xml:ns:xmpp-framing' to='a&amp;b' xml:lang='en'/>",
		"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'><x/></open>",
		" <close xmlns='urn:ietf:params:xml:ns:xmpp-framing'></close> ",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		k, repl, err := classify(msg)
		if err != nil || k != kindOpen {
			return
		}
		rd := xmlstream.NewReader(strings.NewReader(string(repl)), xmlstream.Limits{})
		if _, err := rd.Header(); err != nil {
			t.Fatalf("header %q from %q: %v", repl, msg, err)
		}
	})
}

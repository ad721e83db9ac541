package stanza

import (
	"errors"
	"strings"
	"testing"

	"kontor.im/kontor/core/jid"
)

func TestAppendXML(t *testing.T) {
	tests := []struct {
		name string
		el   *Element
		want string
	}{
		{"empty", New(NSClient, "presence"), "<presence/>"},
		{"attributes escaped", New(NSClient, "message").Set("to", `a'b"c<d>&e`), `<message to='a&apos;b&quot;c&lt;d&gt;&amp;e'/>`},
		{"text escaped", New(NSClient, "body").AppendText("1 < 2 & 3 > 2 'q' \"d\""), `<body>1 &lt; 2 &amp; 3 &gt; 2 'q' "d"</body>`},
		{"child namespace declared once", New(NSClient, "iq").Append(New("jabber:iq:roster", "query").Append(New("jabber:iq:roster", "item"))),
			"<iq><query xmlns='jabber:iq:roster'><item/></query></iq>"},
		{"stream prefix", New(NSStream, "features").Append(New("urn:ietf:params:xml:ns:xmpp-bind", "bind")),
			"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"},
		{"stream error", (&StreamError{Condition: StreamConflict}).Element(),
			"<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"},
		{"forbidden characters replaced", New(NSClient, "body").AppendText("a\x00b\x1bc\uFFFEd"), "<body>a\uFFFDb\uFFFDc\uFFFDd</body>"},
		{"invalid UTF-8 replaced", New(NSClient, "body").AppendText("a\xffb"), "<body>a\uFFFDb</body>"},
		{"newlines in attributes kept", New(NSClient, "x").Set("v", "a\nb\tc\rd"), "<x v='a&#xA;b&#x9;c&#xD;d'/>"},
		{"unicode kept", New(NSClient, "body").AppendText("Grüße 👋"), "<body>Grüße 👋</body>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(tt.el.AppendXML(nil, NSClient)); got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestElementHelpers(t *testing.T) {
	e := New(NSClient, "message").Set("type", "chat").Set("id", "1")
	e.Append(New(NSClient, "body").AppendText("hi"), New("urn:xmpp:receipts", "request"))
	if e.Get("type") != "chat" || !e.Has("id") || e.Has("to") {
		t.Fatal("attribute helpers")
	}
	e.Set("id", "")
	if e.Has("id") {
		t.Fatal("Set with an empty value did not remove the attribute")
	}
	if e.ChildText(NSClient, "body") != "hi" || e.Child("urn:xmpp:receipts", "request") == nil || e.Child("urn:other", "request") != nil {
		t.Fatal("child lookup")
	}
	c := e.Clone()
	c.Child(NSClient, "body").SetText("changed")
	if e.ChildText(NSClient, "body") != "hi" {
		t.Fatal("Clone shares children")
	}
	e.RemoveChildren("urn:xmpp:receipts", "request")
	if e.Child("urn:xmpp:receipts", "request") != nil || len(e.Nodes) != 1 {
		t.Fatal("RemoveChildren")
	}
	if tag := e.Tag(); strings.Contains(tag, "hi") || tag != "<message type='chat'><body/>" {
		t.Fatalf("Tag = %q: it must never show content", tag)
	}
}

func TestParse(t *testing.T) {
	ok := New(NSClient, "message").Set("to", "Bob@Example.com/x").Set("from", "alice@example.com")
	s, err := Parse(ok)
	if err != nil || s.Kind != KindMessage || s.To.String() != "bob@example.com/x" {
		t.Fatalf("Parse = %+v, %v", s, err)
	}
	_, err = Parse(New(NSClient, "message").Set("to", "a@b@c"))
	var se Error
	if !errors.As(err, &se) || se.Condition != JIDMalformed {
		t.Fatalf("malformed to: %v", err)
	}
	_, err = Parse(New(NSClient, "mesage"))
	var stErr *StreamError
	if !errors.As(err, &stErr) || stErr.Condition != StreamUnsupportedStanzaType {
		t.Fatalf("unknown stanza: %v", err)
	}
}

func TestErrorReply(t *testing.T) {
	alice, bob := jid.MustParse("alice@example.com/a"), jid.MustParse("bob@example.com")
	msg := NewMessage(alice, bob, "chat", "m1")
	msg.El.Append(New(NSClient, "body").AppendText("hello"))
	r := ErrorReply(msg, ErrServiceUnavailable("away"))
	if r.From != bob || r.To != alice || r.Type != "error" || r.ID != "m1" {
		t.Fatalf("addressing: %s", r.El)
	}
	if r.El.ChildText(NSClient, "body") != "hello" {
		t.Fatal("original payload not included")
	}
	e, ok := ErrorOf(r)
	if !ok || e.Condition != ServiceUnavailable || e.Type != Cancel || e.Text != "away" {
		t.Fatalf("ErrorOf = %+v", e)
	}
	if !errors.Is(e, Error{Condition: ServiceUnavailable}) {
		t.Fatal("errors.Is on condition")
	}
	if ErrorReply(r, ErrBadRequest("")) != nil {
		t.Fatal("an error stanza was answered with an error")
	}
	for _, typ := range []string{"set", "result"} {
		iq := NewIQ(alice, bob, typ, "i1", New("jabber:iq:register", "query").Append(New("jabber:iq:register", "password").AppendText("secret")))
		if r := ErrorReply(iq, ErrBadRequest("")); r.Payload().Name.Local != "error" || strings.Contains(r.El.String(), "secret") {
			t.Fatalf("an IQ %s payload was echoed: %s", typ, r.El)
		}
	}
	if msg.El.Get("type") != "chat" || msg.From != alice {
		t.Fatal("ErrorReply changed the original")
	}
}

func TestReaddress(t *testing.T) {
	alice, bob := jid.MustParse("alice@example.com/a"), jid.MustParse("bob@example.com")
	msg := NewMessage(alice, bob, "chat", "m1")
	c := msg.Readdress(alice.Bare(), bob)
	if c.El.Get("from") != "alice@example.com" || msg.El.Get("from") != "alice@example.com/a" {
		t.Fatalf("Readdress: %s / %s", c.El, msg.El)
	}
}

func BenchmarkAppendXML(b *testing.B) {
	msg := NewMessage(jid.MustParse("alice@example.com/laptop"), jid.MustParse("bob@example.com"), "chat", "a1b2c3")
	msg.El.Append(New(NSClient, "body").AppendText("Hello Bob, are we still on for lunch today?"))
	msg.El.Append(New("http://jabber.org/protocol/chatstates", "active"))
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = msg.El.AppendXML(buf[:0], NSClient)
	}
}

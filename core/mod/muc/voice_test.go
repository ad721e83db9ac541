package muc

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"kontor.im/kontor/core/dataform"
	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/stanza"
)

func voiceRequest(id string) string {
	return fmt.Sprintf("<message to='%s' id='%s'><x xmlns='jabber:x:data' type='submit'>"+
		"<field var='FORM_TYPE'><value>%s</value></field><field var='muc#role'><value>participant</value></field></x></message>", roomJID, id, NSRequest)
}

func voiceAnswer(nick, realJID, allow string) string {
	return fmt.Sprintf("<message to='%s'><x xmlns='jabber:x:data' type='submit'>"+
		"<field var='FORM_TYPE'><value>%s</value></field><field var='muc#role'><value>participant</value></field>"+
		"<field var='muc#jid'><value>%s</value></field><field var='muc#roomnick'><value>%s</value></field>"+
		"<field var='muc#request_allow'><value>%s</value></field></x></message>", roomJID, NSRequest, realJID, nick, allow)
}

func isVoiceForm(s *stanza.Stanza) bool {
	x := s.El.Child(dataform.NS, "x")
	return s.Kind == stanza.KindMessage && x != nil && formType(x) == NSRequest
}

func TestVoiceRequest(t *testing.T) {
	f := setup(t, func(o *Options) { o.VoiceRequestInterval = time.Minute })
	var offset atomic.Int64
	f.mod.now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	alice, bob, carol := f.user("alice"), f.user("bob"), f.user("carol")
	join(t, alice, "Alice", "")
	if r := configure(t, alice, "c1", map[string]string{fModerated: "1"}); r.Type != "result" {
		t.Fatalf("configure: %s", r.El)
	}
	alice.SendXML(fmt.Sprintf("<iq to='%s' type='set' id='m1'><query xmlns='%s'><item jid='bob@example.com' affiliation='member'/></query></iq>", roomJID, NSAdmin))
	alice.NextIQ("m1")
	join(t, bob, "Bob", "")
	if self := join(t, carol, "Carol", ""); item(self).Get("role") != Visitor {
		t.Fatalf("carol in a moderated room: %s", self.El)
	}
	// A participant has voice already.
	bob.SendXML(voiceRequest("r0"))
	if e := bob.Next(func(s *stanza.Stanza) bool { return s.ID == "r0" }); modtest.ErrorCondition(e) != stanza.NotAcceptable {
		t.Fatalf("participant's request: %s", e.El)
	}
	// Carol asks; the moderator (alice) gets the approval form, bob not.
	carol.SendXML(voiceRequest("r1"))
	msg := alice.Next(isVoiceForm)
	form, err := dataform.Parse(msg.El.Child(dataform.NS, "x"))
	if err != nil || form.Type != dataform.TypeForm || msg.From.String() != roomJID ||
		form.Value(fRoomNick) != "Carol" || form.Value(fJID) != "carol@example.com/res" || form.Value(fRequestAllow) != "false" {
		t.Fatalf("approval form %s (%v)", msg.El, err)
	}
	bob.Nothing(50*time.Millisecond, isVoiceForm)
	// Asking again at once is refused; after the interval it goes through.
	carol.SendXML(voiceRequest("r2"))
	if e := carol.Next(func(s *stanza.Stanza) bool { return s.ID == "r2" }); modtest.ErrorCondition(e) != stanza.ResourceConstraint {
		t.Fatalf("second request at once: %s", e.El)
	}
	alice.Nothing(50*time.Millisecond, isVoiceForm)
	offset.Store(int64(time.Minute + time.Second))
	carol.SendXML(voiceRequest("r3"))
	alice.Next(isVoiceForm)

	// Only moderators answer; a refusal changes nothing.
	bob.SendXML(voiceAnswer("Carol", "carol@example.com/res", "true"))
	if e := bob.Next(func(s *stanza.Stanza) bool { return s.IsError() }); modtest.ErrorCondition(e) != stanza.Forbidden {
		t.Fatalf("participant's approval: %s", e.El)
	}
	alice.SendXML(voiceAnswer("Carol", "carol@example.com/res", "false"))
	carol.Nothing(50*time.Millisecond, presenceFrom("Carol", ""))
	// An approval naming someone else's JID for the nickname is refused.
	alice.SendXML(voiceAnswer("Carol", "mallory@example.com/res", "true"))
	if e := alice.Next(func(s *stanza.Stanza) bool { return s.IsError() }); modtest.ErrorCondition(e) != stanza.ItemNotFound {
		t.Fatalf("approval for another JID: %s", e.El)
	}
	alice.SendXML(voiceAnswer("Carol", "carol@example.com/res", "true"))
	if p := carol.Next(presenceFrom("Carol", "")); item(p).Get("role") != Participant {
		t.Fatalf("after approval: %s", p.El)
	}
	if p := bob.Next(presenceFrom("Carol", "")); item(p).Get("role") != Participant {
		t.Fatalf("bob sees: %s", p.El)
	}
	say(carol, "thanks")
	bob.Next(body("thanks"))
}

func TestParseVoiceForm(t *testing.T) {
	field := func(v, val string) dataform.Field { return dataform.Field{Var: v, Values: []string{val}} }
	cases := []struct {
		name string
		form dataform.Form
		want voiceForm
		ok   bool
	}{
		{"request", dataform.New(dataform.TypeSubmit, NSRequest, field(fRole, Participant)), voiceForm{Role: Participant}, true},
		{"answer", dataform.New(dataform.TypeSubmit, NSRequest, field(fRoomNick, "n"), field(fRequestAllow, "1")),
			voiceForm{Nick: "n", Answer: true, Allow: true}, true},
		{"cancel", dataform.Form{Type: dataform.TypeCancel}, voiceForm{Canceled: true}, true},
		{"moderator role", dataform.New(dataform.TypeSubmit, NSRequest, field(fRole, Moderator)), voiceForm{}, false},
		{"answer without nick", dataform.New(dataform.TypeSubmit, NSRequest, field(fRequestAllow, "true")), voiceForm{}, false},
		{"answer not boolean", dataform.New(dataform.TypeSubmit, NSRequest, field(fRoomNick, "n"), field(fRequestAllow, "yes")), voiceForm{}, false},
		{"other form type", dataform.New(dataform.TypeSubmit, NSRoomConf), voiceForm{}, false},
		{"type form", dataform.New(dataform.TypeForm, NSRequest), voiceForm{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseVoiceForm(tc.form)
			if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
				t.Fatalf("parseVoiceForm = %+v, %v", got, err)
			}
		})
	}
}

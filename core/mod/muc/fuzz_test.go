package muc

import (
	"errors"
	"testing"
	"unicode/utf8"

	"kontor.im/kontor/core/dataform"
	"kontor.im/kontor/core/xmlstream"
)

// FuzzConfigForm feeds room configuration forms (as an owner submits
// them) to ApplyForm: it never panics, a refusal wraps dataform.ErrInvalid,
// and an accepted configuration keeps every bound.
func FuzzConfigForm(f *testing.F) {
	f.Add([]byte(`<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field><field var='muc#roomconfig_membersonly'><value>1</value></field></x>`))
	f.Add([]byte(`<x xmlns='jabber:x:data' type='submit'/>`))
	f.Add([]byte(`<x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_maxusers'><value>0</value></field></x>`))
	f.Add([]byte(`<x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_passwordprotectedroom'><value>true</value></field><field var='muc#roomconfig_roomsecret'><value>s3cret</value></field></x>`))
	f.Add([]byte(`<x xmlns='jabber:x:data' type='form'><field var='muc#roomconfig_whois'><value>anyone</value></field></x>`))
	f.Add([]byte(`<x xmlns='jabber:x:data' type='submit'><field var='muc#maxhistoryfetch'><value>7</value></field></x>`))
	f.Add([]byte(`<x xmlns='jabber:x:data' type='submit'><field var='{https://kontor.im/ns/muc}allowregister'><value>1</value></field></x>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		el, err := xmlstream.ParseElement(b, xmlstream.Limits{MaxStanzaBytes: 1 << 16})
		if err != nil || el.Name.Space != dataform.NS || el.Name.Local != "x" {
			return
		}
		form, err := dataform.Parse(el)
		if err != nil {
			return
		}
		c, err := DefaultConfig().ApplyForm(form)
		if err != nil {
			if !errors.Is(err, dataform.ErrInvalid) {
				t.Fatalf("error %v does not wrap dataform.ErrInvalid", err)
			}
			return
		}
		switch {
		case c.WhoIs != "moderators" && c.WhoIs != "anyone":
			t.Fatalf("whois %q", c.WhoIs)
		case c.MaxUsers < 1 || c.MaxUsers > 10000:
			t.Fatalf("maxusers %d", c.MaxUsers)
		case c.HistoryLength < 0 || c.HistoryLength > maxHistoryLength:
			t.Fatalf("history length %d", c.HistoryLength)
		case len(c.Name) > maxNameBytes || len(c.Description) > maxDescBytes || len(c.Password) > maxNameBytes:
			t.Fatal("a value is longer than its bound")
		case !utf8.ValidString(c.Name + c.Description + c.Password):
			t.Fatal("invalid UTF-8 accepted")
		}
		// The owner's form of the accepted configuration parses again.
		if _, err := dataform.Parse(c.Form().Element()); err != nil {
			t.Fatalf("the configuration's own form does not parse: %v", err)
		}
	})
}

// FuzzRequestForms feeds the forms a user sends to a room besides its
// configuration, a voice request or its approval (muc#request) and a
// registration (muc#register), to their parsers: they never panic, a
// refusal wraps dataform.ErrInvalid, and what they accept keeps the rules
// (only the role participant, an answer names a nickname, a registered
// nickname passes the nickname check).
func FuzzRequestForms(f *testing.F) {
	f.Add([]byte(`<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field><field var='muc#role'><value>participant</value></field></x>`))
	f.Add([]byte(`<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field><field var='muc#jid'><value>hag66@shakespeare.lit/pda</value></field><field var='muc#roomnick'><value>thirdwitch</value></field><field var='muc#request_allow'><value>true</value></field></x>`))
	f.Add([]byte(`<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field><field var='muc#request_allow'><value>maybe</value></field></x>`))
	f.Add([]byte(`<x xmlns='jabber:x:data' type='cancel'/>`))
	f.Add([]byte(`<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field><field var='muc#register_roomnick'><value>thirdwitch</value></field></x>`))
	f.Add([]byte(`<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field><field var='muc#register_roomnick'><value> </value></field><field var='muc#register_email'><value>a@b</value></field></x>`))
	m := &Module{opts: DefaultOptions()}
	f.Fuzz(func(t *testing.T, b []byte) {
		el, err := xmlstream.ParseElement(b, xmlstream.Limits{MaxStanzaBytes: 1 << 16})
		if err != nil || el.Name.Space != dataform.NS || el.Name.Local != "x" {
			return
		}
		form, err := dataform.Parse(el)
		if err != nil {
			return
		}
		v, err := parseVoiceForm(form)
		switch {
		case err != nil && !errors.Is(err, dataform.ErrInvalid):
			t.Fatalf("voice: error %v does not wrap dataform.ErrInvalid", err)
		case err == nil && !v.Canceled && v.Role != "" && v.Role != Participant:
			t.Fatalf("voice: role %q accepted", v.Role)
		case err == nil && v.Answer && v.Nick == "":
			t.Fatal("voice: an answer without a nickname accepted")
		}
		nick, err := parseRegisterForm(form, m.validNick)
		switch {
		case err != nil && !errors.Is(err, dataform.ErrInvalid):
			t.Fatalf("register: error %v does not wrap dataform.ErrInvalid", err)
		case err == nil && !m.validNick(nick):
			t.Fatalf("register: nickname %q accepted", nick)
		}
	})
}

package gate

import (
	"strings"
	"testing"

	contract "kontor.im/kontor/core/gate"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/xmlstream"
)

// parseStanza reads one stanza in the client namespace, stamped as sent by
// alice@example.com/phone, the way core/session hands it to the router.
func parseStanza(text string) (*stanza.Stanza, bool) {
	rd := xmlstream.NewReader(strings.NewReader("<stream:stream xmlns='"+stanza.NSClient+"' xmlns:stream='"+stanza.NSStream+"'>"+text), xmlstream.Limits{})
	if _, err := rd.Header(); err != nil {
		return nil, false
	}
	el, err := rd.Next()
	if err != nil {
		return nil, false
	}
	s, err := stanza.Parse(el)
	if err != nil {
		return nil, false
	}
	s.SetFrom(jid.MustParse("alice@example.com/phone"))
	return s, true
}

func isLocal(d string) bool { return d == "example.com" }

// FuzzClassify checks, for any stanza: classify and rosterItems do not
// panic; a question names the sender's bare JID as from, another bare JID
// with a local part as to (or a room), an action a policy knows, and the
// locality of the recipient; roster items are never the sender and never
// removals; type error is never asked about.
func FuzzClassify(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		s, ok := parseStanza(string(data))
		if !ok {
			return
		}
		for _, target := range []module.Target{module.ToAccount, module.ToResource, module.ToHost} {
			items := rosterItems(s, target)
			if items != nil && (s.Kind != stanza.KindIQ || s.Type != "set" || target != module.ToAccount) {
				t.Fatalf("roster items from %s", s.El)
			}
			for _, it := range items {
				if it.Bare().String() == "alice@example.com" || it.Local() == "" {
					t.Fatalf("roster item %s asked about", it)
				}
			}
		}
		in, ok := classify(s, isLocal)
		if !ok {
			return
		}
		if s.IsError() && in.Action != "" {
			t.Fatalf("type error asked about: %s", s.El)
		}
		if in.From.JID != "alice@example.com" || !in.From.Local {
			t.Fatalf("from %+v", in.From)
		}
		switch {
		case in.Room != "":
			if in.Action != "" || in.To.JID != "" || s.Type != "groupchat" {
				t.Fatalf("room question %+v for %s", in, s.El)
			}
		default:
			to, err := jid.Parse(in.To.JID)
			if err != nil || !to.IsBare() || to.Local() == "" || in.To.JID == in.From.JID {
				t.Fatalf("to %q", in.To.JID)
			}
			if in.To.Local != isLocal(to.Domain()) {
				t.Fatalf("to %s local=%v", in.To.JID, in.To.Local)
			}
			switch in.Action {
			case contract.ActionMessage, contract.ActionSubscribe, contract.ActionSubscribed, contract.ActionPresence, contract.ActionIQ:
			default:
				t.Fatalf("action %q", in.Action)
			}
		}
	})
}

func parseOrFail(tb testing.TB, text string) *stanza.Stanza {
	tb.Helper()
	s, ok := parseStanza(text)
	if !ok {
		tb.Fatalf("cannot parse %s", text)
	}
	return s
}

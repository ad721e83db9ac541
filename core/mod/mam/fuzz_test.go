package mam

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/xmlstream"
)

// parseXML reads one element whose default namespace is urn:xmpp:mam:2
// unless the text declares another.
func parseXML(text string) (*stanza.Element, error) {
	rd := xmlstream.NewReader(strings.NewReader("<stream:stream xmlns='"+NS+"' xmlns:stream='"+stanza.NSStream+"'>"+text), xmlstream.Limits{})
	if _, err := rd.Header(); err != nil {
		return nil, err
	}
	return rd.Next()
}

// FuzzParsePrefs checks, for any XML: parsePrefs does not panic, fails
// only with bad-request or not-acceptable, and what it accepts has a known
// default and bounded lists of distinct canonical JIDs.
func FuzzParsePrefs(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		el, err := parseXML(string(data))
		if err != nil {
			return
		}
		p, err := parsePrefs(el)
		if err != nil {
			var se stanza.Error
			if !errors.As(err, &se) || (se.Condition != stanza.BadRequest && se.Condition != stanza.NotAcceptable) {
				t.Fatalf("error %v", err)
			}
			return
		}
		switch p.Default {
		case Always, Never, Roster:
		default:
			t.Fatalf("default %q accepted", p.Default)
		}
		for _, list := range [][]string{p.Always, p.Never} {
			if len(list) > maxPrefsJIDs {
				t.Fatalf("%d JIDs accepted", len(list))
			}
			for i, s := range list {
				j, err := jid.Parse(s)
				if err != nil || j.String() != s || slices.Contains(list[:i], s) {
					t.Fatalf("JID %q in %q: not canonical or repeated (%v)", s, list, err)
				}
			}
		}
		// What was accepted renders and parses back the same.
		again, err := parsePrefs(prefsElement(p))
		if err != nil || !slices.Equal(again.Always, p.Always) || !slices.Equal(again.Never, p.Never) || again.Default != p.Default {
			t.Fatalf("round trip %+v (%v), want %+v", again, err, p)
		}
	})
}

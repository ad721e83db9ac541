package mam

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
)

func TestPrefsIQ(t *testing.T) {
	var many strings.Builder
	many.WriteString(strings.Repeat("<jid>x@example.com</jid>", 2)) // duplicates count once
	for i := range maxPrefsJIDs {
		fmt.Fprintf(&many, "<jid>u%d@example.com</jid>", i)
	}
	tests := []struct {
		name      string
		option    string // the module default
		iq        string
		condition string               // expected error, or ""
		want      string               // expected answer payload
		stored    *module.ArchivePrefs // expected in the archive afterwards
	}{
		{name: "get without prefs: the module default", iq: `<iq type='get' id='p'><prefs xmlns='urn:xmpp:mam:2'/></iq>`,
			want: `<prefs xmlns='urn:xmpp:mam:2' default='always'><always/><never/></prefs>`},
		{name: "get without prefs: another module default", option: Roster, iq: `<iq type='get' id='p'><prefs xmlns='urn:xmpp:mam:2'/></iq>`,
			want: `<prefs xmlns='urn:xmpp:mam:2' default='roster'><always/><never/></prefs>`},
		{name: "set and answer with what was stored",
			iq: `<iq type='set' id='p'><prefs xmlns='urn:xmpp:mam:2' default='roster'>` +
				`<always><jid>romeo@montague.lit</jid><jid>Romeo@Montague.lit</jid><jid>juliet@capulet.lit/balcony</jid></always>` +
				`<never><jid>montague@montague.lit</jid></never></prefs></iq>`,
			want: `<prefs xmlns='urn:xmpp:mam:2' default='roster'><always><jid>romeo@montague.lit</jid><jid>juliet@capulet.lit/balcony</jid></always>` +
				`<never><jid>montague@montague.lit</jid></never></prefs>`,
			stored: &module.ArchivePrefs{Default: Roster, Always: []string{"romeo@montague.lit", "juliet@capulet.lit/balcony"}, Never: []string{"montague@montague.lit"}}},
		{name: "set with lists absent", iq: `<iq type='set' id='p'><prefs xmlns='urn:xmpp:mam:2' default='never'/></iq>`,
			want:   `<prefs xmlns='urn:xmpp:mam:2' default='never'><always/><never/></prefs>`,
			stored: &module.ArchivePrefs{Default: Never}},
		{name: "no default", iq: `<iq type='set' id='p'><prefs xmlns='urn:xmpp:mam:2'/></iq>`, condition: stanza.BadRequest},
		{name: "unknown default", iq: `<iq type='set' id='p'><prefs xmlns='urn:xmpp:mam:2' default='sometimes'/></iq>`, condition: stanza.BadRequest},
		{name: "invalid JID", iq: `<iq type='set' id='p'><prefs xmlns='urn:xmpp:mam:2' default='always'><never><jid>@nowhere</jid></never></prefs></iq>`, condition: stanza.BadRequest},
		{name: "two always lists", iq: `<iq type='set' id='p'><prefs xmlns='urn:xmpp:mam:2' default='always'><always/><always/></prefs></iq>`, condition: stanza.BadRequest},
		{name: "too many JIDs", iq: `<iq type='set' id='p'><prefs xmlns='urn:xmpp:mam:2' default='always'><never>` + many.String() + `</never></prefs></iq>`, condition: stanza.NotAcceptable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newServer(t, serverOptions{configure: func(o *Options) {
				if tc.option != "" {
					o.Default = tc.option
				}
			}})
			a := ts.connect(alice + "/home")
			_, answer := a.iq(tc.iq)
			if tc.condition != "" {
				if got := errorCondition(answer); got != tc.condition {
					t.Fatalf("answer %s, want %s", answer.El, tc.condition)
				}
				if p, _ := ts.arch.Prefs(t.Context(), alice); p.Default != "" {
					t.Fatalf("prefs stored after an error: %+v", p)
				}
				return
			}
			p := answer.El.Child(NS, "prefs")
			if answer.Type != "result" || p == nil || p.String() != tc.want {
				t.Fatalf("answer %s, want payload %s", answer.El, tc.want)
			}
			if tc.stored != nil {
				got, err := ts.arch.Prefs(t.Context(), alice)
				if err != nil || !reflect.DeepEqual(got, *tc.stored) {
					t.Fatalf("stored %+v (%v), want %+v", got, err, *tc.stored)
				}
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		ok   bool
	}{
		{name: "defaults", opts: DefaultOptions(), ok: true},
		{name: "roster default", opts: Options{Default: Roster, PageSize: 10, MaxPageSize: 100}, ok: true},
		{name: "unknown default", opts: Options{Default: "sometimes", PageSize: 10, MaxPageSize: 100}},
		{name: "page larger than the cap", opts: Options{Default: Always, PageSize: 200, MaxPageSize: 100}},
		{name: "zero page", opts: Options{Default: Always, PageSize: 0, MaxPageSize: 100}},
		{name: "cap above the session queue's share", opts: Options{Default: Always, PageSize: 10, MaxPageSize: maxMaxPageSize + 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.opts.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "mam: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
		})
	}
}

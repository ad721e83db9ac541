package mamquery

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/rsm"
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

// fuzzMaxIDs is the ids bound the fuzz tests use: small, to reach it.
const fuzzMaxIDs = 5

// FuzzParseQuery checks, for any XML: parseQuery does not panic, fails only
// with a stanza error of a condition a client may get, and what it accepts
// is within bounds: a bounded queryid, valid times and JID, distinct,
// non-empty, bounded ids, no RSM index.
func FuzzParseQuery(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		el, err := parseXML(string(data))
		if err != nil {
			return
		}
		r, err := parseQuery(el, fuzzMaxIDs)
		if err != nil {
			var se stanza.Error
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not a stanza error", err)
			}
			switch se.Condition {
			case stanza.BadRequest, stanza.FeatureNotImplemented:
			default:
				t.Fatalf("unexpected condition %s", se.Condition)
			}
			return
		}
		if len(r.queryID) > maxQueryIDBytes {
			t.Fatalf("queryid of %d bytes", len(r.queryID))
		}
		if len(r.ids) > fuzzMaxIDs {
			t.Fatalf("%d ids accepted, bound %d", len(r.ids), fuzzMaxIDs)
		}
		for i, id := range r.ids {
			if id == "" || len(id) > rsm.MaxUIDBytes || slices.Contains(r.ids[:i], id) {
				t.Fatalf("bad or repeated id %q in %q", id, r.ids)
			}
		}
		for _, id := range []string{r.afterID, r.beforeID, r.page.After, r.page.Before} {
			if len(id) > rsm.MaxUIDBytes {
				t.Fatalf("id of %d bytes", len(id))
			}
		}
		if r.page.HasIndex || (r.page.HasMax && r.page.Max < 0) {
			t.Fatalf("page %+v", r.page)
		}
		if !r.with.IsZero() {
			if again, err := jid.Parse(r.with.String()); err != nil || again != r.with {
				t.Fatalf("with %q is not canonical", r.with)
			}
		}
		for _, tm := range []struct {
			name string
			zero bool
			loc  string
		}{{"start", r.start.IsZero(), r.start.Location().String()}, {"end", r.end.IsZero(), r.end.Location().String()}} {
			if !tm.zero && tm.loc != "UTC" {
				t.Fatalf("%s not in UTC", tm.name)
			}
		}
	})
}

func BenchmarkParseQuery(b *testing.B) {
	el, err := parseXML(`<query queryid='f27'><x xmlns='jabber:x:data' type='submit'>` +
		`<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>` +
		`<field var='with'><value>bob@example.com</value></field><field var='start'><value>2025-03-01T12:00:00Z</value></field></x>` +
		`<set xmlns='http://jabber.org/protocol/rsm'><max>50</max><after>06al34uu05qjc2naq7i8bo9e6k</after></set></query>`)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseQuery(el, 250); err != nil {
			b.Fatal(err)
		}
	}
}

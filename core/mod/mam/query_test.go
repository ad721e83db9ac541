package mam

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/rsm"
	"kontor.im/kontor/core/stanza"
)

// history fills alice's archive with seven messages, one minute apart
// (message i at t0 + i minutes, body "i"):
//
//	1 bob/phone → alice     2 alice → bob       3 carol/desk → alice
//	4 alice → carol         5 bob/laptop → alice 6 alice → bob
//	7 bob/phone → alice
//
// and returns alice's session and the archive ids, ids[i-1] for message i.
func history(t *testing.T, ts *testServer) (*client, []string) {
	t.Helper()
	a := ts.connect(alice + "/home")
	sessions := map[string]*client{}
	for _, r := range []string{bob + "/phone", bob + "/laptop", carol + "/desk"} {
		sessions[r] = ts.connect(r)
	}
	steps := []struct{ from, to string }{
		{bob + "/phone", alice}, {alice + "/home", bob}, {carol + "/desk", alice}, {alice + "/home", carol},
		{bob + "/laptop", alice}, {alice + "/home", bob}, {bob + "/phone", alice},
	}
	for i, s := range steps {
		ts.clock.set(t0.Add(time.Duration(i+1) * time.Minute))
		c := a
		if s.from != alice+"/home" {
			c = sessions[s.from]
		}
		c.send(fmt.Sprintf(`<message to='%s' type='chat' id='msg%d'><body>%d</body></message>`, s.to, i+1, i+1))
	}
	ids := ts.archivedIDs(alice)
	if len(ids) != len(steps) {
		t.Fatalf("alice's archive has %d messages, want %d", len(ids), len(steps))
	}
	a.received()
	return a, ids
}

// form writes a query form with FORM_TYPE and the given var/value pairs;
// the values of a var that repeats go into one field.
func form(pairs ...string) string {
	var b strings.Builder
	b.WriteString(`<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>`)
	var vars []string
	values := map[string][]string{}
	for i := 0; i+1 < len(pairs); i += 2 {
		if _, ok := values[pairs[i]]; !ok {
			vars = append(vars, pairs[i])
		}
		values[pairs[i]] = append(values[pairs[i]], pairs[i+1])
	}
	for _, v := range vars {
		fmt.Fprintf(&b, `<field var='%s'>`, v)
		for _, x := range values[v] {
			fmt.Fprintf(&b, `<value>%s</value>`, x)
		}
		b.WriteString(`</field>`)
	}
	b.WriteString(`</x>`)
	return b.String()
}

// page is what one query returned.
type page struct {
	bodies   []string // the bodies of the results, in the order received
	ids      []string // their archive ids
	complete bool
	set      rsm.Set
}

// runQuery sends a query from c and checks the shape of every result: sent
// to the requesting resource from the account, before the IQ result, with
// the queryid, a delay and the archived message.
func runQuery(t *testing.T, c *client, queryID, inner string) (page, *stanza.Stanza) {
	t.Helper()
	qid := ""
	if queryID != "" {
		qid = " queryid='" + queryID + "'"
	}
	before, answer := c.iq(`<iq type='set' id='q'><query xmlns='urn:xmpp:mam:2'` + qid + `>` + inner + `</query></iq>`)
	if answer.Type != "result" {
		return page{}, answer
	}
	var p page
	for _, s := range before {
		res := s.El.Child(NS, "result")
		if s.Kind != stanza.KindMessage || res == nil {
			t.Fatalf("received before the IQ result: %s", s.El)
		}
		if s.To != c.jid || s.From != c.jid.Bare() || res.Get("queryid") != queryID || res.Has("queryid") != (queryID != "") {
			t.Fatalf("result addressing or queryid: %s", s.El)
		}
		fwd := res.Child("urn:xmpp:forward:0", "forwarded")
		if fwd == nil {
			t.Fatalf("result without forwarded: %s", s.El)
		}
		stamp, err := time.Parse(time.RFC3339, fwd.Child(stanza.NSDelay, "delay").Get("stamp"))
		if err != nil || stamp.Before(t0) {
			t.Fatalf("delay stamp: %s (%v)", s.El, err)
		}
		msg := fwd.Child(stanza.NSClient, "message")
		if msg == nil {
			t.Fatalf("result without the message: %s", s.El)
		}
		p.bodies = append(p.bodies, msg.ChildText(stanza.NSClient, "body"))
		p.ids = append(p.ids, res.Get("id"))
	}
	fin := answer.El.Child(NS, "fin")
	if fin == nil {
		t.Fatalf("IQ result without fin: %s", answer.El)
	}
	p.complete = fin.Get("complete") == "true"
	set, err := rsm.Parse(fin.Child(rsm.NS, "set"))
	if err != nil {
		t.Fatalf("fin set: %v in %s", err, answer.El)
	}
	p.set = set
	if len(p.ids) > 0 && !p.flipped() && (set.First != p.ids[0] || set.Last != p.ids[len(p.ids)-1]) {
		t.Fatalf("first/last %q/%q, results %v", set.First, set.Last, p.ids)
	}
	return p, answer
}

// flipped reports whether the ids arrived newest first.
func (p page) flipped() bool { return len(p.ids) > 1 && p.ids[0] > p.ids[len(p.ids)-1] }

func bodies(n ...int) []string {
	out := []string{}
	for _, i := range n {
		out = append(out, fmt.Sprint(i))
	}
	return out
}

func TestQueryFilters(t *testing.T) {
	ts := newServer(t, serverOptions{})
	a, ids := history(t, ts)
	at := func(min int) string { return t0.Add(time.Duration(min) * time.Minute).Format(time.RFC3339) }
	tests := []struct {
		name  string
		inner string
		want  []string
		count int
	}{
		{name: "no form", want: bodies(1, 2, 3, 4, 5, 6, 7), count: 7},
		{name: "empty form", inner: form(), want: bodies(1, 2, 3, 4, 5, 6, 7), count: 7},
		{name: "empty fields filter nothing", inner: form("with", "", "start", ""), want: bodies(1, 2, 3, 4, 5, 6, 7), count: 7},
		{name: "with a bare JID", inner: form("with", bob), want: bodies(1, 2, 5, 6, 7), count: 5},
		{name: "with a full JID", inner: form("with", bob+"/laptop"), want: bodies(5), count: 1},
		{name: "with carol", inner: form("with", carol), want: bodies(3, 4), count: 2},
		{name: "with nobody", inner: form("with", "nobody@example.com"), want: bodies(), count: 0},
		{name: "start", inner: form("start", at(3)), want: bodies(3, 4, 5, 6, 7), count: 5},
		{name: "end", inner: form("end", at(3)), want: bodies(1, 2, 3), count: 3},
		{name: "start and end", inner: form("start", at(2), "end", at(4)), want: bodies(2, 3, 4), count: 3},
		{name: "start with an offset and fraction", inner: form("start", "2025-03-01T13:03:00.000+01:00"), want: bodies(3, 4, 5, 6, 7), count: 5},
		{name: "start after end", inner: form("start", at(5), "end", at(2)), want: bodies(), count: 0},
		{name: "with and start", inner: form("with", bob, "start", at(3)), want: bodies(5, 6, 7), count: 3},
		{name: "after-id", inner: form("after-id", ids[2]), want: bodies(4, 5, 6, 7), count: 7},
		{name: "before-id", inner: form("before-id", ids[2]), want: bodies(1, 2), count: 7},
		{name: "after-id and before-id", inner: form("after-id", ids[1], "before-id", ids[5]), want: bodies(3, 4, 5), count: 7},
		{name: "ids", inner: form("ids", ids[4], "ids", ids[1]), want: bodies(2, 5), count: 2},
		{name: "ids repeated", inner: form("ids", ids[4], "ids", ids[4]), want: bodies(5), count: 1},
		{name: "ids and with", inner: form("ids", ids[4], "ids", ids[2], "with", bob), want: bodies(5), count: 1},
		{name: "form after-id and RSM after: the later", inner: form("after-id", ids[1]) + rsmSet("<after>"+ids[3]+"</after>"), want: bodies(5, 6, 7), count: 7},
		{name: "RSM after and form after-id: the later", inner: form("after-id", ids[3]) + rsmSet("<after>"+ids[1]+"</after>"), want: bodies(5, 6, 7), count: 7},
		{name: "form before-id and RSM before: the earlier", inner: form("before-id", ids[5]) + rsmSet("<max>2</max><before>"+ids[3]+"</before>"), want: bodies(2, 3), count: 7},
		{name: "after-id with the last page", inner: form("after-id", ids[1]) + rsmSet("<max>2</max><before/>"), want: bodies(6, 7), count: 7},
		{name: "before-id with the last page", inner: form("before-id", ids[5]) + rsmSet("<max>2</max><before/>"), want: bodies(4, 5), count: 7},
		{name: "RSM after and before together", inner: rsmSet("<after>" + ids[0] + "</after><before>" + ids[6] + "</before><max>3</max>"), want: bodies(4, 5, 6), count: 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, answer := runQuery(t, a, "f1", tc.inner)
			if answer.Type != "result" {
				t.Fatalf("error: %s", answer.El)
			}
			if !reflect.DeepEqual(nonNil(p.bodies), tc.want) || !p.set.HasCount || p.set.Count != tc.count {
				t.Fatalf("got %v count %d (%v), want %v count %d", p.bodies, p.set.Count, p.set.HasCount, tc.want, tc.count)
			}
			if len(tc.want) == 0 && (p.set.First != "" || p.set.Last != "" || !p.complete) {
				t.Fatalf("an empty page has first/last %q/%q, complete %v", p.set.First, p.set.Last, p.complete)
			}
		})
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func rsmSet(inner string) string {
	return `<set xmlns='http://jabber.org/protocol/rsm'>` + inner + `</set>`
}

// TestPaging walks through seven messages two at a time, forwards with
// after and backwards with before, as clients do with first and last.
func TestPaging(t *testing.T) {
	ts := newServer(t, serverOptions{})
	a, ids := history(t, ts)
	type step struct {
		want     []string
		complete bool
	}
	tests := []struct {
		name     string
		forwards bool
		steps    []step
	}{
		{name: "forwards", forwards: true, steps: []step{
			{bodies(1, 2), false}, {bodies(3, 4), false}, {bodies(5, 6), false}, {bodies(7), true}}},
		{name: "backwards from the last page", steps: []step{
			{bodies(6, 7), false}, {bodies(4, 5), false}, {bodies(2, 3), false}, {bodies(1), true}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cursor := ""
			var seen []string // archive ids in the order of the pages
			for i, st := range tc.steps {
				var set string
				switch {
				case tc.forwards && cursor == "":
					set = "<max>2</max>"
				case tc.forwards:
					set = "<max>2</max><after>" + cursor + "</after>"
				case cursor == "":
					set = "<max>2</max><before/>"
				default:
					set = "<max>2</max><before>" + cursor + "</before>"
				}
				p, answer := runQuery(t, a, "", rsmSet(set))
				if answer.Type != "result" {
					t.Fatalf("page %d: %s", i+1, answer.El)
				}
				if !reflect.DeepEqual(p.bodies, st.want) || p.complete != st.complete || p.set.Count != 7 {
					t.Fatalf("page %d: got %v complete=%v count=%d; want %v complete=%v", i+1, p.bodies, p.complete, p.set.Count, st.want, st.complete)
				}
				if tc.forwards {
					cursor = p.set.Last
					seen = append(seen, p.ids...)
				} else {
					cursor = p.set.First
					seen = append(slices.Clone(p.ids), seen...)
				}
			}
			// The pages together are the whole archive, in order.
			if !reflect.DeepEqual(seen, ids) {
				t.Fatalf("pages gave %v, archive %v", seen, ids)
			}
		})
	}
}

func TestQueryPageSize(t *testing.T) {
	tests := []struct {
		name     string
		opts     func(*Options)
		inner    string
		want     []string
		complete bool
		count    bool
	}{
		{name: "default page size", opts: func(o *Options) { o.PageSize = 3 }, want: bodies(1, 2, 3), count: true},
		{name: "max capped", opts: func(o *Options) { o.MaxPageSize, o.PageSize = 4, 2 }, inner: rsmSet("<max>100</max>"), want: bodies(1, 2, 3, 4), count: true},
		{name: "max above the archive", inner: rsmSet("<max>100</max>"), want: bodies(1, 2, 3, 4, 5, 6, 7), complete: true, count: true},
		{name: "max 0: the count only", inner: rsmSet("<max>0</max>"), want: nil, count: true},
		{name: "flipped page", inner: rsmSet("<max>3</max>") + `<flip-page/>`, want: bodies(3, 2, 1), count: true},
		{name: "flipped last page", inner: rsmSet("<max>3</max><before/>") + `<flip-page/>`, want: bodies(7, 6, 5), count: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newServer(t, serverOptions{configure: tc.opts})
			a, _ := history(t, ts)
			p, answer := runQuery(t, a, "", tc.inner)
			if answer.Type != "result" {
				t.Fatalf("error: %s", answer.El)
			}
			if !reflect.DeepEqual(p.bodies, tc.want) || p.complete != tc.complete || p.set.HasCount != tc.count || (tc.count && p.set.Count != 7) {
				t.Fatalf("got %v complete=%v count=%d/%v; want %v complete=%v", p.bodies, p.complete, p.set.Count, p.set.HasCount, tc.want, tc.complete)
			}
			if p.flipped() {
				// first and last stay in archive order (RSM), whatever the
				// order of sending.
				if p.set.First != p.ids[len(p.ids)-1] || p.set.Last != p.ids[0] {
					t.Fatalf("flipped page: first/last %q/%q for %v", p.set.First, p.set.Last, p.ids)
				}
			}
			if tc.want == nil && (p.set.First != "" || p.set.Last != "") {
				t.Fatalf("count-only answer names items: %+v", p.set)
			}
		})
	}
}

func TestQueryErrors(t *testing.T) {
	ts := newServer(t, serverOptions{})
	a, ids := history(t, ts)
	tests := []struct {
		name      string
		attrs     string // extra attributes of query
		inner     string
		condition string
	}{
		{name: "unknown RSM after", inner: rsmSet("<after>nope</after>"), condition: stanza.ItemNotFound},
		{name: "unknown RSM before", inner: rsmSet("<before>nope</before>"), condition: stanza.ItemNotFound},
		{name: "unknown after-id", inner: form("after-id", "nope"), condition: stanza.ItemNotFound},
		{name: "unknown before-id", inner: form("before-id", "nope"), condition: stanza.ItemNotFound},
		{name: "unknown id in ids", inner: form("ids", ids[0], "ids", "nope"), condition: stanza.ItemNotFound},
		{name: "unknown after-id with RSM after", inner: form("after-id", "nope") + rsmSet("<after>"+ids[0]+"</after>"), condition: stanza.ItemNotFound},
		{name: "id of another archive", inner: rsmSet("<after>" + ts.archivedIDs(bob)[0] + "</after>"), condition: stanza.ItemNotFound},
		{name: "wrong FORM_TYPE", inner: strings.Replace(form(), "urn:xmpp:mam:2", "urn:xmpp:mam:1", 1), condition: stanza.BadRequest},
		{name: "no FORM_TYPE", inner: `<x xmlns='jabber:x:data' type='submit'><field var='with'><value>bob@example.com</value></field></x>`, condition: stanza.BadRequest},
		{name: "form of type form", inner: strings.Replace(form(), "'submit'", "'form'", 1), condition: stanza.BadRequest},
		{name: "invalid form", inner: `<x xmlns='jabber:x:data'/>`, condition: stanza.BadRequest},
		{name: "two forms", inner: form() + form(), condition: stanza.BadRequest},
		{name: "bad start", inner: form("start", "yesterday"), condition: stanza.BadRequest},
		{name: "start without a time zone", inner: form("start", "2025-03-01T12:00:00"), condition: stanza.BadRequest},
		{name: "bad with", inner: form("with", "@example.com"), condition: stanza.BadRequest},
		{name: "two values for start", inner: `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>` +
			`<field var='start'><value>2025-03-01T12:00:00Z</value><value>2025-03-02T12:00:00Z</value></field></x>`, condition: stanza.BadRequest},
		{name: "unknown field", inner: form("{urn:example}full-text", "juliet"), condition: stanza.FeatureNotImplemented},
		{name: "include-groupchat is not supported", inner: form("include-groupchat", "true"), condition: stanza.FeatureNotImplemented},
		{name: "RSM index", inner: rsmSet("<max>2</max><index>3</index>"), condition: stanza.FeatureNotImplemented},
		{name: "bad RSM max", inner: rsmSet("<max>-2</max>"), condition: stanza.BadRequest},
		{name: "two RSM sets", inner: rsmSet("") + rsmSet(""), condition: stanza.BadRequest},
		{name: "pubsub node", attrs: " node='urn:xmpp:microblog:0'", condition: stanza.FeatureNotImplemented},
		{name: "queryid too long", attrs: " queryid='" + strings.Repeat("q", 257) + "'", condition: stanza.BadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, answer := a.iq(`<iq type='set' id='q'><query xmlns='urn:xmpp:mam:2'` + tc.attrs + `>` + tc.inner + `</query></iq>`)
			if got := errorCondition(answer); got != tc.condition {
				t.Fatalf("answer %s, want %s", answer.El, tc.condition)
			}
			if len(before) != 0 {
				t.Fatalf("results before an error: %s", dump(before))
			}
		})
	}
}

// TestQueryResults checks one result in full: queryid echo, addressing,
// delay, the archived message with its stanza-id, and the IQ result last.
func TestQueryResults(t *testing.T) {
	tests := []struct {
		name    string
		queryID string
		to      string // the query's 'to'
	}{
		{name: "with queryid, no to", queryID: "f27"},
		{name: "without queryid, to the own bare JID", to: alice},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newServer(t, serverOptions{})
			a := ts.connect(alice + "/home")
			b := ts.connect(bob + "/phone")
			ts.clock.set(t0.Add(1500 * time.Millisecond))
			b.send(`<message to='alice@example.com' type='chat' id='b1'><body>Hail to thee</body><origin-id xmlns='urn:xmpp:sid:0' id='o1'/></message>`)
			delivered := messages(a.received())
			if len(delivered) != 1 {
				t.Fatalf("alice received %s", dump(delivered))
			}
			id := stanzaIDs(delivered[0].El, alice)[0]

			to, qid := "", ""
			if tc.to != "" {
				to = " to='" + tc.to + "'"
			}
			if tc.queryID != "" {
				qid = " queryid='" + tc.queryID + "'"
			}
			before, answer := a.iq(`<iq type='set' id='juliet1'` + to + `><query xmlns='urn:xmpp:mam:2'` + qid + `/></iq>`)
			if len(before) != 1 {
				t.Fatalf("received before the answer: %s", dump(before))
			}
			want := `<message xmlns='jabber:client' from='alice@example.com' to='alice@example.com/home'>` +
				`<result xmlns='urn:xmpp:mam:2'` + qid + ` id='` + id + `'><forwarded xmlns='urn:xmpp:forward:0'>` +
				`<delay xmlns='urn:xmpp:delay' stamp='2025-03-01T12:00:01.500Z'/>` +
				`<message xmlns='jabber:client' to='alice@example.com' type='chat' id='b1' from='bob@example.com/phone'><body>Hail to thee</body>` +
				`<origin-id xmlns='urn:xmpp:sid:0' id='o1'/><stanza-id xmlns='urn:xmpp:sid:0' id='` + id + `' by='alice@example.com'/></message>` +
				`</forwarded></result></message>`
			if got := before[0].El.String(); got != want {
				t.Fatalf("result:\n got %s\nwant %s", got, want)
			}
			wantFin := `<iq xmlns='jabber:client'` + strings.Replace(to, "to=", "from=", 1) + ` to='alice@example.com/home' type='result' id='juliet1'>` +
				`<fin xmlns='urn:xmpp:mam:2' complete='true'><set xmlns='http://jabber.org/protocol/rsm'><first>` + id + `</first><last>` + id + `</last><count>1</count></set></fin></iq>`
			if got := answer.El.String(); got != wantFin {
				t.Fatalf("IQ result:\n got %s\nwant %s", got, wantFin)
			}
		})
	}
}

// TestOnlyOwnArchive: every MAM request to another account's archive is
// refused, and nothing of that archive is sent.
func TestOnlyOwnArchive(t *testing.T) {
	ts := newServer(t, serverOptions{})
	history(t, ts)
	b := ts.connect(bob + "/desk")
	tests := []struct {
		name string
		iq   string
	}{
		{name: "query", iq: `<iq type='set' id='x' to='alice@example.com'><query xmlns='urn:xmpp:mam:2'/></iq>`},
		{name: "form", iq: `<iq type='get' id='x' to='alice@example.com'><query xmlns='urn:xmpp:mam:2'/></iq>`},
		{name: "metadata", iq: `<iq type='get' id='x' to='alice@example.com'><metadata xmlns='urn:xmpp:mam:2'/></iq>`},
		{name: "prefs get", iq: `<iq type='get' id='x' to='alice@example.com'><prefs xmlns='urn:xmpp:mam:2'/></iq>`},
		{name: "prefs set", iq: `<iq type='set' id='x' to='alice@example.com'><prefs xmlns='urn:xmpp:mam:2' default='never'/></iq>`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, answer := b.iq(tc.iq)
			if errorCondition(answer) != stanza.Forbidden || len(before) != 0 {
				t.Fatalf("answer %s after %s", answer.El, dump(before))
			}
		})
	}
	if p, _ := ts.arch.Prefs(t.Context(), alice); p.Default != "" {
		t.Fatalf("alice's prefs were changed by bob: %+v", p)
	}
}

func TestForm(t *testing.T) {
	ts := newServer(t, serverOptions{})
	a := ts.connect(alice + "/home")
	_, answer := a.iq(`<iq type='get' id='form1'><query xmlns='urn:xmpp:mam:2'/></iq>`)
	x := answer.El.Child(NS, "query")
	if answer.Type != "result" || x == nil || x.Child("jabber:x:data", "x") == nil {
		t.Fatalf("answer %s", answer.El)
	}
	tests := []struct {
		name, field, typ string
	}{
		{name: "FORM_TYPE", field: "FORM_TYPE", typ: "hidden"},
		{name: "with", field: "with", typ: "jid-single"},
		{name: "start", field: "start", typ: "text-single"},
		{name: "end", field: "end", typ: "text-single"},
		{name: "before-id", field: "before-id", typ: "text-single"},
		{name: "after-id", field: "after-id", typ: "text-single"},
		{name: "ids", field: "ids", typ: "list-multi"},
	}
	fields := map[string]*stanza.Element{}
	x.Child("jabber:x:data", "x").Children(func(c *stanza.Element) bool {
		if c.Child("jabber:x:data", "required") != nil {
			t.Errorf("field %s is required; XEP-0313 forbids it", c.Get("var"))
		}
		fields[c.Get("var")] = c
		return true
	})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := fields[tc.field]
			if f == nil || f.Get("type") != tc.typ {
				t.Fatalf("field %s: %v", tc.field, f)
			}
		})
	}
	if len(fields) != len(tests) {
		t.Fatalf("%d fields, want %d", len(fields), len(tests))
	}
	if v := fields["ids"].Child("http://jabber.org/protocol/xdata-validate", "validate"); v == nil || v.Child("http://jabber.org/protocol/xdata-validate", "open") == nil {
		t.Fatalf("ids has no open validation: %s", fields["ids"])
	}
}

func TestMetadata(t *testing.T) {
	tests := []struct {
		name  string
		fill  bool
		start int // message number of start (0: none)
		end   int
	}{
		{name: "empty archive"},
		{name: "seven messages", fill: true, start: 1, end: 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newServer(t, serverOptions{})
			var ids []string
			if tc.fill {
				_, ids = history(t, ts)
			}
			a := ts.connect(alice + "/desk")
			_, answer := a.iq(`<iq type='get' id='md'><metadata xmlns='urn:xmpp:mam:2'/></iq>`)
			md := answer.El.Child(NS, "metadata")
			if answer.Type != "result" || md == nil {
				t.Fatalf("answer %s", answer.El)
			}
			if tc.start == 0 {
				if md.FirstChild() != nil {
					t.Fatalf("metadata of an empty archive: %s", md)
				}
				return
			}
			for _, x := range []struct {
				el string
				n  int
			}{{"start", tc.start}, {"end", tc.end}} {
				e := md.Child(NS, x.el)
				want := t0.Add(time.Duration(x.n) * time.Minute).Format("2006-01-02T15:04:05.000Z")
				if e == nil || e.Get("id") != ids[x.n-1] || e.Get("timestamp") != want {
					t.Fatalf("%s: %v, want id %s timestamp %s", x.el, e, ids[x.n-1], want)
				}
			}
		})
	}
}

func TestDisco(t *testing.T) {
	tests := []struct {
		name      string
		noArchive bool
		want      bool
	}{
		{name: "with an archive", want: true},
		{name: "without an archive", noArchive: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newServer(t, serverOptions{noArchive: tc.noArchive})
			features := ts.host.DiscoInfo(module.ToAccount).Features
			for _, f := range []string{NS, NSExtended, NSStanzaID} {
				if slices.Contains(features, f) != tc.want {
					t.Fatalf("account features %v: %s present want %v", features, f, tc.want)
				}
			}
			// Optional features that are not supported are not advertised.
			for _, f := range []string{NS + "#groupchat-field", NS + "#groupchat-available"} {
				if slices.Contains(features, f) {
					t.Fatalf("account features %v: %s is advertised but not supported", features, f)
				}
			}
			if slices.Contains(ts.host.DiscoInfo(module.ToHost).Features, NS) {
				t.Fatal("the server itself advertises MAM")
			}
		})
	}
}

// TestNoArchive: without an archive, MAM requests get service-unavailable
// and messages are delivered untouched.
func TestNoArchive(t *testing.T) {
	ts := newServer(t, serverOptions{noArchive: true})
	a := ts.connect(alice + "/home")
	b := ts.connect(bob + "/phone")
	tests := []struct {
		name string
		iq   string
	}{
		{name: "query", iq: `<iq type='set' id='x'><query xmlns='urn:xmpp:mam:2'/></iq>`},
		{name: "form", iq: `<iq type='get' id='x'><query xmlns='urn:xmpp:mam:2'/></iq>`},
		{name: "metadata", iq: `<iq type='get' id='x'><metadata xmlns='urn:xmpp:mam:2'/></iq>`},
		{name: "prefs", iq: `<iq type='get' id='x'><prefs xmlns='urn:xmpp:mam:2'/></iq>`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, answer := a.iq(tc.iq); errorCondition(answer) != stanza.ServiceUnavailable {
				t.Fatalf("answer %s", answer.El)
			}
		})
	}
	const text = `<message to='bob@example.com' type='chat' id='m'><body>hi</body><stanza-id xmlns='urn:xmpp:sid:0' by='room@conference.example.com' id='r'/></message>`
	a.send(text)
	got := messages(b.received())
	want := modtest.Parse(t, text)
	want.SetFrom(jid.MustParse(alice + "/home"))
	if len(got) != 1 || got[0].El.String() != want.El.String() {
		t.Fatalf("bob received %s, want %s", dump(got), want.El)
	}
}

package pep_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"kontor.im/kontor/core/mod/pep"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/xmlstream"
)

func parseEl(t testing.TB, s string) *stanza.Element {
	t.Helper()
	el, err := xmlstream.ParseElement([]byte(s), xmlstream.Limits{})
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return el
}

const (
	ps    = "<pubsub xmlns='http://jabber.org/protocol/pubsub'>"
	owner = "<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'>"
	end   = "</pubsub>"
)

func TestParseRequest(t *testing.T) {
	long := strings.Repeat("n", pep.MaxNodeBytes+1)
	var many strings.Builder
	for range 65 {
		many.WriteString("<item id='x'/>")
	}
	tests := []struct {
		name   string
		typ    string
		xml    string
		action pep.Action
		check  func(t *testing.T, r pep.Request)
		cond   string // error condition, "" for success
		app    string // pubsub#errors condition
	}{
		{name: "publish with id", typ: "set", xml: ps + "<publish node='n'><item id='i'><p xmlns='x'>t</p></item></publish>" + end,
			action: pep.ActPublish, check: func(t *testing.T, r pep.Request) {
				if r.Node != "n" || r.ItemID != "i" || r.Payload == nil || r.Payload.Name.Local != "p" || r.Form != nil {
					t.Errorf("request %+v", r)
				}
			}},
		{name: "publish without id, whitespace around the payload", typ: "set", xml: ps + "<publish node='n'><item>\n  <p xmlns='x'/>\n</item></publish>" + end,
			action: pep.ActPublish, check: func(t *testing.T, r pep.Request) {
				if r.ItemID != "" || r.Payload == nil {
					t.Errorf("request %+v", r)
				}
			}},
		{name: "publish with options", typ: "set", xml: ps + "<publish node='n'><item><p xmlns='x'/></item></publish>" +
			formXML(pep.NSPublishOptions, "publish-options", "pubsub#access_model=open") + end,
			action: pep.ActPublish, check: func(t *testing.T, r pep.Request) {
				if r.Form == nil || r.Form.Value("pubsub#access_model") != "open" {
					t.Errorf("options %+v", r.Form)
				}
			}},
		{name: "empty publish-options", typ: "set", xml: ps + "<publish node='n'><item><p xmlns='x'/></item></publish><publish-options/>" + end,
			action: pep.ActPublish},
		{name: "items", typ: "get", xml: ps + "<items node='n' max_items='3'/>" + end, action: pep.ActItems,
			check: func(t *testing.T, r pep.Request) {
				if r.MaxItems != 3 || len(r.ItemIDs) != 0 {
					t.Errorf("request %+v", r)
				}
			}},
		{name: "items by id", typ: "get", xml: ps + "<items node='n'><item id='a'/><item id='b'/></items>" + end, action: pep.ActItems,
			check: func(t *testing.T, r pep.Request) {
				if !slices.Equal(r.ItemIDs, []string{"a", "b"}) {
					t.Errorf("ids %q", r.ItemIDs)
				}
			}},
		{name: "retract with notify", typ: "set", xml: ps + "<retract node='n' notify='1'><item id='a'/></retract>" + end, action: pep.ActRetract,
			check: func(t *testing.T, r pep.Request) {
				if !r.Notify || !slices.Equal(r.ItemIDs, []string{"a"}) {
					t.Errorf("request %+v", r)
				}
			}},
		{name: "create with configure", typ: "set", xml: ps + "<create node='n'/>" + formXML(pep.NSNodeConfig, "configure", "pubsub#max_items=5") + end,
			action: pep.ActCreate, check: func(t *testing.T, r pep.Request) {
				if r.Form == nil || r.Form.Value("pubsub#max_items") != "5" {
					t.Errorf("form %+v", r.Form)
				}
			}},
		{name: "create with an empty configure", typ: "set", xml: ps + "<create node='n'/><configure/>" + end, action: pep.ActCreate},
		{name: "owner configure get", typ: "get", xml: owner + "<configure node='n'/>" + end, action: pep.ActConfigure},
		{name: "owner configure set", typ: "set", xml: owner + "<configure node='n'>" + formXML(pep.NSNodeConfig, "", "pubsub#max_items=5") + "</configure>" + end,
			action: pep.ActConfigure},
		{name: "owner default", typ: "get", xml: owner + "<default/>" + end, action: pep.ActDefault},
		{name: "owner delete", typ: "set", xml: owner + "<delete node='n'/>" + end, action: pep.ActDelete},
		{name: "owner purge", typ: "set", xml: owner + "<purge node='n'/>" + end, action: pep.ActPurge},
		{name: "other namespaces are ignored", typ: "get", xml: ps + "<items node='n'/><set xmlns='http://jabber.org/protocol/rsm'/>" + end, action: pep.ActItems},

		{name: "not pubsub", typ: "get", xml: "<query xmlns='jabber:iq:roster'/>", cond: stanza.BadRequest},
		{name: "no action", typ: "get", xml: ps + end, cond: stanza.BadRequest},
		{name: "two actions", typ: "get", xml: ps + "<items node='a'/><items node='b'/>" + end, cond: stanza.BadRequest},
		{name: "unknown action", typ: "get", xml: ps + "<frobnicate/>" + end, cond: stanza.BadRequest},
		{name: "publish in a get", typ: "get", xml: ps + "<publish node='n'><item><p xmlns='x'/></item></publish>" + end, cond: stanza.BadRequest},
		{name: "items in a set", typ: "set", xml: ps + "<items node='n'/>" + end, cond: stanza.BadRequest},
		{name: "publish without node", typ: "set", xml: ps + "<publish><item><p xmlns='x'/></item></publish>" + end, cond: stanza.BadRequest, app: "nodeid-required"},
		{name: "publish without item", typ: "set", xml: ps + "<publish node='n'/>" + end, cond: stanza.BadRequest, app: "item-required"},
		{name: "publish of two items", typ: "set", xml: ps + "<publish node='n'><item><a xmlns='x'/></item><item><b xmlns='x'/></item></publish>" + end, cond: stanza.BadRequest, app: "invalid-payload"},
		{name: "item without payload", typ: "set", xml: ps + "<publish node='n'><item id='i'/></publish>" + end, cond: stanza.BadRequest, app: "payload-required"},
		{name: "item with two payloads", typ: "set", xml: ps + "<publish node='n'><item><a xmlns='x'/><b xmlns='x'/></item></publish>" + end, cond: stanza.BadRequest, app: "invalid-payload"},
		{name: "node too long", typ: "get", xml: ps + "<items node='" + long + "'/>" + end, cond: stanza.BadRequest},
		{name: "item id too long", typ: "set", xml: ps + "<publish node='n'><item id='" + strings.Repeat("i", pep.MaxItemIDBytes+1) + "'><p xmlns='x'/></item></publish>" + end, cond: stanza.BadRequest},
		{name: "max_items zero", typ: "get", xml: ps + "<items node='n' max_items='0'/>" + end, cond: stanza.BadRequest},
		{name: "max_items not a number", typ: "get", xml: ps + "<items node='n' max_items='x'/>" + end, cond: stanza.BadRequest},
		{name: "too many items", typ: "get", xml: ps + "<items node='n'>" + many.String() + "</items>" + end, cond: stanza.BadRequest},
		{name: "retract without item", typ: "set", xml: ps + "<retract node='n'/>" + end, cond: stanza.BadRequest, app: "item-required"},
		{name: "retract item without id", typ: "set", xml: ps + "<retract node='n'><item/></retract>" + end, cond: stanza.BadRequest, app: "item-required"},
		{name: "instant node", typ: "set", xml: ps + "<create/>" + end, cond: stanza.NotAcceptable, app: "nodeid-required"},
		{name: "publish-options without publish", typ: "get", xml: ps + "<items node='n'/><publish-options/>" + end, cond: stanza.BadRequest},
		{name: "publish-options twice", typ: "set", xml: ps + "<publish node='n'><item><p xmlns='x'/></item></publish><publish-options/><publish-options/>" + end, cond: stanza.BadRequest},
		{name: "options form not submit", typ: "set", xml: ps + "<publish node='n'><item><p xmlns='x'/></item></publish><publish-options><x xmlns='jabber:x:data' type='form'/></publish-options>" + end, cond: stanza.BadRequest},
		{name: "invalid options form", typ: "set", xml: ps + "<publish node='n'><item><p xmlns='x'/></item></publish><publish-options><x xmlns='jabber:x:data' type='submit'><field var='a'/><field var='a'/></x></publish-options>" + end, cond: stanza.BadRequest},
		{name: "configure set without form", typ: "set", xml: owner + "<configure node='n'/>" + end, cond: stanza.BadRequest},
		{name: "owner delete without node", typ: "set", xml: owner + "<delete/>" + end, cond: stanza.BadRequest, app: "nodeid-required"},
		{name: "owner default in a set", typ: "set", xml: owner + "<default/>" + end, cond: stanza.BadRequest},
		{name: "subscribe", typ: "set", xml: ps + "<subscribe node='n' jid='a@b'/>" + end, cond: stanza.FeatureNotImplemented, app: "unsupported"},
		{name: "subscriptions", typ: "get", xml: ps + "<subscriptions/>" + end, cond: stanza.FeatureNotImplemented, app: "unsupported"},
		{name: "owner affiliations", typ: "get", xml: owner + "<affiliations node='n'/>" + end, cond: stanza.FeatureNotImplemented, app: "unsupported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := pep.ParseRequest(tt.typ, parseEl(t, tt.xml))
			if tt.cond == "" {
				if err != nil {
					t.Fatalf("ParseRequest: %v", err)
				}
				if r.Action != tt.action {
					t.Errorf("action %v, want %v", r.Action, tt.action)
				}
				if tt.check != nil {
					tt.check(t, r)
				}
				return
			}
			var se stanza.Error
			if !errors.As(err, &se) {
				t.Fatalf("error %v (%T), want a stanza error %s", err, err, tt.cond)
			}
			app := ""
			if se.App != nil {
				app = se.App.Name.Local
				if se.App.Name.Space != pep.NSErrors {
					t.Errorf("application condition in %q", se.App.Name.Space)
				}
			}
			if se.Condition != tt.cond || app != tt.app {
				t.Errorf("error %s/%s, want %s/%s", se.Condition, app, tt.cond, tt.app)
			}
		})
	}
}

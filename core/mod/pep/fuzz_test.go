package pep

import (
	"errors"
	"testing"
	"unicode/utf8"

	"kontor.im/kontor/core/dataform"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/xmlstream"
)

// FuzzParseRequest: for any element, ParseRequest does not panic, fails
// only with stanza errors, and what it accepts is within its bounds.
func FuzzParseRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, set bool, data string) {
		el, err := xmlstream.ParseElement([]byte(data), xmlstream.Limits{MaxStanzaBytes: 64 << 10})
		if err != nil {
			return
		}
		typ := "get"
		if set {
			typ = "set"
		}
		r, err := ParseRequest(typ, el)
		if err != nil {
			var se stanza.Error
			if !errors.As(err, &se) || se.Condition == "" {
				t.Fatalf("error %v (%T) is not a stanza error", err, err)
			}
			return
		}
		switch {
		case r.Action == actNone || r.Action > ActPurge:
			t.Fatalf("accepted without an action: %+v", r)
		case len(r.Node) > MaxNodeBytes || !utf8.ValidString(r.Node):
			t.Fatalf("node %q accepted", r.Node)
		case r.Node == "" && r.Action != ActDefault:
			t.Fatalf("%v without a node accepted", r.Action)
		case len(r.ItemIDs) > maxRequestItems:
			t.Fatalf("%d item ids accepted", len(r.ItemIDs))
		case r.MaxItems < 0:
			t.Fatalf("max_items %d", r.MaxItems)
		case r.Action == ActPublish && r.Payload == nil:
			t.Fatal("publish without a payload accepted")
		case r.Action == ActRetract && len(r.ItemIDs) == 0:
			t.Fatal("retract without an item accepted")
		case r.Action == ActConfigure && typ == "set" && r.Form == nil:
			t.Fatal("configure set without a form accepted")
		case len(r.ItemID) > MaxItemIDBytes:
			t.Fatal("item id too long accepted")
		}
		for _, id := range r.ItemIDs {
			if id == "" || len(id) > MaxItemIDBytes {
				t.Fatalf("item id %q accepted", id)
			}
		}
		if r.Form != nil && r.Form.Type != dataform.TypeSubmit && r.Form.Type != dataform.TypeCancel {
			t.Fatalf("form of type %q accepted", r.Form.Type)
		}
	})
}

// FuzzPublishOptions: for any form, ApplyForm gives a valid configuration
// or an error; a configuration survives storage; and a node created from
// publish options meets those options as preconditions, unless they name a
// field that is not a precondition (which Preconditions must refuse).
func FuzzPublishOptions(f *testing.F) {
	const max = 50
	f.Fuzz(func(t *testing.T, data string) {
		el, err := xmlstream.ParseElement([]byte(data), xmlstream.Limits{MaxStanzaBytes: 64 << 10})
		if err != nil {
			return
		}
		form, err := formLimits.Parse(el)
		if err != nil {
			return
		}
		c, err := ApplyForm(DefaultConfig(), &form, max, NSPublishOptions)
		if err != nil {
			if !configEqual(c, DefaultConfig()) {
				t.Fatalf("a failed ApplyForm changed the configuration: %+v", c)
			}
			return
		}
		if !c.Access.valid() || !c.SendLast.valid() || c.MaxItems < 0 || c.MaxItems > max || len(c.Title) > maxTitleBytes {
			t.Fatalf("invalid configuration %+v", c)
		}
		if got := decodeConfig(c.encode()); !configEqual(got, c) {
			t.Fatalf("stored and read back: %+v, want %+v", got, c)
		}
		if lim := c.limit(max); lim < 1 || lim > max {
			t.Fatalf("limit %d", lim)
		}
		notPrecondition := false
		for _, fld := range form.Fields {
			if fld.Var == dataform.FormTypeVar {
				continue
			}
			x := DefaultConfig()
			known, ignored, _ := x.apply(fld, max)
			if !known || (ignored && fixedFields[fld.Var] == "") {
				notPrecondition = true
			}
		}
		err = Preconditions(c, &form, max)
		if notPrecondition != (err != nil) {
			t.Fatalf("Preconditions on the node the options created: %v (a field that is no precondition: %v)", err, notPrecondition)
		}
	})
}

package pep

import (
	"strconv"
	"unicode/utf8"

	"kontor.im/kontor/core/dataform"
	"kontor.im/kontor/core/stanza"
)

// Namespaces of XEP-0060.
const (
	NS               = "http://jabber.org/protocol/pubsub"
	NSOwner          = NS + "#owner"
	NSEvent          = NS + "#event"
	NSErrors         = NS + "#errors"
	NSNodeConfig     = NS + "#node_config"
	NSPublishOptions = NS + "#publish-options"
)

// Bounds of a request. A request beyond them is refused with bad-request
// (or not-acceptable for a payload): they keep one stanza from making the
// server do unbounded work.
const (
	// MaxNodeBytes bounds a node name. The longest names clients use
	// ("eu.siacs.conversations.axolotl.bundles:4294967295") are about 50.
	MaxNodeBytes = 512
	// MaxItemIDBytes bounds an item id. Bookmarks use the room's JID.
	MaxItemIDBytes = 1024
	// maxRequestItems bounds the item ids of one retrieval or retraction.
	maxRequestItems = 64
)

// Action is what a pubsub request asks for.
type Action uint8

const (
	actNone Action = iota
	// ActPublish: <pubsub><publish node><item id>payload</item></publish>
	// [<publish-options><x/></publish-options>]</pubsub> (XEP-0060 §7.1).
	ActPublish
	// ActRetract: <pubsub><retract node notify><item id/>...</retract>
	// (§7.2).
	ActRetract
	// ActItems: <pubsub><items node max_items><item id/>...</items> (§6.5).
	ActItems
	// ActCreate: <pubsub><create node/>[<configure><x/></configure>]
	// (§8.1).
	ActCreate
	// ActConfigure: <pubsub xmlns='#owner'><configure node>[<x/>]
	// (§8.2): a get asks for the form, a set submits it.
	ActConfigure
	// ActDefault: <pubsub xmlns='#owner'><default/> (§8.3).
	ActDefault
	// ActDelete: <pubsub xmlns='#owner'><delete node/> (§8.4).
	ActDelete
	// ActPurge: <pubsub xmlns='#owner'><purge node/> (§8.5).
	ActPurge
)

var actionNames = [...]string{"none", "publish", "retract", "items", "create", "configure", "default", "delete", "purge"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return "action?"
}

// Request is a parsed pubsub request to a PEP service.
type Request struct {
	Action Action
	Node   string
	// ItemID is the id of the published item ("" when the publisher let
	// the service choose one).
	ItemID string
	// Payload is the published item's payload element.
	Payload *stanza.Element
	// ItemIDs are the items asked for (ActItems) or retracted (ActRetract).
	ItemIDs []string
	// MaxItems is max_items of a retrieval: 0 for all.
	MaxItems int
	// Notify is the retract element's notify attribute.
	Notify bool
	// Form is the publish options (ActPublish), the configuration of a new
	// node (ActCreate) or the submitted configuration (ActConfigure set),
	// or nil.
	Form *dataform.Form
}

// pubsubError is a pubsub error: a stanza error with the application
// condition of XEP-0060 §7 and §8 (in the #errors namespace), if any.
func pubsubError(typ stanza.ErrorType, cond, app, text string) stanza.Error {
	e := stanza.Error{Type: typ, Condition: cond, Text: text}
	if app != "" {
		e.App = stanza.New(NSErrors, app)
	}
	return e
}

// unsupported is feature-not-implemented with <unsupported feature/>.
func unsupported(feature string) stanza.Error {
	e := stanza.ErrFeatureNotImplemented("")
	e.App = stanza.New(NSErrors, "unsupported").Set("feature", feature)
	return e
}

func badRequest(app, text string) stanza.Error {
	return pubsubError(stanza.Modify, stanza.BadRequest, app, text)
}

// ParseRequest reads the <pubsub/> payload of an IQ of type typ ("get" or
// "set"). Every error it returns is a stanza.Error to send back.
func ParseRequest(typ string, el *stanza.Element) (Request, error) {
	if el == nil || el.Name.Local != "pubsub" || (el.Name.Space != NS && el.Name.Space != NSOwner) {
		return Request{}, stanza.ErrBadRequest("expected a pubsub element")
	}
	owner := el.Name.Space == NSOwner
	var (
		action  *stanza.Element
		options *stanza.Element
		config  *stanza.Element
		extra   int
	)
	el.Children(func(c *stanza.Element) bool {
		switch {
		case c.Name.Space != el.Name.Space:
			// Elements of other namespaces (RSM, extensions) are ignored.
		case !owner && c.Name.Local == "publish-options":
			if options != nil {
				extra++
			}
			options = c
		case !owner && c.Name.Local == "configure":
			if config != nil {
				extra++
			}
			config = c
		default:
			if action != nil {
				extra++
			}
			action = c
		}
		return true
	})
	if action == nil {
		return Request{}, stanza.ErrBadRequest("the pubsub element names no action")
	}
	if extra > 0 {
		return Request{}, stanza.ErrBadRequest("one action per request")
	}
	if owner {
		return parseOwner(typ, action)
	}
	r, err := parseUser(typ, action)
	if err != nil {
		return Request{}, err
	}
	switch {
	case options != nil && r.Action != ActPublish:
		return Request{}, stanza.ErrBadRequest("publish-options go with publish")
	case config != nil && r.Action != ActCreate:
		return Request{}, stanza.ErrBadRequest("configure goes with create here, or in the #owner namespace")
	case options != nil:
		if r.Form, err = innerForm(options, true, false); err != nil {
			return Request{}, err
		}
	case config != nil:
		if r.Form, err = innerForm(config, true, false); err != nil {
			return Request{}, err
		}
	}
	return r, nil
}

// needType checks the IQ type an action requires.
func needType(typ, want string, a Action) error {
	if typ != want {
		return stanza.ErrBadRequest(a.String() + " needs an IQ of type " + want)
	}
	return nil
}

func parseUser(typ string, el *stanza.Element) (Request, error) {
	var r Request
	switch el.Name.Local {
	case "publish":
		r.Action = ActPublish
	case "retract":
		r.Action = ActRetract
	case "items":
		r.Action = ActItems
	case "create":
		r.Action = ActCreate
	case "subscribe", "unsubscribe", "options":
		// PEP subscriptions are implicit (XEP-0163 §4.3): presence and
		// entity capabilities.
		return r, unsupported("subscribe")
	case "subscriptions":
		return r, unsupported("retrieve-subscriptions")
	case "affiliations":
		return r, unsupported("retrieve-affiliations")
	default:
		return r, stanza.ErrBadRequest("unknown pubsub action " + el.Name.Local)
	}
	want := "set"
	if r.Action == ActItems {
		want = "get"
	}
	if err := needType(typ, want, r.Action); err != nil {
		return r, err
	}
	var err error
	if r.Node, err = nodeAttr(el, r.Action != ActCreate); err != nil {
		return r, err
	}
	if r.Action == ActCreate && r.Node == "" {
		// XEP-0060 §8.1.2 instant nodes: a PEP node needs a name.
		return r, pubsubError(stanza.Modify, stanza.NotAcceptable, "nodeid-required", "a PEP node needs a name")
	}
	switch r.Action {
	case ActPublish:
		return r, parsePublish(&r, el)
	case ActRetract:
		r.Notify = el.Get("notify") == "true" || el.Get("notify") == "1"
		if r.ItemIDs, err = itemIDs(el); err != nil {
			return r, err
		}
		if len(r.ItemIDs) == 0 {
			return r, badRequest("item-required", "name the item to retract")
		}
	case ActItems:
		if v := el.Get("max_items"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return r, stanza.ErrBadRequest("max_items must be a positive integer")
			}
			r.MaxItems = n
		}
		if r.ItemIDs, err = itemIDs(el); err != nil {
			return r, err
		}
	}
	return r, nil
}

func parseOwner(typ string, el *stanza.Element) (Request, error) {
	var r Request
	switch el.Name.Local {
	case "configure":
		r.Action = ActConfigure
	case "default":
		r.Action = ActDefault
		return r, needType(typ, "get", r.Action)
	case "delete":
		r.Action = ActDelete
	case "purge":
		r.Action = ActPurge
	case "subscriptions":
		return r, unsupported("manage-subscriptions")
	case "affiliations":
		return r, unsupported("modify-affiliations")
	default:
		return r, stanza.ErrBadRequest("unknown pubsub#owner action " + el.Name.Local)
	}
	if r.Action != ActConfigure {
		if err := needType(typ, "set", r.Action); err != nil {
			return r, err
		}
	}
	var err error
	if r.Node, err = nodeAttr(el, true); err != nil {
		return r, err
	}
	if r.Action == ActConfigure && typ == "set" {
		if r.Form, err = innerForm(el, false, true); err != nil {
			return r, err
		}
	}
	return r, nil
}

// nodeAttr reads and checks the node attribute.
func nodeAttr(el *stanza.Element, required bool) (string, error) {
	n := el.Get("node")
	switch {
	case n == "" && required:
		return "", badRequest("nodeid-required", "the node attribute is required")
	case len(n) > MaxNodeBytes:
		return "", stanza.ErrBadRequest("the node name is too long")
	case !utf8.ValidString(n):
		return "", stanza.ErrBadRequest("the node name is not UTF-8")
	}
	return n, nil
}

// checkID checks an item id.
func checkID(id string) error {
	switch {
	case len(id) > MaxItemIDBytes:
		return stanza.ErrBadRequest("the item id is too long")
	case !utf8.ValidString(id):
		return stanza.ErrBadRequest("the item id is not UTF-8")
	}
	return nil
}

// itemIDs reads the <item id/> children of retract and items.
func itemIDs(el *stanza.Element) ([]string, error) {
	var (
		ids []string
		err error
	)
	el.Children(func(c *stanza.Element) bool {
		if c.Name.Space != el.Name.Space || c.Name.Local != "item" {
			return true
		}
		id := c.Get("id")
		if id == "" {
			err = badRequest("item-required", "an item needs an id")
			return false
		}
		if err = checkID(id); err != nil {
			return false
		}
		if len(ids) == maxRequestItems {
			err = stanza.ErrBadRequest("too many items in one request")
			return false
		}
		ids = append(ids, id)
		return true
	})
	return ids, err
}

// parsePublish reads the one item of a publish and its one payload.
func parsePublish(r *Request, el *stanza.Element) error {
	var item *stanza.Element
	items := 0
	el.Children(func(c *stanza.Element) bool {
		if c.Name.Space == el.Name.Space && c.Name.Local == "item" {
			item = c
			items++
		}
		return true
	})
	switch {
	case items == 0:
		return badRequest("item-required", "publish one item")
	case items > 1:
		return badRequest("invalid-payload", "publish one item at a time")
	}
	r.ItemID = item.Get("id")
	if err := checkID(r.ItemID); err != nil {
		return err
	}
	payloads := 0
	item.Children(func(c *stanza.Element) bool {
		r.Payload = c
		payloads++
		return true
	})
	switch {
	case payloads == 0:
		return badRequest("payload-required", "the item needs a payload")
	case payloads > 1:
		return badRequest("invalid-payload", "an item has exactly one payload element")
	}
	return nil
}

// innerForm parses the data form inside el (publish-options, configure),
// which may be absent (nil) when optional. It must be of type submit, or
// cancel where allowed (an owner cancelling a configuration, XEP-0060
// §8.2.6).
func innerForm(el *stanza.Element, optional, cancel bool) (*dataform.Form, error) {
	x := el.Child(dataform.NS, "x")
	if x == nil {
		if optional {
			return nil, nil
		}
		return nil, stanza.ErrBadRequest("a form is required")
	}
	f, err := formLimits.Parse(x)
	if err != nil {
		return nil, stanza.ErrBadRequest(err.Error())
	}
	if f.Type != dataform.TypeSubmit && (!cancel || f.Type != dataform.TypeCancel) {
		return nil, stanza.ErrBadRequest("the form must be of type submit")
	}
	return &f, nil
}

// formLimits bound the forms of requests: a node configuration has a
// dozen fields.
var formLimits = dataform.Limits{MaxFields: 64, MaxValues: 64, MaxOptions: 64, MaxItems: 1, MaxInstructions: 4}

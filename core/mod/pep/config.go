package pep

import (
	"encoding/json"
	"slices"
	"strconv"
	"unicode/utf8"

	"kontor.im/kontor/core/dataform"
	"kontor.im/kontor/core/stanza"
)

// AccessModel says who may retrieve a node's items and receive its
// notifications (XEP-0060 §4.5).
type AccessModel string

const (
	// AccessPresence: the owner and the contacts subscribed to the owner's
	// presence (subscription 'from' or 'both'). The PEP default.
	AccessPresence AccessModel = "presence"
	// AccessOpen: anyone, without a subscription (OMEMO bundles and
	// device lists).
	AccessOpen AccessModel = "open"
	// AccessWhitelist: only the owner (nobody can be added to the
	// whitelist of a PEP node here): private data (XEP-0223, XEP-0402).
	AccessWhitelist AccessModel = "whitelist"
	// AccessRoster: the owner and the contacts in one of the node's
	// roster_groups_allowed.
	AccessRoster AccessModel = "roster"
)

func (a AccessModel) valid() bool {
	return a == AccessPresence || a == AccessOpen || a == AccessWhitelist || a == AccessRoster
}

// SendLast is the send_last_published_item option: when a new
// (implicit) subscriber gets the node's last item.
type SendLast string

const (
	SendNever            SendLast = "never"
	SendOnSub            SendLast = "on_sub"
	SendOnSubAndPresence SendLast = "on_sub_and_presence"
)

func (s SendLast) valid() bool {
	return s == SendNever || s == SendOnSub || s == SendOnSubAndPresence
}

// Config is a node's configuration: the subset of XEP-0060's node_config
// that a PEP service needs. It is stored as JSON in storage.PEPNode.Config.
type Config struct {
	Access AccessModel `json:"access_model"`
	// MaxItems is how many items the node keeps; 0 means "max", the
	// service's limit (Options.MaxItems), whatever it is when applied.
	MaxItems int  `json:"max_items"`
	Persist  bool `json:"persist_items"`
	// SendLast: when implicit subscribers get the last item.
	SendLast      SendLast `json:"send_last_published_item"`
	NotifyRetract bool     `json:"notify_retract"`
	NotifyDelete  bool     `json:"notify_delete"`
	// RosterGroups are the roster groups of AccessRoster.
	RosterGroups []string `json:"roster_groups_allowed,omitempty"`
	Title        string   `json:"title,omitempty"`
}

// DefaultConfig is the configuration of a node created without options:
// XEP-0163's defaults (presence access, last item on subscription and
// presence), one persistent item, retractions and deletion notified.
func DefaultConfig() Config {
	return Config{Access: AccessPresence, MaxItems: 1, Persist: true, SendLast: SendOnSubAndPresence,
		NotifyRetract: true, NotifyDelete: true}
}

// decodeConfig reads a stored configuration over the defaults. A stored
// value this version does not know fails closed: the node becomes
// owner-only rather than more open than intended.
func decodeConfig(b []byte) Config {
	c := DefaultConfig()
	if len(b) > 0 {
		if err := json.Unmarshal(b, &c); err != nil {
			c.Access = AccessWhitelist
		}
	}
	if !c.Access.valid() {
		c.Access = AccessWhitelist
	}
	if !c.SendLast.valid() {
		c.SendLast = SendNever
	}
	if c.MaxItems < 0 {
		c.MaxItems = 1
	}
	return c
}

func (c Config) encode() []byte {
	b, _ := json.Marshal(c) // a struct of strings, bools and ints
	return b
}

// limit is the number of items the node keeps under the service's limit.
func (c Config) limit(max int) int {
	if c.MaxItems == 0 || c.MaxItems > max {
		return max
	}
	return c.MaxItems
}

// Field vars of node_config.
const (
	varAccess        = "pubsub#access_model"
	varMaxItems      = "pubsub#max_items"
	varPersist       = "pubsub#persist_items"
	varSendLast      = "pubsub#send_last_published_item"
	varNotifyRetract = "pubsub#notify_retract"
	varNotifyDelete  = "pubsub#notify_delete"
	varRosterGroups  = "pubsub#roster_groups_allowed"
	varTitle         = "pubsub#title"
)

// fixedFields are node_config options this service does not let change:
// a submitted form may name them only with the value they have.
var fixedFields = map[string]string{
	"pubsub#deliver_payloads":        "1",
	"pubsub#deliver_notifications":   "1",
	"pubsub#presence_based_delivery": "1",
	"pubsub#notify_config":           "0",
	"pubsub#notify_sub":              "0",
	"pubsub#purge_offline":           "0",
	"pubsub#subscribe":               "1",
	"pubsub#publish_model":           "publishers",
}

// ignoredFields are node_config options a configure form may carry and
// that change nothing here (descriptive, or about features a PEP node does
// not have). A publish-options form may not use them as preconditions.
var ignoredFields = map[string]bool{
	"pubsub#type": true, "pubsub#description": true, "pubsub#language": true,
	"pubsub#itemreply": true, "pubsub#contact": true, "pubsub#body_xslt": true,
	"pubsub#dataform_xslt": true, "pubsub#node_type": true, "pubsub#children": true,
	"pubsub#collection": true, "pubsub#max_payload_size": true, "pubsub#item_expire": true,
	"pubsub#tempsub": true,
}

const maxTitleBytes = 1024

// configError is a field that cannot be applied.
type configError struct{ field, reason string }

func (e *configError) Error() string { return "pep: " + e.field + ": " + e.reason }

// boolValue parses an xs:boolean field value.
func boolValue(f dataform.Field) (bool, error) {
	v, err := f.Bool()
	if err != nil {
		return false, &configError{f.Var, "not a boolean"}
	}
	return v, nil
}

func single(f dataform.Field) string {
	if len(f.Values) == 0 {
		return ""
	}
	return f.Values[0]
}

// apply sets the field on c. known is false for a field that is not part of
// the configuration at all (neither applied, fixed nor ignored); ignored is
// true for one that is accepted and changes nothing.
func (c *Config) apply(f dataform.Field, max int) (known, ignored bool, err error) {
	switch f.Var {
	case varAccess:
		a := AccessModel(single(f))
		if !a.valid() {
			return true, false, &configError{f.Var, "access model " + strconv.Quote(string(a)) + " is not supported (presence, open, whitelist or roster)"}
		}
		c.Access = a
	case varMaxItems:
		v := single(f)
		if v == "max" {
			c.MaxItems = 0
			break
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return true, false, &configError{f.Var, "not 'max' or a positive number"}
		}
		if n > max {
			return true, false, &configError{f.Var, "at most " + strconv.Itoa(max) + " items (or 'max')"}
		}
		c.MaxItems = n
	case varPersist:
		if c.Persist, err = boolValue(f); err != nil {
			return true, false, err
		}
	case varSendLast:
		s := SendLast(single(f))
		if !s.valid() {
			return true, false, &configError{f.Var, "not never, on_sub or on_sub_and_presence"}
		}
		c.SendLast = s
	case varNotifyRetract:
		if c.NotifyRetract, err = boolValue(f); err != nil {
			return true, false, err
		}
	case varNotifyDelete:
		if c.NotifyDelete, err = boolValue(f); err != nil {
			return true, false, err
		}
	case varRosterGroups:
		groups := make([]string, 0, len(f.Values))
		for _, g := range f.Values {
			if g != "" && !slices.Contains(groups, g) {
				groups = append(groups, g)
			}
		}
		slices.Sort(groups)
		c.RosterGroups = groups
	case varTitle:
		t := single(f)
		if len(t) > maxTitleBytes || !utf8.ValidString(t) {
			return true, false, &configError{f.Var, "too long"}
		}
		c.Title = t
	default:
		if want, fixed := fixedFields[f.Var]; fixed {
			got := single(f)
			if b, err := f.Bool(); err == nil && (want == "0" || want == "1") {
				got = map[bool]string{true: "1", false: "0"}[b]
			}
			if got != want {
				return true, false, &configError{f.Var, "fixed at " + want + " on a PEP node"}
			}
			return true, true, nil
		}
		return ignoredFields[f.Var], true, nil
	}
	return true, false, nil
}

// ApplyForm returns base changed by a submitted configuration form
// (node_config, or publish-options used as the configuration of a node
// created by a publish). Unknown fields are ignored; a field this service
// cannot honour is an error.
func ApplyForm(base Config, f *dataform.Form, max int, formType string) (Config, error) {
	c := base
	if ft := f.FormType(); ft != "" && ft != formType {
		return base, &configError{dataform.FormTypeVar, "must be " + formType}
	}
	for _, fld := range f.Fields {
		if fld.Var == dataform.FormTypeVar {
			continue
		}
		if _, _, err := c.apply(fld, max); err != nil {
			return base, err
		}
	}
	return c, nil
}

// Preconditions reports whether the publish-options f hold for the node
// configuration c (XEP-0060 §7.1.5): every field must be one this service
// knows, and its value equal to the node's. max_items compares what the
// node keeps, so "max" matches a node configured with the limit.
func Preconditions(c Config, f *dataform.Form, max int) error {
	if ft := f.FormType(); ft != "" && ft != NSPublishOptions {
		return &configError{dataform.FormTypeVar, "must be " + NSPublishOptions}
	}
	for _, fld := range f.Fields {
		if fld.Var == dataform.FormTypeVar {
			continue
		}
		want := c
		known, ignored, err := want.apply(fld, max)
		switch {
		case err != nil:
			return err
		case !known || (ignored && fixedFields[fld.Var] == ""):
			return &configError{fld.Var, "not a precondition this service can check"}
		}
		if fld.Var == varMaxItems {
			if want.limit(max) != c.limit(max) {
				return &configError{fld.Var, "the node keeps " + strconv.Itoa(c.limit(max)) + " items"}
			}
			continue
		}
		if !configEqual(want, c) {
			return &configError{fld.Var, "the node is configured otherwise"}
		}
	}
	return nil
}

func configEqual(a, b Config) bool {
	return a.Access == b.Access && a.MaxItems == b.MaxItems && a.Persist == b.Persist && a.SendLast == b.SendLast &&
		a.NotifyRetract == b.NotifyRetract && a.NotifyDelete == b.NotifyDelete &&
		slices.Equal(a.RosterGroups, b.RosterGroups) && a.Title == b.Title
}

func boolString(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// Form renders c as a node_config form (XEP-0060 §8.2.1) of type t.
// groups are the owner's roster groups, offered as options of
// roster_groups_allowed.
func (c Config) Form(t dataform.Type, groups []string) dataform.Form {
	maxItems := "max"
	if c.MaxItems > 0 {
		maxItems = strconv.Itoa(c.MaxItems)
	}
	opts := func(vals ...string) []dataform.Option {
		out := make([]dataform.Option, len(vals))
		for i, v := range vals {
			out[i] = dataform.Option{Value: v}
		}
		return out
	}
	var groupOpts []string
	for _, g := range append(slices.Clone(c.RosterGroups), groups...) {
		if !slices.Contains(groupOpts, g) {
			groupOpts = append(groupOpts, g)
		}
	}
	slices.Sort(groupOpts)
	return dataform.New(t, NSNodeConfig,
		dataform.Field{Var: varAccess, Type: dataform.ListSingle, Label: "Who may subscribe and retrieve items",
			Values: []string{string(c.Access)}, Options: opts("presence", "open", "roster", "whitelist")},
		dataform.Field{Var: varMaxItems, Type: dataform.TextSingle, Label: "Max # of items to persist",
			Values: []string{maxItems}},
		dataform.Field{Var: varPersist, Type: dataform.Boolean, Label: "Persist items to storage",
			Values: []string{boolString(c.Persist)}},
		dataform.Field{Var: varSendLast, Type: dataform.ListSingle, Label: "When to send the last published item",
			Values: []string{string(c.SendLast)}, Options: opts("never", "on_sub", "on_sub_and_presence")},
		dataform.Field{Var: varNotifyRetract, Type: dataform.Boolean, Label: "Notify subscribers when items are removed",
			Values: []string{boolString(c.NotifyRetract)}},
		dataform.Field{Var: varNotifyDelete, Type: dataform.Boolean, Label: "Notify subscribers when the node is deleted",
			Values: []string{boolString(c.NotifyDelete)}},
		dataform.Field{Var: varRosterGroups, Type: dataform.ListMulti, Label: "Roster groups allowed to subscribe",
			Values: slices.Clone(c.RosterGroups), Options: opts(groupOpts...)},
		dataform.Field{Var: varTitle, Type: dataform.TextSingle, Label: "A friendly name for the node",
			Values: []string{c.Title}},
	)
}

// configErrorStanza turns an error of ApplyForm into the stanza error of a
// configure request (XEP-0060 §8.2.5.3: not-acceptable).
func configErrorStanza(err error) stanza.Error {
	return stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable, Text: err.Error()}
}

// preconditionError is XEP-0060 §7.1.5's answer to publish-options that do
// not hold.
func preconditionError(err error) stanza.Error {
	return pubsubError(stanza.Cancel, stanza.Conflict, "precondition-not-met", err.Error())
}

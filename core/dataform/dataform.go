// Package dataform implements XEP-0004 Data Forms (version 2.13.2): parsing
// a jabber:x:data <x/> element into a Form with validation, and rendering a
// Form back into an element. It also has the FORM_TYPE helpers of XEP-0068
// (version 1.3.0) that XEP-0128 extended disco info and most form-based
// protocols rely on.
//
// Parse is meant for input from the network, so it is strict where the
// specification says MUST and bounded everywhere (Limits): a form that
// breaks a rule gives an error that wraps ErrInvalid and says which field is
// wrong and why, in words that can be sent back to the client as the text of
// a bad-request or not-acceptable stanza error (XEP-0004 §4).
//
// Where XEP-0004 asks a receiver to be lenient, Parse is:
//   - a field type it does not know is kept as written and validated as
//     text-single (§3.3: text-single "MUST be assumed");
//   - a field without a type attribute in a form of type submit, result or
//     cancel gets its type from context (§3.2), so its number of values and
//     its options are not checked;
//   - <reported/> may come after <item/> elements, and top-level fields may
//     sit beside them (§3.4 notes older revisions were ambiguous);
//   - elements it does not know (other namespaces, future extensions such
//     as XEP-0122 validation) are ignored.
//
// A Form is plain data: Parse(f.Element()) returns f again for every f that
// Parse returned (the round-trip property the fuzz test checks). Absent and
// empty are not told apart for title, label, desc and option labels: both
// are "".
package dataform

import (
	"errors"
	"fmt"
	"strings"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/stanza"
)

// NS is the data forms namespace.
const NS = "jabber:x:data"

// FormTypeVar is the var of the field that names a form's type (XEP-0068).
const FormTypeVar = "FORM_TYPE"

// Type is the type attribute of a form.
type Type string

// Form types (XEP-0004 §3.1).
const (
	TypeForm   Type = "form"
	TypeSubmit Type = "submit"
	TypeCancel Type = "cancel"
	TypeResult Type = "result"
)

// FieldType is the type attribute of a field.
type FieldType string

// Field types (XEP-0004 §3.3).
const (
	Boolean     FieldType = "boolean"
	Fixed       FieldType = "fixed"
	Hidden      FieldType = "hidden"
	JIDMulti    FieldType = "jid-multi"
	JIDSingle   FieldType = "jid-single"
	ListMulti   FieldType = "list-multi"
	ListSingle  FieldType = "list-single"
	TextMulti   FieldType = "text-multi"
	TextPrivate FieldType = "text-private"
	TextSingle  FieldType = "text-single"
)

// Known reports whether t is one of the field types XEP-0004 defines.
func (t FieldType) Known() bool {
	switch t {
	case Boolean, Fixed, Hidden, JIDMulti, JIDSingle, ListMulti, ListSingle, TextMulti, TextPrivate, TextSingle:
		return true
	}
	return false
}

// Multi reports whether a field of type t may hold more than one value
// (§3.2: list-multi, jid-multi, text-multi and hidden).
func (t FieldType) Multi() bool {
	return t == ListMulti || t == JIDMulti || t == TextMulti || t == Hidden
}

// Option is one choice of a list-single or list-multi field.
type Option struct {
	Label string
	Value string
}

// Field is one field of a form.
type Field struct {
	Var   string
	Type  FieldType // as written; "" when the attribute is absent
	Label string
	Desc  string
	// Required is the <required/> flag.
	Required bool
	Values   []string
	Options  []Option
}

// Form is a parsed jabber:x:data form.
type Form struct {
	Type         Type
	Title        string
	Instructions []string
	Fields       []Field
	// Reported is the table header of a result form with several items
	// (§3.4), nil when the form has none. Items holds the rows.
	Reported []Field
	Items    [][]Field
}

// ErrInvalid is wrapped by every error Parse returns for a form that breaks
// the rules.
var ErrInvalid = errors.New("dataform: invalid form")

// Error is what Parse returns for an invalid form. Its message names the
// field and the rule; it is safe to show to the sender.
type Error struct {
	Field  string // the var of the field at fault, or ""
	Reason string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("dataform: field %q: %s", e.Field, e.Reason)
	}
	return "dataform: " + e.Reason
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &Error{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Limits bound how much of a form Parse accepts. A zero field takes the
// value of DefaultLimits.
type Limits struct {
	// MaxFields is the most fields in the whole form: top-level, reported
	// and in all items together.
	MaxFields int
	// MaxValues is the most values of one field.
	MaxValues int
	// MaxOptions is the most options of one field.
	MaxOptions int
	// MaxItems is the most <item/> rows.
	MaxItems int
	// MaxInstructions is the most <instructions/> elements.
	MaxInstructions int
}

// DefaultLimits are generous for every form a server sees (registration,
// search results, configuration, extended disco info) and still bound the
// work one stanza can cause.
var DefaultLimits = Limits{MaxFields: 1024, MaxValues: 256, MaxOptions: 256, MaxItems: 256, MaxInstructions: 16}

func (l Limits) withDefaults() Limits {
	if l.MaxFields <= 0 {
		l.MaxFields = DefaultLimits.MaxFields
	}
	if l.MaxValues <= 0 {
		l.MaxValues = DefaultLimits.MaxValues
	}
	if l.MaxOptions <= 0 {
		l.MaxOptions = DefaultLimits.MaxOptions
	}
	if l.MaxItems <= 0 {
		l.MaxItems = DefaultLimits.MaxItems
	}
	if l.MaxInstructions <= 0 {
		l.MaxInstructions = DefaultLimits.MaxInstructions
	}
	return l
}

// Parse parses and validates a jabber:x:data <x/> element with
// DefaultLimits.
func Parse(el *stanza.Element) (Form, error) {
	return DefaultLimits.Parse(el)
}

// Parse parses and validates a jabber:x:data <x/> element within l.
func (l Limits) Parse(el *stanza.Element) (Form, error) {
	l = l.withDefaults()
	if el == nil {
		return Form{}, invalid("", "no form")
	}
	if el.Name.Space != NS || el.Name.Local != "x" {
		return Form{}, invalid("", "expected an x element in the %s namespace", NS)
	}
	p := parser{lim: l}
	f := Form{Type: Type(el.Get("type"))}
	switch f.Type {
	case TypeForm, TypeSubmit, TypeCancel, TypeResult:
	case "":
		return Form{}, invalid("", "the form has no type")
	default:
		return Form{}, invalid("", "unknown form type %q", string(f.Type))
	}
	var (
		titles   int
		reported bool
		err      error
	)
	top := newVars()
	for _, n := range el.Nodes {
		c := n.Elem
		if c == nil || c.Name.Space != NS {
			continue
		}
		switch c.Name.Local {
		case "title":
			if titles++; titles > 1 {
				return Form{}, invalid("", "more than one title")
			}
			f.Title = c.Text()
		case "instructions":
			if len(f.Instructions) >= l.MaxInstructions {
				return Form{}, invalid("", "more than %d instructions", l.MaxInstructions)
			}
			f.Instructions = append(f.Instructions, c.Text())
		case "field":
			fld, err := p.field(c, f.Type, top)
			if err != nil {
				return Form{}, err
			}
			f.Fields = append(f.Fields, fld)
		case "reported":
			if f.Type != TypeResult {
				return Form{}, invalid("", "only a form of type result may have reported fields")
			}
			if reported {
				return Form{}, invalid("", "more than one reported element")
			}
			reported = true
			if f.Reported, err = p.group(c, f.Type, "reported"); err != nil {
				return Form{}, err
			}
		case "item":
			if f.Type != TypeResult {
				return Form{}, invalid("", "only a form of type result may have items")
			}
			if len(f.Items) >= l.MaxItems {
				return Form{}, invalid("", "more than %d items", l.MaxItems)
			}
			row, err := p.group(c, f.Type, "item")
			if err != nil {
				return Form{}, err
			}
			f.Items = append(f.Items, row)
		}
	}
	if len(f.Items) > 0 && !reported {
		return Form{}, invalid("", "items without a reported element")
	}
	// §3.4: every item contains each reported field.
	for i, row := range f.Items {
		for _, r := range f.Reported {
			if !hasVar(row, r.Var) {
				return Form{}, invalid(r.Var, "item %d lacks this reported field", i+1)
			}
		}
	}
	return f, nil
}

type parser struct {
	lim Limits
	n   int // fields seen so far in the whole form
}

// vars tracks the vars used in one container of fields.
type vars map[string]struct{}

func newVars() vars { return vars{} }

// group parses the <field/> children of <reported/> or <item/>, which need
// at least one field, each with a var.
func (p *parser) group(el *stanza.Element, ft Type, what string) ([]Field, error) {
	var out []Field
	seen := newVars()
	for _, n := range el.Nodes {
		c := n.Elem
		if c == nil || c.Name.Space != NS || c.Name.Local != "field" {
			continue
		}
		if c.Get("var") == "" {
			return nil, invalid("", "a field in %s has no var", what)
		}
		fld, err := p.field(c, ft, seen)
		if err != nil {
			return nil, err
		}
		out = append(out, fld)
	}
	if len(out) == 0 {
		return nil, invalid("", "%s has no fields", what)
	}
	return out, nil
}

func hasVar(fs []Field, v string) bool {
	for i := range fs {
		if fs[i].Var == v {
			return true
		}
	}
	return false
}

// field parses one <field/>. seen holds the vars of its container, to keep
// them unique.
func (p *parser) field(el *stanza.Element, ft Type, seen vars) (Field, error) {
	if p.n++; p.n > p.lim.MaxFields {
		return Field{}, invalid("", "more than %d fields", p.lim.MaxFields)
	}
	f := Field{Var: el.Get("var"), Type: FieldType(el.Get("type")), Label: el.Get("label")}
	if f.Var == "" && f.Type != Fixed {
		return Field{}, invalid("", "a field of type %s has no var", f.effectiveName(ft))
	}
	if f.Var != "" {
		if _, dup := seen[f.Var]; dup {
			return Field{}, invalid(f.Var, "more than one field with this var")
		}
		seen[f.Var] = struct{}{}
	}
	// The type rules apply when the type is known: written, or text-single
	// by default in a form of type form. In other forms an untyped field
	// takes its type from context, which this package cannot know.
	typ := f.Type
	switch {
	case typ == "" && ft == TypeForm:
		typ = TextSingle
	case typ != "" && !typ.Known():
		typ = TextSingle
	}
	var descs, reqs int
	for _, n := range el.Nodes {
		c := n.Elem
		if c == nil || c.Name.Space != NS {
			continue
		}
		switch c.Name.Local {
		case "desc":
			if descs++; descs > 1 {
				return Field{}, invalid(f.Var, "more than one desc")
			}
			f.Desc = c.Text()
		case "required":
			if reqs++; reqs > 1 {
				return Field{}, invalid(f.Var, "more than one required element")
			}
			if !isEmpty(c) {
				return Field{}, invalid(f.Var, "the required element must be empty")
			}
			f.Required = true
		case "value":
			if len(f.Values) >= p.lim.MaxValues {
				return Field{}, invalid(f.Var, "more than %d values", p.lim.MaxValues)
			}
			f.Values = append(f.Values, c.Text())
		case "option":
			if typ != "" && typ != ListSingle && typ != ListMulti {
				return Field{}, invalid(f.Var, "a field of type %s cannot have options", f.effectiveName(ft))
			}
			if len(f.Options) >= p.lim.MaxOptions {
				return Field{}, invalid(f.Var, "more than %d options", p.lim.MaxOptions)
			}
			o, err := option(c, f.Var)
			if err != nil {
				return Field{}, err
			}
			for _, x := range f.Options {
				if x.Value == o.Value {
					return Field{}, invalid(f.Var, "two options with the value %q", o.Value)
				}
				if o.Label != "" && x.Label == o.Label {
					return Field{}, invalid(f.Var, "two options with the label %q", o.Label)
				}
			}
			f.Options = append(f.Options, o)
		}
	}
	if typ != "" && !typ.Multi() && len(f.Values) > 1 {
		return Field{}, invalid(f.Var, "a field of type %s has at most one value", f.effectiveName(ft))
	}
	switch typ {
	case Boolean:
		for _, v := range f.Values {
			if v == "" {
				continue
			}
			if _, err := parseBool(v); err != nil {
				return Field{}, invalid(f.Var, "%q is not a boolean (0, 1, false or true)", v)
			}
		}
	case JIDSingle, JIDMulti:
		for _, v := range f.Values {
			if v == "" {
				continue
			}
			if _, err := jid.Parse(v); err != nil {
				return Field{}, invalid(f.Var, "%q is not a valid JID", v)
			}
		}
	}
	return f, nil
}

// effectiveName names the type of a field for error messages.
func (f Field) effectiveName(ft Type) string {
	switch {
	case f.Type != "":
		return string(f.Type)
	case ft == TypeForm:
		return string(TextSingle)
	}
	return "(unspecified)"
}

func option(el *stanza.Element, fieldVar string) (Option, error) {
	o := Option{Label: el.Get("label")}
	n := 0
	for _, c := range el.Nodes {
		if c.Elem != nil && c.Elem.Name.Space == NS && c.Elem.Name.Local == "value" {
			n++
			o.Value = c.Elem.Text()
		}
	}
	if n != 1 {
		return Option{}, invalid(fieldVar, "an option must have exactly one value, not %d", n)
	}
	return o, nil
}

// isEmpty reports whether el has no child elements and only whitespace.
func isEmpty(el *stanza.Element) bool {
	for _, n := range el.Nodes {
		if n.Elem != nil || strings.TrimSpace(n.Text) != "" {
			return false
		}
	}
	return true
}

// parseBool accepts the lexical forms of xs:boolean.
func parseBool(v string) (bool, error) {
	switch v {
	case "1", "true":
		return true, nil
	case "0", "false":
		return false, nil
	}
	return false, invalid("", "%q is not a boolean", v)
}

// Element renders the form as a jabber:x:data <x/> element.
func (f Form) Element() *stanza.Element {
	x := stanza.New(NS, "x").Set("type", string(f.Type))
	if f.Title != "" {
		x.Append(stanza.New(NS, "title").AppendText(f.Title))
	}
	for _, in := range f.Instructions {
		x.Append(stanza.New(NS, "instructions").AppendText(in))
	}
	for i := range f.Fields {
		x.Append(f.Fields[i].Element())
	}
	if len(f.Reported) > 0 {
		r := stanza.New(NS, "reported")
		for i := range f.Reported {
			r.Append(f.Reported[i].Element())
		}
		x.Append(r)
	}
	for _, row := range f.Items {
		it := stanza.New(NS, "item")
		for i := range row {
			it.Append(row[i].Element())
		}
		x.Append(it)
	}
	return x
}

// Element renders the field as a <field/> element.
func (f Field) Element() *stanza.Element {
	el := stanza.New(NS, "field").Set("var", f.Var).Set("type", string(f.Type)).Set("label", f.Label)
	if f.Desc != "" {
		el.Append(stanza.New(NS, "desc").AppendText(f.Desc))
	}
	if f.Required {
		el.Append(stanza.New(NS, "required"))
	}
	for _, v := range f.Values {
		el.Append(stanza.New(NS, "value").AppendText(v))
	}
	for _, o := range f.Options {
		el.Append(stanza.New(NS, "option").Set("label", o.Label).Append(
			stanza.New(NS, "value").AppendText(o.Value)))
	}
	return el
}

// New returns a form of type t whose first field is a hidden FORM_TYPE
// with the value formType (XEP-0068), followed by fields. An empty formType
// adds no FORM_TYPE field.
func New(t Type, formType string, fields ...Field) Form {
	f := Form{Type: t}
	if formType != "" {
		f.Fields = append(f.Fields, Field{Var: FormTypeVar, Type: Hidden, Values: []string{formType}})
	}
	f.Fields = append(f.Fields, fields...)
	return f
}

// FormType returns the value of the form's FORM_TYPE field, or "" if the
// form has none. Following XEP-0068 §7, the field counts only if it is of
// type hidden, or, in a form of type submit, has no type at all; a visible
// FORM_TYPE field is an ordinary field.
func (f Form) FormType() string {
	fld, ok := f.Field(FormTypeVar)
	if !ok || len(fld.Values) == 0 {
		return ""
	}
	if fld.Type == Hidden || (fld.Type == "" && f.Type == TypeSubmit) {
		return fld.Values[0]
	}
	return ""
}

// Field returns the top-level field with this var.
func (f Form) Field(v string) (Field, bool) {
	for i := range f.Fields {
		if f.Fields[i].Var == v {
			return f.Fields[i], true
		}
	}
	return Field{}, false
}

// Value returns the first value of the top-level field with this var, or "".
func (f Form) Value(v string) string {
	fld, _ := f.Field(v)
	if len(fld.Values) == 0 {
		return ""
	}
	return fld.Values[0]
}

// Bool returns the value of a boolean field: false when it has no value
// (the default of §3.3), an error wrapping ErrInvalid when the value is not
// a boolean.
func (f Field) Bool() (bool, error) {
	if len(f.Values) == 0 || f.Values[0] == "" {
		return false, nil
	}
	b, err := parseBool(f.Values[0])
	if err != nil {
		return false, invalid(f.Var, "%q is not a boolean (0, 1, false or true)", f.Values[0])
	}
	return b, nil
}

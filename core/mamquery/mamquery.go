// Package mamquery is the query side of Message Archive Management
// (XEP-0313) over a module.Archive: parsing a query (its data form, RSM
// paging, flip-page), planning it, sending the results and answering the
// fin, the query form and the archive metadata. The mam module serves it
// for a user's own archive and the muc module for a room's, so both
// archives speak the same protocol, with the #extended features
// (before-id, after-id, ids, flip-page, metadata), RSM max 0 as a count
// only and item-not-found for ids the archive does not hold.
//
// Who may query which archive is the caller's decision; a Server only
// answers for the archive it is given.
package mamquery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"kontor.im/kontor/core/dataform"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/rsm"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/xmlstream"
)

// Namespaces.
const (
	// NS is the XEP-0313 namespace, also the feature and FORM_TYPE.
	NS = "urn:xmpp:mam:2"
	// NSExtended is the feature of before-id, after-id, ids, flipped pages
	// and metadata.
	NSExtended = "urn:xmpp:mam:2#extended"

	nsForward  = "urn:xmpp:forward:0"                        // XEP-0297
	nsValidate = "http://jabber.org/protocol/xdata-validate" // XEP-0122
)

// Element names of the protocol.
var (
	QueryName    = stanza.Name{Space: NS, Local: "query"}
	MetadataName = stanza.Name{Space: NS, Local: "metadata"}
)

// Server answers queries over one module.Archive.
type Server struct {
	Archive module.Archive
	Log     *slog.Logger
	// PageSize is the page size of a query that does not ask for one;
	// MaxPageSize caps what a query asks for.
	PageSize, MaxPageSize int
}

// Bounds of what a query may hold.
const (
	// maxQueryIDBytes bounds the queryid, which is echoed in every result.
	maxQueryIDBytes = 256
	// maxTimeBytes bounds a start or end value (a XEP-0082 DateTime is 20
	// to 35 bytes).
	maxTimeBytes = 64
	// maxIDs bounds the ids field. XEP-0313 sets no bound; this one keeps
	// the lookup of all of them to one page of the archive (250 by default
	// in the archive package, and the default max_page_size).
	maxIDs = 250
	// maxFormFields bounds the fields of a query form: the six of
	// XEP-0313 and FORM_TYPE, with room for unknown ones to be refused by
	// name.
	maxFormFields = 32
)

// Query form fields.
const (
	fieldWith     = "with"
	fieldStart    = "start"
	fieldEnd      = "end"
	fieldBeforeID = "before-id"
	fieldAfterID  = "after-id"
	fieldIDs      = "ids"
)

// stampFormat is XEP-0082 DateTime in UTC with milliseconds.
const stampFormat = "2006-01-02T15:04:05.000Z"

// request is a parsed archive query.
type request struct {
	queryID           string
	with              jid.JID // zero: any
	start, end        time.Time
	afterID, beforeID string   // the form's bounds
	ids               []string // distinct, in the order given
	page              rsm.Set
	flip              bool
}

// parseQuery parses the <query/> of an archive query. maxIDs bounds the
// ids field. Every error is a stanza.Error.
func parseQuery(q *stanza.Element, maxIDs int) (request, error) {
	var r request
	if q == nil || q.Name != QueryName {
		return r, stanza.ErrBadRequest("expected a query element in the " + NS + " namespace")
	}
	if q.Has("node") {
		return r, stanza.ErrFeatureNotImplemented("archives of pubsub nodes are not supported")
	}
	if r.queryID = q.Get("queryid"); len(r.queryID) > maxQueryIDBytes {
		return r, stanza.ErrBadRequest("the queryid is longer than " + strconv.Itoa(maxQueryIDBytes) + " bytes")
	}
	var form, set *stanza.Element
	var err error
	for _, n := range q.Nodes {
		c := n.Elem
		if c == nil {
			continue
		}
		switch c.Name {
		case stanza.Name{Space: dataform.NS, Local: "x"}:
			if form != nil {
				return r, stanza.ErrBadRequest("more than one data form")
			}
			form = c
		case stanza.Name{Space: rsm.NS, Local: "set"}:
			if set != nil {
				return r, stanza.ErrBadRequest("more than one result set element")
			}
			set = c
		case stanza.Name{Space: NS, Local: "flip-page"}:
			r.flip = true
		}
	}
	if set != nil {
		if r.page, err = rsm.Parse(set); err != nil {
			return request{}, stanza.ErrBadRequest(err.Error())
		}
		if r.page.HasIndex {
			return request{}, stanza.ErrFeatureNotImplemented("paging by index is not supported; use after and before")
		}
	}
	if form != nil {
		if err := r.parseForm(form, maxIDs); err != nil {
			return request{}, err
		}
	}
	return r, nil
}

// parseForm reads the filters of the query form into r.
func (r *request) parseForm(x *stanza.Element, maxIDs int) error {
	f, err := dataform.Limits{MaxFields: maxFormFields, MaxValues: max(maxIDs, 1)}.Parse(x)
	if err != nil {
		return stanza.ErrBadRequest(err.Error())
	}
	if f.Type != dataform.TypeSubmit {
		return stanza.ErrBadRequest("the query form must be of type submit")
	}
	if f.FormType() != NS {
		return stanza.ErrBadRequest("the query form needs a hidden FORM_TYPE field of " + NS)
	}
	for _, fld := range f.Fields {
		switch fld.Var {
		case dataform.FormTypeVar:
			continue
		case fieldIDs:
			for _, v := range fld.Values {
				if _, err := uid(fieldIDs, v); err != nil {
					return err
				}
				if !slices.Contains(r.ids, v) {
					r.ids = append(r.ids, v)
				}
			}
			continue
		case fieldWith, fieldStart, fieldEnd, fieldBeforeID, fieldAfterID:
		default:
			return stanza.ErrFeatureNotImplemented("the query field " + strconv.Quote(clip(fld.Var)) + " is not supported")
		}
		if len(fld.Values) > 1 {
			return stanza.ErrBadRequest("the field " + fld.Var + " takes one value")
		}
		if len(fld.Values) == 0 || fld.Values[0] == "" {
			continue // an empty field filters nothing
		}
		v := fld.Values[0]
		switch fld.Var {
		case fieldWith:
			if r.with, err = jid.Parse(v); err != nil {
				return stanza.ErrBadRequest("the field with is not a valid JID")
			}
		case fieldStart:
			r.start, err = dateTime(fieldStart, v)
		case fieldEnd:
			r.end, err = dateTime(fieldEnd, v)
		case fieldBeforeID:
			r.beforeID, err = uid(fieldBeforeID, v)
		case fieldAfterID:
			r.afterID, err = uid(fieldAfterID, v)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// dateTime parses a XEP-0082 DateTime.
func dateTime(field, v string) (time.Time, error) {
	if len(v) <= maxTimeBytes {
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, stanza.ErrBadRequest("the field " + field + " is not a XEP-0082 DateTime (e.g. 2025-03-01T12:00:00Z)")
}

// uid checks an archive id from a query.
func uid(field, v string) (string, error) {
	if v == "" || len(v) > rsm.MaxUIDBytes {
		return "", stanza.ErrBadRequest("the field " + field + " holds an empty or overlong id")
	}
	return v, nil
}

// clip bounds what an error text quotes of the input.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// Archive names the archive a request reads.
type Archive struct {
	Owner jid.JID
	// Since hides what the archive holds from before this time (zero:
	// nothing is hidden): a room keeps the messages of an earlier room
	// of its address under their retention, but does not show them, nor
	// admit that their ids exist.
	Since time.Time
}

// Query answers an archive query <query/> (an IQ set) for archive a: it
// sends each result to the requester with send, in order, and returns the
// <fin/> to answer the IQ with. Errors are stanza errors for the
// requester, or internal ones the router logs.
func (s *Server) Query(ctx context.Context, a Archive, to jid.JID, q *stanza.Element, send func(*stanza.Stanza)) (*stanza.Element, error) {
	req, err := parseQuery(q, maxIDs)
	if err != nil {
		return nil, err
	}
	owner := a.Owner
	if req.start.Before(a.Since) {
		req.start = a.Since
	}
	aq, countOnly, err := s.plan(ctx, a, req)
	if err != nil {
		return nil, err
	}
	page, err := s.Archive.Query(ctx, aq)
	if err != nil {
		return nil, ArchiveError("query", err)
	}
	if len(req.ids) > 0 && len(page.Messages) < len(req.ids) {
		if err := s.allExist(ctx, a, req.ids); err != nil {
			return nil, err
		}
	}
	msgs := page.Messages
	complete := page.Complete
	if countOnly {
		msgs, complete = nil, page.Count == 0 || len(page.Messages) == 0
	}
	for i := range msgs {
		j := i
		if req.flip {
			j = len(msgs) - 1 - i
		}
		send(s.result(ctx, owner, to, req.queryID, msgs[j]))
	}
	var set rsm.Set
	if len(msgs) > 0 {
		set.First, set.Last = msgs[0].ID, msgs[len(msgs)-1].ID
	}
	if page.Count >= 0 {
		set.Count, set.HasCount = page.Count, true
	}
	return stanza.New(NS, "fin").Set("complete", strconv.FormatBool(complete)).Append(set.Element()), nil
}

// plan turns a request into an archive query; countOnly is set for RSM
// max 0.
func (s *Server) plan(ctx context.Context, a Archive, r request) (q module.ArchiveQuery, countOnly bool, err error) {
	q = module.ArchiveQuery{Owner: a.Owner.String(), Start: r.start, End: r.end, IDs: r.ids, Last: r.page.HasBefore}
	if !r.with.IsZero() {
		q.With = r.with.String()
	}
	switch {
	case r.page.HasMax && r.page.Max == 0:
		q.Max, countOnly = 1, true
	case r.page.HasMax:
		q.Max = min(r.page.Max, s.MaxPageSize)
	case len(r.ids) > 0:
		q.Max = min(len(r.ids), s.MaxPageSize)
	default:
		q.Max = s.PageSize
	}
	if q.AfterID, err = s.tighter(ctx, a, r.afterID, r.page.After, true); err != nil {
		return q, false, err
	}
	if q.BeforeID, err = s.tighter(ctx, a, r.beforeID, r.page.Before, false); err != nil {
		return q, false, err
	}
	return q, countOnly, nil
}

// tighter returns the tighter of two bounds: the later one for after, the
// earlier one for before. Both must be in the archive.
func (s *Server) tighter(ctx context.Context, arch Archive, a, b string, later bool) (string, error) {
	if a == "" || b == "" || a == b {
		id := cmp.Or(a, b)
		if id != "" && !arch.Since.IsZero() {
			// The archive finds an id of any age; Since hides the older.
			if err := s.allExist(ctx, arch, []string{id}); err != nil {
				return "", err
			}
		}
		return id, nil
	}
	page, err := s.Archive.Query(ctx, module.ArchiveQuery{Owner: arch.Owner.String(), Start: arch.Since, IDs: []string{a, b}, Max: 2})
	if err != nil {
		return "", ArchiveError("query", err)
	}
	if len(page.Messages) != 2 {
		return "", stanza.ErrItemNotFound("no message with this id in the archive")
	}
	if later {
		return page.Messages[1].ID, nil
	}
	return page.Messages[0].ID, nil
}

// allExist returns item-not-found unless every id is in the archive.
func (s *Server) allExist(ctx context.Context, a Archive, ids []string) error {
	page, err := s.Archive.Query(ctx, module.ArchiveQuery{Owner: a.Owner.String(), Start: a.Since, IDs: ids, Max: len(ids)})
	if err != nil {
		return ArchiveError("query", err)
	}
	if len(page.Messages) < len(ids) {
		return stanza.ErrItemNotFound("an id of the ids field is not in the archive")
	}
	return nil
}

// result builds the message that carries one archived message to the
// requester (XEP-0313, Query results). A stored message that does not
// parse is sent without its content (the id, time and order stay right,
// as XEP-0313 allows for removed content), and logged.
func (s *Server) result(ctx context.Context, owner, to jid.JID, queryID string, a module.ArchivedMessage) *stanza.Stanza {
	// Fifty of these make a page: the elements are built with their
	// attributes and children in place rather than appended one by one.
	delay := &stanza.Element{Name: stanza.Name{Space: stanza.NSDelay, Local: "delay"},
		Attr: []stanza.Attr{{Name: stanza.Name{Local: "stamp"}, Value: a.Time.UTC().Format(stampFormat)}}}
	fwd := &stanza.Element{Name: stanza.Name{Space: nsForward, Local: "forwarded"}, Nodes: make([]stanza.Node, 1, 2)}
	fwd.Nodes[0].Elem = delay
	el, err := xmlstream.ParseElement(a.Stanza, xmlstream.Limits{MaxStanzaBytes: len(a.Stanza) + 1024})
	switch {
	case err != nil:
		s.Log.WarnContext(ctx, "archived message does not parse; sent without content", "owner", owner.String(), "archive_id", a.ID, "err", err)
	case el.Name != stanza.Name{Space: stanza.NSClient, Local: "message"}:
		s.Log.WarnContext(ctx, "archived element is not a message; sent without content", "owner", owner.String(), "archive_id", a.ID)
	default:
		fwd.Nodes = append(fwd.Nodes, stanza.Node{Elem: el})
	}
	res := &stanza.Element{Name: stanza.Name{Space: NS, Local: "result"}, Attr: make([]stanza.Attr, 0, 2), Nodes: []stanza.Node{{Elem: fwd}}}
	res.Set("queryid", queryID).Set("id", a.ID)
	out := stanza.NewMessage(owner, to, "", "")
	out.El.Nodes = append(out.El.Nodes, stanza.Node{Elem: res})
	return out
}

// Form is the answer to a request for the query form (an IQ get
// <query/>; XEP-0313, Retrieving form fields).
func Form() *stanza.Element {
	x := dataform.New(dataform.TypeForm, NS,
		dataform.Field{Var: fieldWith, Type: dataform.JIDSingle},
		dataform.Field{Var: fieldStart, Type: dataform.TextSingle},
		dataform.Field{Var: fieldEnd, Type: dataform.TextSingle},
		dataform.Field{Var: fieldBeforeID, Type: dataform.TextSingle},
		dataform.Field{Var: fieldAfterID, Type: dataform.TextSingle},
		dataform.Field{Var: fieldIDs, Type: dataform.ListMulti},
	).Element()
	// The ids field is open to any value (XEP-0122), as XEP-0313 asks.
	x.Children(func(c *stanza.Element) bool {
		if c.Get("var") == fieldIDs {
			c.Append(stanza.New(nsValidate, "validate").Set("datatype", "xs:string").Append(stanza.New(nsValidate, "open")))
		}
		return true
	})
	return stanza.New(NS, "query").Append(x)
}

// Metadata answers a metadata request (an IQ get <metadata/>; XEP-0313,
// Archive metadata) for archive a: its first and last message, nothing
// for an empty one.
func (s *Server) Metadata(ctx context.Context, a Archive) (*stanza.Element, error) {
	owner := a.Owner
	md := stanza.New(NS, "metadata")
	first, err := s.Archive.Query(ctx, module.ArchiveQuery{Owner: owner.String(), Start: a.Since, Max: 1})
	if err != nil {
		return nil, ArchiveError("metadata", err)
	}
	if len(first.Messages) == 0 {
		return md, nil
	}
	last, err := s.Archive.Query(ctx, module.ArchiveQuery{Owner: owner.String(), Start: a.Since, Max: 1, Last: true})
	if err != nil {
		return nil, ArchiveError("metadata", err)
	}
	if len(last.Messages) == 0 {
		return nil, Internal("metadata", errors.New("the archive has a first message but no last"))
	}
	for _, x := range []struct {
		name string
		msg  module.ArchivedMessage
	}{{"start", first.Messages[0]}, {"end", last.Messages[len(last.Messages)-1]}} {
		md.Append(stanza.New(NS, x.name).Set("id", x.msg.ID).Set("timestamp", x.msg.Time.UTC().Format(stampFormat)))
	}
	return md, nil
}

// Internal is an error for the client whose detail the router logs.
func Internal(what string, err error) error {
	return fmt.Errorf("mam: %s: %w", what, err)
}

// ArchiveError maps an error of the archive: an id it does not know is
// item-not-found; anything else is internal.
func ArchiveError(what string, err error) error {
	var se stanza.Error
	switch {
	case errors.As(err, &se):
		return se
	case errors.Is(err, storage.ErrNotFound):
		return stanza.ErrItemNotFound("no message with this id in the archive")
	}
	return Internal(what, err)
}

package gdpr

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/xmlstream"
)

// SchemaVersion names the layout of data.json; it changes when a field's
// meaning changes (new fields may be added within a version).
const SchemaVersion = "urn:kontor:gdpr-export:1"

// Info is what the export's information sheet (Art. 15(1)) says about the
// controller.
type Info struct {
	Controller string // name and address of the controller
	DPOContact string // how to reach the data protection officer
}

// Section adds files to an export: the extension point for data kept
// outside the stores this package knows (uploaded files, once the upload
// module exists, add a Section that writes their metadata and content).
type Section interface {
	// Name is a short label for progress and the audit entry.
	Name() string
	// Export writes the section's files through b (b.Create per file);
	// pseudo gives the pseudonym of another person's JID (or the JID
	// itself when third parties are included).
	Export(ctx context.Context, subject string, b *Bundle, pseudo func(string) string) error
}

// ExportOptions modify Export.
type ExportOptions struct {
	// IncludeThirdParties keeps other people's addresses and full stanzas;
	// by default they are replaced by pseudonyms stable within this
	// export, and messages are reduced to their text (Art. 15(4)).
	IncludeThirdParties bool
	// IncludeRestricted adds the archived messages an erasure of this JID
	// kept and restricted (Art. 18), marked "restricted": they are another
	// person's data when the JID was given to someone new, so they are
	// left out unless the DPO asks, with a justification (audited).
	IncludeRestricted bool
	// Justification is required with IncludeThirdParties and
	// IncludeRestricted; it is audited.
	Justification string
	// Batch is the archive page size; default 1000.
	Batch int
	// TempDir holds the spooled parts while the archive is read once;
	// default os.TempDir().
	TempDir  string
	Sections []Section
}

// ExportResult says what was exported.
type ExportResult struct {
	Messages, Offline int
	Manifest          Manifest
}

// Export writes everything Kontor keeps about subject to w as one zip file
// (see the README for the layout and data.json's schema), reading the
// archive once, page by page, so memory stays bounded whatever its size.
func (t *Tool) Export(ctx context.Context, g Grant, subject string, w io.Writer, opts ExportOptions) (ExportResult, error) {
	var res ExportResult
	if opts.IncludeThirdParties && strings.TrimSpace(opts.Justification) == "" {
		return res, errors.New("gdpr: export: including third parties needs a justification")
	}
	if opts.IncludeRestricted && strings.TrimSpace(opts.Justification) == "" {
		return res, errors.New("gdpr: export: including restricted messages needs a justification")
	}
	if opts.Batch <= 0 {
		opts.Batch = 1000
	}
	x := &exporter{t: t, subject: subject, opts: opts, at: t.now()}
	if !opts.IncludeThirdParties {
		x.key = make([]byte, 32)
		if _, err := rand.Read(x.key); err != nil {
			return res, err
		}
	}
	if err := x.gather(ctx); err != nil {
		return res, fmt.Errorf("gdpr: export %s: %w", subject, err)
	}
	b := newBundle(w, x.at)
	if err := x.run(ctx, b); err != nil {
		return res, fmt.Errorf("gdpr: export %s: %w", subject, err)
	}
	m, err := b.close(Manifest{Schema: SchemaVersion, Subject: subject, Generated: x.at})
	if err != nil {
		return res, fmt.Errorf("gdpr: export %s: %w", subject, err)
	}
	res = ExportResult{Messages: x.messages, Offline: len(x.data.Offline), Manifest: m}
	details := map[string]string{"messages": strconv.Itoa(x.messages), "files": strconv.Itoa(len(m.Files)),
		"third_parties": strconv.FormatBool(opts.IncludeThirdParties)}
	if opts.IncludeRestricted {
		details["restricted"] = strconv.Itoa(x.restricted)
	}
	for _, f := range m.Files {
		if f.Name == "data.json" {
			details["data_json_sha256"] = f.SHA256
		}
	}
	reason := g.Purpose
	if opts.IncludeThirdParties || opts.IncludeRestricted {
		details["justification"] = opts.Justification
	}
	if err := t.audit(ctx, g, "gdpr.export", subject, reason, details); err != nil {
		return res, fmt.Errorf("gdpr: export of %s written, but not audited: %w", subject, err)
	}
	return res, nil
}

// ExportData is data.json without the archive (which is streamed after
// it, as "archive"): the documented schema.
type ExportData struct {
	Schema        string                `json:"schema"`
	Subject       string                `json:"subject"`
	Generated     time.Time             `json:"generated"`
	Pseudonymised bool                  `json:"pseudonymised"`
	Account       *ExportAccount        `json:"account"`
	Directory     *ExportDirectory      `json:"directory"`
	Roster        []ExportContact       `json:"roster"`
	Requests      []ExportRequest       `json:"subscription_requests"`
	VCard         string                `json:"vcard,omitempty"`
	PrivateXML    []ExportPrivate       `json:"private_xml"`
	PEP           []ExportPEPNode       `json:"pep"`
	Blocklist     []string              `json:"blocklist"`
	ArchivePrefs  *ExportPrefs          `json:"archive_prefs"`
	LastActivity  *ExportLast           `json:"last_activity"`
	Offline       []ExportMessage       `json:"offline_messages"`
	Retention     ExportRetention       `json:"retention"`
	LegalHolds    []storage.LegalHold   `json:"legal_holds"`
	Restrictions  []storage.Restriction `json:"restrictions"`
	Audit         []ExportAudit         `json:"audit"`
	// Archive is the decrypted message archive, oldest first.
	Archive []ExportMessage `json:"archive"`
}

type ExportAccount struct {
	JID      string    `json:"jid"`
	Disabled bool      `json:"disabled"`
	Created  time.Time `json:"created"`
	// Credentials says which password hashes are kept (never the hashes).
	Credentials []string `json:"credential_kinds"`
}

type ExportDirectory struct {
	Source     string          `json:"source"`
	DN         string          `json:"dn"`
	StableID   string          `json:"stable_id"`
	Attributes json.RawMessage `json:"attributes"`
	Disabled   bool            `json:"disabled_by_sync"`
	Updated    time.Time       `json:"updated"`
}

type ExportContact struct {
	JID          string   `json:"jid"`
	Name         string   `json:"name,omitempty"`
	Subscription string   `json:"subscription"`
	Ask          bool     `json:"ask,omitempty"`
	Groups       []string `json:"groups,omitempty"`
}

type ExportRequest struct {
	From string    `json:"from"`
	At   time.Time `json:"at"`
}

type ExportPrivate struct {
	Key string `json:"key"`
	XML string `json:"xml"`
}

type ExportPEPNode struct {
	Node     string          `json:"node"`
	MaxItems int             `json:"max_items"`
	Created  time.Time       `json:"created"`
	Items    []ExportPEPItem `json:"items"`
}

type ExportPEPItem struct {
	ID        string    `json:"id"`
	Published time.Time `json:"published"`
	Payload   string    `json:"payload"`
}

type ExportPrefs struct {
	Default string   `json:"default"`
	Always  []string `json:"always"`
	Never   []string `json:"never"`
}

type ExportLast struct {
	At     time.Time `json:"at"`
	Status string    `json:"status,omitempty"`
}

// ExportMessage is one message. With is the other party (a pseudonym
// unless third parties are included); Stanza is the full stanza as stored,
// only when third parties are included.
type ExportMessage struct {
	ID        string    `json:"id,omitempty"`
	Time      time.Time `json:"time"`
	Direction string    `json:"direction"` // "sent" or "received"
	With      string    `json:"with"`
	Type      string    `json:"type,omitempty"`
	Subject   string    `json:"subject,omitempty"`
	Body      string    `json:"body,omitempty"`
	Encrypted bool      `json:"end_to_end_encrypted,omitempty"`
	Stanza    string    `json:"stanza,omitempty"`
	// Restricted: kept by an erasure (Art. 18); only in an export with
	// IncludeRestricted.
	Restricted bool `json:"restricted,omitempty"`
}

type ExportRetention struct {
	// Rules are the policy's decisions for the person's typical messages.
	Rules []RetentionRule `json:"rules"`
	// DataKeys are the months and classes under which the archive keeps
	// messages, and when each may be deleted.
	DataKeys []ExportDataKey `json:"data_keys"`
}

type ExportDataKey struct {
	Month     string    `json:"month"` // YYYY-MM
	Class     string    `json:"class"`
	KeepUntil time.Time `json:"keep_until,omitzero"` // zero: no end
}

type ExportAudit struct {
	Seq     int64             `json:"seq"`
	At      time.Time         `json:"at"`
	Actor   string            `json:"actor"`
	Action  string            `json:"action"`
	Reason  string            `json:"reason,omitempty"`
	Details map[string]string `json:"details,omitempty"`
}

type exporter struct {
	t          *Tool
	subject    string
	opts       ExportOptions
	at         time.Time
	key        []byte // pseudonym key; nil: third parties included
	data       ExportData
	messages   int
	restricted int // of messages, those restricted (IncludeRestricted)
}

// pseudo returns the pseudonym of a JID that is not the subject's (its
// resource dropped), stable within this export.
func (x *exporter) pseudo(j string) string {
	if x.key == nil || j == "" {
		return j
	}
	bare, res, _ := strings.Cut(j, "/")
	if bare == x.subject {
		if res != "" {
			return bare + "/" + res
		}
		return bare
	}
	m := hmac.New(sha256.New, x.key)
	m.Write([]byte(bare))
	return "person-" + hex.EncodeToString(m.Sum(nil)[:5]) + "@pseudonymised.invalid"
}

// gather reads everything but the archive.
func (x *exporter) gather(ctx context.Context) error {
	st, s := x.t.Store, x.subject
	d := &x.data
	d.Schema, d.Subject, d.Generated, d.Pseudonymised = SchemaVersion, s, x.at, x.key != nil
	if a, err := st.Account(ctx, s); err == nil {
		acc := &ExportAccount{JID: a.JID, Disabled: a.Disabled, Created: a.Created}
		for _, c := range a.Credentials {
			acc.Credentials = append(acc.Credentials, "SCRAM-"+c.Hash)
		}
		d.Account = acc
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	if ls, ok := any(st).(storage.LDAPState); ok {
		if l, err := ls.LDAPLinkByJID(ctx, "default", s); err == nil {
			attrs := json.RawMessage(l.Attrs)
			if !json.Valid(attrs) {
				attrs, _ = json.Marshal(string(l.Attrs))
			}
			d.Directory = &ExportDirectory{Source: "default", DN: l.DN, StableID: l.StableID, Attributes: attrs, Disabled: l.Disabled, Updated: l.Updated}
		} else if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
	}
	items, _, err := st.RosterItems(ctx, s)
	if err != nil {
		return err
	}
	for _, it := range items {
		c := ExportContact{JID: x.pseudo(it.Contact), Subscription: string(it.Subscription), Ask: it.AskOut, Groups: it.Groups}
		if x.key == nil {
			c.Name = it.Name
		}
		d.Roster = append(d.Roster, c)
	}
	reqs, err := st.SubscriptionRequests(ctx, s)
	if err != nil {
		return err
	}
	for _, r := range reqs {
		d.Requests = append(d.Requests, ExportRequest{From: x.pseudo(r.From), At: r.At})
	}
	if v, err := st.VCard(ctx, s); err == nil {
		d.VCard = string(v)
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	keys, err := st.PrivateXMLKeys(ctx, s)
	if err != nil {
		return err
	}
	for _, k := range keys {
		v, err := st.Private(ctx, s, k)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		d.PrivateXML = append(d.PrivateXML, ExportPrivate{Key: k, XML: string(v)})
	}
	nodes, err := st.PEPNodes(ctx, s)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		pn := ExportPEPNode{Node: n.Node, MaxItems: n.MaxItems, Created: n.Created}
		its, err := st.PEPItems(ctx, s, n.Node, nil, 0)
		if err != nil {
			return err
		}
		for _, it := range its {
			pn.Items = append(pn.Items, ExportPEPItem{ID: it.ID, Published: it.Published, Payload: string(it.Payload)})
		}
		d.PEP = append(d.PEP, pn)
	}
	blocked, err := st.BlockedJIDs(ctx, s)
	if err != nil {
		return err
	}
	for _, b := range blocked {
		d.Blocklist = append(d.Blocklist, x.pseudo(b))
	}
	if p, err := st.ArchivePrefs(ctx, s); err == nil {
		ep := &ExportPrefs{Default: p.Default}
		for _, j := range p.Always {
			ep.Always = append(ep.Always, x.pseudo(j))
		}
		for _, j := range p.Never {
			ep.Never = append(ep.Never, x.pseudo(j))
		}
		d.ArchivePrefs = ep
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	if at, status, err := st.LastActivity(ctx, s); err == nil {
		d.LastActivity = &ExportLast{At: at, Status: status}
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	offline, err := st.OfflineMessages(ctx, s, 0)
	if err != nil {
		return err
	}
	for _, m := range offline {
		em := ExportMessage{Time: m.Stamp, Direction: "received", With: x.pseudo(m.From)}
		if x.t.OpenOffline != nil {
			if raw, err := x.t.OpenOffline(m); err == nil {
				x.fill(&em, raw)
			} else {
				em.Body = "(this message could not be decrypted)"
			}
		}
		d.Offline = append(d.Offline, em)
	}
	if x.t.Retention != nil {
		rules, err := x.t.Retention.ExplainRetention(ctx, s)
		if err != nil {
			return err
		}
		d.Retention.Rules = rules
	}
	dkeys, err := st.ArchiveKeysOf(ctx, s)
	if err != nil {
		return err
	}
	for _, k := range dkeys {
		if k.Retired && !x.opts.IncludeRestricted {
			// An erased person's key, kept for what a hold or duty keeps:
			// not this account's.
			continue
		}
		dk := ExportDataKey{Month: fmt.Sprintf("%04d-%02d", k.Slice/100, k.Slice%100), Class: k.Class}
		if !k.KeepUntil.Equal(storage.ArchiveForever) {
			dk.KeepUntil = k.KeepUntil
		}
		d.Retention.DataKeys = append(d.Retention.DataKeys, dk)
	}
	if d.LegalHolds, err = st.LegalHolds(ctx, s, true); err != nil {
		return err
	}
	if d.Restrictions, err = st.Restrictions(ctx, s); err != nil {
		return err
	}
	if x.t.Trail != nil {
		var after int64
		for {
			es, err := x.t.Trail.Query(ctx, audit.Query{Subject: s, After: after, Limit: 1000})
			if err != nil {
				return err
			}
			for _, e := range es {
				d.Audit = append(d.Audit, ExportAudit{Seq: e.Seq, At: e.At, Actor: e.Actor, Action: e.Action, Reason: e.Reason, Details: e.Details})
			}
			if len(es) < 1000 {
				break
			}
			after = es[len(es)-1].Seq
		}
	}
	return nil
}

var parseLimits = xmlstream.Limits{MaxStanzaBytes: 2 << 20}

// fill sets em's text fields from a stored stanza.
func (x *exporter) fill(em *ExportMessage, raw []byte) *stanza.Element {
	el, err := xmlstream.ParseElement(raw, parseLimits)
	if err != nil {
		em.Body = "(this message could not be read)"
		return nil
	}
	em.Type = el.Get("type")
	em.Body = el.ChildText(stanza.NSClient, "body")
	em.Subject = el.ChildText(stanza.NSClient, "subject")
	if x.key == nil {
		em.Stanza = string(raw)
	}
	return el
}

// message builds the XML of a message for the XEP-0227 file: the stanza
// as stored, or rebuilt from its text with pseudonymised addresses.
func (x *exporter) message(el *stanza.Element, em *ExportMessage) *stanza.Element {
	if x.key == nil && el != nil {
		return el
	}
	m := stanza.New(stanza.NSClient, "message")
	if el != nil {
		m.Set("from", x.pseudo(el.Get("from"))).Set("to", x.pseudo(el.Get("to")))
	}
	if em.Type != "" {
		m.Set("type", em.Type)
	}
	if em.Subject != "" {
		m.Append(stanza.New(stanza.NSClient, "subject").SetText(em.Subject))
	}
	if em.Body != "" {
		m.Append(stanza.New(stanza.NSClient, "body").SetText(em.Body))
	}
	return m
}

func (x *exporter) run(ctx context.Context, b *Bundle) error {
	t := x.t
	// The archive is read once; conversations.html and xep0227.xml are
	// spooled to temporary files meanwhile and copied in afterwards.
	htmlTmp, err := os.CreateTemp(x.opts.TempDir, "kontor-export-*.html")
	if err != nil {
		return err
	}
	defer os.Remove(htmlTmp.Name())
	defer htmlTmp.Close()
	xmlTmp, err := os.CreateTemp(x.opts.TempDir, "kontor-export-*.xml")
	if err != nil {
		return err
	}
	defer os.Remove(xmlTmp.Name())
	defer xmlTmp.Close()
	hw, xw := bufio.NewWriterSize(htmlTmp, 64<<10), bufio.NewWriterSize(xmlTmp, 64<<10)

	w, err := b.Create("00-information.html")
	if err != nil {
		return err
	}
	if err := x.writeInfo(w); err != nil {
		return err
	}
	jw, err := b.Create("data.json")
	if err != nil {
		return err
	}
	jb := bufio.NewWriterSize(jw, 64<<10)
	head, err := json.MarshalIndent(x.data, "", " ")
	if err != nil {
		return err
	}
	// Drop the closing "archive": null} and stream the archive instead.
	head = head[:strings.LastIndex(string(head), `"archive"`)]
	jb.Write(head)
	jb.WriteString(`"archive": [`)

	x.htmlHead(hw)
	if err := x.xmlHead(xw); err != nil {
		return err
	}
	xw.WriteString(`<archive xmlns='urn:xmpp:pie:0#mam'>`)
	enc := json.NewEncoder(jb)
	enc.SetEscapeHTML(false)
	day := ""
	if t.Archive != nil {
		walk := t.Archive.Walk
		if x.opts.IncludeRestricted {
			walk = t.Archive.WalkRestricted
		}
		err := walk(ctx, x.subject, time.Time{}, time.Time{}, x.opts.Batch, func(ms []module.ArchivedMessage) error {
			for _, m := range ms {
				em := ExportMessage{ID: m.ID, Time: m.Time, Direction: "received", With: x.pseudo(m.With), Encrypted: m.Encrypted,
					Restricted: m.Restricted}
				if m.Restricted {
					x.restricted++
				}
				if m.Outgoing {
					em.Direction = "sent"
				}
				el := x.fill(&em, m.Stanza)
				if x.messages > 0 {
					jb.WriteByte(',')
				}
				jb.WriteString("\n  ")
				if err := enc.Encode(em); err != nil {
					return err
				}
				res := stanza.New("urn:xmpp:mam:2", "result").Set("id", m.ID)
				fwd := stanza.New("urn:xmpp:forward:0", "forwarded")
				fwd.Append(stanza.New(stanza.NSDelay, "delay").Set("stamp", m.Time.UTC().Format(time.RFC3339Nano)), x.message(el, &em))
				res.Append(fwd)
				xw.Write(res.AppendXML(nil, ""))
				xw.WriteByte('\n')
				if d := m.Time.UTC().Format(time.DateOnly); d != day {
					if day != "" {
						hw.WriteString("</table>\n")
					}
					day = d
					fmt.Fprintf(hw, "<h3>%s</h3>\n<table>\n", d)
				}
				x.htmlRow(hw, em)
				x.messages++
				if x.messages%10000 == 0 {
					t.progress("export %s: %d messages", x.subject, x.messages)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if day != "" {
		hw.WriteString("</table>\n")
	}
	t.progress("export %s: %d messages, writing the files", x.subject, x.messages)
	jb.WriteString("\n ]\n}\n")
	if err := jb.Flush(); err != nil {
		return err
	}
	xw.WriteString("</archive>\n")
	x.xmlTail(xw)
	hw.WriteString("</body>\n</html>\n")
	for _, f := range []struct {
		name string
		bw   *bufio.Writer
		file *os.File
	}{{"conversations.html", hw, htmlTmp}, {"xep0227.xml", xw, xmlTmp}} {
		if err := f.bw.Flush(); err != nil {
			return err
		}
		if _, err := f.file.Seek(0, io.SeekStart); err != nil {
			return err
		}
		zw, err := b.Create(f.name)
		if err != nil {
			return err
		}
		if _, err := io.Copy(zw, f.file); err != nil {
			return err
		}
	}
	sections := x.opts.Sections
	if t.UploadsSection != nil {
		sections = append(slices.Clip(sections), t.UploadsSection)
	}
	for _, s := range sections {
		t.progress("export %s: %s", x.subject, s.Name())
		if err := s.Export(ctx, x.subject, b, x.pseudo); err != nil {
			return fmt.Errorf("%s: %w", s.Name(), err)
		}
	}
	return nil
}

const css = `body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;width:100%}td{border-bottom:1px solid #ddd;padding:.3em;vertical-align:top}
td.t{white-space:nowrap;color:#666;width:6em}td.w{white-space:nowrap;width:16em}.sent td.w{color:#06c}
.received td.w{color:#080}td.b{white-space:pre-wrap}h3{margin-top:2em}`

func (x *exporter) htmlHead(w *bufio.Writer) {
	fmt.Fprintf(w, "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Conversations of %s</title><style>%s</style></head>\n<body>\n",
		html.EscapeString(x.subject), css)
	fmt.Fprintf(w, "<h1>Conversations of %s</h1>\n<p>Exported %s. Times are UTC.", html.EscapeString(x.subject), x.at.Format(time.RFC1123))
	if x.key != nil {
		w.WriteString(" Other people's addresses are replaced by pseudonyms (the same person has the same pseudonym throughout this export).")
	}
	w.WriteString("</p>\n")
}

func (x *exporter) htmlRow(w *bufio.Writer, em ExportMessage) {
	arrow := "from"
	if em.Direction == "sent" {
		arrow = "to"
	}
	body := em.Body
	if em.Encrypted && body == "" {
		body = "(end-to-end encrypted: the server cannot read it)"
	}
	fmt.Fprintf(w, "<tr class=\"%s\"><td class=\"t\">%s</td><td class=\"w\">%s %s</td><td class=\"b\">%s</td></tr>\n",
		em.Direction, em.Time.UTC().Format("15:04:05"), arrow, html.EscapeString(em.With), html.EscapeString(body))
}

// xmlHead opens the XEP-0227 file and writes everything but the archive.
func (x *exporter) xmlHead(w *bufio.Writer) error {
	local, domain, _ := strings.Cut(x.subject, "@")
	fmt.Fprintf(w, "<?xml version='1.0' encoding='UTF-8'?>\n<server-data xmlns='urn:xmpp:pie:0'>\n<host jid='%s'>\n<user name='%s'>\n",
		html.EscapeString(domain), html.EscapeString(local))
	d := x.data
	q := stanza.New("jabber:iq:roster", "query")
	for _, c := range d.Roster {
		it := stanza.New("jabber:iq:roster", "item").Set("jid", c.JID).Set("subscription", c.Subscription)
		if c.Name != "" {
			it.Set("name", c.Name)
		}
		if c.Ask {
			it.Set("ask", "subscribe")
		}
		for _, g := range c.Groups {
			it.Append(stanza.New("jabber:iq:roster", "group").SetText(g))
		}
		q.Append(it)
	}
	w.Write(q.AppendXML(nil, ""))
	w.WriteByte('\n')
	if d.VCard != "" {
		if el, err := xmlstream.ParseElement([]byte(d.VCard), parseLimits); err == nil {
			w.Write(el.AppendXML(nil, ""))
			w.WriteByte('\n')
		}
	}
	if len(d.PrivateXML) > 0 {
		p := stanza.New("jabber:iq:private", "query")
		for _, px := range d.PrivateXML {
			if el, err := xmlstream.ParseElement([]byte(px.XML), parseLimits); err == nil {
				p.Append(el)
			}
		}
		w.Write(p.AppendXML(nil, ""))
		w.WriteByte('\n')
	}
	if len(d.Blocklist) > 0 {
		bl := stanza.New("urn:xmpp:blocking", "blocklist")
		for _, j := range d.Blocklist {
			bl.Append(stanza.New("urn:xmpp:blocking", "item").Set("jid", j))
		}
		w.Write(bl.AppendXML(nil, ""))
		w.WriteByte('\n')
	}
	if len(d.PEP) > 0 {
		ps := stanza.New("http://jabber.org/protocol/pubsub", "pubsub")
		for _, n := range d.PEP {
			items := stanza.New("http://jabber.org/protocol/pubsub", "items").Set("node", n.Node).Set("max_items", strconv.Itoa(n.MaxItems))
			for _, it := range n.Items {
				item := stanza.New("http://jabber.org/protocol/pubsub", "item").Set("id", it.ID)
				if el, err := xmlstream.ParseElement([]byte(it.Payload), parseLimits); err == nil {
					item.Append(el)
				}
				items.Append(item)
			}
			ps.Append(items)
		}
		w.Write(ps.AppendXML(nil, ""))
		w.WriteByte('\n')
	}
	if len(d.Offline) > 0 {
		off := stanza.New("urn:xmpp:pie:0", "offline-messages")
		for _, m := range d.Offline {
			var el *stanza.Element
			if m.Stanza != "" {
				el, _ = xmlstream.ParseElement([]byte(m.Stanza), parseLimits)
			}
			msg := x.message(el, &m)
			if el == nil {
				msg.Set("from", m.With).Set("to", x.subject)
			}
			msg.RemoveChildren(stanza.NSDelay, "delay")
			msg.Append(stanza.New(stanza.NSDelay, "delay").Set("stamp", m.Time.UTC().Format(time.RFC3339Nano)))
			off.Append(msg)
		}
		w.Write(off.AppendXML(nil, ""))
		w.WriteByte('\n')
	}
	return nil
}

func (x *exporter) xmlTail(w *bufio.Writer) {
	w.WriteString("</user>\n</host>\n</server-data>\n")
}

// parseStanza returns the body text of a serialised message.
func parseStanza(raw []byte) (string, error) {
	el, err := xmlstream.ParseElement(raw, parseLimits)
	if err != nil {
		return "", err
	}
	return el.ChildText(stanza.NSClient, "body"), nil
}

package gdpr

import (
	"archive/zip"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/xmlstream"
)

// ImportResult counts what an import stored.
type ImportResult struct {
	Users, Contacts, Messages, Offline, PEPItems int
}

// MaxImportElement bounds one element of an imported file (a roster, a
// vCard, one archived message).
const MaxImportElement = 16 << 20

// ImportFile imports a XEP-0227 file, or the xep0227.xml of an export zip,
// into this Kontor: accounts (without credentials: set a password with
// `kontor user passwd`), rosters, vCards, private XML, blocklists, PEP
// nodes and items, offline messages and the message archive (through the
// archive, so it is sealed as it arrives). Accounts that exist already are
// refused: import into a fresh Kontor. The file is read element by
// element, so an archive of any size imports in bounded memory.
func (t *Tool) ImportFile(ctx context.Context, g Grant, path string) (ImportResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return ImportResult{}, err
	}
	defer f.Close()
	var r io.ReaderAt = f
	var size int64
	if zr, err := zip.OpenReader(path); err == nil {
		defer zr.Close()
		var entry *zip.File
		for _, zf := range zr.File {
			if zf.Name == "xep0227.xml" {
				entry = zf
			}
		}
		if entry == nil {
			return ImportResult{}, fmt.Errorf("gdpr: import: %s has no xep0227.xml", path)
		}
		// A zip entry cannot be read at offsets: copy it out first.
		tmp, err := os.CreateTemp("", "kontor-import-*.xml")
		if err != nil {
			return ImportResult{}, err
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		rc, err := entry.Open()
		if err != nil {
			return ImportResult{}, err
		}
		size, err = io.Copy(tmp, rc)
		rc.Close()
		if err != nil {
			return ImportResult{}, err
		}
		r = tmp
	} else {
		fi, err := f.Stat()
		if err != nil {
			return ImportResult{}, err
		}
		size = fi.Size()
	}
	res, err := t.Import(ctx, io.NewSectionReader(r, 0, size))
	if err != nil {
		return res, err
	}
	if err := t.audit(ctx, g, "gdpr.import", "", g.Purpose, map[string]string{"file": path,
		"users": strconv.Itoa(res.Users), "messages": strconv.Itoa(res.Messages)}); err != nil {
		return res, fmt.Errorf("gdpr: imported, but not audited: %w", err)
	}
	return res, nil
}

const (
	nsPIE     = "urn:xmpp:pie:0"
	nsPIEMAM  = "urn:xmpp:pie:0#mam"
	nsRoster  = "jabber:iq:roster"
	nsPrivate = "jabber:iq:private"
	nsBlock   = "urn:xmpp:blocking"
	nsPubSub  = "http://jabber.org/protocol/pubsub"
)

// Import reads a XEP-0227 document from r.
func (t *Tool) Import(ctx context.Context, r *io.SectionReader) (ImportResult, error) {
	var res ImportResult
	d := xml.NewDecoder(r)
	var host, user string
	// element returns the raw element that starts at the token just read
	// (start is its offset), skipping over it.
	element := func(start int64) (*stanza.Element, error) {
		if err := d.Skip(); err != nil {
			return nil, err
		}
		end := d.InputOffset()
		if end-start > MaxImportElement {
			return nil, fmt.Errorf("an element of %d bytes (at most %d)", end-start, MaxImportElement)
		}
		buf := make([]byte, end-start)
		if _, err := r.ReadAt(buf, start); err != nil {
			return nil, err
		}
		return xmlstream.ParseElement(buf, xmlstream.Limits{MaxStanzaBytes: MaxImportElement})
	}
	depth := 0
	inArchive := false
	for {
		start := d.InputOffset()
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, fmt.Errorf("gdpr: import: %w", err)
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 1 && tk.Name == xml.Name{Space: nsPIE, Local: "server-data"}:
			case depth == 2 && tk.Name.Local == "host":
				host = attr(tk, "jid")
			case depth == 3 && tk.Name.Local == "user":
				j, err := jid.New(attr(tk, "name"), host, "")
				if err != nil {
					return res, fmt.Errorf("gdpr: import: user %q@%q: %w", attr(tk, "name"), host, err)
				}
				user = j.String()
				if err := t.Store.CreateAccount(ctx, storage.Account{JID: user, Domain: j.Domain(), Created: t.now()}); err != nil {
					return res, fmt.Errorf("gdpr: import %s: %w (import into a fresh Kontor)", user, err)
				}
				res.Users++
				t.progress("import: %s", user)
			case depth == 4 && tk.Name == xml.Name{Space: nsPIEMAM, Local: "archive"}:
				inArchive = true
			case depth == 5 && inArchive:
				el, err := element(start)
				depth--
				if err != nil {
					return res, fmt.Errorf("gdpr: import %s archive: %w", user, err)
				}
				if err := t.importArchived(ctx, user, el); err != nil {
					return res, fmt.Errorf("gdpr: import %s archive: %w", user, err)
				}
				res.Messages++
				if res.Messages%10000 == 0 {
					t.progress("import %s: %d messages", user, res.Messages)
				}
			case depth == 4:
				el, err := element(start)
				depth--
				if err != nil {
					return res, fmt.Errorf("gdpr: import %s: %w", user, err)
				}
				if err := t.importElement(ctx, user, el, &res); err != nil {
					return res, fmt.Errorf("gdpr: import %s: %s: %w", user, el.Name.Local, err)
				}
			}
		case xml.EndElement:
			if depth == 4 {
				inArchive = false
			}
			depth--
		}
	}
	if t.Archive != nil && res.Messages > 0 {
		if err := t.Archive.Flush(ctx); err != nil {
			return res, err
		}
	}
	return res, nil
}

func attr(se xml.StartElement, name string) string {
	for _, a := range se.Attr {
		if a.Name.Local == name && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

func (t *Tool) importElement(ctx context.Context, user string, el *stanza.Element, res *ImportResult) error {
	st := t.Store
	if el.Name.Local == "offline-messages" && (el.Name.Space == "" || el.Name.Space == nsPIE) {
		// Captured on its own, a child of <user/> that inherited the
		// document's default namespace has none.
		el.Name.Space = nsPIE
	}
	switch el.Name {
	case stanza.Name{Space: nsRoster, Local: "query"}:
		var err error
		el.Children(func(it *stanza.Element) bool {
			if it.Name.Local != "item" {
				return true
			}
			item := storage.RosterItem{Contact: it.Get("jid"), Name: it.Get("name"), Subscription: storage.Subscription(it.Get("subscription")),
				AskOut: it.Get("ask") == "subscribe"}
			switch item.Subscription {
			case storage.SubNone, storage.SubTo, storage.SubFrom, storage.SubBoth:
			default:
				item.Subscription = storage.SubNone
			}
			it.Children(func(g *stanza.Element) bool {
				if g.Name.Local == "group" {
					item.Groups = append(item.Groups, g.Text())
				}
				return true
			})
			if _, err = st.PutRosterItem(ctx, user, item); err != nil {
				return false
			}
			res.Contacts++
			return true
		})
		return err
	case stanza.Name{Space: "vcard-temp", Local: "vCard"}:
		return st.SetVCard(ctx, user, el.AppendXML(nil, ""))
	case stanza.Name{Space: nsPrivate, Local: "query"}:
		var err error
		el.Children(func(c *stanza.Element) bool {
			err = st.SetPrivate(ctx, user, "{"+c.Name.Space+"}"+c.Name.Local, c.AppendXML(nil, ""))
			return err == nil
		})
		return err
	case stanza.Name{Space: nsBlock, Local: "blocklist"}:
		var jids []string
		el.Children(func(c *stanza.Element) bool {
			if j := c.Get("jid"); j != "" {
				jids = append(jids, j)
			}
			return true
		})
		_, err := st.BlockJIDs(ctx, user, jids, 0)
		return err
	case stanza.Name{Space: nsPubSub, Local: "pubsub"}:
		var err error
		el.Children(func(items *stanza.Element) bool {
			node := items.Get("node")
			if items.Name.Local != "items" || node == "" {
				return true
			}
			maxItems, _ := strconv.Atoi(items.Get("max_items"))
			if err = st.CreatePEPNode(ctx, storage.PEPNode{Owner: user, Node: node, Config: []byte("{}"), MaxItems: max(maxItems, 1)}, 0); err != nil && !errors.Is(err, storage.ErrExists) {
				return false
			}
			err = nil
			items.Children(func(it *stanza.Element) bool {
				payload := it.FirstChild()
				if it.Name.Local != "item" || payload == nil {
					return true
				}
				err = st.PublishPEPItem(ctx, storage.PEPItem{Owner: user, Node: node, ID: it.Get("id"), Payload: payload.AppendXML(nil, ""), Publisher: user}, 0)
				res.PEPItems++
				return err == nil
			})
			return err == nil
		})
		return err
	case stanza.Name{Space: nsPIE, Local: "offline-messages"}:
		if t.Seal == nil {
			return errors.New("offline messages need the archive's sealer (archive.kek_file)")
		}
		var err error
		el.Children(func(m *stanza.Element) bool {
			stamp := t.now()
			if d := m.Child(stanza.NSDelay, "delay"); d != nil {
				if ts, perr := time.Parse(time.RFC3339Nano, d.Get("stamp")); perr == nil {
					stamp = ts
				}
			}
			err = t.Seal(ctx, user, m.Get("from"), stamp.UTC().Truncate(time.Microsecond), m.AppendXML(nil, ""))
			res.Offline++
			return err == nil
		})
		return err
	}
	return nil // an element this server does not keep
}

// importArchived appends one <result/> of an imported archive.
func (t *Tool) importArchived(ctx context.Context, user string, res *stanza.Element) error {
	if t.Archive == nil {
		return errors.New("the archive is off: an archive cannot be imported")
	}
	fwd := res.Child("urn:xmpp:forward:0", "forwarded")
	if fwd == nil {
		return errors.New("a result without forwarded")
	}
	msg := fwd.Child(stanza.NSClient, "message")
	if msg == nil {
		return errors.New("a result without a message")
	}
	var at time.Time
	if d := fwd.Child(stanza.NSDelay, "delay"); d != nil {
		at, _ = time.Parse(time.RFC3339Nano, d.Get("stamp"))
	}
	from, to := msg.Get("from"), msg.Get("to")
	fromBare, _, _ := strings.Cut(from, "/")
	m := module.ArchivedMessage{ID: res.Get("id"), Owner: user, Time: at, Stanza: msg.AppendXML(nil, "")}
	if fromBare == user {
		m.Outgoing, m.With = true, to
	} else {
		m.With = from
	}
	if m.With == "" {
		m.With = user
	}
	return t.Archive.Append(ctx, m)
}

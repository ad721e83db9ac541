package gdpr

import (
	"archive/zip"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"kontor.im/kontor/core/account"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/sasl"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/xmlstream"
)

// ImportResult counts what an import stored.
type ImportResult struct {
	Users, Contacts, Messages, Offline, PEPItems int
	// Credentials counts the accounts that came with their password
	// (SCRAM hashes, or a clear password turned into them).
	Credentials int
	// SHA1Only counts the accounts among them that came with SCRAM-SHA-1
	// hashes only: clients that pick SCRAM-SHA-256 cannot log them in
	// until a PLAIN login adds that credential (core/account).
	SHA1Only int
	// Skipped lists what the file holds that Kontor does not take, one
	// line per person and kind, for the operator to act on.
	Skipped []string
}

// MaxImportElement bounds one element of an imported file (a roster, a
// vCard, one archived message).
const MaxImportElement = 16 << 20

// ImportFile imports a XEP-0227 file, the xep0227.xml of an export zip,
// or every XEP-0227 file of a directory (Prosody's export: one file per
// user) into this Kontor: accounts, rosters, vCards, private XML, blocklists, PEP
// nodes and items, offline messages and the message archive (through the
// archive, so it is sealed as it arrives). Files of other servers are
// taken as they come: ejabberd's export_piefxis (a main file that
// XIncludes one file per host, found beside it; SCRAM credentials, whose
// values ejabberd encodes twice), Prosody's (a directory of files, one per
// user; a credential repeated) and Kontor's own. A password
// comes along when the file has one: SCRAM-SHA-1 or SCRAM-SHA-256 hashes
// are kept as they are (the person logs in with the old password), a clear
// password is turned into hashes; other accounts get none (set one with
// `kontor user passwd`). What Kontor does not keep (privacy lists, other
// hashes, unknown elements) is listed in ImportResult.Skipped. Accounts
// that exist already are refused: import into a fresh Kontor. The file is
// read element by element, so an archive of any size imports in bounded
// memory.
func (t *Tool) ImportFile(ctx context.Context, g Grant, path string) (ImportResult, error) {
	res, err := t.importPath(ctx, path)
	if err != nil {
		return res, err
	}
	if err := t.audit(ctx, g, "gdpr.import", "", g.Purpose, map[string]string{"file": path,
		"users": strconv.Itoa(res.Users), "messages": strconv.Itoa(res.Messages),
		"credentials": strconv.Itoa(res.Credentials), "skipped": strconv.Itoa(len(res.Skipped))}); err != nil {
		return res, fmt.Errorf("gdpr: imported, but not audited: %w", err)
	}
	return res, nil
}

// importPath imports a file, or every XEP-0227 file of a directory (as
// Prosody writes them, one per user), in name order. In a directory, a
// file whose root is <host/> is a part that another file includes
// (ejabberd's), not imported on its own.
func (t *Tool) importPath(ctx context.Context, path string) (ImportResult, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return ImportResult{}, err
	}
	if !fi.IsDir() {
		return t.importOne(ctx, path)
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return ImportResult{}, err
	}
	var total ImportResult
	files := 0
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".xml") {
			continue
		}
		p := filepath.Join(path, e.Name())
		if root, err := rootElement(p); err != nil {
			return total, fmt.Errorf("gdpr: import %s: %w", p, err)
		} else if pie(root, "host") {
			continue
		}
		res, err := t.importOne(ctx, p)
		total.Users += res.Users
		total.Contacts += res.Contacts
		total.Messages += res.Messages
		total.Offline += res.Offline
		total.PEPItems += res.PEPItems
		total.Credentials += res.Credentials
		total.SHA1Only += res.SHA1Only
		total.Skipped = append(total.Skipped, res.Skipped...)
		if err != nil {
			return total, fmt.Errorf("%s: %w", e.Name(), err)
		}
		files++
	}
	if files == 0 {
		return total, fmt.Errorf("gdpr: import: %s holds no XEP-0227 file (*.xml)", path)
	}
	return total, nil
}

// rootElement returns the name of the root element of the XML file at p.
func rootElement(p string) (xml.Name, error) {
	f, err := os.Open(p)
	if err != nil {
		return xml.Name{}, err
	}
	defer f.Close()
	d := xml.NewDecoder(io.LimitReader(f, 1<<20))
	for {
		tok, err := d.Token()
		if err != nil {
			return xml.Name{}, fmt.Errorf("no root element: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			return se.Name, nil
		}
	}
}

// importOne imports one file (XEP-0227, or an export's zip).
func (t *Tool) importOne(ctx context.Context, path string) (ImportResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return ImportResult{}, err
	}
	defer f.Close()
	var r io.ReaderAt = f
	var size int64
	var include func(string) (*io.SectionReader, func(), error)
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
		include = includeBeside(filepath.Dir(path))
	}
	return t.importDoc(ctx, io.NewSectionReader(r, 0, size), include)
}

// includeBeside resolves an xi:include href to a file in dir: a plain file
// name only (no path, no URL), as ejabberd writes them.
func includeBeside(dir string) func(string) (*io.SectionReader, func(), error) {
	return func(href string) (*io.SectionReader, func(), error) {
		if href == "" || strings.HasPrefix(href, ".") || strings.ContainsAny(href, "/\\:") {
			return nil, nil, fmt.Errorf("xi:include of %q: only a file beside the main file can be included", href)
		}
		f, err := os.Open(filepath.Join(dir, href))
		if err != nil {
			return nil, nil, fmt.Errorf("xi:include: %w", err)
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, nil, err
		}
		return io.NewSectionReader(f, 0, fi.Size()), func() { f.Close() }, nil
	}
}

const (
	nsPIE      = "urn:xmpp:pie:0"
	nsPIEMAM   = "urn:xmpp:pie:0#mam"
	nsPIESCRAM = "urn:xmpp:pie:0#scram"
	nsXInclude = "http://www.w3.org/2001/XInclude"
	nsRoster   = "jabber:iq:roster"
	nsPrivate  = "jabber:iq:private"
	nsPrivacy  = "jabber:iq:privacy"
	nsBlock    = "urn:xmpp:blocking"
	nsPubSub   = "http://jabber.org/protocol/pubsub"
)

// Import reads a XEP-0227 document from r (xi:include is refused: it
// needs the file's directory, see ImportFile).
func (t *Tool) Import(ctx context.Context, r *io.SectionReader) (ImportResult, error) {
	return t.importDoc(ctx, r, nil)
}

// importer is the state of one import: the host and user being read, and
// the credentials gathered for that user.
type importer struct {
	t       *Tool
	res     ImportResult
	include func(string) (*io.SectionReader, func(), error)
	host    string
	user    string
	creds   []storage.SCRAMCredential
}

func (t *Tool) importDoc(ctx context.Context, r *io.SectionReader, include func(string) (*io.SectionReader, func(), error)) (ImportResult, error) {
	im := &importer{t: t, include: include}
	err := im.doc(ctx, r, false)
	if err == nil && t.Archive != nil && im.res.Messages > 0 {
		err = t.Archive.Flush(ctx)
	}
	return im.res, err
}

// pie reports whether n is the XEP-0227 element local (in its namespace,
// or in none, as some exporters write them).
func pie(n xml.Name, local string) bool {
	return n.Local == local && (n.Space == nsPIE || n.Space == "")
}

// doc reads one document: a <server-data/>, or (included) a <host/>.
func (im *importer) doc(ctx context.Context, r *io.SectionReader, included bool) error {
	t := im.t
	d := xml.NewDecoder(r)
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
	var stack []xml.Name
	for {
		start := d.InputOffset()
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("gdpr: import: %w", err)
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			var parent xml.Name
			if len(stack) > 0 {
				parent = stack[len(stack)-1]
			}
			switch {
			case len(stack) == 0 && pie(tk.Name, "server-data") && !included:
				stack = append(stack, tk.Name)
			case pie(tk.Name, "host") && (len(stack) == 0 || pie(parent, "server-data")):
				if err := im.startHost(attr(tk, "jid")); err != nil {
					return err
				}
				stack = append(stack, tk.Name)
			case tk.Name == xml.Name{Space: nsXInclude, Local: "include"} && pie(parent, "server-data"):
				if err := d.Skip(); err != nil {
					return fmt.Errorf("gdpr: import: %w", err)
				}
				if err := im.includeHost(ctx, attr(tk, "href"), included); err != nil {
					return err
				}
			case pie(tk.Name, "user") && pie(parent, "host"):
				if err := im.startUser(ctx, tk); err != nil {
					return err
				}
				stack = append(stack, tk.Name)
			case pie(parent, "user") && tk.Name == xml.Name{Space: nsPIEMAM, Local: "archive"}:
				stack = append(stack, tk.Name)
			case pie(parent, "user"):
				el, err := element(start)
				if err != nil {
					return fmt.Errorf("gdpr: import %s: %w", im.user, err)
				}
				if err := im.userElement(ctx, el); err != nil {
					return fmt.Errorf("gdpr: import %s: %s: %w", im.user, el.Name.Local, err)
				}
			case parent == xml.Name{Space: nsPIEMAM, Local: "archive"}:
				el, err := element(start)
				if err != nil {
					return fmt.Errorf("gdpr: import %s archive: %w", im.user, err)
				}
				if err := t.importArchived(ctx, im.user, el); err != nil {
					return fmt.Errorf("gdpr: import %s archive: %w", im.user, err)
				}
				im.res.Messages++
				if im.res.Messages%10000 == 0 {
					t.progress("import %s: %d messages", im.user, im.res.Messages)
				}
			case len(stack) == 0:
				return fmt.Errorf("gdpr: import: the document is <%s xmlns='%s'>, not XEP-0227 server data (<server-data xmlns='%s'>)",
					tk.Name.Local, tk.Name.Space, nsPIE)
			default:
				if err := d.Skip(); err != nil {
					return fmt.Errorf("gdpr: import: %w", err)
				}
				im.skip("", fmt.Sprintf("<%s xmlns='%s'> in <%s>", tk.Name.Local, tk.Name.Space, parent.Local))
			}
		case xml.EndElement:
			if len(stack) == 0 {
				continue
			}
			if pie(stack[len(stack)-1], "user") {
				if err := im.endUser(ctx); err != nil {
					return err
				}
			}
			stack = stack[:len(stack)-1]
		}
	}
	return nil
}

func (im *importer) skip(what, why string) {
	who := im.user
	if who == "" {
		who = im.host
	}
	line := why
	if what != "" {
		line = what + ": " + why
	}
	if who != "" {
		line = who + ": " + line
	}
	im.res.Skipped = append(im.res.Skipped, line)
}

func (im *importer) startHost(host string) error {
	j, err := jid.Parse(host)
	if err != nil || j.Local() != "" || j.Resource() != "" {
		return fmt.Errorf("gdpr: import: host %q is not a domain", host)
	}
	if ds := im.t.ImportDomains; len(ds) > 0 && !slices.Contains(ds, j.Domain()) {
		return fmt.Errorf("gdpr: import: host %s is not one of this server's domains (%s): add it to domains first",
			j.Domain(), strings.Join(ds, ", "))
	}
	im.host = j.Domain()
	return nil
}

// includeHost imports the <host/> file an xi:include names.
func (im *importer) includeHost(ctx context.Context, href string, included bool) error {
	if included {
		return fmt.Errorf("gdpr: import: xi:include of %q in an included file: one level only", href)
	}
	if im.include == nil {
		return fmt.Errorf("gdpr: import: xi:include of %q: import the main file from its directory (kontor gdpr import FILE)", href)
	}
	r, done, err := im.include(href)
	if err != nil {
		return fmt.Errorf("gdpr: import: %w", err)
	}
	defer done()
	im.t.progress("import: %s", href)
	return im.doc(ctx, r, true)
}

func (im *importer) startUser(ctx context.Context, tk xml.StartElement) error {
	t := im.t
	if im.host == "" {
		return errors.New("gdpr: import: a <user/> outside a <host jid='…'/>")
	}
	j, err := jid.New(attr(tk, "name"), im.host, "")
	if err != nil || j.Local() == "" {
		return fmt.Errorf("gdpr: import: user %q of host %s is not a valid address: %v", attr(tk, "name"), im.host, err)
	}
	im.user, im.creds = j.String(), nil
	acc := storage.Account{JID: im.user, Domain: j.Domain(), Created: t.now()}
	if pw := attr(tk, "password"); pw != "" {
		// XEP-0227 as first published: the password in the clear. It is
		// stored as SCRAM hashes only, like every password.
		creds, err := account.Credentials(pw)
		if err != nil {
			im.skip("password", fmt.Sprintf("not usable (%v): set one with kontor user passwd", err))
		} else {
			acc.Credentials = creds
			im.res.Credentials++
		}
	}
	if err := t.Store.CreateAccount(ctx, acc); err != nil {
		return fmt.Errorf("gdpr: import %s: %w (import into a fresh Kontor)", im.user, err)
	}
	im.res.Users++
	t.progress("import: %s", im.user)
	return nil
}

// endUser stores the SCRAM credentials read for the user.
func (im *importer) endUser(ctx context.Context) error {
	if len(im.creds) > 0 {
		if err := im.t.Store.SetCredentials(ctx, im.user, im.creds); err != nil {
			return fmt.Errorf("gdpr: import %s: credentials: %w", im.user, err)
		}
		im.res.Credentials++
		if !slices.ContainsFunc(im.creds, func(c storage.SCRAMCredential) bool { return c.Hash == string(sasl.SHA256) }) {
			im.res.SHA1Only++
		}
	}
	im.user, im.creds = "", nil
	return nil
}

func (im *importer) userElement(ctx context.Context, el *stanza.Element) error {
	switch el.Name {
	case stanza.Name{Space: nsPIESCRAM, Local: "scram-credentials"}:
		c, err := scramCredential(el)
		if err != nil {
			im.skip("password", err.Error()+": set one with kontor user passwd")
			return nil
		}
		im.creds = slices.DeleteFunc(im.creds, func(x storage.SCRAMCredential) bool { return x.Hash == c.Hash })
		im.creds = append(im.creds, c)
		return nil
	case stanza.Name{Space: nsPrivacy, Local: "query"}:
		n := 0
		el.Children(func(c *stanza.Element) bool {
			if c.Name.Local == "list" {
				n++
			}
			return true
		})
		if n > 0 {
			im.skip("privacy lists", fmt.Sprintf("%d (XEP-0016) not kept: Kontor blocks with XEP-0191, which clients set again", n))
		}
		return nil
	}
	known, err := im.t.importElement(ctx, im.user, el, &im.res)
	if err == nil && !known {
		im.skip("", fmt.Sprintf("<%s xmlns='%s'> not kept by Kontor", el.Name.Local, el.Name.Space))
	}
	return err
}

// scramCredential reads a <scram-credentials xmlns='urn:xmpp:pie:0#scram'/>
// (XEP-0227 §2.2): base64 salt, server and stored key. ejabberd (23.01)
// encodes each value twice (base64 of its own base64 text); a key of the
// wrong length that decodes once more to the right one is taken as that.
func scramCredential(el *stanza.Element) (storage.SCRAMCredential, error) {
	var c storage.SCRAMCredential
	mech := el.Get("mechanism")
	size := 0
	switch mech {
	case "SCRAM-SHA-1":
		c.Hash, size = "SHA-1", 20
	case "SCRAM-SHA-256":
		c.Hash, size = "SHA-256", 32
	default:
		return c, fmt.Errorf("credentials of mechanism %q cannot be used (Kontor has SCRAM-SHA-1 and SCRAM-SHA-256)", mech)
	}
	text := func(name string) string {
		if x := el.Child(nsPIESCRAM, name); x != nil {
			return strings.TrimSpace(x.Text())
		}
		return ""
	}
	n, err := strconv.Atoi(text("iter-count"))
	if err != nil || n < 1 || n > 10_000_000 {
		return c, fmt.Errorf("%s credentials: iteration count %q", mech, text("iter-count"))
	}
	c.Iterations = n
	dec := func(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }
	twice := false
	key := func(name string) ([]byte, error) {
		b, err := dec(text(name))
		if err != nil {
			return nil, fmt.Errorf("%s credentials: %s is not base64", mech, name)
		}
		if len(b) != size {
			if b2, err := dec(string(b)); err == nil && len(b2) == size {
				twice = true
				return b2, nil
			}
			return nil, fmt.Errorf("%s credentials: %s has %d bytes, want %d", mech, name, len(b), size)
		}
		return b, nil
	}
	if c.StoredKey, err = key("stored-key"); err != nil {
		return c, err
	}
	if c.ServerKey, err = key("server-key"); err != nil {
		return c, err
	}
	if c.Salt, err = dec(text("salt")); err != nil || len(c.Salt) == 0 {
		return c, fmt.Errorf("%s credentials: salt is not base64", mech)
	}
	if twice {
		if c.Salt, err = dec(string(c.Salt)); err != nil || len(c.Salt) == 0 {
			return c, fmt.Errorf("%s credentials: the salt is not encoded as the keys are", mech)
		}
	}
	return c, nil
}

func attr(se xml.StartElement, name string) string {
	for _, a := range se.Attr {
		if a.Name.Local == name && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

func (t *Tool) importElement(ctx context.Context, user string, el *stanza.Element, res *ImportResult) (bool, error) {
	st := t.Store
	if el.Name.Local == "offline-messages" && (el.Name.Space == "" || el.Name.Space == nsPIE || el.Name.Space == stanza.NSClient) {
		// Captured on its own, a child of <user/> that inherited the
		// document's default namespace has none, or the parser's
		// default, jabber:client (ejabberd's export).
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
		return true, err
	case stanza.Name{Space: "vcard-temp", Local: "vCard"}:
		return true, st.SetVCard(ctx, user, el.AppendXML(nil, ""))
	case stanza.Name{Space: nsPrivate, Local: "query"}:
		var err error
		el.Children(func(c *stanza.Element) bool {
			err = st.SetPrivate(ctx, user, "{"+c.Name.Space+"}"+c.Name.Local, c.AppendXML(nil, ""))
			return err == nil
		})
		return true, err
	case stanza.Name{Space: nsBlock, Local: "blocklist"}:
		var jids []string
		el.Children(func(c *stanza.Element) bool {
			if j := c.Get("jid"); j != "" {
				jids = append(jids, j)
			}
			return true
		})
		_, err := st.BlockJIDs(ctx, user, jids, 0)
		return true, err
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
		return true, err
	case stanza.Name{Space: nsPIE, Local: "offline-messages"}:
		if t.Seal == nil {
			return true, errors.New("offline messages need the archive's sealer (archive.kek_file)")
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
		return true, err
	}
	return false, nil // an element this server does not keep
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

// Package disco implements XEP-0030 Service Discovery for the server and its
// accounts, with XEP-0128 extended information, XEP-0157 contact addresses
// and XEP-0115 entity capabilities of the server.
//
// What disco#info reports is what the enabled modules declared through
// module.Host.AddDisco, merged by the host: every module adds its own
// features, so the list is exactly what is implemented. This module adds
// disco#info, disco#items and caps for the host, and disco#info and
// disco#items for accounts.
//
// Because modules are provisioned one after another, and some may come after
// this one, the merged information is read once, on first use (the first
// disco request or the first stream that asks for features), when every
// module has declared what it does. It does not change afterwards: the host
// tables are read-only once traffic flows. The result is then normalised
// (duplicate identities and features dropped, features sorted, forms that
// do not parse or lack a hidden FORM_TYPE dropped with an error in the log,
// a second form with the same FORM_TYPE dropped likewise), so that the
// answer is always well-formed in the sense of XEP-0115 §5.4 and the
// verification string offered in the caps stream feature matches exactly
// what a client gets when it asks.
//
// The server's capabilities are offered as a stream feature
// (<c xmlns='http://jabber.org/protocol/caps' hash='sha-1'
// node='https://kontor.im' ver='…'/>, XEP-0115 §6.3), and a disco#info
// query for the node 'https://kontor.im#ver' is answered like one without
// a node. Any other node gets item-not-found.
//
// An account's disco#info and disco#items are answered by the server on the
// account's behalf, and only to the account itself and to contacts the
// account shares its presence with (subscription 'from' or 'both' in its
// roster). Anyone else gets service-unavailable, the very answer RFC 6121
// §8.5.1 prescribes for an account that does not exist: telling a stranger
// what an account supports, or even that it exists, is the kind of presence
// leak RFC 6120 §13.10.2 and RFC 6121 §8.5 warn about. disco#items of an
// account is empty for now (PEP nodes will come from the pep module).
//
// The SHA-1 hash in caps is the mandatory-to-implement algorithm of
// XEP-0115 §8.4; it names a set of features, it protects no secret.
package disco

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"unicode"

	"kontor.im/kontor/core/rosterstate"

	"kontor.im/kontor/core/caps"
	"kontor.im/kontor/core/dataform"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

// Namespaces.
const (
	NSInfo  = "http://jabber.org/protocol/disco#info"
	NSItems = "http://jabber.org/protocol/disco#items"
	NSCaps  = "http://jabber.org/protocol/caps"
	// NSServerInfo is the FORM_TYPE of XEP-0157 contact addresses.
	NSServerInfo = "http://jabber.org/network/serverinfo"
)

// CapsNode is the caps node of every Kontor server (XEP-0115 §4: a URI that
// names the software).
const CapsNode = "https://kontor.im"

func init() {
	module.Register(module.Info{
		ID:          "disco",
		Description: "Service discovery of the server and its accounts, contact addresses and the server's entity capabilities",
		Specs: []module.Spec{
			{ID: "XEP-0030", Name: "Service Discovery", Version: "2.5.0", Status: module.Complete},
			{ID: "XEP-0115", Name: "Entity Capabilities (the server's own)", Version: "1.6.0", Status: module.Complete,
				Note: "stream feature and caps node; clients' caps are verified and cached by the pep module"},
			{ID: "XEP-0128", Name: "Service Discovery Extensions", Version: "1.0.1", Status: module.Complete},
			{ID: "XEP-0157", Name: "Contact Addresses for XMPP Services", Version: "1.1.1", Status: module.Complete},
		},
		Default: true,
		New:     func() module.Module { return &disco{} },
	})
}

// Options configures the disco module.
type Options struct {
	// ContactAddresses are published as XEP-0157 server information in the
	// host's disco#info. The form appears only when at least one address is
	// configured.
	ContactAddresses ContactAddresses `mapstructure:"contact_addresses"`
}

// ContactAddresses are URIs ("mailto:abuse@example.com",
// "xmpp:admin@example.com", "https://example.com/support") per role, as
// registered by XEP-0157 §5.
type ContactAddresses struct {
	Abuse    []string `mapstructure:"abuse"`
	Admin    []string `mapstructure:"admin"`
	Feedback []string `mapstructure:"feedback"`
	Sales    []string `mapstructure:"sales"`
	Security []string `mapstructure:"security"`
	Status   []string `mapstructure:"status"`
	Support  []string `mapstructure:"support"`
}

// Bounds of the contact addresses.
const (
	maxAddresses   = 16
	maxAddressSize = 1024
)

// roles lists the roles with their config key and registered field var, in
// the order of the XEP-0157 registry.
func (c *ContactAddresses) roles() []struct {
	key, field string
	uris       []string
} {
	return []struct {
		key, field string
		uris       []string
	}{
		{"abuse", "abuse-addresses", c.Abuse},
		{"admin", "admin-addresses", c.Admin},
		{"feedback", "feedback-addresses", c.Feedback},
		{"sales", "sales-addresses", c.Sales},
		{"security", "security-addresses", c.Security},
		{"status", "status-addresses", c.Status},
		{"support", "support-addresses", c.Support},
	}
}

// Validate checks that every address is an absolute URI (XEP-0157 §3: MUST
// for status addresses, SHOULD for the others; Kontor asks it of all, since
// a client turns them into links).
func (o *Options) Validate() error {
	for _, r := range o.ContactAddresses.roles() {
		if len(r.uris) > maxAddresses {
			return fmt.Errorf("disco: contact_addresses.%s: more than %d addresses", r.key, maxAddresses)
		}
		for i, s := range r.uris {
			if err := checkURI(s); err != nil {
				return fmt.Errorf("disco: contact_addresses.%s[%d]: %w", r.key, i, err)
			}
		}
	}
	return nil
}

func checkURI(s string) error {
	if s == "" || len(s) > maxAddressSize {
		return fmt.Errorf("an address must have 1 to %d bytes", maxAddressSize)
	}
	if strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return fmt.Errorf("%q contains white space or control characters", s)
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || (u.Opaque == "" && u.Host == "" && u.Path == "") {
		return fmt.Errorf("%q is not an absolute URI such as mailto:abuse@example.com or xmpp:admin@example.com", s)
	}
	return nil
}

// serverInfo returns the XEP-0157 form, or nil without addresses.
func (o *Options) serverInfo() *stanza.Element {
	var fields []dataform.Field
	for _, r := range o.ContactAddresses.roles() {
		if len(r.uris) > 0 {
			fields = append(fields, dataform.Field{Var: r.field, Values: slices.Clone(r.uris)})
		}
	}
	if len(fields) == 0 {
		return nil
	}
	return dataform.New(dataform.TypeResult, NSServerInfo, fields...).Element()
}

// disco is the module instance of one host.
type disco struct {
	opts  Options
	host  module.Host
	log   *slog.Logger
	store storage.Store

	once    sync.Once
	hostQ   *stanza.Element // the host's disco#info <query/>
	acctQ   *stanza.Element // an account's disco#info <query/>
	ver     string          // "" if it could not be computed
	caps    *stanza.Element // the stream feature, nil without ver
	capsVer string          // CapsNode#ver
}

var (
	_ module.Configurable = (*disco)(nil)
	_ module.Validator    = (*Options)(nil)
)

func (d *disco) Options() any { return &d.opts }

func (d *disco) Provision(h module.Host) error {
	if h.Store() == nil {
		return errors.New("disco: the host has no store")
	}
	d.host, d.log, d.store = h, h.Logger(), h.Store()
	hostDisco := module.Disco{Features: []string{NSInfo, NSItems, NSCaps}}
	if f := d.opts.serverInfo(); f != nil {
		hostDisco.Forms = []*stanza.Element{f}
	}
	h.AddDisco(module.ToHost, hostDisco)
	h.AddDisco(module.ToAccount, module.Disco{Features: []string{NSInfo, NSItems}})

	h.HandleIQ(module.ToHost, module.Get, stanza.Name{Space: NSInfo, Local: "query"}, d.hostInfo)
	h.HandleIQ(module.ToHost, module.Get, stanza.Name{Space: NSItems, Local: "query"}, d.hostItems)
	h.HandleIQ(module.ToAccount, module.Get, stanza.Name{Space: NSInfo, Local: "query"}, d.accountInfo)
	h.HandleIQ(module.ToAccount, module.Get, stanza.Name{Space: NSItems, Local: "query"}, d.accountItems)
	h.AddStreamFeature(d.capsFeature)
	return nil
}

// load reads and normalises the merged information once.
func (d *disco) load() {
	d.once.Do(func() {
		hi := d.normalise(module.ToHost)
		d.hostQ = hi.Element()
		d.acctQ = d.normalise(module.ToAccount).Element()
		ver, err := hi.Ver()
		if err != nil {
			// normalise makes this unreachable; without a ver the server
			// simply offers no caps.
			d.log.Error("cannot compute the entity capabilities", "err", err)
			return
		}
		d.ver = ver
		d.capsVer = CapsNode + "#" + ver
		d.caps = stanza.New(NSCaps, "c").Set("hash", "sha-1").Set("node", CapsNode).Set("ver", ver)
	})
}

// normalise turns what modules declared into an Info that is well-formed
// for XEP-0115.
func (d *disco) normalise(t module.Target) Info {
	md := d.host.DiscoInfo(t)
	var info Info
	for _, id := range md.Identities {
		x := Identity{Category: id.Category, Type: id.Type, Name: id.Name}
		if x.Category == "" || x.Type == "" {
			d.log.Error("disco identity without category or type dropped", "target", t.String(), "category", x.Category, "type", x.Type)
			continue
		}
		if !slices.Contains(info.Identities, x) {
			info.Identities = append(info.Identities, x)
		}
	}
	slices.SortFunc(info.Identities, caps.CompareIdentity)
	for _, f := range md.Features {
		if f != "" && !slices.Contains(info.Features, f) {
			info.Features = append(info.Features, f)
		}
	}
	slices.Sort(info.Features)
	seen := map[string]bool{}
	for _, el := range md.Forms {
		f, err := dataform.Parse(el)
		if err != nil {
			d.log.Error("extended disco form dropped", "target", t.String(), "err", err)
			continue
		}
		ft := f.FormType()
		if ft == "" {
			d.log.Error("extended disco form without a hidden FORM_TYPE dropped", "target", t.String())
			continue
		}
		if seen[ft] {
			d.log.Error("second extended disco form with the same FORM_TYPE dropped", "target", t.String(), "form_type", ft)
			continue
		}
		if fld, _ := f.Field(dataform.FormTypeVar); len(fld.Values) != 1 {
			d.log.Error("extended disco form with several FORM_TYPE values dropped", "target", t.String(), "form_type", ft)
			continue
		}
		seen[ft] = true
		info.Forms = append(info.Forms, f)
	}
	slices.SortStableFunc(info.Forms, func(a, b dataform.Form) int { return strings.Compare(a.FormType(), b.FormType()) })
	return info
}

// capsFeature is the stream feature function.
func (d *disco) capsFeature() *stanza.Element {
	d.load()
	return d.caps
}

func (d *disco) hostInfo(ctx context.Context, iq *module.IQ) (*stanza.Element, error) {
	d.load()
	switch node := iq.Payload().Get("node"); {
	case node == "":
		return d.hostQ.Clone(), nil
	case d.capsVer != "" && node == d.capsVer:
		return d.hostQ.Clone().Set("node", node), nil
	}
	return nil, stanza.ErrItemNotFound("")
}

func (d *disco) hostItems(ctx context.Context, iq *module.IQ) (*stanza.Element, error) {
	if iq.Payload().Get("node") != "" {
		return nil, stanza.ErrItemNotFound("")
	}
	// The host's components (conference.DOMAIN, ...), as modules declared
	// them.
	q := stanza.New(NSItems, "query")
	for _, it := range d.host.DiscoInfo(module.ToHost).Items {
		item := stanza.New(NSItems, "item").Set("jid", it.JID.String())
		if it.Name != "" {
			item.Set("name", it.Name)
		}
		q.Append(item)
	}
	return q, nil
}

func (d *disco) accountInfo(ctx context.Context, iq *module.IQ) (*stanza.Element, error) {
	if err := d.authorise(ctx, iq); err != nil {
		return nil, err
	}
	if iq.Payload().Get("node") != "" {
		return nil, stanza.ErrItemNotFound("")
	}
	d.load()
	return d.acctQ.Clone(), nil
}

func (d *disco) accountItems(ctx context.Context, iq *module.IQ) (*stanza.Element, error) {
	if err := d.authorise(ctx, iq); err != nil {
		return nil, err
	}
	if iq.Payload().Get("node") != "" {
		return nil, stanza.ErrItemNotFound("")
	}
	return stanza.New(NSItems, "query"), nil
}

// authorise lets the account itself and the contacts it shares presence
// with see its disco information; anyone else (and a request about an
// account that does not exist, which has no roster) gets
// service-unavailable, as RFC 6121 §8.5.1 answers for a missing account, so
// that the two cannot be told apart.
func (d *disco) authorise(ctx context.Context, iq *module.IQ) error {
	owner := iq.To.Bare()
	if iq.To.IsZero() {
		owner = iq.From.Bare()
	}
	ok, err := rosterstate.SharesPresence(ctx, d.store, owner, iq.From)
	if err != nil {
		return fmt.Errorf("disco: %w", err)
	}
	if !ok {
		return stanza.ErrServiceUnavailable("")
	}
	return nil
}

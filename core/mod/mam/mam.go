// Package mam implements XEP-0313 Message Archive Management for user
// archives: it puts one-to-one messages into the archive of each local
// party, stamps the recipient's copy with its archive id (XEP-0359), answers
// archive queries (with XEP-0059 paging and the urn:xmpp:mam:2#extended
// features) and holds each user's archiving preferences (XEP-0441).
//
// The archive itself (storage, envelope encryption, retention) is not here:
// the module uses module.Archive, which the archive package implements and
// cmd/kontor wires in. When the host has no archive (archiving is off), the
// module does nothing at all: it registers no handler and advertises no
// feature, so MAM requests get service-unavailable.
//
// # What is archived
//
// A message is archived when it is of type chat or normal (or has no type)
// and has a non-empty body, an end-to-end encrypted payload (OMEMO in the
// eu.siacs.conversations.axolotl and urn:xmpp:omemo:2 namespaces, OpenPGP
// for XMPP, legacy jabber:x:encrypted; such messages are marked Encrypted),
// or a XEP-0334 <store/> hint; and it carries neither <no-store/> nor
// <no-permanent-store/> (XEP-0334: both keep a message out of an archive,
// and win over <store/>). Error, headline and groupchat messages are never
// archived (rooms will have their own archives).
//
// A message is archived twice, once per local party:
//
//   - for the sender (Outbound chain), as an outgoing message of the
//     sender's bare JID, with the 'to' as With. Its archive id and time are
//     taken in the Process phase, as the message enters, so that the
//     archive order is the order in which the server received messages;
//     it is archived in the Observe phase, once routed, whether or not it
//     could be delivered (the sender did send it). A message a user sends
//     to their own account is archived only once, on the receiving side,
//     so that it does not appear twice in their archive.
//   - for the recipient (Inbound chain), with the 'from' as With, when the
//     recipient is an existing local account, once the message was
//     delivered or taken care of by a Deliver hook (stored offline): the
//     Observe phase. A message that is bounced (nobody can receive it and
//     it is not stored) is not archived for the recipient, who never got
//     it.
//
// With keeps the resource the stanza has, so that a query for a full JID
// finds exactly the messages to or from it (XEP-0313, Filtering by JID).
//
// Each owner's preferences decide (XEP-0441, JID matching): a JID in the
// never list is not archived, then a JID in the always list is, then the
// default applies: always, never, or roster (archived when the peer's bare
// JID is an item of the owner's roster, whatever the subscription). The
// peer is the 'to' of an outgoing and the 'from' of an incoming message; a
// listed bare JID matches every resource, a listed full JID only itself.
// Owners who never set preferences get the module's default option (when
// the archive reports no default for them). When the preferences cannot
// be read (the database is unreachable and the archive has no copy of
// them), the module's default decides and a roster default archives, so
// that an outage loses nothing; the failure is logged. A failed Append is logged too (owner and id,
// never content): the message was delivered by then.
//
// # Archive ids and XEP-0359
//
// The module mints the archive ids itself and sets ArchivedMessage.ID:
// UUIDv7 (RFC 9562) in canonical lowercase text, 36 characters, the form
// the archive package requires; it orders the archive by id. The ids are
// URL-safe, unpredictable (at least 32 random bits even within a
// millisecond) and sort, as text, in the order they were minted: a later
// id of one module instance is always greater, even within a millisecond
// or when the clock steps back; across instances and restarts the order
// follows the clocks. ArchivedMessage.Time is when the message was
// archived, within a millisecond of the id's time.
//
// For the recipient's copy, the id is decided before delivery, in the
// Inbound Process phase: the module puts a copy of the message in the
// packet (never changing the stanza it got) that carries
// <stanza-id xmlns='urn:xmpp:sid:0' by='RECIPIENT_BARE' id='ARCHIVE_ID'/>,
// and archives that copy under the same id. The copy also loses every
// stanza-id with the recipient's bare JID as 'by' that came with the
// message: only the server may speak for the recipient's archive (the
// business rules of XEP-0359), so a sender cannot forge one. This removal
// happens for every message to a local account, archived or not. Other
// stanza-ids (a room's, a remote server's) and the sender's <origin-id/>
// are kept. The sender's own copy carries no stanza-id: the server must
// not tell a contact the sender's archive id (XEP-0313, Communicating the
// archive ID), and the ids stamped for the recipient are removed from the
// sender's archived copy.
//
// The stamp is added in the Process phase rather than Deliver so that every
// Deliver hook, whatever the order the modules were enabled in, sees the
// stamped copy: the offline module stores it, and it is delivered from
// there with its id. The Observe hook archives a message under the id of a
// stanza-id element only if this module created that very element (it
// remembers the elements it added, by pointer, until Observe takes them;
// those of messages dropped on the way are swept after a minute), so a
// stanza-id by the recipient that reached Observe some other way is never
// taken for an archive id. The sender's id waits for Observe in the
// sending session (Resource.SetValue), which sends one stanza at a time.
//
// The router delivers what the hooks left in Packet.Stanza, so the stamped
// copy is what the recipient's sessions get; the delivery targets stay the
// router's own (an earlier workaround wrapped them, which hid
// module.Hibernating from the push module and cost two allocations per
// message).
//
// # Queries
//
// An IQ set <query xmlns='urn:xmpp:mam:2'/> to the user's own bare JID (or
// without 'to') queries their archive; anyone else gets forbidden. The
// filters come in a data form (FORM_TYPE urn:xmpp:mam:2; fields with,
// start, end, before-id, after-id, ids; a field it does not know gets
// feature-not-implemented, as XEP-0313 requires), the paging in an RSM set
// (max, default page_size, capped at max_page_size; after; before, empty
// for the last page; max 0 returns the count only; index is not supported:
// feature-not-implemented), and <flip-page/> reverses the order in which a
// page is sent. Each result is a message to the requesting resource, sent
// before the IQ result, which carries <fin/> with the complete flag, the
// page's first and last ids (in archive order, flipped or not) and the
// count when the archive knows it.
//
// An id in after, before, after-id, before-id or ids that is not in the
// archive gets item-not-found. RSM after and the after-id field (and
// likewise before and before-id) are both bounds; given together, the
// tighter one applies. Using RSM before (empty or not) pages backwards;
// before-id alone does not (XEP-0313, Implementation Considerations).
//
// An IQ get <query/> returns the query form, <metadata/> the first and last
// message of the archive (empty for an empty archive), and <prefs/> gets
// and sets the preferences (XEP-0441), whose reply is what was stored.
//
// # Options
//
// default (always, never or roster; default always) is the preference of
// accounts that never set one; page_size (default 50) is the page of a
// query that asks for none; max_page_size (default 250, at most 500) caps
// what a query may ask for: a page is queued on the session at once, next
// to everything else, and the session's queue is bounded.
//
// # Conformance
//
// Every server requirement of XEP-0313 for user archives holds, with the
// urn:xmpp:mam:2#extended features (which its Determining Support section
// makes mandatory for an archiving JID). Two optional features are not
// supported, and so not advertised: the include-groupchat field (a server
// that understands it must advertise urn:xmpp:mam:2#groupchat-field;
// clients must not send it otherwise, and here it gets
// feature-not-implemented like any unknown field) and RSM paging by index
// (XEP-0059 lets a server answer feature-not-implemented). One deliberate
// deviation: XEP-0313 asks that messages leave an archive oldest first, or
// that a removed message keep its id, time and JID; the archive deletes a
// message whose retention class has expired, or that a GDPR erasure
// removes, outright, which can leave a gap (a query naming its id then gets
// item-not-found). With the one default retention class and no erasure,
// messages leave oldest first.
//
// Out of scope for now: archives of rooms (XEP-0313 for MUC, in module
// muc) and groupchat messages in user archives; pubsub archives (the 'node' attribute gets
// feature-not-implemented); the stanza-id in carbon copies of sent messages
// (it needs a per-packet value the carbons module can read); and archiving
// commands (XEP-0050 urn:xmpp:mam#configure).
package mam

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"kontor.im/kontor/core/mamquery"
	"kontor.im/kontor/core/uuid7"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

// Namespaces.
const (
	// NS is the XEP-0313 namespace, also the feature and FORM_TYPE.
	NS = mamquery.NS
	// NSExtended is the feature of before-id, after-id, ids, flipped pages
	// and metadata.
	NSExtended = mamquery.NSExtended
	// NSStanzaID is the XEP-0359 namespace and feature.
	NSStanzaID = "urn:xmpp:sid:0"

	nsHints     = "urn:xmpp:hints"                 // XEP-0334
	nsOMEMO     = "eu.siacs.conversations.axolotl" // XEP-0384 (0.3)
	nsOMEMO2    = "urn:xmpp:omemo:2"               // XEP-0384
	nsOpenPGP   = "urn:xmpp:openpgp:0"             // XEP-0373
	nsEncrypted = "jabber:x:encrypted"             // XEP-0027
)

// Preference defaults (XEP-0441).
const (
	Always = "always"
	Never  = "never"
	Roster = "roster"
)

// Bounds of the options.
const (
	DefaultPageSize    = 50
	DefaultMaxPageSize = 250
	// maxMaxPageSize keeps a page well below a session's outbound queue
	// (1024 stanzas by default in core/session): a page is queued at once,
	// and a full queue closes the session.
	maxMaxPageSize = 500
)

func init() {
	module.Register(module.Info{
		ID:          "mam",
		Description: "Message archive: archives one-to-one messages of both parties, archive queries and preferences (needs an archive)",
		Specs: []module.Spec{
			{ID: "XEP-0313", Name: "Message Archive Management", Version: "1.1.3", Status: module.Complete,
				Note: "user archives with the #extended features (room archives: module muc); the optional include-groupchat field and RSM index are not supported (nor advertised); retention classes and erasures can remove messages from the middle of an archive; needs archive.enabled"},
			{ID: "XEP-0441", Name: "Message Archive Management Preferences", Version: "0.2.0", Status: module.Complete},
			{ID: "XEP-0359", Name: "Unique and Stable Stanza IDs", Version: "0.7.0", Status: module.Partial,
				Note: "stanza-id of the recipient's archive; origin-id kept; none yet on carbons of sent messages"},
			{ID: "XEP-0059", Name: "Result Set Management", Version: "1.1", Status: module.Partial,
				Note: "in archive queries: max, after, before, count; index is not supported"},
			{ID: "XEP-0297", Name: "Stanza Forwarding", Version: "1.0", Status: module.Complete,
				Note: "archive query results"},
			{ID: "XEP-0334", Name: "Message Processing Hints", Version: "1.0.0", Status: module.Partial,
				Note: "store, no-store and no-permanent-store are honoured by the archive"},
		},
		Default: true,
		New:     func() module.Module { return &Module{opts: DefaultOptions()} },
	})
}

// Options configure the module.
type Options struct {
	// Default is the archiving default of accounts that never set
	// preferences (when the archive reports an empty default for them):
	// always, never or roster.
	Default string `mapstructure:"default"`
	// PageSize is the page size of a query that does not ask for one.
	PageSize int `mapstructure:"page_size"`
	// MaxPageSize caps the page size a query asks for.
	MaxPageSize int `mapstructure:"max_page_size"`
}

// DefaultOptions returns the defaults.
func DefaultOptions() Options {
	return Options{Default: Always, PageSize: DefaultPageSize, MaxPageSize: DefaultMaxPageSize}
}

// Validate checks the values.
func (o *Options) Validate() error {
	switch o.Default {
	case Always, Never, Roster:
	default:
		return fmt.Errorf("mam: default must be always, never or roster, got %q", o.Default)
	}
	if o.MaxPageSize < 1 || o.MaxPageSize > maxMaxPageSize {
		return fmt.Errorf("mam: max_page_size must be between 1 and %d, got %d", maxMaxPageSize, o.MaxPageSize)
	}
	if o.PageSize < 1 || o.PageSize > o.MaxPageSize {
		return fmt.Errorf("mam: page_size must be between 1 and max_page_size (%d), got %d", o.MaxPageSize, o.PageSize)
	}
	return nil
}

// Module is the MAM module of one virtual host.
type Module struct {
	opts    Options
	host    module.Host
	archive module.Archive
	store   storage.Store
	log     *slog.Logger
	ids     *uuid7.Generator
	now     func() time.Time
	stamps  stamps
	server  mamquery.Server
}

var _ module.Configurable = (*Module)(nil)

// Options returns the module's options, filled with defaults.
func (m *Module) Options() any { return &m.opts }

var (
	queryName    = mamquery.QueryName
	prefsName    = stanza.Name{Space: NS, Local: "prefs"}
	metadataName = mamquery.MetadataName
)

// Provision declares the handlers, hooks and features, unless the host has
// no archive.
func (m *Module) Provision(h module.Host) error {
	m.host = h
	m.log = h.Logger()
	m.archive = h.Archive()
	if m.now == nil {
		m.now = time.Now
	}
	m.ids = uuid7.New(m.now)
	m.stamps.init(m.now)
	if m.archive == nil {
		m.log.Debug("no archive configured: message archiving is off")
		return nil
	}
	if m.store = h.Store(); m.store == nil {
		return errors.New("mam: the host has no store (rosters are needed for the roster preference)")
	}
	m.server = mamquery.Server{Archive: m.archive, Log: m.log, PageSize: m.opts.PageSize, MaxPageSize: m.opts.MaxPageSize}
	h.HandleIQ(module.ToAccount, module.Set, queryName, m.query)
	h.HandleIQ(module.ToAccount, module.Get, queryName, m.form)
	h.HandleIQ(module.ToAccount, module.Get, metadataName, m.metadata)
	h.HandleIQ(module.ToAccount, module.Get, prefsName, m.getPrefs)
	h.HandleIQ(module.ToAccount, module.Set, prefsName, m.setPrefs)
	h.Hook(module.Inbound, module.Process, m.stamp)
	h.Hook(module.Inbound, module.Observe, m.archiveIncoming)
	h.Hook(module.Outbound, module.Process, m.reserve)
	h.Hook(module.Outbound, module.Observe, m.archiveOutgoing)
	h.AddDisco(module.ToAccount, module.Disco{Features: []string{NS, NSExtended, NSStanzaID}})
	return nil
}

// ownArchive returns the account whose archive iq addresses, and refuses
// anyone but that account's own resources (forbidden, as the security
// considerations of XEP-0313 say).
func ownArchive(iq *module.IQ) (jid.JID, error) {
	own := iq.From.Bare()
	if iq.Origin == nil || own.Local() == "" || (!iq.To.IsZero() && iq.To != own) {
		return jid.JID{}, stanza.ErrForbidden("only the account itself may use its archive")
	}
	return own, nil
}

// internal is an error for the client whose detail the router logs.
var internal = mamquery.Internal

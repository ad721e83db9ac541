package mam

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

// serialSize is the initial capacity for a serialised message: most chat
// messages fit.
const serialSize = 512

// classify reports whether a message is to be archived (see the package
// documentation) and whether it is end-to-end encrypted.
func classify(s *stanza.Stanza) (archive, encrypted bool) {
	if s.Kind != stanza.KindMessage {
		return false, false
	}
	switch s.Type {
	case "", "normal", "chat":
	default:
		return false, false
	}
	var body, store, noStore bool
	s.El.Children(func(c *stanza.Element) bool {
		switch c.Name.Space {
		case stanza.NSClient:
			if c.Name.Local == "body" && c.Text() != "" {
				body = true
			}
		case nsHints:
			switch c.Name.Local {
			case "store":
				store = true
			case "no-store", "no-permanent-store":
				noStore = true
			}
		case nsOMEMO, nsOMEMO2:
			encrypted = encrypted || c.Name.Local == "encrypted"
		case nsOpenPGP:
			encrypted = encrypted || c.Name.Local == "openpgp"
		case nsEncrypted:
			encrypted = encrypted || c.Name.Local == "x"
		}
		return true
	})
	return !noStore && (body || encrypted || store), encrypted
}

// isStanzaIDBy reports whether el is a XEP-0359 stanza-id by one of the
// given addresses.
func isStanzaIDBy(el *stanza.Element, by ...string) bool {
	if el == nil || el.Name.Local != "stanza-id" || el.Name.Space != NSStanzaID {
		return false
	}
	b := el.Get("by")
	for _, x := range by {
		if b == x {
			return true
		}
	}
	return false
}

// hasStanzaIDBy reports whether s carries a stanza-id by one of the
// addresses.
func hasStanzaIDBy(s *stanza.Stanza, by ...string) bool {
	for _, n := range s.El.Nodes {
		if isStanzaIDBy(n.Elem, by...) {
			return true
		}
	}
	return false
}

// restamp returns a copy of s without the stanza-ids by the given
// addresses and, when id is not empty, with a stanza-id by by[0] carrying
// id. s is not changed; the copy shares its children, which nobody changes.
// The copy, its top element, its attributes (when few) and the new
// stanza-id come in one allocation, its children in a second: this runs
// for every archived message.
func restamp(s *stanza.Stanza, id string, by ...string) *stanza.Stanza {
	c := &restamped{s: *s}
	c.el = stanza.Element{Name: s.El.Name, Attr: c.attr[:0]}
	if len(s.El.Attr) >= len(c.attr) {
		c.el.Attr = make([]stanza.Attr, 0, len(s.El.Attr)+1)
	}
	c.el.Attr = append(c.el.Attr, s.El.Attr...)
	n := len(s.El.Nodes)
	if id != "" {
		n++
	}
	nodes := make([]stanza.Node, 0, n)
	for _, n := range s.El.Nodes {
		if !isStanzaIDBy(n.Elem, by...) {
			nodes = append(nodes, n)
		}
	}
	if id != "" {
		c.idAttr = [2]stanza.Attr{{Name: stanza.Name{Local: "id"}, Value: id}, {Name: stanza.Name{Local: "by"}, Value: by[0]}}
		c.id = stanza.Element{Name: stanza.Name{Space: NSStanzaID, Local: "stanza-id"}, Attr: c.idAttr[:]}
		nodes = append(nodes, stanza.Node{Elem: &c.id})
	}
	c.el.Nodes = nodes
	c.s.El = &c.el
	return &c.s
}

// restamped is what restamp allocates at once.
type restamped struct {
	s      stanza.Stanza
	el     stanza.Element
	attr   [6]stanza.Attr
	id     stanza.Element
	idAttr [2]stanza.Attr
}

// recipient returns the account an inbound stanza is for: its 'to', or
// the sender's own account for a stanza without one.
func recipient(p *module.Packet) (jid.JID, bool) {
	if to := p.Stanza.To; !to.IsZero() {
		return to.Bare(), to.Local() != ""
	}
	if p.Origin != nil {
		return p.Origin.JID().Bare(), true
	}
	return jid.JID{}, false
}

// stamp is the Inbound Process hook: it decides whether the recipient
// archives a message and, if so, gives the packet a copy with the archive
// id; forged stanza-ids for the recipient are removed either way.
func (m *Module) stamp(ctx context.Context, p *module.Packet) (module.Verdict, error) {
	s := p.Stanza
	if s.Kind != stanza.KindMessage || !p.AccountExists || (p.Target != module.ToAccount && p.Target != module.ToResource) {
		return module.Continue, nil
	}
	owner, ok := recipient(p)
	if !ok {
		return module.Continue, nil
	}
	own := owner.String()
	forged := hasStanzaIDBy(s, own)
	if forged && p.Redelivery {
		// The server's own stanza-id from the first pass: the message is
		// in the archive under it already (module.Packet.Redelivery).
		return module.Continue, nil
	}
	archive, _ := classify(s)
	if archive {
		peer := s.From
		if peer.IsZero() {
			peer = m.host.Domain()
		}
		archive = m.wants(ctx, owner, peer)
	}
	if !archive && !forged {
		return module.Continue, nil
	}
	if archive {
		if err := m.accepting(); err != nil {
			return module.Drop, err
		}
	}
	id := ""
	if archive {
		id = m.ids.Next()
	}
	c := restamp(s, id, own)
	if archive {
		m.stamps.put(c.El.Nodes[len(c.El.Nodes)-1].Elem, m.stampTime(), own)
	}
	p.Stanza = c
	return module.Continue, nil
}

// stampTime is the archive time of a message: now, to the microsecond
// that stores keep.
func (m *Module) stampTime() time.Time { return m.now().UTC().Truncate(time.Microsecond) }

// archiveIncoming is the Inbound Observe hook: it archives, as delivered,
// a message that stamp stamped.
func (m *Module) archiveIncoming(ctx context.Context, p *module.Packet) (module.Verdict, error) {
	s := p.Stanza
	if s.Kind != stanza.KindMessage || !p.AccountExists {
		return module.Continue, nil
	}
	owner, ok := recipient(p)
	if !ok {
		return module.Continue, nil
	}
	var mark *stanza.Element
	s.El.Children(func(c *stanza.Element) bool {
		if isStanzaIDBy(c, owner.String()) {
			mark = c
		}
		return mark == nil
	})
	if mark == nil {
		return module.Continue, nil
	}
	at, ok := m.stamps.take(mark)
	if !ok {
		return module.Continue, nil // not stamped here: not archived
	}
	with := s.From
	if with.IsZero() {
		with = m.host.Domain()
	}
	_, encrypted := classify(s)
	m.append(ctx, module.ArchivedMessage{
		ID: mark.Get("id"), Owner: owner.String(), With: with.String(), Time: at,
		Stanza: s.El.AppendXML(make([]byte, 0, serialSize), ""), Encrypted: encrypted,
	})
	return module.Continue, nil
}

// reserve is the Outbound Process hook: for a message a local user sends
// that goes into their archive, it takes the archive id and time now, as
// the message enters, so that the archive order is the order in which the
// server received messages (a reply routed while this message is still on
// its way gets a later id). archiveOutgoing archives it once routed.
func (m *Module) reserve(ctx context.Context, p *module.Packet) (module.Verdict, error) {
	s := p.Stanza
	if s.Kind != stanza.KindMessage || p.Origin == nil || p.Target == module.ToHost || s.To.IsZero() {
		return module.Continue, nil
	}
	if archive, _ := classify(s); !archive {
		return module.Continue, nil
	}
	owner := p.Origin.JID().Bare()
	if s.To.Bare() == owner || !m.wants(ctx, owner, s.To) {
		return module.Continue, nil
	}
	if err := m.accepting(); err != nil {
		return module.Drop, err
	}
	p.Origin.SetValue(reservationKey{}, &reservation{p: p, id: m.ids.Next(), at: m.stampTime()})
	return module.Continue, nil
}

// reservationKey holds, per session, the reservation of the message the
// session is sending: a session's stanzas walk the chains one at a time,
// in its reader goroutine, so one slot is enough. A reservation whose
// message was dropped after reserve stays until the session's next
// archived message replaces it, or the session ends.
type reservationKey struct{}

// reservation is the archive id and time of the message p, being sent.
type reservation struct {
	p  *module.Packet
	id string
	at time.Time
}

// archiveOutgoing is the Outbound Observe hook: it archives, for the
// sender, a message that reserve kept an id for.
func (m *Module) archiveOutgoing(ctx context.Context, p *module.Packet) (module.Verdict, error) {
	s := p.Stanza
	if s.Kind != stanza.KindMessage {
		return module.Continue, nil
	}
	if p.Origin == nil {
		return module.Continue, nil
	}
	r, _ := p.Origin.Value(reservationKey{}).(*reservation)
	if r == nil || r.p != p {
		return module.Continue, nil
	}
	p.Origin.SetValue(reservationKey{}, nil)
	_, encrypted := classify(s)
	owner, peer := p.Origin.JID().Bare(), s.To
	// The packet may hold the recipient's stamped copy by now: its
	// stanza-id, like any the sender put in about either archive, is not
	// for the sender's archive.
	own, other := owner.String(), peer.Bare().String()
	el := s.El
	if hasStanzaIDBy(s, own, other) {
		var nodes [8]stanza.Node // on the stack for most messages
		tmp := stanza.Element{Name: el.Name, Attr: el.Attr, Nodes: nodes[:0]}
		for _, n := range el.Nodes {
			if !isStanzaIDBy(n.Elem, own, other) {
				tmp.Nodes = append(tmp.Nodes, n)
			}
		}
		el = &tmp
	}
	m.append(ctx, module.ArchivedMessage{
		ID: r.id, Owner: own, With: peer.String(), Outgoing: true, Time: r.at,
		Stanza: el.AppendXML(make([]byte, 0, serialSize), ""), Encrypted: encrypted,
	})
	return module.Continue, nil
}

// accepting asks an archive that can refuse (a full ingest queue with
// when_full refuse, typically while the database is unreachable) whether
// it takes another message; a refusal, a stanza error, goes back to the
// sender instead of the message being delivered but not archived.
func (m *Module) accepting() error {
	if a, ok := m.archive.(interface{ Accepting() error }); ok {
		return a.Accepting()
	}
	return nil
}

// append hands a message to the archive. A failure is logged here, with
// the owner and id only; the message was delivered already.
func (m *Module) append(ctx context.Context, msg module.ArchivedMessage) {
	if err := m.archive.Append(ctx, msg); err != nil {
		m.log.ErrorContext(ctx, "message not archived", "owner", msg.Owner, "archive_id", msg.ID, "err", err)
	}
}

// wants decides by the owner's preferences whether a message with peer
// (the 'to' of an outgoing, the 'from' of an incoming message) goes into
// the owner's archive. When the database is unreachable (an error), the
// module's default decides, and a roster default archives: an outage must
// not lose messages (the archive keeps them queued until it is back).
func (m *Module) wants(ctx context.Context, owner, peer jid.JID) bool {
	prefs, err := m.archive.Prefs(ctx, owner.String())
	if err != nil {
		// The database is unreachable and the archive has no copy of
		// the owner's preferences: the configured default decides, so
		// that an outage does not lose what is normally archived.
		m.log.WarnContext(ctx, "archiving preferences unavailable; the default decides", "owner", owner.String(),
			"default", m.opts.Default, "err", err)
		prefs = module.ArchivePrefs{}
	}
	def, listed := decide(prefs, m.opts.Default, peer)
	switch {
	case listed:
		return def == Always
	case def == Roster:
		_, err := m.store.RosterItem(ctx, owner.String(), peer.Bare().String())
		switch {
		case err == nil:
			return true
		case errors.Is(err, storage.ErrNotFound):
			return false
		}
		// Archive rather than lose it while the database is unreachable.
		m.log.WarnContext(ctx, "roster unavailable for the archiving preference; message archived", "owner", owner.String(), "err", err)
		return true
	}
	return def == Always
}

// decide applies the lists of p to peer: it returns Never or Always and
// true when peer is listed (never wins), else the default (p's, or def
// when p has none) and false.
func decide(p module.ArchivePrefs, def string, peer jid.JID) (string, bool) {
	if listed(p.Never, peer) {
		return Never, true
	}
	if listed(p.Always, peer) {
		return Always, true
	}
	switch p.Default {
	case Always, Never, Roster:
		return p.Default, false
	}
	return def, false
}

// listed reports whether peer matches one of the JIDs (XEP-0441: a bare
// JID matches every resource, a full JID only itself). The lists hold
// canonical JIDs, as setPrefs writes them; a bare JID has no '/'.
func listed(list []string, peer jid.JID) bool {
	full, bare := peer.String(), peer.Bare().String()
	for _, x := range list {
		if x == bare || (x == full && strings.IndexByte(x, '/') >= 0) {
			return true
		}
	}
	return false
}

// Defaults of stamps.
const (
	// staleAfter is how long a stamp may wait for its Observe hook: a
	// message walks the chain in microseconds, milliseconds at worst.
	staleAfter = time.Minute
	// sweepEvery is how many stamps are added between two sweeps.
	sweepEvery = 4096
)

// stamps remembers the stanza-id elements the Inbound Process hook added
// to messages on their way, with their archive time, until the Observe
// hook takes them. Only an element found here is this module's own stamp:
// the pointer is the proof, so a stanza-id by the recipient that reached
// Observe some other way (after a hook before this module's ended the
// chain, say) is never taken for an archive id. The element of a message
// dropped between the phases is never taken; sweeps remove those after
// staleAfter. An entry keeps only that small element (id and by) alive,
// never the message. (The sender's side needs no table: its state rides
// on the sending session, see reservationKey.)
//
// The table also lets a query wait for what its owner was just sent: the
// recipient may hold a message (delivery comes before Observe) and ask
// for its archive before the sender's goroutine queued it; waitOwner
// waits for those stamps, as the archive's own read-your-writes waits for
// what is queued.
type stamps struct {
	now        func() time.Time
	staleAfter time.Duration
	sweepEvery int

	mu     sync.Mutex
	m      map[*stanza.Element]stampEntry // guarded by mu
	owners map[string]int                 // guarded by mu: stamps per owner
	// taken is closed when a stamp is taken, made only while a query
	// waits (waitOwner), so that taking a stamp nobody waits for
	// allocates nothing.
	taken chan struct{} // guarded by mu; nil when nobody waits
	puts  int           // guarded by mu: since the last sweep
}

type stampEntry struct {
	at    time.Time
	owner string
}

func (t *stamps) init(now func() time.Time) {
	t.now, t.staleAfter, t.sweepEvery = now, staleAfter, sweepEvery
	t.m = map[*stanza.Element]stampEntry{}
	t.owners = map[string]int{}
}

func (t *stamps) put(el *stanza.Element, at time.Time, owner string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.m[el] = stampEntry{at: at, owner: owner}
	t.owners[owner]++
	if t.puts++; t.puts >= t.sweepEvery {
		t.puts = 0
		cutoff := t.now().Add(-t.staleAfter)
		for k, e := range t.m {
			if e.at.Before(cutoff) {
				t.removeLocked(k, e)
			}
		}
	}
}

func (t *stamps) removeLocked(el *stanza.Element, e stampEntry) {
	delete(t.m, el)
	if t.owners[e.owner]--; t.owners[e.owner] <= 0 {
		delete(t.owners, e.owner)
	}
	if t.taken != nil {
		close(t.taken)
		t.taken = nil
	}
}

// take removes el and returns its archive time, if el is a stamp.
func (t *stamps) take(el *stanza.Element) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[el]
	if ok {
		t.removeLocked(el, e)
	}
	return e.at, ok
}

// waitOwner waits, at most until ctx ends, until no message stamped for
// owner is still on its way to the archive. A message dropped between the
// phases keeps its stamp until a sweep: the bound on ctx is what keeps a
// query from waiting for it long.
func (t *stamps) waitOwner(ctx context.Context, owner string) {
	t.mu.Lock()
	for t.owners[owner] > 0 {
		if t.taken == nil {
			t.taken = make(chan struct{})
		}
		ch := t.taken
		t.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
		t.mu.Lock()
	}
	t.mu.Unlock()
}

// len is the number of stamps waiting, for tests.
func (t *stamps) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

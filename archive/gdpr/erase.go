package gdpr

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"kontor.im/kontor/core/storage"
)

// Category statuses in a Certificate.
const (
	Deleted    = "deleted"
	Restricted = "restricted" // kept for a retention duty until Until
	Held       = "held"       // kept for the legal hold Case
	Nothing    = "none"       // there was nothing of this kind
)

// Category is what happened (or, in a dry run, would happen) to one kind of
// a person's data.
type Category struct {
	Name   string    `json:"category"`
	Count  int       `json:"count"` // rows (keys for archive_keys:*)
	Status string    `json:"status"`
	Until  time.Time `json:"until,omitzero"`
	Case   string    `json:"case,omitempty"`
}

func (c Category) String() string {
	switch c.Status {
	case Restricted:
		return fmt.Sprintf("%s: %d restricted until %s", c.Name, c.Count, c.Until.Format(time.DateOnly))
	case Held:
		return fmt.Sprintf("%s: %d held by %s (restricted while the hold lasts)", c.Name, c.Count, c.Case)
	case Nothing:
		return fmt.Sprintf("%s: none", c.Name)
	}
	return fmt.Sprintf("%s: %d %s", c.Name, c.Count, c.Status)
}

// Certificate is the result of an erasure: what went and what was kept, by
// category, never the data itself.
type Certificate struct {
	Job        string     `json:"job"`
	Subject    string     `json:"subject"`
	At         time.Time  `json:"at"`
	DryRun     bool       `json:"dry_run"`
	Categories []Category `json:"categories"`
	AuditSeq   int64      `json:"audit_seq,omitempty"`
}

// Kept lists the categories that were kept (restricted or held).
func (c Certificate) Kept() []Category {
	var out []Category
	for _, x := range c.Categories {
		if x.Status == Restricted || x.Status == Held {
			out = append(out, x)
		}
	}
	return out
}

// erasePlan is what an erasure will do.
type erasePlan struct {
	cats   []Category
	shred  []int64 // data keys to destroy
	kept   []int64 // data keys a hold or duty keeps: retired
	keep   []storage.Restriction
	heldBy string // the cases of the legal holds on the person, or ""
}

func (t *Tool) plan(ctx context.Context, subject string) (erasePlan, error) {
	var p erasePlan
	st := t.Store
	add := func(name string, n int) {
		s := Deleted
		if n == 0 {
			s = Nothing
		}
		p.cats = append(p.cats, Category{Name: name, Count: n, Status: s})
	}
	n := 0
	if _, err := st.Account(ctx, subject); err == nil {
		n = 1
	} else if !errors.Is(err, storage.ErrNotFound) {
		return p, err
	}
	add("account", n)
	items, _, err := st.RosterItems(ctx, subject)
	if err != nil {
		return p, err
	}
	reqs, err := st.SubscriptionRequests(ctx, subject)
	if err != nil {
		return p, err
	}
	add("roster", len(items)+len(reqs))
	refItems, refReqs, err := st.RosterReferences(ctx, subject)
	if err != nil {
		return p, err
	}
	add("others_rosters", len(refItems)+len(refReqs))
	n = 0
	if _, err := st.VCard(ctx, subject); err == nil {
		n = 1
	} else if !errors.Is(err, storage.ErrNotFound) {
		return p, err
	}
	add("vcard", n)
	keys, err := st.PrivateXMLKeys(ctx, subject)
	if err != nil {
		return p, err
	}
	add("private_xml", len(keys))
	nodes, _, err := st.PEPUsage(ctx, subject)
	if err != nil {
		return p, err
	}
	add("pep_nodes", nodes)
	blocked, err := st.BlockedJIDs(ctx, subject)
	if err != nil {
		return p, err
	}
	add("blocklist", len(blocked))
	off, err := st.OfflineCount(ctx, subject)
	if err != nil {
		return p, err
	}
	add("offline_messages", off)
	n = 0
	if _, _, err := st.LastActivity(ctx, subject); err == nil {
		n = 1
	} else if !errors.Is(err, storage.ErrNotFound) {
		return p, err
	}
	add("last_activity", n)
	n = 0
	if _, err := st.ArchivePrefs(ctx, subject); err == nil {
		n = 1
	} else if !errors.Is(err, storage.ErrNotFound) {
		return p, err
	}
	add("archive_prefs", n)

	// The archive, per class of data key.
	holds, err := st.LegalHolds(ctx, subject, false)
	if err != nil {
		return p, err
	}
	var cases []string
	for _, h := range holds {
		cases = append(cases, h.Case)
	}
	heldBy := strings.Join(cases, ", ")
	p.heldBy = heldBy
	if t.Uploads != nil {
		n, err := t.Uploads.CountOwner(ctx, subject)
		if err != nil {
			return p, err
		}
		c := Category{Name: "uploads", Count: n, Status: statusOf(n)}
		if heldBy != "" && n > 0 {
			c.Status, c.Case = Held, heldBy
		}
		p.cats = append(p.cats, c)
	}
	msgs, err := st.CountArchive(ctx, storage.ArchiveRowQuery{Owner: subject, MaxID: maxID, IncludeRestricted: true}, 1<<62)
	if err != nil {
		return p, err
	}
	dkeys, err := st.ArchiveKeysOf(ctx, subject)
	if err != nil {
		return p, err
	}
	now := t.now()
	type agg struct {
		n     int
		until time.Time
	}
	deleted, restricted, held := map[string]*agg{}, map[string]*agg{}, map[string]*agg{}
	bump := func(m map[string]*agg, class string, until time.Time) {
		a := m[class]
		if a == nil {
			a = &agg{}
			m[class] = a
		}
		a.n++
		if until.After(a.until) {
			a.until = until
		}
	}
	for _, k := range dkeys {
		switch {
		case heldBy != "" && k.Class != "offline":
			bump(held, k.Class, k.KeepUntil)
			p.kept = append(p.kept, k.ID)
		case slices.Contains(t.DutyClasses, k.Class) && k.KeepUntil.After(now):
			bump(restricted, k.Class, k.KeepUntil)
			p.kept = append(p.kept, k.ID)
		default:
			bump(deleted, k.Class, k.KeepUntil)
			p.shred = append(p.shred, k.ID)
		}
	}
	for _, class := range sortedKeys(deleted) {
		p.cats = append(p.cats, Category{Name: "archive_keys:" + class, Count: deleted[class].n, Status: Deleted})
	}
	for _, class := range sortedKeys(restricted) {
		a := restricted[class]
		p.cats = append(p.cats, Category{Name: "archive_keys:" + class, Count: a.n, Status: Restricted, Until: a.until})
		p.keep = append(p.keep, storage.Restriction{Subject: subject, Category: "archive:" + class, Until: a.until,
			Reason: "retention duty of class " + class, Created: now})
	}
	for _, class := range sortedKeys(held) {
		a := held[class]
		p.cats = append(p.cats, Category{Name: "archive_keys:" + class, Count: a.n, Status: Held, Case: heldBy})
		p.keep = append(p.keep, storage.Restriction{Subject: subject, Category: "archive:" + class, Case: heldBy,
			Reason: "legal hold", Created: now})
	}
	status := Deleted
	switch {
	case msgs == 0:
		status = Nothing
	case len(held) > 0 || len(restricted) > 0:
		status = "deleted unless kept above"
	}
	p.cats = append(p.cats, Category{Name: "archive_messages", Count: msgs, Status: status})
	return p, nil
}

var maxID = [16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// EraseOptions modify Erase.
type EraseOptions struct {
	DryRun bool
	// Batch is how many archive messages one transaction deletes; default
	// 5000.
	Batch int
	// Reason goes into the audit entry.
	Reason string
	// ReplayOf is the job of an earlier erasure of the person that a
	// restored backup undid (see Replay); it goes into the audit entry.
	ReplayOf string
}

// Erase erases subject's data (see the package documentation) and returns
// the certificate, also written to the audit trail. With DryRun it only
// says what would happen. Running it again after a failure completes it.
func (t *Tool) Erase(ctx context.Context, g Grant, subject string, opts EraseOptions) (Certificate, error) {
	if opts.Batch <= 0 {
		opts.Batch = 5000
	}
	cert := Certificate{Subject: subject, At: t.now(), DryRun: opts.DryRun}
	p, err := t.plan(ctx, subject)
	if err != nil {
		return cert, fmt.Errorf("gdpr: erase %s: %w", subject, err)
	}
	cert.Categories = p.cats
	if opts.DryRun {
		return cert, nil
	}
	cert.Job = newJobID()
	if err := t.logErasure(erasureEvent{Event: "started", Job: cert.Job, Subject: subject, By: g.Operator}); err != nil {
		return cert, err
	}
	// The tombstone before the directory link goes: a sync that runs
	// during or after the erasure never recreates the person.
	if err := t.bury(ctx, subject, cert.Job); err != nil {
		return cert, fmt.Errorf("gdpr: erase %s: tombstone: %w", subject, err)
	}
	if err := t.erase(ctx, subject, p, opts, &cert); err != nil {
		return cert, fmt.Errorf("gdpr: erase %s (job %s; run it again to complete it): %w", subject, cert.Job, err)
	}
	details := map[string]string{"job": cert.Job}
	if opts.ReplayOf != "" {
		details["replay_of"] = opts.ReplayOf
	}
	for _, c := range cert.Categories {
		v := c.Status + " " + strconv.Itoa(c.Count)
		switch c.Status {
		case Restricted:
			v += " until " + c.Until.Format(time.DateOnly)
		case Held:
			v += " by " + c.Case
		}
		details["erased."+c.Name] = v
	}
	if err := t.audit(ctx, g, "gdpr.erase", subject, opts.Reason, details); err != nil {
		return cert, fmt.Errorf("gdpr: %s erased, but the certificate is not in the audit trail (run it again): %w", subject, err)
	}
	if err := t.logErasure(erasureEvent{Event: "completed", Job: cert.Job, Subject: subject}); err != nil {
		return cert, err
	}
	return cert, nil
}

func (t *Tool) erase(ctx context.Context, subject string, p erasePlan, opts EraseOptions, cert *Certificate) error {
	st := t.Store
	// 1. Crypto-shredding first: once the keys are gone nothing they
	// sealed opens, whatever happens to the rows.
	if len(p.shred) > 0 {
		t.progress("erase %s: destroying %d data keys", subject, len(p.shred))
		if _, err := st.ShredArchiveKeys(ctx, subject, p.shred); err != nil {
			return err
		}
		if t.Archive != nil {
			t.Archive.ForgetKeys(p.shred...)
		}
	}
	// 2. The rows the shredded keys sealed.
	total := 0
	for {
		n, err := st.DeleteUnkeyedArchive(ctx, subject, opts.Batch)
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		total += n
		t.progress("erase %s: %d archived messages deleted", subject, total)
	}
	// What is left is what a hold or a duty keeps: restricted at once
	// (Art. 18), so that no ordinary read, not even a new account given
	// this JID, sees it from now on.
	if n, err := st.RestrictArchive(ctx, subject); err != nil {
		return err
	} else if n > 0 {
		t.progress("erase %s: %d archived messages kept and restricted", subject, n)
	}
	// The keys of what is kept are the erased person's now: retired, so
	// that a new account given this JID gets keys of its own (and its
	// erasure cannot shred what this one's hold keeps).
	if n, err := st.RetireArchiveKeys(ctx, subject); err != nil {
		return err
	} else if n > 0 {
		t.progress("erase %s: %d kept data keys retired", subject, n)
	}
	if t.Archive != nil {
		t.Archive.ForgetKeys(p.kept...)
	}
	for i, c := range cert.Categories {
		if c.Name == "archive_messages" {
			left, err := st.CountArchive(ctx, storage.ArchiveRowQuery{Owner: subject, MaxID: maxID, IncludeRestricted: true}, 1<<62)
			if err != nil {
				return err
			}
			cert.Categories[i].Count = total
			cert.Categories[i].Status = Deleted
			if left > 0 {
				kept := Category{Name: "archive_messages", Count: left, Status: Restricted}
				for _, r := range p.keep {
					if r.Case != "" {
						kept.Status, kept.Case = Held, r.Case
					} else if r.Until.After(kept.Until) {
						kept.Until = r.Until
					}
				}
				if kept.Status == Held {
					kept.Until = time.Time{}
				}
				cert.Categories = append(cert.Categories, kept)
			}
		}
	}
	if err := st.DeleteArchivePrefs(ctx, subject); err != nil {
		return err
	}
	// 3. Others' rosters and pending requests that name the person.
	items, reqs, err := st.RosterReferences(ctx, subject)
	if err != nil {
		return err
	}
	for _, owner := range items {
		if _, err := st.DeleteRosterItem(ctx, owner, subject); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
	}
	for _, owner := range reqs {
		if err := st.DeleteSubscriptionRequest(ctx, owner, subject); err != nil {
			return err
		}
	}
	// 4. The directory link, PEP and blocklist (also when the account is
	// already gone: a rerun), then the account with everything it owns.
	links, err := st.DeleteLDAPLinksOf(ctx, subject)
	if err != nil {
		return err
	}
	cert.Categories = append(cert.Categories, Category{Name: "directory_link", Count: links, Status: statusOf(links)})
	// Uploaded files (counted by plan): deleted, or kept while a legal
	// hold covers the person (their archive keys are kept then too, so
	// the files stay readable to the DPO).
	if t.Uploads != nil && p.heldBy == "" {
		if _, err := t.Uploads.DeleteOwner(ctx, subject); err != nil {
			return err
		}
	}
	if err := st.DeletePEPOwner(ctx, subject); err != nil {
		return err
	}
	if _, err := st.UnblockAllJIDs(ctx, subject); err != nil {
		return err
	}
	if err := st.EraseAccount(ctx, subject); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	// An account already gone (a rerun) may have left owned rows only if
	// something wrote them since: remove them one by one.
	if err := t.sweepOwned(ctx, subject); err != nil {
		return err
	}
	// 5. What had to stay is restricted.
	for _, r := range p.keep {
		if err := st.PutRestriction(ctx, r); err != nil {
			return err
		}
	}
	if err := st.CompactAfterErasure(ctx); err != nil {
		t.progress("erase %s: warning: %v", subject, err)
	}
	return nil
}

func statusOf(n int) string {
	if n == 0 {
		return Nothing
	}
	return Deleted
}

// sweepOwned deletes what the account owns through the stores' own
// methods: what DeleteAccount does when there still is an account.
func (t *Tool) sweepOwned(ctx context.Context, subject string) error {
	st := t.Store
	items, _, err := st.RosterItems(ctx, subject)
	if err != nil {
		return err
	}
	for _, it := range items {
		if _, err := st.DeleteRosterItem(ctx, subject, it.Contact); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
	}
	reqs, err := st.SubscriptionRequests(ctx, subject)
	if err != nil {
		return err
	}
	for _, r := range reqs {
		if err := st.DeleteSubscriptionRequest(ctx, subject, r.From); err != nil {
			return err
		}
	}
	for {
		msgs, err := st.OfflineMessages(ctx, subject, 1000)
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			break
		}
		ids := make([]int64, len(msgs))
		for i, m := range msgs {
			ids[i] = m.ID
		}
		if err := st.DeleteOffline(ctx, subject, ids); err != nil {
			return err
		}
	}
	if err := st.SetVCard(ctx, subject, nil); err != nil {
		return err
	}
	keys, err := st.PrivateXMLKeys(ctx, subject)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := st.SetPrivate(ctx, subject, k, nil); err != nil {
			return err
		}
	}
	return nil
}

func newJobID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "e-" + hex.EncodeToString(b[:])
}

// erasureEvent is one line of the erasure log.
type erasureEvent struct {
	V        int       `json:"v"`
	Event    string    `json:"event"` // "started" or "completed"
	Job      string    `json:"job"`
	Subject  string    `json:"subject"`
	At       time.Time `json:"at"`
	By       string    `json:"by,omitempty"`
	AuditSeq int64     `json:"audit_seq,omitempty"`
}

func (t *Tool) logErasure(e erasureEvent) error {
	if t.ErasureLog == "" {
		return nil
	}
	e.V, e.At = 1, t.now()
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(t.ErasureLog), 0o700); err != nil {
		return fmt.Errorf("gdpr: erasure log: %w", err)
	}
	f, err := os.OpenFile(t.ErasureLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("gdpr: erasure log: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("gdpr: erasure log: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("gdpr: erasure log: %w", err)
	}
	return f.Close()
}

// ErasureRecord is one person in the erasure log.
type ErasureRecord struct {
	Subject   string
	Job       string
	Completed bool
	By        string    // the operator who started the latest job
	Started   time.Time // when the latest job started
}

// ReadErasureLog reads the erasure log at path: every subject with its
// latest job, in the order first erased. A missing file is an empty log.
func ReadErasureLog(path string) ([]ErasureRecord, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("gdpr: erasure log: %w", err)
	}
	defer f.Close()
	idx := map[string]int{}
	var out []ErasureRecord
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		var e erasureEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Subject == "" {
			return nil, fmt.Errorf("gdpr: erasure log %s: line %d is not an erasure event", path, line)
		}
		i, seen := idx[e.Subject]
		if !seen {
			i = len(out)
			idx[e.Subject] = i
			out = append(out, ErasureRecord{Subject: e.Subject})
		}
		switch e.Event {
		case "started":
			out[i].Job, out[i].Completed, out[i].By, out[i].Started = e.Job, false, e.By, e.At
		case "completed":
			if e.Job == out[i].Job {
				out[i].Completed = true
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("gdpr: erasure log: %w", err)
	}
	return out, nil
}

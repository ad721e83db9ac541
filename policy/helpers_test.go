package policy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/directory"
	"kontor.im/kontor/core/gate"
)

// recordingAudit is an audit.Log that keeps what it is given, in memory,
// and fails while fail is set.
type recordingAudit struct {
	mu      sync.Mutex
	entries []audit.Entry
	fail    bool
}

func (r *recordingAudit) Append(_ context.Context, e audit.Entry) (audit.Entry, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		return audit.Entry{}, errors.New("audit: store unavailable")
	}
	e.Seq = int64(len(r.entries) + 1)
	r.entries = append(r.entries, e)
	return e, nil
}

func (r *recordingAudit) take() []audit.Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.entries
	r.entries = nil
	return out
}

func (r *recordingAudit) setFail(fail bool) {
	r.mu.Lock()
	r.fail = fail
	r.mu.Unlock()
}

func newEngine(t testing.TB, opts Options) *Engine {
	t.Helper()
	e, err := New(context.Background(), opts)
	if err != nil {
		t.Fatalf("policy.New: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func writeFile(t testing.TB, dir, name, src string) {
	t.Helper()
	// Write and rename, as editors do, so a watcher never reads half a file.
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// company is a small directory: Sales, Research and Trading employees, a sponsored
// and an unsponsored guest, a customer, a disabled account, an accountant
// and a buyer.
func company() directory.Snapshot {
	groups := map[string]directory.Group{
		"g-sales":      {ID: "g-sales", Name: "Sales", Members: []string{"anna@example.com"}},
		"g-research":   {ID: "g-research", Name: "Research", Members: []string{"ben@example.com"}},
		"g-accounting": {ID: "g-accounting", Name: "Accounting", Members: []string{"fritz@example.com"}},
		"g-purchasing": {ID: "g-purchasing", Name: "Purchasing", Members: []string{"pia@example.com"}},
	}
	people := map[string]directory.Person{}
	add := func(p directory.Person) { people[p.JID] = p }
	add(directory.Person{JID: "anna@example.com", Kind: directory.Employee, Department: "Sales", Company: "ACME", Groups: []string{"g-sales"}, Email: "anna@example.com", Phone: "+49 30 1"})
	add(directory.Person{JID: "ben@example.com", Kind: directory.Employee, Department: "Research", Company: "ACME", Groups: []string{"g-research"}})
	add(directory.Person{JID: "tom@example.com", Kind: directory.Employee, Department: "Trading", Company: "ACME"})
	add(directory.Person{JID: "fritz@example.com", Kind: directory.Employee, Department: "Finance", Company: "ACME", Groups: []string{"g-accounting"}})
	add(directory.Person{JID: "pia@example.com", Kind: directory.Employee, Department: "Purchasing", Company: "ACME", Groups: []string{"g-purchasing"}})
	add(directory.Person{JID: "gus@example.com", Kind: directory.Guest, Sponsors: []string{"anna@example.com"}})
	add(directory.Person{JID: "gil@example.com", Kind: directory.Guest})
	add(directory.Person{JID: "cora@customer.example", Kind: directory.External, Company: "Customer GmbH"})
	add(directory.Person{JID: "dora@example.com", Kind: directory.Employee, Department: "Sales", Disabled: true})
	return directory.Snapshot{People: people, Groups: groups, Revision: "rev-1", At: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)}
}

func local(j string) gate.Party  { return gate.Party{JID: j, Local: true} }
func remote(j string) gate.Party { return gate.Party{JID: j} }

func msg(from, to gate.Party) gate.ContactInput {
	return gate.ContactInput{Action: gate.ActionMessage, StanzaType: "chat", From: from, To: to}
}

type auditEntry = audit.Entry

func removeFile(dir, name string) error { return os.Remove(filepath.Join(dir, name)) }

type directoryPerson = directory.Person

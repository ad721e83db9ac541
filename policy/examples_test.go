package policy

import (
	"context"
	"strings"
	"testing"
	"time"

	"kontor.im/kontor/core/gate"
)

// TestReadmeExamples runs the Rego tests of the worked examples in
// README.md ("Writing policies"), kept in testdata/examples, and checks
// the calendar result of the retention example.
func TestReadmeExamples(t *testing.T) {
	rep, err := RunTests(context.Background(), TestOptions{Dir: "testdata/examples"})
	if err != nil {
		t.Fatal(err)
	}
	examples := 0
	for _, r := range rep.Results {
		if !r.Pass {
			t.Errorf("%s.%s (%s:%d): %s", r.Package, r.Name, r.File, r.Line, r.Error)
		}
		if strings.HasPrefix(r.File, "testdata/") {
			examples++
		}
	}
	if rep.Failed != 0 || examples != 9 {
		t.Fatalf("%s; %d example tests, want 9", rep.Summary(), examples)
	}
	e := newEngine(t, Options{Dir: "testdata/examples"})
	s := company()
	s.People["lena@example.com"] = func() (p directoryPerson) {
		p = s.People["anna@example.com"]
		p.JID, p.Department = "lena@example.com", "Legal"
		return p
	}()
	s.Revision = "with-lena"
	if err := e.UpdateDirectory(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	d := e.Retention(context.Background(), gate.RetentionInput{From: local("lena@example.com"), To: remote("cora@customer.example"),
		StanzaType: "chat", At: time.Date(2025, 3, 14, 10, 0, 0, 0, berlin)})
	if d.Class != "contract" || !d.Until.Equal(time.Date(2036, 1, 1, 0, 0, 0, 0, berlin)) || d.Period != "10 years after the end of the year" {
		t.Fatalf("got %+v", d)
	}
}

package policy_test

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"

	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/gate"
	"kontor.im/kontor/core/storage/sqlite"
	"kontor.im/kontor/policy"
)

// TestRealAuditTrail writes decisions to the real trail on SQLite: the
// entries are accepted (action names, details), queryable, and the chain
// verifies.
func TestRealAuditTrail(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "kontor.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	trail := audit.New(st)
	snap := staff()
	e, err := policy.New(ctx, policy.Options{Audit: trail})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	if err := e.UpdateDirectory(ctx, snap); err != nil {
		t.Fatal(err)
	}
	refused := e.Contact(ctx, gate.ContactInput{Action: gate.ActionMessage, StanzaType: "chat",
		From: gate.Party{JID: "gus@example.com", Local: true}, To: gate.Party{JID: "ben@example.com", Local: true}})
	access := e.Access(ctx, gate.AccessInput{Operator: gate.Operator{ID: "erika", Roles: []string{"dpo"}},
		Action: gate.AccessArchiveExport, Subject: "ben@example.com", CaseNumber: "C-1", Purpose: "request of the data subject"})
	reg := gate.RegistrationGate{Decider: e}
	if ok, _ := reg.AllowRegistration(ctx, "example.com", "anna", netip.MustParseAddr("192.0.2.9")); ok {
		t.Fatal("directory name registered")
	}
	tests := []struct {
		name, action, actor, subject, reason, id string
	}{
		{"contact refusal", "policy.deny", "gus@example.com", "ben@example.com", "guest_not_sponsored", refused.ID},
		{"access decision", "policy.access", "erika", "ben@example.com", "approval_required", access.ID},
		{"registration refusal", "policy.deny", "anna@example.com", "anna@example.com", "reserved_by_directory", ""},
	}
	entries, err := trail.Query(ctx, audit.Query{Action: "policy"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, en := range entries {
				if en.Action == tt.action && en.Actor == tt.actor && en.Subject == tt.subject && en.Reason == tt.reason &&
					en.PolicyRevision == e.Revision() && (tt.id == "" || en.Details["decision_id"] == tt.id) {
					return
				}
			}
			t.Errorf("no entry %+v in %+v", tt, entries)
		})
	}
	rep, err := trail.Verify(ctx, audit.VerifyOptions{})
	if err != nil || rep.Verified != int64(len(entries)) {
		t.Fatalf("verify: %+v, %v (entries %d)", rep, err, len(entries))
	}
}

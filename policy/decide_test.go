package policy

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"kontor.im/kontor/core/directory"
	"kontor.im/kontor/core/gate"
)

var berlin = func() *time.Location {
	l, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		panic(err)
	}
	return l
}()

func companyEngine(t testing.TB, opts Options) *Engine {
	t.Helper()
	opts.Settings.BusinessLetterGroups = []string{"Purchasing"}
	opts.Settings.AccountingGroups = []string{"g-accounting"}
	e := newEngine(t, opts)
	if err := e.UpdateDirectory(context.Background(), company()); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestContactDecisions(t *testing.T) {
	e := companyEngine(t, Options{})
	tests := []struct {
		name   string
		in     gate.ContactInput
		allow  bool
		reason string
	}{
		{"employees talk", msg(local("anna@example.com"), local("ben@example.com")), true, "internal"},
		{"local account without directory entry counts as employee", msg(local("new@example.com"), local("anna@example.com")), true, "internal"},
		{"guest to sponsor", msg(local("gus@example.com"), local("anna@example.com")), true, "sponsor"},
		{"sponsor to guest", msg(local("anna@example.com"), local("gus@example.com")), true, "sponsor"},
		{"guest to another employee", msg(local("gus@example.com"), local("ben@example.com")), false, "guest_not_sponsored"},
		{"employee to unsponsored guest", msg(local("ben@example.com"), local("gil@example.com")), false, "guest_not_sponsored"},
		{"guest to guest", msg(local("gus@example.com"), local("gil@example.com")), false, "guest_not_sponsored"},
		{"employee to customer", msg(local("anna@example.com"), remote("cora@customer.example")), true, "business_contact"},
		{"customer to employee", msg(remote("cora@customer.example"), local("ben@example.com")), true, "business_contact"},
		{"employee to unknown remote", msg(local("anna@example.com"), remote("x@partner.example")), true, "business_contact"},
		{"guest to customer", msg(local("gus@example.com"), remote("cora@customer.example")), false, "guest_not_sponsored"},
		{"customer to customer", msg(remote("cora@customer.example"), remote("x@partner.example")), false, "external_not_allowed"},
		{"to a disabled account", msg(local("anna@example.com"), local("dora@example.com")), false, "account_disabled"},
		{"roster add", gate.ContactInput{Action: gate.ActionRosterAdd, StanzaType: "set", From: local("gus@example.com"), To: local("ben@example.com")}, false, "guest_not_sponsored"},
		{"subscription", gate.ContactInput{Action: gate.ActionSubscribe, StanzaType: "subscribe", From: local("anna@example.com"), To: local("ben@example.com")}, true, "internal"},
		{"room join decision is ready", gate.ContactInput{Action: gate.ActionMUCJoin, From: local("anna@example.com"), To: local("ben@example.com"), Room: "team@rooms.example.com"}, true, "internal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := e.Contact(context.Background(), tt.in)
			if d.Allow != tt.allow || d.Reason != tt.reason {
				t.Fatalf("got allow=%v reason=%q (%v), want allow=%v reason=%q", d.Allow, d.Reason, d.Err, tt.allow, tt.reason)
			}
			if d.ID == "" || d.Revision != e.Revision() {
				t.Errorf("decision id %q revision %q, want an id and %q", d.ID, d.Revision, e.Revision())
			}
			if !d.Allow && d.Message == "" {
				t.Errorf("refusal without a message")
			}
		})
	}
}

func TestUnknownLocalKindSetting(t *testing.T) {
	e := newEngine(t, Options{Settings: Settings{UnknownLocalKind: directory.Guest}})
	d := e.Contact(context.Background(), msg(local("a@example.com"), local("b@example.com")))
	if d.Allow || d.Reason != "guest_not_sponsored" {
		t.Fatalf("unknown local accounts as guests: got %+v", d)
	}
	if _, err := New(context.Background(), Options{Settings: Settings{UnknownLocalKind: "boss"}}); err == nil {
		t.Fatal("unknown_local_kind boss accepted")
	}
}

func TestRetentionDecisions(t *testing.T) {
	e := companyEngine(t, Options{})
	at := time.Date(2025, 3, 14, 10, 0, 0, 0, berlin)
	endOf := func(year int) time.Time { return time.Date(year, 1, 1, 0, 0, 0, 0, berlin) }
	tests := []struct {
		name      string
		in        gate.RetentionInput
		archive   bool
		class     string
		until     time.Time
		legalHold bool
		period    string
	}{
		{"internal chat: 90 days", gate.RetentionInput{From: local("anna@example.com"), To: local("ben@example.com"), StanzaType: "chat"},
			true, "internal", at.AddDate(0, 0, 90), false, "90 days"},
		{"chat with a customer: business letter", gate.RetentionInput{From: local("anna@example.com"), To: remote("cora@customer.example"), StanzaType: "chat"},
			true, "business_letter", endOf(2032), false, "6 years after the end of the year"},
		{"configured business letter group", gate.RetentionInput{From: local("pia@example.com"), To: local("ben@example.com"), StanzaType: "chat"},
			true, "business_letter", endOf(2032), false, "6 years after the end of the year"},
		{"accounting records beat business letters", gate.RetentionInput{From: local("fritz@example.com"), To: remote("cora@customer.example"), StanzaType: "chat"},
			true, "accounting_record", endOf(2034), false, "8 years after the end of the year"},
		{"legal hold", gate.RetentionInput{From: local("anna@example.com"), To: local("ben@example.com"), StanzaType: "chat", LegalHold: true},
			true, "internal", at.AddDate(0, 0, 90), true, "90 days"},
		{"headline not archived", gate.RetentionInput{From: local("anna@example.com"), To: local("ben@example.com"), StanzaType: "headline"},
			false, "", time.Time{}, false, ""},
		{"encrypted still archived", gate.RetentionInput{From: local("anna@example.com"), To: local("ben@example.com"), StanzaType: "chat", Encrypted: true},
			true, "internal", at.AddDate(0, 0, 90), false, "90 days"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.At = at
			d := e.Retention(context.Background(), tt.in)
			if !d.Allow {
				t.Fatalf("retention failed: %+v", d)
			}
			if d.Archive != tt.archive || d.Class != tt.class || !d.Until.Equal(tt.until) || d.LegalHold != tt.legalHold || d.Period != tt.period {
				t.Fatalf("got archive=%v class=%q until=%v hold=%v period=%q, want %v %q %v %v %q",
					d.Archive, d.Class, d.Until, d.LegalHold, d.Period, tt.archive, tt.class, tt.until, tt.legalHold, tt.period)
			}
		})
	}
}

func TestRetentionUsesConfiguredCalendar(t *testing.T) {
	// 23:30 UTC on 31 December is already next year in Berlin but not in
	// New York: the end of the year differs.
	at := time.Date(2025, 12, 31, 23, 30, 0, 0, time.UTC)
	in := gate.RetentionInput{From: local("anna@example.com"), To: remote("cora@customer.example"), StanzaType: "chat", At: at}
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		loc  *time.Location
		want time.Time
	}{
		{"Berlin: message of 2026", berlin, time.Date(2033, 1, 1, 0, 0, 0, 0, berlin)},
		{"New York: message of 2025", ny, time.Date(2032, 1, 1, 0, 0, 0, 0, ny)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t, Options{Location: tt.loc})
			if d := e.Retention(context.Background(), in); !d.Until.Equal(tt.want) {
				t.Fatalf("until %v, want %v", d.Until, tt.want)
			}
		})
	}
}

func TestE2EEDecisions(t *testing.T) {
	e := companyEngine(t, Options{})
	tests := []struct {
		name   string
		in     gate.E2EEInput
		allow  bool
		reason string
		text   string
	}{
		{"internal chat may be encrypted", gate.E2EEInput{From: local("anna@example.com"), To: local("ben@example.com"), StanzaType: "chat"}, true, "no_retention_duty", ""},
		{"business letter must stay readable", gate.E2EEInput{From: local("anna@example.com"), To: remote("cora@customer.example"), StanzaType: "chat"}, false, "retention_requires_readable", "business letter"},
		{"accounting record must stay readable", gate.E2EEInput{From: local("fritz@example.com"), To: local("ben@example.com"), StanzaType: "chat"}, false, "retention_requires_readable", "8 years"},
		{"room of an accountant", gate.E2EEInput{From: local("fritz@example.com"), Room: "team@rooms.example.com", StanzaType: "groupchat"}, false, "retention_requires_readable", "accounting record"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := e.E2EE(context.Background(), tt.in)
			if d.Allow != tt.allow || d.Reason != tt.reason || !strings.Contains(d.Message, tt.text) {
				t.Fatalf("got %+v, want allow=%v reason=%q text containing %q", d, tt.allow, tt.reason, tt.text)
			}
		})
	}
}

func TestAccessDecisions(t *testing.T) {
	rec := &recordingAudit{}
	now := time.Date(2025, 11, 3, 9, 0, 0, 0, time.UTC)
	e := newEngine(t, Options{Audit: rec, Now: func() time.Time { return now }})
	approval := func(by string, roles []string, ago time.Duration) gate.Approval {
		return gate.Approval{By: by, Roles: roles, CaseNumber: "C-17", At: now.Add(-ago)}
	}
	base := gate.AccessInput{Operator: gate.Operator{ID: "erika", Roles: []string{"dpo"}}, Action: gate.AccessArchiveExport,
		Subject: "bob@example.com", CaseNumber: "C-17", Purpose: "court order"}
	with := func(f func(*gate.AccessInput)) gate.AccessInput {
		in := base
		f(&in)
		return in
	}
	tests := []struct {
		name      string
		in        gate.AccessInput
		allow     bool
		reason    string
		approvals int
		roles     []string
	}{
		{"export needs two approvers", base, false, "approval_required", 2, []string{"dpo", "works_council"}},
		{"dpo and works council approved", with(func(in *gate.AccessInput) {
			in.Approvals = []gate.Approval{approval("dieter", []string{"dpo"}, time.Hour), approval("wanda", []string{"works_council"}, time.Minute)}
		}), true, "approved", 0, nil},
		{"requester cannot approve", with(func(in *gate.AccessInput) {
			in.Approvals = []gate.Approval{approval("erika", []string{"dpo"}, 0), approval("wanda", []string{"works_council"}, 0)}
		}), false, "approval_required", 1, []string{"dpo"}},
		{"expired approval", with(func(in *gate.AccessInput) {
			in.Approvals = []gate.Approval{approval("dieter", []string{"dpo"}, 73*time.Hour), approval("wanda", []string{"works_council"}, 0)}
		}), false, "approval_required", 1, []string{"dpo"}},
		{"no case number", with(func(in *gate.AccessInput) { in.CaseNumber = "" }), false, "case_required", 2, []string{"dpo", "works_council"}},
		{"wrong role", with(func(in *gate.AccessInput) { in.Operator.Roles = []string{"helpdesk"} }), false, "role_missing", 2, []string{"dpo", "works_council"}},
		// The erasure keeps what a hold covers (archive/gdpr); the hold
		// does not stop the rest.
		{"erasure under legal hold", with(func(in *gate.AccessInput) {
			in.Action, in.SubjectLegalHold = gate.AccessArchiveErase, true
			in.Approvals = []gate.Approval{approval("max", []string{"admin"}, 0)}
		}), true, "approved", 0, nil},
		{"report for an auditor", with(func(in *gate.AccessInput) {
			in.Action, in.Operator.Roles, in.Subject = gate.AccessReportView, []string{"auditor"}, ""
		}), true, "allowed", 0, nil},
		{"import by an admin", with(func(in *gate.AccessInput) {
			in.Action, in.Operator.Roles, in.Subject, in.CaseNumber, in.Purpose = gate.AccessArchiveImport, []string{"admin"}, "", "", ""
		}), true, "allowed", 0, nil},
		{"import by the dpo", with(func(in *gate.AccessInput) {
			in.Action, in.Operator.Roles, in.Subject = gate.AccessArchiveImport, []string{"dpo"}, ""
		}), true, "allowed", 0, nil},
		{"import by an auditor", with(func(in *gate.AccessInput) {
			in.Action, in.Operator.Roles, in.Subject = gate.AccessArchiveImport, []string{"auditor"}, ""
		}), false, "role_missing", 0, nil},
		{"reinstate by the dpo", with(func(in *gate.AccessInput) {
			in.Action, in.CaseNumber, in.Purpose = gate.AccessErasureReinstate, "", ""
		}), true, "allowed", 0, nil},
		{"reinstate by an admin", with(func(in *gate.AccessInput) {
			in.Action, in.Operator.Roles = gate.AccessErasureReinstate, []string{"admin"}
		}), false, "role_missing", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := e.Access(context.Background(), tt.in)
			if d.Allow != tt.allow || d.Reason != tt.reason || d.ApprovalsNeeded != tt.approvals || !slices.Equal(d.RolesNeeded, tt.roles) {
				t.Fatalf("got allow=%v reason=%q approvals=%d roles=%v (%v), want %v %q %d %v",
					d.Allow, d.Reason, d.ApprovalsNeeded, d.RolesNeeded, d.Err, tt.allow, tt.reason, tt.approvals, tt.roles)
			}
			entries := rec.take()
			if len(entries) != 1 || entries[0].Action != "policy.access" {
				t.Fatalf("audit entries %+v, want one policy.access", entries)
			}
			en := entries[0]
			if en.Actor != "erika" || en.Subject != tt.in.Subject || en.Reason != tt.reason || en.PolicyRevision != e.Revision() ||
				en.Details["decision_id"] != d.ID || en.Details["allow"] != map[bool]string{true: "true", false: "false"}[tt.allow] {
				t.Errorf("audit entry %+v", en)
			}
		})
	}
}

func TestAccessRefusedWhenAuditFails(t *testing.T) {
	rec := &recordingAudit{}
	e := newEngine(t, Options{Audit: rec})
	in := gate.AccessInput{Operator: gate.Operator{ID: "audrey", Roles: []string{"auditor"}}, Action: gate.AccessReportView}
	if d := e.Access(context.Background(), in); !d.Allow {
		t.Fatalf("report refused while the audit works: %+v", d)
	}
	rec.setFail(true)
	d := e.Access(context.Background(), in)
	if d.Allow || d.Reason != gate.ReasonAuditUnavailable || d.Err == nil {
		t.Fatalf("got %+v, want a refusal for the audit", d)
	}
}

func TestRegistrationDecisions(t *testing.T) {
	rec := &recordingAudit{}
	e := companyEngine(t, Options{Audit: rec})
	tests := []struct {
		name    string
		in      gate.RegistrationInput
		allow   bool
		reason  string
		network string
	}{
		{"new name", gate.RegistrationInput{Domain: "example.com", Username: "gast", JID: "gast@example.com", Remote: "192.0.2.7"}, true, "open_registration", ""},
		{"directory name", gate.RegistrationInput{Domain: "example.com", Username: "anna", JID: "anna@example.com", Remote: "192.0.2.7"}, false, "reserved_by_directory", "192.0.2.0/24"},
		{"directory name over IPv6", gate.RegistrationInput{Domain: "example.com", Username: "ben", JID: "ben@example.com", Remote: "2001:db8:1:2::7"}, false, "reserved_by_directory", "2001:db8:1::/48"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := e.Registration(context.Background(), tt.in)
			if d.Allow != tt.allow || d.Reason != tt.reason {
				t.Fatalf("got %+v", d)
			}
			entries := rec.take()
			if tt.allow {
				if len(entries) != 0 {
					t.Fatalf("allowed registration audited: %+v", entries)
				}
				return
			}
			if len(entries) != 1 || entries[0].Details["remote_net"] != tt.network {
				t.Fatalf("audit %+v, want the network %s", entries, tt.network)
			}
			for _, en := range entries {
				for k, v := range en.Details {
					if strings.Contains(v, tt.in.Remote) {
						t.Errorf("audit detail %s holds the full address %q", k, v)
					}
				}
			}
		})
	}
}

func TestRefusalsAreAudited(t *testing.T) {
	rec := &recordingAudit{}
	e := companyEngine(t, Options{Audit: rec})
	ctx := context.Background()
	// A cached refusal is audited every time, an allow never.
	for range 2 {
		if d := e.Contact(ctx, msg(local("gus@example.com"), local("ben@example.com"))); d.Allow {
			t.Fatal("guest allowed")
		}
	}
	if d := e.Contact(ctx, msg(local("anna@example.com"), local("ben@example.com"))); !d.Allow {
		t.Fatal("employees refused")
	}
	entries := rec.take()
	if len(entries) != 2 {
		t.Fatalf("%d audit entries, want 2", len(entries))
	}
	allowed := map[string]bool{"decision": true, "decision_id": true, "action": true, "stanza_type": true, "room": true}
	for _, en := range entries {
		if en.Action != "policy.deny" || en.Actor != "gus@example.com" || en.Subject != "ben@example.com" ||
			en.Reason != "guest_not_sponsored" || en.PolicyRevision != e.Revision() || en.Details["decision"] != "contact" {
			t.Errorf("entry %+v", en)
		}
		for k := range en.Details {
			if !allowed[k] {
				t.Errorf("detail %q is not in the masked selection", k)
			}
		}
	}
	// The second refusal came from the cache: the same decision, applied
	// again, with the id of the evaluation that made it.
	if entries[0].Details["decision_id"] != entries[1].Details["decision_id"] {
		t.Error("a cached refusal has a new id")
	}
}

func TestCacheInvalidation(t *testing.T) {
	e := companyEngine(t, Options{})
	ctx := context.Background()
	in := msg(local("gus@example.com"), local("ben@example.com"))
	if d := e.Contact(ctx, in); d.Allow {
		t.Fatal("guest allowed before")
	}
	if n := e.state.Load().cache.len(); n != 1 {
		t.Fatalf("cache holds %d decisions, want 1", n)
	}
	// Ben becomes Gus's sponsor: the next decision must see it.
	s := company()
	gus := s.People["gus@example.com"]
	gus.Sponsors = append(gus.Sponsors, "ben@example.com")
	s.People["gus@example.com"] = gus
	s.Revision = "rev-2"
	if err := e.UpdateDirectory(ctx, s); err != nil {
		t.Fatal(err)
	}
	if d := e.Contact(ctx, in); !d.Allow {
		t.Fatalf("directory change not seen: %+v", d)
	}
	// The same revision again changes nothing.
	before := e.state.Load()
	if err := e.UpdateDirectory(ctx, s); err != nil {
		t.Fatal(err)
	}
	if e.state.Load() != before {
		t.Error("an unchanged directory rebuilt the state")
	}
}

func TestDecisionIDs(t *testing.T) {
	e := newEngine(t, Options{})
	ctx := context.Background()
	in := msg(local("a@example.com"), local("b@example.com"))
	first := e.Contact(ctx, in)
	tests := []struct {
		name    string
		in      gate.ContactInput
		sameAsA bool
	}{
		{"cached: the id of the evaluation", in, true},
		{"another input: a new id", msg(local("b@example.com"), local("a@example.com")), false},
		{"another action: a new id", gate.ContactInput{Action: gate.ActionIQ, StanzaType: "get", From: in.From, To: in.To}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := e.Contact(ctx, tt.in)
			if !d.Allow || d.ID == "" || (d.ID == first.ID) != tt.sameAsA {
				t.Fatalf("id %q, first %q, want same=%v", d.ID, first.ID, tt.sameAsA)
			}
		})
	}
	// Uncached decisions never share ids.
	seen := map[string]bool{}
	for range 50 {
		d := e.Access(ctx, gate.AccessInput{Operator: gate.Operator{ID: "o", Roles: []string{"auditor"}}, Action: gate.AccessReportView})
		if seen[d.ID] {
			t.Fatalf("id %q twice", d.ID)
		}
		seen[d.ID] = true
	}
}

func TestDirectoryDataLeavesOutContactDetails(t *testing.T) {
	d := newDirData(company())
	text := d.value.String()
	for _, secret := range []string{"+49 30 1", `"email"`, `"phone"`, `"display_name"`} {
		if strings.Contains(text, secret) {
			t.Errorf("directory data holds %q", secret)
		}
	}
	if d.people != 9 || d.skipped != 0 {
		t.Errorf("people %d skipped %d", d.people, d.skipped)
	}
	bad := directory.Snapshot{People: map[string]directory.Person{"not a jid": {JID: "@@"}}}
	if d := newDirData(bad); d.people != 0 || d.skipped != 1 {
		t.Errorf("invalid JID: people %d skipped %d", d.people, d.skipped)
	}
}

func TestUploadDecisions(t *testing.T) {
	rec := &recordingAudit{}
	e := companyEngine(t, Options{Audit: rec})
	at := time.Date(2025, 3, 14, 10, 0, 0, 0, berlin)
	tests := []struct {
		name    string
		in      gate.UploadInput
		allow   bool
		reason  string
		maxSize int64
		types   []string
		class   string
		until   time.Time
	}{
		{"employee: no extra limits, kept like an internal chat", gate.UploadInput{From: local("anna@example.com"), Size: 5 << 20, ContentType: "video/mp4"},
			true, "upload", 0, nil, "internal", at.AddDate(0, 0, 90)},
		{"accountant: an accounting record", gate.UploadInput{From: local("fritz@example.com"), Size: 1000, ContentType: "application/pdf"},
			true, "upload", 0, nil, "accounting_record", time.Date(2034, 1, 1, 0, 0, 0, 0, berlin)},
		{"guest: limits", gate.UploadInput{From: local("gus@example.com"), Size: 1000, ContentType: "image/png"},
			true, "upload", 20 << 20, []string{"application/pdf", "image/*"}, "internal", at.AddDate(0, 0, 90)},
		{"guest: too large", gate.UploadInput{From: local("gus@example.com"), Size: 20<<20 + 1, ContentType: "image/png"},
			false, "too_large_for_you", 0, nil, "", time.Time{}},
		{"disabled account", gate.UploadInput{From: local("dora@example.com"), Size: 10, ContentType: "text/plain"},
			false, "account_disabled", 0, nil, "", time.Time{}},
		{"remote user", gate.UploadInput{From: remote("cora@customer.example"), Size: 10, ContentType: "text/plain"},
			false, "not_local", 0, nil, "", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.At = at
			d := e.Upload(context.Background(), tt.in)
			if d.Allow != tt.allow || d.Reason != tt.reason || d.MaxSize != tt.maxSize || !slices.Equal(d.ContentTypes, tt.types) ||
				d.Class != tt.class || !d.Until.Equal(tt.until) {
				t.Fatalf("got %+v", d)
			}
			entries := rec.take()
			if tt.allow != (len(entries) == 0) {
				t.Fatalf("audit entries %+v for allow=%v", entries, tt.allow)
			}
			if !tt.allow && (entries[0].Details["decision"] != "upload" || entries[0].Actor != tt.in.From.JID || d.Message == "") {
				t.Fatalf("audit entry %+v, decision %+v", entries[0], d)
			}
		})
	}
}

func TestUploadInvalidOutputFailsClosed(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "big.rego", "package kontor.upload\n\nlimits contains {\"max_size\": -1}\n")
	e := newEngine(t, Options{Dir: dir})
	d := e.Upload(context.Background(), gate.UploadInput{From: local("anna@example.com"), Size: 1, ContentType: "text/plain"})
	if d.Allow || d.Reason != gate.ReasonInvalid {
		t.Fatalf("got %+v, want a refusal for an invalid answer", d)
	}
}

func TestPushDecisions(t *testing.T) {
	rec := &recordingAudit{}
	e := companyEngine(t, Options{Audit: rec})
	tests := []struct {
		name                string
		in                  gate.PushInput
		allow, sender, body bool
		reason              string
	}{
		{"an outside app server gets a count", gate.PushInput{User: local("anna@example.com"), Service: "p2.siacs.eu", Sender: remote("cora@customer.example")},
			true, false, false, "push"},
		{"enabling", gate.PushInput{User: local("anna@example.com"), Service: "p2.siacs.eu"}, true, false, false, "push"},
		{"the company's own app server", gate.PushInput{User: local("anna@example.com"), Service: "push.example.com", ServiceLocal: true, Sender: remote("cora@customer.example")},
			true, true, true, "push"},
		{"never an encrypted body", gate.PushInput{User: local("anna@example.com"), Service: "push.example.com", ServiceLocal: true, Sender: remote("cora@customer.example"), Encrypted: true},
			true, true, false, "push"},
		{"disabled account", gate.PushInput{User: local("dora@example.com"), Service: "p2.siacs.eu"}, false, false, false, "account_disabled"},
		{"remote user", gate.PushInput{User: remote("cora@customer.example"), Service: "p2.siacs.eu"}, false, false, false, "not_local"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := e.Push(context.Background(), tt.in)
			if d.Allow != tt.allow || d.IncludeSender != tt.sender || d.IncludeBody != tt.body || d.Reason != tt.reason {
				t.Fatalf("got %+v", d)
			}
			entries := rec.take()
			if tt.allow != (len(entries) == 0) {
				t.Fatalf("audit entries %+v for allow=%v", entries, tt.allow)
			}
			if !tt.allow && (entries[0].Details["decision"] != "push" || entries[0].Details["service"] != tt.in.Service || entries[0].Actor != tt.in.User.JID) {
				t.Fatalf("audit entry %+v", entries[0])
			}
		})
	}
}

// TestPushPolicyExtensions: a policy file may refuse app servers and
// reveal more; the body of an encrypted message stays out whatever it
// says, and an answer that is not a boolean fails closed.
func TestPushPolicyExtensions(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "push_local.rego", `package kontor.push

deny contains {"reason": "app_server_not_approved", "message": "Use the company's push service."} if input.service == "push.evil.example"

reveal contains "body" if input.service == "p2.siacs.eu"
`)
	e := newEngine(t, Options{Dir: dir})
	ctx := context.Background()
	if d := e.Push(ctx, gate.PushInput{User: local("anna@example.com"), Service: "push.evil.example"}); d.Allow || d.Reason != "app_server_not_approved" {
		t.Errorf("unapproved app server: %+v", d)
	}
	if d := e.Push(ctx, gate.PushInput{User: local("anna@example.com"), Service: "p2.siacs.eu"}); !d.Allow || !d.IncludeBody || d.IncludeSender {
		t.Errorf("revealed body: %+v", d)
	}
	if d := e.Push(ctx, gate.PushInput{User: local("anna@example.com"), Service: "p2.siacs.eu", Encrypted: true}); !d.Allow || d.IncludeBody {
		t.Errorf("encrypted body revealed: %+v", d)
	}
	bad := t.TempDir() // push.rego replaces the bundle's
	writeFile(t, bad, "push.rego", "package kontor.push\n\ndecision := {\"allow\": true, \"reason\": \"x\", \"include_body\": \"yes\"}\n")
	if d := newEngine(t, Options{Dir: bad}).Push(ctx, gate.PushInput{User: local("anna@example.com"), Service: "p2.siacs.eu"}); d.Allow || d.Reason != gate.ReasonInvalid {
		t.Errorf("a non-boolean include_body: %+v, want a refusal", d)
	}
}

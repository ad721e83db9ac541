package policy

import (
	"context"
	"strings"
	"testing"
	"time"

	"kontor.im/kontor/core/gate"
)

func TestParseInput(t *testing.T) {
	tests := []struct {
		name     string
		decision string
		input    string
		err      string // "" for success
		people   int
	}{
		{"contact with JIDs only", "contact", `{"action": "message", "stanza_type": "chat", "from": {"jid": "anna@example.com", "local": true}, "to": {"jid": "ben@example.com", "local": true}, "room": ""}`, "", 0},
		{"contact with attributes", "contact", `{"action": "message", "from": {"jid": "tom@example.com", "local": true, "kind": "employee", "department": "Trading"}, "to": {"jid": "ben@example.com", "local": true, "known": true, "kind": "employee", "department": "Research", "group_names": ["Research"]}}`, "", 2},
		{"retention", "retention", `{"from": {"jid": "anna@example.com", "local": true}, "to": {"jid": "cora@customer.example", "local": false}, "stanza_type": "chat", "encrypted": true, "legal_hold": false}`, "", 0},
		{"e2ee in a room", "e2ee", `{"from": {"jid": "anna@example.com", "local": true}, "to": {"jid": "", "local": false}, "room": "team@rooms.example.com", "stanza_type": "groupchat"}`, "", 0},
		{"access", "access", `{"operator": {"id": "erika", "roles": ["dpo"]}, "action": "archive.export", "subject": "bob@example.com", "case_number": "C-1", "purpose": "x", "now": 1767225600, "approvals": [{"by": "max", "roles": ["works_council"], "case_number": "C-1", "at": 1767220000}]}`, "", 0},
		{"registration", "registration", `{"domain": "example.com", "username": "gast", "jid": "gast@example.com", "remote": "192.0.2.1"}`, "", 0},
		{"unknown decision", "lunch", `{}`, "unknown decision", 0},
		{"unknown field", "contact", `{"action": "message", "form": {}}`, "unknown field", 0},
		{"trailing data", "registration", `{"domain": "example.com"} {}`, "trailing data", 0},
		{"not JSON", "contact", `action=message`, "invalid character", 0},
		{"missing action", "contact", `{"from": {"jid": "a@example.com", "local": true}, "to": {"jid": "b@example.com", "local": true}}`, "action is required", 0},
		{"missing local", "contact", `{"action": "message", "from": {"jid": "a@example.com"}, "to": {"jid": "b@example.com", "local": true}}`, "from.local is required", 0},
		{"not a JID", "contact", `{"action": "message", "from": {"jid": "a@b@c", "local": true}, "to": {"jid": "b@example.com", "local": true}}`, "not a bare JID", 0},
		{"attributes without kind", "contact", `{"action": "message", "from": {"jid": "a@example.com", "local": true, "department": "X"}, "to": {"jid": "b@example.com", "local": true}}`, "no kind", 0},
		{"unknown kind", "contact", `{"action": "message", "from": {"jid": "a@example.com", "local": true, "kind": "boss"}, "to": {"jid": "b@example.com", "local": true}}`, "not employee, guest or external", 0},
		{"known false with kind", "contact", `{"action": "message", "from": {"jid": "a@example.com", "local": true, "known": false, "kind": "guest"}, "to": {"jid": "b@example.com", "local": true}}`, "known is false", 0},
		{"groups and names of different length", "contact", `{"action": "message", "from": {"jid": "a@example.com", "local": true, "kind": "guest", "groups": ["g1", "g2"], "group_names": ["One"]}, "to": {"jid": "b@example.com", "local": true}}`, "pair up", 0},
		{"approval without time", "access", `{"operator": {"id": "erika"}, "action": "archive.view", "approvals": [{"by": "max"}]}`, "by and at are required", 0},
		{"access without operator", "access", `{"action": "archive.view"}`, "operator.id are required", 0},
		{"too large", "registration", `{"domain": "` + strings.Repeat("x", MaxInputBytes) + `"}`, "larger than", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := ParseInput(tt.decision, []byte(tt.input))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one mentioning %q", err, tt.err)
				}
				if !strings.HasPrefix(err.Error(), "policy: ") {
					t.Errorf("error %q lacks the package prefix", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if in.Value == nil || len(in.People) != tt.people || in.Decision != tt.decision {
				t.Errorf("parsed %+v", in)
			}
		})
	}
}

func TestEval(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	writeFile(t, dir, "barrier.rego", barrier)
	tests := []struct {
		name     string
		decision string
		input    string
		check    func(t *testing.T, got any)
	}{
		{"barrier from attributes in the input", "contact",
			`{"action": "message", "from": {"jid": "tom@example.com", "local": true, "kind": "employee", "department": "Trading"}, "to": {"jid": "ben@example.com", "local": true, "kind": "employee", "department": "Research"}}`,
			func(t *testing.T, got any) {
				if d, ok := got.(gate.Decision); !ok || d.Allow || d.Reason != "information_barrier" {
					t.Errorf("got %+v", got)
				}
			}},
		{"accounting group by name", "retention",
			`{"from": {"jid": "fritz@example.com", "local": true, "kind": "employee", "groups": ["g7"], "group_names": ["Accounting"]}, "to": {"jid": "ben@example.com", "local": true}, "stanza_type": "chat"}`,
			func(t *testing.T, got any) {
				d, ok := got.(gate.RetentionDecision)
				if !ok || d.Class != "accounting_record" || !d.Until.Equal(time.Date(2034, 1, 1, 0, 0, 0, 0, berlin)) {
					t.Errorf("got %+v", got)
				}
			}},
		{"access", "access",
			`{"operator": {"id": "erika", "roles": ["dpo"]}, "action": "archive.view", "subject": "bob@example.com", "case_number": "C-1", "purpose": "x", "now": 1767225600, "approvals": []}`,
			func(t *testing.T, got any) {
				if d, ok := got.(gate.AccessDecision); !ok || d.Allow || d.ApprovalsNeeded != 2 {
					t.Errorf("got %+v", got)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t, Options{Dir: dir, Settings: Settings{AccountingGroups: []string{"Accounting"}}})
			in, err := ParseInput(tt.decision, []byte(tt.input))
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.Eval(ctx, in, time.Date(2025, 6, 1, 0, 0, 0, 0, berlin))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, got)
		})
	}
}

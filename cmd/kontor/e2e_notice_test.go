package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"kontor.im/kontor/core/gate"
)

// TestE2ENoticeAfterApprovedAccess: with works_council.notify_subject, an
// approved look into Bob's archive leaves Bob a message from the server,
// which his client (mellium.im/xmpp) receives at login like any offline
// message.
func TestE2ENoticeAfterApprovedAccess(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		ts := startTestServer(t, backend, func(c *Config) { c.WorksCouncil.NotifySubject = true })
		ts.addUser(t, "bob", "password-b")
		tokens := map[string]string{}
		for name, role := range map[string]string{"erika": "dpo", "dora": "dpo", "max": "works_council"} {
			tokens[name] = addTestOperator(t, ts.srv.store, name, role)
		}
		authorize := func(op string, flags map[string]string) (operatorGrant, error) {
			t.Helper()
			cmd := &cobra.Command{Use: "probe"}
			addAccessFlags(cmd)
			cmd.SetContext(t.Context())
			cmd.SetErr(io.Discard)
			file := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(file, []byte(tokens[op]), 0o600); err != nil {
				t.Fatal(err)
			}
			flags["operator"], flags["operator-token-file"] = op, file
			for k, v := range flags {
				cmd.Flags().Set(k, v)
			}
			return authorizeAction(t.Context(), &ts.cfg, ts.srv.store, cmd, gate.AccessArchiveView, bare("bob"))
		}
		_, err := authorize("erika", map[string]string{"case": "HR-7", "purpose": "suspected leak of price lists"})
		var are *approvalRequiredError
		if !errors.As(err, &are) {
			t.Fatalf("err = %v, want a request", err)
		}
		for _, approver := range []string{"dora", "max"} {
			file := filepath.Join(t.TempDir(), approver)
			os.WriteFile(file, []byte(tokens[approver]), 0o600)
			if _, err := ts.cli(t, "", "request", "approve", are.RequestID, "--operator", approver, "--operator-token-file", file); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := authorize("erika", map[string]string{"request": are.RequestID}); err != nil {
			t.Fatal(err)
		}

		bob := ts.dial(t, "bob", "password-b")
		bob.send(t, "<presence/>")
		m := bob.Messages.expect(t, "bob's notice", func(n xmlNode) bool { return strings.Contains(n.body(), "works agreement") })
		if m.attr("from") != e2eDomain {
			t.Errorf("the notice comes from %q, want the server %q", m.attr("from"), e2eDomain)
		}
		for _, want := range []string{"erika", "read your message archive", "HR-7", "suspected leak of price lists", "dora, max"} {
			if !strings.Contains(m.body(), want) {
				t.Errorf("notice %q lacks %q", m.body(), want)
			}
		}
	})
}

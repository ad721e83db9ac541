package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"kontor.im/kontor/core/module"
)

func modulesCmd() *cobra.Command {
	var markdown bool
	cmd := &cobra.Command{
		Use:   "modules",
		Short: "List the modules and the protocols they implement",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			if markdown {
				writeProtocolTable(cmd.OutOrStdout())
				return
			}
			for _, info := range module.All() {
				def := ""
				if info.Default {
					def = " (default)"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s%s: %s\n", info.ID, def, info.Description)
				for _, s := range info.Specs {
					fmt.Fprintf(cmd.OutOrStdout(), "    %s %s %s: %s%s\n", s.ID, s.Name, s.Version, s.Status, noteSuffix(s.Note))
				}
			}
		},
	}
	cmd.Flags().BoolVar(&markdown, "markdown", false, "print the README's protocol table")
	return cmd
}

func noteSuffix(n string) string {
	if n == "" {
		return ""
	}
	return " (" + n + ")"
}

// coreSpecs are implemented by the core packages rather than a module.
var coreSpecs = []struct {
	spec module.Spec
	pkg  string
}{
	{module.Spec{ID: "RFC 6120", Name: "XMPP Core: streams, STARTTLS, SASL, resource binding, stanza and stream errors", Status: module.Complete,
		Note: "client-to-server, and server-to-server (federation, off by default: s2s.enabled) with STARTTLS and SASL EXTERNAL"}, "core/session, core/s2s, core/xmlstream, core/router"},
	{module.Spec{ID: "RFC 6121", Name: "XMPP IM: server rules for processing stanzas (§8)", Status: module.Complete}, "core/router"},
	{module.Spec{ID: "RFC 7622", Name: "XMPP Address Format (PRECIS)", Status: module.Complete}, "core/jid"},
	{module.Spec{ID: "RFC 7590", Name: "Use of TLS in XMPP: TLS 1.2 or later only, certificate names checked by clients", Status: module.Complete}, "core/session"},
	{module.Spec{ID: "RFC 5802 / RFC 7677", Name: "SCRAM-SHA-1, SCRAM-SHA-256 (and -PLUS with tls-exporter, RFC 9266)", Status: module.Complete}, "core/sasl"},
	{module.Spec{ID: "RFC 4616", Name: "SASL PLAIN (over TLS only)", Status: module.Complete}, "core/sasl"},
	{module.Spec{ID: "XEP-0198", Name: "Stream Management (acks and resumption)", Version: "1.6", Status: module.Complete}, "core/session"},
	{module.Spec{ID: "XEP-0352", Name: "Client State Indication", Version: "1.0.0", Status: module.Complete, Note: "availability presence held and deduplicated while inactive"}, "core/session"},
	{module.Spec{ID: "XEP-0368", Name: "SRV records for XMPP over TLS (direct TLS listeners for clients and servers, _xmpps-server for federation)", Version: "1.1.0", Status: module.Complete}, "core/session, core/s2s"},
	{module.Spec{ID: "XEP-0220", Name: "Server Dialback", Version: "1.1.1", Status: module.Partial,
		Note: "over TLS only; one stream per pair of domains (no piggybacking of further domains); keys HMAC-SHA256 of a random per-server secret"}, "core/s2s"},
	{module.Spec{ID: "XEP-0178", Name: "Best Practices for Use of SASL EXTERNAL with Certificates (server-to-server)", Status: module.Complete}, "core/s2s"},
	{module.Spec{ID: "XEP-0199", Name: "XMPP Ping (server pings silent clients)", Version: "2.0.1", Status: module.Complete}, "core/session"},
	{module.Spec{ID: "XEP-0440", Name: "SASL Channel-Binding Type Capability", Version: "0.4.0", Status: module.Complete}, "core/session"},
	{module.Spec{ID: "XEP-0388", Name: "Extensible SASL Profile (SASL2): login, binding and resumption in one round trip", Version: "1.0.4", Status: module.Partial,
		Note: "TLS only; the RFC 6120 mechanisms; user-agent id; no upgrade tasks or continue (no second factor)"}, "core/session"},
	{module.Spec{ID: "XEP-0386", Name: "Bind 2", Version: "1.0.0", Status: module.Partial,
		Note: "stable resource per user-agent id; inline stream management (enable, and resume in SASL2), carbons, CSI; no MAM metadata in the bound element, offline messages not cleared"}, "core/session"},
	{module.Spec{ID: "XEP-0484", Name: "Fast Authentication Streamlining Tokens (FAST)", Version: "0.1.0", Status: module.Complete,
		Note: "HT-SHA-256-EXPR and -NONE; tokens derived, never stored; rotation, replay count, invalidation; no TLS 0-RTT"}, "core/session, core/account"},
	{module.Spec{ID: "RFC 7395", Name: "XMPP over WebSocket", Status: module.Complete, Note: "wss only, on the HTTPS listener (http.addr) at /xmpp-websocket"}, "core/websocket"},
	{module.Spec{ID: "XEP-0124", Name: "Bidirectional-streams Over Synchronous HTTP (BOSH)", Version: "1.11", Status: module.Partial,
		Note: "no acks, pause or multiple streams (none advertised); HTTPS only"}, "core/bosh"},
	{module.Spec{ID: "XEP-0206", Name: "XMPP Over BOSH", Version: "1.4", Status: module.Complete, Note: "at /http-bind"}, "core/bosh"},
	{module.Spec{ID: "XEP-0156", Name: "Discovering Alternative XMPP Connection Methods (HTTP)", Version: "1.4.0", Status: module.Partial,
		Note: "host-meta and host-meta.json for WebSocket and BOSH; no DNS TXT records"}, "cmd/kontor"},
}

// writeProtocolTable prints the protocol table from the modules' own
// declarations, so the README cannot drift from the code.
func writeProtocolTable(w io.Writer) {
	type row struct{ id, name, version, status, where string }
	var rows []row
	for _, c := range coreSpecs {
		rows = append(rows, row{c.spec.ID, c.spec.Name, c.spec.Version, status(c.spec), c.pkg})
	}
	for _, info := range module.All() {
		for _, s := range info.Specs {
			rows = append(rows, row{s.ID, s.Name, s.Version, status(s), "module `" + info.ID + "`"})
		}
	}
	sort.SliceStable(rows, func(i, j int) bool { return specKey(rows[i].id) < specKey(rows[j].id) })
	fmt.Fprintln(w, "| Specification | Name | Version | Status | Where |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", r.id, r.name, r.version, r.status, r.where)
	}
}

func status(s module.Spec) string {
	st := string(s.Status)
	if s.Note != "" {
		st += ": " + strings.ReplaceAll(s.Note, "|", "/")
	}
	return st
}

// specKey sorts RFCs first, then XEPs by number.
func specKey(id string) string {
	if strings.HasPrefix(id, "RFC") {
		return "0" + id
	}
	return "1" + id
}

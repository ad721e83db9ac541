package main

// The README's compliance statement: the server features of XEP-0479 (XMPP
// Compliance Suites 2023), checked against the Specs the core and the
// modules declare, so that the statement changes with the code and cannot
// claim more than the protocol table does.

import (
	"fmt"
	"io"
	"strings"

	"kontor.im/kontor/core/module"
)

// suiteFeature is one server feature of a compliance suite.
type suiteFeature struct {
	suite, feature   string
	server, advanced bool // required at the Server / Advanced Server level
	// providers are the specifications, every one needed; "XEP-0313@muc"
	// means XEP-0313 as module muc declares it (room archives), where
	// another module's Spec of the same XEP covers something else.
	providers []string
}

// compliance2023 are the server rows of XEP-0479 version 0.1.0 (features
// that are N/A or not required for servers at either level are left out).
var compliance2023 = []suiteFeature{
	{"Core", "Core features", true, true, []string{"RFC 6120"}},
	{"Core", "TLS", true, true, []string{"RFC 7590"}},
	{"Core", "Direct TLS", false, true, []string{"XEP-0368"}},
	{"Core", "Feature discovery", true, true, []string{"XEP-0030"}},
	{"Core", "Feature broadcasts", false, true, []string{"XEP-0115"}},
	{"Core", "Server extensibility", true, true, []string{"XEP-0114"}},
	{"Core", "Event publishing", false, true, []string{"XEP-0163"}},
	{"Web", "Web connection mechanisms", true, true, []string{"RFC 7395", "XEP-0206"}},
	{"IM", "Core features", true, true, []string{"RFC 6121"}},
	{"IM", "User avatar compatibility", false, true, []string{"XEP-0398", "XEP-0153"}},
	{"IM", "vcard-temp", true, true, []string{"XEP-0054"}},
	{"IM", "Outbound message synchronization", true, true, []string{"XEP-0280"}},
	{"IM", "User blocking", false, true, []string{"XEP-0191"}},
	{"IM", "Group chat", true, true, []string{"XEP-0045", "XEP-0249"}},
	{"IM", "Advanced group chat", false, true, []string{"XEP-0048", "XEP-0313@muc", "XEP-0402", "XEP-0410"}},
	{"IM", "Persistent storage of private data via PubSub", false, true, []string{"XEP-0223"}},
	{"IM", "Private XML storage", false, true, []string{"XEP-0049"}},
	{"IM", "Stream management", false, true, []string{"XEP-0198"}},
	{"IM", "History storage / retrieval", false, true, []string{"XEP-0313@mam"}},
	{"IM", "File upload", true, true, []string{"XEP-0363"}},
	{"Mobile", "Stream management", true, true, []string{"XEP-0198"}},
	{"Mobile", "Client state indication", true, true, []string{"XEP-0352"}},
	{"Mobile", "Third-party push notifications", false, true, []string{"XEP-0357"}},
	{"A/V Calling", "STUN/TURN server discovery", true, true, []string{"XEP-0215"}},
}

// provided is what the server declares for one specification: the best
// status among the places that implement it, and where.
type provided struct {
	status module.Status // "" when nothing implements it
	where  []string
	note   string
}

// declared collects the Specs of the core and of every module by ID, and
// those of each module also by ID@module.
func declared() map[string]*provided {
	out := map[string]*provided{}
	add := func(s module.Spec, where, suffix string) {
		for _, id := range strings.Split(s.ID, " / ") {
			keys := []string{id}
			if suffix != "" {
				keys = append(keys, id+suffix)
			}
			for _, key := range keys {
				p := out[key]
				if p == nil {
					p = &provided{}
					out[key] = p
				}
				p.where = append(p.where, where)
				if p.status != module.Complete {
					p.status, p.note = s.Status, s.Note
				}
			}
		}
	}
	for _, c := range coreSpecs {
		add(c.spec, c.pkg, "")
	}
	for _, info := range module.All() {
		where := "module `" + info.ID + "`"
		if !info.Default {
			where += " (enable it)"
		}
		for _, s := range info.Specs {
			add(s, where, "@"+info.ID)
		}
	}
	return out
}

// writeCompliance prints the statement: a table of the features with what
// provides each, then the level reached in each suite.
func writeCompliance(w io.Writer) {
	specs := declared()
	met := func(f suiteFeature) (bool, string) {
		ok := true
		var parts []string
		for _, key := range f.providers {
			p := specs[key]
			id, _, _ := strings.Cut(key, "@")
			switch {
			case p == nil || p.status == "":
				ok = false
				parts = append(parts, "✗ "+id+": not implemented")
			case p.status != module.Complete:
				ok = false
				parts = append(parts, "◐ "+id+" (partial: "+strings.ReplaceAll(p.note, "|", "/")+")")
			default:
				parts = append(parts, "✓ "+id+", "+strings.Join(p.where, ", "))
			}
		}
		return ok, strings.Join(parts, "; ")
	}
	mark := func(b bool) string {
		if b {
			return "required"
		}
		return ""
	}
	fmt.Fprintln(w, "| Suite | Feature | Server | Advanced Server | Kontor |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	type level struct{ server, advanced bool }
	levels := map[string]*level{}
	var order []string
	for _, f := range compliance2023 {
		if levels[f.suite] == nil {
			levels[f.suite] = &level{true, true}
			order = append(order, f.suite)
		}
		ok, what := met(f)
		l := levels[f.suite]
		l.server = l.server && (ok || !f.server)
		l.advanced = l.advanced && (ok || !f.advanced)
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", f.suite, f.feature, mark(f.server), mark(f.advanced), what)
	}
	fmt.Fprintln(w)
	// Every suite also needs the Core suite's features of its level.
	core := *levels["Core"]
	for _, s := range order {
		l := *levels[s]
		if s != "Core" {
			l.server, l.advanced = l.server && core.server, l.advanced && core.advanced
		}
		reached := "neither level"
		switch {
		case l.advanced:
			reached = "Advanced Server"
		case l.server:
			reached = "Server"
		}
		own := ""
		if s != "Core" && levels[s].server && !l.server {
			own = " (this suite's own features are there for the Server level; the Core suite's are not)"
		}
		fmt.Fprintf(w, "- **%s**: %s%s\n", s, reached, own)
	}
}

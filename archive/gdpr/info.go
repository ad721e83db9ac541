package gdpr

import (
	"fmt"
	"html"
	"io"
	"strings"
	"time"
)

// writeInfo writes the information sheet Art. 15(1) GDPR requires, the
// first file of every export.
func (x *exporter) writeInfo(w io.Writer) error {
	var b strings.Builder
	e := html.EscapeString
	d := x.data
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Information about the processing of your data</title><style>%s</style></head><body>`, css)
	p(`<h1>Information about the processing of your personal data</h1>`)
	p(`<p>This export answers a request under Art. 15 and Art. 20 GDPR for <strong>%s</strong>. It was made on %s (UTC).</p>`,
		e(x.subject), x.at.Format(time.RFC1123))
	p(`<h2>Controller and data protection officer</h2><p>Controller: %s<br>Data protection officer: %s</p>`,
		e(orUnset(x.t.Info.Controller)), e(orUnset(x.t.Info.DPOContact)))
	p(`<h2>Purposes of the processing (Art. 15(1)(a))</h2><ul>
<li>Providing the company's instant messaging service: your account, contacts, profile and messages waiting for you.</li>
<li>Keeping business communication for as long as the law requires (commercial and tax retention duties), in an encrypted archive.</li>
<li>Security and accountability: an audit trail of every access to personal data by administrators and the data protection officer.</li></ul>`)
	p(`<h2>Categories of data (Art. 15(1)(b))</h2><ul>
<li>Account: address, creation date, whether it is disabled; the kinds of password hashes kept (never the password).</li>
<li>Directory data that the company's directory provides (name, department, groups), when the account is linked to it.</li>
<li>Contact list, pending contact requests, profile (vCard), stored client settings (private XML), published personal events (PEP), blocked addresses.</li>
<li>Messages: those waiting for delivery (offline) and the message archive, decrypted in this export.</li>
<li>Legal holds and restrictions that concern you, and the audit entries about you.</li></ul>`)
	p(`<h2>Recipients (Art. 15(1)(c))</h2><p>Your messages go to the people you write to. Administrators and the data protection officer
can access stored data only through audited actions, some of which need the approval of a second person; the audit entries
about you are included in this export (data.json, "audit"). Data is not transferred to third countries by this service.</p>`)
	p(`<h2>How long data is kept (Art. 15(1)(d))</h2>`)
	if len(d.Retention.Rules) > 0 {
		p(`<table><tr><td><strong>Messages</strong></td><td><strong>Class</strong></td><td><strong>Kept for</strong></td></tr>`)
		for _, r := range d.Retention.Rules {
			keep := r.Period
			if !r.Archive {
				keep = "not archived"
			}
			p(`<tr><td>%s</td><td>%s</td><td>%s</td></tr>`, e(r.Situation), e(r.Class), e(keep))
		}
		p(`</table>`)
	}
	classes := map[string]time.Time{}
	for _, k := range d.Retention.DataKeys {
		if k.KeepUntil.After(classes[k.Class]) || k.KeepUntil.IsZero() {
			classes[k.Class] = k.KeepUntil
		}
	}
	if len(classes) > 0 {
		p(`<p>Your archive holds messages of these retention classes:</p><ul>`)
		for _, c := range sortedKeys(classes) {
			until := "without a deletion date"
			if !classes[c].IsZero() {
				until = "the last of them until " + classes[c].Format(time.DateOnly)
			}
			p(`<li>%s: %s</li>`, e(c), e(until))
		}
		p(`</ul>`)
	}
	p(`<p>The account and its data are kept while the account exists. Messages waiting for delivery are kept until delivered.
Audit entries are kept as long as the audit trail (they prove who accessed what).</p>`)
	if len(d.LegalHolds) > 0 {
		p(`<p>A legal hold concerns your data; while it is active, nothing it covers is deleted:</p><ul>`)
		for _, h := range d.LegalHolds {
			state := "active"
			if !h.Active() {
				state = "released " + h.Released.Format(time.DateOnly)
			}
			p(`<li>case %s, since %s (%s)</li>`, e(h.Case), h.Created.Format(time.DateOnly), e(state))
		}
		p(`</ul>`)
	}
	p(`<h2>Your rights (Art. 15(1)(e), (f))</h2><ul>
<li>Rectification of inaccurate data (Art. 16) and erasure (Art. 17), where no legal duty to keep it applies.</li>
<li>Restriction of processing (Art. 18) and objection (Art. 21).</li>
<li>Data portability (Art. 20): xep0227.xml in this export can be imported by another XMPP server; data.json is machine-readable.</li>
<li>A complaint to a supervisory authority (Art. 77).</li></ul>`)
	p(`<h2>Source of the data (Art. 15(1)(g)) and automated decisions (Art. 15(1)(h))</h2>
<p>Directory data comes from the company's directory; everything else from your use of the service. There is no automated
decision-making or profiling within the meaning of Art. 22 GDPR.</p>`)
	p(`<h2>The files of this export</h2><ul>
<li><code>00-information.html</code>: this sheet.</li>
<li><code>data.json</code>: all data, machine-readable (schema <code>%s</code>, described in Kontor's README).</li>
<li><code>conversations.html</code>: your conversations, readable in any browser.</li>
<li><code>xep0227.xml</code>: account, contacts, profile, settings and messages in the XMPP server data format (XEP-0227).</li>
<li><code>manifest.json</code>: the SHA-256 of every file, to check that none was changed.</li></ul>`, SchemaVersion)
	if d.Pseudonymised {
		p(`<p>Other people's addresses are replaced by pseudonyms to protect their rights (Art. 15(4)); the same person has the same
pseudonym throughout this export. Message texts are included as written.</p>`)
	}
	p(`</body></html>`)
	_, err := io.WriteString(w, b.String())
	return err
}

func orUnset(s string) string {
	if s == "" {
		return "(not configured: ask your administrator)"
	}
	return s
}

// Package policy answers Kontor's policy decisions (core/gate) with an
// embedded Open Policy Agent: who may contact whom, what is archived and
// for how long, who may look into someone's archive and with whose
// approval, where end-to-end encryption is allowed, and who may register.
//
// # Why OPA
//
// Companies already write such rules for their IT (Kubernetes admission,
// API gateways) in Rego, and OPA brings what a home-grown rule language
// would have to grow: a small, side-effect-free language with unit tests
// (`test_` rules), a formatter, precise errors with file and line, partial
// sets that let a company add rules beside the shipped ones, and an
// evaluator that runs embedded, in process, with prepared queries, so no
// sidecar or network hop sits in the stanza path. The price is a larger
// binary and ~20 µs per uncached decision; decisions are cached (below).
// OPA types stay inside this package: the rest of Kontor sees core/gate.
//
// # Policies
//
// The default bundle (bundle/*.rego, embedded) is the policy of a German
// company: employees talk to each other; guests only to the employees who
// sponsor them; employees and business contacts (kind external) talk;
// internal chat is kept 90 days, business letters (chats with an external
// party or of the configured groups) until 6 years after the end of the
// year (HGB § 257), accounting records 8 years after it; a legal hold keeps
// everything; the longest applicable retention wins; end-to-end encryption
// is refused where a retention duty needs the text readable; any look into
// someone else's archive needs a case number, a purpose and two approvers
// (data protection officer and works council), approvals expire after 72
// hours. Every shipped file has a _test.rego beside it.
//
// Files in the policy directory (policy.dir) are loaded with the bundle: a
// file with the name of a bundle file replaces it, any other file adds to
// it (the decisions have partial-set extension points: allow, deny and
// rules). A policy that does not parse or compile, lacks a decision, or
// calls a forbidden builtin (http.send, net.lookup_ip_addr, opa.runtime:
// decisions must not wait for the network nor see the environment) does
// not load: the error lists each problem with file, line and message, and
// the last good policy stays active. The directory is watched (fsnotify,
// inotify on Linux) and Reload is there for the admin API. Every load is
// an audit entry (policy.load) with the new revision: the SHA-256 over the
// served files and the settings.
//
// # Data
//
// The engine is the directory.Sink of directory sync: people, their
// flattened groups and sponsors become data.kontor.directory, and the
// settings from the configuration data.kontor.config. Callers send only
// JIDs; the engine puts each party's directory entry into the input (a map
// lookup of a prepared object), so policies read input.from.kind. A local
// account the directory does not know counts as settings.unknown_local_kind
// (employee by default, so that a server without a directory lets its
// users talk), anyone else as external.
//
// A party object:
//
//	{"jid": "anna@example.com", "local": true, "known": true,
//	 "kind": "employee" | "guest" | "external" | "" (no party),
//	 "department": "Sales", "company": "ACME",
//	 "groups": ["<group id>", ...], "group_names": ["Sales", ...],
//	 "sponsors": ["<bare JID>", ...], "disabled": false}
//
// # Decisions: inputs and outputs (version 1)
//
// Every output is an object with "allow" (boolean) and "reason" (a code of
// letters, digits, _ . -, at most 64 bytes), and optionally "message"
// (shown to the user, at most 1000 bytes) and "obligations" (an object).
// The engine adds an id and the policy revision. Anything else, an
// undefined result, an error or a timeout (Options.Timeout, 250 ms by
// default) is a refusal with reason policy_invalid_output, policy_undefined,
// policy_error or policy_timeout: decisions fail closed.
//
// contact (data.kontor.contact.decision): may from do action to to?
//
//	input:  {"action": "message" | "roster.add" | "subscribe" | "subscribed" |
//	                   "presence" | "iq" | "muc.join" | "muc.invite",
//	         "stanza_type": "chat", "from": party, "to": party,
//	         "room": "<room bare JID for muc.*, else empty>"}
//	output: {"allow", "reason", "message"}
//
// retention (data.kontor.retention.decision): what is kept of a message?
//
//	input:  {"from": party, "to": party, "room": "", "stanza_type": "chat",
//	         "encrypted": false, "legal_hold": false}
//	output: {"allow": true, "reason", "archive": bool, "legal_hold": bool,
//	         "rules": [{"class": "internal", "days": 90},
//	                   {"class": "business_letter", "years_after_year_end": 6}]}
//
// Each rule has a class and exactly one of days, months, years (counted
// from the message) or years_after_year_end (counted from the end of the
// message's calendar year). The engine computes every rule's deletion date
// in the configured calendar (Europe/Berlin by default) and the latest one
// wins: gate.RetentionDecision has its class, period and date. Calendar
// arithmetic is Go's, not Rego's, so that policies say what the law says
// and cannot get time zones wrong.
//
// access (data.kontor.access.decision): may an operator act on someone's
// data?
//
//	input:  {"operator": {"id", "roles": [...]},
//	         "action": "archive.view" | "archive.export" | "archive.erase" |
//	                   "report.view" | "legal_hold.set" | "legal_hold.release" |
//	                   "archive.import" | "erasure.reinstate" |
//	                   "admin.policy_reload" | "admin.ldap_sync" | "operator.manage",
//	         "subject": "<bare JID>", "case_number", "purpose",
//	         "subject_legal_hold": bool, "now": <Unix seconds>,
//	         "remote": "<admin API caller host:port>" | "" (local CLI),
//	         "approvals": [{"by", "roles": [...], "case_number", "at": <Unix seconds>}]}
//	output: {"allow", "reason", "message", "approvals_needed": n,
//	         "roles_needed": [...], "obligations": {"case_number"}}
//
// e2ee (data.kontor.e2ee.decision): may an end-to-end encrypted message be
// sent here?
//
//	input:  {"from": party, "to": party, "room": "", "stanza_type": "chat"}
//	output: {"allow", "reason", "message", "obligations"}
//
// registration (data.kontor.registration.decision): may a new account
// register in band?
//
//	input:  {"domain", "username", "jid", "remote": "<client address>"}
//	output: {"allow", "reason", "message"}
//
// upload (data.kontor.upload.decision, the upload.request decision point):
// may from upload a file (XEP-0363 slot request), within which limits, and
// how long is the file kept?
//
//	input:  {"from": party, "size": <bytes>, "content_type": "image/png"}
//	output: {"allow", "reason", "message", "obligations",
//	         "max_size": <bytes, 0 for no limit of the policy's>,
//	         "content_types": ["image/*", ...] (empty: no list of the policy's),
//	         "rules": [<retention rules, as for retention>]}
//
// The limits narrow the upload module's options; the rules are the file's
// retention (class, period and deletion date as for a message: the longest
// applicable rule wins). The default policy gives a file the rules a
// message of the uploader's would get, and limits guests to images and
// PDFs of up to 20 MiB.
//
// push (data.kontor.push.decision, the push.notify decision point): may
// an account's push notifications (XEP-0357) go to this app server, and
// may their summary name the sender and carry the body?
//
//	input:  {"user": party, "service": "p2.siacs.eu", "service_local": false,
//	         "sender": party, "encrypted": false}
//	output: {"allow", "reason", "message", "obligations",
//	         "include_sender": bool, "include_body": bool}
//
// It is asked when a client enables an app server (sender: a party without
// a JID) and for each notification. The includes narrow the push module's
// include_sender and include_body options; the body of an end-to-end
// encrypted message is never included. The default policy allows every
// account's notifications and reveals the sender and body only to an app
// server this server serves itself.
//
// # Speed
//
// Each decision is a prepared query, reused. The whole prepared state
// (compiled policy, data, prepared queries, decision cache) is one
// immutable value behind an atomic pointer: a reload or a directory update
// builds a new one and swaps it in, and decisions in flight finish on the
// old one. Contact, retention and e2ee decisions are cached per input
// (sender, recipient, action, stanza type, room, flags) in a bounded,
// lock-free, direct-mapped table that belongs to the state, so a reload or
// a directory update starts with an empty cache. A cached answer is the
// same decision applied again: it carries the id of the evaluation that
// made it. Access, registration and upload decisions are rare and never cached. A
// policy that calls a nondeterministic builtin
// (time.now_ns, rand.intn, ...) is not cached at all.
//
// # Audit
//
// Every refusal (policy.deny) and every access decision (policy.access,
// allowed or not) is appended to the audit trail with the decision id, the
// reason and the policy revision. The entry holds a fixed selection of the
// input, never the input itself: the parties' JIDs, action, stanza type
// and room; for access the case number, the purpose (at most 200 bytes)
// and the approvers; for registration the client's network (/24, /48), not
// its address; for upload the content type and size. Inputs never carry message bodies. An access decision that
// cannot be written to the trail is refused (audit_unavailable).
package policy

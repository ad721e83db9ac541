// Package ldapsync keeps Kontor's accounts in line with a company directory,
// Active Directory or OpenLDAP, and lets people log in with their directory
// password.
//
// # What it does
//
//   - Sync: users selected by a filter under a base DN become accounts
//     without credentials (core/storage.Accounts); their attributes go into
//     their vCard (name, email, department, company, phone, photo); entries
//     that are disabled, locked out or expired in the directory
//     (userAccountControl bit 0x2, msDS-User-Account-Control-Computed's
//     lockout bit and accountExpires on Active Directory; a configurable
//     filter elsewhere) disable their account, and the account change log
//     makes every running server close their sessions; entries gone from
//     the directory are disabled at once and deleted after a grace period.
//     The stable id (objectGUID, entryUUID) links an entry to its account,
//     so renames and moves break nothing. An entry of a person who was
//     erased (GDPR Art. 17; see Erasures) is skipped and reported as
//     "erased, skipped", not recreated, until a DPO reinstates them.
//   - Groups: groups selected by a filter, nesting resolved here (memberOf
//     is direct-only and the in-chain matching rule works on Active
//     Directory alone), cycles detected, large groups read in ranges. They
//     become shared roster groups and, with every user's attributes, a
//     directory.Snapshot for the policy engine.
//   - Full and incremental sync: a full sync reads everything and
//     reconciles by stable id; an incremental one reads what changed since
//     a high-water mark (uSNChanged of one domain controller;
//     contextCSN/entryCSN, or modifyTimestamp, on OpenLDAP), and finds what
//     left the directory from a scan of the stable ids alone (tombstones
//     need rights a reader lacks, expire, and miss entries moved out of
//     scope; OpenLDAP keeps none). Every search
//     is paged (at most 1000 entries per page). A plan of the exact changes
//     is built first, so a dry run prints what a sync would do; then each
//     change is applied on its own, and one that fails is reported without
//     stopping the others. Every sync writes a summary to the audit trail.
//   - Login: SASL PLAIN over TLS, verified by binding as the user on a
//     pooled connection, the DN found by the stable id or from a template.
//     Active Directory's bind sub-codes become distinct log reasons; the
//     client is only told not-authorized. Local accounts (guests) keep their
//     SCRAM credentials and log in through PLAIN as well. See Authenticator
//     for how lockouts are avoided.
//   - Password changes: Kontor never sees a directory password, but a
//     FAST token (XEP-0484) stands in for one. The sync records when the
//     directory last changed each password (pwdLastSet on Active
//     Directory; ppolicy's pwdChangedTime on OpenLDAP, so the ppolicy
//     overlay must be loaded there) and revokes the account's FAST tokens
//     when that changes: a client logs in with the new password at its
//     next connection after the next sync. Without ppolicy, OpenLDAP
//     records no such time and tokens run to their lifetime.
//
// # Connections
//
// Client wraps go-ldap connections: ldaps:// or ldap:// with StartTLS, a CA
// file, timeouts, several servers in fail-over order, reconnection with
// exponential back-off (go-ldap does not reconnect by itself), a small pool
// bound as the service account and one for user binds.
//
// # Why go-ldap
//
// github.com/go-ldap/ldap/v3 is the LDAP client Go programs use (Vault,
// Grafana, Gitea, Dex): pure Go, with the paged results control, Active
// Directory's controls should they be needed (DirSync, show-deleted),
// RFC 4514 DN parsing and comparison, and filter escaping. The alternatives are cgo
// bindings to libldap, which would end the single static binary, or a
// protocol implementation of our own. Its types stay inside this package.
package ldapsync

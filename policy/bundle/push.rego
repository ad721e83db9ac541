# May an account's push notifications (XEP-0357) go to an app server, and
# what may their summary say? (decision push.notify)
#
# A notification wakes a phone through the app server the client chose
# (e.g. Conversations' p2.siacs.eu) and the platform's push service
# (Firebase, APNs): it leaves the company unless the app server is one of
# this server's own (a component, a domain it serves).
#
# Input (version 1):
#   {"user": party,              # the account whose phone is woken
#    "service": "p2.siacs.eu",   # the app server's JID
#    "service_local": false,     # true: this server serves the app server
#    "sender": party,            # the last message's sender; a party with
#                                # jid "" when the client enables push
#    "encrypted": false}         # the last message is end-to-end encrypted
#
# Output (data.kontor.push.decision):
#   {"allow": bool, "reason": "code", "message": "text for the user",
#    "include_sender": bool, "include_body": bool, "obligations": {}}
#
# A refusal when the client enables push is the error it gets; later, the
# notification is not sent (the message waits in the session or offline
# storage as before). include_sender and include_body only narrow the push
# module's include_sender and include_body options (both off by default):
# the summary names the sender or carries the body only when both the
# module and this policy allow it, and never the body of an end-to-end
# encrypted message.
#
# By default every account may use any app server; the summary may name
# the sender and carry the body only for an app server of this server's
# own, so that nothing but a count leaves the company.
#
# Extension points for files in policy.dir:
#   deny contains {"reason": "code", "message": "text"} if { ... }
#   reveal contains "sender" | "body" if { ... }
package kontor.push

deny contains {
	"reason": "not_local",
	"message": "Only accounts of this server get push notifications here.",
} if not input.user.local

deny contains {
	"reason": "account_disabled",
	"message": "This account is disabled.",
} if input.user.disabled

reveal contains "sender" if input.service_local

reveal contains "body" if input.service_local

decision := {
	"allow": false,
	"reason": d.reason,
	"message": d.message,
	"include_sender": false,
	"include_body": false,
	"obligations": {},
} if {
	d := min(deny)
} else := {
	"allow": true,
	"reason": "push",
	"include_sender": "sender" in reveal,
	"include_body": body_allowed,
	"obligations": {},
}

default body_allowed := false

body_allowed if {
	"body" in reveal
	not input.encrypted
}

# May one party contact another?
#
# Input (version 1):
#   {"action": "message" | "roster.add" | "subscribe" | "subscribed" |
#              "presence" | "iq" | "muc.join" | "muc.invite",
#    "stanza_type": "chat",
#    "from": party, "to": party,   # see lib.rego
#    "room": ""}                   # bare JID of the room for muc.*
#
# Output (data.kontor.contact.decision):
#   {"allow": bool, "reason": "code", "message": "text for the user",
#    "obligations": {}}      # message and obligations may be left out
#
# Extension points for files in policy.dir (add, do not redefine decision):
#   allow contains "code" if { ... }            grants contact
#   deny contains {"reason": "code", "message": "text"} if { ... }
#                                                beats every allow
#
# Rules read input.from and input.to directly (not through aliases), so
# that OPA's rule index skips the rules that cannot match.
package kontor.contact

# Employees talk to each other.
allow contains "internal" if {
	input.from.kind == "employee"
	input.to.kind == "employee"
}

# A guest and the employees who sponsor the guest talk to each other.
allow contains "sponsor" if {
	input.from.kind == "guest"
	input.to.kind == "employee"
	input.to.jid in input.from.sponsors
}

allow contains "sponsor" if {
	input.from.kind == "employee"
	input.to.kind == "guest"
	input.from.jid in input.to.sponsors
}

# Employees and business contacts (customers, suppliers) talk to each
# other; these chats are business letters (see retention.rego).
allow contains "business_contact" if {
	input.from.kind == "employee"
	input.to.kind == "external"
}

allow contains "business_contact" if {
	input.from.kind == "external"
	input.to.kind == "employee"
}

# Rooms (muc.join: to is empty, room is set): employees join any room of
# this server; who may join a members-only room is the room's own member
# list. Guests and business contacts join no room unless a rule in
# policy.dir opens one to them, e.g.
#   allow contains "project_room" if {
#       input.action == "muc.join"
#       input.room == "acme-project@conference.example.com"
#   }
# An invitation (muc.invite) is decided like any contact between the
# inviter (from) and the invitee (to): a mediated one that the room relays
# (XEP-0045 §7.8.2) and a direct one from client to client (XEP-0249,
# asked after the "message" decision of the message that carries it).
allow contains "room" if {
	input.action == "muc.join"
	input.from.kind == "employee"
}

# Nobody reaches a disabled account.
deny contains {
	"reason": "account_disabled",
	"message": "This account is disabled.",
} if input.to.disabled

# Why not, when no rule allows: the most specific explanation first.
refusal := {
	"reason": "room_not_allowed",
	"message": "Guests and business contacts can only join the rooms the policy opens to them.",
} if {
	input.action == "muc.join"
} else := {
	"reason": "guest_not_sponsored",
	"message": "Guests can only chat with the employees who sponsor them.",
} if {
	"guest" in {input.from.kind, input.to.kind}
} else := {
	"reason": "external_not_allowed",
	"message": "Business contacts can only chat with employees.",
} if {
	"external" in {input.from.kind, input.to.kind}
} else := {
	"reason": "not_allowed",
	"message": "The policy of this server does not allow this contact.",
}

# The first refusal (in the order of its reason code) beats every allow;
# otherwise the first allow code; otherwise the explanation.
decision := {
	"allow": false,
	"reason": d.reason,
	"message": d.message,
	"obligations": {},
} if {
	d := min(deny)
} else := {
	"allow": true,
	"reason": r,
} if {
	r := min(allow)
} else := {
	"allow": false,
	"reason": refusal.reason,
	"message": refusal.message,
	"obligations": {},
}

# What is kept of a message, and for how long?
#
# Input (version 1):
#   {"from": party, "to": party,   # see lib.rego
#    "room": "",            # bare JID of the room of a groupchat message
#    "stanza_type": "chat",
#    "encrypted": false,    # end-to-end encrypted
#    "legal_hold": false}   # a legal hold covers a party or the room
#
# Output (data.kontor.retention.decision):
#   {"allow": true, "reason": "code", "archive": bool, "legal_hold": bool,
#    "rules": [{"class": "internal", "days": 90},
#              {"class": "business_letter", "years_after_year_end": 6}, ...],
#    "obligations": {}}
#
# Every applicable rule is listed; Kontor computes each rule's deletion
# date (calendar arithmetic in the configured time zone, Europe/Berlin by
# default) and the longest one wins. A rule has a "class" and one of
# "days", "months", "years" (counted from the message) or
# "years_after_year_end" (counted from the end of the message's year, as
# HGB § 257 (5) and AO § 147 (4) count).
#
# Extension point: rules contains {"class": ..., <period>} if { ... }
package kontor.retention

import data.kontor.lib

# A groupchat message has a room, not a second person.
parties contains input.from

parties contains input.to if input.room == ""

# Internal chat: 90 days.
rules contains {"class": "internal", "days": 90}

# Business letters (HGB § 257 (1) no. 2, 3, (4)): chats with customers and
# suppliers (an external party) or of the configured groups, 6 years after
# the end of the year.
rules contains {"class": "business_letter", "years_after_year_end": 6} if {
	some p in parties
	p.kind == "external"
}

rules contains {"class": "business_letter", "years_after_year_end": 6} if {
	some p in parties
	lib.in_groups(p, data.kontor.config.business_letter_groups)
}

# Accounting records (HGB § 257 (1) no. 4, (4); AO § 147): chats of the
# configured accounting groups, 8 years after the end of the year.
rules contains {"class": "accounting_record", "years_after_year_end": 8} if {
	some p in parties
	lib.in_groups(p, data.kontor.config.accounting_groups)
}

archived_types := {"", "normal", "chat", "groupchat"}

default archive := false

archive if input.stanza_type in archived_types

# A legal hold keeps everything, whatever else the policy says.
archive if input.legal_hold

legal_hold := input.legal_hold

decision := {
	"allow": true,
	"reason": reason,
	"archive": archive,
	"legal_hold": legal_hold,
	"rules": rules,
	"obligations": {},
}

reason := "legal_hold" if legal_hold

else := "archived" if archive

else := "not_archived"

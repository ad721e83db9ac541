# May end-to-end encrypted messages be sent here?
#
# Input (version 1): as for retention, without "encrypted" and "legal_hold":
#   {"from": party, "to": party, "room": "", "stanza_type": "chat"}
#
# Output (data.kontor.e2ee.decision):
#   {"allow": bool, "reason": "code", "message": "text for the user",
#    "obligations": {}}
#
# Where a retention duty applies, the company must be able to produce the
# message later, which it cannot if only the recipients can read it. The
# default policy therefore refuses end-to-end encryption (OMEMO, OpenPGP)
# for business letters and accounting records and allows it for
# everything else; the client is told why. Replace this file in policy.dir
# to decide otherwise.
package kontor.e2ee

import data.kontor.retention

readable_classes := {"business_letter", "accounting_record"}

duties contains r if {
	some r in retention.rules
	r.class in readable_classes
}

labels := {
	"business_letter": "a business letter",
	"accounting_record": "an accounting record",
}

label(class) := object.get(labels, class, sprintf("a record of class %s", [class]))

# The longest duty is named to the user (ties broken by class name).
ranked := sort([[rank(r), r.class, r] | some r in duties])

longest := ranked[count(ranked) - 1][2]

rank(r) := ((((object.get(r, "years_after_year_end", -1) + 1) * 366) + (object.get(r, "years", 0) * 365)) + (object.get(r, "months", 0) * 31)) + object.get(r, "days", 0)

period(r) := sprintf("%d years after the end of the year", [r.years_after_year_end]) if {
	r.years_after_year_end
} else := sprintf("%d years", [r.years]) if {
	r.years
} else := sprintf("%d months", [r.months]) if {
	r.months
} else := sprintf("%d days", [r.days]) if {
	r.days
} else := "its retention period"

decision := {
	"allow": false,
	"reason": "retention_requires_readable",
	"message": sprintf(
		"End-to-end encryption is not allowed in this chat: it is %s, which the company must keep readable for %s. Send the message without end-to-end encryption; the server archive encrypts it.",
		[label(longest.class), period(longest)],
	),
	"obligations": {"class": longest.class},
} if count(duties) > 0

decision := {
	"allow": true,
	"reason": "no_retention_duty",
	"message": "",
	"obligations": {},
} if count(duties) == 0

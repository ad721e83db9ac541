package kontor.guests_test

import data.kontor.contact
import data.kontor.lib

people := {"anna@example.com": object.union(lib.party("anna@example.com", "employee"), {"department": "Sales"})}

gus := object.union(lib.party("gus@example.com", "guest"), {"sponsors": ["anna@example.com"]})

sam := object.union(lib.party("sam@example.com", "employee"), {"department": "Sales"})

ben := object.union(lib.party("ben@example.com", "employee"), {"department": "Research"})

msg(from, to) := {"action": "message", "stanza_type": "chat", "from": from, "to": to, "room": ""}

test_guest_reaches_sponsors_department if {
	d := contact.decision with input as msg(gus, sam) with data.kontor.directory.people as people
	d.allow
	d.reason == "sponsor_department"
}

test_department_reaches_guest if {
	contact.decision.allow with input as msg(sam, gus) with data.kontor.directory.people as people
}

test_other_departments_stay_closed if {
	d := contact.decision with input as msg(gus, ben) with data.kontor.directory.people as people
	not d.allow
	d.reason == "guest_not_sponsored"
}

package kontor.contact_test

import data.kontor.contact
import data.kontor.lib

anna := object.union(lib.party("anna@example.com", "employee"), {"department": "Sales"})

ben := object.union(lib.party("ben@example.com", "employee"), {"department": "Research"})

gus := object.union(lib.party("gus@example.com", "guest"), {"sponsors": ["anna@example.com"]})

gil := lib.party("gil@example.com", "guest")

cora := lib.party("cora@customer.example", "external")

dora := object.union(lib.party("dora@example.com", "employee"), {"disabled": true})

# What the engine puts in for a local account the directory does not know.
newbie := object.union(lib.party("new@example.com", "employee"), {"known": false})

msg(from, to) := {"action": "message", "stanza_type": "chat", "from": from, "to": to, "room": ""}

decide(i) := d if {
	d := contact.decision with input as i
}

test_employees_talk_to_each_other if {
	d := decide(msg(anna, ben))
	d.allow
	d.reason == "internal"
}

test_local_accounts_without_directory_data_are_employees_by_default if {
	decide(msg(newbie, anna)).allow
}

test_guest_talks_to_sponsor_both_ways if {
	decide(msg(gus, anna)).allow
	decide(msg(anna, gus)).reason == "sponsor"
}

test_guest_cannot_talk_to_other_employees if {
	d := decide(msg(gus, ben))
	not d.allow
	d.reason == "guest_not_sponsored"
	d.message != ""
}

test_unsponsored_guest_reaches_nobody if {
	not decide(msg(gil, anna)).allow
	not decide(msg(anna, gil)).allow
}

test_guests_do_not_talk_to_each_other if {
	d := decide(msg(gus, gil))
	not d.allow
	d.reason == "guest_not_sponsored"
}

test_employees_and_business_contacts_talk if {
	decide(msg(anna, cora)).reason == "business_contact"
	decide(msg(cora, anna)).allow
}

test_guest_cannot_reach_externals if {
	d := decide(msg(gus, cora))
	not d.allow
	d.reason == "guest_not_sponsored"
}

test_externals_do_not_reach_each_other if {
	d := decide(msg(cora, lib.party("x@other.example", "external")))
	not d.allow
	d.reason == "external_not_allowed"
}

test_disabled_account_is_unreachable if {
	d := decide(msg(anna, dora))
	not d.allow
	d.reason == "account_disabled"
}

test_every_action_is_decided if {
	every action in ["roster.add", "subscribe", "subscribed", "presence", "iq", "muc.join", "muc.invite"] {
		decide(object.union(msg(anna, ben), {"action": action})).allow
	}
}

join(from, room) := {"action": "muc.join", "stanza_type": "", "from": from, "to": lib.party("", ""), "room": room}

test_employees_join_rooms if {
	d := decide(join(anna, "team@conference.example.com"))
	d.allow
	d.reason == "room"
	decide(join(newbie, "team@conference.example.com")).allow
}

test_guests_and_externals_join_no_room_by_default if {
	every p in [gus, gil, cora] {
		d := decide(join(p, "team@conference.example.com"))
		not d.allow
		d.reason == "room_not_allowed"
	}
}

test_invitation_is_a_contact_between_inviter_and_invitee if {
	decide(object.union(msg(anna, gus), {"action": "muc.invite", "room": "team@conference.example.com"})).allow
	not decide(object.union(msg(gil, ben), {"action": "muc.invite", "room": "team@conference.example.com"})).allow
}

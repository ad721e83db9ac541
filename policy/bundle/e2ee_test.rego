package kontor.e2ee_test

import data.kontor.e2ee
import data.kontor.lib

cfg := {"unknown_local_kind": "employee", "business_letter_groups": [], "accounting_groups": ["Accounting"]}

anna := lib.party("anna@example.com", "employee")

ben := lib.party("ben@example.com", "employee")

fritz := object.union(lib.party("fritz@example.com", "employee"), {"groups": ["Accounting"], "group_names": ["Accounting"]})

cora := lib.party("cora@customer.example", "external")

chat(from, to) := {"from": from, "to": to, "room": "", "stanza_type": "chat"}

decide(i) := d if {
	d := e2ee.decision with input as i with data.kontor.config as cfg
}

test_internal_chat_may_be_encrypted if {
	d := decide(chat(anna, ben))
	d.allow
	d.reason == "no_retention_duty"
}

test_business_letters_must_stay_readable if {
	d := decide(chat(anna, cora))
	not d.allow
	d.reason == "retention_requires_readable"
	contains(d.message, "business letter")
	contains(d.message, "6 years after the end of the year")
	d.obligations.class == "business_letter"
}

test_accounting_records_name_the_longest_duty if {
	d := decide(chat(fritz, cora))
	not d.allow
	contains(d.message, "accounting record")
	contains(d.message, "8 years")
}

test_custom_duty_in_days_is_explained if {
	d := decide(chat(anna, ben)) with data.kontor.retention.rules as {{"class": "accounting_record", "days": 30}}
	not d.allow
	contains(d.message, "30 days")
}

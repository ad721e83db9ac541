package kontor.retention_test

import data.kontor.lib
import data.kontor.retention

member(jid, groups) := object.union(lib.party(jid, "employee"), {"groups": groups, "group_names": groups})

anna := member("anna@example.com", ["Sales"])

ben := member("ben@example.com", ["Research"])

fritz := member("fritz@example.com", ["Accounting"])

pia := member("pia@example.com", ["Purchasing"])

cora := lib.party("cora@customer.example", "external")

nobody := {"jid": "", "local": false, "known": false, "kind": "", "department": "", "company": "", "groups": [], "group_names": [], "sponsors": [], "disabled": false}

cfg := {"unknown_local_kind": "employee", "business_letter_groups": ["Purchasing"], "accounting_groups": ["Accounting"]}

chat(from, to) := {"from": from, "to": to, "room": "", "stanza_type": "chat", "encrypted": false, "legal_hold": false}

decide(i) := d if {
	d := retention.decision with input as i with data.kontor.config as cfg
}

classes(d) := {r.class | some r in d.rules}

test_internal_chat_is_kept_90_days if {
	d := decide(chat(anna, ben))
	d.archive
	d.rules == {{"class": "internal", "days": 90}}
}

test_chat_with_external_is_a_business_letter if {
	{"class": "business_letter", "years_after_year_end": 6} in decide(chat(anna, cora)).rules
}

test_configured_group_makes_business_letters if {
	"business_letter" in classes(decide(chat(pia, ben)))
}

test_accounting_group_makes_accounting_records if {
	d := decide(chat(ben, fritz))
	{"class": "accounting_record", "years_after_year_end": 8} in d.rules
	"internal" in classes(d)
}

test_headlines_are_not_archived if {
	d := decide(object.union(chat(anna, ben), {"stanza_type": "headline"}))
	not d.archive
	d.reason == "not_archived"
}

test_legal_hold_keeps_everything if {
	d := decide(object.union(chat(anna, ben), {"stanza_type": "headline", "legal_hold": true}))
	d.archive
	d.legal_hold
	d.reason == "legal_hold"
}

test_encrypted_messages_are_archived_too if {
	decide(object.union(chat(anna, ben), {"encrypted": true})).archive
}

test_groupchat_has_no_second_party if {
	d := decide(object.union(chat(fritz, nobody), {"room": "team@rooms.example.com", "stanza_type": "groupchat"}))
	d.archive
	not "business_letter" in classes(d)
	"accounting_record" in classes(d)
}

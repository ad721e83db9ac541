package kontor.upload_test

import data.kontor.lib
import data.kontor.upload

member(jid, groups) := object.union(lib.party(jid, "employee"), {"groups": groups, "group_names": groups})

anna := member("anna@example.com", ["Sales"])

fritz := member("fritz@example.com", ["Accounting"])

gus := lib.party("gus@example.com", "guest")

cora := lib.party("cora@customer.example", "external")

cfg := {"unknown_local_kind": "employee", "business_letter_groups": ["Purchasing"], "accounting_groups": ["Accounting"]}

req(from, size, ct) := {"from": from, "size": size, "content_type": ct}

decide(i) := d if {
	d := upload.decision with input as i with data.kontor.config as cfg
}

test_employee_uploads_without_policy_limits if {
	d := decide(req(anna, 50000000, "video/mp4"))
	d.allow
	d.max_size == 0
	d.content_types == []
}

test_upload_is_kept_like_a_message if {
	d := decide(req(anna, 1000, "image/png"))
	d.rules == {{"class": "internal", "days": 90}}
}

test_accounting_upload_is_an_accounting_record if {
	d := decide(req(fritz, 1000, "application/pdf"))
	{"class": "accounting_record", "years_after_year_end": 8} in d.rules
}

test_guest_gets_limits if {
	d := decide(req(gus, 1000, "image/png"))
	d.allow
	d.max_size == 20971520
	d.content_types == ["application/pdf", "image/*"]
}

test_guest_too_large_is_denied if {
	d := decide(req(gus, 20971521, "image/png"))
	not d.allow
	d.reason == "too_large_for_you"
	contains(d.message, "20971520")
}

test_remote_user_is_denied if {
	d := decide(req(cora, 10, "text/plain"))
	not d.allow
	d.reason == "not_local"
}

test_disabled_account_is_denied if {
	d := decide(req(object.union(anna, {"disabled": true}), 10, "text/plain"))
	not d.allow
	d.reason == "account_disabled"
}

test_smallest_limit_and_common_types_win if {
	d := upload.decision with input as req(gus, 10, "image/png")
		with data.kontor.config as cfg
		with upload.limits as {{"max_size": 20971520}, {"max_size": 1000}, {"content_types": ["image/*", "application/pdf"]}, {"content_types": ["image/*"]}}
	d.max_size == 1000
	d.content_types == ["image/*"]
}

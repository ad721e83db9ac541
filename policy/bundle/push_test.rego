package kontor.push_test

import data.kontor.lib
import data.kontor.push

anna := lib.party("anna@example.com", "employee")

cora := lib.party("cora@customer.example", "external")

nobody := lib.party("", "")

req(user, service, service_local, sender, encrypted) := {
	"user": user, "service": service, "service_local": service_local,
	"sender": sender, "encrypted": encrypted,
}

test_any_app_server_gets_a_count if {
	d := push.decision with input as req(anna, "p2.siacs.eu", false, cora, false)
	d.allow
	not d.include_sender
	not d.include_body
}

test_enabling_is_allowed if {
	d := push.decision with input as req(anna, "p2.siacs.eu", false, nobody, false)
	d.allow
}

test_own_app_server_may_see_sender_and_body if {
	d := push.decision with input as req(anna, "push.example.com", true, cora, false)
	d.allow
	d.include_sender
	d.include_body
}

test_never_the_body_of_an_encrypted_message if {
	d := push.decision with input as req(anna, "push.example.com", true, cora, true)
	d.include_sender
	not d.include_body
}

test_remote_accounts_get_none if {
	d := push.decision with input as req(cora, "p2.siacs.eu", false, anna, false)
	not d.allow
	d.reason == "not_local"
}

test_disabled_accounts_get_none if {
	d := push.decision with input as req(object.union(anna, {"disabled": true}), "p2.siacs.eu", false, cora, false)
	not d.allow
	d.reason == "account_disabled"
}

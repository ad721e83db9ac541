package kontor.registration_test

import data.kontor.registration

people := {"anna@example.com": {"jid": "anna@example.com", "kind": "employee"}}

test_new_name_may_register if {
	d := registration.decision with input as {"domain": "example.com", "username": "gast", "jid": "gast@example.com", "remote": "192.0.2.7"}
		with data.kontor.directory.people as people
	d.allow
}

test_directory_names_are_reserved if {
	d := registration.decision with input as {"domain": "example.com", "username": "anna", "jid": "anna@example.com", "remote": ""}
		with data.kontor.directory.people as people
	not d.allow
	d.reason == "reserved_by_directory"
}

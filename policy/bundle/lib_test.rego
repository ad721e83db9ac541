package kontor.lib_test

import data.kontor.lib

people := {"alice@example.com": object.union(lib.party("alice@example.com", "employee"), {"groups": ["g1"], "group_names": ["Sales"]})}

test_person_comes_from_the_directory if {
	p := lib.person("alice@example.com") with data.kontor.directory.people as people
	p.kind == "employee"
}

test_unknown_person_is_undefined if {
	not lib.person("nobody@example.com") with data.kontor.directory.people as people
}

test_in_groups_by_id_and_by_name if {
	p := people["alice@example.com"]
	lib.in_groups(p, ["g1"])
	lib.in_groups(p, ["Sales"])
	not lib.in_groups(p, ["Accounting"])
}

test_party_builds_test_fixtures if {
	lib.party("cora@customer.example", "external").local == false
	lib.party("anna@example.com", "employee").local
}

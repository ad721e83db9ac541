# Guests may also chat with everyone in their sponsors' departments, not
# only with the sponsors themselves. An allow widens what the bundle allows.
package kontor.contact

allow contains "sponsor_department" if {
	input.from.kind == "guest"
	input.to.kind == "employee"
	some sponsor in input.from.sponsors
	data.kontor.directory.people[sponsor].department == input.to.department
}

allow contains "sponsor_department" if {
	input.from.kind == "employee"
	input.to.kind == "guest"
	some sponsor in input.to.sponsors
	data.kontor.directory.people[sponsor].department == input.from.department
}

# May a new account register in band (XEP-0077)?
#
# In-band registration is closed unless registration.open is set; when it
# is open, registered accounts are guests (see policy.unknown_local_kind).
#
# Input (version 1):
#   {"domain": "example.com", "username": "gast17",
#    "jid": "gast17@example.com", "remote": "192.0.2.7"}
#
# Output (data.kontor.registration.decision):
#   {"allow": bool, "reason": "code", "message": "text", "obligations": {}}
package kontor.registration

default decision := {
	"allow": true,
	"reason": "open_registration",
	"message": "",
	"obligations": {},
}

# Names of people in the directory are theirs, even before their first
# login.
decision := {
	"allow": false,
	"reason": "reserved_by_directory",
	"message": "This username belongs to someone in the company directory; choose another.",
	"obligations": {},
} if data.kontor.directory.people[input.jid]

# Helpers for Kontor policies.
#
# The engine keeps the directory (people, flattened groups, sponsors) as
# data, replaced whenever directory sync delivers a new snapshot:
#
#   data.kontor.directory.people[JID] = a party object (below, "local" aside)
#   data.kontor.directory.groups[ID]  = {"id", "name", "members": [JID, ...]}
#   data.kontor.config = {"unknown_local_kind", "business_letter_groups",
#                         "accounting_groups"}
#
# Callers send only JIDs; the engine puts each party's directory entry into
# the input, so policies read input.from.kind directly. A party object:
#
#   {"jid": "anna@example.com", "local": true, "known": true,
#    "kind": "employee" | "guest" | "external",
#    "department": "Sales", "company": "ACME",
#    "groups": [group id, ...], "group_names": ["Sales", ...],
#    "sponsors": [bare JID, ...], "disabled": false}
#
# Someone the directory does not know has "known": false, empty attributes
# and the kind data.kontor.config.unknown_local_kind (employee by default)
# for a local account, external for anyone else. A party that does not
# exist (the recipient of a groupchat message, which is the room) has
# "jid": "" and "kind": "".
package kontor.lib

# person(jid) is the directory entry of jid, for policies that look at
# third parties (a guest's sponsors, a group's members); undefined when the
# directory does not know jid.
person(jid) := data.kontor.directory.people[jid]

# in_groups(party, groups) is true when the party belongs to one of the
# groups, named by id or by name.
in_groups(party, groups) if {
	some g in groups
	g in party.groups
}

in_groups(party, groups) if {
	some g in groups
	g in party.group_names
}

# party(jid, kind) builds a party object, for tests.
party(jid, kind) := {
	"jid": jid, "local": kind != "external", "known": true, "kind": kind,
	"department": "", "company": "", "groups": [], "group_names": [],
	"sponsors": [], "disabled": false,
}

# May someone upload a file (XEP-0363 HTTP File Upload), within which
# limits, and how long is the file kept? (decision upload.request)
#
# Input (version 1):
#   {"from": party,                # the uploader, see lib.rego
#    "size": 123456,               # bytes
#    "content_type": "image/png"}  # lowercase type/subtype
#
# Output (data.kontor.upload.decision):
#   {"allow": bool, "reason": "code", "message": "text for the user",
#    "max_size": 0,                # bytes this uploader may send; 0: the
#                                  # upload module's max_file_size only
#    "content_types": [],          # allowed types ("image/*"); []: the
#                                  # module's content_types only
#    "rules": [{"class": "internal", "days": 90}, ...],
#    "obligations": {}}
#
# The limits narrow the module's options, never widen them. The rules are
# the file's retention, in the format of retention.rego: by default the
# rules a message of the uploader's would get (so a file shared by the
# accounting group is kept as long as its chats); the longest one wins and
# the file is deleted when it ends.
#
# Extension points for files in policy.dir:
#   deny contains {"reason": "code", "message": "text"} if { ... }
#   limits contains {"max_size": n} / {"content_types": [...]} if { ... }
#                                   (the smallest max_size wins; type lists
#                                    are intersected)
#   extra_rules contains {"class": ..., <period>} if { ... }
package kontor.upload

import data.kontor.lib
import data.kontor.retention

deny contains {
	"reason": "not_local",
	"message": "Only accounts of this server may upload files here.",
} if not input.from.local

deny contains {
	"reason": "account_disabled",
	"message": "This account is disabled.",
} if input.from.disabled

# Guests share pictures and PDFs of up to 20 MiB.
limits contains {"max_size": 20971520} if input.from.kind == "guest"

limits contains {"content_types": ["image/*", "application/pdf"]} if input.from.kind == "guest"

deny contains {
	"reason": "too_large_for_you",
	"message": sprintf("You may upload files of up to %d bytes.", [max_size]),
} if {
	max_size > 0
	input.size > max_size
}

sizes := {l.max_size | some l in limits; l.max_size}

default max_size := 0

max_size := min(sizes) if count(sizes) > 0

type_lists := [{t | some t in l.content_types} | some l in limits; l.content_types]

default content_types := []

content_types := sort(intersection({s | some s in type_lists})) if count(type_lists) > 0

# Retention: what a message of the uploader's would get, with nobody on
# the other side.
as_message := {
	"from": input.from, "to": lib.party("", ""), "room": "",
	"stanza_type": "chat", "encrypted": false, "legal_hold": false,
}

message_rules := r if {
	m := as_message
	r := retention.rules with input as m
}

rules := message_rules | extra_rules

# Nothing extra by default.
extra_rules contains r if {
	some r in set()
}

decision := {
	"allow": false,
	"reason": d.reason,
	"message": d.message,
	"max_size": 0,
	"content_types": [],
	"rules": [],
	"obligations": {},
} if {
	d := min(deny)
} else := {
	"allow": true,
	"reason": "upload",
	"max_size": max_size,
	"content_types": content_types,
	"rules": rules,
	"obligations": {},
}

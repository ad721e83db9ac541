# May an operator run an action on someone's data, and who must approve it?
#
# Input (version 1; also the actions "archive.import" and
# "erasure.reinstate", see requirements):
#   {"operator": {"id": "erika", "roles": ["dpo"]},
#    "action": "archive.view" | "archive.export" | "archive.erase" |
#              "report.view" | "legal_hold.set" | "legal_hold.release" |
#              "dsr.record" |
#              "admin.policy_reload" | "admin.ldap_sync" | "operator.manage" |
#              "backup.create" | "backup.restore",
#    "subject": "bob@example.com",      # whose data; "" for reports
#    "case_number": "C-2025-017", "purpose": "…",
#    "subject_legal_hold": false,
#    "now": 1767225600,                 # Unix seconds
#    "approvals": [{"by": "max", "roles": ["works_council"],
#                   "case_number": "C-2025-017", "at": 1767200000}]}
#
# Output (data.kontor.access.decision):
#   {"allow": bool, "reason": "code", "message": "text",
#    "approvals_needed": n, "roles_needed": ["works_council", ...],
#    "obligations": {"case_number": "..."}}
#
# Dual control: any look into someone else's archive needs a case number,
# a purpose and two approvers other than the requester, one of them the
# data protection officer and one a member of the works council, each
# approval given for this case within the last 72 hours.
package kontor.access

approval_validity_seconds := 72 * 3600

# Clocks of the machines that record approvals may be a little ahead.
clock_skew_seconds := 300

# What each action needs: the requester's roles (any of), whether a case
# number and purpose are needed, how many approvers, the roles the
# approvals must cover together (all of), and the roles an approver must
# have (any of; empty: anyone).
requirements := {
	"archive.view": {
		"roles": {"dpo", "admin"}, "case": true, "approvers": 2,
		"approver_roles": {"dpo", "works_council"}, "eligible": {"dpo", "works_council"},
	},
	"archive.export": {
		"roles": {"dpo", "admin"}, "case": true, "approvers": 2,
		"approver_roles": {"dpo", "works_council"}, "eligible": {"dpo", "works_council"},
	},
	"archive.erase": {
		"roles": {"dpo", "admin"}, "case": true, "approvers": 1,
		"approver_roles": set(), "eligible": {"dpo", "admin"},
	},
	"legal_hold.set": {
		"roles": {"dpo", "legal", "admin"}, "case": true, "approvers": 0,
		"approver_roles": set(), "eligible": set(),
	},
	"legal_hold.release": {
		"roles": {"dpo", "legal"}, "case": true, "approvers": 1,
		"approver_roles": set(), "eligible": {"dpo", "legal"},
	},
	"dsr.record": {
		"roles": {"dpo", "admin"}, "case": false, "approvers": 0,
		"approver_roles": set(), "eligible": set(),
	},
	# Importing another server's data (XEP-0227: accounts, rosters,
	# archives) when moving to Kontor: the admin runs the migration, the
	# DPO may (the import is audited with its counts).
	"archive.import": {
		"roles": {"admin", "dpo"}, "case": false, "approvers": 0,
		"approver_roles": set(), "eligible": set(),
	},
	# Letting directory sync recreate a person who was erased: the data
	# protection officer's decision alone.
	"erasure.reinstate": {
		"roles": {"dpo"}, "case": false, "approvers": 0,
		"approver_roles": set(), "eligible": set(),
	},
	"report.view": {
		"roles": {"dpo", "auditor", "admin"}, "case": false, "approvers": 0,
		"approver_roles": set(), "eligible": set(),
	},
	# Calls of the admin API and the management of operators: admins only.
	"admin.policy_reload": {
		"roles": {"admin"}, "case": false, "approvers": 0,
		"approver_roles": set(), "eligible": set(),
	},
	"admin.ldap_sync": {
		"roles": {"admin"}, "case": false, "approvers": 0,
		"approver_roles": set(), "eligible": set(),
	},
	"operator.manage": {
		"roles": {"admin"}, "case": false, "approvers": 0,
		"approver_roles": set(), "eligible": set(),
	},
	# Backups: admins. Restoring over a running installation's data rolls
	# it back (erasures are replayed from the erasure log): it needs a
	# case and a second admin or the DPO.
	"backup.create": {
		"roles": {"admin"}, "case": false, "approvers": 0,
		"approver_roles": set(), "eligible": set(),
	},
	"backup.restore": {
		"roles": {"admin"}, "case": true, "approvers": 1,
		"approver_roles": set(), "eligible": {"admin", "dpo"},
	},
}

req := requirements[input.action]

own_data if {
	input.action in {"archive.view", "archive.export"}
	input.subject != ""
	input.subject == input.operator.id
}

has_role if {
	some r in input.operator.roles
	r in req.roles
}

case_complete if not req.case

case_complete if {
	req.case
	trim_space(input.case_number) != ""
	trim_space(input.purpose) != ""
}

eligible(a) if count(req.eligible) == 0

eligible(a) if {
	some r in a.roles
	r in req.eligible
}

valid_approvals contains a if {
	some a in input.approvals
	a.by != input.operator.id
	a.case_number == input.case_number
	a.at <= input.now + clock_skew_seconds
	input.now - a.at <= approval_validity_seconds
	eligible(a)
}

approvers := {a.by | some a in valid_approvals}

covered := {r | some a in valid_approvals; some r in a.roles}

roles_needed := sort(req.approver_roles - covered)

approvals_needed := max([0, req.approvers - count(approvers)])

result(allow, reason, message) := {
	"allow": allow,
	"reason": reason,
	"message": message,
	"approvals_needed": approvals_needed,
	"roles_needed": roles_needed,
	"obligations": {"case_number": input.case_number},
}

decision := {
	"allow": false,
	"reason": "unknown_action",
	"message": sprintf("%q is not an action this policy knows.", [input.action]),
	"approvals_needed": 0,
	"roles_needed": [],
	"obligations": {},
} if {
	not requirements[input.action]
} else := result(true, "own_data", "") if {
	own_data
} else := result(false, "role_missing", sprintf("%s needs one of the roles %s.", [input.action, concat(", ", sort(req.roles))])) if {
	not has_role
} else := result(false, "case_required", "Give a case number and a purpose.") if {
	not case_complete
} else := result(false, "approval_required", sprintf("Dual control: %d more approval(s) needed for case %s%s.", [approvals_needed, input.case_number, needed_roles_text])) if {
	not approved
} else := result(true, "approved", "") if {
	req.approvers > 0
} else := result(true, "allowed", "")

approved if {
	approvals_needed == 0
	count(roles_needed) == 0
}

needed_roles_text := sprintf(", with the roles %s", [concat(", ", roles_needed)]) if count(roles_needed) > 0

else := ""

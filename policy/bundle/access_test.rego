package kontor.access_test

import data.kontor.access

now := 1767225600

base := {
	"operator": {"id": "erika", "roles": ["dpo"]},
	"action": "archive.export",
	"subject": "bob@example.com",
	"case_number": "C-17",
	"purpose": "court order 4 O 123/25",
	"subject_legal_hold": false,
	"now": now,
	"approvals": [],
}

approval(by, roles, at) := {"by": by, "roles": roles, "case_number": "C-17", "at": at}

with_(patch) := object.union(base, patch)

test_someone_elses_archive_needs_two_approvers if {
	d := access.decision with input as base
	not d.allow
	d.reason == "approval_required"
	d.approvals_needed == 2
	d.roles_needed == ["dpo", "works_council"]
}

test_dpo_and_works_council_approve if {
	d := access.decision with input as with_({"approvals": [
		approval("dieter", ["dpo"], now - 3600),
		approval("wanda", ["works_council"], now - 60),
	]})
	d.allow
	d.reason == "approved"
	d.obligations.case_number == "C-17"
}

test_requester_cannot_approve_own_request if {
	d := access.decision with input as with_({"approvals": [
		approval("erika", ["dpo"], now),
		approval("wanda", ["works_council"], now),
	]})
	not d.allow
	d.approvals_needed == 1
	d.roles_needed == ["dpo"]
}

test_one_person_with_both_roles_is_not_two_approvers if {
	d := access.decision with input as with_({"approvals": [approval("wanda", ["dpo", "works_council"], now)]})
	not d.allow
	d.approvals_needed == 1
	d.roles_needed == []
}

test_approvals_expire_after_72_hours if {
	d := access.decision with input as with_({"approvals": [
		approval("dieter", ["dpo"], now - (73 * 3600)),
		approval("wanda", ["works_council"], now),
	]})
	not d.allow
	d.roles_needed == ["dpo"]
}

test_approvals_from_the_future_do_not_count if {
	d := access.decision with input as with_({"approvals": [
		approval("dieter", ["dpo"], now + 3600),
		approval("wanda", ["works_council"], now),
	]})
	not d.allow
}

test_approval_for_another_case_does_not_count if {
	other := object.union(approval("dieter", ["dpo"], now), {"case_number": "C-18"})
	d := access.decision with input as with_({"approvals": [other, approval("wanda", ["works_council"], now)]})
	not d.allow
}

test_approver_roles_must_match if {
	d := access.decision with input as with_({"approvals": [
		approval("max", ["admin"], now),
		approval("wanda", ["works_council"], now),
	]})
	not d.allow
}

test_case_number_and_purpose_are_required if {
	d := access.decision with input as with_({"purpose": "  "})
	not d.allow
	d.reason == "case_required"
}

test_role_is_required if {
	d := access.decision with input as with_({"operator": {"id": "joe", "roles": ["helpdesk"]}})
	not d.allow
	d.reason == "role_missing"
}

test_own_archive_needs_no_approval if {
	d := access.decision with input as with_({"subject": "erika", "operator": {"id": "erika", "roles": []}})
	d.allow
	d.reason == "own_data"
}

# A legal hold does not stop an erasure: the erasure keeps what the hold
# covers (restricted, named by its case) and erases the rest (GDPR Art. 17(3)(e)
# with Art. 18); archive/gdpr enforces it.
test_erasure_under_legal_hold_keeps_held_data if {
	d := access.decision with input as with_({
		"action": "archive.erase", "subject_legal_hold": true,
		"approvals": [approval("max", ["admin"], now)],
	})
	d.allow
}

test_erasure_with_one_approval if {
	d := access.decision with input as with_({"action": "archive.erase", "approvals": [approval("max", ["admin"], now)]})
	d.allow
}

test_reports_need_a_role_only if {
	d := access.decision with input as with_({"action": "report.view", "operator": {"id": "audrey", "roles": ["auditor"]}, "case_number": "", "purpose": ""})
	d.allow
	d.reason == "allowed"
}

test_legal_hold_set_without_approval if {
	d := access.decision with input as with_({"action": "legal_hold.set", "operator": {"id": "lea", "roles": ["legal"]}})
	d.allow
}

test_legal_hold_release_needs_an_approver if {
	d := access.decision with input as with_({"action": "legal_hold.release", "operator": {"id": "lea", "roles": ["legal"]}})
	not d.allow
	d.approvals_needed == 1
}

test_unknown_action_is_refused if {
	d := access.decision with input as with_({"action": "archive.peek"})
	not d.allow
	d.reason == "unknown_action"
}

test_admin_api_needs_the_admin_role if {
	d := access.decision with input as with_({"action": "admin.policy_reload", "subject": "", "case_number": "", "purpose": "", "operator": {"id": "erika", "roles": ["dpo"]}})
	not d.allow
	d.reason == "role_missing"
}

test_admin_may_reload_policy_sync_and_manage_operators if {
	every action in ["admin.policy_reload", "admin.ldap_sync", "operator.manage"] {
		d := access.decision with input as with_({"action": action, "subject": "", "case_number": "", "purpose": "", "operator": {"id": "root-admin", "roles": ["admin"]}})
		d.allow
		d.reason == "allowed"
	}
}

test_backups_are_for_admins if {
	d := access.decision with input as with_({"action": "backup.create", "subject": "", "case_number": "", "purpose": "", "operator": {"id": "root-admin", "roles": ["admin"]}})
	d.allow
	e := access.decision with input as with_({"action": "backup.create", "subject": "", "case_number": "", "purpose": "", "operator": {"id": "erika", "roles": ["dpo"]}})
	not e.allow
	e.reason == "role_missing"
}

test_restore_needs_a_case_and_a_second_admin_or_the_dpo if {
	restore := {"action": "backup.restore", "subject": "", "case_number": "OPS-1", "purpose": "disk failure", "operator": {"id": "root-admin", "roles": ["admin"]}, "approvals": []}
	d := access.decision with input as with_(restore)
	not d.allow
	d.reason == "approval_required"
	n := access.decision with input as with_(object.union(restore, {"case_number": ""}))
	n.reason == "case_required"
	a := access.decision with input as with_(object.union(restore, {"approvals": [{"by": "erika", "roles": ["dpo"], "case_number": "OPS-1", "at": 1767225000}]}))
	a.allow
	self := access.decision with input as with_(object.union(restore, {"approvals": [{"by": "root-admin", "roles": ["admin"], "case_number": "OPS-1", "at": 1767225000}]}))
	not self.allow
}

test_recording_a_data_subject_request_needs_the_dpo if {
	d := access.decision with input as with_({"action": "dsr.record", "operator": {"id": "erika", "roles": ["dpo"]}, "case_number": "", "purpose": ""})
	d.allow
	e := access.decision with input as with_({"action": "dsr.record", "operator": {"id": "audrey", "roles": ["auditor"]}, "case_number": "", "purpose": ""})
	not e.allow
}

test_import_is_for_admins_and_the_dpo if {
	every r in ["admin", "dpo"] {
		d := access.decision with input as with_({"action": "archive.import", "subject": "", "operator": {"id": "max", "roles": [r]}, "case_number": "", "purpose": ""})
		d.allow
		d.reason == "allowed"
	}
	every r in ["auditor", "legal", "works_council"] {
		e := access.decision with input as with_({"action": "archive.import", "subject": "", "operator": {"id": "max", "roles": [r]}})
		not e.allow
		e.reason == "role_missing"
	}
}

test_reinstating_an_erased_person_is_the_dpos if {
	d := access.decision with input as with_({"action": "erasure.reinstate", "operator": {"id": "erika", "roles": ["dpo"]}, "case_number": "", "purpose": ""})
	d.allow
	every r in ["admin", "auditor", "legal", "works_council"] {
		e := access.decision with input as with_({"action": "erasure.reinstate", "operator": {"id": "max", "roles": [r]}})
		not e.allow
		e.reason == "role_missing"
	}
}

package reports

// The audit actions the reports read. Everything the access, data subject
// request, legal hold, purge and sync figures show comes from audit entries
// with these actions (and the archive's own tables): a tool that does one of
// these things must append an entry with exactly this action, and the
// details named here, or the reports will not see it.
const (
	// ActionRequest: a data subject request was received. Subject: the
	// data subject's bare JID; Details "request" (its id, e.g. a case
	// number) and "type" (access, portability, erasure, rectification,
	// restriction, objection).
	ActionRequest = "gdpr.request"
	// ActionRequestDone: a request was completed by other means than an
	// export or erasure (a rectification, an objection, a refusal with
	// reasons). Details "request".
	ActionRequestDone = "gdpr.request.done"
	// ActionExport: someone's data was exported (Art. 15/20). Details
	// "dsr" when it answers a data subject request (the "request" detail
	// is a dual-control request); "messages" counts what it held.
	ActionExport = "gdpr.export"
	// ActionErase: someone's data was erased (Art. 17). Details "dsr"
	// when it answers a data subject request.
	ActionErase = "gdpr.erase"
	// ActionHoldSet and ActionHoldRelease place and release a legal hold on
	// Subject; Reason or Details "case" name the case.
	ActionHoldSet     = "hold.add" // written by archive/gdpr
	ActionHoldRelease = "hold.release"
	// ActionApproval: an operator approved another operator's access
	// request (dual control). Details "request" and "action".
	ActionApproval = "access.request.approve" // written by cmd/kontor (kontor request approve)
	// ActionAccessDecision: the policy engine decided an operator's access
	// (written by policy.Engine.Access).
	ActionAccessDecision = "policy.access"
	// ActionPolicyLoad: a policy was loaded or reloaded (written by the
	// policy engine): a policy change.
	ActionPolicyLoad = "policy.load"
	// ActionPolicyDeny: a policy decision denied something (written by the
	// policy engine; details "decision" name the decision point).
	ActionPolicyDeny = "policy.deny"
	// ActionSync: one directory sync run (written by ldapsync; details
	// "created", "updated", "disabled", "enabled", "retired", "deleted",
	// "erased_skipped", "errors", "mode").
	ActionSync = "ldap.sync"
	// ActionPurge: one retention purge run that did something; details
	// "messages", "keys", "held_owners", "hold_errors".
	ActionPurge = "archive.purge"
)

// Actions lists every audit action the reports read, for the tools that
// write them and for tests that check the two sides agree.
var Actions = []string{
	ActionRequest, ActionRequestDone, ActionExport, ActionErase,
	ActionHoldSet, ActionHoldRelease, ActionApproval, ActionAccessDecision,
	ActionPolicyLoad, ActionPolicyDeny, ActionSync, ActionPurge,
}

// accessActions are the actions the access and audit report lists.
var accessActions = []string{
	ActionExport, ActionErase, ActionHoldSet, ActionHoldRelease,
	ActionApproval, ActionAccessDecision, ActionPolicyLoad, ActionRequest, ActionRequestDone,
}

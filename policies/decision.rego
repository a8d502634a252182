# The decision: entry point of the policy. The gateway evaluates
# data.govgw.decision.plan for every call; it is always defined and denies
# unless a concept package allows.
#
# Convention in all packages: rules of another package are referenced by full
# path (data.govgw.share.lookup), functions through imports (plans.deny).
# Through an import alias regorus evaluates the whole imported package, e.g.
# scans every grant to decide an unconditional lookup: 1.5x slower (measured).
package govgw.decision

import rego.v1

import data.govgw.plans

default plan := {"allow": false, "reason": "POLICY_DENIED", "message": "no policy rule decided this request"}

actions := {"lookup", "verify.identity", "verify.attributes", "catalog.read", "keys.read"} | data.govgw.admin.actions | data.govgw.access.actions | data.govgw.emergency.actions | data.govgw.subjects.actions | {"subject.disclose"} | data.govgw.conflicts.actions | data.govgw.opening.actions

# Actions about the records of one dataset; the others read metadata.
dataset_actions := {"lookup", "verify.identity", "verify.attributes"}

plan := plans.deny("CALLER_KIND_UNKNOWN", "the caller's kind is not agency, counter or public") if {
	not data.govgw.callers.known
}

else := plans.deny("ACTION_UNKNOWN", "the action is not one the policy knows") if {
	not input.action in actions
}

else := data.govgw.admin.no_data_access if {
	data.govgw.callers.admin
	input.action in dataset_actions
}

else := plans.deny("UNKNOWN_DATASET", "the dataset is not in the catalog") if {
	input.action in dataset_actions
	not data.govgw.datasets.known
}

# A registered purpose serves only the caller kinds and datasets it lists: checked
# once the route would allow, so a refusal for another reason keeps its reason.
else := plans.deny("PURPOSE_NOT_SERVED", "the purpose is not registered for this caller kind or dataset") if {
	input.action in dataset_actions
	routed.allow
	data.govgw.purposes.not_served
}

else := routed

routed := data.govgw.share.lookup if {
	input.action == "lookup"
	data.govgw.callers.sharing
}

routed := data.govgw.open.lookup if {
	input.action == "lookup"
	data.govgw.callers.public
}

routed := data.govgw.verification.identity if input.action == "verify.identity"

routed := data.govgw.verification.attributes if input.action == "verify.attributes"

routed := data.govgw.admin.decision if input.action in data.govgw.admin.actions

routed := data.govgw.access.decision if input.action in data.govgw.access.actions

routed := data.govgw.emergency.decision if input.action in data.govgw.emergency.actions

routed := data.govgw.subjects.decision if input.action in data.govgw.subjects.actions

routed := data.govgw.subject_access.disclosure if input.action == "subject.disclose"

routed := data.govgw.conflicts.decision if input.action in data.govgw.conflicts.actions

# Catalog and public keys are metadata: every known caller may read them.
routed := plans.allow({}) if input.action in {"catalog.read", "keys.read"}

routed := data.govgw.opening.decision if input.action in data.govgw.opening.actions

# Data-subject rights (R8, R9): who may carry a data subject's own calls, and
# who answers them. The subject proves who they are with a subject token (the
# gateway checks it); the caller carrying it is the citizen's app (public) or
# a service counter helping the citizen in person. Agencies answer: the gateway
# checks that the caller is bound to the dataset's provider id, which needs
# the stored request. Administrators get no subject's data.
package govgw.subjects

import rego.v1

import data.govgw.plans

# The subject's own calls. subject.records releases the subject's own raw values to
# the subject alone (the gateway checks the token and its freshness): on the same two
# channels, never to an agency, which reads a subject's data on its own grants only.
own_actions := {"subject.usage", "subject.correct", "subject.withdraw", "subject.read", "subject.records"}

actions := own_actions | {"subject.review"}

kind := input.caller.kind

# Reached only for the actions above (see govgw.decision).
decision := plans.allow({}) if {
	input.action in own_actions
	kind in {"public", "counter"}
}

else := plans.deny("SUBJECT_CHANNEL_REQUIRED", "a data subject's calls are carried by the citizen's app (public caller) or a service counter") if {
	input.action in own_actions
}

else := plans.allow({}) if {
	kind == "agency"
}

else := plans.deny("PROVIDER_REQUIRED", "only the providing agency answers corrections and reviews withdrawals")

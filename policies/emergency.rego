# Emergency mode (R11; Aba 2024 art. 21, Aba 2021 art. 32): who may declare,
# end and seal an emergency and read its sealing list (administrators), and
# who may read emergencies (administrators, and agencies: the gateway shows an
# agency only those that designate it). The wider access itself is decided in
# govgw.grants: an emergency's grant works only while the emergency is active
# in input.emergencies, names the caller and scopes the dataset.
package govgw.emergency

import rego.v1

import data.govgw.plans

actions := {"emergency.declare", "emergency.end", "emergency.read", "emergency.sealing", "emergency.seal"}

# Reached only for the actions above (see govgw.decision).
decision := plans.allow({}) if {
	data.govgw.callers.admin
}

else := plans.allow({}) if {
	input.action == "emergency.read"
	input.caller.kind == "agency"
}

else := plans.deny("AGENCY_OR_ADMIN_REQUIRED", "emergencies are read by administrators and the agencies they designate") if {
	input.action == "emergency.read"
}

else := plans.deny("ADMIN_ROLE_REQUIRED", "emergencies are declared, ended and sealed by an administrator, who also reads their sealing lists")

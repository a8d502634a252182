# Verification and comparison (核验、比对): yes/no answers, available even on
# data that cannot be shared or looked up (R4). Verification plans release no
# field, only predicates, and always oblige a receipt.
package govgw.verification

import rego.v1

import data.govgw.plans

ds := data.govgw.datasets.dataset

# Identity verification answers NO_MATCH for a subject not in the pool, so it
# never reveals existence, whoever asks.
identity := plans.deny("VERIFICATION_NOT_ALLOWED", "identity verification is available to agencies and service counters only") if {
	data.govgw.callers.public
}

else := plans.deny("PREDICATE_NOT_AVAILABLE", sprintf("dataset %s does not answer identity_match", [input.dataset])) if {
	not "identity_match" in ds.predicates
}

else := plans.allow({
	"predicates": ["identity_match"],
	"obligations": {"receipt": true, "reveal_existence": false},
}) if {
	data.govgw.callers.sharing
}

attribute_predicates := sort([p | some p in ds.predicates; p != "identity_match"])

# The public may ask only about data it could read anyway (open unconditional).
public_may_verify if ds.open_class == "unconditional"

# Verifying attributes is on the open route for the public: a suspended opening stops it too.
attributes := p if {
	data.govgw.callers.public
	p := data.govgw.open.suspended_plan
}

else := plans.deny("VERIFICATION_NOT_ALLOWED", sprintf("dataset %s is not open: the public cannot verify attributes on it", [input.dataset])) if {
	data.govgw.callers.public
	not public_may_verify
}

else := plans.deny("PREDICATE_NOT_AVAILABLE", sprintf("dataset %s answers no attribute predicate", [input.dataset])) if {
	count(attribute_predicates) == 0
}

else := plans.deny("CALLER_REGION_INVALID", "a counter needs a valid six-digit region code to verify attributes on regional data") if {
	data.govgw.regions.scoped
	not data.govgw.regions.region_valid
}

# A counter's attribute checks follow its region (govgw.regions.bounds): a subject
# outside it answers exactly as an absent one.
else := plans.allow({
	"predicates": attribute_predicates,
	"constraints": data.govgw.regions.constraints,
	"obligations": {"receipt": true, "reveal_existence": data.govgw.callers.sharing},
})

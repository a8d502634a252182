# Sharing (共享) to agencies and service counters, by the dataset's share
# class (R3): unconditional goes directly, conditional needs a grant (R5),
# none is refused with the catalog's reason.
package govgw.share

import rego.v1

import data.govgw.datasets
import data.govgw.grants
import data.govgw.plans

ds := data.govgw.datasets.dataset

released := datasets.released(ds, "share")

# Agencies and counters may learn that a subject is absent: they work on the
# subject's own request and need a definite answer.
obligations := {"reveal_existence": true}

lookup := plans.deny("CALLER_REGION_INVALID", "a counter needs a valid six-digit region code to read regional data") if {
	data.govgw.regions.scoped
	not data.govgw.regions.region_valid
}

else := plans.allow({
	"fields": released,
	"constraints": data.govgw.regions.constraints,
	"obligations": obligations,
}) if {
	ds.share_class == "unconditional"
}

else := granted if ds.share_class == "conditional"

else := plans.deny("DATASET_NOT_SHARED", sprintf("dataset %s is not shared (不予共享): %s", [input.dataset, object.get(ds, "class_reason", "")])) if {
	ds.share_class == "none"
}

granted := plans.allow(object.union(data.govgw.grants.plan_terms, {
	"fields": grants.fields(released),
	"constraints": data.govgw.regions.constraints,
	"obligations": object.union(obligations, data.govgw.grants.obligation_terms),
})) if data.govgw.grants.grant

else := data.govgw.grants.denial

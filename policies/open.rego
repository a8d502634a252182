# Opening (开放) to the public, by the dataset's open class (R6):
# unconditional without application, conditional by grant, none refused.
package govgw.open

import rego.v1

import data.govgw.datasets
import data.govgw.grants
import data.govgw.plans

ds := data.govgw.datasets.dataset

released := datasets.released(ds, "open")

# The public must not learn who is in the pool: absent and refused look alike.
obligations := {"reveal_existence": false}

# The dataset's opening suspended or withdrawn on a security risk (撤回, R9; Aba
# 2024 art. 33), from data.suspensions. It is about the dataset, not a person, so
# the public is told. Sharing (govgw.share) does not look here.
suspension := data.suspensions[input.dataset]

suspended_plan := plans.deny("OPENING_SUSPENDED", sprintf("the opening of dataset %s is suspended (撤回) pending its provider's review", [input.dataset])) if {
	suspension.status == "suspended"
}

else := plans.deny("OPENING_WITHDRAWN", sprintf("the opening of dataset %s is withdrawn (撤回) until its provider reopens it", [input.dataset])) if {
	suspension.status == "withdrawn"
}

lookup := p if {
	p := suspended_plan
}

else := plans.allow({"fields": released, "obligations": obligations}) if {
	ds.open_class == "unconditional"
}

else := granted if ds.open_class == "conditional"

else := plans.deny("DATASET_NOT_OPEN", sprintf("dataset %s is not open to the public (不予开放): %s", [input.dataset, object.get(ds, "class_reason", "")])) if {
	ds.open_class == "none"
}

granted := plans.allow(object.union(data.govgw.grants.plan_terms, {
	"fields": grants.fields(released),
	"obligations": obligations,
})) if data.govgw.grants.grant

else := data.govgw.grants.denial

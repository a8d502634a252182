# The dataset a request names, looked up in the catalog (data.catalog).
package govgw.datasets

import rego.v1

dataset := data.catalog.datasets[input.dataset]

known if dataset

# A treatment as the plan carries it: operator plus (possibly empty) params.
treatment(t) := {"operator": t.operator, "params": object.get(t, "params", {})}

# released(ds, side) is what may leave under the "share" or "open" treatment:
# never a secret field, never one whose treatment redacts it (deny by default:
# a field left out of the plan never leaves), never one without a treatment.
released(ds, side) := {f.name: treatment(f[side]) |
	some f in ds.fields
	f.sensitivity != "secret"
	f[side].operator != "redact"
}

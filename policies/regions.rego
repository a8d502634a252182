# Row constraints by region: a service counter serves its own area (R5:
# purpose limitation), so on regional datasets it only sees records whose
# region_code starts with its own code, minus the trailing "00" pairs
# (prefecture 513200 sees 5132xx, county 513221 sees 513221).
package govgw.regions

import rego.v1

# A region code is six digits (GB/T 2260); anything else cannot scope rows.
valid(code) if regex.match(`^[1-9][0-9]{5}$`, code)

prefix(code) := substring(code, 0, 2) if endswith(code, "0000")

else := substring(code, 0, 4) if endswith(code, "00")

else := code

# Which actions the caller's region bounds. Identity verification stays
# national: a counter checks whoever stands in front of it, and NO_MATCH
# already says nothing about who is in the pool. Attribute predicates
# (resident_in, age_at_least, ...) and lookups read a record's content, so
# they follow the row constraint.
bounds := {
	"lookup": true,
	"verify.attributes": true,
	"verify.identity": false,
}

bounded if bounds[input.action]

scoped if {
	input.caller.kind == "counter"
	data.govgw.datasets.dataset.regional == true
	bounded
}

# Only meaningful when `scoped`: a counter without a valid region sees nothing.
region_valid if valid(input.caller.region)

constraints := {"region_prefix": prefix(input.caller.region)} if {
	scoped
	region_valid
}

else := {}

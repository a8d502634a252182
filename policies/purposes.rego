# Purposes (R5 purpose limitation): input.purpose is the stored form the gateway
# resolved the caller's text to (gateway.purposes):
#
#   <code>[ <case reference>][: <desensitized text>]
#
# data.purposes is the registry (data/purposes.json): code, title, legal basis,
# the caller kinds and datasets a purpose may serve (empty: any), aliases.
package govgw.purposes

import rego.v1

registry[p.code] := p if some p in data.purposes.purposes

# The registered code a stored purpose starts with; undefined for other text.
code(stored) := c if {
	m := regex.find_n(`^[a-z][a-z0-9_]*`, stored, 1)
	c := m[0]
	registry[c]
	rest := substring(stored, count(c), -1)
	regex.match(`^($| |:)`, rest)
}

# A grant bound to a purpose serves calls with exactly that purpose, and a grant
# bound to a bare registered code (not the generic one) serves every call of that
# code, whatever its case reference or text.
serves(granted, asked) if granted == asked

serves(granted, asked) if {
	granted != data.purposes.other
	code(asked) == granted
}

entry := registry[code(input.purpose)]

# The purpose is registered, and not for this caller kind or this dataset.
not_served if {
	count(entry.caller_kinds) > 0
	not input.caller.kind in entry.caller_kinds
}

not_served if {
	count(entry.datasets) > 0
	not input.dataset in entry.datasets
}

# Purposes the law withholds from the subject (investigations).
withheld if entry.withheld_from_subject == true

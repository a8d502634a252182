# Grants (授权): conditional access, bound to caller, dataset and purpose
# (R5 purpose limitation: the exact stored purpose, or every call of a bare
# registered code; govgw.purposes), with an expiry. data.grants is the list the
# gateway's grant store holds; time comes from input.now so plans are cacheable.
package govgw.grants

import rego.v1

import data.govgw.plans

matching contains g if {
	some g in data.grants
	g.caller == input.caller.id
	g.dataset == input.dataset
	data.govgw.purposes.serves(g.purpose, input.purpose)
}

now_ns := time.parse_rfc3339_ns(input.now)

# A grant whose expiry is not RFC 3339 is never usable (it could not expire).
expiry_ns(g) := time.parse_rfc3339_ns(g.expires_at) if {
	regex.match(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$`, g.expires_at)
}

usable contains g if {
	some g in matching
	g.status == "active"
	expiry_ns(g) > now_ns
	in_force(g)
}

expired contains g if {
	some g in matching
	g.status == "active"
	expiry_ns(g) <= now_ns
}

# Several grants may match; the longest-lived wins, ties broken by id, so the
# choice (and thus the plan) is deterministic.
grant := g if {
	some g in usable
	every h in usable {
		not outranks(h, g)
	}
}

outranks(h, g) if expiry_ns(h) > expiry_ns(g)

outranks(h, g) if {
	expiry_ns(h) == expiry_ns(g)
	h.id < g.id
}

denial := plans.deny("GRANT_EXPIRED", sprintf("the grant for dataset %s and this purpose has expired; apply again", [input.dataset])) if {
	count(usable) == 0
	count(expired) > 0
}

else := plans.deny("GRANT_REQUIRED", sprintf("dataset %s is conditional: it needs an active grant for this caller and purpose", [input.dataset])) if {
	count(usable) == 0
}

# The plan fields a grant releases: those it names, among those the side releases.
fields(released) := object.filter(released, grant_fields)

grant_fields := grant.fields if not emergency_grant(grant)

# An emergency grant releases no field its emergency's scope has lost.
else := [f | some f in grant.fields; f in emergency_of(grant).scope[input.dataset]]

plan_terms := {"grant_id": grant.id, "expires_at": grant.expires_at} if not emergency_grant(grant)

# The plan may not outlive the emergency, whichever of the two ends first.
else := {"grant_id": grant.id, "expires_at": emergency_of(grant).ends_at} if {
	time.parse_rfc3339_ns(emergency_of(grant).ends_at) < expiry_ns(grant)
}

else := {"grant_id": grant.id, "expires_at": grant.expires_at}

# Obligations a grant adds: a call under an emergency names it in its audit record.
obligation_terms := {"emergency_id": grant.emergency_id} if emergency_grant(grant)

else := {}

# ----- emergencies (R11) -----------------------------------------------------------------
# A declared emergency adds one grant (with emergency_id) per designated agency
# and dataset of its scope. input.emergencies lists the active emergencies; such a
# grant is in force only while its emergency is listed there, has not reached its
# end time, names the caller and scopes the dataset. Any other grant is in force
# as it stands.
emergency_grant(g) if object.get(g, "emergency_id", "") != ""

emergency_of(g) := e if {
	some e in object.get(input, "emergencies", [])
	e.id == g.emergency_id
	e.status == "active"
	input.caller.id in e.agencies
	is_array(e.scope[input.dataset])
	time.parse_rfc3339_ns(e.ends_at) > now_ns
}

in_force(g) if not emergency_grant(g)

in_force(g) if emergency_of(g)
